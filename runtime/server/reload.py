"""Dev mode (``splice serve --reload``): the project is watched, and each valid edit is swapped in.

The project's files (flows, ``.jsonata`` transforms, config and property files) are polled for
changes (modification time and size, every :data:`POLL_INTERVAL` seconds: no dependency, and an
editor's save settles within a poll or two). A change loads and validates the project again:

* **invalid**: the errors are reported as ``file:line:col: ...`` and the previous version keeps
  serving, untouched;
* **valid**: the new version's connections are opened next to the old ones, then the old version's
  triggers stop the way a shutdown stops them (in-flight executions drain), then the new version's
  triggers start. Trigger positions live in the store, which both versions share, so a polling
  trigger resumes where the old one stopped. The HTTP server and its port stay up: until the new
  version's triggers run (a polling trigger may take seconds to drain), requests are answered by
  the old version's routes, then by the new version's; requests in flight finish on the version
  that took them, and an old version's connections close once the last of them has answered.

Connections are reopened on every reload (whether their settings changed or not): a connection is
cheap to open, and a reopened one never carries the previous version's settings. The store, the
sandbox's emulators and the runtime's shared resources (secrets, API budgets) are kept.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from dsl.errors import FlowErrors
from dsl.model import Project
from runtime import sandbox as sb
from runtime.redaction import inherit_secrets, use_secrets
from runtime.registry import Registry
from runtime.resources import RuntimeResources
from runtime.server.app import SpliceApp, create_app
from runtime.service import SpliceRuntime, load_project, open_runtime
from runtime.startup import run_startup_checks
from runtime.store.base import ObjectStore

__all__ = ["POLL_INTERVAL", "ReloadReport", "ReloadingApp", "project_files", "serve_reloading",
           "watch_project"]

logger = logging.getLogger("splice")

#: Seconds between two looks at the project's files.
POLL_INTERVAL = 0.5
#: What a project is made of: flow and config files, transforms, property files.
WATCHED_SUFFIXES = frozenset({".yaml", ".yml", ".jsonata", ".properties"})
#: Directories never looked into (besides hidden ones, such as ``.splice`` with its store): what
#: the project's tests write (cassettes, fixtures) is not part of what runs.
IGNORED_DIRS = frozenset({"__pycache__", "node_modules", "tests", "cassettes", "fixtures"})

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def project_files(root: Path) -> dict[str, tuple[int, int]]:
    """Each watched file under ``root`` with its modification time (ns) and size."""
    found: dict[str, tuple[int, int]] = {}
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in IGNORED_DIRS]
        for name in files:
            if os.path.splitext(name)[1] not in WATCHED_SUFFIXES:
                continue
            path = os.path.join(directory, name)
            try:
                stat = os.stat(path)
            except FileNotFoundError:  # removed while walking
                continue
            found[path] = (stat.st_mtime_ns, stat.st_size)
    return found


async def watch_project(root: Path, seen: dict[str, tuple[int, int]],
                        interval: float = POLL_INTERVAL) -> AsyncIterator[None]:
    """Yield once per change of the project's files from ``seen`` (:func:`project_files`), after
    they stopped changing for one poll (an editor that writes a file in several steps, or a few
    files at once, gives one reload)."""
    while True:
        await anyio.sleep(interval)
        now = await anyio.to_thread.run_sync(project_files, root)
        if now == seen:
            continue
        while True:  # settle
            seen = now
            await anyio.sleep(interval)
            now = await anyio.to_thread.run_sync(project_files, root)
            if now == seen:
                break
        yield


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """What one reload did: the flows it changed, or the errors that kept the previous version."""

    #: Flows added, removed or changed, by name.
    changed: tuple[str, ...] = ()
    #: Whether connections or settings changed too.
    config_changed: bool = False
    #: The store setting changed: the served store is kept (its trigger positions with it) until
    #: a restart.
    store_changed: bool = False
    #: ``file:line:col: message`` of each problem (or one line saying why the swap failed).
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    def lines(self) -> list[str]:
        """One line for a reload, then one per error when it failed."""
        if not self.ok:
            return [f"reload failed ({len(self.errors)} problem(s)); still serving the previous "
                    "version", *self.errors]
        count = len(self.changed)
        line = f"reloaded: {count} flow{'' if count == 1 else 's'} changed"
        if self.changed:
            line += f" ({', '.join(self.changed)})"
        if self.config_changed:
            line += "; configuration changed"
        if self.store_changed:
            line += "; the store setting applies after a restart"
        return [line + "; connections reopened"]


def _log_report(report: ReloadReport) -> None:
    lines = report.lines()
    if report.ok:
        logger.info("%s", lines[0])
        return
    for line in lines:
        logger.error("%s", line)


def _changes(old: Project, new: Project) -> ReloadReport:
    """The flows whose definition differs (a flow's ``repr`` shows its steps with their expressions'
    sources and positions, so it differs exactly when what runs differs)."""
    names = sorted(set(old.flows) | set(new.flows))
    changed = tuple(n for n in names if repr(old.flows.get(n)) != repr(new.flows.get(n)))
    config = (old.connections != new.connections or old.settings != new.settings
              or old.properties != new.properties)
    return ReloadReport(changed=changed, config_changed=config,
                        store_changed=old.settings.store_url != new.settings.store_url)


@dataclass(eq=False, slots=True)
class _Version:
    """One loaded version of the project: its runtime and app, and how far its life has come."""

    app: SpliceApp
    #: Set to let the version start its triggers (once the previous version's stopped).
    start: anyio.Event = field(default_factory=anyio.Event)
    started: anyio.Event = field(default_factory=anyio.Event)
    #: Set to stop its triggers, then close once its last request answered.
    retired: anyio.Event = field(default_factory=anyio.Event)
    triggers_stopped: anyio.Event = field(default_factory=anyio.Event)
    requests: int = 0
    idle: anyio.Event = field(default_factory=anyio.Event)

    @property
    def runtime(self) -> SpliceRuntime:
        return self.app.runtime

    def retire(self) -> None:
        self.retired.set()
        self.start.set()  # a version retired before it started never starts its triggers

    async def serve_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.requests += 1
        self.idle = anyio.Event() if self.idle.is_set() else self.idle
        try:
            await self.app(scope, receive, send)
        finally:
            self.requests -= 1
            if self.requests == 0:
                self.idle.set()

    async def wait_idle(self, seconds: float) -> None:
        if self.requests == 0:
            return
        with anyio.move_on_after(seconds) as scope:
            await self.idle.wait()
        if scope.cancelled_caught:
            logger.warning("previous version: %d request(s) still running after %.0fs; closing it",
                           self.requests, seconds)


class ReloadingApp:
    """The ASGI app of a reloading server: every request goes to the current version's app.

    Until a new version's triggers run, requests go to the previous version (whose triggers may
    be draining: its routes still answer). The lifespan starts the first version's triggers, and
    on shutdown stops the then current version's.
    """

    def __init__(self, first: _Version, on_shutdown: Callable[[], Awaitable[None]]) -> None:
        self.current = first
        self._on_shutdown = on_shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self.current.serve_request(scope, receive, send)

    def begin_shutdown(self) -> None:
        """The server stops accepting: the current version's requests in flight get until the drain
        deadline (:meth:`SpliceApp.begin_shutdown`)."""
        self.current.app.begin_shutdown()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        self.current.start.set()
        await self.current.started.wait()
        await send({"type": "lifespan.startup.complete"})
        while (await receive())["type"] != "lifespan.shutdown":
            pass
        await self._on_shutdown()
        await send({"type": "lifespan.shutdown.complete"})


@dataclass(slots=True)
class _Reloader:
    """Loads, opens, swaps and closes the versions of one served project."""

    registry: Registry
    tg: anyio.abc.TaskGroup
    store: ObjectStore
    connection_settings: Mapping[str, Mapping[str, Any]]
    sandbox: Mapping[str, Any] | None
    sandbox_mode: bool | None
    drain_timeout: float
    resources: RuntimeResources
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    closing: bool = False
    app: ReloadingApp | None = None

    async def open_version(self, project: Project) -> _Version | BaseException:
        """A new version with its connections open (its triggers wait for :attr:`_Version.start`),
        or what kept it from opening."""
        result: _Version | BaseException = await self.tg.start(self._run_version, project)
        return result

    async def _run_version(self, project: Project, *,
                           task_status: anyio.abc.TaskStatus[_Version | BaseException]) -> None:
        async with AsyncExitStack() as stack:
            try:
                runtime = await stack.enter_async_context(open_runtime(
                    project, self.registry, store=self.store, time_store=True,
                    connection_settings=self.connection_settings, resources=self.resources))
                await run_startup_checks(runtime)  # a version that fails its checks is not served
                app = create_app(runtime, drain_timeout=self.drain_timeout, sandbox=self.sandbox)
            except Exception as exc:  # reported by whoever asked for this version
                task_status.started(exc)
                return
            version = _Version(app)
            task_status.started(version)
            await version.start.wait()
            if not version.retired.is_set():
                await self._run_triggers(version)
            version.triggers_stopped.set()
            await version.wait_idle(self.drain_timeout)
            app.ready = False

    async def _run_triggers(self, version: _Version) -> None:
        """The version's triggers, from :attr:`_Version.start` until it is retired; then they stop
        as on shutdown (in-flight executions drain within the drain timeout). Unlike the app's
        own lifespan, the app stays ready meanwhile: its routes answer until the next version's
        triggers run."""
        runtime = version.runtime
        async with anyio.create_task_group() as tg:
            await tg.start(runtime.run_triggers)
            version.app.ready = True
            version.started.set()
            await version.retired.wait()
            if not await runtime.drain(self.drain_timeout):
                tg.cancel_scope.cancel()

    async def reload(self, root: Path, env: str) -> ReloadReport | None:
        """Load the project again and swap it in when valid (``None``: the server is closing)."""
        async with self.lock:
            if self.closing or self.app is None:
                return None
            old = self.app.current
            try:
                project, _ = load_project(root, env=env, registry=self.registry)
            except FlowErrors as errors:
                return ReloadReport(errors=tuple(e.format() for e in errors.errors))
            except Exception as exc:  # a property file that does not read, ...: the old version stays
                return ReloadReport(errors=(f"{type(exc).__name__}: {exc}",))
            missing = self._emulators_missing(project)
            if missing:
                return ReloadReport(errors=tuple(
                    f"connection '{n}' would run against its emulator, which this sandbox did not "
                    "start: restart splice serve" for n in missing))
            # Shielded: a version opened must be swapped in (or retired), whatever else happens.
            with anyio.CancelScope(shield=True):
                new = await self.open_version(project)
                if isinstance(new, BaseException):
                    return ReloadReport(errors=(f"{type(new).__name__}: {new}",))
                await self._swap(old, new)
            return _changes(old.runtime.project, project)

    async def _swap(self, old: _Version, new: _Version) -> None:
        """Stop ``old``'s triggers (in-flight executions drain), start ``new``'s, route to it."""
        assert self.app is not None
        old.retire()
        await old.triggers_stopped.wait()
        new.start.set()
        await new.started.wait()
        await _triggers_took_first_step(new.runtime)
        self.app.current = new

    def _emulators_missing(self, project: Project) -> list[str]:
        """Connections the new version would run against an emulator this serve did not start."""
        wanted = sb.sandbox_candidates(project, self.registry, mode=self.sandbox_mode)
        return [n for n in wanted if n not in self.connection_settings]

    async def shutdown(self) -> None:
        """The server stops: no reload any more; the current version's triggers stop and drain."""
        async with self.lock:
            self.closing = True
        if self.app is not None:
            logger.info("shutting down: stopping triggers, draining in-flight executions")
            current = self.app.current
            current.retire()
            await current.triggers_stopped.wait()


