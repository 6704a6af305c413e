"""Each shipped flow's happy path replayed from a cassette: no emulator, no network.

Recorded from the emulators (``--record-mode=rewrite``); CI replays (``--record-mode=none``, the
default; an unknown request fails the test). The plugin's ``splice_emulators`` fixture, overridden
here, serves the connections by the emulators only while recording. vcrpy replaces only httpx's innermost transport, so
OAuth, retries, rate limits and the connectors' Decimal handling all run during the replay. The ids
the recording run seeded are kept next to the cassettes (``*.ids.json``): the replay starts the
flows with the same records.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support.flows import Integration

pytestmark = [pytest.mark.anyio, pytest.mark.vcr, pytest.mark.block_network]

CASSETTES = Path(__file__).parent / "cassettes" / "test_cassettes"


@pytest.fixture
def splice_emulators(record_mode: str) -> bool:
    """The emulators answer while recording; the cassette answers when replaying."""
    return not replaying(record_mode)


def seeded(record_mode: str, name: str, seed: Any, directory: Path = CASSETTES) -> dict[str, str]:
    """Seed the emulators when recording (and keep the ids in ``directory``); read the ids when
    replaying."""
    path = directory / f"{name}.ids.json"
    if record_mode == "none":
        return dict(json.loads(path.read_text()))
    ids = seed()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ids, indent=2) + "\n")
    return ids


def won_opportunity(it: Integration, name: str) -> dict[str, str]:
    account = it.account(name, BillingCity="Québec", Billing_Email__c="ap@cassette.example")
    hours = it.product("Cassette Hours", 95.5, StockKeepingUnit="CAS-HRS", Family="Services")
    kit = it.product("Cassette Kit", 19.99, Family="Hardware")
    opp = it.opportunity(account, [{"product": hours, "Quantity": 7.25},
                                   {"product": kit, "Quantity": 3, "Discount": 15}])
    return {"account": account, "opportunity": opp}


def replaying(record_mode: str) -> bool:
    return record_mode == "none"


def payment(it: Integration, invoice: dict[str, Any], applied: str, total: str, date: str) -> dict[str, Any]:
    """A customer payment entered in QuickBooks: ``total`` received, ``applied`` of it to ``invoice``."""
    record: dict[str, Any] = it.company.create("Payment", {
        "CustomerRef": invoice["CustomerRef"], "TotalAmt": Decimal(total), "TxnDate": date,
        "Line": [{"Amount": Decimal(applied), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]}, {})
    return record


async def run(it: Integration, flow: str, payload: Any, attributes: dict[str, Any] | None = None) -> Any:
    outcome = await it.run(flow, payload, attributes)
    assert outcome.status == "completed", outcome.error
    return outcome.message


async def test_opportunity_to_invoice(integration: Integration, record_mode: str) -> None:
    it = integration
    ids = seeded(record_mode, "opportunity_to_invoice", lambda: won_opportunity(it, "Cassette d'Été"))
    message = await run(it, "opportunity-to-invoice", {"Id": ids["opportunity"]})
    invoice = message.payload
    assert invoice["DocNumber"] == "SF-" + ids["opportunity"][:15]
    assert Decimal(str(invoice["TotalAmt"])) == Decimal("743.35")  # 692.38 + 59.97 - 9.00 discount
    assert invoice["PrivateNote"] == f"Salesforce Opportunity {ids['opportunity']}"


def eur_opportunity(it: Integration) -> dict[str, str]:
    """A won EUR deal of an account that has no QuickBooks customer yet."""
    account = it.account("Cassette Européenne", BillingCity="Lyon", Billing_Email__c="ap@eu-cassette.example")
    hours = it.product("Cassette Euro Hours", 120, Family="Services")
    opp = it.org.create("Opportunity", {"Name": "Euro deal", "AccountId": account, "StageName": "Prospecting",
                                        "CloseDate": "2026-03-31", "CurrencyIsoCode": "EUR",
                                        "Pricebook2Id": it.org.standard_pricebook})
    it.org.create("OpportunityLineItem", {"OpportunityId": opp["Id"], "Quantity": 4, "UnitPrice": 120,
                                          "PricebookEntryId": it.pricebook_entries[hours]})
    it.org.update("Opportunity", opp["Id"], {"StageName": "Closed Won"})
    return {"account": account, "opportunity": str(opp["Id"])}


@pytest.mark.splice(environ={"CURRENCY_ENABLED": "auto"},
                    emulator_options={"salesforce": {"multicurrency": ("USD", "EUR")},
                                      "quickbooks": {"multicurrency": {"EUR": "1.085"}}})
async def test_multicurrency_opportunity_to_invoice(integration: Integration, record_mode: str) -> None:
    """Multi-currency on: the EUR deal's invoice is in euros, at QuickBooks' rate, for the account's
    EUR customer."""
    it = integration
    ids = seeded(record_mode, "multicurrency_opportunity_to_invoice", lambda: eur_opportunity(it))
    invoice = (await run(it, "opportunity-to-invoice", {"Id": ids["opportunity"]})).payload
    assert invoice["CurrencyRef"]["value"] == "EUR"
    assert Decimal(str(invoice["TotalAmt"])) == Decimal("480.00")
    assert Decimal(str(invoice["ExchangeRate"])) == Decimal("1.085")
    assert Decimal(str(invoice["HomeTotalAmt"])) == Decimal("520.80")
    assert invoice["CustomerRef"]["name"] == "Cassette Européenne (EUR)"


async def test_account_to_customer(integration: Integration, record_mode: str) -> None:
    it = integration
    ids = seeded(record_mode, "account_to_customer",
                 lambda: {"account": it.account("Cassette Ålesund AS", BillingCity="Ålesund")})
    message = await run(it, "account-to-customer", {"Id": ids["account"]})
    assert message.payload["customer"]["DisplayName"] == "Cassette Ålesund AS"
    assert message.payload["customer"]["BillAddr"]["City"] == "Ålesund"


async def test_payment_to_salesforce(integration: Integration, record_mode: str) -> None:
    it = integration
    ids = seeded(record_mode, "payment_to_salesforce_seed", lambda: won_opportunity(it, "Cassette Payer"))
    invoice = (await run(it, "opportunity-to-invoice", {"Id": ids["opportunity"]})).payload

    paid = seeded(record_mode, "payment_to_salesforce",
                  lambda: {"payment": payment(it, invoice, "300.00", "300.00", "2026-04-01")["Id"]})
    message = await run(it, "payment-to-salesforce", {}, {"entity": "Payment", "entityId": paid["payment"],
                                                          "operation": "Create"})
    [status] = message.vars["updated"]
    assert status == {"Amount_Paid__c": 300, "Balance_Due__c": 443.35, "Payment_Status__c": "Partially Paid",
                      "Last_Payment_Date__c": "2026-04-01", "Amount_Credited__c": 0, "Unapplied_Amount__c": 0}


async def test_opportunity_cancellation(integration: Integration, record_mode: str) -> None:
    """A partly paid invoice of a lost opportunity: its unpaid part credited and applied."""
    it = integration
    ids = seeded(record_mode, "opportunity_cancellation_seed", lambda: won_opportunity(it, "Cassette Cancelled"))
    invoice = (await run(it, "opportunity-to-invoice", {"Id": ids["opportunity"]})).payload

    def pay_then_lose() -> dict[str, str]:
        payment = it.company.create("Payment", {
            "CustomerRef": invoice["CustomerRef"], "TotalAmt": Decimal("300.00"), "TxnDate": "2026-04-01",
            "Line": [{"Amount": Decimal("300.00"), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]}, {})
        it.org.update("Opportunity", ids["opportunity"], {"StageName": "Closed Lost"})
        return {"payment": payment["Id"]}

    seeded(record_mode, "opportunity_cancellation", pay_then_lose)
    message = await run(it, "opportunity-cancellation", {"Id": ids["opportunity"]})
    plan = message.payload
    assert (plan["status"], plan["credit"], plan["apply"], plan["refund"]) == ("Cancelled - Credited", 443.35, 443.35, 0)
    [memo] = message.vars["creditMemo"]
    assert memo["DocNumber"] == "SFC-" + ids["opportunity"][:15] and Decimal(str(memo["TotalAmt"])) == Decimal("443.35")
    assert message.vars["status"]["Amount_Credited__c"] == 443.35 and message.vars["status"]["Balance_Due__c"] == 0


async def test_customer_360(integration: Integration, record_mode: str) -> None:
    it = integration
    ids = seeded(record_mode, "customer_360", lambda: won_opportunity(it, "Cassette 360"))
    await run(it, "opportunity-to-invoice", {"Id": ids["opportunity"]})
    message = await run(it, "customer-360", None, {"method": "GET", "pathParams": {"accountId": ids["account"]}})
    missing = await run(it, "customer-360", None, {"method": "GET",
                                                   "pathParams": {"accountId": "001000000000000AAA"}})
    view = message.payload
    assert view["account"]["name"] == "Cassette 360" and view["customer"]["displayName"] == "Cassette 360"
    assert view["totals"]["outstanding"] == 743.35 and view["totals"]["openInvoices"] == 1
    assert missing.vars["httpStatus"] == 404


@pytest.mark.splice(environ={"RECONCILIATION_BULK_POLL_INTERVAL": "10ms"})
async def test_nightly_reconciliation(integration: Integration, record_mode: str, reports_dir: Path) -> None:
    it = integration
    def seed() -> dict[str, str]:
        invoiced = won_opportunity(it, "Cassette Reconciled")
        missing = won_opportunity(it, "Cassette Missing")
        return {"invoiced": invoiced["opportunity"], "missing": missing["opportunity"]}

    ids = seeded(record_mode, "nightly_reconciliation", seed)
    await run(it, "opportunity-to-invoice", {"Id": ids["invoiced"]})
    message = await run(it, "nightly-reconciliation", {"from": "2026-03-01", "to": "2026-03-31"})
    report = message.payload
    assert (report["checked"], report["missing"], report["amountMismatch"], report["statusMismatch"]) == (2, 1, 0, 0)
    [finding] = [json.loads(line) for line in (reports_dir / "reconciliation-2026-03-01-to-2026-03-31.jsonl")
                 .read_text().splitlines()]
    assert (finding["category"], finding["opportunityId"]) == ("missing", ids["missing"])


def test_cassettes_hold_no_secrets() -> None:
    """No token, secret or company id was written into a cassette: neither the project's settings
    nor the emulators' credentials the recording logged in with (the plugin's scrubbing)."""
    from connectors.quickbooks.sandbox import sandbox_settings as quickbooks_settings
    from connectors.salesforce.sandbox import sandbox_settings as salesforce_settings
    from tests.support.flows import ENVIRON, REALM

    secrets = [str(settings[key]) for settings in (quickbooks_settings("http://q"), salesforce_settings("http://s"))
               for key in ("client-secret", "refresh-token") if settings.get(key)]
    assert len(secrets) == 3, secrets
    texts = [p.read_text() for p in CASSETTES.glob("*.yaml")]
    assert texts, "no cassettes recorded"
    for text in texts:
        assert REALM not in text
        for name in ("SALESFORCE_CLIENT_SECRET", "QUICKBOOKS_CLIENT_SECRET", "QUICKBOOKS_REFRESH_TOKEN"):
            assert ENVIRON[name] not in text
        for secret in secrets:
            assert secret not in text
        assert "Bearer " not in text


async def test_milestone_to_invoice(integration: Integration, record_mode: str) -> None:
    """A billable project milestone invoiced on its project job, replayed."""
    it = integration

    def seed() -> dict[str, str]:
        account = it.account("Cassette Consulting", BillingCity="Halifax", Billing_Email__c="ap@cassette.example")
        opp = it.org.create("Opportunity", {"Name": "Cassette Project", "AccountId": account,
                                            "StageName": "Closed Won", "CloseDate": "2026-04-20",
                                            "Amount": 4200.5, "Bill_By_Milestone__c": True})
        milestone = it.org.create("Project_Milestone__c", {
            "Name": "Cassette Kickoff", "Opportunity__c": opp["Id"], "Amount__c": 4200.5,
            "Due_Date__c": "2026-05-01", "Status__c": "Billable"})
        return {"account": account, "opportunity": opp["Id"], "milestone": milestone["Id"]}

    ids = seeded(record_mode, "milestone_to_invoice", seed)
    message = await run(it, "milestone-to-invoice", {"Id": ids["milestone"]})
    invoice = message.payload
    assert invoice["DocNumber"] == "SF-" + ids["milestone"][:15]
    assert Decimal(str(invoice["TotalAmt"])) == Decimal("4200.50")
    assert message.vars["project"]["FullyQualifiedName"] == "Cassette Consulting:Cassette Project"
    assert invoice["CustomerRef"]["value"] == message.vars["project"]["Id"]


def typed_deal(it: Integration, name: str, kind: str, stage: str) -> dict[str, str]:
    """A deal of the given transaction type (QuickBooks_Transaction_Type__c) at ``stage``."""
    account = it.account(name, BillingCity="Trondheim", Billing_Email__c="ap@typed.example")
    kit = it.product("Cassette Kit", 19.99, Family="Hardware")
    opp = it.opportunity(account, [{"product": kit, "Quantity": 4}], stage=stage)
    it.org.update("Opportunity", opp, {"QuickBooks_Transaction_Type__c": kind})
    return {"account": account, "opportunity": opp}


async def test_sales_receipt_deal(integration: Integration, record_mode: str) -> None:
    it = integration
    ids = seeded(record_mode, "sales_receipt_deal",
                 lambda: typed_deal(it, "Cassette Kvittering", "Sales Receipt", "Closed Won"))
    message = await run(it, "opportunity-to-invoice", {"Id": ids["opportunity"]})
    receipt = message.payload
    assert receipt["DocNumber"] == "SF-" + ids["opportunity"][:15]
    assert Decimal(str(receipt["TotalAmt"])) == Decimal("79.96")
    assert Decimal(str(receipt["Balance"])) == 0 and receipt["DepositToAccountRef"]["name"] == "Undeposited Funds"


async def test_estimate_deal_won(integration: Integration, record_mode: str) -> None:
    """At an estimate stage an Estimate; won, the invoice made from it (LinkedTxn)."""
    it = integration

    def seed() -> dict[str, str]:
        ids = typed_deal(it, "Cassette Tilbud", "Estimate", "Proposal/Price Quote")
        return {**ids, "stage": "Proposal/Price Quote"}

    ids = seeded(record_mode, "estimate_deal_won", seed)
    estimate = (await run(it, "opportunity-to-estimate",
                          {"Id": ids["opportunity"], "StageName": ids["stage"],
                           "QuickBooks_Transaction_Type__c": "Estimate"})).payload
    assert estimate["TxnStatus"] == "Pending" and Decimal(str(estimate["TotalAmt"])) == Decimal("79.96")
    if not replaying(record_mode):
        it.org.update("Opportunity", ids["opportunity"], {"StageName": "Closed Won"})
    invoice = (await run(it, "opportunity-to-invoice", {"Id": ids["opportunity"]})).payload
    assert invoice["LinkedTxn"] == [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]
