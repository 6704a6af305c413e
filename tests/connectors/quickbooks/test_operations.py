"""The operations against the emulator: writes once, sparse updates, paging, batch, CDC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from connectors.quickbooks.client import QuickBooksClient
from runtime.errors import SpliceError
from runtime.store import ObjectStore
from tests.support.quickbooks import REALM, run_op

pytestmark = pytest.mark.anyio

HOURS, CONSULTING, AMY, BILL = "9", "10", "11", "12"


def _invoice(customer: str = AMY, qty: Any = "128.350", price: Any = "14.50") -> dict[str, Any]:
    return {"CustomerRef": {"value": customer}, "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": 0,
         "SalesItemLineDetail": {"ItemRef": {"value": HOURS}, "Qty": Decimal(str(qty)),
                                 "UnitPrice": Decimal(str(price))}}]}


def _rows(emulator: Any, entity: str) -> list[dict[str, Any]]:
    return list(emulator.state.emulator.companies[REALM].tables[entity].values())


async def test_create_computes_amounts_and_returns_decimals(qb: QuickBooksClient, store: ObjectStore) -> None:
    """Amount = Qty x UnitPrice half up (no 6070), and the answer keeps Decimal money."""
    invoice = await run_op("create", qb, store, entity="Invoice", record=_invoice(),
                           idempotency_key="opp-0061x000ABC")
    assert invoice["TotalAmt"] == Decimal("1861.08")
    assert isinstance(invoice["Balance"], Decimal)
    assert invoice["Line"][0]["Amount"] == Decimal("1861.08")


async def test_create_needs_an_idempotency_key(qb: QuickBooksClient, store: ObjectStore) -> None:
    """A create without a key could not be made exactly once."""
    with pytest.raises(SpliceError) as info:
        await run_op("create", qb, store, entity="Customer", record={"DisplayName": "X"})
    assert info.value.error_type == "QUICKBOOKS:VALIDATION"


async def test_replayed_event_creates_nothing(emulator: Any, qb: QuickBooksClient, store: ObjectStore) -> None:
    """The ledger answers a replay with the recorded result, without calling QuickBooks."""
    first = await run_op("create", qb, store, entity="Customer", payload={"DisplayName": "Replay Co"},
                         idempotency_key="acct-001")
    emulator.state.emulator.faults.update({"fail_next": 5})  # QuickBooks would fail if called
    again = await run_op("create", qb, store, entity="Customer", payload={"DisplayName": "Replay Co"},
                         idempotency_key="acct-001")
    assert again == first
    assert emulator.state.emulator.faults.fail_next == 5
    assert [c["DisplayName"] for c in _rows(emulator, "Customer")].count("Replay Co") == 1


async def test_answer_lost_after_commit_is_retried_with_the_same_requestid(
        emulator: Any, qb: QuickBooksClient, store: ObjectStore) -> None:
    """The write happened but the answer was a 500: the retry gets the first answer back."""
    emulator.state.emulator.faults.update({"fail_after_commit": 1, "fail_status": 500})
    invoice = await run_op("create", qb, store, entity="Invoice", record=_invoice(),
                           idempotency_key="opp-lost-answer")
    assert len([i for i in _rows(emulator, "Invoice") if i["Id"] == invoice["Id"]]) == 1
    assert len(_rows(emulator, "Invoice")) == 1


async def test_long_idempotency_keys_become_50_character_requestids(
        emulator: Any, qb: QuickBooksClient, store: ObjectStore) -> None:
    """Intuit caps requestid at 50 characters; the key is hashed, deterministically."""
    key = "opportunity-" + "x" * 80
    await run_op("create", qb, store, entity="Customer", record={"DisplayName": "Long Key"},
                 idempotency_key=key)
    (rid,) = emulator.state.emulator.companies[REALM].requests
    assert len(rid) == 50 and rid.startswith("opportunity-")


async def test_sparse_update_recovers_from_a_stale_synctoken(
        emulator: Any, qb: QuickBooksClient, store: ObjectStore) -> None:
    """5010: re-read, re-apply only our fields; the other user's change survives."""
    customer = await qb.read("Customer", AMY)
    emulator.state.emulator.faults.update({"stale_updates": 1})
    updated = await run_op("update", qb, store, entity="Customer",
                           record={"Id": AMY, "SyncToken": customer["SyncToken"],
                                   "CompanyName": "Amy's Birds Ltd"})
    assert updated["CompanyName"] == "Amy's Birds Ltd"
    assert updated["Notes"] == "edited in QuickBooks"
    assert int(updated["SyncToken"]) == int(customer["SyncToken"]) + 2


