"""The demo org's project billed by milestones (job costing): a consulting firm's engagement.

An account already synced to QuickBooks (Acme Corp) has one won opportunity billed milestone by milestone
(``Bill_By_Milestone__c``: the opportunity itself is never invoiced whole), and three
``Project_Milestone__c`` records: one invoiced and paid, one billable and invoiced (unpaid), one
planned. The QuickBooks emulator's demo company holds the project as a job under the account's
customer, and the two invoices (``connectors/quickbooks/emulator/demo_projects.py``); as with the
rest of the demo, the shared facts are written in both packages and ``tests/sandbox/test_demo.py``
checks that they agree. The records are made after every other demo record, so the ids of those
stay as they were.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.salesforce.emulator.store import Org

__all__ = ["DEMO_MILESTONES", "DEMO_PROJECT_ACCOUNT", "DEMO_PROJECT_OPPORTUNITY", "seed_demo_projects"]

#: The demo account (already synced: QuickBooks customer 14) whose project this is.
DEMO_PROJECT_ACCOUNT = "Acme Corp"
#: (Name, CloseDate, Amount)
DEMO_PROJECT_OPPORTUNITY = ("Acme Corp - Data platform", "2026-04-20", 39000.0)
#: (Name, Amount, Due date, Status, invoice or None) where invoice = (QuickBooks Invoice Id,
#: Payment_Status__c, amount paid). DocNumbers are "SF-" and the milestone's 15-character id.
DEMO_MILESTONES: tuple[tuple[Any, ...], ...] = (
    ("Discovery and design", 12000.0, "2026-05-15", "Billable", ("41", "Paid", 12000.0)),
    ("Platform build", 18000.0, "2026-07-31", "Billable", ("42", "Unpaid", 0.0)),
    ("Rollout and training", 9000.0, "2026-09-30", "Planned", None),
)
_INVOICE_LINK = "https://app.sandbox.qbo.intuit.com/app/invoice?txnId="


def seed_demo_projects(org: Org) -> None:
    """Add the project opportunity of the demo account and its milestones to the demo org."""
    account = next(a for a in org.records["Account"].values() if a["Name"] == DEMO_PROJECT_ACCOUNT)
    title, close, amount = DEMO_PROJECT_OPPORTUNITY
    opportunity = org.create("Opportunity", {
        "Name": title, "AccountId": account["Id"], "StageName": "Closed Won", "CloseDate": close,
        "Amount": amount, "Type": "Existing Customer - Upgrade", "Bill_By_Milestone__c": True})
    for milestone, value, due, status, invoice in DEMO_MILESTONES:
        record = org.create("Project_Milestone__c", {
            "Name": milestone, "Opportunity__c": opportunity["Id"], "Amount__c": value,
            "Due_Date__c": due, "Status__c": status})
        if invoice is not None:
            invoice_id, payment_status, paid = invoice
            org.update("Project_Milestone__c", record["Id"], {
                "QuickBooks_Invoice_Id__c": invoice_id,
                "QuickBooks_Invoice_Number__c": "SF-" + record["Id"][:15],
                "QuickBooks_Invoice_Link__c": f"{_INVOICE_LINK}{invoice_id}",
                "Payment_Status__c": payment_status, "Amount_Paid__c": paid,
                "Balance_Due__c": round(value - paid, 2)})
