"""``splice executions list | show ID``: the execution history, from the running server or the store.

With a ``splice serve`` of the project answering at ``--url`` the command asks its admin API
(:mod:`runtime.cli_admin`); otherwise it reads the store the project (or its sandbox) uses.
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio

from runtime.cli_support import CliError, load_cli_project, registry
from runtime.jsonutil import dumps

__all__ = ["add_executions_parser", "cmd_executions"]


def add_executions_parser(sub: Any, project_args: Any) -> None:
    """The ``executions`` sub-command and its actions (``project_args`` adds --project and the rest)."""
    from runtime.cli_admin import add_server_arguments

    parser = sub.add_parser("executions", help="execution history: list, show")
    actions = parser.add_subparsers(dest="executions_command", metavar="ACTION", required=True)
    p = actions.add_parser("list", help="newest first")
    p.add_argument("--flow")
    p.add_argument("--outcome", choices=["completed", "failed", "dead-lettered", "retried"])
    p.add_argument("--id", dest="record_id", metavar="BUSINESS_ID",
                   help="executions that touched this business id (a flow's record-ids)")
    p.add_argument("--correlation-id")
    p.add_argument("--since", help="ISO 8601 time or date (UTC unless it says otherwise)")
    p.add_argument("--until", help="ISO 8601 time or date")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--after", metavar="EXECUTION_ID", help="the page after this execution")
    project_args(p)
    add_server_arguments(p)
    p = actions.add_parser("show", help="one execution: its steps, error and kept data")
    p.add_argument("id")
    project_args(p)
    add_server_arguments(p)
    parser.set_defaults(func=cmd_executions)


def _line(record: dict[str, Any]) -> str:
    error = record.get("error") or {}
    ids = ",".join(record.get("recordIds") or []) or "-"
    return (f"{record['id']}  {record.get('flow')}  {record.get('outcome'):<13}  "
            f"{record.get('durationMs', 0):>9.1f} ms  {ids}"
            + (f"  {error.get('type')}: {str(error.get('message', ''))[:60]}" if error else ""))


def cmd_executions(args: argparse.Namespace) -> int:
    """List or show executions (through the running server when one answers)."""
    from runtime.cli_admin import find_server
    from runtime.cli_sandbox import open_cli_store, plan_command
    from runtime.store.executions import ExecutionFilter, ExecutionHistory, normalize_time

    plugins = registry(args)
    project = load_cli_project(args, plugins)
    if getattr(args, "limit", 1) < 1:
        raise CliError("--limit must be at least 1")
    server = find_server(args, project)
    if server is not None:
        if args.executions_command == "show":
            print(dumps(server.get(f"executions/{args.id}"), indent=2))
            return 0
        params = {"flow": args.flow, "outcome": args.outcome, "id": args.record_id,
                  "correlation-id": args.correlation_id, "since": args.since,
                  "until": args.until, "limit": args.limit, "after": args.after}
        page = server.get("executions", {k: v for k, v in params.items() if v is not None})
        return _print_list(page.get("executions") or [], page.get("next"))
    plan = plan_command(args, project, plugins, needed=())

    async def go() -> int:
        store = open_cli_store(plan)
        try:
            history = ExecutionHistory(store)
            if args.executions_command == "show":
                record = await history.get(args.id)
                if record is None:
                    raise CliError(f"no execution '{args.id}'", code=1)
                print(dumps(record, indent=2))
                return 0
            try:
                where = ExecutionFilter(
                    flow=args.flow, outcome=args.outcome, record_id=args.record_id,
                    correlation_id=args.correlation_id,
                    since=normalize_time(args.since) if args.since else None,
                    until=normalize_time(args.until) if args.until else None)
            except ValueError as exc:
                raise CliError(f"--since/--until: {exc}") from None
            records = await history.list(where, limit=args.limit, after=args.after)
            return _print_list(records, records[-1]["id"] if len(records) == args.limit else None)
        finally:
            await store.aclose()

    return anyio.run(go)


def _print_list(records: list[dict[str, Any]], after: str | None) -> int:
    if not records:
        print("no executions")
    for record in records:
        print(_line(record))
    if after:
        print(f"(more: --after {after})")
    return 0
