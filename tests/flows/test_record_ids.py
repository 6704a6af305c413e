"""The shipped flows declare the business ids their executions touch: history finds them by id."""

from __future__ import annotations

import pytest

from runtime.store.executions import ExecutionFilter, ExecutionHistory
from tests.flows.test_opportunity_to_invoice import seed_won
from tests.support.flows import Integration

pytestmark = pytest.mark.anyio


async def test_an_invoiced_opportunity_is_found_by_each_of_its_ids(integration: Integration) -> None:
    it = integration
    account, opp = seed_won(it)
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    assert it.runtime.engine.history is not None
    await it.runtime.engine.history.flush()
    [invoice] = it.table("Invoice")
    customer_id = it.record("Account", account)["QB_Customer_Id__c"]
    history = ExecutionHistory(it.store)
    for business_id in (opp, account, invoice["Id"], customer_id):
        found = await history.list(ExecutionFilter(record_id=business_id))
        assert [r["flow"] for r in found] == ["opportunity-to-invoice"], business_id
    [record] = await history.list(ExecutionFilter(flow="opportunity-to-invoice"))
    assert record["recordIds"] == [opp, account, customer_id, invoice["Id"]]
    assert record["connectorCalls"] >= 3 and record["outcome"] == "completed"
