"""The ``splice`` command.

Every sub-command reports problems as plain lines (``file:line:col: ...`` for flows) and an exit code;
a traceback is shown only with ``--debug``. Exit codes: 0 success, 1 the flows or the input are wrong
or an execution failed, 2 usage or set-up problem (plugins, store, configuration).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

from runtime.cli_admin import add_server_arguments
from runtime.cli_deadletters import cmd_dlq
from runtime.cli_executions import add_executions_parser
from runtime.cli_support import CliError, default_project_dir, load_plugins
from runtime.cli_support import load_cli_project as _load
from runtime.cli_support import registry as _registry
from runtime.cli_test import add_test_command
from runtime.errors import ConfigurationError, SpliceError
from runtime.jsonutil import dumps
from runtime.plugins import PluginLoadError
from runtime.registry import Registry
from runtime.spec import SandboxSpec

__all__ = ["main"]


# -- validate / flows / schema / docs --------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    import dsl

    registry = _registry(args)
    env = args.env or os.environ.get("SPLICE_ENV") or "dev"
    problems: list[Any] = []
    counted = 0
    for raw in args.paths or [str(default_project_dir())]:
        path = Path(raw)
        if not path.exists():
            raise CliError(f"'{raw}' does not exist")
        if path.is_dir():
            problems.extend(dsl.check_project(path, env=env, vocabulary=registry,
                                              environ=os.environ))
            counted += sum(1 for _ in path.rglob("*.y*ml"))
        else:
            problems.extend(dsl.check_file(path, env=env, vocabulary=registry, environ=os.environ))
            counted += 1
    for problem in sorted(problems, key=lambda e: (e.span.file, e.span.line, e.span.col)):
        print(problem.format())
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return 1
    print(f"ok: {counted} file(s) checked, no problems")
    return 0


def _trigger_text(flow: Any) -> str:
    if flow.trigger is None:
        return "(none: flow-ref / splice run)"
    params = {k: v for k, v in flow.trigger.params.items() if isinstance(v, str | int | float)}
    detail = " ".join(f"{k}={v}" for k, v in params.items())
    return f"{flow.trigger.name} {detail}".strip()


def cmd_flows(args: argparse.Namespace) -> int:
    project = _load(args)
    rows = [(f.name, _trigger_text(f), str(len(f.steps)), str(f.max_concurrency),
             os.path.relpath(f.file)) for f in sorted(project.flows.values(), key=lambda f: f.name)]
    header = ("FLOW", "TRIGGER", "STEPS", "MAX-CONC", "FILE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    import dsl

    schema = dsl.flow_json_schema(_registry(args))
    text = json.dumps(schema, indent=2, ensure_ascii=False)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from runtime.docs import render_reference, write_reference

    pages = render_reference(_registry(args))
    if args.output == "-":
        print("\n".join(pages.values()), end="")
        return 0
    for path in write_reference(pages, Path(args.output)):
        print(f"wrote {path}")
    return 0


# -- encrypt ---------------------------------------------------------------------------------------


def cmd_encrypt(args: argparse.Namespace) -> int:
    from dsl.properties import encrypt_value

    key = os.environ.get("SPLICE_SECURE_KEY")
    if not key:
        raise CliError("SPLICE_SECURE_KEY is not set: it is the key secure properties are "
                       "encrypted with")
    value = args.value if args.value is not None else sys.stdin.readline().rstrip("\n")
    if not value:
        raise CliError("nothing to encrypt (give a value or pipe one on standard input)")
    print(encrypt_value(value, key))
    return 0


# -- run -------------------------------------------------------------------------------------------


def _read_input(spec: str | None) -> Any:
    if spec is None:
        return None
    try:
        text = sys.stdin.read() if spec == "-" else Path(spec).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read input '{spec}': {exc.strerror}", code=1) from None
    try:
        return json.loads(text) if text.strip() else None
    except json.JSONDecodeError as exc:
        raise CliError(f"{spec}:{exc.lineno}:{exc.colno}: input is not valid JSON: {exc.msg}",
                       code=1) from None


def cmd_run(args: argparse.Namespace) -> int:
    from runtime.cli_preview import render_dry_run
    from runtime.cli_sandbox import open_cli_runtime, plan_command
    from runtime.flow_connections import connections_used
    from runtime.message import Event
    from runtime.preview import previewing
    from runtime.startup import run_startup_checks, startup_checks
    from runtime.steps import materialize
    from runtime.store.base import LockTimeoutError

    registry = _registry(args)
    project = _load(args, registry)
    if args.flow not in project.flows:
        known = ", ".join(sorted(project.flows)) or "none"
        raise CliError(f"no flow named '{args.flow}' (flows: {known})", code=1)
    payload = _read_input(args.input)
    # Only what this flow (and the flows it references) uses: a connection without credentials
    # elsewhere in the project is no reason to fail, and in sandbox mode it needs no emulator.
    # Start-up checks run first (runtime.startup), with the connections they use.
    checks = [name for name in startup_checks(project) if name != args.flow]
    plan = plan_command(args, project, registry,
                        needed=connections_used(project, [args.flow, *checks]))

    trigger = project.flows[args.flow].trigger
    source = registry.sources.get(trigger.name) if trigger is not None else None
    # A trigger whose runs must never overlap (a schedule) names the lock they hold: take it too.
    run_lock = source.run_lock(args.flow) if source is not None and source.run_lock else None
    busy = (f"{args.flow} is running already (its {source.name if source else ''} trigger fired "
            "it, or another splice run); try again when it is done")

    async def go() -> int:
        async with open_cli_runtime(plan, registry) as runtime, AsyncExitStack() as guard:
            await run_startup_checks(runtime, checks)
            if run_lock is not None:  # never alongside a triggered run (or another splice run)
                try:
                    await guard.enter_async_context(runtime.store.lock(run_lock, timeout=0.0))
                except LockTimeoutError:
                    raise CliError(busy, code=1) from None
            if not args.dry_run:
                outcome = await runtime.engine.run(args.flow, Event(payload=payload))
                result = await materialize(outcome.message.payload)
            else:  # the reads happen; each write is recorded, not made (runtime.preview)
                with previewing() as writes:
                    outcome = await runtime.engine.run(args.flow, Event(payload=payload))
                    result = await materialize(outcome.message.payload)
                print(render_dry_run(args.flow, outcome, result, writes.writes, args.output))
                return 0 if outcome.status == "completed" else 1
        if outcome.status == "completed":
            print(dumps(result, indent=2))
            return 0
        assert outcome.error is not None
        body: dict[str, Any] = {"error": outcome.error.to_dict(), "status": outcome.status}
        if outcome.dead_letter_id:
            body["deadLetterId"] = outcome.dead_letter_id
        print(dumps(body, indent=2))  # stdout stays one JSON document; logs go to stderr
        return 1

    return anyio.run(go)


# -- serve -----------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """Run every flow; in sandbox mode against the connectors' emulators (see runtime.sandbox)."""
    from runtime.server import ServeOptions, run

    registry = _registry(args)
    project = _load(args, registry)
    options = ServeOptions(
        host=args.host, port=args.port, drain_timeout=args.drain_timeout,
        sandbox=True if args.sandbox else False if args.no_sandbox else None,
        sandbox_port_base=args.sandbox_port_base, reload=args.reload)
    if args.sandbox_store:
        options = replace(options, sandbox_store=Path(args.sandbox_store))
    try:
        run(project, registry, options)
    except PluginLoadError as exc:
        raise CliError(f"plugin error: {exc}") from None
    return 0


