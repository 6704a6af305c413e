"""``splice serve`` as one function: a loaded project served over HTTP until it is asked to stop.

:func:`serve` does everything the command does (sandbox emulators, the listening socket, the store,
the runtime, the ASGI server, the drain on shutdown) and nothing a terminal needs, so tests run it
in process: ``await tg.start(serve, project, registry, options, stop)`` returns once the server
answers (a :class:`Serving`), setting ``stop`` shuts it down the way SIGTERM does. :func:`run` is the
blocking form the CLI calls: it adds the event loop choice (uvloop), signals and the sandbox banner.

Shutdown order: the server stops accepting, in-flight requests finish, the app's lifespan stops the
triggers and drains in-flight executions (``drain_timeout``), then the connections, the emulators
and the store close. SIGINT or SIGTERM asks for that once; a second SIGINT does not wait for open
HTTP connections nor for the drain (uvicorn's force exit).

With ``ServeOptions(reload=True)`` (``splice serve --reload``) the server serves each valid version
of the project in turn as its files change (:mod:`runtime.server.reload`).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio
import uvicorn

from dsl.model import Project
from runtime import sandbox as sb
from runtime.registry import Registry
from runtime.server.admin import admin_key, describe_access, with_admin_line
from runtime.server.app import create_app
from runtime.server.console import ConsoleAuth, with_console_line
from runtime.server.policies import ApiKeyPolicy, build_policies
from runtime.server.reload import ReloadingApp, ReloadReport, serve_reloading
from runtime.service import SpliceRuntime, open_runtime
from runtime.startup import run_startup_checks
from runtime.store import open_store
from runtime.store.base import ObjectStore

__all__ = ["ServeOptions", "Serving", "api_key_guard", "run", "serve"]

logger = logging.getLogger("splice")

#: Seconds after the drain deadline before uvicorn cancels requests still open: the app's own 503
#: answers to the requests it stopped at the deadline go out first.
ANSWER_GRACE = 2.0


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """How to serve a project: what ``splice serve``'s options say."""

    host: str = "127.0.0.1"
    #: 0: any free port (``Serving.url`` tells which).
    port: int = 8080
    #: Seconds in-flight requests, then in-flight executions, get to finish on shutdown.
    drain_timeout: float = 30.0
    #: ``True``: every connection whose connector has a sandbox runs against its emulator;
    #: ``False``: none does; ``None``: those without credentials (see :mod:`runtime.sandbox`).
    sandbox: bool | None = None
    #: Emulators listen on this port and the next ones (default: free ports).
    sandbox_port_base: int | None = None
    #: The SQLite store of a sandbox run, emptied at start.
    sandbox_store: Path = field(default_factory=lambda: sb.DEFAULT_STORE)
    #: SIGINT and SIGTERM stop the server (main thread only: the CLI sets it, tests do not).
    handle_signals: bool = False
    #: :func:`run` uses uvloop when installed (the ``fast`` extra).
    uvloop: bool = True
    #: Dev mode: watch the project's files and swap in each valid edit (:mod:`runtime.server.reload`).
    reload: bool = False
    #: Seconds between two looks at the project's files in dev mode.
    reload_interval: float = 0.5
    #: Told what each reload did (default: one log line, or the errors as ``file:line:col``).
    on_reload: Callable[[ReloadReport], None] | None = None


@dataclass(frozen=True, slots=True)
class Serving:
    """What a started server tells its caller."""

    #: Where the server answers, e.g. ``http://127.0.0.1:8080``.
    url: str
    #: The runtime serving (in dev mode: the first version's, replaced by each reload).
    runtime: SpliceRuntime
    #: What ``GET /sandbox`` answers in sandbox mode (emulator URLs, demo credentials), else None.
    sandbox: Mapping[str, Any] | None = None
    #: What to show a person in sandbox mode: what runs where and how to try it; else None.
    banner: str | None = None


