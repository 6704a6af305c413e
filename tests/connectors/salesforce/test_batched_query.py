"""The batch form of ``salesforce.query``: lookups that differ in one ``Field = :bind`` value become
one ``Field IN (...)`` query, and each call gets exactly the rows its own query returns."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.salesforce import queries
from connectors.salesforce.errors import SalesforceError
from connectors.salesforce.operations import OPERATIONS
from connectors.salesforce.queries import query_key
from connectors.salesforce.soql_shape import in_shapes
from runtime import BatchCall
from runtime.params import compile_params
from runtime.testing import typed_call

pytestmark = pytest.mark.anyio

SPEC = next(op for op in OPERATIONS if op.name == "query")
SINGLE = typed_call(SPEC)
COERCE = compile_params(SPEC.params, owner="query")

BY_ID = "SELECT Id, Name FROM Account WHERE Id = :id"
OPPORTUNITY = ("SELECT Id, Name, Amount, Account.Name, (SELECT Id, Quantity FROM OpportunityLineItems "
               "ORDER BY Quantity) FROM Opportunity WHERE StageName = :stage AND AccountId = :account")


@pytest.fixture
def run_batch(client: Any, op_ctx_factory: Any) -> Any:
    """``await run_batch([params, ...])``: the query calls of many executions, handled at once."""
    async def run(params: list[dict[str, Any]]) -> list[Any]:
        assert SPEC.batch is not None
        keys = {SPEC.batch.key(COERCE(p)) for p in params} if SPEC.batch.key else set()
        assert len(keys) == 1, "the runtime would not batch these calls together"
        results = await SPEC.batch.handler([BatchCall(op_ctx_factory(client), COERCE(p)) for p in params])
        assert len(results) == len(params)
        return list(results)

    return run


async def collect(result: Any) -> list[dict[str, Any]]:
    assert not isinstance(result, BaseException), result
    return [r async for r in result]


async def alone(op_ctx: Any, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows the call's single form returns."""
    return [r async for r in await SINGLE(op_ctx, params)]


def requests(app: Any) -> int:
    return int(app.state.emulator.request_count)


async def test_lookups_by_id_are_one_query_and_each_gets_its_rows(app: Any, run_batch: Any,
                                                                  op_ctx: Any) -> None:
    """15- and 18-character ids, a repeated id and an id of no record: one query; each call gets
    what its own query returns (the 18-character row for a 15-character bind)."""
    org = app.state.emulator.org
    accounts = [org.create("Account", {"Name": f"Acct {i}"}) for i in range(4)]
    ids = [accounts[0]["Id"], accounts[1]["Id"][:15], accounts[2]["Id"], accounts[2]["Id"],
           "001Rx0000000000AAA", accounts[3]["Id"][:15]]
    params = [{"query": BY_ID, "binds": {"id": i}} for i in ids]
    before = requests(app)
    results = await run_batch(params)
    assert requests(app) - before == 1
    got = [await collect(r) for r in results]
    assert [[row["Id"] for row in rows] for rows in got] == [
        [accounts[0]["Id"]], [accounts[1]["Id"]], [accounts[2]["Id"]], [accounts[2]["Id"]], [],
        [accounts[3]["Id"]]]
    assert got[2] is not got[3] and got[2] == got[3]
    for param, mine in zip(params, got, strict=True):
        assert mine == await alone(op_ctx, param)


async def test_child_subqueries_other_binds_and_pages(app: Any, run_batch: Any, op_ctx: Any) -> None:
    """Opportunities of several accounts with their line items, over 5-row pages: one query whose
    pages are all followed; each call gets its own account's rows, in order, children included."""
    org = app.state.emulator.org
    product = org.create("Product2", {"Name": "Widget"})
    entry = org.create("PricebookEntry", {"Pricebook2Id": org.standard_pricebook, "Product2Id": product["Id"],
                                          "UnitPrice": 10})
    accounts = [org.create("Account", {"Name": f"Acct {i}"}) for i in range(3)]
    for i in range(12):
        opp = org.create("Opportunity", {"Name": f"Opp {i:02d}", "StageName": "Closed Won" if i % 4 else "Prospecting",
                                         "CloseDate": "2026-03-31", "AccountId": accounts[i % 3]["Id"]})
        org.create("OpportunityLineItem", {"OpportunityId": opp["Id"], "PricebookEntryId": entry["Id"],
                                           "Quantity": i + 1})
    params = [{"query": OPPORTUNITY, "binds": {"stage": "Closed Won", "account": a["Id"]}} for a in accounts]
    before = requests(app)
    results = await run_batch(params)
    assert requests(app) - before == 2  # the query and its second page (9 rows, 5 a page)
    got = [await collect(r) for r in results]
    assert sum(len(rows) for rows in got) == 9
    assert got[1][0]["OpportunityLineItems"]["records"][0]["Quantity"] == 2.0
    assert "AccountId" not in got[0][0]  # the added field is taken off again
    for param, mine in zip(params, got, strict=True):
        assert mine == await alone(op_ctx, param)