async def test_update_without_synctoken_reads_it(qb: QuickBooksClient, store: ObjectStore) -> None:
    """Flows rarely know the SyncToken; the update reads it."""
    updated = await run_op("update", qb, store, entity="Customer",
                           record={"Id": BILL, "Notes": "VIP"})
    assert updated["Notes"] == "VIP" and updated["DisplayName"] == "Bill's Windsurf Shop"


async def test_stale_retries_are_bounded(emulator: Any, qb: QuickBooksClient, store: ObjectStore) -> None:
    """Somebody keeps winning: after the retries, the stale error surfaces as retryable."""
    emulator.state.emulator.faults.update({"stale_updates": 10})
    with pytest.raises(SpliceError) as info:
        await run_op("update", qb, store, entity="Customer", record={"Id": BILL, "Notes": "x"},
                     stale_retries=2)
    assert info.value.error_type == "QUICKBOOKS:STALE_OBJECT"
    assert info.value.retryable


async def test_get_missing_entity_is_not_found(qb: QuickBooksClient, store: ObjectStore) -> None:
    """610 maps to NOT_FOUND."""
    with pytest.raises(SpliceError) as info:
        await run_op("get", qb, store, entity="Invoice", id="999")
    assert info.value.error_type == "QUICKBOOKS:NOT_FOUND"
    assert info.value.details["code"] == "610"
    assert info.value.details["intuit_tid"].startswith("1-")


