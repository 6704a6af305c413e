"""The schedule trigger fires on its slots, never overlaps itself, and stops on shutdown."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

from runtime.scheduler import next_fire

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
            await anyio.sleep(0.6)
            h.runtime.request_stop()
        fired = await h.runtime.store.count("schedule-fires")
    runs = len(recorder.of("slow"))
    assert runs >= 2
    assert recorder.max_running == 1  # slots that came while a run was going were skipped
    assert fired == runs
