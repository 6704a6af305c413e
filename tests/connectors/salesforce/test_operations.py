"""Operations against the in-process emulator: streaming query with paging, CRUD, upsert,
collections with chunking and per-record results, bulk query."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.salesforce.errors import SalesforceError
from connectors.salesforce.operations import OPERATIONS
from runtime.testing import typed_call

pytestmark = pytest.mark.anyio


OPS = {op.name: typed_call(op) for op in OPERATIONS}


async def _collect(stream: Any) -> list[Any]:
    return [r async for r in stream]


async def test_query_streams_every_page_with_nested_relationships(app: Any, op_ctx: Any) -> None:
    """A 12-row query over 5-row pages yields all rows; parents and children come back nested."""
    org = app.state.emulator.org
    account = org.create("Account", {"Name": "Acme", "QB_Customer_Id__c": "58"})
    product = org.create("Product2", {"Name": "Widget"})
    entry = org.create("PricebookEntry", {"Pricebook2Id": org.standard_pricebook,
                                          "Product2Id": product["Id"], "UnitPrice": 10})
    for i in range(12):
        opp = org.create("Opportunity", {"Name": f"Opp {i:02d}", "StageName": "Closed Won",
                                         "CloseDate": "2026-03-31", "AccountId": account["Id"]})
        if i == 0:
            org.create("OpportunityLineItem", {"OpportunityId": opp["Id"], "PricebookEntryId": entry["Id"],
                                               "Quantity": 3})
    stream = await OPS["query"](op_ctx, {
        "query": "SELECT Id, Name, IsWon, Amount, Account.Name, Account.QB_Customer_Id__c, "
                 "(SELECT Quantity, TotalPrice FROM OpportunityLineItems) FROM Opportunity "
                 "WHERE Account.Name = :name AND CloseDate <= :close ORDER BY Name",
        "binds": {"name": "Acme", "close": {"date": "2026-12-31"}}})
    records = await _collect(stream)
    assert [r["Name"] for r in records] == [f"Opp {i:02d}" for i in range(12)]
    assert records[0]["Account"]["QB_Customer_Id__c"] == "58"
    assert records[0]["OpportunityLineItems"]["records"][0]["TotalPrice"] == 30.0
    assert records[0]["Amount"] == 30.0 and records[0]["IsWon"] is True
    assert records[1]["OpportunityLineItems"] is None


async def test_query_binds_cannot_inject(app: Any, op_ctx: Any) -> None:
    """A hostile bind value is one quoted string: it matches nothing instead of everything."""
    app.state.emulator.org.create("Account", {"Name": "Acme"})
    stream = await OPS["query"](op_ctx, {"query": "SELECT Id FROM Account WHERE Name = :name",
                                         "binds": {"name": "x' OR Name != 'x"}})
    assert await _collect(stream) == []


async def test_query_errors_are_typed(op_ctx: Any) -> None:
    """Bad SOQL and unknown fields are SALESFORCE:* errors that are not retryable."""
    with pytest.raises(SalesforceError) as bad:
        await OPS["query"](op_ctx, {"query": "SELECT Id FRM Account"})
    assert bad.value.error_type == "SALESFORCE:MALFORMED_QUERY" and not bad.value.retryable
    with pytest.raises(SalesforceError) as field:
        await OPS["query"](op_ctx, {"query": "SELECT Nope__x FROM Account"})
    assert field.value.error_type == "SALESFORCE:INVALID_FIELD"


async def test_crud_round_trip(op_ctx: Any) -> None:
    """create -> get -> update -> get by external id -> delete -> NOT_FOUND / ENTITY_IS_DELETED."""
    created = await OPS["create"](op_ctx, {"object": "Opportunity", "record": {
        "Name": "Big deal", "StageName": "Prospecting", "CloseDate": "2026-05-01",
        "QuickBooks_Invoice_Id__c": "INV-1"}})
    assert created["success"] and created["id"].startswith("006") and len(created["id"]) == 18
    record = await OPS["get"](op_ctx, {"object": "Opportunity", "id": created["id"]})
    assert record["IsClosed"] is False and record["SystemModstamp"].endswith("+0000")
    await OPS["update"](op_ctx, {"object": "Opportunity", "record": {"Id": created["id"],
                                                                     "StageName": "Closed Won"}})
    won = await OPS["get"](op_ctx, {"object": "Opportunity", "external-id-field": "QuickBooks_Invoice_Id__c",
                                    "external-id": "INV-1", "fields": ["Id", "IsWon", "IsClosed"]})
    assert won["IsWon"] is True and won["IsClosed"] is True
    await OPS["delete"](op_ctx, {"object": "Opportunity", "id": created["id"]})
    with pytest.raises(SalesforceError) as gone:
        await OPS["get"](op_ctx, {"object": "Opportunity", "id": created["id"]})
    assert gone.value.kind in ("NOT_FOUND", "ENTITY_IS_DELETED")
    again = await OPS["delete"](op_ctx, {"object": "Opportunity", "id": created["id"], "ignore-missing": True})
    assert again["success"]


async def test_create_validation_errors(op_ctx: Any) -> None:
    """Missing required fields and duplicate external ids are not retryable."""
    with pytest.raises(SalesforceError) as missing:
        await OPS["create"](op_ctx, {"object": "Opportunity", "record": {"Name": "x"}})
    assert missing.value.error_type == "SALESFORCE:VALIDATION"
    assert set(missing.value.details["fields"]) == {"StageName", "CloseDate"}
    await OPS["create"](op_ctx, {"object": "Account", "record": {"Name": "A", "QB_Customer_Id__c": "1"}})
    with pytest.raises(SalesforceError) as duplicate:
        await OPS["create"](op_ctx, {"object": "Account", "record": {"Name": "B", "QB_Customer_Id__c": "1"}})
    assert duplicate.value.error_type == "SALESFORCE:DUPLICATE_VALUE" and not duplicate.value.retryable
    assert duplicate.value.details["duplicateId"].startswith("001")


async def test_upsert_creates_then_updates_and_reports_multiple_matches(app: Any, op_ctx: Any) -> None:
    """201 created, 200 updated (same id), 300 for several matches."""
    params = {"object": "Account", "external-id-field": "QB_Customer_Id__c",
              "record": {"Name": "Acme", "QB_Customer_Id__c": "58"}}
    first = await OPS["upsert"](op_ctx, params)
    second = await OPS["upsert"](op_ctx, {**params, "record": {"Name": "Acme Corp"}, "external-id": "58"})
    assert first["created"] is True and second["created"] is False and first["id"] == second["id"]
    assert app.state.emulator.org.get("Account", first["id"])["Name"] == "Acme Corp"
    org = app.state.emulator.org
    org.schemas["Account"].fields["QB_Customer_Id__c"].unique = False
    org.create("Account", {"Name": "Twin", "QB_Customer_Id__c": "58"})
    with pytest.raises(SalesforceError) as multiple:
        await OPS["upsert"](op_ctx, {**params, "external-id": "58", "record": {"Name": "?"}})
    assert multiple.value.error_type == "SALESFORCE:MULTIPLE_MATCHES" and len(multiple.value.details["matches"]) == 2


async def test_collections_chunk_and_map_results_to_inputs(app: Any, op_ctx: Any) -> None:
    """450 records go in three calls; a bad record fails alone and results keep input order."""
    records: list[dict[str, Any]] = [{"Name": f"A{i}", "QB_Customer_Id__c": f"C{i}"} for i in range(450)]
    records[201] = {"Name": "Bad", "NotAField": 1}
    before = app.state.emulator.request_count
    results = await OPS["collections"](op_ctx, {"operation": "create", "object": "Account", "records": records})
    assert app.state.emulator.request_count - before == 3
    assert [r["index"] for r in results] == list(range(450))
    assert not results[201]["success"] and results[201]["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert all(r["success"] for i, r in enumerate(results) if i != 201)
    upserts = [{"QB_Customer_Id__c": f"C{i}", "Name": f"B{i}"} for i in (0, 1)] + [
        {"QB_Customer_Id__c": "NEW", "Name": "New"}]
    results = await OPS["collections"](op_ctx, {"operation": "upsert", "object": "Account",
                                               "external-id-field": "QB_Customer_Id__c", "records": upserts})
    assert [r["created"] for r in results] == [False, False, True]
    with pytest.raises(SalesforceError) as partial:
        await OPS["collections"](op_ctx, {"operation": "update", "object": "Account", "fail-on-error": True,
                                         "records": [{"Id": results[0]["id"], "Name": None}]})
    assert partial.value.error_type == "SALESFORCE:PARTIAL_FAILURE"


async def test_collections_all_or_none_rolls_back(app: Any, op_ctx: Any) -> None:
    """With all-or-none one bad record fails the chunk and nothing is written."""
    results = await OPS["collections"](op_ctx, {"operation": "create", "object": "Contact", "all-or-none": True,
                                               "records": [{"LastName": "Ok"}, {"FirstName": "No last name"}]})
    assert [r["success"] for r in results] == [False, False]
    assert results[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert results[1]["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    assert app.state.emulator.org.records["Contact"] == {}


async def test_bulk_query_streams_csv_pages(app: Any, op_ctx: Any) -> None:
    """A bulk job over 7 rows with 3-row result pages yields 7 flat records; empty cells are None."""
    org = app.state.emulator.org
    account = org.create("Account", {"Name": "Acme, Inc."})
    for i in range(7):
        org.create("Contact", {"LastName": f"L{i}", "AccountId": account["Id"] if i % 2 else None})
    stream = await OPS["bulk-query"](op_ctx, {"query": "SELECT Id, LastName, Account.Name FROM Contact",
                                              "poll-interval": 0.01, "page-size": 3})
    rows = await _collect(stream)
    assert sorted(r["LastName"] for r in rows) == [f"L{i}" for i in range(7)]
    assert {r["Account.Name"] for r in rows} == {"Acme, Inc.", None}
