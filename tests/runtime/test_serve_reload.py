"""``splice serve --reload`` in process: valid edits are swapped in, invalid ones reported."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import connectors.http.plugin as http_plugin
from runtime.cli import main
from runtime.context import OperationContext, SourceContext
from runtime.hookspecs import hookimpl
from runtime.message import Event
from runtime.registry import Registry, load_registry
from runtime.server import ServeOptions, Serving, serve
from runtime.server.reload import ReloadReport, project_files
from runtime.service import load_project
from runtime.spec import Connector, OperationSpec, SourceSpec

pytestmark = pytest.mark.anyio

GREET = """
flow: greet
trigger:
  http.listener: { path: /greet, method: POST }
steps:
  - gate.hold: {}
  - transform: greet.jsonata
"""

TICK = """
flow: tick
trigger:
  gate.ticks: {}
steps:
  - gate.echo: {}
"""


@dataclass
class Changes:
    """Wakes who waits for a condition on what a test records, each time something is recorded."""

    _event: anyio.Event = field(default_factory=anyio.Event)

    def notify(self) -> None:
        self._event.set()
        self._event = anyio.Event()

    async def until(self, condition: Callable[[], bool], seconds: float = 15) -> None:
        with anyio.fail_after(seconds):
            while not condition():
                await self._event.wait()


@dataclass
class Gate:
    """``gate.hold`` holds a message whose payload says ``hold`` until the test opens the gate;
    ``gate.ticks`` is a polling trigger that records the position it loads and each one it saves."""

    entered: anyio.Event = field(default_factory=anyio.Event)
    opened: anyio.Event = field(default_factory=anyio.Event)
    positions: list[tuple[str, Any]] = field(default_factory=list)
    moved: Changes = field(default_factory=Changes)

    @hookimpl
    def splice_connectors(self) -> list[Connector]:
        async def hold(ctx: OperationContext, params: dict[str, Any]) -> Any:
            if isinstance(ctx.message.payload, dict) and ctx.message.payload.get("hold"):
                self.entered.set()
                await self.opened.wait()
            return ctx.message.payload

        async def echo(ctx: OperationContext, params: dict[str, Any]) -> Any:
            return ctx.message.payload

        async def ticks(ctx: SourceContext, params: dict[str, Any]) -> None:
            position = await ctx.load_state()
            self.positions.append(("load", position))
            self.moved.notify()
            count = position or 0
            while not ctx.stopping:
                await ctx.handle(Event(payload=count))
                count += 1
                await ctx.save_state(count)
                self.positions.append(("save", count))
                self.moved.notify()
                if not await ctx.sleep(0.02):
                    return

        return [Connector(
            name="gate",
            operations=(OperationSpec("hold", hold, needs_connection=False),
                        OperationSpec("echo", echo, needs_connection=False)),
            sources=(SourceSpec("ticks", ticks, needs_connection=False),))]


@dataclass
class Reports:
    """What the server said about each reload."""

    seen: list[ReloadReport] = field(default_factory=list)
    changes: Changes = field(default_factory=Changes)

    def add(self, report: ReloadReport) -> None:
        self.seen.append(report)
        self.changes.notify()

    async def wait_for(self, count: int) -> ReloadReport:
        """The ``count``-th report, once it came (15 s at most)."""
        await self.changes.until(lambda: len(self.seen) >= count)
        return self.seen[count - 1]


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def registry(gate: Gate) -> Registry:
    return load_registry([http_plugin, gate], load_entry_points=False)


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "splice.yaml").write_text("settings:\n  store: 'memory://'\n")
    (root / "greet.yaml").write_text(GREET)
    (root / "greet.jsonata").write_text('{"answer": "old"}\n')
    return root


@asynccontextmanager
async def reloading(project_dir: Path, registry: Registry,
                    reports: Reports) -> AsyncIterator[Serving]:
    """Serve ``project_dir`` in dev mode (polling every 50 ms) for the block."""
    project, _ = load_project(project_dir, registry=registry, environ={})
    stop = anyio.Event()
    options = ServeOptions(port=0, drain_timeout=10, reload=True, reload_interval=0.05,
                           on_reload=reports.add)
    async with anyio.create_task_group() as tg:
        started: Serving = await tg.start(serve, project, registry, options, stop)
        try:
            yield started
        finally:
            stop.set()


async def answer(url: str, payload: dict[str, Any] | None = None) -> Any:
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        response = await http.post("/greet", json=payload or {})
        assert response.status_code == 200, response.text
        return response.json()["answer"]


async def test_an_edited_transform_is_swapped_in_and_the_request_in_flight_keeps_the_old_one(
        project_dir: Path, registry: Registry, gate: Gate) -> None:
    """A saved transform answers the next request, on the same port; the request held in the old
    version during the swap completes there, and the new version's trigger runs."""
    reports = Reports()
    async with reloading(project_dir, registry, reports) as started:
        assert await answer(started.url) == "old"
        in_flight: list[Any] = []

        async def held() -> None:
            in_flight.append(await answer(started.url, {"hold": True}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(held)
            with anyio.fail_after(10):
                await gate.entered.wait()
            (project_dir / "greet.jsonata").write_text('{"answer": "new one"}\n')
            report = await reports.wait_for(1)
            assert report.ok and report.changed == ("greet",)
            assert report.lines() == ["reloaded: 1 flow changed (greet); connections reopened"]
            assert await answer(started.url) == "new one"
            assert in_flight == []
            gate.opened.set()
        assert in_flight == ["old"]
        async with httpx.AsyncClient(base_url=started.url, timeout=10) as http:
            ready = await http.get("/ready")
        assert ready.status_code == 200 and ready.json()["triggers"]["greet"]["state"] == "running"


async def test_an_invalid_edit_keeps_the_old_version_until_it_is_fixed(
        project_dir: Path, registry: Registry) -> None:
    """An unknown step is reported at file:line:col and the old version keeps answering; the
    fix is swapped in."""
    reports = Reports()
    async with reloading(project_dir, registry, reports) as started:
        (project_dir / "greet.yaml").write_text(GREET + "  - nosuch.step: {}\n")
        failed = await reports.wait_for(1)
        assert not failed.ok and failed.changed == ()
        assert failed.lines()[0] == ("reload failed (1 problem(s)); still serving the previous "
                                     "version")
        assert re.fullmatch(r".*greet\.yaml:8:5: .*nosuch\.step.*", failed.errors[0]), failed.errors
        assert await answer(started.url) == "old"

        (project_dir / "greet.yaml").write_text(GREET)
        (project_dir / "greet.jsonata").write_text('{"answer": "fixed"}\n')
        fixed = await reports.wait_for(2)
        assert fixed.ok and fixed.changed == ("greet",)
        assert await answer(started.url) == "fixed"


async def test_a_polling_trigger_resumes_from_its_stored_position(
        project_dir: Path, registry: Registry, gate: Gate) -> None:
    """The old trigger stops before the new one starts, and the new one loads the position the
    old one saved last (from the store both versions share)."""
    (project_dir / "tick.yaml").write_text(TICK)
    reports = Reports()

    def count(kind: str) -> int:
        return sum(1 for seen, _ in gate.positions if seen == kind)

    async with reloading(project_dir, registry, reports):
        await gate.moved.until(lambda: count("save") >= 3)
        (project_dir / "tick.yaml").write_text(TICK + "  - gate.echo: {}\n")
        report = await reports.wait_for(1)
        assert report.ok and report.changed == ("tick",)
        await gate.moved.until(lambda: count("load") == 2)
    second_load = [i for i, (kind, _) in enumerate(gate.positions) if kind == "load"][1]
    last_saved = gate.positions[second_load - 1]
    assert gate.positions[0] == ("load", None)
    assert last_saved[0] == "save" and last_saved[1] >= 3
    assert gate.positions[second_load] == ("load", last_saved[1])


def test_serve_help_lists_reload(capsys: pytest.CaptureFixture[str]) -> None:
    """``splice serve --help`` shows the dev mode option."""
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    assert "--reload" in capsys.readouterr().out


def test_what_is_watched(tmp_path: Path) -> None:
    """Flows, transforms, config and property files are watched; the store's hidden directory and
    what the project's tests write are not."""
    for name in ("flow.yaml", "t/x.jsonata", "config/dev.yaml", "config/dev.properties",
                 ".splice/store.db", ".splice/x.yaml", "tests/cassettes/a.yaml", "notes.txt"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    assert sorted(Path(p).relative_to(tmp_path).as_posix() for p in project_files(tmp_path)) == [
        "config/dev.properties", "config/dev.yaml", "flow.yaml", "t/x.jsonata"]
