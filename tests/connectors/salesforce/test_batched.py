"""Batch forms of the Salesforce operations: many executions' calls in one API call, each call
with the outcome its single form would have had (same payload, same error type)."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.salesforce.errors import SalesforceError
from connectors.salesforce.operations import OPERATIONS
from runtime import BatchCall, OperationSpec
from runtime.params import compile_params
from runtime.testing import typed_call

pytestmark = pytest.mark.anyio

SPECS: dict[str, OperationSpec] = {op.name: op for op in OPERATIONS}
SINGLE = {name: typed_call(spec) for name, spec in SPECS.items()}


@pytest.fixture
def run_batch(client: Any, op_ctx_factory: Any) -> Any:
    """``await run_batch(operation, [params, ...])``: the calls the runtime would gather (one
    context per execution, parameters typed) handed to the operation's batch form at once."""
    async def run(operation: str, params: list[dict[str, Any]]) -> list[Any]:
        form = SPECS[operation].batch
        assert form is not None
        coerce = compile_params(SPECS[operation].params, owner=operation)
        results = await form.handler([BatchCall(op_ctx_factory(client), coerce(p)) for p in params])
        assert len(results) == len(params)
        return list(results)

    return run


async def rows(result: Any) -> list[dict[str, Any]]:
    """The records of a query result (a stream), or the error it is."""
    assert not isinstance(result, BaseException), result
    return [r async for r in result]


def requests(app: Any) -> int:
    return int(app.state.emulator.request_count)


def _opps(org: Any, count: int, prefix: str = "Opp") -> list[dict[str, Any]]:
    return [org.create("Opportunity", {"Name": f"{prefix} {i:03d}", "StageName": "Prospecting",
                                       "CloseDate": "2026-03-31"}) for i in range(count)]


# -- update ---------------------------------------------------------------------------------------

async def test_150_updates_of_two_objects_take_one_call(app: Any, client: Any, run_batch: Any) -> None:
    """150 executions' updates (opportunities and accounts mixed) are one Collections call; each
    gets the single update's payload, and every record holds its new values."""
    org = app.state.emulator.org
    opps = _opps(org, 120)
    accounts = [org.create("Account", {"Name": f"Acct {i}"}) for i in range(30)]
    params = [{"object": "Opportunity", "id": o["Id"], "record": {"NextStep": f"step {i}"}}
              for i, o in enumerate(opps)]
    params += [{"object": "Account", "record": {"Id": a["Id"], "Phone": f"555-{i:04d}"}}
               for i, a in enumerate(accounts)]
    before = requests(app)
    results = await run_batch("update", params)
    assert requests(app) - before == 1
    assert results == [{"id": p.get("id") or p["record"]["Id"], "success": True, "errors": []} for p in params]
    assert org.get("Opportunity", opps[7]["Id"])["NextStep"] == "step 7"
    assert org.get("Account", accounts[29]["Id"])["Phone"] == "555-0029"


async def test_a_call_mixes_few_objects_and_keeps_each_objects_records_together(
        app: Any, run_batch: Any, monkeypatch: Any) -> None:
    """Records of one object go side by side; beyond the objects one call may mix, another call."""
    from connectors.salesforce import batched

    org = app.state.emulator.org
    monkeypatch.setattr(batched, "MAX_TYPES", 2)
    targets = [("Account", org.create("Account", {"Name": "A"})["Id"], {"Phone": "1"}),
               ("Contact", org.create("Contact", {"LastName": "C"})["Id"], {"Phone": "2"}),
               ("Opportunity", _opps(org, 1)[0]["Id"], {"NextStep": "3"}),
               ("Account", org.create("Account", {"Name": "B"})["Id"], {"Phone": "4"})]
    before = requests(app)
    results = await run_batch("update", [{"object": o, "id": i, "record": r} for o, i, r in targets])
    assert requests(app) - before == 2
    assert [r["id"] for r in results] == [i for _, i, _ in targets]
    assert org.get("Contact", targets[1][1])["Phone"] == "2"


async def test_250_updates_take_two_calls(app: Any, client: Any, run_batch: Any) -> None:
    """Collections take 200 records a call: 250 updates are two calls, all written."""
    opps = _opps(app.state.emulator.org, 250)
    before = requests(app)
    results = await run_batch("update", [
        {"object": "Opportunity", "id": o["Id"], "record": {"Amount": i}} for i, o in enumerate(opps)])
    assert requests(app) - before == 2
    assert all(r["success"] for r in results)
    assert app.state.emulator.org.get("Opportunity", opps[249]["Id"])["Amount"] == 249.0