# -- status / sandbox -------------------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from runtime.cli_admin import find_server
    from runtime.cli_sandbox import open_cli_runtime, plan_command
    from runtime.store import DeadLetterQueue

    registry = _registry(args)
    project = _load(args, registry)
    server = find_server(args, project)
    if server is not None:  # the running serve's own view: its connections, triggers, history
        status = dict(server.status)
        letters = status.get("deadLetters") or {}
        served: dict[str, Any] = {
            "flows": status.get("flows"), "server": server.url,
            "connections": dict(sorted((status.get("connections") or {}).items())),
            "deadLetters": letters.get("total", 0), "deadLettersByFlow": letters.get("byFlow", {}),
            "triggers": status.get("triggers"), "history": status.get("history")}
        if status.get("sandbox"):
            served["sandbox"] = {"store": status["sandbox"].get("store"), "serve": server.url}
        print(dumps(served, indent=2))
        return 0
    # In sandbox mode without a serve to reach, the emulated connections are reported, not opened.
    plan = plan_command(args, project, registry, skip_unreachable=True)

    async def go() -> int:
        async with open_cli_runtime(plan, registry) as runtime:
            connections = await runtime.status()
            connections.update({name: {"open": False, "reason": reason}
                                for name, reason in plan.unreachable.items()})
            report: dict[str, Any] = {
                "flows": sorted(project.flows),
                "connections": dict(sorted(connections.items())),
                "deadLetters": await DeadLetterQueue(runtime.store).count(),
            }
            if plan.sandbox:
                report["sandbox"] = {"store": plan.store_url,
                                     "serve": plan.served.get("server") if plan.served else None}
        print(dumps(report, indent=2))
        return 0

    return anyio.run(go)


