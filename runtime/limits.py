"""Rate limits applied before a request leaves, so the SaaS side never has to say 429.

A :class:`RateLimit` combines a token bucket (requests per period) with a concurrency bound; a
connector keeps one per account (per QuickBooks realm, per Salesforce org) and puts it in front of
its HTTP client with :class:`runtime.transports.RateLimitTransport`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio

__all__ = ["RateLimit", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per ``per`` seconds, holding at most ``burst`` (default: ``rate``).

    Waiters are served in arrival order: a lock is held while a waiter sleeps for its token, so a
    burst of callers is spread evenly instead of stampeding when tokens come back.
    """

    def __init__(self, rate: float, per: float = 1.0, *, burst: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or per <= 0:
            raise ValueError("rate and per must be positive")
        self.rate = rate
        self.per = per
        self.capacity = float(burst if burst is not None else rate)
        self._tokens = self.capacity
        self._clock = clock
        self._updated = clock()
        self._lock = anyio.Lock()

    @property
    def interval(self) -> float:
        """Seconds between two tokens at the steady rate."""
        return self.per / self.rate

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) / self.interval)
        self._updated = now

    async def acquire(self, tokens: float = 1.0) -> None:
        """Wait until ``tokens`` are available, then take them."""
        async with self._lock:
            while True:
                self._refill()
                if self._tokens >= tokens:
                    self._tokens -= tokens
                    return
                await anyio.sleep((tokens - self._tokens) * self.interval)

    def pause(self, seconds: float) -> None:
        """Spend the bucket so nobody sends for ``seconds`` (after a 429 despite our limits)."""
        self._refill()
        self._tokens = min(self._tokens, -seconds / self.interval)


class RateLimit:
    """Requests per period plus at most ``max_concurrent`` in flight: QuickBooks' two limits."""

    def __init__(self, requests: float, period: float = 60.0, *, max_concurrent: int | None = None,
                 burst: float | None = None) -> None:
        self.bucket = TokenBucket(requests, period, burst=burst)
        self.concurrency = anyio.CapacityLimiter(max_concurrent) if max_concurrent else None

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one in-flight slot and spend one token for the duration of a request."""
        if self.concurrency is None:
            await self.bucket.acquire()
            yield
            return
        async with self.concurrency:
            await self.bucket.acquire()
            yield
