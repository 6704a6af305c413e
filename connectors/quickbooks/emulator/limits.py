"""Per-realm throttling of the emulator, answered with QuickBooks' real 429 body (XML).

QuickBooks meters every request against the realm's 500 a minute, and every item of a ``/batch``
like a request of its own: a batch of N items spends N of the minute (and one of the 40 batch
calls a minute). A batch that does not fit in what is left of the minute is refused whole. The
throttle also keeps what a test or benchmark needs to prove the limits were kept: how many metered
requests each realm was answered, and the most that ever fell into one rolling window.
"""

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
    """Metered requests and batch requests per window, and requests in flight, counted per realm."""

    def __init__(self, *, enabled: bool = True, per_minute: int = 500, max_concurrent: int = 10,
                 batch_per_minute: int = 40, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = enabled
        self.per_minute = per_minute
        self.max_concurrent = max_concurrent
        self.batch_per_minute = batch_per_minute
        self.window = window
        self.clock = clock
        #: Per realm: one entry per metered request (a batch of N adds N), oldest first.
        self._sent: dict[str, deque[float]] = {}
        self._batches: dict[str, deque[float]] = {}
        self.inflight: dict[str, int] = {}
        self.throttled = 0
        #: Metered requests answered per realm (a batch item counts one, as QuickBooks counts).
        self.metered: dict[str, int] = {}
        self._peak: dict[str, int] = {}

    def _expire(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window:
            times.popleft()

    def admit(self, realm: str, *, batch: bool, items: int = 1) -> bool:
        """Count a request (``items`` metered requests for a batch); ``False`` when it is over a
        limit (answer 429): a batch is refused when fewer than ``items`` remain in the window."""
        now = self.clock()
        sent = self._sent.setdefault(realm, deque())
        batches = self._batches.setdefault(realm, deque())
        self._expire(sent, now)
        self._expire(batches, now)
        weight = max(items, 1) if batch else 1
        if self.enabled:
            ok = (len(sent) + weight <= self.per_minute
                  and self.inflight.get(realm, 0) < self.max_concurrent
                  and (not batch or len(batches) < self.batch_per_minute))
            if not ok:
                self.throttled += 1
                return False
        sent.extend([now] * weight)
        if batch:
            batches.append(now)
        self.metered[realm] = self.metered.get(realm, 0) + weight
        # A rolling window holds the most requests when it ends at an admission: the count now is
        # that window's.
        self._peak[realm] = max(self._peak.get(realm, 0), len(sent))
        return True

    def peak_in_window(self, realm: str) -> int:
        """The most metered requests the realm was answered in any one rolling window."""
        return self._peak.get(realm, 0)
