"""Alerts: a dead letter notifies once by webhook and once by e-mail, its resolution once more each,
and a restarted runtime sends nothing it sent before (the alert state is in the store)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiosmtpd.controller import Controller

import dsl
from runtime.alerts import (
    ALERTS_NAMESPACE,
    AlertEvaluator,
    AlertRule,
    AlertSettings,
    Notification,
    alert_settings,
)
from runtime.alerts.conditions import AlertInputs, evaluate_rule
from runtime.message import Event, Message, Outcome
from runtime.metrics import RuntimeMetrics
from runtime.redaction import redact
from runtime.registry import Registry
from runtime.service import SpliceRuntime, open_runtime
from runtime.store import open_store
from runtime.store.deadletters import DeadLetterQueue
from runtime.testing import wait_until
from runtime.trigger_states import TriggerStates
from tests.runtime.conftest import CONNECTIONS
from tests.support.servers import free_port, serve_in_thread

pytestmark = pytest.mark.anyio

CHARGE = """
flow: charge
steps:
  - test.fail: { type: "DEMO:DECLINED", message: "card declined" }
on-error:
  - then: dead-letter
"""

WEBHOOK_TOKEN = "T000-B000-XXXXSECRETTOKEN"


class Received:
    """What the test's webhook receiver and SMTP server got."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.webhooks: list[dict[str, Any]] = []
        self.mails: list[Any] = []


@pytest.fixture
def received() -> Received:
    return Received()


@pytest.fixture
def webhook_url(received: Received) -> Iterator[str]:
    """A local HTTP server that keeps each JSON body POSTed to it (a Slack incoming webhook)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        with received.lock:
            received.webhooks.append({"path": scope["path"], "json": json.loads(body)})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    with serve_in_thread(app, lifespan="off") as base:
        yield f"{base}/services/{WEBHOOK_TOKEN}"


@pytest.fixture
def smtp_port(received: Received) -> Iterator[int]:
    """A real SMTP server (aiosmtpd) on a local port, keeping every message it accepts."""

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            with received.lock:
                received.mails.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
            return "250 Message accepted for delivery"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def alerts_project(write_project: Any, webhook_url: str, smtp_port: int) -> Path:
    settings = f"""
settings:
  alerts:
    interval: 50ms
    channels:
      slack: {{ type: webhook, url: "{webhook_url}" }}
      ops: {{ type: email, host: 127.0.0.1, port: {smtp_port}, from: splice@example.com,
             to: [ops@example.com] }}
      log: {{ type: log }}
    rules:
      - {{ name: dead-letters, when: dead-letter, severity: critical, cooldown: 0s }}
