"""Keeping secrets out of logs, spans, error texts and recorded cassettes.

Every value that is secret (a secure property, a connection parameter whose spec says
``secret=True``, an access or refresh token) is registered here when it becomes known.
:func:`redact` replaces any registered value in a text, and :class:`RedactingFilter` applies it to
every log record of the ``splice`` loggers.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["MASK", "RedactingFilter", "redact", "redact_mapping", "register_secret", "secret_values"]

MASK = "***"
#: Shorter values would mask ordinary words; such values are not worth treating as secrets anyway.
_MIN_SECRET_LENGTH = 4

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

#: Keys whose values are always masked in mappings, whatever they hold.
SECRET_KEYS = frozenset({
    "authorization", "access_token", "refresh_token", "client_secret", "password", "secret",
    "token", "api_key", "apikey", "x-api-key", "client-secret", "private_key", "private-key",
    "cookie", "set-cookie", "code", "assertion", "verifier-token", "verifier_token",
})


def register_secret(value: Any) -> None:
    """Remember a secret so that it is masked wherever it would be written."""
    global _pattern
    if not isinstance(value, str) or len(value) < _MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def secret_values() -> Iterable[str]:
    """The registered secrets (for cassette filters)."""
    with _lock:
        return tuple(_secrets)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def redact_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with secret keys masked and secret values removed from strings."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key.lower() in SECRET_KEYS and value is not None:
            out[key] = MASK
        elif isinstance(value, str):
            out[key] = redact(value)
        elif isinstance(value, Mapping):
            out[key] = redact_mapping(value)
        else:
            out[key] = value
    return out


class RedactingFilter(logging.Filter):
    """Masks registered secrets in the final text of every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
