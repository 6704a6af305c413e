"""``splice dlq list | show ID | replay ID|--all | discard ID...``: dead letters, kept whole.

With a ``splice serve`` of the project answering at ``--url`` the command goes through its admin
API (:mod:`runtime.cli_admin`): the server lists, replays (with its own connections) and discards.
Otherwise it acts on the store directly. In sandbox mode (a project without credentials, as
``splice serve`` decides) those are the sandbox's dead letters, and a replay runs against the running
serve's emulators (see :mod:`runtime.cli_sandbox`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import anyio

from runtime.cli_support import CliError, load_cli_project, registry
from runtime.jsonutil import dumps

__all__ = ["cmd_dlq", "print_replay_results"]


def _letter_line(letter: dict[str, Any]) -> str:
    error = letter.get("error") or {}
    return (f"{letter['id']}  {letter.get('created_at')}  {letter.get('flow')}  "
            f"{error.get('type')}  {str(error.get('message', ''))[:80]}")


def print_replay_results(results: Sequence[dict[str, Any]]) -> int:
    """One line per replayed letter; returns how many did not complete."""
    failed = 0
    for result in results:
        outcome = result.get("outcome")
        if outcome == "completed":
            print(f"{result['id']}: replayed, completed")
            continue
        failed += 1
        if outcome == "kept":
            print(f"{result['id']}: flow '{result.get('flow')}' no longer exists; kept")
        elif outcome == "not-found":
            print(f"{result['id']}: no such dead letter")
        else:
            err = (result.get("error") or {}).get("type", "?")
            new = result.get("deadLetterId")
            print(f"{result['id']}: replay failed again ({err})" + (f", now {new}" if new else ""))
    return failed


def cmd_dlq(args: argparse.Namespace) -> int:
    """List, show, replay or discard dead letters (through the running server when one answers)."""
    from runtime.cli_admin import find_server

    plugins = registry(args)
    project = load_cli_project(args, plugins)
    if args.dlq_command == "replay" and not args.all and not args.id:
        raise CliError("give a dead letter id, or --all")
    server = find_server(args, project)
    if server is not None and args.dlq_command == "replay" and _changed_since(server, project):
        # A fix to the flows after the serve started: replay with the files as they are now.
        print(f"splice: the project's files changed since the splice serve at {server.url} "
              "started: replaying here, with the files as they are now", file=sys.stderr)
        server = None
    if server is None:
        return _dlq_store(args, project, plugins)
    command = args.dlq_command
    if command == "list":
        params = {"limit": min(args.limit, 500), **({"flow": args.flow} if args.flow else {})}
        letters = server.get("dead-letters", params).get("deadLetters") or []
        if not letters:
            print("no dead letters")
        for letter in letters:
            print(_letter_line(letter))
        return 0
    if command == "show":
        print(dumps(server.get(f"dead-letters/{args.id}"), indent=2))
        return 0
    if command == "discard":
        return _print_discarded(server.post("dead-letters/discard", {"ids": args.ids})["results"])
    body: dict[str, Any] = ({"all": True, **({"flow": args.flow} if args.flow else {})} if args.all
                            else {"ids": [args.id]})
    results = server.post("dead-letters/replay", body)["results"]
    if not results:
        print("nothing to replay")
        return 0
    return 1 if print_replay_results(results) else 0


def _changed_since(server: Any, project: Any) -> bool:
    from runtime.admin_access import project_fingerprint

    served = server.status.get("projectFingerprint")
    return bool(served) and served != project_fingerprint(project.root)


def _print_discarded(results: Sequence[dict[str, Any]]) -> int:
    missing = 0
    for result in results:
        if result["outcome"] == "discarded":
            print(f"{result['id']}: discarded")
        else:
            missing += 1
            print(f"{result['id']}: no such dead letter")
    return 1 if missing else 0


def _dlq_store(args: argparse.Namespace, project: Any, plugins: Any) -> int:
    from runtime.cli_sandbox import open_cli_store, plan_command
    from runtime.deadletter_actions import discard_letters
    from runtime.store import DeadLetterQueue

    if args.dlq_command == "replay":
        return _dlq_replay(args, project, plugins)
    plan = plan_command(args, project, plugins, needed=())

    async def go() -> int:
        store = open_cli_store(plan)
        try:
            queue = DeadLetterQueue(store)
            if args.dlq_command == "list":
                letters = await queue.list(flow=args.flow, limit=args.limit)
                if not letters:
                    print("no dead letters")
                for letter in letters:
                    print(_letter_line(letter.to_dict()))
                return 0
            if args.dlq_command == "discard":
                return _print_discarded(await discard_letters(queue, args.ids))
            found = await queue.get(args.id)
            if found is None:
                raise CliError(f"no dead letter '{args.id}'", code=1)
            print(dumps(found.to_dict(), indent=2))
            return 0
        finally:
            await store.aclose()

    return anyio.run(go)


def _dlq_replay(args: argparse.Namespace, project: Any, plugins: Any) -> int:
    from runtime.cli_sandbox import open_cli_runtime, open_cli_store, plan_command
    from runtime.deadletter_actions import replay_letters
    from runtime.flow_connections import connections_used
    from runtime.store import DeadLetter, DeadLetterQueue

    async def chosen(queue: DeadLetterQueue) -> list[DeadLetter]:
        return (await queue.list(flow=args.flow, limit=1_000_000) if args.all
                else [letter for letter in [await queue.get(args.id)] if letter])

    async def go() -> int:
        # Which flows run decides which connections open: read the letters first.
        store = open_cli_store(plan_command(args, project, plugins, needed=()))
        try:
            flows = {letter.flow for letter in await chosen(DeadLetterQueue(store))}
        finally:
            await store.aclose()
        plan = plan_command(args, project, plugins, needed=connections_used(project, flows))
        async with open_cli_runtime(plan, plugins) as runtime:
            queue = DeadLetterQueue(runtime.store)
            letters = await chosen(queue)
            if not letters:
                print("nothing to replay")
                return 1 if args.id else 0
            results = await replay_letters(runtime.engine, queue, letters)
        return 1 if print_replay_results(results) else 0

    return anyio.run(go)
