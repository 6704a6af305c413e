"""Recording executions without slowing them down: a bounded queue and a background writer.

The engine calls :meth:`ExecutionRecorder.record` once at the end of every execution (completed,
failed, dead-lettered); that appends a small tuple to a bounded in-memory queue and returns. A
writer task the runtime owns (:meth:`ExecutionRecorder.run`) drains the queue every
``flush-interval`` into records (business ids rendered, inputs and outputs size-capped and redacted
like logs) and writes each batch with one ``put_many``; :meth:`ExecutionRecorder.close` writes what
is left when the runtime closes, so a clean stop loses nothing. When the queue is full (the store
cannot keep up) new records are dropped and counted rather than making flows wait.

The step timeline is collected by the engine into the list of the running execution's
:class:`runtime.logcontext.ExecutionScope` (a context variable: flow-refs and foreach branches
append to their caller's), with the same clock readings the step metrics get. The record's id is
the one the execution's log lines carry when any was written.

Settings (``settings.history`` of the project): ``enabled`` (true), ``keep-data`` (``failures``:
inputs and outputs of failed executions only; ``all``; ``none``), ``max-data-bytes`` (16384),
``retention`` (``7d``), ``max-per-flow`` (10000). The runtime adds the flows whose outputs an alert
rule reads (``reconciliation-findings``: the report) to :attr:`HistorySettings.keep_data_of`: their
data is kept whatever ``keep-data`` says.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio

from runtime.logcontext import StepNote, StepTiming, business_ids
from runtime.redaction import MASK, SECRET_KEYS, redact
from runtime.store.base import ObjectStore, StoreUnavailableError, encode
from runtime.store.executions import ExecutionHistory
from runtime.store.ids import new_id, utc_iso

if TYPE_CHECKING:
    from dsl.model import Flow
    from runtime.errors import SpliceError
    from runtime.message import Message, Outcome

__all__ = ["ExecutionRecorder", "HistorySettings", "StepTiming"]

logger = logging.getLogger("splice.history")

#: At most this many steps are kept per record (a foreach over thousands of items).
MAX_TIMELINE = 200
#: Seconds the history writer gets to write its last records when the runtime closes.
CLOSE_TIMEOUT = 5.0


def _duration(value: Any, default: float) -> float:
    from dsl.values import parse_duration

    try:
        return parse_duration(value) if value is not None else default
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class HistorySettings:
    """How executions are recorded and kept (``settings.history``)."""

    enabled: bool = True
    keep_data: str = "failures"
    #: Flows whose inputs and outputs are kept for every execution (an alert reads their output).
    keep_data_of: frozenset[str] = frozenset()
    max_data_bytes: int = 16_384
    retention: float = 7 * 86400.0
    max_per_flow: int = 10_000
    queue_size: int = 10_000
    batch_size: int = 500
    flush_interval: float = 0.25
    prune_interval: float = 300.0

    @classmethod
    def from_settings(cls, values: Mapping[str, Any] | None) -> HistorySettings:
        """From the project's ``settings.history`` mapping (already checked against its schema)."""
        values = values or {}
        defaults = cls()
        return cls(
            enabled=bool(values.get("enabled", True)),
            keep_data=str(values.get("keep-data", defaults.keep_data)),
            max_data_bytes=int(values.get("max-data-bytes", defaults.max_data_bytes)),
            retention=_duration(values.get("retention"), defaults.retention),
            max_per_flow=int(values.get("max-per-flow", defaults.max_per_flow)),
        )


@dataclass(slots=True)
class _Pending:
    """What the engine hands over at the end of an execution; turned into a record later.

    The message is kept only when the record needs it (business ids to render, data to keep), so
    that a queue of successes holds on to little while it waits for the writer.
    """

    flow: Flow
    message: Message | None
    correlation_id: str
    event_id: Any
    status: str
    error: SpliceError | None
    dead_letter_id: str | None
    started: float
    duration: float
    steps: list[StepTiming]
    replay_of: str | None
    execution_id: str | None
    notes: list[StepNote] | None = None


