"""Keeping secrets out of logs, spans, error texts and recorded cassettes.

Every value that is secret (a secure property, a connection parameter whose spec says
``secret=True``, an access or refresh token) is registered when it becomes known.
:func:`redact` replaces any registered value in a text, and :class:`RedactingFilter` applies it to
every log record of the ``splice`` loggers.

Secrets belong to a runtime, not to the process: each runtime keeps a :class:`Secrets` of its own
and makes it the *current* one for everything it runs (a context variable, which anyio copies into
every task it starts), so a token one runtime learns is never known to another one in the same
process. The module functions (:func:`register_secret`, :func:`redact`, :func:`redact_mapping`,
:func:`secret_values`) act on the current set; code deep in a connector needs no handle on it.

Outside any runtime: each ``splice`` command runs in a set of its own, and a runtime opened inside
it (``splice run``, ``serve``) also masks what the command learned while loading the project (its
set is a child of the command's). Code that registers a secret where no set is current at all (a
script, a test that opens a connection by hand) gets one created for its context on first use, like
:func:`decimal.getcontext`, so a secret is never dropped; tests give each test a fresh set instead
(``tests/conftest.py``).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

__all__ = [
    "MASK",
    "RedactingFilter",
    "Secrets",
    "current_secrets",
    "inherit_secrets",
    "redact",
    "redact_mapping",
    "register_secret",
    "secret_values",
    "use_secrets",
]

MASK = "***"
#: Shorter values would mask ordinary words; such values are not worth treating as secrets anyway.
_MIN_SECRET_LENGTH = 4

#: Keys whose values are always masked in mappings, whatever they hold.
SECRET_KEYS = frozenset({
    "authorization", "access_token", "refresh_token", "client_secret", "password", "secret",
    "token", "api_key", "apikey", "x-api-key", "client-secret", "private_key", "private-key",
    "cookie", "set-cookie", "code", "assertion", "verifier-token", "verifier_token",
})


class Secrets:
    """The secret values one runtime (or one command) knows, and the pattern that masks them.

    A set made with a ``parent`` masks the parent's values too (a runtime masks the secure
    properties its command decrypted), while what it learns itself stays its own.
    """

    def __init__(self, parent: Secrets | None = None) -> None:
        self.parent = parent
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._version = 0
        self._compiled: tuple[tuple[int, ...], re.Pattern[str] | None] = ((), None)

    def child(self) -> Secrets:
        """A new set that also masks everything this one masks, now and later."""
        return Secrets(parent=self)

    def add(self, value: Any) -> None:
        """Remember a secret (non-strings and values shorter than four characters are ignored)."""
        if not isinstance(value, str) or len(value) < _MIN_SECRET_LENGTH:
            return
        with self._lock:
            if value not in self._values:
                self._values.add(value)
                self._version += 1

    def values(self) -> tuple[str, ...]:
        """Every value masked: this set's and its parents'."""
        with self._lock:
            own = tuple(self._values)
        return own + self.parent.values() if self.parent is not None else own

    def _versions(self) -> tuple[int, ...]:
        own = (self._version,)
        return own + self.parent._versions() if self.parent is not None else own

    def _pattern(self) -> re.Pattern[str] | None:
        versions = self._versions()
        seen, pattern = self._compiled
        if seen == versions:
            return pattern
        # Longest first, so a secret that contains another one is masked whole.
        ordered = sorted(set(self.values()), key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None
        self._compiled = (versions, pattern)
        return pattern

    def redact(self, text: str) -> str:
        """``text`` with every known secret replaced by ``***``."""
        if not text:
            return text
        pattern = self._pattern()
        return pattern.sub(MASK, text) if pattern is not None else text


_current: ContextVar[Secrets | None] = ContextVar("splice_secrets", default=None)


def current_secrets() -> Secrets:
    """The secrets of the runtime (or command) this code runs in; created on first use outside any."""
    secrets = _current.get()
    if secrets is None:
        secrets = Secrets()
        _current.set(secrets)
    return secrets


def inherit_secrets() -> Secrets:
    """A new set for a runtime about to open: its own, also masking what the current set masks."""
    return Secrets(parent=_current.get())


@contextmanager
def use_secrets(secrets: Secrets) -> Iterator[Secrets]:
    """Make ``secrets`` the current set for the block (and every task started inside it)."""
    token = _current.set(secrets)
    try:
        yield secrets
    finally:
        _restore(token)


def _restore(token: Token[Secrets | None]) -> None:
    try:
        _current.reset(token)
    except ValueError:  # left in another context (a fixture torn down elsewhere): set it back
        previous = token.old_value
        _current.set(None if previous is Token.MISSING else previous)


def register_secret(value: Any) -> None:
    """Remember a secret so that it is masked wherever the current runtime would write it."""
    current_secrets().add(value)


def secret_values() -> tuple[str, ...]:
    """The secrets known to the current runtime (for cassette filters)."""
    secrets = _current.get()
    return secrets.values() if secrets is not None else ()


def redact(text: str) -> str:
    """``text`` with every secret of the current runtime replaced by ``***``."""
    secrets = _current.get()
    return secrets.redact(text) if secrets is not None else text


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
    """Masks secrets in the final text of every record it sees.

    Without ``secrets`` it masks those of the runtime the log call runs in (records are filtered in
    the logging call's own context); with ``secrets`` it masks that set wherever the record comes from.
    """

    def __init__(self, secrets: Secrets | None = None) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets if self.secrets is not None else _current.get()
        if secrets is None:
            return True
        message = record.getMessage()
        cleaned = secrets.redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
