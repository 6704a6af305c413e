"""Exclusive triggers (polling, streaming) run on one replica of those sharing a PostgreSQL store;
when it stops, another takes over."""

from __future__ import annotations

import os
import uuid
from typing import Any

import anyio
import pytest

import dsl
from runtime import sources
from runtime.service import open_runtime
from runtime.store import ObjectStore, open_store
from runtime.testing import wait_until

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
        await wait_until(lambda: recorder.running == 1)
        h.runtime.request_stop()
