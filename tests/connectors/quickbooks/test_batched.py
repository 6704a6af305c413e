"""Batch forms of the QuickBooks operations, called as the runtime calls them (a list of
BatchCall) against the emulator in process: one ``/batch`` for many creates, each call with its
own outcome and its own exactly-once guards; coalesced queries; single-flight matching."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.creates import SENT_NAMESPACE, put_mark
from connectors.quickbooks.emulator import create_app
from connectors.quickbooks.emulator.limits import RealmThrottle
from connectors.quickbooks.operations import OPERATIONS
from connectors.quickbooks.shared_reads import SharedPages
from runtime import BatchCall, SpliceError
from runtime.store import ObjectStore
from tests.support.quickbooks import (
    CLIENT_ID,
    CLIENT_SECRET,
    REALM,
    SEED_REFRESH_TOKEN,
    connect,
    op_context,
    run_op,
)

pytestmark = pytest.mark.anyio
HOURS, AMY = "9", "11"
API = f"/v3/company/{REALM}"


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


@pytest.mark.parametrize("how", ["502", "504", "reset"])
async def test_a_lost_batch_answer_is_looked_up_and_nothing_is_made_twice(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore, how: str) -> None:
    """The batch's answer is lost (a gateway 502 or 504, or a dropped connection) after every
    invoice was made: one lookup query finds them all and nothing is sent again; no duplicates,
    and each call gets its own invoice."""
    counted.state.emulator.faults.update({"lose_answers": 1, "lose_answers_entity": "Invoice",
                                          "lost_answer": how})
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


async def test_a_create_that_lands_late_from_a_killed_attempt_is_found_not_dead_lettered(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    """A replica was killed while its create was on the way (its sent mark is in the store); the
    replica that takes over looks the invoice up, does not find it yet, and sends it; the killed
    one's create lands first, and QuickBooks refuses this one as a duplicate number. That invoice
    is the one this create makes: it is returned, not a DUPLICATE_DOC_NUMBER failure."""
    params = [{"entity": "Invoice", "record": invoice("LATE-1"), "idempotency_key": "late-1"}]
    await put_mark(op_context(qbc, store), qbc, "Invoice", "late-1", ("DocNumber", "LATE-1"))
    app = counted.app

    async def late_landing(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/batch") and not invoices(counted, "LATE-"):
            company(counted).create("Invoice", invoice("LATE-1"), {})  # the killed replica's create
        await app(scope, receive, send)

    counted.app = late_landing
    [result] = await run_batch("create", qbc, store, params)
    assert not isinstance(result, SpliceError), result
    [made] = invoices(counted, "LATE-")
    assert result["Id"] == made["Id"]


async def test_a_lost_answer_with_some_items_missing_resends_only_those(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    """The answer is lost, and one of three invoices is not there (as if that item had failed):
    the lookup finds two, and the batch sent again (its own requestid) holds only the third."""
    emulator = counted.state.emulator
    emulator.faults.update({"lose_answers": 1, "lose_answers_entity": "Invoice", "lost_answer": "504"})
    original = emulator.write

    def write_then_drop_gone_2(company_: Any, entity: str, operation: str, body: dict[str, Any],
                               options: dict[str, str]) -> dict[str, Any]:
        made = original(company_, entity, operation, body, options)
        if body.get("DocNumber") == "GONE-2" and emulator.faults.lose_answers:
            del company_.tables["Invoice"][made["Id"]]  # as if this item had not been made
        return made

    emulator.write = write_then_drop_gone_2
    results = await run_batch("create", qbc, store, [
        {"entity": "Invoice", "record": invoice(f"GONE-{n}"), "idempotency_key": f"gone-{n}"}
        for n in range(3)])
    assert [r["DocNumber"] for r in results] == ["GONE-0", "GONE-1", "GONE-2"]
    assert sorted(i["DocNumber"] for i in invoices(counted, "GONE-")) == ["GONE-0", "GONE-1", "GONE-2"]
    assert counted.calls == [("POST", "batch"), ("GET", "query"), ("POST", "batch")]


async def test_a_batch_retried_after_a_lost_answer_creates_nothing_twice(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    """The answer is lost and the lookup after it fails too: every call fails on its own
    (retryable), the invoices exist; the retried batch finds them by their sent marks and
    sends nothing."""
    emulator = counted.state.emulator
    emulator.faults.update({"lose_answers": 1, "lose_answers_entity": "Invoice", "lost_answer": "502",
                            "fail_status": 500})
    original = emulator.write

    def write_then_fail_what_follows(company_: Any, entity: str, operation: str,
                                     body: dict[str, Any], options: dict[str, str]) -> dict[str, Any]:
        emulator.faults.fail_next = 10  # the lookup query, all its attempts
        return original(company_, entity, operation, body, options)

    emulator.write = write_then_fail_what_follows
    params = [{"entity": "Invoice", "record": invoice(f"RETRY-{n}"), "idempotency_key": f"retry-{n}"}
              for n in range(3)]
    failed = await run_batch("create", qbc, store, params)
    assert all(isinstance(r, SpliceError) and r.retryable for r in failed)
    assert len({id(r) for r in failed}) == 3
    emulator.write = original
    emulator.faults.fail_next = 0
    assert len(invoices(counted, "RETRY-")) == 3
    counted.calls.clear()
    retried = await run_batch("create", qbc, store, params)
    assert [r["DocNumber"] for r in retried] == ["RETRY-0", "RETRY-1", "RETRY-2"]
    assert len(invoices(counted, "RETRY-")) == 3
    assert counted.calls == [("GET", "query")]


async def test_a_dry_run_batch_tells_each_write_and_makes_none(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    from runtime.preview import previewing

    with previewing() as plan:
        results = await run_batch("create", qbc, store, [
            {"entity": "Invoice", "record": invoice(f"DRY-{n}"), "idempotency_key": f"dry-{n}"}
            for n in range(2)])
    assert [w.action for w in plan.writes] == ["create", "create"]
    assert [r["DocNumber"] for r in results] == ["DRY-0", "DRY-1"]
    assert invoices(counted, "DRY-") == [] and counted.to("batch") == 0


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


async def test_full_updates_start_from_the_record_read_in_one_query(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    """sparse: false sends the whole record: read (one query for both), our field on top."""
    made = await run_batch("create", qbc, store, [
        {"entity": "Invoice", "record": invoice(f"FULL-{n}", amount=100 + n),
         "idempotency_key": f"full-{n}"} for n in range(2)])
    counted.calls.clear()
    results = await run_batch("update", qbc, store, [
        {"entity": "Invoice", "record": {"Id": r["Id"], "PrivateNote": f"full {n}"}, "sparse": False}
        for n, r in enumerate(made)])
    assert [r["PrivateNote"] for r in results] == ["full 0", "full 1"]
    assert [r["TotalAmt"] for r in results] == [r["TotalAmt"] for r in made]
    assert [r["CustomerRef"]["value"] for r in results] == [AMY, AMY]
    assert counted.calls == [("GET", "query"), ("POST", "batch")]


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


# ----------------------------------------------------------------- match-or-create


async def test_match_or_create_decides_once_per_record(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    """20 calls for 2 accounts: 2 decisions, 2 customers created, every call told its record's."""
    params = [{"record": {"DisplayName": f"Flight {key}"}, "external_key": f"001{key}",
               "idempotency_key": f"acct-001{key}", "match_rules": "DisplayName"}
              for key in ("A", "B") * 10]
    results = await run_batch("match-or-create", qbc, store, params)
    assert all(r["action"] == "created" for r in results)
    ids = {key: {r["record"]["Id"] for r, p in zip(results, params, strict=True)
                 if p["external_key"] == f"001{key}"} for key in ("A", "B")}
    assert all(len(found) == 1 for found in ids.values()) and ids["A"] != ids["B"]
    assert counted.to("customer") == 2
    made = [c for c in company(counted).tables["Customer"].values()
            if str(c["DisplayName"]).startswith("Flight ")]
    assert sorted(c["DisplayName"] for c in made) == ["Flight A", "Flight B"]
    assert results[0] is not results[2]


