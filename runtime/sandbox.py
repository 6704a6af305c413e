"""Sandbox mode of ``splice serve``: the project's flows against the connectors' own emulators.

A project whose connections have no credentials yet (every secret setting empty) should still run,
on one machine, with believable data: that is how people try an integration before they have API
keys. Nothing here knows a SaaS system by name. A connector opts in with a
:class:`runtime.spec.SandboxSpec` (``Connector.sandbox``, usually a ``"module:attribute"`` reference
that :func:`load_sandbox` imports only now): ``emulator(**options)`` builds its API emulator,
``settings(base_url)`` gives the connection settings that point at it (with the emulator's demo
credentials) and ``emulator_options(target)`` the emulator options (demo data, callbacks such as
webhooks into ``splice serve``).

For each sandboxed connection :func:`prepare` binds a local port, builds the emulator and the
replacement settings; :func:`serve_emulators` runs the emulators for as long as ``serve`` runs;
:func:`describe` is what ``GET /sandbox`` answers (base URLs and demo credentials, so that any
client can be pointed at the emulators). Connections with credentials are left alone: with real
credentials in the environment no emulator starts (and no emulator module is imported).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from dsl.model import ConnectionConfig, Project
from runtime.errors import ConnectionConfigError
from runtime.plugins import PluginLoadError
from runtime.registry import Registry
from runtime.spec import Connector, SandboxAction, SandboxSpec, SandboxTarget, param_defaults
from runtime.store.base import StoreOpenError

__all__ = [
    "BANNER_WIDTH",
    "ApiKeyGuard",
    "DEFAULT_STORE",
    "SandboxedConnection",
    "connection_triggers",
    "describe",
    "lacks_credentials",
    "load_sandbox",
    "prepare",
    "make_store_directory",
    "render_banner",
    "sandbox_candidates",
    "serve_emulators",
    "store_url",
    "supports_sandbox",
    "wipe_sqlite",
]

logger = logging.getLogger("splice.sandbox")

#: The SQLite file of a sandbox run (relative to the working directory), unless told otherwise.
DEFAULT_STORE = Path(".splice") / "sandbox.db"


def store_url(path: str | Path) -> str:
    """The store URL of the sandbox's SQLite file at ``path``."""
    return f"sqlite:///{path}"


def make_store_directory(path: Path) -> None:
    """Create the directory of the sandbox's SQLite file; one that cannot be made (``--sandbox-store``
    in a read-only place) is the user's to fix: a :class:`StoreOpenError`, not a crash."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreOpenError(f"cannot create the directory of the sandbox store {str(path)!r}: "
                             f"{exc.strerror or exc}") from exc


@dataclass(slots=True)
class SandboxedConnection:
    """One connection served by its connector's emulator on a local port."""

    name: str
    connector: str
    base_url: str
    #: What the sandbox spec's ``settings(base_url)`` gave: the demo settings (``None``: setting dropped).
    sandbox_settings: Mapping[str, Any]
    app: Any
    sock: socket.socket
    options: Mapping[str, Any] = field(default_factory=dict)
    #: The connector's ``splice sandbox`` actions, for the banner.
    actions: tuple[SandboxAction, ...] = ()
    #: Example values of the seeded emulator (``SandboxSpec.examples``), for the banner.
    examples: Mapping[str, str] = field(default_factory=dict)

    @property
    def overrides(self) -> dict[str, Any]:
        """The settings that replace the connection's own (``None`` removes a setting)."""
        return dict(self.sandbox_settings)


def _settings(config: ConnectionConfig, connector: Connector) -> dict[str, Any]:
    assert connector.connection is not None
    settings = param_defaults(connector.connection.params)
    settings.update(config.params)
    return settings


def lacks_credentials(config: ConnectionConfig, connector: Connector) -> bool:
    """True when every secret setting of the connection is empty (no credentials configured).

    Secrets are what only a real account has; URLs and ids may have defaults or placeholders. A
    connection with some secret set is taken as meant for the real system, so a half-configured
    one fails with its connector's own message instead of silently falling back to an emulator.
    """
    if connector.connection is None:
        return False
    secrets = [p.name for p in connector.connection.params if p.secret]
    if not secrets:
        return False
    settings = _settings(config, connector)
    return all(settings.get(name) in (None, "") for name in secrets)


