"""What the console's overview shows, gathered from the admin API, the store and the metrics.

Execution figures come from the execution history in the store (so every replica shows the same
numbers): one scan of the last day's records, newest first, bounded by :data:`MAX_SCANNED`. Trigger
lag comes from this process's metrics (the age of the newest change it handled); a trigger that
stands by runs on another replica, whose lag that replica's console shows.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runtime.alerts import ALERTS_NAMESPACE
from runtime.store.executions import ExecutionFilter
from runtime.store.ids import scan, utc_iso

if TYPE_CHECKING:
    from runtime.server.admin import AdminApi

__all__ = ["MAX_SCANNED", "FlowFigures", "gather_overview", "percentile", "replica_name"]

#: At most this many of the last day's execution records are read for the overview.
MAX_SCANNED = 20_000
_HOUR = 3600.0
_DAY = 86400.0
#: Outcomes that count as failures (``retried``: dead-lettered first, replayed since).
FAILURES = frozenset({"failed", "dead-lettered", "retried"})


def replica_name() -> str:
    """This process, as the console names the replica that runs a trigger."""
    return f"{socket.gethostname()} (pid {os.getpid()})"


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ``values`` (``None`` when there are none)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(slots=True)
class FlowFigures:
    """One flow's executions in the last hour and day."""

    flow: str
    hour: int = 0
    hour_failures: int = 0
    day: int = 0
    day_failures: int = 0
    durations: list[float] = field(default_factory=list)
    last_error: dict[str, Any] | None = None

    @property
    def p50(self) -> float | None:
        """Median duration in milliseconds over the day."""
        return percentile(self.durations, 0.50)

    @property
    def p99(self) -> float | None:
        """99th percentile duration in milliseconds over the day."""
        return percentile(self.durations, 0.99)


async def flow_figures(admin: AdminApi, flows: Sequence[str], *,
                       now: float | None = None) -> tuple[list[FlowFigures], bool]:
    """Per flow, the last hour's and day's executions; True when :data:`MAX_SCANNED` cut it short."""
    now = time.time() if now is None else now
    hour_ago, day_ago = utc_iso(now - _HOUR), utc_iso(now - _DAY)
    figures = {flow: FlowFigures(flow) for flow in flows}
    records = await admin.history.list(ExecutionFilter(since=day_ago), limit=MAX_SCANNED)
    for record in records:
        name = str(record.get("flow"))
        item = figures.get(name) or figures.setdefault(name, FlowFigures(name))
        failed = record.get("outcome") in FAILURES
        item.day += 1
        item.day_failures += failed
        if str(record.get("startedAt", "")) >= hour_ago:
            item.hour += 1
            item.hour_failures += failed
        duration = record.get("durationMs")
        if isinstance(duration, int | float):
            item.durations.append(float(duration))
        if item.last_error is None and isinstance(record.get("error"), Mapping):
            item.last_error = {**record["error"], "execution": record.get("id"),
                               "at": record.get("startedAt")}
    return sorted(figures.values(), key=lambda f: f.flow), len(records) >= MAX_SCANNED


async def open_alerts(admin: AdminApi) -> list[dict[str, Any]]:
    """The alerts firing now, as the alert evaluator keeps them in the store."""
    found = []
    async with scan(admin.runtime.store, ALERTS_NAMESPACE) as entries:
        async for key, state in entries:
            if isinstance(state, Mapping) and state.get("state") == "firing":
                rule, _, subject = key.partition(":")
                since = state.get("since")
                found.append({"rule": rule, "subject": subject, "summary": state.get("summary", ""),
                              "since": utc_iso(float(since)) if isinstance(since, int | float) else ""})
    return found


def trigger_rows(admin: AdminApi, triggers: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each trigger's state, lag and the replica that runs it."""
    metrics = admin.runtime.resources.metrics
    here = replica_name()
    rows = []
    for flow, state in triggers.items():
        lag = metrics.trigger_lag_seconds(flow)
        where = {"running": here, "standby": "another replica"}.get(state["state"], "none")
        rows.append({"flow": flow, **state, "lagSeconds": lag, "replica": where})
    return rows


async def gather_overview(admin: AdminApi) -> dict[str, Any]:
    """Everything the overview page renders."""
    status = await admin.status()
    flows, truncated = await flow_figures(admin, status["flows"])
    return {
        "flows": flows,
        "truncated": truncated,
        "maxScanned": MAX_SCANNED,
        "connections": status["connections"],
        "triggers": trigger_rows(admin, status["triggers"]),
        "alerts": await open_alerts(admin),
        "deadLetters": status["deadLetters"],
        "history": status["history"],
        "replica": replica_name(),
    }
