"""Job runs that must not overlap themselves, in one process or across replicas.

A scheduled or batch job (``nightly-reconcile``) calls :meth:`JobState.try_start`; ``None`` means a
live run exists somewhere and this fire is skipped. The run's claim is a store entry with a TTL of
``lease`` seconds: :meth:`~JobState.heartbeat` and :meth:`~JobState.update` push it forward while the
job works, and a run whose process died simply expires, so the next fire can start. Every write to
the claim is a ``compare_and_set`` against what the run last wrote, so a run that lost its claim
(its lease ran out and another run started) finds out instead of overwriting the newcomer.

:meth:`~JobState.finish` records the run's outcome; :meth:`~JobState.last` reads it back (for
``splice serve`` status pages, and for jobs that continue where the last one stopped).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.store.base import ObjectStore
from runtime.store.ids import compare_and_delete, new_id, utc_iso

__all__ = ["JobRun", "JobState"]


@dataclass(slots=True)
class JobRun:
    """A run that holds its job's claim. ``record`` is the claim as this run last wrote it."""

    job: str
    run_id: str
    started_at: str
    lease: float
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def progress(self) -> dict[str, Any]:
        """Progress as last saved by this run."""
        return dict(self.record.get("progress") or {})


class JobState:
    """Claims, progress and outcomes of jobs, in the ``jobs`` and ``job-runs`` namespaces."""

    def __init__(self, store: ObjectStore, *, namespace: str = "jobs",
                 history_namespace: str = "job-runs",
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.namespace = namespace
        self.history_namespace = history_namespace
        self.clock = clock

    async def try_start(self, job: str, *, lease: float = 300.0) -> JobRun | None:
        """Claim ``job`` for a new run, or ``None`` while another run of it is alive."""
        now = self.clock()
        run_id, started_at = new_id(now), utc_iso(now)
        record: dict[str, Any] = {"run_id": run_id, "started_at": started_at,
                                  "heartbeat_at": started_at, "lease": lease, "progress": {}}
        if not await self.store.put_if_absent(self.namespace, job, record, ttl=lease):
            return None
        return JobRun(job=job, run_id=run_id, started_at=started_at, lease=lease, record=record)

    async def heartbeat(self, run: JobRun) -> bool:
        """Extend the run's lease; ``False`` if the run has lost its claim and should stop."""
        return await self._rewrite(run, {})

    async def update(self, run: JobRun, progress: dict[str, Any]) -> bool:
        """Merge ``progress`` into the run's saved progress and extend its lease."""
        return await self._rewrite(run, progress)

    async def current(self, job: str) -> dict[str, Any] | None:
        """The live run of ``job`` (run id, start, last heartbeat, progress), if any."""
        record = await self.store.get(self.namespace, job)
        return record if isinstance(record, dict) and "run_id" in record else None

    async def finish(self, run: JobRun, *, status: str, summary: dict[str, Any]) -> None:
        """Record the run's outcome (``status``: ``"succeeded"``, ``"failed"``...) and free the job."""
        now = self.clock()
        outcome = {"job": run.job, "run_id": run.run_id, "status": status, "summary": summary,
                   "started_at": run.started_at, "finished_at": utc_iso(now),
                   "progress": run.progress}
        await self.store.put(self.history_namespace, run.job, outcome)
        while True:  # free the claim only if it is still this run's
            current = await self.store.get(self.namespace, run.job)
            if not isinstance(current, dict) or current.get("run_id") != run.run_id:
                return
            if await compare_and_delete(self.store, self.namespace, run.job, current):
                return

    async def last(self, job: str) -> dict[str, Any] | None:
        """The outcome of the last finished run of ``job``: status, summary, times, progress."""
        record = await self.store.get(self.history_namespace, job)
        return record if isinstance(record, dict) else None

    async def _rewrite(self, run: JobRun, progress: dict[str, Any]) -> bool:
        while True:
            current = await self.store.get(self.namespace, run.job)
            if not isinstance(current, dict) or current.get("run_id") != run.run_id:
                return False
            record = {**current, "heartbeat_at": utc_iso(self.clock()),
                      "progress": {**(current.get("progress") or {}), **progress}}
            if await self.store.compare_and_set(self.namespace, run.job, current, record,
                                                ttl=run.lease):
                run.record = record
                return True
