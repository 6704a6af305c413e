"""The schedule trigger fires on its slots, never overlaps itself, stops on shutdown, and with
``catch-up`` runs the most recent missed slot once at start."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

import runtime.scheduler as scheduler
from runtime.message import Event
from runtime.scheduler import last_fire, next_fire, run_schedule
from runtime.store import ObjectStore
from runtime.testing import RecordingSourceContext, wait_until

SLOW = """
flow: tick
trigger:
  schedule: { every: 50ms }
max-concurrency: 4
steps:
  - test.slow: { seconds: 0.12 }
"""


def test_every_slots_are_aligned_so_replicas_agree() -> None:
    assert next_fire({"every": "5m"}, 1000.0) == 1200.0
    assert next_fire({"every": 60}, 1200.0) == 1260.0


def test_cron_in_a_timezone() -> None:
    after = datetime(2026, 11, 24, 12, 0, tzinfo=UTC).timestamp()
    fire = next_fire({"cron": "0 2 * * *", "timezone": "Europe/Berlin"}, after)
    assert datetime.fromtimestamp(fire, tz=UTC) == datetime(2026, 11, 25, 1, 0, tzinfo=UTC)


def test_unknown_timezone_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown timezone 'Mars/Base'"):
        next_fire({"cron": "* * * * *", "timezone": "Mars/Base"}, 0.0)


@pytest.mark.anyio
async def test_schedule_never_overlaps_itself(start: Any, recorder: Any) -> None:
    async with start({"tick.yaml": SLOW}) as h:
        async with anyio.create_task_group() as tg:
            await tg.start(h.runtime.run_triggers)
            # Three runs of 0.12 s: slots came every 50 ms while each of them went on.
            await wait_until(lambda: len(recorder.of("slow")) >= 3, what="three runs")
            h.runtime.request_stop()
        fired = await h.runtime.store.count("schedule-fires")
    runs = len(recorder.of("slow"))
    assert runs >= 2
    assert recorder.max_running == 1  # slots that came while a run was going were skipped
    assert fired == runs


def test_last_fire_is_the_most_recent_due_slot() -> None:
    cron = {"cron": "0 2 * * *", "timezone": "UTC"}
    on_slot = datetime(2026, 11, 25, 2, 0, tzinfo=UTC).timestamp()
    assert last_fire(cron, on_slot) == on_slot
    assert last_fire(cron, on_slot + 0.5) == on_slot
    assert last_fire(cron, on_slot - 0.1) == on_slot - 86400
    berlin = {"cron": "0 2 * * *", "timezone": "Europe/Berlin"}
    after = datetime(2026, 11, 25, 1, 30, tzinfo=UTC).timestamp()  # 02:30 in Berlin
    assert datetime.fromtimestamp(last_fire(berlin, after), tz=UTC) == datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    assert last_fire({"every": 300}, 1000.0) == 900.0 and last_fire({"every": 300}, 1200.0) == 1200.0


# ------------------------------------------------------------------------------------ catch-up

NIGHTLY = {"cron": "0 2 * * *", "timezone": "UTC"}


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> float:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC).timestamp()


class Clock:
    """The scheduler's clock (``time.time``), moved by the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(scheduler, "time", clock)
    return clock


class Start(RecordingSourceContext):
    """One start of the ``schedule`` trigger of flow ``nightly`` on ``store``, from ``begin`` to
    ``end`` on the test's clock: each sleep moves the clock, the first one past ``end`` stops the
    trigger (as shutdown would). Events are recorded, not run."""

    def __init__(self, store: ObjectStore, clock: Clock, begin: float, end: float | None = None) -> None:
        super().__init__(store, flow="nightly")
        self.clock, self.end = clock, begin if end is None else end
        clock.now = begin

    async def run(self, params: dict[str, Any]) -> list[Event]:
        await run_schedule(self, params)
        return self.events

    async def sleep(self, seconds: float) -> bool:
        if self.clock.now + seconds > self.end:
            self.stop()
            return False
        self.clock.now += seconds
        return True


def slots(events: list[Event]) -> list[tuple[str, bool]]:
    return [(e.payload["scheduledAt"], e.payload.get("catchUp", False)) for e in events]


@pytest.mark.anyio
async def test_catch_up_runs_the_missed_slot_once_at_start(store: ObjectStore, clock: Clock) -> None:
    """The store never ran the schedule: the start at 09:00 runs 02:00 at once, marked as a catch-up;
    a second start on the same store does not run it again."""
    params = {**NIGHTLY, "catch-up": True}
    events = await Start(store, clock, at(25, 9)).run(params)
    assert slots(events) == [("2026-11-25T02:00:00+00:00", True)]
    payload = events[0].payload
    assert payload["firedAt"] and events[0].id == "nightly@2026-11-25T02:00:00+00:00"
    assert events[0].attributes == {"trigger": "schedule"}
    assert await Start(store, clock, at(25, 10)).run(params) == []
    assert await store.count(scheduler.FIRES_NAMESPACE) == 1


