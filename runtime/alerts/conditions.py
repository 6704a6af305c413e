"""What each kind of alert rule looks at, and whether its condition holds now.

A rule yields one :class:`Condition` per thing it watches (a flow, a connection), keyed by that
thing's name, so that one flow's alert starts and resolves apart from another's. Sources:

- ``dead-letter``: the dead-letter queue in the store (every replica sees the same letters);
- ``failure-rate``, ``trigger-lag``, ``authentication``, ``api-budget``: this runtime's metrics
  (:class:`runtime.metrics.RuntimeMetrics`) and connection status probes;
- ``trigger-down``: this runtime's trigger states (:mod:`runtime.trigger_states`);
- ``reconciliation-findings``: the execution history in the store: the newest execution of the
  reconciliation flow that left a report (its output), and the ``findingsCount`` the report gives.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runtime.alerts.settings import DEFAULT_RECONCILIATION_FLOW, AlertRule
from runtime.metrics import RuntimeMetrics
from runtime.redaction import redact
from runtime.store.deadletters import DeadLetterQueue
from runtime.store.executions import ExecutionFilter, ExecutionHistory
from runtime.trigger_states import TriggerStates

__all__ = ["AlertInputs", "Condition", "evaluate_rule"]


@dataclass(frozen=True, slots=True)
class Condition:
    """Whether a rule's condition holds for ``key`` (a flow or connection name), and why."""

    key: str
    firing: bool
    summary: str


@dataclass(slots=True)
class AlertInputs:
    """What rules read: the store's dead letters, the runtime's metrics, triggers and connections."""

    dead_letters: DeadLetterQueue
    metrics: RuntimeMetrics
    triggers: TriggerStates
    flows: tuple[str, ...]
    #: Connection name -> connector name.
    connections: Mapping[str, str]
    #: The connections' status probes (``SpliceRuntime.status``).
    status: Callable[[], Awaitable[dict[str, Any]]]
    #: The execution history (reconciliation reports are the outputs of its records).
    history: ExecutionHistory | None = None
    #: Filled once per evaluation round by :meth:`connection_status`.
    _status: dict[str, Any] | None = None

    def new_round(self) -> None:
        """Forget the probed statuses: a new evaluation round probes again."""
        self._status = None

    async def connection_status(self) -> dict[str, Any]:
        """Each connection's status, probed at most once per round."""
        if self._status is None:
            self._status = await self.status()
        return self._status


def _short(text: Any, limit: int = 200) -> str:
    value = redact(str(text))
    return value if len(value) <= limit else value[: limit - 3] + "..."


async def _dead_letters(rule: AlertRule, inputs: AlertInputs) -> list[Condition]:
    counts: dict[str, int] = {}
    newest: dict[str, Any] = {}
    async for letter in inputs.dead_letters.iter(flow=rule.flow):
        counts[letter.flow] = counts.get(letter.flow, 0) + 1
        newest[letter.flow] = letter
    out = []
    for flow in sorted({*counts, *([rule.flow] if rule.flow else [])}):
        count = counts.get(flow, 0)
        if not count:
            out.append(Condition(flow, False, f"flow '{flow}' has no dead letters"))
            continue
        letter = newest[flow]
        error = letter.error or {}
        out.append(Condition(flow, True, _short(
            f"flow '{flow}' has {count} dead letter{'s' if count > 1 else ''}; newest {letter.id}: "
            f"{error.get('type', 'ERROR')} {error.get('message', '')}".rstrip())))
    return out


async def _failure_rate(rule: AlertRule, inputs: AlertInputs) -> list[Condition]:
    out = []
    for flow in [rule.flow] if rule.flow else inputs.flows:
        failed, total = inputs.metrics.failure_rate(flow, rule.window)
        rate = 100.0 * failed / total if total else 0.0
        firing = total >= rule.min_executions and rate > rule.threshold
        out.append(Condition(flow, firing, f"flow '{flow}': {failed} of {total} executions failed "
                                           f"in the last {rule.window:g} s ({rate:.0f}%, "
                                           f"threshold {rule.threshold:g}%)"))
    return out