"""
    return write_project({"charge.yaml": CHARGE}, connections=CONNECTIONS + settings)  # type: ignore[no-any-return]


async def serving(runtime: SpliceRuntime, tg: anyio.abc.TaskGroup) -> AlertEvaluator:
    await tg.start(runtime.run_triggers)
    assert runtime.alerts is not None
    return runtime.alerts


async def test_a_dead_letter_notifies_once_and_its_resolution_once(
        registry: Registry, write_project: Any, webhook_url: str, smtp_port: int,
        received: Received, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="splice")
    project = dsl.load_project(alerts_project(write_project, webhook_url, smtp_port),
                               vocabulary=registry, environ={})
    counts = lambda: (len(received.webhooks), len(received.mails))  # noqa: E731
    async with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        async with open_runtime(project, registry, store=store) as runtime, \
                anyio.create_task_group() as tg:
            assert WEBHOOK_TOKEN not in redact(f"posting to {webhook_url}")
            alerts = await serving(runtime, tg)
            await alerts.wait_rounds(2)
            assert counts() == (0, 0)
            outcome = await runtime.engine.run("charge", Event(payload={"card": "4242"}))
            assert outcome.status == "dead-lettered"
            await wait_until(lambda: counts() == (1, 1), what="one webhook call and one e-mail")
            await runtime.engine.run("charge", Event(payload={"card": "4000"}))  # still firing
            await alerts.wait_rounds(3)
            assert counts() == (1, 1)
            runtime.request_stop()

        # A restart evaluates the same firing alert: nothing is sent again.
        async with open_runtime(project, registry, store=store) as runtime, \
                anyio.create_task_group() as tg:
            alerts = await serving(runtime, tg)
            await alerts.wait_rounds(3)
            assert counts() == (1, 1)
            queue = DeadLetterQueue(store)
            for letter in await queue.list():
                await queue.delete(letter.id)
            await wait_until(lambda: counts() == (2, 2), what="the resolution, once per channel")
            await alerts.wait_rounds(3)
            assert counts() == (2, 2)
            state = await store.get(ALERTS_NAMESPACE, "dead-letters:charge")
            runtime.request_stop()

    assert state["state"] == "ok"
    firing, resolved = (call["json"]["text"] for call in received.webhooks)
    assert firing.startswith("[FIRING] critical dead-letters (charge): flow 'charge' has 1 dead "
                             "letter; newest ")
    assert "DEMO:DECLINED card declined" in firing
    assert resolved.startswith("[RESOLVED] critical dead-letters (charge)")
    assert all(call["path"] == f"/services/{WEBHOOK_TOKEN}" for call in received.webhooks)
    (to, mail), (_, resolution) = received.mails
    assert to == ["ops@example.com"] and mail["From"] == "splice@example.com"
    assert mail["Subject"] == "[FIRING] critical dead-letters (charge)"
    assert "card declined" in mail.get_payload()
    assert resolution["Subject"] == "[RESOLVED] critical dead-letters (charge)"
    logged = [r.getMessage() for r in caplog.records if r.name == "splice.alerts"]
    assert [line.split(":")[0] for line in logged] == [
        "[FIRING] critical dead-letters (charge)", "[RESOLVED] critical dead-letters (charge)"]
    assert WEBHOOK_TOKEN not in caplog.text


RECONCILE = """
flow: reconcile
steps:
  - transform: >-
      { 'period': { 'from': from, 'to': to }, 'checked': 40, 'missing': missing,
        'findingsCount': missing, 'findings': 'reports/reconciliation.jsonl' }
"""


async def test_reconciliation_findings_notify_once_and_their_resolution_once(
        registry: Registry, write_project: Any, webhook_url: str, smtp_port: int,
        received: Received, tmp_path: Path) -> None:
    """The latest report of the reconciliation flow (its execution output in the history, kept
    although the run completed and ``keep-data`` is ``failures``) has findings above the threshold:
    one notification per channel; a later report under it: one more each."""
    settings = f"""
settings:
  history: {{ keep-data: failures }}
  alerts:
    interval: 50ms
    channels:
      slack: {{ type: webhook, url: "{webhook_url}" }}
      ops: {{ type: email, host: 127.0.0.1, port: {smtp_port}, from: splice@example.com,
             to: [ops@example.com] }}
    rules:
      - {{ name: findings, when: reconciliation-findings, flow: reconcile, threshold: 2,
          severity: warning, cooldown: 0s }}
