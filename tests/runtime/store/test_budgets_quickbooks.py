"""Two replicas' QuickBooks connections to one realm, on one PostgreSQL store, spend one budget:
the emulator, counting the realm's limits as QuickBooks does (in scaled time), never says 429."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import pytest

from connectors.quickbooks.emulator import create_app
from runtime.resources import RuntimeResources
from runtime.store import open_store
from tests.support.quickbooks import SEED_REFRESH_TOKEN, connect

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

#: QuickBooks' limits in scaled time: 20 requests per 2-second "minute", 10 in flight.
WINDOW = 2.0
LIMIT = 20
#: The connection's budget in the same scaled time: its burst of 10 plus 9 a window (270 a real
#: minute is 9 every 2 s), as ``requests-per-minute`` 281 gives it (one request is kept in hand).
REQUESTS_PER_MINUTE = 281

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Arrivals:
    """Wraps the emulator: when each API call arrived, and how many were in flight at most."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: list[float] = []
        self.in_flight = self.most_in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "/v3/company/" not in scope["path"]:
            await self.app(scope, receive, send)
            return
        self.times.append(anyio.current_time())
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    def most_in_any_window(self) -> int:
        times = sorted(self.times)
        return max((sum(1 for t in times[i:] if t < start + WINDOW) for i, start in enumerate(times)),
                   default=0)


async def test_two_replicas_keep_to_one_realms_limits(postgres_url: str, pg_schema: str) -> None:
    """30 reads from two replicas at once: more than one window's worth, so the budget has to hold
    them back; as each replica's own budget would allow 20 at once plus 9 a window each, only a
    shared one keeps the realm at 20 per window and 10 in flight."""
    emulator = create_app(refresh_token=SEED_REFRESH_TOKEN, rate_limits=True,
                          requests_per_minute=LIMIT, max_concurrent=10, rate_window=WINDOW,
                          faults={"latency": 0.01})
    arrivals = Arrivals(emulator)
    url = f"{postgres_url}?schema={pg_schema}"
    settings = {"requests-per-minute": REQUESTS_PER_MINUTE, "max-concurrent": 10}
    read = 0

    async def reads(qb: Any) -> None:
        nonlocal read
        for _ in range(3):
            assert (await qb.read("Customer", "11"))["Id"] == "11"
            read += 1

    async with open_store(url) as one, open_store(url) as other, \
            connect(arrivals, one, resources=RuntimeResources(), **settings) as first, \
            connect(arrivals, other, resources=RuntimeResources(), **settings) as second:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for qb in (first, second):
                    for _ in range(5):
                        tg.start_soon(reads, qb)
    assert read == 30
    assert emulator.state.emulator.throttle.throttled == 0
    assert len(arrivals.times) == 30  # no call was answered 429 and sent again
    assert arrivals.most_in_any_window() <= LIMIT
    assert arrivals.most_in_flight <= 10
