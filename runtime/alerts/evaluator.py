"""The alert evaluator: rules over the store and metrics, every few seconds, notifying transitions.

Each (rule, key) alert is ``ok`` or ``firing``; its state lives in the store (namespace
``alerts``), so a restarted runtime does not notify again what it notified before, and the round
runs under a store lock taken without waiting, so that of several replicas sharing a store one
evaluates and sends at a time. A condition that starts sends one notification to the rule's
channels (unless the same alert was notified less than the rule's cooldown ago: flapping); its end
sends one more (when its start was notified). Nothing is sent per event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio

from runtime.alerts.channels import Channel, Notification, open_channel
from runtime.alerts.conditions import AlertInputs, Condition, evaluate_rule
from runtime.alerts.settings import AlertRule, AlertSettings
from runtime.redaction import redact
from runtime.store.base import LockTimeoutError, ObjectStore

__all__ = ["ALERTS_NAMESPACE", "AlertEvaluator"]

logger = logging.getLogger("splice.alerts")

#: Where alert states are kept, under ``<rule>:<key>``.
ALERTS_NAMESPACE = "alerts"
_LOCK = "splice:alerts"


class AlertEvaluator:
    """Evaluates a project's alert rules and sends their transitions; one per runtime."""

    def __init__(self, settings: AlertSettings, inputs: AlertInputs, store: ObjectStore, *,
                 channels: Sequence[Channel] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.inputs = inputs
        self.store = store
        opened = channels if channels is not None else [
            open_channel(c) for c in settings.channels.values()]
        self.channels: dict[str, Channel] = {c.name: c for c in opened}
        self._clock = clock
        #: Evaluation rounds done (tests wait on it before checking that nothing was sent).
        self.rounds = 0
        self._round_done = anyio.Event()

    async def run(self, stop: anyio.Event) -> None:
        """Evaluate every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.evaluate()
            except Exception as exc:  # one bad round (store down) must not end alerting
                logger.error("alert evaluation failed: %s", redact(f"{type(exc).__name__}: {exc}"))
            with anyio.move_on_after(self.settings.interval):
                await stop.wait()

    async def wait_rounds(self, count: int) -> None:
        """Return after ``count`` more evaluation rounds."""
        target = self.rounds + count
        while self.rounds < target:
            await self._round_done.wait()

    async def evaluate(self) -> list[Notification]:
        """One round: every rule, under the alerts lock (skipped when another replica holds it)."""
        sent: list[Notification] = []
        try:
            async with self.store.lock(_LOCK, timeout=0, lease=60.0):
                self.inputs.new_round()
                for rule in self.settings.rules:
                    conditions = await evaluate_rule(rule, self.inputs)
                    sent.extend(await self._apply(rule, conditions))
        except LockTimeoutError:
            pass  # another replica evaluates this round
        finally:
            self.rounds += 1
            done, self._round_done = self._round_done, anyio.Event()
            done.set()
        return sent

    async def _apply(self, rule: AlertRule, conditions: list[Condition]) -> list[Notification]:
        now = self._clock()
        seen = {c.key for c in conditions}
        # Alerts firing in the store whose thing is not reported any more (its last dead letter
        # was replayed, say) have resolved.
        gone = [Condition(key.split(":", 1)[1], False, str(state.get("summary", "")))
                async for key, state in self.store.items(ALERTS_NAMESPACE, f"{rule.name}:")
                if isinstance(state, dict) and state.get("state") == "firing"
                and key.split(":", 1)[1] not in seen]
        sent = []
        for condition in [*conditions, *gone]:
            key = f"{rule.name}:{condition.key}"
            state: dict[str, Any] = await self.store.get(ALERTS_NAMESPACE, key) or {}
            firing = state.get("state") == "firing"
            if condition.firing == firing:
                continue
            last = state.get("lastNotified")
            if condition.firing:
                notify = last is None or now - float(last) >= rule.cooldown
                new = {"state": "firing", "since": now, "notified": notify,
                       "summary": condition.summary, "lastNotified": now if notify else last}
            else:
                notify = bool(state.get("notified"))
                new = {"state": "ok", "since": now, "notified": notify,
                       "summary": condition.summary, "lastNotified": now if notify else last}
            if notify:
                notification = Notification(rule.name, condition.key,
                                            "firing" if condition.firing else "resolved",
                                            rule.severity, condition.summary)
                if not await self._send(rule, notification):
                    continue  # nothing got through: the transition is tried again next round
                sent.append(notification)
            await self.store.put(ALERTS_NAMESPACE, key, new)
        return sent

    async def _send(self, rule: AlertRule, notification: Notification) -> bool:
        names = rule.channels if rule.channels is not None else tuple(self.channels)
        if not names:
            return True
        delivered = 0
        for name in names:
            try:
                await self.channels[name].send(notification)
                delivered += 1
            except Exception as exc:
                logger.error("alert %s: channel %s failed: %s", notification.title, name,
                             redact(f"{type(exc).__name__}: {exc}"))
        return delivered > 0