async def test_stored_links_are_read_in_one_query(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    """Three linked accounts and one whose link names a deleted record: one Id-in query reads the
    links (no GET per call); the missing one goes on to the rules, as its single call would."""
    linked = [company(counted).create("Customer", {"DisplayName": f"Linked {n}"}, {})
              for n in range(3)]
    company(counted).create("Customer", {"DisplayName": "Matched By Name"}, {})
    counted.calls.clear()
    params = [{"record": {"DisplayName": f"Linked {n}"}, "link": c["Id"],
               "external_key": f"acc-{n}"} for n, c in enumerate(linked)]
    params.append({"record": {"DisplayName": "Matched By Name"}, "link": "987654",
                   "external_key": "acc-x"})
    results = await run_batch("match-or-create", qbc, store, params)
    assert [(r["action"], r["rule"]) for r in results] == [("linked", "stored link")] * 3 + [
        ("linked", "name")]
    assert [r["record"]["Id"] for r in results[:3]] == [c["Id"] for c in linked]
    assert [m for m, path in counted.calls if path.startswith("customer/")] == []
    queries = [path for _m, path in counted.calls if path == "query"]
    assert len(queries) == 2  # the links, then the one name rule
    # Each call's output is what its single call gives (now with the stored links).
    again = await run_op("match-or-create", qbc, store, **params[0])
    assert (again["action"], again["rule"], again["record"]["Id"]) == (
        "linked", "stored link", linked[0]["Id"])


async def test_batches_linking_the_same_records_at_once_read_them_with_one_request(
        counted: CountingApp, qbc: QuickBooksClient, store: ObjectStore) -> None:
    """A burst's item batches at once: five batches that link the same three items (in any order)
    send one Id-in query, not five; each batch gets its own copy of the rows."""
    linked = [company(counted).create("Item", {"Name": f"Shared {n}", "Type": "Service",
                                               "IncomeAccountRef": {"value": "1"}}, {})
              for n in range(3)]
    counted.calls.clear()

    def params(order: list[int], batch: int) -> list[dict[str, Any]]:
        return [{"entity": "Item", "record": {"Name": f"Shared {n}"}, "link": linked[n]["Id"],
                 "external_key": f"prod-{n}", "exclusive": False,
                 "idempotency_key": f"b{batch}-{n}"} for n in order]

    results: list[list[Any]] = []

    async def batch(order: list[int], number: int) -> None:
        results.append(await run_batch("match-or-create", qbc, store, params(order, number)))

    async with anyio.create_task_group() as tg:
        for number, order in enumerate([[0, 1, 2], [2, 1, 0], [1, 0, 2], [0, 2, 1], [2, 0, 1]]):
            tg.start_soon(batch, order, number)
    assert len(results) == 5
    assert all((r["action"], r["rule"]) == ("linked", "stored link") for rs in results for r in rs)
    assert [path for _m, path in counted.calls] == ["query"]
    results[0][0]["record"]["Name"] = "changed by one caller"
    assert {r["record"]["Name"] for rs in results[1:] for r in rs} == {
        "Shared 0", "Shared 1", "Shared 2"}


async def test_a_query_asked_after_a_write_is_not_answered_by_one_sent_before_it() -> None:
    """Read your own writes: a query in flight answers identical ones asked while it is in flight,
    but not one asked after a write of this connection ended; a failed one fails its joiners."""
    shared = SharedPages()
    release = anyio.Event()
    asked: list[int] = []

    async def answer() -> dict[str, Any]:
        asked.append(len(asked))
        await release.wait()
        return {"Term": [{"Name": "Net 30", "asked": len(asked)}]}

    pages: list[dict[str, Any]] = []

    async def ask() -> None:
        pages.append(await shared.page("select * from Term", answer))

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(ask)  # joins the query in flight
        await anyio.wait_all_tasks_blocked()
        shared.write_ended()
        tg.start_soon(ask)  # a write ended since that query was asked: asks on its own
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert len(asked) == 2 and shared.joined == 1 and len(pages) == 3

    async def refused() -> dict[str, Any]:
        await anyio.sleep(0.01)
        raise SpliceError("refused", error_type="QUICKBOOKS:INVALID")

    errors: list[str] = []

    async def ask_refused() -> None:
        try:
            await shared.page("select * from Nothing", refused)
        except SpliceError as error:
            errors.append(error.error_type)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask_refused)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(ask_refused)
    assert errors == ["QUICKBOOKS:INVALID"] * 2


