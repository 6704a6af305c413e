"""Batch forms of the QuickBooks operations, called as the runtime calls them (a list of
BatchCall) against the emulator in process: one ``/batch`` for many creates, each call with its
own outcome and its own exactly-once guards; coalesced queries; single-flight matching."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.creates import SENT_NAMESPACE
from connectors.quickbooks.operations import OPERATIONS
from runtime import BatchCall, SpliceError
from runtime.store import ObjectStore
from tests.support.quickbooks import REALM, connect, op_context, run_op

pytestmark = pytest.mark.anyio
HOURS, AMY = "9", "11"


class CountingApp:
    """The emulator app, counting the API calls it is sent (method and resource)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state = app.state
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and "/v3/company/" in scope["path"]:
            self.calls.append((scope["method"], scope["path"].rsplit(f"{REALM}/", 1)[-1]))
        await self.app(scope, receive, send)

    def to(self, resource: str) -> int:
        return sum(1 for _method, path in self.calls if path == resource)


@pytest.fixture
def counted(emulator: Any) -> CountingApp:
    return CountingApp(emulator)


@pytest.fixture
async def qbc(counted: CountingApp, store: ObjectStore) -> AsyncIterator[QuickBooksClient]:
    """A connection to the counted emulator."""
    async with connect(counted, store) as client:
        yield client


def spec(name: str) -> Any:
    return next(op for op in OPERATIONS if op.name == name)


def calls(name: str, client: QuickBooksClient, store: ObjectStore,
          params: list[dict[str, Any]]) -> list[BatchCall]:
    """One BatchCall per parameter set, as the runtime renders them (defaults, types)."""
    op = spec(name)
    return [BatchCall(op_context(client, store), op.coerce({k.replace("_", "-"): v
                                                           for k, v in p.items()}))
            for p in params]


async def run_batch(name: str, client: QuickBooksClient, store: ObjectStore,
                    params: list[dict[str, Any]]) -> list[Any]:
    form = spec(name).batch
    assert form is not None
    return list(await form.handler(calls(name, client, store, params)))


def invoice(doc: str, customer: str = AMY, amount: int = 150) -> dict[str, Any]:
    return {"CustomerRef": {"value": customer}, "DocNumber": doc, "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": amount,
         "SalesItemLineDetail": {"ItemRef": {"value": HOURS}, "Qty": 1, "UnitPrice": amount}}]}


def company(app: Any) -> Any:
    return app.state.emulator.companies[REALM]


def invoices(app: Any, doc_prefix: str) -> list[dict[str, Any]]:
    return [i for i in company(app).tables["Invoice"].values()
            if str(i.get("DocNumber", "")).startswith(doc_prefix)]


# ----------------------------------------------------------------- creates


