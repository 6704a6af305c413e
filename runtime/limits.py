"""Rate limits applied before a request leaves, so the SaaS side never has to say 429.

A :class:`RateLimit` combines a token bucket (requests per period) with a bound on requests in
flight; a connector keeps one per account (per QuickBooks realm, per Salesforce org) and puts it in
front of its HTTP client with :class:`runtime.transports.RateLimitTransport`.

The two halves are small interfaces (:class:`Bucket`, :class:`InFlight`) so that a budget can live
in this process (:class:`TokenBucket`, :class:`LocalInFlight`) or in a store shared by several
replicas (:mod:`runtime.budgets`) behind the same :meth:`RateLimit.slot`. Connectors do not choose:
they ask their :class:`~runtime.context.ConnectionContext` for a budget
(:meth:`~runtime.context.ConnectionContext.budget`), and the runtime decides where it is kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Protocol

import anyio

__all__ = ["Bucket", "BudgetFactory", "InFlight", "Lanes", "LocalInFlight", "RateLimit",
           "TokenBucket", "local_budget", "portions"]


def portions(tokens: float, capacity: float) -> list[float]:
    """``tokens`` cut into acquisitions a bucket of ``capacity`` can grant (a weight larger than
    the bucket, such as a big batch metered per item, is spent in turns, each within the limit)."""
    if tokens <= 0:
        return []
    whole = max(1, math.ceil(tokens / capacity))
    return [capacity] * (whole - 1) + [tokens - capacity * (whole - 1)]


class Lanes:
    """Who asks a bucket next: one-token requests need not queue behind a heavy one.

    A heavy request (a batch metered per item) waits seconds for its tokens. Were every request
    in one queue, the reads that let the next records reach their own batch would wait behind it
    as well, and the API would sit idle between batches while those reads go out. So requests of
    one token have a lane of their own and take a token as soon as one is there; heavy requests
    keep arrival order among themselves. A heavy request is overtaken by at most ``overtake``
    tokens per portion it waits for, so a stream of reads cannot starve it.
    """

    def __init__(self, overtake: float) -> None:
        self.overtake = overtake
        self._heavy = anyio.Lock()
        self._light = anyio.Lock()
        self._heavy_waiting = False
        self._overtaken = 0.0
        self._progress = anyio.Event()

    @asynccontextmanager
    async def heavy(self) -> AsyncIterator[None]:
        """The turn of a request of more than one token (arrival order among them)."""
        async with self._heavy:
            self._heavy_waiting = True
            try:
                yield
            finally:
                self._heavy_waiting = False
                self.portion_taken()

    def portion_taken(self) -> None:
        """A heavy request got a portion: light ones may overtake it again."""
        self._overtaken = 0.0
        self._progress.set()
        self._progress = anyio.Event()

    @asynccontextmanager
    async def light(self) -> AsyncIterator[None]:
        """The turn of a one-token request (arrival order among them)."""
        async with self._light:
            while self._heavy_waiting and self._overtaken >= self.overtake:
                await self._progress.wait()
            yield
            if self._heavy_waiting:
                self._overtaken += 1

    def turn(self, tokens: float) -> AbstractAsyncContextManager[None]:
        """The lane of a request of ``tokens``."""
        return self.light() if tokens <= 1 else self.heavy()


class Bucket(Protocol):
    """Requests per period: ``rate`` tokens every ``per`` seconds, at most ``capacity`` saved up."""

    rate: float
    per: float
    capacity: float

    @property
    def interval(self) -> float:
        """Seconds between two tokens at the steady rate."""

    async def acquire(self, tokens: float = 1.0) -> None:
        """Wait until ``tokens`` are available, then take them."""

    def pause(self, seconds: float) -> None:
        """Stop this process sending for ``seconds`` at once (and everyone sharing the bucket as
        soon as it can tell them: :meth:`apause` tells them before it returns)."""

    async def apause(self, seconds: float) -> None:
        """Stop everyone who spends this bucket for ``seconds`` (after a 429 despite our limits)."""


class InFlight(Protocol):
    """A bound on requests in flight."""

    def hold(self) -> AbstractAsyncContextManager[None]:
        """Hold one of the slots for the duration of a request (waits for a free one)."""


class TokenBucket:
    """``rate`` tokens per ``per`` seconds, holding at most ``burst`` (default: ``rate``).

    Waiters are served in arrival order within their lane (:class:`Lanes`): a lock is held while a
    waiter sleeps for its tokens, so a burst of callers is spread evenly instead of stampeding when
    tokens come back; a one-token request does not wait behind a batch's many.
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
        self._lanes = Lanes(self.capacity)

    @property
    def interval(self) -> float:
        """Seconds between two tokens at the steady rate."""
        return self.per / self.rate

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) / self.interval)
        self._updated = now

    async def acquire(self, tokens: float = 1.0) -> None:
        """Wait until ``tokens`` are available, then take them (more than the bucket holds are
        taken in turns, see :func:`portions`)."""
        async with self._lanes.turn(tokens):
            for portion in portions(tokens, self.capacity):
                while True:
                    self._refill()
                    if self._tokens >= portion:
                        self._tokens -= portion
                        if tokens > 1:
                            self._lanes.portion_taken()
                        break
                    await anyio.sleep((portion - self._tokens) * self.interval)

    def pause(self, seconds: float) -> None:
        """Spend the bucket so nobody sends for ``seconds`` (after a 429 despite our limits)."""
        self._refill()
        self._tokens = min(self._tokens, -seconds / self.interval)

    async def apause(self, seconds: float) -> None:
        """:meth:`pause`: everyone who spends this bucket is in this process."""
        self.pause(seconds)