class ExecutionRecorder:
    """The runtime's execution recorder: queue, background writer and retention."""

    def __init__(self, store: ObjectStore, settings: HistorySettings | None = None, *,
                 replica: str | None = None) -> None:
        self.settings = settings or HistorySettings()
        #: The replica whose executions these are (in each record: which replica ran what).
        self.replica = replica
        self.history = ExecutionHistory(store, retention=self.settings.retention,
                                        max_per_flow=self.settings.max_per_flow)
        self._queue: deque[_Pending] = deque()
        #: Records dropped because the queue was full (the store did not keep up).
        self.dropped = 0
        #: Records written so far.
        self.written = 0
        self._lock: anyio.Lock | None = None

    # -- the engine's side (hot path: no I/O, no await) -------------------------------------------

    def record(self, flow: Flow, message: Message, outcome: Outcome, *, started: float,
               duration: float, steps: list[StepTiming], replay_of: str | None = None,
               execution_id: str | None = None, notes: list[StepNote] | None = None) -> None:
        """Queue an ended execution for the writer; drops it (counted) when the queue is full.

        ``execution_id`` is the one its log lines carry (else one is made when it is written);
        ``notes`` add fields to the timeline entries of the step attempts they were made in."""
        if len(self._queue) >= self.settings.queue_size:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning("execution history queue full: %d records dropped so far", self.dropped)
            return
        failed = outcome.status != "completed" or outcome.error is not None
        needs_message = bool(flow.record_ids) or self._keeps_data(flow.name, failed)
        self._queue.append(_Pending(
            flow, message if needs_message else None, message.correlation_id,
            message.attributes.get("eventId"), outcome.status, outcome.error,
            outcome.dead_letter_id, started, duration, steps, replay_of, execution_id, notes))

    @property
    def pending(self) -> int:
        """Records queued and not written yet."""
        return len(self._queue)

    # -- the writer -------------------------------------------------------------------------------

    async def run(self, stop: anyio.Event, flows: Sequence[str]) -> None:
        """Write queued records every ``flush_interval`` and prune now and then, until ``stop``."""
        next_prune = time.monotonic() + min(60.0, self.settings.prune_interval)
        while not stop.is_set():
            with anyio.move_on_after(self.settings.flush_interval):
                await stop.wait()
            await self.flush()
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + self.settings.prune_interval
                try:
                    removed = await self.history.prune(flows)
                except StoreUnavailableError as exc:  # tried again at the next pruning
                    logger.warning("pruning the execution history failed: %s", exc.message)
                except Exception:
                    logger.exception("pruning the execution history failed")
                else:
                    if removed:
                        logger.info("execution history: pruned %d records", removed)

    async def flush(self) -> None:
        """Write every queued record now, in batches."""
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            while self._queue:
                batch = [self._queue.popleft()
                         for _ in range(min(self.settings.batch_size, len(self._queue)))]
                records = [self.build(pending) for pending in batch]
                try:
                    await self.history.add_many(records)
                    for record in records:
                        if record.get("replayOf"):
                            await self.history.mark_retried(str(record["replayOf"]), str(record["id"]))
                except StoreUnavailableError as exc:
                    # A blip (a failover, a cut connection): the batch goes back to the front of
                    # the queue for the next flush, which writes it again (same ids, same rows).
                    # The queue stays bounded: record() drops, counted, while it is full.
                    self._queue.extendleft(reversed(batch))
                    logger.warning("writing %d execution records failed (%s); they are written "
                                   "again at the next flush", len(records), exc.message)
                    return
                except Exception as exc:  # the store's error says enough: no traceback
                    logger.error("writing %d execution records failed; they are lost: %s: %s",
                                 len(records), type(exc).__name__, exc)
                    continue
                self.written += len(records)

    async def close(self) -> None:
        """Write what is left (the runtime is closing), within :data:`CLOSE_TIMEOUT` seconds: a
        store that does not take the records then (locked, unreachable) must not hold the
        shutdown; what was not written is counted in ``dropped`` and logged."""
        with anyio.CancelScope(shield=True) as scope:
            scope.deadline = anyio.current_time() + CLOSE_TIMEOUT
            await self.flush()
        if self._queue:  # the store did not take them in time, or is unavailable
            left = len(self._queue)
            self._queue.clear()
            self.dropped += left
            logger.error("execution history: the store did not take the last records within %g s "
                         "of closing; %d queued records are lost", CLOSE_TIMEOUT, left)

    # -- records ----------------------------------------------------------------------------------

    def build(self, pending: _Pending) -> dict[str, Any]:
        """The stored record of an ended execution."""
        flow, message, error = pending.flow, pending.message, pending.error
        ended = pending.started + pending.duration
        execution_id = pending.execution_id or new_id(pending.started)
        record: dict[str, Any] = {
            "id": execution_id,
            "flow": flow.name,
            "trigger": flow.trigger.name if flow.trigger else "manual",
            "correlationId": pending.correlation_id,
            "recordIds": business_ids(flow, message) if message is not None else [],
            "startedAt": utc_iso(pending.started),
            "endedAt": utc_iso(ended),
            "durationMs": _milliseconds(pending.duration),
            "outcome": pending.status,
        }
        if self.replica:
            record["replica"] = self.replica
        if pending.event_id:
            record["eventId"] = str(pending.event_id)
        if error is not None:
            record["error"] = {"type": error.error_type, "message": redact(str(error.message)),
                               "step": str(error.details.get("step", ""))}
        if pending.dead_letter_id:
            record["deadLetterId"] = pending.dead_letter_id
        if pending.replay_of:
            record["replayOf"] = pending.replay_of
        record.update(self._timeline(pending.steps, pending.notes))
        failed = pending.status != "completed" or error is not None
        if message is not None and self._keeps_data(flow.name, failed):
            cap = self.settings.max_data_bytes
            record["input"] = capture(message.vars.get("trigger", message.payload), cap)
            record["output"] = capture(message.payload, cap)
        return record

    def _keeps_data(self, flow: str, failed: bool) -> bool:
        keep = self.settings.keep_data
        return keep == "all" or (keep == "failures" and failed) or flow in self.settings.keep_data_of

    @staticmethod
    def _timeline(steps: list[StepTiming], notes: list[StepNote] | None = None) -> dict[str, Any]:
        if not steps:
            return {"steps": [], "connectorCalls": 0, "retries": 0}
        ordered = sorted(steps, key=lambda entry: entry[2])
        origin = ordered[0][2]
        out: list[dict[str, Any]] = []
        calls = retries = 0
        for path, step, started, ended, status in ordered:
            connector = getattr(step, "connector", None)
            if connector:
                calls += 1
            if status == "retried":
                retries += 1
            if len(out) < MAX_TIMELINE:
                entry: dict[str, Any] = {"path": path, "kind": step.kind,
                                         "startMs": _milliseconds(started - origin),
                                         "durationMs": _milliseconds(ended - started),
                                         "outcome": status}
                if step.label:
                    entry["label"] = step.label
                if connector:
                    entry["connector"] = connector
                if notes:
                    for noted, at, fields in notes:
                        if noted == path and started <= at <= ended:
                            entry.update(fields)
                out.append(entry)
        result: dict[str, Any] = {"steps": out, "connectorCalls": calls, "retries": retries}
        if len(ordered) > MAX_TIMELINE:
            result["stepsOmitted"] = len(ordered) - MAX_TIMELINE
        return result


def _milliseconds(seconds: float) -> float:
    """``seconds`` in milliseconds to the microsecond, as ``round(seconds * 1000, 3)`` gives but
    several times cheaper (``round`` to a number of digits formats the float as text)."""
    return int(seconds * 1_000_000 + 0.5) / 1000 if seconds >= 0 else -_milliseconds(-seconds)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {key: (MASK if str(key).lower() in SECRET_KEYS and item is not None else _redacted(item))
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def capture(value: Any, cap: int) -> Any:
    """``value`` as kept in a record: secrets masked as in logs, at most ``cap`` bytes of JSON."""
    cleaned = _redacted(value)
    try:
        text = encode(cleaned)
    except (TypeError, ValueError):
        text = redact(repr(value))
        cleaned = text
    size = len(text.encode("utf-8"))
    if size <= cap:
        return cleaned
    return {"$truncated": True, "bytes": size, "preview": text[:cap]}