class _Server(uvicorn.Server):
    """uvicorn's server, told to stop through :attr:`should_exit` rather than by signals of its own
    (signals are :func:`serve`'s business, and only when asked to); it calls ``on_started`` once it
    accepts requests (the app's lifespan, which starts the triggers, has run by then)."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self.on_started()


@dataclass(slots=True)
class _Shutdown:
    """The stop request, and the server it applies to once there is one."""

    stop: anyio.Event
    server: _Server | None = None

    def request(self, signum: int) -> None:
        """A signal arrived: the first one stops; SIGINT after that forces the exit (as uvicorn)."""
        if self.stop.is_set() and signum == signal.SIGINT and self.server is not None:
            self.server.force_exit = True
        self.stop.set()

    async def watch_signals(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
                            ) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                self.request(signum)

    async def serve(self, server: _Server, listener: socket.socket,
                    on_stop: Callable[[], None] | None = None) -> None:
        """Run ``server`` on ``listener`` until the stop request (then it shuts down in order);
        ``on_stop`` is told first (the app starts its drain deadline)."""
        self.server = server

        async def exit_when_stopped() -> None:
            await self.stop.wait()
            if on_stop is not None:
                on_stop()
            server.should_exit = True

        async with anyio.create_task_group() as tg:
            tg.start_soon(exit_when_stopped)
            await server.serve(sockets=[listener])
            tg.cancel_scope.cancel()


async def serve(project: Project, registry: Registry, options: ServeOptions | None = None,
                stop: anyio.Event | None = None, *,
                task_status: anyio.abc.TaskStatus[Serving] = anyio.TASK_STATUS_IGNORED) -> None:
    """Serve every flow of ``project`` until ``stop`` is set (or a signal, with ``handle_signals``).

    Reports started (a :class:`Serving`) once the triggers run and the server accepts requests.
    Returns when everything is closed. Problems before the start (port taken, ``--sandbox``
    without emulators) raise :class:`runtime.errors.ConnectionConfigError`; a connector's sandbox
    that does not load raises :class:`runtime.plugins.PluginLoadError`; a failed start-up check
    (``settings.startup-checks``, :mod:`runtime.startup`) raises
    :class:`runtime.startup.StartupCheckError` before the server listens.
    """
    with _one_error():
        await _serve(project, registry, options or ServeOptions(),
                     _Shutdown(stop if stop is not None else anyio.Event()), task_status)
    logger.info("stopped")


@dataclass(slots=True)
class _Sandbox:
    """The sandbox part of a serve: emulated connections with their store, description and banner."""

    connections: list[sb.SandboxedConnection] = field(default_factory=list)
    store: ObjectStore | None = None
    info: Mapping[str, Any] | None = None
    banner: str | None = None


def _prepare_sandbox(project: Project, registry: Registry, names: list[str], options: ServeOptions,
                     server_url: str) -> _Sandbox:
    """Bind and build the emulators of the connections ``names``, and empty the sandbox's store."""
    if not names:
        return _Sandbox()
    connections = sb.prepare(project, registry, names, host=options.host, server_url=server_url,
                             port_base=options.sandbox_port_base)
    try:
        path = Path(options.sandbox_store)
        sb.make_store_directory(path)
        sb.wipe_sqlite(path)
        store_url = sb.store_url(path)
        real = [n for n in sorted(project.connections) if n not in names]
        admin = describe_access(admin_key(project.settings.server), sandbox=True, host=options.host)
        info = sb.describe(connections, server_url, store=sb.store_url(path.resolve()),
                           project=str(Path(project.root).resolve()))
        banner = sb.render_banner(project, connections, server_url, store_url, real,
                                  guard=api_key_guard(project))
        console = ConsoleAuth(project.settings.server, sandbox=True).describe()
        banner = with_console_line(with_admin_line(banner, server_url, admin), server_url, console,
                                   sb.BANNER_WIDTH)
        return _Sandbox(connections, store=open_store(store_url),
                        info={**info, "admin": admin, "console": console}, banner=banner)
    except BaseException:
        for item in connections:
            item.sock.close()
        raise


def api_key_guard(project: Project) -> sb.ApiKeyGuard:
    """For the sandbox banner: the header and first key of the ``api-key`` policy guarding a path."""
    policies = [p for p in build_policies(project.settings.server.get("policies"))
                if isinstance(p, ApiKeyPolicy) and p.keys]

    def guard(path: str) -> tuple[str, str] | None:
        policy = next((p for p in policies if p.applies(path)), None)
        return None if policy is None else (policy.header, str(policy.keys[0]))

    return guard


async def _serve(project: Project, registry: Registry, options: ServeOptions, shutdown: _Shutdown,
                 task_status: anyio.abc.TaskStatus[Serving]) -> None:
    names = sb.sandbox_candidates(project, registry, mode=options.sandbox)
    listener = sb.bind_socket(options.host, options.port)
    server_url = f"http://{sb.url_host(options.host)}:{listener.getsockname()[1]}"
    try:
        sandbox = _prepare_sandbox(project, registry, names, options, server_url)
    except BaseException:
        listener.close()
        raise
    try:
        async with anyio.create_task_group() as signals:
            if options.handle_signals:
                await signals.start(shutdown.watch_signals)
            emulators_stop = anyio.Event()
            async with anyio.create_task_group() as emulators:
                if sandbox.connections:
                    await emulators.start(sb.serve_emulators, sandbox.connections, emulators_stop)
                overrides = {s.name: s.overrides for s in sandbox.connections}
                try:
                    if options.reload:
                        await _serve_reloading(project, registry, sandbox, overrides, listener,
                                               options, shutdown, server_url, task_status)
                    else:
                        async with open_runtime(project, registry, store=sandbox.store, time_store=True,
                                                connection_settings=overrides) as runtime:
                            await run_startup_checks(runtime)
                            await _serve_runtime(runtime, listener, options, shutdown, Serving(
                                url=server_url, runtime=runtime, sandbox=sandbox.info,
                                banner=sandbox.banner), task_status)
                finally:
                    emulators_stop.set()
            signals.cancel_scope.cancel()
    finally:
        listener.close()
        if sandbox.store is not None:
            await sandbox.store.aclose()


