"""Micro-batching: calls of one step from many executions go to the operation's batch form together,
and each execution keeps its own outcome, error handling and dead letter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import anyio
import httpx
import pytest

import connectors.http.plugin as http_plugin
from runtime.batching import ATTR_BATCH_SIZE, BatchGatherer, BatchRequest
from runtime.context import OperationContext
from runtime.errors import SpliceError
from runtime.hookspecs import hookimpl
from runtime.message import Event, Outcome
from runtime.registry import Registry, load_registry
from runtime.spec import BatchCall, BatchForm, Connector, OperationSpec, Param
from runtime.store.executions import ExecutionFilter, ExecutionHistory
from runtime.testing import wait_until
from tests.runtime.conftest import Recorder, TestPlugin

pytestmark = pytest.mark.anyio


@dataclass
class Bulk:
    """What the bulk API saw: each batch's parameters, each single call's, and failures to come."""

    batches: list[list[dict[str, Any]]] = field(default_factory=list)
    singles: list[dict[str, Any]] = field(default_factory=list)
    #: How many of the next batches fail as a whole.
    failing_batches: int = 0

    def sizes(self) -> list[int]:
        return [len(batch) for batch in self.batches]


def make_bulk_connector(bulk: Bulk) -> Connector:
    """``bulk.save`` (a batch form of up to 30 calls per realm) and ``bulk.plain`` (none)."""

    async def save(ctx: OperationContext, params: dict[str, Any]) -> Any:
        bulk.singles.append(params)
        return {"id": f"single-{params['id']}"}

    async def save_batch(calls: Sequence[BatchCall]) -> list[Any]:
        bulk.batches.append([call.params for call in calls])
        if bulk.failing_batches:
            bulk.failing_batches -= 1
            raise SpliceError("the bulk API is down", error_type="BULK:UNAVAILABLE", retryable=True)
        return [SpliceError(f"record {call.params['id']} is invalid", error_type="BULK:INVALID")
                if call.params["invalid"] else {"id": f"batched-{call.params['id']}",
                                                "realm": call.params["realm"]}
                for call in calls]

    params = (Param("id", required=True), Param("realm", default="r1"),
              Param("invalid", type="boolean", default=False))
    return Connector(
        name="bulk",
        summary="A bulk API for batching tests",
        operations=(
            OperationSpec("save", save, params=params, needs_connection=False,
                          batch=BatchForm(save_batch, max_size=30, key=lambda p: p["realm"])),
            OperationSpec("plain", save, params=params, needs_connection=False),
        ),
    )


class BulkPlugin:
    __test__ = False

    def __init__(self, bulk: Bulk) -> None:
        self.bulk = bulk

    @hookimpl
    def splice_connectors(self) -> list[Connector]:
        return [make_bulk_connector(self.bulk)]


@pytest.fixture
def bulk() -> Bulk:
    return Bulk()


@pytest.fixture
def registry(recorder: Recorder, bulk: Bulk) -> Registry:
    """The runtime tests' registry with the bulk connector added."""
    return load_registry([http_plugin, TestPlugin(recorder), BulkPlugin(bulk)], load_entry_points=False)


async def run_all(h: Any, flow: str, payloads: list[dict[str, Any]]) -> list[Outcome]:
    """Run one execution per payload, all at once; their outcomes in the payloads' order."""
    outcomes: list[Outcome | None] = [None] * len(payloads)

    async def one(index: int) -> None:
        outcomes[index] = await h.runtime.engine.run(flow, Event(payload=payloads[index]))

    with anyio.fail_after(30):  # a deadline, not a timing: a lost call would hang here
        async with anyio.create_task_group() as tg:
            for index in range(len(payloads)):
                tg.start_soon(one, index)
    return [outcome for outcome in outcomes if outcome is not None]


SAVE_FLOW = """
flow: bulk
max-concurrency: 30
batch: {{ size: {size}, within: {within} }}
steps:
  - bulk.save: {{ id: "#[payload.id]", realm: "#[payload.realm ? payload.realm : 'r1']",
                  invalid: "#[payload.invalid = true]" }}
    target: saved
  - transform: "$vars.saved.id"
{on_error}
"""