async def test_a_bad_record_fails_only_its_own_call_with_the_single_error_type(
        app: Any, client: Any, run_batch: Any, op_ctx: Any) -> None:
    """A deleted record, an unknown field and a missing Id fail their own calls, each with the type
    the single update gives it; the other calls of the batch are written."""
    org = app.state.emulator.org
    good, deleted, other, fourth = _opps(org, 4)
    org.delete("Opportunity", deleted["Id"])
    params = [{"object": "Opportunity", "id": good["Id"], "record": {"NextStep": "ok"}},
              {"object": "Opportunity", "id": deleted["Id"][:15], "record": {"NextStep": "gone"}},
              {"object": "Opportunity", "id": fourth["Id"], "record": {"No_Such_Field__x": 1}},
              {"object": "Opportunity", "record": {"NextStep": "no id"}},
              {"object": "Opportunity", "id": other["Id"], "record": {"NextStep": "also ok"}}]
    before = requests(app)
    results = await run_batch("update", params)
    assert requests(app) - before == 1
    assert results[0] == {"id": good["Id"], "success": True, "errors": []}
    assert results[4] == {"id": other["Id"], "success": True, "errors": []}
    errors = results[1:4]
    assert all(isinstance(e, SalesforceError) for e in errors)
    assert [e.error_type for e in errors] == [
        "SALESFORCE:ENTITY_IS_DELETED", "SALESFORCE:INVALID_FIELD", "SALESFORCE:VALIDATION"]
    assert errors[0].message.startswith("update Opportunity: ") and not errors[0].retryable
    for param, error in zip(params[1:4], errors, strict=True):
        with pytest.raises(SalesforceError) as single:
            await SINGLE["update"](op_ctx, param)
        assert single.value.error_type == error.error_type
    assert org.get("Opportunity", other["Id"])["NextStep"] == "also ok"


async def test_two_updates_of_one_record_land_in_order(app: Any, client: Any, run_batch: Any) -> None:
    """Two executions writing one record (by its 15- and 18-character Id) go in two requests, in
    the order of the calls, as they would alone: the later value stays."""
    org = app.state.emulator.org
    (opp,) = _opps(org, 1)
    before = requests(app)
    results = await run_batch("update", [
        {"object": "Opportunity", "id": opp["Id"][:15], "record": {"NextStep": "first"}},
        {"object": "Opportunity", "id": opp["Id"], "record": {"NextStep": "second"}}])
    assert requests(app) - before == 2
    assert [r["id"] for r in results] == [opp["Id"][:15], opp["Id"]]
    assert org.get("Opportunity", opp["Id"])["NextStep"] == "second"


async def test_a_request_that_fails_as_a_whole_fails_each_call_with_its_own_error(
        app: Any, client: Any, run_batch: Any) -> None:
    """Salesforce unavailable through every retry: each call gets its own error instance."""
    opps = _opps(app.state.emulator.org, 3)
    app.state.emulator.faults.update({"unavailable": 100})
    results = await run_batch("update", [
        {"object": "Opportunity", "id": o["Id"], "record": {"NextStep": "x"}} for o in opps])
    assert all(isinstance(r, SalesforceError) and r.error_type == "SALESFORCE:SERVER_UNAVAILABLE"
               and r.retryable for r in results)
    assert len({id(r) for r in results}) == 3


async def test_a_locked_row_is_sent_again(app: Any, client: Any, run_batch: Any) -> None:
    """UNABLE_TO_LOCK_ROW on one record: that record alone goes again, as a single update would."""
    opps = _opps(app.state.emulator.org, 4)
    app.state.emulator.faults.update({"lock": 1})
    before = requests(app)
    results = await run_batch("update", [
        {"object": "Opportunity", "id": o["Id"], "record": {"NextStep": "x"}} for o in opps])
    assert all(r["success"] for r in results)
    assert requests(app) - before == 2


# -- echoes -----------------------------------------------------------------------------------------

async def test_batched_updates_are_known_as_own_writes(app: Any, client: Any, store: Any,
                                                       run_batch: Any, source_context: Any) -> None:
    """A polled trigger with ignore-own-writes skips records changed only by a batched write-back,
    still hands over one somebody else changed too, and the change events carry the connection's
    client name (what change-events' ignore-own-writes skips)."""
    from connectors.salesforce.echoes import EchoFilter
    from connectors.salesforce.polling import ChangePoller

    org = app.state.emulator.org
    opps = _opps(org, 3)
    poller = ChangePoller(client, "Opportunity", ["Id", "SystemModstamp", "Name", "NextStep"], overlap=0,
                          echoes=EchoFilter(client.own_writes, "Opportunity"))
    first = source_context(client, store)
    await poller.poll(first)
    assert len(first.events) == 3
    await run_batch("update", [
        {"object": "Opportunity", "id": o["Id"], "record": {"NextStep": "invoiced"}} for o in opps])
    assert client.own_writes.written("Opportunity", opps[0]["Id"]) == {"NextStep": "invoiced"}
    origin = org.events[-1]["payload"]["ChangeEventHeader"]["changeOrigin"]
    assert f"client={client.settings.client_name}" in origin
    org.update("Opportunity", opps[1]["Id"], {"Name": "Renamed by a user"}, origin="web")
    second = source_context(client, store)
    await poller.poll(second)
    assert [e.payload["Name"] for e in second.events] == ["Renamed by a user"]