def _parse_options(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values read as YAML scalars (numbers, booleans), keys with - as _."""
    import yaml

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--option takes key=value, got '{pair}'")
        try:
            options[key.strip().replace("-", "_")] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            options[key.strip().replace("-", "_")] = value
    return options


def _sandboxes(registry: Registry) -> dict[str, SandboxSpec]:
    """Connector name -> its sandbox spec, for every installed connector that has one (imported
    here: only ``splice sandbox`` needs them)."""
    from runtime.sandbox import load_sandbox

    found: dict[str, SandboxSpec] = {}
    for name, connector in sorted(registry.connectors.items()):
        try:
            sandbox = load_sandbox(connector)
        except PluginLoadError as exc:
            raise CliError(f"plugin error: {exc}") from None
        if sandbox is not None:
            found[name] = sandbox
    return found


def _sandbox_actions(sandboxes: Mapping[str, SandboxSpec]) -> dict[str, list[tuple[str, Any]]]:
    """Action name -> [(connector name, action)] over every installed connector."""
    actions: dict[str, list[tuple[str, Any]]] = {}
    for name, sandbox in sandboxes.items():
        for action in sandbox.actions:
            actions.setdefault(action.name, []).append((name, action))
    return actions


def cmd_sandbox(args: argparse.Namespace) -> int:
    """``splice sandbox <connector>`` serves an emulator; ``splice sandbox <action> ...`` acts on
    the emulators of a running ``splice serve`` in sandbox mode (found through its ``/sandbox``)."""
    sandboxes = _sandboxes(_registry(args))
    actions = _sandbox_actions(sandboxes)
    sandbox = sandboxes.get(args.name)
    if sandbox is None and args.name in actions:
        return _run_sandbox_action(args, actions[args.name])
    if sandbox is None:
        raise CliError(f"no emulator or sandbox action named '{args.name}' (emulators: "
                       f"{', '.join(sorted(sandboxes)) or 'none'}; actions: "
                       f"{', '.join(sorted(actions)) or 'none'})")
    if args.words:
        raise CliError(f"unexpected arguments after '{args.name}': {' '.join(args.words)}")
    import uvicorn

    options = _parse_options(args.option)
    try:
        app = sandbox.emulator(**options)
    except TypeError as exc:
        raise CliError(f"the {args.name} emulator does not take these options: {exc}") from None
    print(f"{args.name} emulator on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def sandbox_help_epilog(registry: Registry) -> str:
    """The emulators and actions of the installed connectors, for ``splice sandbox --help``."""
    sandboxes = _sandboxes(registry)
    lines = ["emulators (splice sandbox CONNECTOR --port N [--option KEY=VALUE]):",
             f"  {', '.join(sorted(sandboxes)) or 'none installed'}", "",
             "actions (splice sandbox ACTION [ARGS], on a running splice serve in sandbox mode):"]
    actions = _sandbox_actions(sandboxes)
    if not actions:
        lines.append("  none installed")
    for name, candidates in sorted(actions.items()):
        usage = next((a.usage for _, a in candidates if a.usage), "")
        summary = "; ".join(f"{a.summary} ({connector})" if len(candidates) > 1 else a.summary
                            for connector, a in candidates)
        lines.append(f"  {name} {usage}".rstrip())
        lines.append(f"      {summary}")
    return "\n".join(lines)


class _SandboxHelp(argparse.Action):
    """``-h`` of ``splice sandbox``: lists the installed emulators and actions, which only the
    connectors' sandbox specs know, so they are imported when help is asked for, not before."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS,
                         help="show this help, with the installed emulators and actions, and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        plugins = load_plugins()
        try:
            if isinstance(plugins, CliError):
                raise plugins
            parser.epilog = sandbox_help_epilog(plugins)
        except CliError as exc:
            parser.epilog = f"(the installed emulators and actions cannot be listed: {exc})"
        parser.print_help()
        parser.exit()


def _run_sandbox_action(args: argparse.Namespace, candidates: list[tuple[str, Any]]) -> int:
    import httpx

    url = args.url.rstrip("/")
    try:
        response = httpx.get(f"{url}/sandbox", timeout=5.0)
    except httpx.HTTPError as exc:
        raise CliError(f"no splice serve answers at {url} ({type(exc).__name__}); start "
                       "`splice serve` first, or give its address with --url", code=1) from None
    if response.status_code != 200:
        raise CliError(f"{url} is not a splice serve in sandbox mode (GET /sandbox answered "
                       f"{response.status_code})", code=1)
    emulators = list(response.json().get("emulators", {}).values())
    if args.connection:
        emulators = [e for e in emulators if e.get("connection") == args.connection]
    runs = [(action, emulator) for connector, action in candidates for emulator in emulators
            if emulator.get("connector") == connector]
    if not runs:
        served = ", ".join(sorted(e.get("connector", "?") for e in emulators)) or "none"
        raise CliError(f"'{args.name}' needs an emulator of "
                       f"{' or '.join(c for c, _ in candidates)}; this sandbox runs {served}",
                       code=1)
    if args.name != "list":
        runs = runs[:1]  # an action changes one system once, never each emulator of its kind

    async def go() -> list[str]:
        return [await action.run(emulator, list(args.words)) for action, emulator in runs]

    try:
        outputs = anyio.run(go)
    except ValueError as exc:
        raise CliError(str(exc), code=1) from None
    except httpx.HTTPError as exc:
        raise CliError(f"the emulator call failed: {type(exc).__name__}: {exc}", code=1) from None
    print("\n\n".join(outputs))
    return 0


# -- parser ----------------------------------------------------------------------------------------


def _project_args(parser: argparse.ArgumentParser, *, sandbox: bool = False) -> None:
    parser.add_argument("--project", "-p", help="project directory (default: $SPLICE_PROJECT, "
                        "./flows or .)")
    parser.add_argument("--env", "-e", help="environment: reads config/<env>.yaml "
                        "(default: $SPLICE_ENV or dev)")
    if sandbox:  # commands that act on the sandbox of a project without credentials, as serve does
        from runtime.cli_sandbox import add_sandbox_arguments

        add_sandbox_arguments(parser, _DEFAULT_URL)


_DEFAULT_URL = os.environ.get("SPLICE_URL", "http://127.0.0.1:8080")


def _log_format_arg(parser: argparse.ArgumentParser, *, default: str) -> None:
    """``--log-format text|json``; on ``run`` and ``serve`` too, where it reads naturally (there it
    overrides the global option only when given)."""
    from runtime.logformat import FORMATS

    parser.add_argument("--log-format", choices=FORMATS, default=default,
                        help="log lines as text (default) or one JSON object each, with the "
                             "execution id, flow and business ids of lines written inside an "
                             "execution (env SPLICE_LOG_FORMAT)")


def build_parser(registry_hook: Callable[[Any], None] | None = None) -> argparse.ArgumentParser:
    """The argument parser; plugins add sub-commands through the ``splice_cli`` hook."""
    parser = argparse.ArgumentParser(prog="splice", description="Declarative integration runtime")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--log-level", default=os.environ.get("SPLICE_LOG_LEVEL", "INFO"))
    _log_format_arg(parser, default=os.environ.get("SPLICE_LOG_FORMAT", "text"))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check flow files; every problem as file:line:col")
    p.add_argument("paths", nargs="*", help="project directories or flow files")
    p.add_argument("--env", "-e")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="run one flow once and print the result")
    p.add_argument("flow")
    p.add_argument("--input", "-i", help="JSON payload file ('-' for standard input)")
    p.add_argument("--dry-run", action="store_true",
                   help="make the reads, but only show each write (operation, target, payload) "
                        "instead of making it; nothing changes anywhere")
    p.add_argument("--output", choices=("text", "json"), default="text",
                   help="how a dry run prints its writes and result (default: text; a real run "
                        "always prints its result as JSON)")
    _project_args(p, sandbox=True)
    _log_format_arg(p, default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("serve", help="run every flow of the project")
    _project_args(p)
    _log_format_arg(p, default=argparse.SUPPRESS)
    p.add_argument("--host", default=os.environ.get("SPLICE_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("SPLICE_PORT", "8080")))
    p.add_argument("--drain-timeout", type=float, default=30.0,
                   help="seconds in-flight executions get to finish on shutdown")
    choice = p.add_mutually_exclusive_group()
    choice.add_argument("--sandbox", action="store_true",
                        help="serve every connection that has an emulator from it, with demo data "
                             "(default: only connections without credentials)")
    choice.add_argument("--no-sandbox", action="store_true",
                        help="never start emulators (connections without credentials then fail)")
    p.add_argument("--sandbox-port-base", type=int, default=None, metavar="PORT",
                   help="emulators listen on PORT, PORT+1, ... (default: free ports)")
    p.add_argument("--sandbox-store", metavar="PATH", help="SQLite file of a sandbox run, emptied "
                                                           "at start (default: .splice/sandbox.db)")
    p.add_argument("--reload", action="store_true",
                   help="dev mode: watch the project's files and swap in each valid edit "
                        "(an invalid one is reported and the previous version keeps serving)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("flows", help="list the project's flows and their triggers")
    _project_args(p)
    p.set_defaults(func=cmd_flows)

    p = sub.add_parser("schema", help="JSON Schema of flow files for editors")
    p.add_argument("--output", "-o")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("docs", help="write the reference of every installed step, operation, "
                                    "trigger and JSONata function as Markdown")
    p.add_argument("--output", "-o", default="docs/reference",
                   help="directory of the Markdown files (default: docs/reference; '-': standard "
                        "output)")
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("encrypt", help="encrypt a value for a secure property (key: "
                       "$SPLICE_SECURE_KEY)")
    p.add_argument("value", nargs="?")
    p.set_defaults(func=cmd_encrypt)

    p = sub.add_parser("status", help="connections, API usage and dead letters")
    _project_args(p, sandbox=True)
    add_server_arguments(p)
    p.set_defaults(func=cmd_status)

    dlq = sub.add_parser("dlq", help="dead letters: list, show, replay, discard")
    dsub = dlq.add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    p = dsub.add_parser("list")
    p.add_argument("--flow")
    p.add_argument("--limit", type=int, default=100)
    _project_args(p, sandbox=True)
    add_server_arguments(p)
    p = dsub.add_parser("show")
    p.add_argument("id")
    _project_args(p, sandbox=True)
    add_server_arguments(p)
    p = dsub.add_parser("replay")
    p.add_argument("id", nargs="?")
    p.add_argument("--all", action="store_true")
    p.add_argument("--flow")
    _project_args(p, sandbox=True)
    add_server_arguments(p)
    p = dsub.add_parser("discard", help="drop dead letters without replaying them")
    p.add_argument("ids", nargs="+", metavar="ID")
    _project_args(p, sandbox=True)
    add_server_arguments(p)
    dlq.set_defaults(func=cmd_dlq)

    add_executions_parser(sub, lambda parser: _project_args(parser, sandbox=True))

    p = sub.add_parser("sandbox", help="run a connector's API emulator, or act on a running "
                       "sandbox (list, close-opportunity, pay, ...)", add_help=False,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="splice sandbox CONNECTOR --port N [--option k=v]: serve an "
                       "emulator.\nsplice sandbox ACTION [ARGS]: act on the emulators of a "
                       "`splice serve` in sandbox mode\n(the actions come from the connectors).")
    p.add_argument("-h", "--help", action=_SandboxHelp)
    p.add_argument("name", help="an emulator (salesforce, quickbooks, ...) or an action")
    p.add_argument("words", nargs="*", metavar="ARG", help="the action's arguments")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8081)
    p.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="an emulator option (repeatable), e.g. --option demo=true")
    p.add_argument("--url", default=_DEFAULT_URL,
                   help="the running splice serve, for actions (default: $SPLICE_URL or "
                        "http://127.0.0.1:8080)")
    p.add_argument("--connection", help="for actions: the connection whose emulator to use")
    p.set_defaults(func=cmd_sandbox)

    add_test_command(sub)  # splice test: runtime/cli_test.py
    if registry_hook is not None:
        registry_hook(sub)
    return parser


def _reader_went_away() -> int:
    """The reader of standard output closed it (``splice sandbox list | head``): stop quietly, as
    a command killed by SIGPIPE does, with its exit status 128 + 13. Standard output is pointed at
    the null device so that Python's final flush does not report the pipe again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):  # not a real file (tests capture it)
        pass
    return 141


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``splice`` command."""
    try:
        try:
            code = _main(argv)
        finally:  # also on SystemExit (--help): a closed pipe shows here, not at interpreter exit
            sys.stdout.flush()
    except BrokenPipeError:
        return _reader_went_away()
    return code


def _main(argv: Sequence[str] | None) -> int:
    from runtime.logformat import FORMATS
    from runtime.redaction import Secrets, use_secrets
    from runtime.telemetry import configure_logging

    plugins = load_plugins()  # a failure is reported by the command that needs the plugins
    plugin_commands: Callable[[Any], None] | None = None
    if isinstance(plugins, Registry) and plugins.plugin_manager is not None:
        pm = plugins.plugin_manager
        plugin_commands = lambda sub: pm.hook.splice_cli(subparsers=sub)  # noqa: E731
    parser = build_parser(plugin_commands)
    args = parser.parse_args(argv)
    args.plugins = plugins
    if args.log_format not in FORMATS:
        print(f"splice: SPLICE_LOG_FORMAT must be one of {', '.join(FORMATS)}, not "
              f"'{args.log_format}'", file=sys.stderr)
        return 2
    configure_logging(args.log_level, args.log_format)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        # The command's own secrets (see runtime.redaction): what it decrypts or is given is masked
        # in everything it writes, and a runtime it opens masks them too.
        with use_secrets(Secrets()):
            return int(args.func(args) or 0)
    except BrokenPipeError:
        raise  # the reader went away: see main
    except CliError as exc:
        print(f"splice: {exc}", file=sys.stderr)
        return exc.code
    except SpliceError as exc:
        print(f"splice: {exc}", file=sys.stderr)
        return 1
    except ConfigurationError as exc:
        print(f"splice: configuration error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(f"splice: internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
