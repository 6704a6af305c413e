"""Per-realm throttling of the emulator, answered with QuickBooks' real 429 body (XML)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["THROTTLE_BODY", "RealmThrottle"]

THROTTLE_BODY = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<IntuitResponse time="{time}" xmlns="http://schema.intuit.com/finance/v3">'
    '<Fault type="SERVICE"><Error code="3001">'
    "<Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>"
    "<Detail>The request limit was reached.  Try again later</Detail>"
    "</Error></Fault></IntuitResponse>"
)


class RealmThrottle:
    """Requests and batch requests per window, and requests in flight, counted per realm."""

    def __init__(self, *, enabled: bool = True, per_minute: int = 500, max_concurrent: int = 10,
                 batch_per_minute: int = 40, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled
        self.per_minute = per_minute
        self.max_concurrent = max_concurrent
        self.batch_per_minute = batch_per_minute
        self.window = window
        self.clock = clock
        self._sent: dict[str, deque[float]] = {}
        self._batches: dict[str, deque[float]] = {}
        self.inflight: dict[str, int] = {}
        self.throttled = 0

    @staticmethod
    def _room(times: deque[float], limit: int, now: float, window: float) -> bool:
        while times and times[0] <= now - window:
            times.popleft()
        return len(times) < limit

    def admit(self, realm: str, *, batch: bool) -> bool:
        """Count a request; ``False`` when it is over a limit (answer 429)."""
        if not self.enabled:
            return True
        now = self.clock()
        sent = self._sent.setdefault(realm, deque())
        batches = self._batches.setdefault(realm, deque())
        ok = (self._room(sent, self.per_minute, now, self.window)
              and self.inflight.get(realm, 0) < self.max_concurrent
              and (not batch or self._room(batches, self.batch_per_minute, now, self.window)))
        if not ok:
            self.throttled += 1
            return False
        sent.append(now)
        if batch:
            batches.append(now)
        return True