async def test_text_values_that_differ_only_in_case_go_in_separate_queries(
        app: Any, run_batch: Any, op_ctx: Any) -> None:
    """'inv-1' and 'INV-1' may be one value or two (it depends on the field): they are never split
    from one query's rows; each call asks in its own query and gets what it would alone."""
    org = app.state.emulator.org
    for i in range(3):
        org.create("Opportunity", {"Name": f"Opp {i}", "StageName": "Closed Won", "CloseDate": "2026-03-31",
                                   "QuickBooks_Invoice_Id__c": f"INV-{i}"})
    soql = "SELECT Id, Name FROM Opportunity WHERE QuickBooks_Invoice_Id__c = :invoice"
    params = [{"query": soql, "binds": {"invoice": v}} for v in ("INV-0", "inv-0", "INV-1", "INV-2")]
    before = requests(app)
    results = await run_batch(params)
    assert requests(app) - before == 2
    for param, result in zip(params, results, strict=True):
        assert await collect(result) == await alone(op_ctx, param)


async def test_numbers_and_dates_are_split_by_value(app: Any, run_batch: Any, op_ctx: Any) -> None:
    """A number bind matches 5.0 rows; a date bind its day (the boolean bind is not the merged one)."""
    org = app.state.emulator.org
    for i, day in enumerate(("2026-03-30", "2026-03-31", "2026-03-31")):
        org.create("Opportunity", {"Name": f"Opp {i}", "StageName": "Prospecting", "CloseDate": day,
                                   "Amount": 5 * (i + 1)})
    by_amount = "SELECT Id, Name, Amount FROM Opportunity WHERE Amount = :amount"
    by_day = "SELECT Id, Name FROM Opportunity WHERE CloseDate = :day AND IsWon = :won"
    for params in ([{"query": by_amount, "binds": {"amount": a}} for a in (5, 10.0, 7)],
                   [{"query": by_day, "binds": {"day": {"date": d}, "won": False}}
                    for d in ("2026-03-30", "2026-03-31")]):
        before = requests(app)
        results = await run_batch(params)
        assert requests(app) - before == 1
        for param, result in zip(params, results, strict=True):
            assert await collect(result) == await alone(op_ctx, param)


async def test_queries_that_do_not_fit_run_alone(app: Any, run_batch: Any, op_ctx: Any) -> None:
    """LIMIT, OR, a bind used twice, a null value: one query per call, each with its own rows."""
    org = app.state.emulator.org
    accounts = [org.create("Account", {"Name": f"Acct {i}", "Phone": "555"}) for i in range(3)]
    cases = [
        [{"query": "SELECT Id FROM Account WHERE Id = :id LIMIT 1", "binds": {"id": a["Id"]}} for a in accounts],
        [{"query": "SELECT Id FROM Account WHERE Id = :id OR Name = 'Acct 0'", "binds": {"id": a["Id"]}}
         for a in accounts],
        [{"query": "SELECT Id FROM Account WHERE Id = :id AND Id != :id", "binds": {"id": a["Id"]}}
         for a in accounts],
    ]
    for params in cases:
        before = requests(app)
        results = await run_batch(params)
        assert requests(app) - before == len(params)
        for param, result in zip(params, results, strict=True):
            assert await collect(result) == await alone(op_ctx, param)
    params = [{"query": BY_ID, "binds": {"id": None}}, {"query": BY_ID, "binds": {"id": accounts[0]["Id"]}}]
    before = requests(app)
    results = await run_batch(params)
    assert requests(app) - before == 2
    assert await collect(results[0]) == [] and len(await collect(results[1])) == 1


async def test_a_refused_merged_query_falls_back_so_only_the_bad_call_fails(
        app: Any, run_batch: Any, op_ctx: Any) -> None:
    """A value Salesforce refuses fails the merged query; every call then asks alone, and only the
    call with that value gets the error (the one its single form raises)."""
    org = app.state.emulator.org
    account = org.create("Account", {"Name": "Acme"})
    soql = "SELECT Id, Name FROM Account WHERE Name = :name AND CreatedDate > :since"
    params = [{"query": soql, "binds": {"name": "Acme", "since": {"datetime": "2020-01-01T00:00:00Z"}}},
              {"query": soql, "binds": {"name": 12, "since": {"datetime": "2020-01-01T00:00:00Z"}}}]
    results = await run_batch(params[:1] + params[:1])
    assert [r["Id"] for r in await collect(results[0])] == [account["Id"]]
    with pytest.raises(SalesforceError) as single:
        await alone(op_ctx, params[1])
    mixed = await run_batch([params[0], params[1], params[0]])
    assert isinstance(mixed[1], SalesforceError) and mixed[1].error_type == single.value.error_type
    assert [r["Id"] for r in await collect(mixed[2])] == [account["Id"]]