class LocalInFlight:
    """At most ``limit`` requests in flight in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._limiter = anyio.CapacityLimiter(limit)

    @property
    def borrowed_tokens(self) -> int:
        """How many slots are held right now."""
        return int(self._limiter.borrowed_tokens)

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Hold one slot while the body runs."""
        async with self._limiter:
            yield


class RateLimit:
    """Requests per period plus at most ``max_concurrent`` in flight: QuickBooks' two limits.

    Built this way it is kept in this process; :meth:`combine` puts any :class:`Bucket` and
    :class:`InFlight` (a store's, shared by replicas) behind the same interface.
    """

    bucket: Bucket
    concurrency: InFlight | None

    def __init__(self, requests: float, period: float = 60.0, *, max_concurrent: int | None = None,
                 burst: float | None = None) -> None:
        self.bucket = TokenBucket(requests, period, burst=burst)
        self.concurrency = LocalInFlight(max_concurrent) if max_concurrent else None
        self._heavy_turn = anyio.Lock()

    @classmethod
    def combine(cls, bucket: Bucket, concurrency: InFlight | None = None) -> RateLimit:
        """A rate limit spending ``bucket`` and holding a slot of ``concurrency`` (if any)."""
        limit = cls.__new__(cls)
        limit.bucket = bucket
        limit.concurrency = concurrency
        limit._heavy_turn = anyio.Lock()
        return limit

    @asynccontextmanager
    async def slot(self, tokens: float = 1.0) -> AsyncIterator[None]:
        """Hold one in-flight slot and spend ``tokens`` (a request's weight: one, or one per
        item of a batch that is metered per item) for the duration of a request.

        The slot is taken before the tokens, so a request goes out as soon as it has spent them:
        the bucket's times are the requests' departures, which the SaaS side counts (tokens spent
        before a wait for a slot would let departures bunch beyond the limit in a rolling window).
        A heavy request waits seconds for its tokens while it holds its slot, so only one heavy
        request of this process waits so at a time: the others queue without a slot, and the
        slots stay free for the requests that could leave now.
        """
        if self.concurrency is None:
            await self.bucket.acquire(tokens)
            yield
            return
        if tokens <= 1:
            async with self.concurrency.hold():
                await self.bucket.acquire(tokens)
                yield
            return
        async with AsyncExitStack() as held:
            async with self._heavy_turn:
                await held.enter_async_context(self.concurrency.hold())
                await self.bucket.acquire(tokens)
            yield

    async def acquire(self, tokens: float = 1.0) -> None:
        """Spend ``tokens`` without holding an in-flight slot (a request already holding one)."""
        await self.bucket.acquire(tokens)

    async def pause(self, seconds: float) -> None:
        """Stop everyone spending this budget for ``seconds``: the ``on_throttle`` of a client."""
        await self.bucket.apause(seconds)


class BudgetFactory(Protocol):
    """Makes the named budget a connector asks for (:meth:`ConnectionContext.budget
    <runtime.context.ConnectionContext.budget>` is one; :func:`local_budget` another)."""

    def __call__(self, name: str, requests: float, period: float = 60.0, *,
                 burst: float | None = None, max_concurrent: int | None = None) -> RateLimit:
        """``requests`` per ``period`` seconds, ``burst`` saved up at most, ``max_concurrent`` in
        flight; ``name`` says whose budget it is (a realm, an org)."""


def local_budget(name: str, requests: float, period: float = 60.0, *,
                 burst: float | None = None, max_concurrent: int | None = None) -> RateLimit:
    """A :class:`BudgetFactory` whose budgets are this process's alone (``name`` is not kept)."""
    return RateLimit(requests, period, max_concurrent=max_concurrent, burst=burst)