@pytest.mark.anyio
async def test_catch_up_leaves_a_slot_that_ran(store: ObjectStore, clock: Clock) -> None:
    """Up at 02:00 (the slot ran on its own), down, started again at 09:00: nothing to catch up."""
    params = {**NIGHTLY, "catch-up": True}
    events = await Start(store, clock, at(25, 1, 59, 50), at(25, 2, 0, 30)).run(params)
    assert slots(events) == [("2026-11-24T02:00:00+00:00", True), ("2026-11-25T02:00:00+00:00", False)]
    assert await Start(store, clock, at(25, 9)).run(params) == []


@pytest.mark.anyio
async def test_catch_up_runs_only_the_most_recent_missed_slot(store: ObjectStore, clock: Clock) -> None:
    """Down from the 20th to the 25th: one run at start (the 25th's), not one per missed night; the
    next slot then comes on the cron as usual."""
    params = {**NIGHTLY, "catch-up": True}
    await Start(store, clock, at(20, 1, 59, 50), at(20, 2, 0, 30)).run(params)
    events = await Start(store, clock, at(25, 9), at(26, 2, 0, 30)).run(params)
    assert slots(events) == [("2026-11-25T02:00:00+00:00", True), ("2026-11-26T02:00:00+00:00", False)]


@pytest.mark.anyio
async def test_replicas_starting_together_catch_up_once(store: ObjectStore, clock: Clock) -> None:
    """Two replicas on one store start at the same time: the missed slot runs on one of them."""
    params = {**NIGHTLY, "catch-up": True}
    replicas = [Start(store, clock, at(25, 9)) for _ in range(2)]
    async with anyio.create_task_group() as tg:
        for replica in replicas:
            tg.start_soon(replica.run, params)
    assert sorted(slots(replicas[0].events + replicas[1].events)) == [("2026-11-25T02:00:00+00:00", True)]


@pytest.mark.anyio
async def test_without_catch_up_a_start_runs_nothing(store: ObjectStore, clock: Clock) -> None:
    """The option off (or absent): a start after a missed slot waits for the next one, as before,
    and fires carry no catchUp."""
    assert await Start(store, clock, at(25, 9)).run({**NIGHTLY, "catch-up": False}) == []
    events = await Start(store, clock, at(25, 9), at(26, 2, 0, 30)).run(NIGHTLY)
    assert slots(events) == [("2026-11-26T02:00:00+00:00", False)]
    assert set(events[0].payload) == {"scheduledAt", "firedAt"}


@pytest.mark.anyio
async def test_catch_up_remembers_a_slot_until_the_next_is_due(store: ObjectStore, clock: Clock,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A monthly slot is remembered for longer than the month (else every start after a week would
    run it again); without catch-up fires are remembered for a week, as before."""
    ttls: list[float] = []
    claim = store.put_if_absent

    async def spy(namespace: str, key: str, value: Any, *, ttl: float | None = None) -> bool:
        ttls.append(float(ttl or 0))
        return await claim(namespace, key, value, ttl=ttl)

    monkeypatch.setattr(store, "put_if_absent", spy)
    monthly = {"cron": "0 2 1 * *", "timezone": "UTC"}
    await Start(store, clock, at(20, 9)).run({**monthly, "catch-up": True})
    assert ttls and ttls[0] >= 31 * 86400
    ttls.clear()
    await Start(store, clock, at(30, 23, 59, 50), at(30, 23, 59, 50) + 7300).run(monthly)
    assert ttls == [7 * 86400]


@pytest.mark.anyio
async def test_a_missed_slot_reaches_the_flow_at_start(start: Any, recorder: Any) -> None:
    """Through the runtime: the flow runs once right after start with the missed slot's payload."""
    flow = """
    flow: nightly
    trigger:
      schedule: { cron: "0 2 * * *", timezone: UTC, catch-up: true }
    steps:
      - test.echo: { value: "#[payload]" }
    """
    async with start({"nightly.yaml": flow}) as h:
        async with anyio.create_task_group() as tg:
            await tg.start(h.runtime.run_triggers)
            await wait_until(lambda: recorder.of("echo"), what="the missed slot to run at start")
            h.runtime.request_stop()
        assert await h.runtime.store.count("schedule-fires") == 1
    (params,) = recorder.of("echo")
    expected = datetime.fromtimestamp(last_fire({"cron": "0 2 * * *"}, time.time()), tz=UTC)
    assert params["value"]["catchUp"] is True
    assert params["value"]["scheduledAt"] == expected.isoformat()