# ----------------------------------------------------------------- metering


@asynccontextmanager
async def _raw_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client of the emulator in process, with a valid access token."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://qb.test") as client:
        answer = await client.post("/oauth2/v1/tokens/bearer", auth=(CLIENT_ID, CLIENT_SECRET),
                                   data={"grant_type": "refresh_token",
                                         "refresh_token": SEED_REFRESH_TOKEN})
        client.headers.update({"Authorization": f"Bearer {answer.json()['access_token']}",
                               "Accept": "application/json"})
        yield client


def _queries(n: int) -> dict[str, Any]:
    return {"BatchItemRequest": [{"bId": str(i), "Query": "select * from Term"} for i in range(n)]}


async def test_the_emulator_meters_each_batch_item_and_refuses_a_batch_that_does_not_fit() -> None:
    """40 a minute: 15 reads, then a batch of 30 is refused whole (429, the XML body) since only 25
    remain, a batch of 25 fits; the realm was never answered more than 40 in a window, and the
    metered count and the peak say so."""
    app = create_app(refresh_token=SEED_REFRESH_TOKEN, requests_per_minute=40)
    throttle = app.state.emulator.throttle
    async with _raw_client(app) as client:
        for _ in range(15):
            assert (await client.get(f"{API}/customer/{AMY}")).status_code == 200
        refused = await client.post(f"{API}/batch", json=_queries(30))
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/xml")
        assert b'<Error code="3001">' in refused.content
        fits = await client.post(f"{API}/batch", json=_queries(25))
        assert fits.status_code == 200 and len(fits.json()["BatchItemResponse"]) == 25
        assert (await client.get(f"{API}/customer/{AMY}")).status_code == 429
        state = (await client.get("/_emulator/state")).json()
    assert throttle.metered[REALM] == 40 and throttle.peak_in_window(REALM) == 40
    assert state["metered"] == {REALM: 40} and state["peakInWindow"] == {REALM: 40}