async def serve_reloading(
    project: Project, registry: Registry, *, store: ObjectStore,
    connection_settings: Mapping[str, Mapping[str, Any]], sandbox: Mapping[str, Any] | None,
    sandbox_mode: bool | None, drain_timeout: float, interval: float, report: Callable[[ReloadReport], None] | None,
    serve_app: Callable[[ReloadingApp, SpliceRuntime], Awaitable[None]],
) -> None:
    """Serve ``project`` with ``serve_app`` (the ASGI server, until the stop request), reloading it
    on each change of its files. Raises what keeps the first version from opening."""
    resources = RuntimeResources(secrets=inherit_secrets())
    with use_secrets(resources.secrets):  # what reloads decrypt is masked as the first load's
        async with anyio.create_task_group() as tg:
            reloader = _Reloader(registry, tg, store, connection_settings, sandbox, sandbox_mode,
                                 drain_timeout, resources)
            first = await reloader.open_version(project)
            if isinstance(first, BaseException):
                raise first
            app = reloader.app = ReloadingApp(first, reloader.shutdown)
            # Taken before the server answers: an edit made once it does is a change.
            files = project_files(Path(project.root))

            async def watch() -> None:
                async for _ in watch_project(Path(project.root), files, interval):
                    outcome = await reloader.reload(Path(project.root), project.env)
                    if outcome is not None:
                        (report or _log_report)(outcome)

            watching = anyio.CancelScope()
            tg.start_soon(_run_in, watching, watch)
            try:
                await serve_app(app, first.runtime)
            finally:
                watching.cancel()
                with anyio.CancelScope(shield=True):
                    async with reloader.lock:
                        reloader.closing = True
                app.current.retire()  # a server that failed to start never ran the lifespan


async def _triggers_took_first_step(runtime: SpliceRuntime) -> None:
    """Let the triggers' tasks run up to their first wait: a listener registers its route there, so
    requests sent to this version from now on find it."""
    for _ in range(100):
        if all(state.state != "starting" for state in runtime.triggers.all().values()):
            return
        await anyio.lowlevel.checkpoint()


async def _run_in(scope: anyio.CancelScope, task: Callable[[], Awaitable[None]]) -> None:
    with scope:
        await task()