async def test_payment_reduces_balance_then_void_and_delete(
        emulator: Any, qb: QuickBooksClient, store: ObjectStore) -> None:
    """Payment LinkedTxn lowers the invoice Balance; voiding the payment gives it back."""
    invoice = await run_op("create", qb, store, entity="Invoice", record=_invoice(qty=2, price=75),
                           idempotency_key="inv-pay")
    payment = await run_op("create", qb, store, entity="Payment", idempotency_key="pay-1", record={
        "CustomerRef": {"value": AMY}, "TotalAmt": Decimal("100.00"),
        "Line": [{"Amount": Decimal("100.00"),
                  "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]})
    paid = await run_op("get", qb, store, entity="Invoice", id=invoice["Id"])
    assert paid["Balance"] == Decimal("50.00")
    assert paid["LinkedTxn"] == [{"TxnId": payment["Id"], "TxnType": "Payment"}]
    voided = await run_op("void", qb, store, entity="Payment", id=payment["Id"])
    assert voided["TotalAmt"] == 0
    assert (await qb.read("Invoice", invoice["Id"]))["Balance"] == Decimal("150.00")
    gone = await run_op("delete", qb, store, entity="Payment", id=payment["Id"])
    assert gone["status"] == "Deleted"
    voided_invoice = await run_op("void", qb, store, entity="Invoice", id=invoice["Id"])
    assert voided_invoice["PrivateNote"].startswith("Voided")


async def test_delete_of_a_name_list_entity_deactivates_it(qb: QuickBooksClient, store: ObjectStore) -> None:
    """Customers cannot be deleted in QuickBooks; they become inactive."""
    result = await run_op("delete", qb, store, entity="Customer", id="13")
    assert result["Active"] is False
    assert await run_op("query", qb, store, query="select * from Customer where Id = '13'") == []


async def test_query_pages_and_quotes_binds(emulator: Any, qb: QuickBooksClient, store: ObjectStore) -> None:
    """Paging follows STARTPOSITION until a short page; O'Brien is quoted safely."""
    for i in range(7):
        await run_op("create", qb, store, entity="Customer", record={"DisplayName": f"Page {i}"},
                     idempotency_key=f"page-{i}")
    await run_op("create", qb, store, entity="Customer", record={"DisplayName": "O'Brien & Sons"},
                 idempotency_key="obrien")
    rows = await run_op("query", qb, store, query="select * from Customer where DisplayName like :p",
                        binds={"p": "Page%"}, page_size=3)
    assert sorted(r["DisplayName"] for r in rows) == [f"Page {i}" for i in range(7)]
    limited = await run_op("query", qb, store, query="select * from Customer", limit=4, page_size=3)
    assert len(limited) == 4
    found = await run_op("query", qb, store, query="select * from Customer where DisplayName = :n",
                         binds={"n": "O'Brien & Sons"})
    assert [r["DisplayName"] for r in found] == ["O'Brien & Sons"]
    count = await run_op("query", qb, store, query="select count(*) from Customer")
    assert count == 11


async def test_malformed_query_is_a_typed_error(qb: QuickBooksClient, store: ObjectStore) -> None:
    """A parser error (4000) is not retryable."""
    with pytest.raises(SpliceError) as info:
        await run_op("query", qb, store, query="select * from Customer where DisplayName = 'a'b'")
    assert info.value.error_type == "QUICKBOOKS:INVALID_QUERY"
    assert not info.value.retryable


async def test_batch_chunks_by_30_and_maps_faults_to_inputs(
        emulator: Any, qb: QuickBooksClient, store: ObjectStore) -> None:
    """65 items: three batch calls; a duplicate name fails only its own item."""
    items: list[dict[str, Any]] = [{"operation": "create", "entity": "Customer",
                                    "record": {"DisplayName": f"Batch {i}"}} for i in range(64)]
    items.insert(40, {"operation": "create", "entity": "Customer",
                      "record": {"DisplayName": "Cool Cars"}})
    results = await run_op("batch", qb, store, items=items, idempotency_key="import-1")
    assert [r["index"] for r in results] == list(range(65))
    failed = [r for r in results if not r["ok"]]
    assert [r["index"] for r in failed] == [40]
    assert failed[0]["error"]["type"] == "QUICKBOOKS:DUPLICATE_NAME"
    assert results[41]["record"]["DisplayName"] == "Batch 40"
    assert len(emulator.state.emulator.companies[REALM].requests) == 3
    again = await run_op("batch", qb, store, items=items, idempotency_key="import-1")
    assert again == results
    assert len(_rows(emulator, "Customer")) == 3 + 64


async def test_batch_updates_voids_and_queries(qb: QuickBooksClient, store: ObjectStore) -> None:
    """Updates read their SyncToken; a query item answers rows."""
    invoice = await run_op("create", qb, store, entity="Invoice", record=_invoice(qty=1, price=10),
                           idempotency_key="inv-b")
    results = await run_op("batch", qb, store, items=[
        {"operation": "update", "entity": "Customer", "record": {"Id": AMY, "Notes": "batch"}},
        {"operation": "void", "entity": "Invoice", "record": {"Id": invoice["Id"]}},
        {"query": "select * from Item where Name = :n", "binds": {"n": "Hours"}},
        {"operation": "delete", "entity": "Invoice", "record": {"Id": "999", "SyncToken": "0"}}])
    assert results[0]["record"]["Notes"] == "batch"
    assert results[1]["record"]["TotalAmt"] == 0
    assert [r["Name"] for r in results[2]["records"]] == ["Hours"]
    assert results[3]["error"]["type"] == "QUICKBOOKS:NOT_FOUND"
    with pytest.raises(SpliceError) as info:
        await run_op("batch", qb, store, items=[{"operation": "delete", "entity": "Invoice",
                                                 "record": {"Id": "999", "SyncToken": "0"}}],
                     raise_on_fault=True)
    assert info.value.error_type == "QUICKBOOKS:BATCH_ITEMS_FAILED"


async def test_cdc_returns_changes_and_deletions(qb: QuickBooksClient, store: ObjectStore) -> None:
    """Deleted transactions come back as status Deleted."""
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="seconds")
    invoice = await run_op("create", qb, store, entity="Invoice", record=_invoice(qty=1, price=5),
                           idempotency_key="inv-cdc")
    await run_op("delete", qb, store, entity="Invoice", id=invoice["Id"])
    changes = await run_op("cdc", qb, store, entities="Invoice,Customer", changed_since=since)
    assert changes["Invoice"] == [{"Id": invoice["Id"], "status": "Deleted", "domain": "QBO",
                                   "MetaData": changes["Invoice"][0]["MetaData"]}]
    assert {c["Id"] for c in changes["Customer"]} == {AMY, BILL, "13"}


async def test_cdc_beyond_30_days_is_refused(qb: QuickBooksClient, store: ObjectStore) -> None:
    """The 30-day limit is QuickBooks'; the emulator enforces it too."""
    old = (datetime.now(UTC) - timedelta(days=31)).isoformat(timespec="seconds")
    with pytest.raises(SpliceError) as info:
        await run_op("cdc", qb, store, entities=["Invoice"], changed_since=old)
    assert info.value.error_type == "QUICKBOOKS:VALIDATION"


async def test_full_update_starts_from_a_fresh_read(emulator: Any, qb: QuickBooksClient,
                                                    store: ObjectStore) -> None:
    """``sparse: false`` sends the whole record: fresh fields plus ours, nothing nulled by accident."""
    updated = await run_op("update", qb, store, entity="Customer", sparse=False,
                           record={"Id": BILL, "CompanyName": "Bill's Boards"})
    assert updated["CompanyName"] == "Bill's Boards"
    assert updated["PrimaryEmailAddr"] == {"Address": "surf@intuit.example"}
    assert updated["sparse"] is False


async def test_update_without_a_key_is_still_safe_to_retry(emulator: Any, qb: QuickBooksClient,
                                                           store: ObjectStore) -> None:
    """An update whose answer was lost is retried with the same requestid: applied once."""
    before = await qb.read("Customer", BILL)
    emulator.state.emulator.faults.update({"fail_after_commit": 1, "fail_status": 502})
    updated = await run_op("update", qb, store, entity="Customer",
                           record={"Id": BILL, "SyncToken": before["SyncToken"], "Notes": "once"})
    assert updated["Notes"] == "once"
    assert int(updated["SyncToken"]) == int(before["SyncToken"]) + 1
    assert emulator.state.emulator.faults.fail_after_commit == 0


async def test_query_can_stream_pages(qb: QuickBooksClient, store: ObjectStore) -> None:
    """With stream, rows arrive as an async iterator, a page at a time."""
    rows = await run_op("query", qb, store, query="select * from Account", page_size=2, stream=True)
    assert hasattr(rows, "__aiter__")
    assert [r["Name"] async for r in rows][:2] == ["Services", "Sales of Product Income"]


async def test_what_quickbooks_refuses_fails_the_step_with_a_typed_error(
        emulator: Any, qb: QuickBooksClient, store: ObjectStore) -> None:
    """Through the connector, the emulator's refusals are errors a flow's on-error can match,
    with QuickBooks' code and element kept for the dead letter."""
    cases = [
        ("create", {"entity": "Invoice", "record": {**_invoice(), "DocNumber": "X" * 22},
                    "idempotency_key": "long-doc"}, "QUICKBOOKS:VALIDATION", "2050", "DocNumber"),
        ("create", {"entity": "Customer", "record": {"DisplayName": "Acme: Denver"},
                    "idempotency_key": "colon"}, "QUICKBOOKS:VALIDATION", "2050", "DisplayName"),
        ("create", {"entity": "Customer", "record": {"DisplayName": "Mail Co",
                                                     "PrimaryEmailAddr": {"Address": "mail.co"}},
                    "idempotency_key": "mail"}, "QUICKBOOKS:VALIDATION", "2050", "PrimaryEmailAddr.Address"),
        ("query", {"query": "select * from Invoice where PrivateNote = 'x'"},
         "QUICKBOOKS:INVALID_QUERY", "4001", ""),
    ]
    emulator.state.emulator.companies[REALM].create("Employee", {"DisplayName": "Staff Member"}, {})
    cases.append(("create", {"entity": "Customer", "record": {"DisplayName": "Staff Member"},
                             "idempotency_key": "staff"}, "QUICKBOOKS:DUPLICATE_NAME", "6240", "DisplayName"))
    for operation, params, error_type, code, element in cases:
        with pytest.raises(SpliceError) as info:
            await run_op(operation, qb, store, **params)
        assert info.value.error_type == error_type, params
        assert info.value.details["code"] == code and info.value.details["element"] == element, params
    assert "Staff Member" not in [c["DisplayName"] for c in _rows(emulator, "Customer")]
