"""``splice dlq list | show ID | replay ID|--all``: dead letters, kept with their full input.

In sandbox mode (a project without credentials, as ``splice serve`` decides) the dead letters are
the sandbox's, and a replay runs against the running serve's emulators (see
:mod:`runtime.cli_sandbox`).
"""

from __future__ import annotations

import argparse

import anyio

from runtime.cli_support import CliError, load_cli_project, registry
from runtime.jsonutil import dumps

__all__ = ["cmd_dlq"]


def cmd_dlq(args: argparse.Namespace) -> int:
    """List, show or replay dead letters (the store the project names, or the sandbox's)."""
    from runtime.cli_sandbox import open_cli_store, plan_command
    from runtime.store import DeadLetterQueue

    if args.dlq_command == "replay":
        return _dlq_replay(args)
    plugins = registry(args)
    plan = plan_command(args, load_cli_project(args, plugins), plugins, needed=())

    async def go() -> int:
        store = open_cli_store(plan)
        try:
            queue = DeadLetterQueue(store)
            if args.dlq_command == "list":
                letters = await queue.list(flow=args.flow, limit=args.limit)
                if not letters:
                    print("no dead letters")
                for letter in letters:
                    print(f"{letter.id}  {letter.created_at}  {letter.flow}  "
                          f"{letter.error.get('type')}  {letter.error.get('message', '')[:80]}")
                return 0
            found = await queue.get(args.id)
            if found is None:
                raise CliError(f"no dead letter '{args.id}'", code=1)
            print(dumps(found.to_dict(), indent=2))
            return 0
        finally:
            await store.aclose()

    return anyio.run(go)


def _dlq_replay(args: argparse.Namespace) -> int:
    from runtime.cli_sandbox import open_cli_runtime, open_cli_store, plan_command
    from runtime.flow_connections import connections_used
    from runtime.message import Message
    from runtime.store import DeadLetter, DeadLetterQueue

    plugins = registry(args)
    project = load_cli_project(args, plugins)
    if not args.all and not args.id:
        raise CliError("give a dead letter id, or --all")

    async def chosen(queue: DeadLetterQueue) -> list[DeadLetter]:
        return (await queue.list(flow=args.flow, limit=1_000_000) if args.all
                else [letter for letter in [await queue.get(args.id)] if letter])

    async def go() -> int:
        failed = 0
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
            for letter in letters:
                if letter.flow not in project.flows:
                    print(f"{letter.id}: flow '{letter.flow}' no longer exists; kept")
                    failed += 1
                    continue
                message = Message.from_dict(letter.message)
                outcome = await runtime.engine.run(letter.flow, message)
                if outcome.status == "completed":
                    await queue.delete(letter.id)
                    print(f"{letter.id}: replayed, completed")
                else:
                    failed += 1
                    if outcome.dead_letter_id:
                        await queue.delete(letter.id)
                    err = outcome.error.error_type if outcome.error else "?"
                    print(f"{letter.id}: replay failed again ({err})"
                          + (f", now {outcome.dead_letter_id}" if outcome.dead_letter_id else ""))
        return 1 if failed else 0

    return anyio.run(go)
