"""``runtime.server.serve`` in process: up on a free port, answering, and draining when stopped."""

from __future__ import annotations

import ast
import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import connectors.http.plugin as http_plugin
from runtime.context import OperationContext
from runtime.errors import ConnectionConfigError
from runtime.hookspecs import hookimpl
from runtime.registry import Registry, load_registry
from runtime.server import ServeOptions, Serving, serve
from runtime.service import load_project
from runtime.spec import Connector, OperationSpec

pytestmark = pytest.mark.anyio

RELAY = """
flow: relay
trigger:
  http.listener: { path: /relay, method: POST }
steps:
  - gate.hold: {}
"""


@dataclass
class Gate:
    """An operation that holds each message until the test opens the gate."""

    entered: anyio.Event = field(default_factory=anyio.Event)
    opened: anyio.Event = field(default_factory=anyio.Event)
    passed: list[Any] = field(default_factory=list)

    @hookimpl
    def splice_connectors(self) -> list[Connector]:
        async def hold(ctx: OperationContext, params: dict[str, Any]) -> Any:
            self.entered.set()
            await self.opened.wait()
            self.passed.append(ctx.message.payload)
            return {"held": ctx.message.payload}

        return [Connector(name="gate", operations=(
            OperationSpec("hold", hold, needs_connection=False),))]


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "splice.yaml").write_text("settings:\n  store: 'memory://'\n")
    (root / "relay.yaml").write_text(RELAY)
    return root


@pytest.fixture
def registry(gate: Gate) -> Registry:
    return load_registry([http_plugin, gate], load_entry_points=False)


@asynccontextmanager
async def serving(project_dir: Path, registry: Registry, options: ServeOptions,
                  stop: anyio.Event) -> AsyncIterator[tuple[Serving, anyio.Event]]:
    """Serve in a task; yields what started and an event set once :func:`serve` returned."""
    project, _ = load_project(project_dir, registry=registry, environ={})
    returned = anyio.Event()

    async def run(*, task_status: anyio.abc.TaskStatus[Serving]) -> None:
        try:
            await serve(project, registry, options, stop, task_status=task_status)
        finally:
            returned.set()

    async with anyio.create_task_group() as tg:
        started: Serving = await tg.start(run)
        try:
            yield started, returned
        finally:
            stop.set()


async def test_stop_drains_the_request_in_flight(project_dir: Path, registry: Registry,
                                                 gate: Gate) -> None:
    """On a free port the server answers; a stop request closes the door to new connections, lets
    the request in flight finish with its result, drains the triggers, and then serve returns."""
    stop = anyio.Event()
    async with serving(project_dir, registry, ServeOptions(port=0, drain_timeout=10), stop) as (
            started, returned):
        assert started.url.startswith("http://127.0.0.1:") and not started.url.endswith(":0")
        assert started.sandbox is None and started.banner is None
        async with httpx.AsyncClient(base_url=started.url, timeout=10) as http:
            ready = (await http.get("/ready")).json()
            assert ready["status"] == "ready" and "reasons" not in ready and ready["store"]["ok"]
            assert ready["triggers"]["relay"]["trigger"] == "http.listener"
            assert ready["triggers"]["relay"]["state"] == "running"
            responses: list[httpx.Response] = []

            async def call() -> None:
                async with httpx.AsyncClient(base_url=started.url, timeout=20) as caller:
                    responses.append(await caller.post("/relay", json={"n": 1}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                with anyio.fail_after(10):
                    await gate.entered.wait()
                stop.set()

                async def refused() -> bool:
                    try:
                        async with httpx.AsyncClient(base_url=started.url, timeout=2) as fresh:
                            await fresh.get("/health")
                    except httpx.TransportError:
                        return True
                    return False

                for _ in range(200):  # polled (10 s at most): nothing tells when the listener closed
                    if await refused():
                        break
                    await anyio.sleep(0.05)
                else:
                    pytest.fail("the server kept accepting connections after the stop request")
                assert not returned.is_set() and gate.passed == []
                gate.opened.set()
            assert responses[0].status_code == 200
            assert responses[0].json() == {"held": {"n": 1}}
        with anyio.fail_after(15):
            await returned.wait()
    assert started.runtime.triggers_done.is_set()
    assert gate.passed == [{"n": 1}]


async def test_port_taken_is_a_configuration_error(project_dir: Path, registry: Registry) -> None:
    """A taken port fails before anything starts, with the runtime's own error (not a group)."""
    project, _ = load_project(project_dir, registry=registry, environ={})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConnectionConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            await serve(project, registry, ServeOptions(port=port))


async def test_sigterm_stops_a_server_that_handles_signals(project_dir: Path,
                                                           registry: Registry) -> None:
    """With ``handle_signals`` (what ``splice serve`` sets) SIGTERM is a stop request."""
    options = ServeOptions(port=0, drain_timeout=5, handle_signals=True)
    async with serving(project_dir, registry, options, anyio.Event()) as (started, returned):
        async with httpx.AsyncClient(base_url=started.url, timeout=5) as http:
            assert (await http.get("/health")).status_code == 200
        os.kill(os.getpid(), signal.SIGTERM)
        with anyio.fail_after(15):
            await returned.wait()
    assert started.runtime.triggers_done.is_set()


def test_the_runtime_does_not_import_its_server() -> None:
    """The dependency is one way: ``runtime.server`` uses the runtime; no other runtime module
    (the CLI aside, which calls serve) imports the server, not even for type checking."""
    root = Path(__file__).resolve().parents[2] / "runtime"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent)
        if relative.parts[1] == "server" or relative.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            if any(n == "runtime.server" or n.startswith("runtime.server.") for n in names):
                offenders.append(f"{relative}:{node.lineno}")
    assert offenders == []