def save_flow(size: int = 30, within: str = "60s", on_error: str = "") -> str:
    return SAVE_FLOW.format(size=size, within=within, on_error=on_error)


async def test_thirty_concurrent_events_make_one_batch_call(start: Any, bulk: Bulk) -> None:
    async with start({"bulk.yaml": save_flow()}) as h:
        outcomes = await run_all(h, "bulk", [{"id": i} for i in range(30)])
        exposition = h.runtime.resources.metrics.exposition().decode()
    assert bulk.sizes() == [30] and bulk.singles == []
    assert [o.status for o in outcomes] == ["completed"] * 30
    # Each execution got its own record's result, stored as the single call's would be.
    assert [o.message.payload for o in outcomes] == [f"batched-{i}" for i in range(30)]
    assert 'splice_batch_size_count{flow="bulk",operation="bulk.save"} 1.0' in exposition
    assert 'splice_batch_size_sum{flow="bulk",operation="bulk.save"} 30.0' in exposition
    spans = h.spans.get_finished_spans()
    [batch] = [s for s in spans if s.name == "batch bulk.save"]
    assert batch.attributes is not None and batch.attributes[ATTR_BATCH_SIZE] == 30
    assert len(batch.links) == 30
    steps = [s for s in spans if s.name == "step bulk.save"]
    assert len(steps) == 30 and all(s.attributes and s.attributes[ATTR_BATCH_SIZE] == 30 for s in steps)


async def test_fewer_events_are_sent_once_the_oldest_waited_within(start: Any, bulk: Bulk) -> None:
    async with start({"bulk.yaml": save_flow(within="100ms")}) as h:
        outcomes = await run_all(h, "bulk", [{"id": i} for i in range(5)])
    assert bulk.sizes() == [5]
    assert [o.message.payload for o in outcomes] == [f"batched-{i}" for i in range(5)]


async def test_closing_the_runtime_sends_what_is_gathering(start: Any, bulk: Bulk) -> None:
    """Batches waiting for an hour go at once when the engine closes: shutdown never waits them out."""
    async with start({"bulk.yaml": save_flow(within="1h")}) as h:
        engine = h.runtime.engine
        outcomes: list[Outcome] = []

        async def one(i: int) -> None:
            outcomes.append(await engine.run("bulk", Event(payload={"id": i})))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for i in range(3):
                    tg.start_soon(one, i)
                await wait_until(lambda: engine.batches.waiting() == 3, what="three calls waiting")
                assert bulk.batches == []
                await engine.aclose()
    assert bulk.sizes() == [3] and sorted(o.message.payload for o in outcomes) == [
        "batched-0", "batched-1", "batched-2"]


async def test_one_invalid_record_is_one_dead_letter(start: Any, bulk: Bulk) -> None:
    flow = save_flow(size=10, on_error="on-error:\n  - when: BULK:INVALID\n    then: dead-letter\n")
    async with start({"bulk.yaml": flow}) as h:
        outcomes = await run_all(h, "bulk", [{"id": i, "invalid": i == 3} for i in range(10)])
        letters = await h.runtime.engine.dead_letters.list(flow="bulk")
    assert bulk.sizes() == [10]
    assert [o.status for o in outcomes] == ["completed"] * 3 + ["dead-lettered"] + ["completed"] * 6
    assert outcomes[3].error is not None and outcomes[3].error.error_type == "BULK:INVALID"
    assert outcomes[3].error.details["step"] == "flow/bulk/steps/0"
    assert [o.message.payload for o in outcomes if o.status == "completed"] == [
        f"batched-{i}" for i in range(10) if i != 3]
    assert [letter.message["payload"] for letter in letters] == [{"id": 3, "invalid": True}]


async def test_a_failed_batch_fails_every_call_and_each_retries_on_its_own(start: Any, bulk: Bulk) -> None:
    flow = save_flow(size=5, on_error="on-error:\n  - when: BULK:UNAVAILABLE\n"
                                      "    retry: { attempts: 2, initial-delay: 10ms, jitter: 0 }\n"
                                      "    then: dead-letter\n")
    bulk.failing_batches = 1
    async with start({"bulk.yaml": flow}) as h:
        outcomes = await run_all(h, "bulk", [{"id": i} for i in range(5)])
    # The first batch failed for all five; each execution retried its own call, and the retries
    # met in batches again.
    assert bulk.sizes()[0] == 5 and sum(bulk.sizes()) == 10
    assert sorted(call["id"] for batch in bulk.batches[1:] for call in batch) == list(range(5))
    assert [o.status for o in outcomes] == ["completed"] * 5


