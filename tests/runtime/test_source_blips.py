"""A trigger rides out store blips: its position is read and saved again after a short backoff,
and a batch whose trigger lock was lost stops as a lost lock, not as a crash."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from dsl.model import RetryPolicy
from runtime import sources
from runtime.message import Event
from runtime.sources import FlowSourceContext
from runtime.store.base import Lease, LockLostError, StoreUnavailableError

pytestmark = pytest.mark.anyio

WATCH = """
flow: watch
trigger:
  test.ticks: {}
steps:
  - log: "#[payload]"
"""


class BlippingStore:
    """Wraps a store; its next ``fail`` reads and writes raise as a cut connection does."""

    def __init__(self, inner: Any, fail: int) -> None:
        self.inner = inner
        self.fail = fail

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)
        if name not in ("get", "put"):
            return method

        async def blipping(*args: Any, **kwargs: Any) -> Any:
            if self.fail > 0:
                self.fail -= 1
                raise StoreUnavailableError("the PostgreSQL store get failed: connection reset")
            return await method(*args, **kwargs)

        return blipping


def source_context(runtime: Any) -> FlowSourceContext:
    flow = runtime.project.flows["watch"]
    return FlowSourceContext(runtime.engine, flow, None, anyio.Event())


async def test_a_triggers_position_is_saved_and_read_through_a_store_blip(
        start: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "STATE_RETRY", RetryPolicy(attempts=5, initial_delay=0.01,
                                                            max_delay=0.02))
    async with start({"watch.yaml": WATCH}) as h:
        ctx = source_context(h.runtime)
        blipping = BlippingStore(h.runtime.engine.store, fail=2)
        ctx._state.store = blipping  # type: ignore[assignment]
        await ctx.save_state({"watermark": "2026-12-01T00:00:00Z"})
        blipping.fail = 2
        assert await ctx.load_state() == {"watermark": "2026-12-01T00:00:00Z"}
        blipping.fail = 100
        with pytest.raises(StoreUnavailableError):  # a store that stays away fails the trigger
            await ctx.load_state()


class LostLease(Lease):
    async def _check(self) -> None:
        raise LockLostError("its database session failed")


async def test_a_batch_whose_lock_was_lost_raises_the_lost_lock_itself(start: Any) -> None:
    """Not an exception group the leader loop cannot tell from a crash."""
    async with start({"watch.yaml": WATCH}) as h:
        ctx = source_context(h.runtime)
        ctx.lease = LostLease("trigger:watch")
        with pytest.raises(LockLostError):
            await ctx.handle_many([Event(payload=n) for n in range(3)])