async def _trigger_lag(rule: AlertRule, inputs: AlertInputs) -> list[Condition]:
    out = []
    for flow in [rule.flow] if rule.flow else inputs.flows:
        lag = inputs.metrics.trigger_lag_seconds(flow)
        if lag is None:
            continue
        out.append(Condition(flow, lag > rule.over, f"flow '{flow}': the newest handled change was "
                                                     f"{lag:.0f} s old (limit {rule.over:g} s)"))
    return out


async def _trigger_down(rule: AlertRule, inputs: AlertInputs) -> list[Condition]:
    now = datetime.now(UTC)
    out = []
    for flow, state in inputs.triggers.all().items():
        if rule.flow and flow != rule.flow:
            continue
        if state.state == "stopped":
            continue  # shutting down on request
        down = not state.healthy and (now - state.since).total_seconds() >= rule.for_
        summary = f"the trigger of flow '{flow}' ({state.trigger}) is {state.state}"
        if state.error and not state.healthy:
            summary += f" after {state.error}"
        out.append(Condition(flow, down, _short(summary)))
    return out


async def _authentication(rule: AlertRule, inputs: AlertInputs) -> list[Condition]:
    status = await inputs.connection_status()
    out = []
    for name, connector in inputs.connections.items():
        if rule.connection and name != rule.connection:
            continue
        found = status.get(name) or {}
        problem = None
        if found.get("reconnectRequired"):
            problem = f"reconnect required: {found['reconnectRequired']}"
        elif inputs.metrics.auth_errors.get(connector):
            problem = f"token refresh failed: {inputs.metrics.auth_errors[connector]}"
        out.append(Condition(name, problem is not None, _short(
            f"connection '{name}' cannot authenticate ({problem})" if problem
            else f"connection '{name}' authenticates")))
    return out


async def _api_budget(rule: AlertRule, inputs: AlertInputs) -> list[Condition]:
    status = await inputs.connection_status()
    out = []
    for name, connector in inputs.connections.items():
        if rule.connection and name != rule.connection:
            continue
        waited = inputs.metrics.waited(connector, rule.window)
        usage = (status.get(name) or {}).get("api_usage") or {}
        exhausted = usage.get("remaining") == 0
        firing = exhausted or waited >= rule.for_
        why = ("the daily API requests are used up" if exhausted else
               f"requests waited {waited:.0f} s for the rate limit in the last {rule.window:g} s")
        out.append(Condition(name, firing, f"connection '{name}': {why}"))
    return out


#: How many of the reconciliation flow's newest records are searched for one with a report.
_REPORT_SEARCH = 20


async def _reconciliation_findings(rule: AlertRule, inputs: AlertInputs) -> list[Condition]:
    flow = rule.flow or DEFAULT_RECONCILIATION_FLOW
    if inputs.history is None or flow not in inputs.flows:
        return []
    for record in await inputs.history.list(ExecutionFilter(flow=flow), limit=_REPORT_SEARCH):
        report = record.get("output")
        count = report.get("findingsCount") if isinstance(report, Mapping) else None
        if not isinstance(count, int | float) or isinstance(count, bool):
            continue  # a run that failed before its report, or a record kept without data
        period = report.get("period") if isinstance(report, Mapping) else None
        of = (f" of {period.get('from')} to {period.get('to')}"
              if isinstance(period, Mapping) and period.get("from") else "")
        return [Condition(flow, count > rule.threshold, _short(
            f"flow '{flow}': the latest reconciliation report{of} (execution {record.get('id')}) "
            f"has {count:g} finding{'' if count == 1 else 's'} (threshold {rule.threshold:g})"))]
    return []  # no report yet: nothing to say either way


_KINDS: dict[str, Callable[[AlertRule, AlertInputs], Awaitable[list[Condition]]]] = {
    "dead-letter": _dead_letters,
    "failure-rate": _failure_rate,
    "trigger-lag": _trigger_lag,
    "trigger-down": _trigger_down,
    "authentication": _authentication,
    "api-budget": _api_budget,
    "reconciliation-findings": _reconciliation_findings,
}


async def evaluate_rule(rule: AlertRule, inputs: AlertInputs) -> list[Condition]:
    """The rule's conditions now, one per watched flow or connection."""
    return await _KINDS[rule.when](rule, inputs)
