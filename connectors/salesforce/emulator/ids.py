"""Salesforce-shaped ids and timestamps."""

from __future__ import annotations

import itertools
import string
from datetime import UTC, datetime

__all__ = ["Clock", "IdFactory", "case_safe", "format_datetime", "parse_any_datetime"]

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_SUFFIX = string.ascii_uppercase + "012345"


def case_safe(id15: str) -> str:
    """The 18-character case-insensitive form of a 15-character id (the documented checksum)."""
    suffix = ""
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5:chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        suffix += _SUFFIX[bits]
    return id15 + suffix


class IdFactory:
    """New 18-character ids: key prefix + pod ``Rx0`` + a base-62 counter + checksum."""

    def __init__(self, start: int = 1) -> None:
        self._counter = itertools.count(start * 7919)

    def new(self, prefix: str) -> str:
        """A fresh id for an object with this key prefix."""
        n = next(self._counter) * 104729 + 2_000_000_000
        digits = ""
        while n:
            n, r = divmod(n, 62)
            digits = _BASE62[r] + digits
        return case_safe(prefix + "Rx0" + digits.rjust(9, "0")[-9:])


def format_datetime(value: datetime) -> str:
    """``2026-03-31T17:04:11.000+0000``: the REST form (UTC, offset without a colon)."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def parse_any_datetime(text: str) -> datetime:
    """Parse REST, SOQL-literal and ISO datetimes (naive means UTC)."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    if len(value) > 5 and value[-5] in "+-" and value[-3] != ":":
        value = value[:-2] + ":" + value[-2:]
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Clock:
    """UTC wall clock at millisecond precision that never goes backwards."""

    def __init__(self) -> None:
        self._last = datetime(1970, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        """The current time, >= every earlier answer."""
        current = datetime.now(UTC)
        current = current.replace(microsecond=current.microsecond // 1000 * 1000)
        if current < self._last:
            current = self._last
        self._last = current
        return current
