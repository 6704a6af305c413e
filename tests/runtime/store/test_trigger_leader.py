"""Exclusive triggers (polling, streaming) run on one replica of those sharing a PostgreSQL store;
when it stops, another takes over."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import dsl
from runtime import sources
from runtime.service import open_runtime
from runtime.store import open_store

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

WATCH = """
flow: watch
trigger:
  test.ticks: {}
steps:
  - log: tick
"""


async def _until(condition: Callable[[], bool]) -> None:
    """Wait (at most 10 s) until ``condition()`` holds."""
    for _ in range(1000):
        if condition():
            return
        await anyio.sleep(0.01)
    raise AssertionError("condition never held")


async def test_one_replica_runs_an_exclusive_trigger_then_another_takes_over(
        postgres_url: str, registry: Any, write_project: Any, recorder: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncpg

    monkeypatch.setattr(sources, "LEADER_RETRY", 0.05)
    project = dsl.load_project(write_project({"watch.yaml": WATCH}), vocabulary=registry, environ={})
    schema = f"splice_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = f"{postgres_url}?schema={schema}"
    try:
        async with open_store(url) as one, open_store(url) as other, \
                open_runtime(project, registry, store=one) as first, \
                open_runtime(project, registry, store=other) as second, \
                anyio.create_task_group() as tg:
            await tg.start(first.run_triggers)
            await tg.start(second.run_triggers)
            await _until(lambda: recorder.running == 1)
            await anyio.sleep(0.3)  # the standby has tried several times meanwhile
            assert len(recorder.of("ticks")) == 1
            leader, standby = ((first, second) if recorder.of("ticks")[0]["store"] is one
                               else (second, first))
            leader.request_stop()
            await _until(lambda: len(recorder.of("ticks")) == 2 and recorder.running == 1)
            assert recorder.of("ticks")[1]["store"] is standby.store
            assert recorder.max_running == 1
            standby.request_stop()
    finally:
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()


async def test_without_replicas_the_trigger_just_runs(start: Any, recorder: Any) -> None:
    """The embedded stores serve one process: no lock is taken, the trigger starts at once."""
    async with start({"watch.yaml": WATCH}) as h, anyio.create_task_group() as tg:
        await tg.start(h.runtime.run_triggers)
        await _until(lambda: recorder.running == 1)
        h.runtime.request_stop()