# -- create and upsert ----------------------------------------------------------------------------

async def test_creates_go_in_one_call_with_the_single_payload(app: Any, client: Any, run_batch: Any) -> None:
    """Three creates are one POST; each gets {id, success, errors}; a bad one fails alone."""
    before = requests(app)
    results = await run_batch("create", [
        {"object": "Contact", "record": {"LastName": "One"}},
        {"object": "Contact", "record": {"FirstName": "No last name"}},
        {"object": "Contact", "record": {"LastName": "Three", "Id": "003000000000000AAA"}}])
    assert requests(app) - before == 1
    assert results[0]["success"] and results[0]["id"].startswith("003") and results[0]["errors"] == []
    assert set(results[0]) == {"id", "success", "errors"}
    assert isinstance(results[1], SalesforceError) and results[1].error_type == "SALESFORCE:VALIDATION"
    assert results[2]["success"]
    names = {r["LastName"] for r in app.state.emulator.org.records["Contact"].values()}
    assert names == {"One", "Three"}


async def test_upserts_go_in_one_call_and_keep_created(app: Any, client: Any, run_batch: Any,
                                                       op_ctx: Any) -> None:
    """Upserts by external id are one PATCH; created says which made a record; two calls on one
    external id go one after the other; several matches are MULTIPLE_MATCHES, as alone."""
    org = app.state.emulator.org
    existing = org.create("Account", {"Name": "Old", "QB_Customer_Id__c": "58"})
    base = {"object": "Account", "external-id-field": "QB_Customer_Id__c"}
    before = requests(app)
    results = await run_batch("upsert", [
        {**base, "external-id": "58", "record": {"Name": "Updated"}},
        {**base, "record": {"QB_Customer_Id__c": "59", "Name": "New"}},
        {**base, "external-id": "59", "record": {"Phone": "555"}}])
    assert requests(app) - before == 2  # "59" twice: the second call waits for the first
    assert results[0] == {"id": existing["Id"], "success": True, "errors": [], "created": False}
    assert results[1]["created"] is True and results[2] == {**results[1], "created": False}
    made = org.get("Account", results[1]["id"])
    assert (made["Name"], made["Phone"], made["QB_Customer_Id__c"]) == ("New", "555", "59")
    assert client.own_writes.written("Account", existing["Id"])["Name"] == "Updated"

    org.schemas["Account"].fields["QB_Customer_Id__c"].unique = False
    org.create("Account", {"Name": "Twin", "QB_Customer_Id__c": "58"})
    (twice,) = await run_batch("upsert", [{**base, "external-id": "58", "record": {"Name": "?"}}])
    with pytest.raises(SalesforceError) as single:
        await SINGLE["upsert"](op_ctx, {**base, "external-id": "58", "record": {"Name": "?"}})
    assert isinstance(twice, SalesforceError) and twice.error_type == single.value.error_type
    assert sorted(twice.details["matches"]) == sorted(single.value.details["matches"])


async def test_emulator_refuses_a_repeated_external_id_in_one_upsert_call(app: Any, client: Any) -> None:
    """Salesforce cannot tell which of two records with one external id should win: both fail."""
    response = await client.request("PATCH", client.data("composite/sobjects/Account/QB_Customer_Id__c"), json={
        "allOrNone": False, "records": [
            {"attributes": {"type": "Account"}, "QB_Customer_Id__c": "7", "Name": "A"},
            {"attributes": {"type": "Account"}, "QB_Customer_Id__c": "7", "Name": "B"},
            {"attributes": {"type": "Account"}, "QB_Customer_Id__c": "8", "Name": "C"}]})
    answers = response.json()
    assert [a["success"] for a in answers] == [False, False, True]
    assert answers[0]["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    assert [r["Name"] for r in app.state.emulator.org.records["Account"].values()] == ["C"]


def test_batch_forms_are_declared_with_their_keys() -> None:
    """update shares a batch across objects; create by object; upsert by object and field."""
    update, create, upsert = (SPECS[n].batch for n in ("update", "create", "upsert"))
    assert update is not None and create is not None and upsert is not None
    assert update.max_size == create.max_size == upsert.max_size == 200
    assert update.key is None
    assert create.key is not None and create.key({"object": "A"}) != create.key({"object": "B"})
    assert upsert.key is not None
    assert upsert.key({"object": "A", "external-id-field": "X"}) != upsert.key(
        {"object": "A", "external-id-field": "Y"})
    assert SPECS["delete"].batch is None
