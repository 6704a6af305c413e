"""What the runtime gives connectors beside parameters: ``ctx.once``, ``ctx.inbox``, token seeding."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
from opentelemetry import trace

from runtime import (
    AccessToken,
    ObjectStore,
    OperationContext,
    SpliceError,
    StoredTokenSource,
)
from runtime.message import Message
from runtime.oauth import TOKENS_NAMESPACE
from runtime.testing import RecordingSourceContext

pytestmark = pytest.mark.anyio


def _ctx(store: ObjectStore) -> OperationContext:
    return OperationContext(flow="f", path="flow/f/steps/0", message=Message(payload=None),
                            store=store, logger=logging.getLogger("splice.test"),
                            tracer=trace.get_tracer("splice.test"))


class Effect:
    """Counts calls; fails the first ``failures`` of them."""

    def __init__(self, failures: int = 0) -> None:
        self.calls = 0
        self.failures = failures

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.calls <= self.failures:
            raise SpliceError("effect failed", error_type="TEST:FAILED", retryable=True)
        return {"id": f"rec-{self.calls}"}


async def test_once_does_the_effect_once_and_replays_its_recorded_result(store: ObjectStore) -> None:
    """A replay with the same key gets the first result back; the effect is not done again."""
    effect = Effect()
    first = await _ctx(store).once("opp-1", effect)
    again = await _ctx(store).once("opp-1", effect)
    assert first == again == {"id": "rec-1"}
    assert effect.calls == 1
    assert (await store.get("idempotency", "opp-1"))["result"] == {"id": "rec-1"}
    assert await _ctx(store).once("opp-2", effect) == {"id": "rec-2"}


async def test_once_records_nothing_on_failure_so_a_retry_does_the_effect(store: ObjectStore) -> None:
    """The failure propagates and the key is free again."""
    effect = Effect(failures=1)
    with pytest.raises(SpliceError):
        await _ctx(store).once("opp-1", effect)
    assert await store.get("idempotency", "opp-1") is None
    assert await _ctx(store).once("opp-1", effect) == {"id": "rec-2"}


async def test_once_releases_the_key_when_the_step_is_cancelled(store: ObjectStore) -> None:
    """Cancelled mid-effect: the claim is released (shielded), not left to its lease."""
    started = anyio.Event()

    async def hangs() -> None:
        started.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        async def run() -> None:
            await _ctx(store).once("opp-1", hangs)

        tg.start_soon(run)
        await started.wait()
        assert (await store.get("idempotency", "opp-1"))["state"] == "in-progress"
        tg.cancel_scope.cancel()
    assert await store.get("idempotency", "opp-1") is None


async def test_once_while_another_execution_holds_the_key_is_retryable(store: ObjectStore) -> None:
    """A live claim elsewhere: FLOW:IN_PROGRESS by default, or the connector's own error."""
    release = anyio.Event()
    started = anyio.Event()

    async def holds() -> str:
        started.set()
        await release.wait()
        return "done"

    async with anyio.create_task_group() as tg:
        tg.start_soon(_ctx(store).once, "opp-1", holds)
        await started.wait()
        with pytest.raises(SpliceError) as info:
            await _ctx(store).once("opp-1", Effect())
        assert info.value.error_type == "FLOW:IN_PROGRESS"
        assert info.value.retryable and info.value.retry_after == 5.0
        assert info.value.details == {"idempotencyKey": "opp-1"}
        own = SpliceError("busy", error_type="MINE:BUSY", retryable=True)
        with pytest.raises(SpliceError) as custom:
            await _ctx(store).once("opp-1", Effect(), busy=lambda: own)
        assert custom.value is own
        release.set()


async def test_once_keeps_namespaces_apart_and_runs_unkeyed_calls_every_time(
        store: ObjectStore) -> None:
    """A connector's own ledger namespace; an empty key means no bookkeeping at all."""
    effect = Effect()
    await _ctx(store).once("k", effect, namespace="mine", lease=20.0)
    assert (await store.get("mine", "k"))["state"] == "done"
    assert await store.get("idempotency", "k") is None
    await _ctx(store).once(None, effect)
    await _ctx(store).once("", effect)
    assert effect.calls == 3


async def test_inbox_of_a_source_context_is_durable_in_the_store(store: ObjectStore) -> None:
    """Two contexts on one store see the same inbox; a redelivery is dropped."""
    first = RecordingSourceContext(store)
    assert await first.inbox("hooks").put("d-1", {"n": 1})
    assert not await first.inbox("hooks").put("d-1", {"n": 1})
    later = RecordingSourceContext(store)
    (item,) = await later.inbox("hooks").pending()
    assert (item.id, item.payload) == ("d-1", {"n": 1})
    assert await later.inbox("hooks").complete("d-1")
    assert await later.inbox("hooks").pending() == []
    assert await later.inbox("other").count() == 0


async def test_a_seeded_token_is_what_the_connection_then_uses(store: ObjectStore) -> None:
    """A connect command seeds the first token without a fetcher; the connection reads it."""
    seeded = AccessToken("at-seeded-1", expires_at=4_000_000_000.0,
                         extra={"refresh_token": "rt-seeded-1"})
    await StoredTokenSource(store, "acct:1").seed(seeded)
    assert (await store.get(TOKENS_NAMESPACE, "acct:1"))["value"] == "at-seeded-1"

    async def fetch(current: AccessToken | None) -> AccessToken:
        raise AssertionError("a seeded, valid token needs no fetch")

    source = StoredTokenSource(store, "acct:1", fetch)
    assert (await source.token()).value == "at-seeded-1"
    assert (await source.stored()) == seeded


async def test_a_token_source_without_fetcher_says_so_when_it_would_need_one(
        store: ObjectStore) -> None:
    """Reading and seeding need no fetcher; getting a token that is not there does."""
    with pytest.raises(RuntimeError, match="cannot fetch"):
        await StoredTokenSource(store, "acct:none").token()