def supports_sandbox(connector: Connector | None) -> bool:
    """True when sandbox mode can serve this connector's connections (nothing is imported)."""
    return bool(connector is not None and connector.sandbox is not None
                and connector.connection is not None)


def load_sandbox(connector: Connector) -> SandboxSpec | None:
    """The connector's sandbox spec, importing its module when given as ``"module:attribute"``.

    A reference that does not import or does not name a :class:`SandboxSpec` is a plugin error
    naming the connector, as a broken entry point is.
    """
    ref = connector.sandbox
    if ref is None or isinstance(ref, SandboxSpec):
        return ref
    module_name, sep, attribute = ref.partition(":")
    if not sep or not module_name or not attribute:
        raise PluginLoadError(f"connector '{connector.name}': sandbox reference {ref!r} is not "
                              "'module:attribute'")
    try:
        spec = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise PluginLoadError(f"connector '{connector.name}': cannot load its sandbox {ref!r}: "
                              f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(spec, SandboxSpec):
        raise PluginLoadError(f"connector '{connector.name}': {ref!r} is a "
                              f"{type(spec).__name__}, not a SandboxSpec")
    return spec


def sandbox_candidates(project: Project, registry: Registry, *, mode: bool | None) -> list[str]:
    """The connections to serve from emulators.

    ``mode`` is ``True`` for ``--sandbox`` (every connection whose connector has an emulator),
    ``False`` for ``--no-sandbox`` (none), ``None`` to decide: those without credentials.
    """
    if mode is False:
        return []
    names = []
    for name, config in sorted(project.connections.items()):
        connector = registry.connectors.get(config.connector)
        if not supports_sandbox(connector):
            continue
        assert connector is not None
        if mode or lacks_credentials(config, connector):
            names.append(name)
    if mode and not names:
        raise ConnectionConfigError("--sandbox: no connection of this project has a connector with "
                                    "an emulator")
    return names


def connection_triggers(project: Project, registry: Registry, connection: str
                        ) -> tuple[tuple[str, Mapping[str, Any]], ...]:
    """``(source name, params)`` of every flow trigger that reads from ``connection``."""
    config = project.connections[connection]
    same_kind = [n for n, c in project.connections.items() if c.connector == config.connector]
    found = []
    for flow in project.flows.values():
        trigger = flow.trigger
        if trigger is None or "." not in trigger.name:
            continue
        connector_name, _, source = trigger.name.partition(".")
        if connector_name != config.connector:
            continue
        used = trigger.connection or (same_kind[0] if len(same_kind) == 1 else None)
        if used == connection:
            found.append((source, dict(trigger.params)))
    return tuple(found)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: any free port); a clear error when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConnectionConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_host(host: str) -> str:
    """The host to put in URLs for a listening address (a wildcard is reached on loopback)."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def prepare(project: Project, registry: Registry, names: list[str], *, host: str, server_url: str,
            port_base: int | None = None) -> list[SandboxedConnection]:
    """Bind a port and build the emulator for each named connection (nothing is served yet)."""
    prepared: list[SandboxedConnection] = []
    try:
        for index, name in enumerate(names):
            config = project.connections[name]
            connector = registry.connectors[config.connector]
            sandbox = load_sandbox(connector)
            assert sandbox is not None
            sock = bind_socket(host, port_base + index if port_base else 0)
            port = sock.getsockname()[1]
            base_url = f"http://{url_host(host)}:{port}"
            demo = dict(sandbox.settings(base_url))
            settings = _settings(config, connector)
            settings.update(demo)
            settings = {k: v for k, v in settings.items() if v is not None}
            target = SandboxTarget(connection=name, server_url=server_url, settings=settings,
                                   triggers=connection_triggers(project, registry, name))
            options = dict(sandbox.emulator_options(target)) if sandbox.emulator_options else {}
            try:
                app = sandbox.emulator(**options)
            except Exception:
                sock.close()
                raise
            examples = dict(sandbox.examples(app)) if sandbox.examples else {}
            prepared.append(SandboxedConnection(name=name, connector=config.connector,
                                                base_url=base_url, sandbox_settings=demo, app=app,
                                                sock=sock, options=options,
                                                actions=sandbox.actions, examples=examples))
    except BaseException:
        for item in prepared:
            item.sock.close()
        raise
    return prepared


def describe(sandboxes: list[SandboxedConnection], server_url: str, *, store: str | None = None,
             project: str | None = None) -> dict[str, Any]:
    """``GET /sandbox``: where each emulator is and the demo credentials to reach it with; the
    sandbox's store and the served project's directory, so that the other ``splice`` commands run
    against the same sandbox (see :mod:`runtime.cli_sandbox`)."""
    return {
        "mode": "sandbox",
        "server": server_url,
        **({"store": store} if store is not None else {}),
        **({"project": project} if project is not None else {}),
        "emulators": {
            item.name: {
                "connection": item.name,
                "connector": item.connector,
                "baseUrl": item.base_url,
                "settings": {k: v for k, v in item.sandbox_settings.items() if v is not None},
                **({"webhookUrl": item.options["webhook_url"]}
                   if item.options.get("webhook_url") else {}),
            } for item in sandboxes},
    }


#: The banner's width: it fits a 100-column terminal.
BANNER_WIDTH = 100


def _wrapped(label: str, text: str, width: int) -> list[str]:
    """``  label  text`` wrapped to the banner's width, continued under the text."""
    import textwrap

    head = f"  {label.ljust(width)}  "
    return textwrap.wrap(text, BANNER_WIDTH, initial_indent=head,
                         subsequent_indent=" " * len(head), break_on_hyphens=False) or [head]