"""
    root = write_project({"reconcile.yaml": RECONCILE, "charge.yaml": CHARGE},
                         connections=CONNECTIONS + settings)
    project = dsl.load_project(root, vocabulary=registry, environ={})
    counts = lambda: (len(received.webhooks), len(received.mails))  # noqa: E731
    async with open_store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        async with open_runtime(project, registry, store=store) as runtime, \
                anyio.create_task_group() as tg:
            alerts = await serving(runtime, tg)
            await alerts.wait_rounds(2)
            assert counts() == (0, 0)  # no report yet
            period = {"from": "2026-11-01", "to": "2026-11-30"}
            await runtime.engine.run("reconcile", Event(payload={**period, "missing": 2}))
            await alerts.wait_rounds(3)
            assert counts() == (0, 0)  # 2 findings: not above the threshold
            await runtime.engine.run("reconcile", Event(payload={**period, "missing": 5}))
            await wait_until(lambda: counts() == (1, 1), what="one webhook call and one e-mail")
            await runtime.engine.run("charge", Event(payload={}))  # another flow changes nothing
            await alerts.wait_rounds(3)
            assert counts() == (1, 1)
            await runtime.engine.run("reconcile", Event(payload={**period, "missing": 0}))
            await wait_until(lambda: counts() == (2, 2), what="the resolution, once per channel")
            await alerts.wait_rounds(3)
            assert counts() == (2, 2)
            runtime.request_stop()

    firing, resolved = (call["json"]["text"] for call in received.webhooks)
    assert firing.startswith("[FIRING] warning findings (reconcile): flow 'reconcile': the latest "
                             "reconciliation report of 2026-11-01 to 2026-11-30 (execution ")
    assert firing.endswith("has 5 findings (threshold 2)")
    assert resolved.startswith("[RESOLVED] warning findings (reconcile)")
    assert [mail["Subject"] for _, mail in received.mails] == [
        "[FIRING] warning findings (reconcile)", "[RESOLVED] warning findings (reconcile)"]


async def test_a_failing_channel_does_not_keep_the_others_from_sending(
        registry: Registry, write_project: Any, received: Received, smtp_port: int,
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}/services/{WEBHOOK_TOKEN}"
    project = dsl.load_project(alerts_project(write_project, dead_url, smtp_port),
                               vocabulary=registry, environ={})
    async with open_runtime(project, registry, store=open_store("memory://")) as runtime:
        assert runtime.alerts is not None
        await runtime.engine.run("charge", Event(payload={}))
        sent = await runtime.alerts.evaluate()
        assert [n.state for n in sent] == ["firing"]
        assert len(received.mails) == 1
        assert await runtime.alerts.evaluate() == []  # no second notification
        await runtime.store.aclose()
    assert "channel slack failed: ConnectError" in caplog.text
    assert WEBHOOK_TOKEN not in caplog.text


def test_settings_name_unknown_channels_and_register_secrets() -> None:
    with pytest.raises(ValueError, match="alert rule 'x': no channel named pager"):
        alert_settings({"rules": [{"name": "x", "when": "dead-letter", "channels": ["pager"]}]})
    settings = alert_settings({"interval": "2s", "channels": {"mail": {
        "type": "email", "host": "smtp.example.com", "password": "hunter2-smtp", "to": "a@b.c"}},
        "rules": [{"name": "fr", "when": "failure-rate", "threshold": 20, "window": "5m"}]})
    assert settings is not None and settings.interval == 2.0
    assert settings.channels["mail"].recipients == ("a@b.c",)
    assert settings.rules[0].window == 300.0 and settings.rules[0].cooldown == 600.0
    assert redact("login hunter2-smtp") == "login ***"
    assert alert_settings({}) is None


def test_alert_settings_are_checked_with_positions(registry: Registry, write_project: Any) -> None:
    settings = """
settings:
  alerts:
    rules:
      - { name: late, when: trigger-late, severity: critical }
