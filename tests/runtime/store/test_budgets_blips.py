"""A QuickBooks connection whose budget lives in a PostgreSQL store that keeps blipping still gets
its calls through: the budget rides out cut connections and leaks no in-flight slot."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import anyio
import pytest

from connectors.quickbooks.emulator import create_app
from runtime.resources import RuntimeResources
from runtime.store import open_store
from runtime.store.budgets import budget_tables
from tests.support.blips import blip_proxy
from tests.support.quickbooks import BASE, REALM, SEED_REFRESH_TOKEN, connect

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def test_calls_get_through_a_store_that_blips(postgres_url: str, pg_schema: str) -> None:
    """50 reads, 10 at a time, while the store's connections are cut every half second."""
    parts = urlsplit(postgres_url)
    emulator = create_app(refresh_token=SEED_REFRESH_TOKEN, rate_limits=True)
    done = 0

    async def reads(qb: Any) -> None:
        nonlocal done
        for _ in range(5):
            for attempt in range(20):  # what the flow's retry of a STORE:UNAVAILABLE does
                try:
                    await qb.read("Customer", "11")
                    break
                except Exception as exc:
                    if getattr(exc, "error_type", "") != "STORE:UNAVAILABLE" or attempt == 19:
                        raise
                    await anyio.sleep(0.1)
            done += 1

    async with blip_proxy(parts.hostname or "127.0.0.1", parts.port or 5432) as proxy:
        url = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}",
                                        query=f"schema={pg_schema}"))
        async with open_store(url) as store, \
                connect(emulator, store, resources=RuntimeResources()) as qb:

            async def cut_meanwhile() -> None:
                while True:
                    await anyio.sleep(0.5)
                    await proxy.cut(after=0.1)

            with anyio.fail_after(90):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(cut_meanwhile)
                    async with anyio.create_task_group() as work:
                        for _ in range(10):
                            work.start_soon(reads, qb)
                    tg.cancel_scope.cancel()
            tables = budget_tables(store)
            assert tables is not None
            with anyio.fail_after(30):
                held = await tables.slots_held(f"quickbooks:{BASE}:{REALM}")
    assert done == 50 and proxy.cuts > 0
    assert held == 0
