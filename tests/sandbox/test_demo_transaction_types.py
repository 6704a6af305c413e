"""The demo's deals of the other transaction types: a Sales Receipt deal waiting for its receipt,
and an Estimate deal whose Pending estimate is in QuickBooks; synced by the shipped flows, the one
is Paid at once and the other, once won, invoiced from its estimate, which QuickBooks closes."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from connectors.quickbooks.emulator import create_app as create_quickbooks
from connectors.quickbooks.emulator.app import DEFAULT_REALM
from connectors.quickbooks.emulator.demo import seed_demo_company
from connectors.salesforce.emulator import create_app as create_salesforce
from connectors.salesforce.sandbox import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    move_opportunity,
    sandbox_settings,
)
from tests.support.flows import Integration, open_integration
from tests.support.servers import serve_in_thread


def named(it: Integration, name: str) -> dict[str, Any]:
    [opp] = [dict(r) for r in it.org.records["Opportunity"].values() if r["Name"] == name]
    return opp


def test_the_demo_estimate_deals_and_their_estimates_agree() -> None:
    """An Estimate deal names a QuickBooks estimate under its number, for its account's customer,
    of its amount before tax: the open deal's is Pending; the won deal's is Closed, and the invoice
    made from it is linked to it both ways and written back to the deal. The Sales Receipt deal is
    won and waits."""
    org = create_salesforce(demo=True).state.emulator.org
    company = create_quickbooks(demo=True).state.emulator.companies[DEFAULT_REALM]
    deals = [o for o in org.records["Opportunity"].values() if o["QuickBooks_Transaction_Type__c"]]
    estimates = [o for o in deals if o["QuickBooks_Transaction_Type__c"] == "Estimate"]
    assert [o["Name"] for o in estimates] == ["Globex - Gadget refresh", "Globex - Support onboarding"]
    for deal in estimates:
        estimate = company.tables["Estimate"][deal["QuickBooks_Estimate_Id__c"]]
        assert estimate["DocNumber"] == deal["QuickBooks_Estimate_Number__c"] == "SF-" + deal["Id"][:15]
        if deal["IsWon"]:
            invoice = company.tables["Invoice"][deal["QuickBooks_Invoice_Id__c"]]
            assert estimate["TxnStatus"] == "Closed"
            assert estimate["LinkedTxn"] == [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
            assert invoice["LinkedTxn"] == [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]
            assert invoice["DocNumber"] == deal["QuickBooks_Invoice_Number__c"] == estimate["DocNumber"]
            assert invoice["TotalAmt"] == estimate["TotalAmt"] and invoice["Balance"] == Decimal(
                str(deal["Balance_Due__c"]))
            assert deal["Payment_Status__c"] == "Unpaid"
        else:
            assert estimate["TxnStatus"] == "Pending" and not deal["IsClosed"]
        account = org.records["Account"][deal["AccountId"]]
        assert estimate["CustomerRef"]["value"] == account["QB_Customer_Id__c"]
        tax = estimate["TxnTaxDetail"]["TotalTax"]
        assert estimate["TotalAmt"] - tax == Decimal(str(deal["Amount"]))
    [receipt_deal] = [o for o in deals if o["QuickBooks_Transaction_Type__c"] == "Sales Receipt"]
    assert receipt_deal["IsWon"] and not receipt_deal["QuickBooks_Invoice_Id__c"]
    assert not company.tables["SalesReceipt"]
    assert [m["Name"] for m in company.tables["PaymentMethod"].values()][:2] == ["Cash", "Check"]


@pytest.mark.anyio
async def test_the_demo_deals_are_synced_by_their_transaction_type(anyio_backend: str) -> None:
    async with open_integration(salesforce_options={"demo": True}) as it:
        seed_demo_company(it.company)
        deal = named(it, "Acme Corp - Counter sale")
        outcome = await it.run("opportunity-to-invoice", {"Id": deal["Id"]})
        assert outcome.status == "completed", outcome.error
        written = it.record("Opportunity", deal["Id"])
        receipt = it.company.tables["SalesReceipt"][written["QuickBooks_Invoice_Id__c"]]
        assert receipt["TotalAmt"] - receipt["TxnTaxDetail"]["TotalTax"] == Decimal("500.00")
        assert written["Payment_Status__c"] == "Paid" and written["Balance_Due__c"] == 0

        deal = named(it, "Globex - Gadget refresh")
        it.org.update("Opportunity", deal["Id"], {"StageName": "Closed Won"})
        outcome = await it.run("opportunity-to-invoice", {"Id": deal["Id"]})
        assert outcome.status == "completed", outcome.error
        written = it.record("Opportunity", deal["Id"])
        invoice = it.company.tables["Invoice"][written["QuickBooks_Invoice_Id__c"]]
        assert invoice["LinkedTxn"] == [{"TxnId": "44", "TxnType": "Estimate"}]
        estimate = it.company.tables["Estimate"]["44"]
        assert estimate["TxnStatus"] == "Closed"
        assert estimate["LinkedTxn"] == [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]


@pytest.mark.anyio
async def test_move_opportunity_sets_a_stage_as_a_salesperson_would(anyio_backend: str) -> None:
    """`splice sandbox move-opportunity <Id|Name> <Stage>`: a stage with spaces and a slash is
    read from the end; an unknown stage says which there are."""
    app = create_salesforce(demo=True, clients={SANDBOX_CLIENT_ID: SANDBOX_CLIENT_SECRET})
    with serve_in_thread(app, lifespan="off") as base:
        emulator = {"baseUrl": base, "settings": sandbox_settings(base)}
        said = await move_opportunity(emulator, ["Initech", "-", "Support", "plan", "Negotiation/Review"])
        assert said.startswith("Negotiation/Review: Initech - Support plan") and "was Proposal/Price Quote" in said
        again = await move_opportunity(emulator, ["Initech - Support plan", "Negotiation/Review"])
        assert "is already at Negotiation/Review" in again
        with pytest.raises(ValueError, match="stages: Prospecting"):
            await move_opportunity(emulator, ["Initech - Support plan", "Won"])
    [deal] = [o for o in app.state.emulator.org.records["Opportunity"].values()
              if o["Name"] == "Initech - Support plan"]
    assert deal["StageName"] == "Negotiation/Review"
