"""The ``settings.alerts`` of a project, typed: channels and rules (checked by the DSL's schema)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dsl.values import parse_duration
from runtime.redaction import register_secret

__all__ = ["DEFAULT_RECONCILIATION_FLOW", "AlertRule", "AlertSettings", "ChannelSettings",
           "alert_settings", "flows_alerts_read"]

#: The flow a ``reconciliation-findings`` rule watches unless it names one (the shipped project's).
DEFAULT_RECONCILIATION_FLOW = "nightly-reconciliation"


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    """One notification channel: ``webhook`` (url), ``email`` (SMTP) or ``log``."""

    name: str
    type: str
    url: str = ""
    host: str = ""
    port: int = 25
    starttls: bool = False
    ssl: bool = False
    username: str = ""
    password: str = ""
    sender: str = ""
    recipients: tuple[str, ...] = ()
    timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One rule: a condition (``when``) with its parameters, severity, cooldown and channels."""

    name: str
    when: str
    flow: str | None = None
    connection: str | None = None
    threshold: float = 0.0
    min_executions: int = 1
    window: float = 900.0
    over: float = 900.0
    for_: float = 60.0
    severity: str = "warning"
    cooldown: float = 600.0
    channels: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class AlertSettings:
    """Every rule and channel of a project, and how often the rules are evaluated."""

    interval: float = 5.0
    channels: Mapping[str, ChannelSettings] = field(default_factory=dict)
    rules: tuple[AlertRule, ...] = ()


def _channel(name: str, raw: Mapping[str, Any]) -> ChannelSettings:
    to = raw.get("to") or ()
    recipients = (to,) if isinstance(to, str) else tuple(str(r) for r in to)
    channel = ChannelSettings(
        name=name, type=str(raw["type"]), url=str(raw.get("url") or ""),
        host=str(raw.get("host") or ""), port=int(raw.get("port") or 25),
        starttls=bool(raw.get("starttls", False)), ssl=bool(raw.get("ssl", False)),
        username=str(raw.get("username") or ""), password=str(raw.get("password") or ""),
        sender=str(raw.get("from") or ""), recipients=recipients,
        timeout=parse_duration(raw.get("timeout", "10s")))
    # A webhook URL carries its token (Slack's does); an SMTP password is one: mask both in logs.
    for secret in (channel.url, channel.password):
        if secret:
            register_secret(secret)
    return channel


def _rule(raw: Mapping[str, Any]) -> AlertRule:
    channels = raw.get("channels")
    return AlertRule(
        name=str(raw["name"]), when=str(raw["when"]), flow=raw.get("flow"),
        connection=raw.get("connection"), threshold=float(raw.get("threshold", 0)),
        min_executions=int(raw.get("min-executions", 1)),
        window=parse_duration(raw.get("window", "15m")), over=parse_duration(raw.get("over", "15m")),
        for_=parse_duration(raw.get("for", "1m")), severity=str(raw.get("severity", "warning")),
        cooldown=parse_duration(raw.get("cooldown", "10m")),
        channels=tuple(str(c) for c in channels) if channels is not None else None)


def alert_settings(raw: Mapping[str, Any] | None) -> AlertSettings | None:
    """The typed alert settings (``None`` when the project has no rules).

    Secret values (webhook URLs, SMTP passwords) are registered with the current runtime's secrets.
    """
    if not raw or not raw.get("rules"):
        return None
    channels = {str(name): _channel(str(name), spec)
                for name, spec in (raw.get("channels") or {}).items()}
    rules = tuple(_rule(rule) for rule in raw["rules"])
    for rule in rules:
        unknown = [c for c in rule.channels or () if c not in channels]
        if unknown:
            raise ValueError(f"alert rule '{rule.name}': no channel named {', '.join(unknown)}")
    return AlertSettings(interval=parse_duration(raw.get("interval", "5s")), channels=channels,
                         rules=rules)


def flows_alerts_read(raw: Mapping[str, Any] | None) -> frozenset[str]:
    """The flows whose execution outputs alert rules read (``reconciliation-findings``: the
    report), so that their history records keep them whatever ``history.keep-data`` says."""
    rules = (raw or {}).get("rules") or ()
    return frozenset(str(rule.get("flow") or DEFAULT_RECONCILIATION_FLOW) for rule in rules
                     if isinstance(rule, Mapping) and rule.get("when") == "reconciliation-findings")