def _action_lines(sandboxes: list[SandboxedConnection]) -> list[str]:
    """The ``splice sandbox`` actions of the sandboxed connectors, each name once, in 100 columns."""
    usages: dict[str, str] = {}
    summaries: dict[str, list[str]] = {}
    for item in sandboxes:
        for action in item.actions:
            usages.setdefault(action.name, action.usage)
            if action.summary and action.summary not in summaries.setdefault(action.name, []):
                summaries[action.name].append(action.summary)
    if not usages:
        return []
    commands = {name: f"splice sandbox {name} {usage}".rstrip() for name, usage in usages.items()}
    column = max(len(command) for command in commands.values())
    lines = ["  Try it (in another terminal; in a checkout, splice is .venv/bin/splice):"]
    for name, command in sorted(commands.items()):
        summary = "; ".join(summaries.get(name, []))
        line = f"    {command.ljust(column)}  {summary}".rstrip()
        if len(line) > BANNER_WIDTH:
            lines += [f"    {command}", *_indented(summary, 8)]
        else:
            lines.append(line)
    return lines


def _indented(text: str, indent: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, BANNER_WIDTH, initial_indent=" " * indent,
                         subsequent_indent=" " * indent, break_on_hyphens=False)


#: ``guard(path)`` -> the header and a key a request to ``path`` must carry, or ``None`` when no
#: ``api-key`` policy guards it (built by the server from ``settings.server.policies``).
ApiKeyGuard = Callable[[str], tuple[str, str] | None]