async def test_the_peak_is_the_busiest_rolling_window_not_the_total() -> None:
    """With a moving clock: 10 requests, a window later 5 more: 15 metered, a peak of 10."""
    now = [0.0]
    throttle = RealmThrottle(per_minute=500, window=60.0, clock=lambda: now[0])
    for _ in range(10):
        assert throttle.admit(REALM, batch=False)
    now[0] = 61.0
    assert throttle.admit(REALM, batch=True, items=5)
    assert throttle.metered[REALM] == 15 and throttle.peak_in_window(REALM) == 10
    now[0] = 62.0
    assert throttle.admit(REALM, batch=True, items=30)
    assert throttle.peak_in_window(REALM) == 35
    assert not RealmThrottle(per_minute=10, batch_per_minute=40).admit(REALM, batch=True, items=11)


async def test_a_batch_spends_one_token_of_the_realm_budget_per_item(
        counted: CountingApp, store: ObjectStore) -> None:
    """The client's realm budget: a batch of 30 counts 30 requests this minute and takes 30 tokens
    of the general bucket (more than its burst of 10 holds at once) plus one batch token."""
    async with connect(counted, store, **{"requests-per-minute": 6000}) as client:
        limits = client.limits
        assert limits.general.bucket.capacity < 30
        await client.batch([{"bId": str(i), "Query": "select * from Term"} for i in range(30)])
        assert client.limits.used_last_minute() == 30
        assert (await client.status())["requestsLastMinute"] == 30
    assert counted.state.emulator.throttle.metered[REALM] == 30


async def test_a_weighted_batch_slot_spends_one_general_token_per_item() -> None:
    """30 items: 30 tokens of the general bucket (which spends a weight above its burst in turns:
    tests/runtime/test_limits.py) and one batch token."""
    from connectors.quickbooks.client import _ChainedRateLimit
    from runtime import RateLimit

    general = RateLimit(490, 60.0, max_concurrent=10, burst=10)
    chained = _ChainedRateLimit(RateLimit(35, 60.0, burst=5), general)
    taken: list[float] = []
    batch_taken: list[float] = []
    real, real_batch = general.bucket.acquire, chained.bucket.acquire

    async def general_acquire(tokens: float = 1.0) -> None:
        taken.append(tokens)
        general.bucket._tokens = general.bucket.capacity  # a full bucket: no wait in this test
        await real(tokens)

    async def batch_acquire(tokens: float = 1.0) -> None:
        batch_taken.append(tokens)
        await real_batch(tokens)

    general.bucket.acquire = general_acquire  # type: ignore[method-assign]
    chained.bucket.acquire = batch_acquire  # type: ignore[method-assign]
    async with chained.weighted(30).slot():
        pass
    assert sum(taken) == 30
    assert batch_taken == [1.0]
    async with chained.slot():
        pass
    assert sum(taken) == 31
