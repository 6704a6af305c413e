"""Backoff with jitter, and reading the remote side's ``Retry-After``.

Used by the engine's ``on-error`` retries and by :class:`runtime.transports.RetryTransport`, so a step
retry and an HTTP retry wait the same way.
"""

from __future__ import annotations

import random
import time
from email.utils import parsedate_to_datetime

__all__ = ["backoff_delay", "parse_retry_after"]


def backoff_delay(
    attempt: int,
    *,
    initial: float = 1.0,
    multiplier: float = 2.0,
    maximum: float = 60.0,
    jitter: float = 0.2,
    exponential: bool = True,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based).

    The exponential (or fixed) delay is capped at ``maximum``, spread by +-``jitter`` so a crowd of
    clients does not come back in lockstep, and never shorter than a ``retry_after`` hint: the server
    said when it is ready, and asking earlier only burns quota.
    """
    base = initial * (multiplier ** (attempt - 1)) if exponential else initial
    base = min(base, maximum)
    if jitter:
        spread = (rng or random).uniform(-jitter, jitter)
        base = max(0.0, base * (1.0 + spread))
    if retry_after is not None:
        base = max(base, retry_after)
    return base


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header: delta-seconds or an HTTP date; ``None`` if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
