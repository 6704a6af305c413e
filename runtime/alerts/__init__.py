"""Alerts: rules in ``settings.alerts``, evaluated in the running runtime, sent on transitions.

:func:`open_alerts` builds the evaluator of a runtime (``None`` when the project has no rules);
:class:`runtime.service.SpliceRuntime` runs it beside the triggers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.alerts.channels import Notification
from runtime.alerts.conditions import AlertInputs
from runtime.alerts.evaluator import ALERTS_NAMESPACE, AlertEvaluator
from runtime.alerts.settings import AlertRule, AlertSettings, alert_settings, flows_alerts_read
from runtime.store.executions import ExecutionHistory

if TYPE_CHECKING:
    from runtime.service import SpliceRuntime

__all__ = ["ALERTS_NAMESPACE", "AlertEvaluator", "AlertRule", "AlertSettings", "Notification",
           "alert_settings", "flows_alerts_read", "open_alerts"]


def open_alerts(runtime: SpliceRuntime) -> AlertEvaluator | None:
    """The evaluator of ``runtime``'s alert rules, or ``None`` when the project has none."""
    settings = alert_settings(runtime.project.settings.extra.get("alerts"))
    if settings is None:
        return None
    inputs = AlertInputs(
        dead_letters=runtime.engine.dead_letters, metrics=runtime.resources.metrics,
        triggers=runtime.triggers, flows=tuple(runtime.project.flows),
        connections={name: c.connector for name, c in runtime.project.connections.items()},
        status=runtime.status, history=ExecutionHistory(runtime.store))
    return AlertEvaluator(settings, inputs, runtime.store)