def _guarded_api_lines(project: Project, sandboxes: list[SandboxedConnection], server_url: str,
                       guard: ApiKeyGuard | None) -> list[str]:
    """How to call each listener flow an ``api-key`` policy guards: its key (in sandbox mode, the
    environment's own, e.g. a dev key) and its path with the emulators' example values filled in."""
    import re

    if guard is None:
        return []
    examples: dict[str, str] = {}
    for item in sandboxes:
        examples.update({k: v for k, v in item.examples.items() if k not in examples})
    lines: list[str] = []
    for name, flow in sorted(project.flows.items()):
        trigger = flow.trigger
        path = trigger.params.get("path") if trigger is not None else None
        if trigger is None or trigger.name != "http.listener" or not isinstance(path, str):
            continue
        concrete = re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)\}",
                          lambda m: examples.get(m.group(1), m.group(0)), path)
        needed = guard(concrete)
        if needed is None:
            continue
        header, key = needed
        method = str(trigger.params.get("method") or "GET").upper()
        verb = "" if method == "GET" else f" -X {method}"
        lines += [f"    {name} ({method} {path}):",
                  f"      curl -s{verb} -H '{header}: {key}' \\",
                  f"        {server_url}{concrete}"]
    return ["  The API (listener flows behind an api-key policy):", *lines, ""] if lines else []


def render_banner(project: Project, sandboxes: list[SandboxedConnection], server_url: str,
                  store: str, real: list[str], guard: ApiKeyGuard | None = None) -> str:
    """What ``splice serve`` prints when it starts in sandbox mode: what runs where, how to try it
    (the ``splice sandbox`` actions, the API with its key and an example id), in 100 columns."""
    width = max([len(s.name) for s in sandboxes] + [10])
    rule = "=" * BANNER_WIDTH
    lines = ["", rule, "  SANDBOX MODE: the flows run against local emulators with a demo company",
             rule]
    for item in sandboxes:
        lines.append(f"  {item.name.ljust(width)}  {item.connector} emulator  {item.base_url}")
    for name in real:
        lines.append(f"  {name.ljust(width)}  real ({project.connections[name].connector})")
    lines += _wrapped("flows", ", ".join(sorted(project.flows)) or "none", width)
    lines += _wrapped("store", f"{store} (fresh for every sandbox start)", width)
    lines += _wrapped("server", f"{server_url} (GET /sandbox: emulator URLs and demo credentials)",
                      width)
    lines.append("")
    actions = _action_lines(sandboxes)
    lines += [*actions, ""] if actions else []
    lines += _guarded_api_lines(project, sandboxes, server_url, guard)
    lines += ["  Real systems: set the connections' credentials (README, 'Running against real",
              "  Salesforce and QuickBooks') and start again; no emulator starts. Ctrl-C stops.",
              rule, ""]
    return "\n".join(lines)


class _EmulatorServer:
    """An emulator's uvicorn server that leaves signal handling to ``splice serve`` itself."""

    def __new__(cls, app: Any) -> Any:
        import uvicorn

        class Server(uvicorn.Server):
            accepting = anyio.Event()

            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield  # SIGINT/SIGTERM stop `serve`, which then stops its emulators

            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets=sockets)
                self.accepting.set()

        config = uvicorn.Config(app, lifespan="on", log_level="warning", log_config=None,
                                timeout_graceful_shutdown=2)
        server = Server(config)
        server.accepting = anyio.Event()
        return server


async def serve_emulators(sandboxes: list[SandboxedConnection], stop: anyio.Event, *,
                          task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                          ) -> None:
    """Serve every emulator on its socket until ``stop`` is set, then shut them down in order.

    Reports started once every emulator accepts requests, so connections never race their start.
    """
    servers = [_EmulatorServer(item.app) for item in sandboxes]
    try:
        async with anyio.create_task_group() as tg:
            for server, item in zip(servers, sandboxes, strict=True):
                tg.start_soon(server.serve, [item.sock], name=f"emulator:{item.name}")
            with anyio.fail_after(15):
                for server in servers:
                    await server.accepting.wait()
            task_status.started()
            await stop.wait()
            for server in servers:
                server.should_exit = True
    finally:
        for item in sandboxes:
            item.sock.close()


def wipe_sqlite(path: str | Path) -> None:
    """Remove a SQLite database and its journal files: a sandbox starts from nothing, as its
    emulators do (stale watermarks or idempotency keys would refer to records that no longer exist)."""
    base = Path(path)
    for suffix in ("", "-wal", "-shm", "-journal"):
        candidate = base.with_name(base.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
