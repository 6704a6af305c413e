"""payment-to-salesforce: QuickBooks payments move the linked opportunities' payment fields."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.support.flows import Integration

pytestmark = pytest.mark.anyio


async def invoiced(it: Integration, account: str, price: float, name: str) -> tuple[str, dict[str, Any]]:
    """A won opportunity of one line, invoiced by opportunity-to-invoice."""
    product = it.product(f"{name} product", price)
    opp = it.opportunity(account, [{"product": product, "Quantity": 1}], name=name)
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    invoice_id = it.record("Opportunity", opp)["QuickBooks_Invoice_Id__c"]
    return opp, it.company.tables["Invoice"][invoice_id]


def pay(it: Integration, invoice_amounts: list[tuple[dict[str, Any], str]], date: str) -> dict[str, Any]:
    """A payment in QuickBooks over one or more invoices of one customer."""
    lines = [{"Amount": Decimal(amount), "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]}
             for inv, amount in invoice_amounts]
    total = sum((line["Amount"] for line in lines), Decimal(0))
    return it.company.create("Payment", {"CustomerRef": invoice_amounts[0][0]["CustomerRef"], "TotalAmt": total,
                                         "TxnDate": date, "Line": lines}, {})


async def event(it: Integration, entity: str, entity_id: str, operation: str = "Update") -> None:
    """What the webhook trigger hands the flow for one changed entity."""
    outcome = await it.run("payment-to-salesforce", {}, {"entity": entity, "entityId": entity_id,
                                                         "operation": operation})
    assert outcome.status == "completed", outcome.error


def current(it: Integration, entity: str, entity_id: str) -> dict[str, Any]:
    """Id and SyncToken of the entity as QuickBooks holds it now (for a delete or void)."""
    row = it.company.tables[entity][entity_id]
    return {"Id": row["Id"], "SyncToken": row["SyncToken"]}


def fields(it: Integration, opp: str) -> tuple[Any, ...]:
    record = it.record("Opportunity", opp)
    return (record["Payment_Status__c"], record["Amount_Paid__c"], record["Balance_Due__c"],
            record["Last_Payment_Date__c"])


async def test_partial_then_full_payment(integration: Integration) -> None:
    it = integration
    account = it.account("Payer Ltd")
    opp, invoice = await invoiced(it, account, 1000.10, "Deal A")
    first = pay(it, [(invoice, "400.05")], "2026-04-02")
    await event(it, "Payment", first["Id"], "Create")
    assert fields(it, opp) == ("Partially Paid", 400.05, 600.05, "2026-04-02")
    second = pay(it, [(invoice, "600.05")], "2026-04-20")
    await event(it, "Payment", second["Id"], "Create")
    assert fields(it, opp) == ("Paid", 1000.10, 0, "2026-04-20")
    # A redelivered event writes nothing new.
    stamp = it.record("Opportunity", opp)["SystemModstamp"]
    await event(it, "Payment", second["Id"], "Create")
    assert it.record("Opportunity", opp)["SystemModstamp"] == stamp


async def test_split_payment_updates_each_opportunity_and_deletion_reverses(integration: Integration) -> None:
    it = integration
    account = it.account("Split Payer GmbH")
    opp_a, inv_a = await invoiced(it, account, 250, "Deal B")
    opp_b, inv_b = await invoiced(it, account, 99.99, "Deal C")
    payment = pay(it, [(inv_a, "250.00"), (inv_b, "50.00")], "2026-05-01")
    await event(it, "Payment", payment["Id"], "Create")
    assert fields(it, opp_a) == ("Paid", 250, 0, "2026-05-01")
    assert fields(it, opp_b) == ("Partially Paid", 50, 49.99, "2026-05-01")

    it.company.delete("Payment", current(it, "Payment", payment["Id"]))  # QuickBooks gives both balances back
    await event(it, "Payment", payment["Id"], "Delete")
    for invoice in (inv_a, inv_b):  # ...and announces both invoices as changed
        await event(it, "Invoice", invoice["Id"])
    assert fields(it, opp_a) == ("Unpaid", 0, 250, None)
    assert fields(it, opp_b) == ("Unpaid", 0, 99.99, None)


async def test_voided_payment_and_voided_invoice(integration: Integration) -> None:
    it = integration
    account = it.account("Voider & Co")
    opp, invoice = await invoiced(it, account, 80, "Deal D")
    payment = pay(it, [(invoice, "80.00")], "2026-06-01")
    await event(it, "Payment", payment["Id"], "Create")
    assert fields(it, opp)[0] == "Paid"
    it.company.void("Payment", current(it, "Payment", payment["Id"]))
    await event(it, "Payment", payment["Id"])
    assert fields(it, opp) == ("Unpaid", 0, 80, None)
    it.company.void("Invoice", current(it, "Invoice", invoice["Id"]))
    await event(it, "Invoice", invoice["Id"])
    assert fields(it, opp) == ("Voided", 0, 0, None)


async def test_change_data_capture_runs_the_same_steps(integration: Integration) -> None:
    """A webhook that never came: the CDC safety net flow sees the invoice change and catches up."""
    it = integration
    account = it.account("Quiet Webhooks Inc")
    opp, invoice = await invoiced(it, account, 42.42, "Deal E")
    pay(it, [(invoice, "42.42")], "2026-07-07")
    row = it.company.tables["Invoice"][invoice["Id"]]
    outcome = await it.run("payment-changes-to-salesforce", row, {
        "source": "quickbooks.changes", "entity": "Invoice", "entityId": invoice["Id"], "operation": "Update"})
    assert outcome.status == "completed", outcome.error
    assert fields(it, opp) == ("Paid", 42.42, 0, "2026-07-07")


async def test_a_deleted_invoice_is_marked_on_its_opportunity(integration: Integration) -> None:
    """A deleted invoice (webhook or change data capture) is not "Voided": the opportunity says it
    was deleted, keeps its number for a person to find and loses the link that leads nowhere."""
    it = integration
    account = it.account("Deleter & Co")
    by_webhook, first = await invoiced(it, account, 30, "Deal F")
    by_cdc, second = await invoiced(it, account, 40, "Deal G")
    for invoice in (first, second):
        it.company.delete("Invoice", current(it, "Invoice", invoice["Id"]))
    await event(it, "Invoice", first["Id"], "Delete")
    outcome = await it.run("payment-changes-to-salesforce", {"Id": second["Id"], "status": "Deleted", "domain": "QBO"},
                           {"source": "quickbooks.changes", "entity": "Invoice", "entityId": second["Id"],
                            "operation": "Delete"})
    assert outcome.status == "completed", outcome.error
    for opp, invoice in ((by_webhook, first), (by_cdc, second)):
        record = it.record("Opportunity", opp)
        assert fields(it, opp) == ("Deleted", 0, 0, None)
        assert record["QuickBooks_Invoice_Link__c"] is None
        assert record["QuickBooks_Invoice_Number__c"] == invoice["DocNumber"]
        assert "deleted in QuickBooks" in record["QB_Sync_Error__c"]
    # A redelivered delete writes nothing new.
    stamp = it.record("Opportunity", by_webhook)["SystemModstamp"]
    await event(it, "Invoice", first["Id"], "Delete")
    assert it.record("Opportunity", by_webhook)["SystemModstamp"] == stamp
