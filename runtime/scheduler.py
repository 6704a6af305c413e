"""The ``schedule`` trigger: fixed frequency or cron, never overlapping itself, once across replicas.

A run starts only after the previous one ended (slots missed meanwhile are skipped, not queued). When
several ``splice serve`` replicas share a store, each slot is claimed with ``put_if_absent`` and the
run holds a store lock, so one replica fires it.

With ``catch-up: true`` the trigger first looks at the most recent slot that is already due: when no
replica fired it (the runtime was down at that time, or this store never ran the schedule), it fires
that one slot right away, claimed the same way, then goes on with the next slots. Older missed slots
are not fired. Slots are then remembered at least until the following slot is due, so a long period
(a monthly cron) is not caught up again at every start.

:data:`SCHEDULE` declares the trigger like any plugin's source (registered by :mod:`runtime.builtins`):
its parameters, its "exactly one of ``every`` and ``cron``" rule, and the lock that ``splice run``
of a scheduled flow holds so that it never overlaps a scheduled run.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dsl import parse_duration
from dsl.builtins import DURATION_DESCRIPTION
from dsl.kinds import ParamProblem
from runtime.context import SourceContext
from runtime.message import Event
from runtime.spec import Param, SourceSpec
from runtime.store.base import LockTimeoutError

if TYPE_CHECKING:
    from croniter import croniter

__all__ = ["SCHEDULE", "check_schedule", "last_fire", "next_fire", "run_schedule", "schedule_lock"]

FIRES_NAMESPACE = "schedule-fires"
#: How long a fired slot is remembered (longer with catch-up when the period is longer).
FIRE_TTL = 7 * 86400


def _zone(params: dict[str, Any]) -> ZoneInfo:
    zone_name = str(params.get("timezone") or "UTC")
    try:
        return ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: '', '../x' (not a key at all)
        raise ValueError(f"unknown timezone '{zone_name}'") from None


def _cron(params: dict[str, Any], at: float) -> croniter:
    from croniter import croniter  # imported when a cron schedule runs, not by every command

    return croniter(str(params["cron"]), datetime.fromtimestamp(at, tz=_zone(params)))


def _every(params: dict[str, Any]) -> float:
    every = parse_duration(params["every"])
    if every <= 0:
        raise ValueError("schedule 'every' must be positive")
    return every


def next_fire(params: dict[str, Any], after: float) -> float:
    """Epoch seconds of the first slot strictly after ``after``."""
    if params.get("cron"):
        return float(_cron(params, after).get_next(float))
    every = _every(params)
    # Slots aligned on multiples of the period, so replicas agree on them.
    return (int(after // every) + 1) * every


def last_fire(params: dict[str, Any], at: float) -> float:
    """Epoch seconds of the most recent slot at or before ``at``."""
    if params.get("cron"):
        before = float(_cron(params, at).get_prev(float))
        following = next_fire(params, before)
        return following if following <= at else before
    every = _every(params)
    return int(at // every) * every


async def run_schedule(ctx: SourceContext, params: dict[str, Any]) -> None:
    """Fire the flow at each slot until shutdown (after the missed slot, with ``catch-up``)."""
    catch_up = params.get("catch-up") is True
    if catch_up and not ctx.stopping:
        await _fire(ctx, params, last_fire(params, time.time()), catch_up=True, remember=True)
    while not ctx.stopping:
        slot = next_fire(params, time.time())
        if not await ctx.sleep(max(0.0, slot - time.time())):
            return
        await _fire(ctx, params, slot, remember=catch_up)


def _iso(slot: float) -> str:
    return datetime.fromtimestamp(slot, tz=UTC).isoformat()


def schedule_lock(flow: str) -> str:
    """The store lock a scheduled flow's run holds, so that runs never overlap (``splice run``
    of the flow takes it too)."""
    return f"schedule:{flow}"


async def _fire(ctx: SourceContext, params: dict[str, Any], slot: float, *,
                catch_up: bool = False, remember: bool = False) -> None:
    """Claim ``slot`` in the store and run the flow for it, unless a replica has claimed it.

    A catch-up fire says so in its payload (``catchUp: true``). ``remember`` keeps the claim at
    least until the following slot is due, so that a later catch-up sees this slot was fired.
    """
    slot_iso = _iso(slot)
    ttl: float = FIRE_TTL
    if remember:
        ttl = max(ttl, 2 * (next_fire(params, slot) - slot))
    key = f"{ctx.flow}@{slot_iso}"
    if not await ctx.store.put_if_absent(FIRES_NAMESPACE, key, True, ttl=ttl):
        return  # another replica (or an earlier start) fired this slot
    try:
        async with ctx.store.lock(schedule_lock(ctx.flow), timeout=0.0):
            fired = datetime.now(tz=UTC).isoformat()
            payload: dict[str, Any] = {"scheduledAt": slot_iso, "firedAt": fired}
            attributes: dict[str, Any] = {"trigger": "schedule"}
            if catch_up:
                ctx.logger.info("%s: slot %s was missed, running it now (catch-up)", ctx.flow,
                                slot_iso)
                payload["catchUp"] = True
            await ctx.handle(Event(payload=payload, attributes=attributes, id=key))
    except LockTimeoutError:
        ctx.logger.info("%s: previous run still going, slot %s skipped", ctx.flow, slot_iso)


def check_schedule(params: dict[str, Any]) -> list[ParamProblem]:
    """Exactly one of ``every`` and ``cron``; ``every`` becomes seconds; the cron expression and the
    time zone must work. Checked when the flow loads (``splice validate``, and every start, after
    the placeholders were resolved), so a bad schedule stops the start instead of failing each
    time the trigger is restarted."""
    if ("every" in params) == ("cron" in params):
        return [ParamProblem("a schedule needs exactly one of 'every' and 'cron'",
                             "'every: 5m' or 'cron: \"0 2 * * *\"'")]
    problems = []
    if "timezone" in params:
        try:
            _zone(params)
        except ValueError as exc:
            problems.append(ParamProblem(str(exc), "an IANA time zone such as UTC or Europe/Berlin",
                                         param="timezone"))
    if "every" in params:
        try:
            params["every"] = parse_duration(params["every"])
        except ValueError as exc:
            problems.append(ParamProblem(str(exc), "a duration such as 30s, 5m, 1h", param="every"))
    elif not problems:
        problem = _cron_problem(params)
        if problem is not None:
            problems.append(problem)
    return problems


def _cron_problem(params: dict[str, Any]) -> ParamProblem | None:
    """Why the cron expression cannot run (its next slot is computed once, as the trigger will)."""
    expression = str(params["cron"])
    try:
        _cron(params, time.time()).get_next(float)
    except ValueError as exc:  # CroniterError: wrong field count, out of range, a date that never comes
        return ParamProblem(f"invalid cron expression '{expression}': {str(exc).rstrip('.')}",
                            "five fields (minute hour day-of-month month day-of-week), e.g. "
                            "'0 2 * * *'", param="cron")
    return None


SCHEDULE = SourceSpec(
    name="schedule",
    run=run_schedule,
    needs_connection=False,
    summary="Start the flow on a schedule: every <duration>, or a cron expression",
    params=(
        Param("every", type="duration", dynamic=False, summary=DURATION_DESCRIPTION),
        Param("cron", dynamic=False, summary="Cron expression, e.g. '0 2 * * *'"),
        Param("timezone", default="UTC", dynamic=False, summary="Time zone of the cron expression"),
        Param("catch-up", type="boolean", default=False, dynamic=False,
              summary="At start, fire once right away when the most recent slot was missed (the "
                      "runtime was down, or the store never ran this schedule); older missed slots "
                      "are not fired"),
    ),
    check=check_schedule,
    run_lock=schedule_lock,
)
