"""The ``schedule`` trigger: fixed frequency or cron, never overlapping itself, once across replicas.

A run starts only after the previous one ended (slots missed meanwhile are skipped, not queued). When
several ``splice serve`` replicas share a store, each slot is claimed with ``put_if_absent`` and the
run holds a store lock, so one replica fires it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from dsl import parse_duration
from runtime.context import SourceContext
from runtime.message import Event
from runtime.store.base import LockTimeoutError

__all__ = ["next_fire", "run_schedule"]

FIRES_NAMESPACE = "schedule-fires"


def next_fire(params: dict[str, Any], after: float) -> float:
    """Epoch seconds of the first slot strictly after ``after``."""
    if params.get("cron"):
        zone_name = str(params.get("timezone") or "UTC")
        try:
            zone = ZoneInfo(zone_name)
        except ZoneInfoNotFoundError:
            raise ValueError(f"unknown timezone '{zone_name}'") from None
        base = datetime.fromtimestamp(after, tz=zone)
        return float(croniter(str(params["cron"]), base).get_next(float))
    every = parse_duration(params["every"])
    if every <= 0:
        raise ValueError("schedule 'every' must be positive")
    # Slots aligned on multiples of the period, so replicas agree on them.
    return (int(after // every) + 1) * every


async def run_schedule(ctx: SourceContext, params: dict[str, Any]) -> None:
    """Fire the flow at each slot until shutdown."""
    while not ctx.stopping:
        slot = next_fire(params, time.time())
        if not await ctx.sleep(max(0.0, slot - time.time())):
            return
        slot_iso = datetime.fromtimestamp(slot, tz=UTC).isoformat()
        if not await ctx.store.put_if_absent(FIRES_NAMESPACE, f"{ctx.flow}@{slot_iso}", True,
                                             ttl=7 * 86400):
            continue  # another replica fired this slot
        try:
            async with ctx.store.lock(f"schedule:{ctx.flow}", timeout=0.0):
                fired = datetime.now(tz=UTC).isoformat()
                await ctx.handle(Event(payload={"scheduledAt": slot_iso, "firedAt": fired},
                                       attributes={"trigger": "schedule"},
                                       id=f"{ctx.flow}@{slot_iso}"))
        except LockTimeoutError:
            ctx.logger.info("%s: previous run still going, slot %s skipped", ctx.flow, slot_iso)