async def test_without_a_retry_each_execution_keeps_its_own_error(start: Any, bulk: Bulk) -> None:
    flow = save_flow(size=4, on_error="on-error:\n  - when: BULK:UNAVAILABLE\n    then: dead-letter\n")
    bulk.failing_batches = 1
    async with start({"bulk.yaml": flow}) as h:
        outcomes = await run_all(h, "bulk", [{"id": i} for i in range(4)])
    assert bulk.sizes() == [4]
    assert [o.status for o in outcomes] == ["dead-lettered"] * 4
    errors = [o.error for o in outcomes]
    assert all(e is not None and e.error_type == "BULK:UNAVAILABLE" for e in errors)
    assert len({id(e) for e in errors}) == 4 and len({o.dead_letter_id for o in outcomes}) == 4


async def test_a_step_with_batch_false_calls_one_by_one(start: Any, bulk: Bulk) -> None:
    flow = """
    flow: bulk
    max-concurrency: 10
    batch: { size: 5, within: 60s }
    steps:
      - bulk.save: { id: "#[payload.id]" }
        batch: false
    """
    async with start({"bulk.yaml": flow}) as h:
        outcomes = await run_all(h, "bulk", [{"id": i} for i in range(5)])
    assert bulk.batches == [] and sorted(call["id"] for call in bulk.singles) == list(range(5))
    assert sorted(o.message.payload["id"] for o in outcomes) == [f"single-{i}" for i in range(5)]


async def test_calls_with_different_keys_never_share_a_batch(start: Any, bulk: Bulk) -> None:
    async with start({"bulk.yaml": save_flow(size=3)}) as h:
        await run_all(h, "bulk", [{"id": i, "realm": "r1" if i % 2 else "r2"} for i in range(6)])
    assert bulk.sizes() == [3, 3]
    assert all(len({call["realm"] for call in batch}) == 1 for batch in bulk.batches)


async def test_a_dry_run_previews_each_write_instead_of_batching(start: Any, bulk: Bulk) -> None:
    flow = """
    flow: bulk
    max-concurrency: 10
    batch: { size: 3, within: 60s }
    steps:
      - dry-run:
          steps:
            - bulk.save: { id: "#[payload.id]" }
    """
    async with start({"bulk.yaml": flow}) as h:
        outcomes = await run_all(h, "bulk", [{"id": i} for i in range(3)])
    assert bulk.batches == [] and bulk.singles == []
    assert [o.status for o in outcomes] == ["completed"] * 3
    assert [len(o.message.vars["writes"]) for o in outcomes] == [1, 1, 1]


async def test_the_timeline_says_the_step_went_in_a_batch(start: Any, bulk: Bulk) -> None:
    async with start({"bulk.yaml": save_flow(size=2)}) as h:
        await run_all(h, "bulk", [{"id": i} for i in range(2)])
        await h.runtime.engine.history.flush()
        records = await ExecutionHistory(h.runtime.store).list(ExecutionFilter(flow="bulk"))
    assert len(records) == 2
    for record in records:
        saved = [s for s in record["steps"] if s["kind"] == "bulk.save"]
        assert [s.get("batchSize") for s in saved] == [2]


PAYMENTS = """
flow: payments
max-concurrency: 12
batch: { size: 12, within: 60s }
trigger:
  http.listener: { path: /payments, method: POST }
steps:
  - bulk.save: { id: "#[payload.id]", invalid: "#[payload.invalid = true]" }
on-error:
  - when: BULK:INVALID
    then: dead-letter
"""