"""
    root = write_project({"charge.yaml": CHARGE}, connections=CONNECTIONS + settings)
    with pytest.raises(dsl.FlowErrors) as caught:
        dsl.load_project(root, vocabulary=registry, environ={})
    text = str(caught.value)
    assert "splice.yaml:8:29: 'when' must be one of" in text and "trigger-late" in text and "dead-letter" in text


# -- each kind of condition, and the cooldown -------------------------------------------------------


def inputs_for(metrics: RuntimeMetrics, *, triggers: TriggerStates | None = None,
               status: dict[str, Any] | None = None) -> AlertInputs:
    async def probe() -> dict[str, Any]:
        return status or {}

    return AlertInputs(dead_letters=DeadLetterQueue(open_store("memory://")), metrics=metrics,
                       triggers=triggers or TriggerStates(), flows=("sync",),
                       connections={"qbo": "quickbooks"}, status=probe)


def finished(metrics: RuntimeMetrics, status: str, **attributes: Any) -> None:
    metrics.execution_finished("sync", Message(payload={}, attributes=attributes),
                               Outcome(status, Message(payload={})), 0.01)


def rule(**options: Any) -> AlertRule:
    return AlertRule(**{"name": "r", "severity": "warning", **options})


async def test_failure_rate_fires_over_its_threshold_with_enough_executions() -> None:
    metrics = RuntimeMetrics()
    inputs = inputs_for(metrics)
    over_half = rule(when="failure-rate", threshold=50, min_executions=3, window=60)
    finished(metrics, "failed")
    finished(metrics, "dead-lettered")
    [few] = await evaluate_rule(over_half, inputs)
    assert not few.firing  # two executions: fewer than min-executions
    finished(metrics, "completed")
    [condition] = await evaluate_rule(over_half, inputs)
    assert condition.firing and "2 of 3 executions failed" in condition.summary
    finished(metrics, "completed")
    [condition] = await evaluate_rule(over_half, inputs)
    assert not condition.firing  # exactly 50%


async def test_trigger_lag_and_trigger_down() -> None:
    metrics = RuntimeMetrics()
    states = TriggerStates()
    state = states.register("sync", "salesforce.changes")
    state.failed(RuntimeError("stream refused"))
    inputs = inputs_for(metrics, triggers=states)
    [down] = await evaluate_rule(rule(when="trigger-down", for_=0), inputs)
    assert down.firing and "is restarting after RuntimeError: stream refused" in down.summary
    assert not (await evaluate_rule(rule(when="trigger-down", for_=3600), inputs))[0].firing
    state.running()
    assert not (await evaluate_rule(rule(when="trigger-down", for_=0), inputs))[0].firing
    assert await evaluate_rule(rule(when="trigger-lag", over=60), inputs) == []  # nothing dated
    finished(metrics, "completed", lastUpdated="2020-01-01T00:00:00Z")
    [lag] = await evaluate_rule(rule(when="trigger-lag", over=60), inputs)
    assert lag.firing and lag.key == "sync"


async def test_authentication_and_api_budget() -> None:
    metrics = RuntimeMetrics()
    inputs = inputs_for(metrics, status={"qbo": {"reconnectRequired": "refresh token revoked"}})
    [auth] = await evaluate_rule(rule(when="authentication"), inputs)
    assert auth.firing and "reconnect required: refresh token revoked" in auth.summary
    inputs = inputs_for(metrics)
    assert not (await evaluate_rule(rule(when="authentication"), inputs))[0].firing
    metrics.token_refresh_failed("quickbooks", RuntimeError("invalid_grant"))
    assert (await evaluate_rule(rule(when="authentication"), inputs))[0].firing
    metrics.token_obtained("quickbooks")
    assert not (await evaluate_rule(rule(when="authentication"), inputs))[0].firing
    budget = rule(when="api-budget", for_=5, window=60)
    metrics.rate_limit_waited("quickbooks", 3.0)
    assert not (await evaluate_rule(budget, inputs))[0].firing
    metrics.rate_limit_waited("quickbooks", 3.0)
    [exhausted] = await evaluate_rule(budget, inputs)
    assert exhausted.firing and "waited 6 s" in exhausted.summary


class Collecting:
    name = "collect"

    def __init__(self) -> None:
        self.sent: list[Notification] = []

    async def send(self, notification: Notification) -> None:
        self.sent.append(notification)


async def test_a_condition_that_flaps_within_its_cooldown_is_notified_once() -> None:
    now = [1000.0]
    metrics = RuntimeMetrics(clock=lambda: now[0])
    store = open_store("memory://")
    channel = Collecting()
    flapping = rule(name="auth", when="authentication", cooldown=300)
    evaluator = AlertEvaluator(AlertSettings(rules=(flapping,)), inputs_for(metrics), store,
                               channels=[channel], clock=lambda: now[0])
    metrics.token_refresh_failed("quickbooks", RuntimeError("down"))
    await evaluator.evaluate()
    metrics.token_obtained("quickbooks")
    now[0] += 60
    await evaluator.evaluate()
    metrics.token_refresh_failed("quickbooks", RuntimeError("down again"))
    now[0] += 60
    await evaluator.evaluate()  # started again 2 minutes after the last notification: quiet
    metrics.token_obtained("quickbooks")
    now[0] += 60
    await evaluator.evaluate()  # and so is its end
    metrics.token_refresh_failed("quickbooks", RuntimeError("down for good"))
    now[0] += 600
    await evaluator.evaluate()
    assert [(n.state, n.key) for n in channel.sent] == [
        ("firing", "qbo"), ("resolved", "qbo"), ("firing", "qbo")]
    await store.aclose()