async def test_long_value_lists_are_cut_into_several_queries(app: Any, run_batch: Any, op_ctx: Any,
                                                             monkeypatch: Any) -> None:
    """Values beyond the URL budget go in a further query; every call still gets its rows."""
    org = app.state.emulator.org
    accounts = [org.create("Account", {"Name": f"Acct {i}"}) for i in range(12)]
    monkeypatch.setattr(queries, "MAX_ENCODED_SOQL", len(BY_ID) + 6 * 30)
    params = [{"query": BY_ID, "binds": {"id": a["Id"]}} for a in accounts]
    before = requests(app)
    results = await run_batch(params)
    assert 1 < requests(app) - before < len(params)
    for account, result in zip(accounts, results, strict=True):
        assert [r["Id"] for r in await collect(result)] == [account["Id"]]


def test_the_batch_key_keeps_apart_what_cannot_share_a_query() -> None:
    """Calls that differ in mergeable binds share a key; another value of a bind that cannot be
    merged, another option or other SOQL does not."""
    base = {"query": OPPORTUNITY, "binds": {"stage": "Closed Won", "account": "001A"}}
    key = query_key(COERCE(base))
    assert query_key(COERCE({**base, "binds": {"stage": "Lost", "account": "001B"}})) == key
    assert query_key(COERCE({**base, "include-deleted": True})) != key
    assert query_key(COERCE({**base, "query": OPPORTUNITY + " "})) != key
    since = {"query": "SELECT Id FROM Opportunity WHERE CloseDate > :since AND AccountId = :account",
             "binds": {"since": {"date": "2026-01-01"}, "account": "001A"}}
    assert query_key(COERCE(since)) == query_key(COERCE({**since, "binds": {**since["binds"], "account": "001B"}}))
    assert query_key(COERCE(since)) != query_key(COERCE({**since, "binds": {**since["binds"],
                                                                           "since": {"date": "2026-02-01"}}}))


async def test_calls_that_differ_in_two_mergeable_binds(app: Any, run_batch: Any, op_ctx: Any) -> None:
    """Two stages by three accounts: merged on the account (more values), one query per stage."""
    org = app.state.emulator.org
    accounts = [org.create("Account", {"Name": f"Acct {i}"}) for i in range(3)]
    for i in range(6):
        org.create("Opportunity", {"Name": f"Opp {i}", "StageName": ("Closed Won", "Prospecting")[i % 2],
                                   "CloseDate": "2026-03-31", "AccountId": accounts[i % 3]["Id"]})
    params = [{"query": OPPORTUNITY, "binds": {"stage": stage, "account": a["Id"]}}
              for stage in ("Closed Won", "Prospecting") for a in accounts]
    before = requests(app)
    results = await run_batch(params)
    assert requests(app) - before == 2
    for param, result in zip(params, results, strict=True):
        assert await collect(result) == await alone(op_ctx, param)


@pytest.mark.parametrize(("soql", "merged"), [
    (BY_ID, {"id": True}),
    ("select name from account where id = :id", {"id": False}),
    (OPPORTUNITY, {"stage": False, "account": False}),
    ("SELECT Id FROM Account WHERE (Name = 'a' OR Name = 'b') AND Id = :id", {"id": True}),
    ("SELECT Id FROM Opportunity WHERE CloseDate > 2026-01-01T00:00:00+01:00 AND Id = :id", {"id": True}),
    ("SELECT Id, (SELECT Id FROM Contacts WHERE Email = :mail LIMIT 1) FROM Account WHERE Id = :id",
     {"id": True}),
])
def test_queries_that_merge(soql: str, merged: dict[str, bool]) -> None:
    """Top-level ``Field = :bind`` among ANDed conditions (each is a way to merge, telling whether
    its field is selected); clauses in parentheses do not matter."""
    shapes = in_shapes(soql)
    assert {shape.bind: shape.selected for shape in shapes} == merged
    for shape in shapes:
        rewritten = shape.rewrite(soql)
        assert f"IN :{shape.bind}" in rewritten and f"= :{shape.bind}" not in rewritten


@pytest.mark.parametrize("soql", [
    "SELECT Id FROM Account WHERE Id = :id LIMIT 1",
    "SELECT Id FROM Account WHERE Id = :id ORDER BY Name",
    "SELECT Id FROM Account WHERE Id = :id OR Name = 'x'",
    "SELECT Id FROM Account WHERE Id = :id AND Name != :id",
    "SELECT COUNT() FROM Account WHERE Id = :id",
    "SELECT Name, COUNT(Id) FROM Account WHERE Id = :id GROUP BY Name",
    "SELECT Id FROM Account USING SCOPE mine WHERE Id = :id",
    "SELECT Id FROM Account WHERE Account.Id = :id",
    "SELECT Id FROM Account WHERE Id IN :ids",
    "SELECT Id FROM Account WHERE NOT Id = :id",
    "SELECT Id FROM Account WHERE Name = 'it''s = :id'",
    "SELECT Id FROM Account",
    "SELECT Id FROM Account WHERE Id = :id FOR UPDATE",
])
def test_queries_that_do_not_merge(soql: str) -> None:
    """Anything that makes the merged rows differ from the union of each query's rows."""
    assert in_shapes(soql) == ()
