"""opportunity-cancellation and the payment write-back of credits: an invoiced opportunity that is
lost or deleted is voided, credited or refunded by the policy, once; credits and overpayments show
on the opportunity and the account."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from runtime.testing import wait_until
from tests.support.flows import Integration

pytestmark = pytest.mark.anyio

REFUNDS = {"CANCELLATION_REFUND": "refund-receipt"}
FAST = {"TRIGGERS_FALLBACK_INTERVAL": "100ms", "TRIGGERS_RETRY_STREAM_AFTER": "300ms"}


async def invoiced(it: Integration, name: str, price: float = 1000) -> tuple[str, str, dict[str, Any]]:
    """An account and a won opportunity of one line, invoiced by opportunity-to-invoice."""
    account = it.account(f"{name} Ltd")
    product = it.product(f"{name} service", price)
    opp = it.opportunity(account, [{"product": product, "Quantity": 1}], name=name)
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    invoice_id = it.record("Opportunity", opp)["QuickBooks_Invoice_Id__c"]
    return account, opp, it.company.tables["Invoice"][invoice_id]


def pay(it: Integration, invoice: dict[str, Any], amount: str, total: str | None = None) -> dict[str, Any]:
    """A customer payment in QuickBooks of ``total`` (default ``amount``), ``amount`` of it on the invoice."""
    return it.company.create("Payment", {
        "CustomerRef": invoice["CustomerRef"], "TotalAmt": Decimal(total or amount), "TxnDate": "2026-04-02",
        "Line": [{"Amount": Decimal(amount), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]}, {})


async def qb_event(it: Integration, entity: str, entity_id: str, operation: str = "Create") -> None:
    """What the QuickBooks webhook trigger hands payment-to-salesforce for one change."""
    outcome = await it.run("payment-to-salesforce", {}, {"entity": entity, "entityId": entity_id,
                                                         "operation": operation})
    assert outcome.status == "completed", outcome.error


async def cancel(it: Integration, opp: str, payload: dict[str, Any] | None = None) -> Any:
    """One run of opportunity-cancellation for the opportunity's change event."""
    outcome = await it.run("opportunity-cancellation", payload or it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    return outcome.payload


def counts(it: Integration) -> tuple[int, ...]:
    """How many transactions QuickBooks holds, and their SyncTokens: any write changes this."""
    return tuple(len(it.company.tables[e]) for e in ("Invoice", "Payment", "CreditMemo", "RefundReceipt")) + tuple(
        int(r["SyncToken"]) for e in ("Invoice", "CreditMemo") for r in it.company.tables[e].values())


def cancellation(it: Integration, opp: str) -> tuple[Any, ...]:
    record = it.record("Opportunity", opp)
    return (record["Cancellation_Status__c"], record["Payment_Status__c"], record["Amount_Paid__c"],
            record["Amount_Credited__c"], record["Amount_Refunded__c"], record["Balance_Due__c"])


async def assert_redelivery_changes_nothing(it: Integration, opp: str) -> None:
    before, stamp = counts(it), it.record("Opportunity", opp)["SystemModstamp"]
    await cancel(it, opp)
    assert counts(it) == before
    assert it.record("Opportunity", opp)["SystemModstamp"] == stamp


async def test_a_lost_opportunity_with_an_unpaid_invoice_is_voided_once(integration: Integration) -> None:
    it = integration
    _, opp, invoice = await invoiced(it, "Unpaid Cancel")
    it.org.update("Opportunity", opp, {"StageName": "Closed Lost"})
    plan = await cancel(it, opp)
    assert plan["void"] is True and plan["status"] == "Cancelled - Voided"
    voided = it.company.tables["Invoice"][invoice["Id"]]
    assert voided["TotalAmt"] == 0 and voided["PrivateNote"].startswith("Voided")
    assert cancellation(it, opp) == ("Cancelled - Voided", "Voided", 0, 0, 0, 0)
    assert it.record("Opportunity", opp)["QB_Sync_Error__c"] is None
    await assert_redelivery_changes_nothing(it, opp)
    # Won again after the void: never a second invoice; the opportunity says why.
    it.org.update("Opportunity", opp, {"StageName": "Closed Won"})
    outcome = await it.run("opportunity-to-invoice", it.record("Opportunity", opp))
    assert outcome.status == "completed", outcome.error
    assert len(it.company.tables["Invoice"]) == 1
    assert "was voided in QuickBooks" in it.record("Opportunity", opp)["QB_Sync_Error__c"]


async def test_a_partly_paid_invoice_gets_a_credit_memo_for_the_unpaid_part(integration: Integration) -> None:
    it = integration
    _, opp, invoice = await invoiced(it, "Partly Paid Cancel")
    payment = pay(it, invoice, "400.00")
    await qb_event(it, "Payment", payment["Id"])
    it.org.update("Opportunity", opp, {"StageName": "Closed Lost"})
    await cancel(it, opp)
    [memo] = it.company.tables["CreditMemo"].values()
    assert memo["TotalAmt"] == Decimal("600.00") and memo["RemainingCredit"] == 0
    assert memo["DocNumber"] == "SFC-" + opp[:15]
    assert it.company.tables["Invoice"][invoice["Id"]]["Balance"] == 0
    assert cancellation(it, opp) == ("Cancelled - Credited", "Paid", 400, 600, 0, 0)
    assert it.record("Opportunity", opp)["QuickBooks_Credit_Memo_Id__c"] == memo["Id"]
    await assert_redelivery_changes_nothing(it, opp)
    # The QuickBooks events of the cancellation's own writes change nothing more either.
    application = max(it.company.tables["Payment"].values(), key=lambda p: int(p["Id"]))
    stamp = it.record("Opportunity", opp)["SystemModstamp"]
    await qb_event(it, "Payment", application["Id"])
    await qb_event(it, "CreditMemo", memo["Id"])
    assert it.record("Opportunity", opp)["SystemModstamp"] == stamp


@pytest.mark.splice(environ=REFUNDS)
async def test_money_received_is_refunded_only_when_configured(integration: Integration) -> None:
    it = integration
    bank = it.company.create("Account", {"Name": "Checking", "AccountType": "Bank"}, {})
    # A company starts with its payment methods (Cash, Check, the cards).
    [check] = [m for m in it.company.tables["PaymentMethod"].values() if m["Name"] == "Check"]
    _, opp, invoice = await invoiced(it, "Refund Cancel")
    pay(it, invoice, "250.00")
    it.org.update("Opportunity", opp, {"StageName": "Closed Lost"})
    await cancel(it, opp)
    [refund] = it.company.tables["RefundReceipt"].values()
    assert refund["TotalAmt"] == Decimal("250.00") and refund["DocNumber"] == "SFR-" + opp[:15]
    assert refund["DepositToAccountRef"]["value"] == bank["Id"]
    assert refund["PaymentMethodRef"]["value"] == check["Id"]
    assert cancellation(it, opp) == ("Cancelled - Refunded", "Paid", 250, 750, 250, 0)
    assert it.record("Opportunity", opp)["QuickBooks_Refund_Id__c"] == refund["Id"]
    await assert_redelivery_changes_nothing(it, opp)


async def test_without_the_refund_policy_a_paid_invoice_is_only_flagged(integration: Integration) -> None:
    it = integration
    _, opp, invoice = await invoiced(it, "Paid Cancel", 300)
    pay(it, invoice, "300.00")
    it.org.update("Opportunity", opp, {"StageName": "Closed Lost"})
    await cancel(it, opp)
    assert len(it.company.tables["RefundReceipt"]) == 0 and len(it.company.tables["CreditMemo"]) == 0
    assert cancellation(it, opp) == ("Cancelled - Flagged", "Paid", 300, 0, 0, 0)
    assert "paid in full" in it.record("Opportunity", opp)["QB_Sync_Error__c"]
    await assert_redelivery_changes_nothing(it, opp)


@pytest.mark.splice(environ={"CANCELLATION_UNPAID": "flag"})
async def test_the_flag_policy_leaves_the_invoice_and_says_so(integration: Integration) -> None:
    it = integration
    _, opp, invoice = await invoiced(it, "Flag Cancel")
    it.org.update("Opportunity", opp, {"StageName": "Closed Lost"})
    await cancel(it, opp)
    assert it.company.tables["Invoice"][invoice["Id"]]["Balance"] == Decimal("1000.00")
    record = it.record("Opportunity", opp)
    assert record["Cancellation_Status__c"] == "Cancelled - Flagged"
    assert "was not voided (cancellation.unpaid is flag)" in record["QB_Sync_Error__c"]


async def test_a_reopened_opportunity_is_not_cancelled_by_default(integration: Integration) -> None:
    it = integration
    _, opp, invoice = await invoiced(it, "Reopened")
    it.org.update("Opportunity", opp, {"StageName": "Negotiation/Review"})
    before = counts(it)
    assert await cancel(it, opp) is not None
    assert counts(it) == before
    assert it.record("Opportunity", opp)["Cancellation_Status__c"] is None


async def test_a_deleted_opportunity_has_its_invoice_voided(integration: Integration) -> None:
    it = integration
    _, opp, invoice = await invoiced(it, "Deleted Deal")
    it.org.delete("Opportunity", opp)
    plan = await cancel(it, opp, {"Id": opp, "IsDeleted": True})
    assert plan["deleted"] is True and plan["void"] is True
    assert it.company.tables["Invoice"][invoice["Id"]]["PrivateNote"].startswith("Voided")


@pytest.mark.splice(environ=FAST, emulator_options={"salesforce": {"long_poll_timeout": 0.2}})
async def test_lost_and_deleted_opportunities_reach_the_flow_through_change_events(
        integration: Integration) -> None:
    """Under its real trigger: losing one invoiced opportunity and deleting another void both."""
    it = integration
    _, lost, lost_invoice = await invoiced(it, "Streamed Lost")
    _, deleted, deleted_invoice = await invoiced(it, "Streamed Deleted")
    emulator = it.sf_app.state.emulator

    # Every flow on Opportunity change events subscribed (opportunity-cancellation among them):
    # a deletion made before its subscription would reach no poll.
    on_opportunities = sum(1 for flow in it.runtime.project.flows.values()
                           if flow.trigger is not None and flow.trigger.params.get("object") == "Opportunity")

    def subscribed() -> bool:
        return sum(1 for c in emulator.streaming_clients.values()
                   if "/data/OpportunityChangeEvent" in c["subscriptions"]) >= on_opportunities

    def voided(invoice: dict[str, Any]) -> bool:
        return str(it.company.tables["Invoice"][invoice["Id"]].get("PrivateNote", "")).startswith("Voided")

    async with anyio.create_task_group() as tg:
        tg.start_soon(it.runtime.run_triggers)
        await wait_until(subscribed, within=15)
        it.org.update("Opportunity", lost, {"StageName": "Closed Lost"})
        it.org.delete("Opportunity", deleted)
        await wait_until(lambda: voided(lost_invoice) and voided(deleted_invoice), within=15,
                         what="both invoices to be voided")
        await wait_until(lambda: it.record("Opportunity", lost)["Cancellation_Status__c"] == "Cancelled - Voided",
                         within=15)
        it.runtime.request_stop()


async def test_a_credit_memo_entered_by_hand_updates_the_balance(integration: Integration) -> None:
    """A credit memo made in QuickBooks and applied to the invoice (a $0 payment of two lines):
    its events lower the opportunity's balance and count as credited, not paid; an unapplied
    one shows on the account as unapplied credit."""
    it = integration
    account, opp, invoice = await invoiced(it, "Hand Credit")
    item = invoice["Line"][0]["SalesItemLineDetail"]["ItemRef"]
    memo = it.company.create("CreditMemo", {"CustomerRef": invoice["CustomerRef"], "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": Decimal("250"), "SalesItemLineDetail": {"ItemRef": item}}]}, {})
    await qb_event(it, "CreditMemo", memo["Id"])
    assert it.record("Account", account)["Unapplied_Amount__c"] == 250
    assert cancellation(it, opp)[1:] == ("Unpaid", 0, 0, None, 1000)
    applied = it.company.create("Payment", {"CustomerRef": invoice["CustomerRef"], "TotalAmt": 0, "Line": [
        {"Amount": Decimal("250"), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]},
        {"Amount": Decimal("250"), "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]}]}, {})
    await qb_event(it, "CreditMemo", memo["Id"], "Update")
    assert cancellation(it, opp)[1:] == ("Partially Paid", 0, 250, None, 750)
    await qb_event(it, "Payment", applied["Id"])
    assert it.record("Account", account)["Unapplied_Amount__c"] == 0
    # The nightly comparison sees payments and credits together: no status mismatch.
    assert it.record("Opportunity", opp)["Last_Payment_Date__c"] is None


async def test_an_overpayment_shows_its_unapplied_amount(integration: Integration) -> None:
    it = integration
    account, opp, invoice = await invoiced(it, "Overpayer", 500)
    payment = pay(it, invoice, "500.00", total="620.00")
    await qb_event(it, "Payment", payment["Id"])
    record = it.record("Opportunity", opp)
    assert (record["Payment_Status__c"], record["Unapplied_Amount__c"]) == ("Paid", 120)
    assert it.record("Account", account)["Unapplied_Amount__c"] == 120


@pytest.mark.splice(environ={"RECONCILIATION_BULK_POLL_INTERVAL": "10ms"})
async def test_the_reconciliation_reports_and_repairs_cancelled_deals(
        integration: Integration, reports_dir: Path) -> None:
    """A lost opportunity whose invoice is still open is a "cancelled" finding, repaired by
    cancelling it; once cancelled (voided, or credited) it is in sync; a flagged one is report only."""
    it = integration
    period = {"from": "2026-03-01", "to": "2026-03-31"}
    name = f"reconciliation-{period['from']}-to-{period['to']}"
    _, open_lost, open_invoice = await invoiced(it, "Lost Open")
    _, done, done_invoice = await invoiced(it, "Lost Done")
    pay(it, done_invoice, "100.00")
    for opp in (open_lost, done):
        it.org.update("Opportunity", opp, {"StageName": "Closed Lost"})
    await cancel(it, done)  # credited at once; the other missed its event

    outcome = await it.run("nightly-reconciliation", {**period, "repair": False})
    assert outcome.status == "completed", outcome.error
    findings = [json.loads(line) for line in (reports_dir / f"{name}.jsonl").read_text().splitlines()]
    assert [(f["category"], f["opportunityId"], f["quickbooks"], f["repair"]) for f in findings] == [
        ("cancelled", open_lost, "open, balance 1000", "cancel")]
    assert "cancelled 1" in (reports_dir / f"{name}.txt").read_text()

    # Previewed: the repair's writes are listed, nothing changes.
    before = counts(it)
    outcome = await it.run("nightly-reconciliation", {**period, "repair": "preview"})
    assert outcome.status == "completed", outcome.error
    [finding] = [json.loads(line) for line in (reports_dir / f"{name}.jsonl").read_text().splitlines()]
    assert finding["repairResult"] == "previewed"
    operations = [w["operation"] for w in finding["repairWrites"]]
    assert operations[0] == "quickbooks.void" and set(operations[1:]) == {"salesforce.update"}
    assert counts(it) == before

    outcome = await it.run("nightly-reconciliation", {**period, "repair": True})
    assert outcome.status == "completed", outcome.error
    assert json.loads((reports_dir / f"{name}.json").read_text())["repairs"] == {"attempted": 1, "done": 1, "failed": 0}
    assert it.company.tables["Invoice"][open_invoice["Id"]]["PrivateNote"].startswith("Voided")
    assert it.record("Opportunity", open_lost)["Cancellation_Status__c"] == "Cancelled - Voided"

    outcome = await it.run("nightly-reconciliation", {**period, "repair": False})
    assert outcome.status == "completed", outcome.error
    assert (reports_dir / f"{name}.jsonl").read_text() == ""


async def test_a_refund_entered_by_hand_uses_up_the_accounts_credit(integration: Integration) -> None:
    """An unused credit memo is unapplied credit on the account; a refund receipt paying it out
    (entered in QuickBooks) brings the account's unapplied amount back to 0."""
    it = integration
    account, _, invoice = await invoiced(it, "Hand Refund")
    item = invoice["Line"][0]["SalesItemLineDetail"]["ItemRef"]
    lines = [{"DetailType": "SalesItemLineDetail", "Amount": Decimal("80"), "SalesItemLineDetail": {"ItemRef": item}}]
    memo = it.company.create("CreditMemo", {"CustomerRef": invoice["CustomerRef"], "Line": lines}, {})
    await qb_event(it, "CreditMemo", memo["Id"])
    assert it.record("Account", account)["Unapplied_Amount__c"] == 80
    bank = it.company.create("Account", {"Name": "Checking", "AccountType": "Bank"}, {})
    refund = it.company.create("RefundReceipt", {"CustomerRef": invoice["CustomerRef"], "Line": lines,
                                                 "DepositToAccountRef": {"value": bank["Id"]},
                                                 "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]}, {})
    await qb_event(it, "RefundReceipt", refund["Id"])
    assert it.record("Account", account)["Unapplied_Amount__c"] == 0


def refund_by_hand(it: Integration, invoice: dict[str, Any], amount: str, **fields: Any) -> dict[str, Any]:
    """A RefundReceipt entered in QuickBooks for the invoice's customer, from a bank account."""
    item = invoice["Line"][0]["SalesItemLineDetail"]["ItemRef"]
    banks = [a for a in it.company.tables["Account"].values() if a.get("Name") == "Hand Checking"]
    bank = banks[0] if banks else it.company.create("Account", {"Name": "Hand Checking", "AccountType": "Bank"}, {})
    return it.company.create("RefundReceipt", {
        "CustomerRef": invoice["CustomerRef"], "DepositToAccountRef": {"value": bank["Id"]},
        "Line": [{"DetailType": "SalesItemLineDetail", "Amount": Decimal(amount),
                  "SalesItemLineDetail": {"ItemRef": item}}], **fields}, {})


async def test_a_refund_entered_by_hand_reaches_the_opportunity_it_pays_back(integration: Integration) -> None:
    """A refund receipt made in QuickBooks for a customer with one paid invoice: its event writes
    the amount refunded on that invoice's opportunity; a second refund adds to it."""
    it = integration
    _, opp, invoice = await invoiced(it, "Hand Refund Paid", 400)
    await qb_event(it, "Payment", pay(it, invoice, "400.00")["Id"])
    assert cancellation(it, opp)[1:] == ("Paid", 400, 0, None, 0)
    first = refund_by_hand(it, invoice, "150")
    await qb_event(it, "RefundReceipt", first["Id"])
    assert it.record("Opportunity", opp)["Amount_Refunded__c"] == 150
    second = refund_by_hand(it, invoice, "50")
    await qb_event(it, "RefundReceipt", second["Id"])
    assert it.record("Opportunity", opp)["Amount_Refunded__c"] == 200


async def test_a_refund_of_a_credit_memo_goes_to_the_invoice_the_credit_memo_was_applied_to(
        integration: Integration) -> None:
    """The customer has two paid invoices; the refund pays out a credit memo applied to one of
    them: that one's opportunity shows the refund, the other none."""
    it = integration
    _, opp, invoice = await invoiced(it, "Memo Refund")
    other_product = it.product("Memo Refund extra", 300)
    account_id = it.record("Opportunity", opp)["AccountId"]
    other = it.opportunity(account_id, [{"product": other_product, "Quantity": 1}], name="Memo Refund 2")
    assert (await it.run("opportunity-to-invoice", it.record("Opportunity", other))).status == "completed"
    other_invoice = it.company.tables["Invoice"][it.record("Opportunity", other)["QuickBooks_Invoice_Id__c"]]
    assert other_invoice["CustomerRef"]["value"] == invoice["CustomerRef"]["value"]
    pay(it, invoice, "600.00")
    pay(it, other_invoice, "300.00")
    item = invoice["Line"][0]["SalesItemLineDetail"]["ItemRef"]
    memo = it.company.create("CreditMemo", {"CustomerRef": invoice["CustomerRef"], "Line": [
        {"DetailType": "SalesItemLineDetail", "Amount": Decimal("400"), "SalesItemLineDetail": {"ItemRef": item}}]}, {})
    it.company.create("Payment", {"CustomerRef": invoice["CustomerRef"], "TotalAmt": 0, "Line": [
        {"Amount": Decimal("100"), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]},
        {"Amount": Decimal("100"), "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]}]}, {})
    refund = refund_by_hand(it, invoice, "300", LinkedTxn=[{"TxnId": memo["Id"], "TxnType": "CreditMemo"}])
    await qb_event(it, "RefundReceipt", refund["Id"])
    assert it.record("Opportunity", opp)["Amount_Refunded__c"] == 300
    assert it.record("Opportunity", other)["Amount_Refunded__c"] is None


async def test_a_refund_that_no_rule_traces_stays_on_the_account(integration: Integration) -> None:
    """Two paid invoices and a refund that names neither: no opportunity is guessed at."""
    it = integration
    account, opp, invoice = await invoiced(it, "Untraced Refund")
    product = it.product("Untraced extra", 200)
    other = it.opportunity(account, [{"product": product, "Quantity": 1}], name="Untraced 2")
    assert (await it.run("opportunity-to-invoice", it.record("Opportunity", other))).status == "completed"
    other_invoice = it.company.tables["Invoice"][it.record("Opportunity", other)["QuickBooks_Invoice_Id__c"]]
    pay(it, invoice, "1000.00")
    pay(it, other_invoice, "200.00")
    refund = refund_by_hand(it, invoice, "100")
    await qb_event(it, "RefundReceipt", refund["Id"])
    assert it.record("Opportunity", opp)["Amount_Refunded__c"] is None
    assert it.record("Opportunity", other)["Amount_Refunded__c"] is None


async def test_the_cancellations_own_refund_is_found_again_by_the_refund_event(integration: Integration) -> None:
    """The refund the cancellation made comes back as a RefundReceipt event: the amount on the
    opportunity stays what the cancellation wrote (its DocNumber names the deal)."""
    it = integration
    _, opp, invoice = await invoiced(it, "Own Refund")
    pay(it, invoice, "1000.00")
    refund = refund_by_hand(it, invoice, "1000", DocNumber="SFR-" + opp[:15])
    await qb_event(it, "RefundReceipt", refund["Id"])
    assert it.record("Opportunity", opp)["Amount_Refunded__c"] == 1000


@pytest.mark.splice(environ=REFUNDS)
async def test_a_cancellation_after_a_refund_by_hand_refunds_only_the_rest(integration: Integration) -> None:
    """250 received, 40 of it refunded by hand in QuickBooks; then the deal is lost. The
    cancellation refunds the 210 still held (not 250 again), and the opportunity's amount refunded
    is 250: every refund traced to the deal, not only the cancellation's own; a second run of the
    cancellation changes nothing."""
    it = integration
    it.company.create("Account", {"Name": "Checking", "AccountType": "Bank"}, {})
    _, opp, invoice = await invoiced(it, "Refund Twice")
    await qb_event(it, "Payment", pay(it, invoice, "250.00")["Id"])
    by_hand = refund_by_hand(it, invoice, "40")
    await qb_event(it, "RefundReceipt", by_hand["Id"])
    assert it.record("Opportunity", opp)["Amount_Refunded__c"] == 40
    it.org.update("Opportunity", opp, {"StageName": "Closed Lost"})
    await cancel(it, opp)
    own = next(r for r in it.company.tables["RefundReceipt"].values() if r["Id"] != by_hand["Id"])
    assert own["TotalAmt"] == Decimal("210.00")
    assert it.record("Opportunity", opp)["Amount_Refunded__c"] == 250
    await assert_redelivery_changes_nothing(it, opp)


async def test_a_refund_deleted_in_quickbooks_leaves_the_opportunity(integration: Integration) -> None:
    """A hand refund, then deleted in QuickBooks: the Delete event (which names no customer) brings
    the opportunity's amount refunded back to 0."""
    it = integration
    _, opp, invoice = await invoiced(it, "Deleted Refund", 300)
    await qb_event(it, "Payment", pay(it, invoice, "300.00")["Id"])
    refund = refund_by_hand(it, invoice, "120")
    await qb_event(it, "RefundReceipt", refund["Id"])
    assert it.record("Opportunity", opp)["Amount_Refunded__c"] == 120
    stored = it.company.tables["RefundReceipt"][refund["Id"]]
    it.company.delete("RefundReceipt", {"Id": stored["Id"], "SyncToken": stored["SyncToken"]})
    await qb_event(it, "RefundReceipt", refund["Id"], "Delete")
    assert it.record("Opportunity", opp)["Amount_Refunded__c"] == 0