async def test_thirty_creates_are_one_http_call_and_thirty_metered(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    """A batch of 30 creates: one POST /batch, metered as 30 requests; each call its own invoice,
    each with its own ledger entry (a replay of the batch sends nothing)."""
    throttle = counted.state.emulator.throttle
    before = throttle.metered.get(REALM, 0)
    params = [{"entity": "Invoice", "record": invoice(f"B30-{n}"), "idempotency_key": f"opp-{n}"}
              for n in range(30)]
    results = await run_batch("create", qbc, store, params)
    assert [r["DocNumber"] for r in results] == [f"B30-{n}" for n in range(30)]
    assert len({r["Id"] for r in results}) == 30
    assert counted.calls == [("POST", "batch")]
    assert throttle.metered[REALM] - before == 30
    again = await run_batch("create", qbc, store, params)
    assert [r["Id"] for r in again] == [r["Id"] for r in results]
    assert counted.calls == [("POST", "batch")]
    assert len(invoices(counted, "B30-")) == 30


async def test_one_invalid_item_fails_only_its_own_call(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    """A bad customer reference fails that call with its typed error; the others are created;
    its sent mark is gone (nothing was made), the others' stay."""
    params = [{"entity": "Invoice", "record": invoice(f"BAD-{n}", "99999" if n == 1 else AMY),
               "idempotency_key": f"bad-{n}"} for n in range(3)]
    results = await run_batch("create", qbc, store, params)
    assert isinstance(results[1], SpliceError)
    assert results[1].error_type == "QUICKBOOKS:INVALID_REFERENCE"
    assert [r["DocNumber"] for r in (results[0], results[2])] == ["BAD-0", "BAD-2"]
    assert sorted(i["DocNumber"] for i in invoices(counted, "BAD-")) == ["BAD-0", "BAD-2"]
    assert await store.get(SENT_NAMESPACE, f"{REALM}:Invoice:bad-1") is None
    assert await store.get(SENT_NAMESPACE, f"{REALM}:Invoice:bad-0") is not None
    # A missing idempotency key is that call's error too.
    mixed = await run_batch("create", qbc, store, [
        {"entity": "Invoice", "record": invoice("BAD-3"), "idempotency_key": "bad-3"},
        {"entity": "Invoice", "record": invoice("BAD-4")}])
    assert mixed[0]["DocNumber"] == "BAD-3"
    assert isinstance(mixed[1], SpliceError) and mixed[1].error_type == "QUICKBOOKS:VALIDATION"


async def test_each_failed_call_gets_its_own_error_instance(
        qbc: QuickBooksClient, store: ObjectStore) -> None:
    """Two refused items: two errors, not one shared instance."""
    results = await run_batch("create", qbc, store, [
        {"entity": "Invoice", "record": invoice(f"TWO-{n}", "99999"), "idempotency_key": f"two-{n}"}
        for n in range(2)])
    assert all(isinstance(r, SpliceError) for r in results)
    assert results[0] is not results[1]


async def test_a_lost_batch_answer_is_looked_up_and_nothing_is_made_twice(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    """The batch's answer is lost (502) after every invoice was made: one lookup query finds them
    all and nothing is sent again; no duplicates, and each call gets its own invoice."""
    counted.state.emulator.faults.update({"lose_answers": 1, "lose_answers_entity": "Invoice",
                                          "lost_answer": "502"})
    params = [{"entity": "Invoice", "record": invoice(f"LOST-{n}"), "idempotency_key": f"lost-{n}"}
              for n in range(5)]
    results = await run_batch("create", qbc, store, params)
    assert [r["DocNumber"] for r in results] == [f"LOST-{n}" for n in range(5)]
    assert len(invoices(counted, "LOST-")) == 5
    assert counted.to("batch") == 1
    assert counted.to("query") == 1


async def test_after_a_lost_answer_only_what_is_missing_is_sent_again(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    """Two of four invoices were made by an earlier attempt whose answer was lost (their sent
    marks say so): the batch looks them up first, and sends only the two that are missing."""
    first = await run_batch("create", qbc, store, [
        {"entity": "Invoice", "record": invoice(f"HALF-{n}"), "idempotency_key": f"half-{n}"}
        for n in range(2)])
    made = {r["Id"] for r in first}
    # The ledger entries of the earlier attempt never completed (the process died after sending).
    for n in range(2):
        await store.delete("quickbooks-ledger", f"{REALM}:create:Invoice:half-{n}")
    counted.calls.clear()
    results = await run_batch("create", qbc, store, [
        {"entity": "Invoice", "record": invoice(f"HALF-{n}"), "idempotency_key": f"half-{n}"}
        for n in range(4)])
    assert {r["Id"] for r in results[:2]} == made
    assert len(invoices(counted, "HALF-")) == 4
    assert counted.calls == [("GET", "query"), ("POST", "batch")]


async def test_creates_without_a_lookup_key_rely_on_the_requestid(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    """Invoices without a DocNumber cannot be looked up: their batch is resent by the HTTP layer
    after a 503 with the same requestid, and the emulator answers the first response."""
    counted.state.emulator.faults.update({"fail_after_commit": 1, "fail_status": 503})
    bodies = []
    for n in range(3):
        body = invoice("x")
        body.pop("DocNumber")
        body["PrivateNote"] = f"nodoc-{n}"
        bodies.append(body)
    results = await run_batch("create", qbc, store, [
        {"entity": "Invoice", "record": b, "idempotency_key": f"nodoc-{n}"}
        for n, b in enumerate(bodies)])
    assert [r["PrivateNote"] for r in results] == ["nodoc-0", "nodoc-1", "nodoc-2"]
    notes = [i.get("PrivateNote") for i in company(counted).tables["Invoice"].values()]
    assert sorted(n for n in notes if str(n).startswith("nodoc-")) == ["nodoc-0", "nodoc-1", "nodoc-2"]
    assert counted.to("batch") == 2


async def test_calls_with_one_key_share_one_create(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    """Three calls of one idempotency key in a batch: one item, one invoice, the same answer."""
    results = await run_batch("create", qbc, store, [
        {"entity": "Invoice", "record": invoice("SAME-1"), "idempotency_key": "same"}] * 3)
    assert len({r["Id"] for r in results}) == 1
    assert len(invoices(counted, "SAME-")) == 1
    assert results[0] is not results[1]


# ----------------------------------------------------------------- updates


async def test_updates_go_in_one_batch_and_a_stale_token_is_read_again(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    """Three sparse updates without SyncToken: one Id-in query for the tokens, one batch; one
    record edited meanwhile (5010) is read again with one query and sent again, our field kept
    on top of the other edit."""
    made = await run_batch("create", qbc, store, [
        {"entity": "Invoice", "record": invoice(f"UPD-{n}"), "idempotency_key": f"upd-{n}"}
        for n in range(3)])
    counted.calls.clear()
    counted.state.emulator.faults.update({"stale_updates": 1})
    results = await run_batch("update", qbc, store, [
        {"entity": "Invoice", "record": {"Id": r["Id"], "CustomerMemo": {"value": f"memo {n}"}},
         "idempotency_key": f"upd-{n}-v2"} for n, r in enumerate(made)])
    assert [r["CustomerMemo"]["value"] for r in results] == ["memo 0", "memo 1", "memo 2"]
    assert results[0]["PrivateNote"] == "edited in QuickBooks"
    assert counted.calls == [("GET", "query"), ("POST", "batch"), ("GET", "query"),
                             ("POST", "batch")]


async def test_an_update_of_a_missing_record_fails_alone(
        qbc: QuickBooksClient, store: ObjectStore) -> None:
    made = await run_batch("create", qbc, store, [
        {"entity": "Invoice", "record": invoice("MISS-1"), "idempotency_key": "miss-1"}])
    results = await run_batch("update", qbc, store, [
        {"entity": "Invoice", "record": {"Id": "987654", "PrivateNote": "x"}},
        {"entity": "Invoice", "record": {"Id": made[0]["Id"], "PrivateNote": "y"}}])
    assert isinstance(results[0], SpliceError) and results[0].error_type == "QUICKBOOKS:NOT_FOUND"
    assert results[1]["PrivateNote"] == "y"


# ----------------------------------------------------------------- queries


async def single(client: QuickBooksClient, store: ObjectStore, params: dict[str, Any]) -> Any:
    return await run_op("query", client, store, **params)


async def test_lookups_of_one_field_are_one_in_query_and_each_gets_its_own_rows(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    """Four DocNumber lookups (one repeated, one missing): one query; each call gets exactly the
    rows its own query returns."""
    await run_batch("create", qbc, store, [
        {"entity": "Invoice", "record": invoice(f"Q-{n}"), "idempotency_key": f"q-{n}"}
        for n in range(2)])
    counted.calls.clear()
    params = [{"query": "select * from Invoice where DocNumber = :doc", "binds": {"doc": doc}}
              for doc in ("Q-0", "Q-1", "Q-0", "Q-none")]
    results = await run_batch("query", qbc, store, params)
    assert counted.calls == [("GET", "query")]
    assert [[r["DocNumber"] for r in rows] for rows in results] == [["Q-0"], ["Q-1"], ["Q-0"], []]
    assert results[0] is not results[2]
    assert results == [await single(qbc, store, p) for p in params]


async def test_other_binds_stay_and_a_value_in_another_case_asks_on_its_own(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    """Names compared by the server: a value that matches a row only ignoring case cannot be
    decided by the split, so that call runs its own query; the others share one."""
    for name in ("Case Co", "Other Co", "Third Co"):
        company(counted).create("Customer", {"DisplayName": name}, {})
    counted.calls.clear()
    text = "select * from Customer where DisplayName = :name and Active = :active"
    params = [{"query": text, "binds": {"name": name, "active": True}}
              for name in ("case co", "Other Co", "Third Co")]
    results = await run_batch("query", qbc, store, params)
    assert counted.to("query") == 2
    assert [[r["DisplayName"] for r in rows] for rows in results] == [
        ["Case Co"], ["Other Co"], ["Third Co"]]
    assert results == [await single(qbc, store, p) for p in params]


async def test_queries_that_cannot_be_coalesced_run_one_by_one(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    """An order of its own, a limit or a count: each call sends its own query, same answers."""
    ordered = [{"query": "select * from Customer where DisplayName = :name ORDERBY Id",
                "binds": {"name": name}} for name in ("Amy's Bird Sanctuary", "Bill's Windsurf Shop")]
    limited = [{"query": "select * from Customer where DisplayName = :name",
                "binds": {"name": "Amy's Bird Sanctuary"}, "limit": 1}]
    counted.calls.clear()
    results = await run_batch("query", qbc, store, ordered)
    assert counted.to("query") == 2
    assert results == [await single(qbc, store, p) for p in ordered]
    assert await run_batch("query", qbc, store, limited) == [await single(qbc, store, limited[0])]
    counts = await run_batch("query", qbc, store, [{"query": "select count(*) from Term"}] * 2)
    assert counts[0] == counts[1] == await single(qbc, store, {"query": "select count(*) from Term"})


def test_the_batch_key_keeps_every_bind_but_the_coalesced_one() -> None:
    from connectors.quickbooks.queries import coalescing_bind, query_key

    text = "select * from Customer where DisplayName = :name and CompanyName = :co"
    assert coalescing_bind(text) is not None and coalescing_bind(text)[:2] == ("DisplayName", "name")
    assert query_key({"query": text, "binds": {"name": "a", "co": "x"}}) == \
        query_key({"query": text, "binds": {"name": "b", "co": "x"}})
    assert query_key({"query": text, "binds": {"name": "a", "co": "x"}}) != \
        query_key({"query": text, "binds": {"name": "a", "co": "y"}})
    assert coalescing_bind("select * from Invoice where DocNumber = ':doc'") is None
    assert coalescing_bind("select * from Invoice where TotalAmt >= :x") is None
    assert coalescing_bind("select * from Invoice where DocNumber = :d MAXRESULTS 5") is None
    assert coalescing_bind("select * from Invoice where DocNumber = :d and PrivateNote = :d") is None