async def test_requests_to_a_listener_are_answered_each_from_one_batch(start: Any, bulk: Bulk) -> None:
    """Twelve clients post at once: one batch call; eleven get their record, the invalid one an
    error answer and a dead letter of its own."""
    from runtime.server.app import create_app

    async with start({"payments.yaml": PAYMENTS}) as h:
        app = create_app(h.runtime, drain_timeout=5)
        answers: dict[int, httpx.Response] = {}
        async with app.lifespan():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://splice") as client:

                async def pay(i: int) -> None:
                    answers[i] = await client.post("/payments", json={"id": i, "invalid": i == 7})

                with anyio.fail_after(30):
                    async with anyio.create_task_group() as tg:
                        for i in range(12):
                            tg.start_soon(pay, i)
        letters = await h.runtime.engine.dead_letters.list(flow="payments")
    assert bulk.sizes() == [12]
    assert {i: r.json() for i, r in answers.items() if i != 7} == {
        i: {"id": f"batched-{i}", "realm": "r1"} for i in range(12) if i != 7}
    assert answers[7].status_code >= 400 and answers[7].json()["error"]["type"] == "BULK:INVALID"
    assert [letter.message["payload"] for letter in letters] == [{"id": 7, "invalid": True}]


# ------------------------------------------------------------------------- the gatherer itself


def _request(form: BatchForm, size: int, within: float = 60.0) -> BatchRequest:
    return BatchRequest(flow="f", operation="bulk.save", step="step-0", connection=None, form=form,
                        size=size, within=within)


def _call(name: str) -> BatchCall:
    return BatchCall(ctx=cast(Any, None), params={"id": name})


async def test_a_cancelled_call_leaves_the_batch_and_the_others_still_go() -> None:
    """The first call leads; cancelled while waiting, it leaves and the next one leads."""
    sent: list[list[str]] = []

    async def handler(calls: Sequence[BatchCall]) -> list[Any]:
        sent.append([call.params["id"] for call in calls])
        return [f"done-{call.params['id']}" for call in calls]

    gatherer, request = BatchGatherer(), _request(BatchForm(handler), size=3)
    results: dict[str, Any] = {}
    scopes = {name: anyio.CancelScope() for name in "abcd"}

    async def one(name: str) -> None:
        with scopes[name]:
            results[name] = await gatherer.call(request, _call(name))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(one, "a")
            await wait_until(lambda: gatherer.waiting() == 1)
            tg.start_soon(one, "b")
            await wait_until(lambda: gatherer.waiting() == 2)
            scopes["a"].cancel()
            await wait_until(lambda: gatherer.waiting() == 1, what="the cancelled call to leave")
            tg.start_soon(one, "c")
            tg.start_soon(one, "d")
    assert sent == [["b", "c", "d"]]
    assert results == {"b": ("done-b", 3), "c": ("done-c", 3), "d": ("done-d", 3)}


async def test_a_leader_cancelled_while_sending_still_hands_out_the_results() -> None:
    started, release = anyio.Event(), anyio.Event()

    async def handler(calls: Sequence[BatchCall]) -> list[Any]:
        started.set()
        await release.wait()
        return [call.params["id"] for call in calls]

    gatherer, request = BatchGatherer(), _request(BatchForm(handler), size=2)
    results: dict[str, Any] = {}
    leader = anyio.CancelScope()

    async def lead() -> None:
        with leader:
            results["a"] = await gatherer.call(request, _call("a"))

    async def follow() -> None:
        results["b"] = await gatherer.call(request, _call("b"))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lead)
            await wait_until(lambda: gatherer.waiting() == 1)
            tg.start_soon(follow)
            await started.wait()
            leader.cancel()
            release.set()
    # The send was shielded from the leader's cancellation: the other call got its result (the
    # leader's own call was made too; its execution stops at its next await).
    assert results["b"] == ("b", 2)


async def test_a_handler_that_breaks_fails_each_call_with_a_typed_error() -> None:
    async def handler(calls: Sequence[BatchCall]) -> list[Any]:
        raise KeyError("token=abc")

    async def short(calls: Sequence[BatchCall]) -> list[Any]:
        return []

    gatherer = BatchGatherer()
    for form in (BatchForm(handler), BatchForm(short)):
        with pytest.raises(SpliceError) as info:
            await gatherer.call(_request(form, size=1), _call("a"))
        assert info.value.error_type == "BULK:UNEXPECTED"