async def _serve_runtime(runtime: SpliceRuntime, listener: socket.socket, options: ServeOptions,
                         shutdown: _Shutdown, serving: Serving,
                         task_status: anyio.abc.TaskStatus[Serving]) -> None:
    """The ASGI server on ``listener`` for an open runtime, until the stop request."""
    app = create_app(runtime, drain_timeout=options.drain_timeout, sandbox=serving.sandbox)
    await _serve_app(app, runtime, listener, options, shutdown, serving, task_status)


async def _serve_app(app: Any, runtime: SpliceRuntime, listener: socket.socket,
                     options: ServeOptions, shutdown: _Shutdown, serving: Serving,
                     task_status: anyio.abc.TaskStatus[Serving]) -> None:
    """The ASGI server running ``app`` on ``listener``, until the stop request."""
    # The app answers its requests in flight at the drain deadline itself (a 503 in JSON); uvicorn
    # cancels what is left a little later (its answer would be a plain 500).
    config = uvicorn.Config(app, lifespan="on", log_level="warning", log_config=None,
                            timeout_graceful_shutdown=_seconds(options.drain_timeout + ANSWER_GRACE))
    server = _Server(config, on_started=lambda: task_status.started(serving))
    flows = ", ".join(sorted(runtime.project.flows)) or "no flows"
    logger.info("serving %s on %s (%s)%s%s", runtime.project.root, serving.url, flows,
                " in sandbox mode" if serving.sandbox is not None else "",
                ", reloading on changes" if options.reload else "")
    await shutdown.serve(server, listener, getattr(app, "begin_shutdown", None))


async def _serve_reloading(project: Project, registry: Registry, sandbox: _Sandbox,
                           overrides: Mapping[str, Mapping[str, Any]], listener: socket.socket,
                           options: ServeOptions, shutdown: _Shutdown, server_url: str,
                           task_status: anyio.abc.TaskStatus[Serving]) -> None:
    """Dev mode: the server on ``listener`` serves each valid version of the project in turn.

    The store is opened here, once, so every version shares it (and the triggers' positions in it).
    """
    store = sandbox.store if sandbox.store is not None else open_store(project.settings.store_url)
    try:
        async def serve_app(app: ReloadingApp, runtime: SpliceRuntime) -> None:
            await _serve_app(app, runtime, listener, options, shutdown, Serving(
                url=server_url, runtime=runtime, sandbox=sandbox.info, banner=sandbox.banner),
                task_status)

        await serve_reloading(project, registry, store=store, connection_settings=overrides,
                              sandbox=sandbox.info, sandbox_mode=options.sandbox,
                              drain_timeout=options.drain_timeout,
                              interval=options.reload_interval, report=options.on_reload,
                              serve_app=serve_app)
    finally:
        if store is not sandbox.store:
            await store.aclose()


@contextlib.contextmanager
def _one_error() -> Iterator[None]:
    """Task groups wrap what fails in them in exception groups; a single failure (the usual case:
    a port taken, a connection that does not open) is raised as itself, so callers and the CLI
    see a ``ConnectionConfigError`` rather than a group holding one."""
    try:
        yield
    except BaseExceptionGroup as group:
        error: BaseException = group
        while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
            error = error.exceptions[0]
        if error is group:
            raise
        raise error from None


def _seconds(value: float) -> Any:
    """uvicorn types its graceful shutdown timeout ``int`` and waits with ``asyncio.wait_for``,
    which takes a float: pass the drain timeout as given, as ``splice serve`` always did."""
    return value


def run(project: Project, registry: Registry, options: ServeOptions | None = None) -> None:
    """Serve until SIGINT or SIGTERM: ``splice serve`` itself.

    Signals stop the server (whatever ``options.handle_signals`` says), the sandbox banner is
    printed once it is up, and the event loop is uvloop's when installed and ``options.uvloop``.
    """
    options = replace(options or ServeOptions(), handle_signals=True)

    async def main() -> None:
        with _one_error():
            async with anyio.create_task_group() as tg:
                serving: Serving = await tg.start(serve, project, registry, options)
                if serving.banner is not None:
                    print(serving.banner, flush=True)

    anyio.run(main, backend_options=_loop_options(options.uvloop))


def _loop_options(wanted: bool) -> dict[str, Any]:
    """uvloop when installed (the ``fast`` extra) and wanted: a faster event loop for the server."""
    if not wanted:
        return {}
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}
