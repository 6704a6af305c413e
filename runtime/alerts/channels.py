"""Where alert notifications go: a webhook (Slack-compatible JSON), e-mail over SMTP, the log."""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import anyio
import httpx

from runtime.alerts.settings import ChannelSettings
from runtime.redaction import redact

__all__ = ["Channel", "EmailChannel", "LogChannel", "Notification", "WebhookChannel", "open_channel"]

logger = logging.getLogger("splice.alerts")


@dataclass(frozen=True, slots=True)
class Notification:
    """One transition of one alert: it started (``firing``) or it ``resolved``."""

    rule: str
    key: str
    state: str
    severity: str
    summary: str

    @property
    def title(self) -> str:
        """One line: ``[FIRING] critical dead-letters (charge): ...``."""
        where = f" ({self.key})" if self.key else ""
        return f"[{self.state.upper()}] {self.severity} {self.rule}{where}"

    @property
    def text(self) -> str:
        """The title and the summary, secrets masked."""
        return redact(f"{self.title}: {self.summary}")


class Channel(Protocol):
    """Sends a notification; raises when it could not."""

    name: str

    async def send(self, notification: Notification) -> None:
        """Deliver ``notification``."""


class WebhookChannel:
    """POSTs ``{"text": ...}``, which a Slack incoming webhook (and most chat hooks) accept."""

    def __init__(self, settings: ChannelSettings) -> None:
        self.name = settings.name
        self._url = settings.url
        self._timeout = settings.timeout

    async def send(self, notification: Notification) -> None:
        async with httpx.AsyncClient(timeout=self._timeout) as client:
            response = await client.post(self._url, json={"text": notification.text})
        if response.status_code >= 300:
            raise RuntimeError(f"webhook answered {response.status_code}")


class EmailChannel:
    """Sends a plain-text e-mail over SMTP (STARTTLS or TLS when asked), in a worker thread."""

    def __init__(self, settings: ChannelSettings) -> None:
        self.name = settings.name
        self._settings = settings

    def _message(self, notification: Notification) -> EmailMessage:
        s = self._settings
        message = EmailMessage()
        message["Subject"] = redact(notification.title)
        message["From"] = s.sender or f"splice@{s.host}"
        message["To"] = ", ".join(s.recipients)
        message.set_content(notification.text + "\n")
        return message

    def _send(self, message: EmailMessage) -> None:
        s = self._settings
        context = ssl.create_default_context()
        smtp = (smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context) if s.ssl
                else smtplib.SMTP(s.host, s.port, timeout=s.timeout))
        with smtp:
            if s.starttls and not s.ssl:
                smtp.starttls(context=context)
            if s.username:
                smtp.login(s.username, s.password)
            smtp.send_message(message)

    async def send(self, notification: Notification) -> None:
        await anyio.to_thread.run_sync(self._send, self._message(notification))


class LogChannel:
    """Writes the notification to the ``splice.alerts`` logger (error for critical firing)."""

    def __init__(self, settings: ChannelSettings) -> None:
        self.name = settings.name

    async def send(self, notification: Notification) -> None:
        if notification.state == "resolved":
            level = logging.INFO
        else:
            level = {"critical": logging.ERROR, "warning": logging.WARNING}.get(
                notification.severity, logging.INFO)
        logger.log(level, "%s", notification.text)


def open_channel(settings: ChannelSettings) -> Channel:
    """The channel a setting describes."""
    kinds: dict[str, type[WebhookChannel] | type[EmailChannel] | type[LogChannel]] = {
        "webhook": WebhookChannel, "email": EmailChannel, "log": LogChannel}
    return kinds[settings.type](settings)
