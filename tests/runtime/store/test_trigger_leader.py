"""Exclusive triggers (polling, streaming) run on one replica of those sharing a PostgreSQL store;
when it stops, another takes over."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

import dsl
from runtime import Connector, Event, SourceContext, SourceSpec, hookimpl, sources
from runtime.registry import load_registry
from runtime.service import open_runtime
from runtime.store import ObjectStore, open_store
from runtime.testing import wait_until
from tests.support.blips import terminate_lock_sessions

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

WATCH = """
flow: watch
trigger:
  test.ticks: {}
steps:
  - log: tick
"""


def count_trigger_lock_attempts(store: ObjectStore, attempts: list[ObjectStore]) -> None:
    """Record ``store`` in ``attempts`` whenever a trigger's lock is asked of it."""
    lock = store.lock

    def counted(name: str, **options: Any) -> Any:
        if name.startswith("trigger:"):
            attempts.append(store)
        return lock(name, **options)

    store.lock = counted  # type: ignore[method-assign]


async def test_one_replica_runs_an_exclusive_trigger_then_another_takes_over(
        postgres_url: str, pg_schema: str, registry: Any, write_project: Any, recorder: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "LEADER_RETRY", 0.05)
    project = dsl.load_project(write_project({"watch.yaml": WATCH}), vocabulary=registry, environ={})
    url = f"{postgres_url}?schema={pg_schema}"
    async with open_store(url) as one, open_store(url) as other, \
            open_runtime(project, registry, store=one) as first, \
            open_runtime(project, registry, store=other) as second, \
            anyio.create_task_group() as tg:
        attempts: list[ObjectStore] = []
        count_trigger_lock_attempts(one, attempts)
        count_trigger_lock_attempts(other, attempts)
        await tg.start(first.run_triggers)
        await tg.start(second.run_triggers)
        await wait_until(lambda: recorder.running == 1)
        # The standby has tried several times meanwhile (the leader asked once).
        await wait_until(lambda: len(attempts) >= 5, what="the standby to try to take over")
        assert len(recorder.of("ticks")) == 1
        leader, standby = ((first, second) if recorder.of("ticks")[0]["store"] is one
                           else (second, first))
        leader.request_stop()
        await wait_until(lambda: len(recorder.of("ticks")) == 2 and recorder.running == 1)
        assert recorder.of("ticks")[1]["store"] is standby.store
        assert recorder.max_running == 1
        standby.request_stop()


async def test_without_replicas_the_trigger_just_runs(start: Any, recorder: Any) -> None:
    """The embedded stores serve one process: no lock is taken, the trigger starts at once."""
    async with start({"watch.yaml": WATCH}) as h, anyio.create_task_group() as tg:
        await tg.start(h.runtime.run_triggers)
        await wait_until(lambda: recorder.running == 1)
        h.runtime.request_stop()


COUNT = """
flow: count
trigger:
  numbers.count: {}
steps:
  - log: "#[payload.n]"
"""


@dataclass
class Handled:
    """Which replica (by its store) handled which number, in order."""

    numbers: list[tuple[int, Any]] = field(default_factory=list)
    running: dict[int, int] = field(default_factory=dict)

    def by(self, store: Any) -> list[int]:
        return [n for n, seen in self.numbers if seen is store]


def numbers_connector(handled: Handled) -> Connector:
    """``numbers.count``: an exclusive trigger that counts on from the position it saved.

    The position is saved before each number is handled, so a replica that handles a number has
    always moved the shared position past it first: a number handled twice can only come from two
    replicas working at once, which is what the trigger's lock must prevent.
    """

    async def count(ctx: SourceContext, params: dict[str, Any]) -> None:
        key = id(ctx.store)
        handled.running[key] = handled.running.get(key, 0) + 1
        try:
            while not ctx.stopping:
                n = int(await ctx.load_state() or 0)
                await ctx.save_state(n + 1)
                await ctx.handle(Event(payload={"n": n}, id=f"n{n}"))
                handled.numbers.append((n, ctx.store))
                if not await ctx.sleep(0.005):
                    return
        finally:
            handled.running[key] -= 1

    return Connector(name="numbers", summary="Counts for the split-brain test",
                     sources=(SourceSpec("count", count, needs_connection=False, exclusive=True),))


class NumbersPlugin:
    __test__ = False

    def __init__(self, handled: Handled) -> None:
        self.handled = handled

    @hookimpl
    def splice_connectors(self) -> list[Connector]:
        return [numbers_connector(self.handled)]


async def test_a_holder_that_loses_its_lock_session_stops_and_no_event_is_handled_twice(
        postgres_url: str, pg_schema: str, write_project: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "LEADER_RETRY", 0.05)
    handled = Handled()
    registry = load_registry([NumbersPlugin(handled)], load_entry_points=False)
    project = dsl.load_project(write_project({"count.yaml": COUNT}, connections="connections: {}"),
                               vocabulary=registry, environ={})
    url = f"{postgres_url}?schema={pg_schema}"
    async with open_store(url) as one, open_store(url) as other, \
            open_runtime(project, registry, store=one) as first, \
            open_runtime(project, registry, store=other) as second, \
            anyio.create_task_group() as tg:
        await tg.start(first.run_triggers)
        await tg.start(second.run_triggers)
        await wait_until(lambda: len(handled.numbers) >= 20, what="the leader to count")
        leader = handled.numbers[0][1]
        standby = other if leader is one else one
        assert handled.by(standby) == []

        assert await terminate_lock_sessions(postgres_url, pg_schema) == 1
        # The old holder stops its trigger, and the standby takes over and counts on.
        await wait_until(lambda: handled.running.get(id(leader)) == 0,
                         what="the holder that lost its lock to stop its trigger")
        await wait_until(lambda: len(handled.by(standby)) >= 20, what="the standby to take over")

        numbers = [n for n, _ in handled.numbers]
        assert len(numbers) == len(set(numbers)), "a number was handled by both replicas"
        last_of_leader = max(handled.by(leader))
        assert min(handled.by(standby)) > last_of_leader
        first.request_stop()
        second.request_stop()
