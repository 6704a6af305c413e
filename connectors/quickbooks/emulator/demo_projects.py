"""The demo company's project billed by milestones (job costing), the QuickBooks side.

The Salesforce demo's won opportunity "Acme Corp - Data platform" is a job under Acme Corp's
customer (40: ``Job`` true, ``ParentRef`` 14, ``FullyQualifiedName`` "Acme Corp:Acme Corp - Data
platform"), and its two billable milestones are invoices on that job: 41 (paid in full by payment
43) and 42 (unpaid). Each is
numbered as the milestone flow numbers them ("SF-" and the milestone's 15-character id) and notes
its milestone and opportunity. The facts are shared with
``connectors/salesforce/emulator/demo_projects.py`` (``tests/sandbox/test_demo.py`` checks them).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.quickbooks.emulator.entities import Company

__all__ = ["DEMO_PROJECT_INVOICES", "DEMO_PROJECT_JOB", "seed_demo_projects"]

#: (parent customer Id, expected Id, DisplayName): the opportunity's project, a job of Acme Corp.
DEMO_PROJECT_JOB = ("14", "40", "Acme Corp - Data platform")
#: (expected Id, DocNumber, milestone Id, opportunity Id, milestone name, TxnDate, amount, paid)
DEMO_PROJECT_INVOICES: tuple[tuple[Any, ...], ...] = (
    ("41", "SF-a0MRx0000366KS7", "a0MRx0000366KS7MAM", "006Rx0000365tCwIAI", "Discovery and design",
     "2026-05-15", "12000.00", "12000.00"),
    ("42", "SF-a0MRx0000366lhI", "a0MRx0000366lhIMAQ", "006Rx0000365tCwIAI", "Platform build",
     "2026-07-31", "18000.00", "0"),
)


def seed_demo_projects(company: Company) -> None:
    """Add the project's job, invoices and payment (after every other demo record)."""
    parent_id, job_id, job_name = DEMO_PROJECT_JOB
    parent = company.tables["Customer"][parent_id]
    terms = next(t["Id"] for t in company.tables["Term"].values() if t["Name"] == "Net 30")
    email = parent["PrimaryEmailAddr"]["Address"]
    job = company.create("Customer", {"DisplayName": job_name, "Job": True, "BillWithParent": False,
                                      "ParentRef": {"value": parent_id},
                                      "PrimaryEmailAddr": {"Address": email}}, {})
    assert job["Id"] == job_id, "demo ids must match the Salesforce demo"
    services = next(i for i in company.tables["Item"].values() if i["Name"] == "Services")
    payments = []
    for invoice_id, number, milestone, opportunity, title, when, amount, paid in DEMO_PROJECT_INVOICES:
        total = Decimal(amount)
        invoice = company.create("Invoice", {
            "DocNumber": number, "TxnDate": when, "CustomerRef": {"value": job["Id"]},
            "SalesTermRef": {"value": terms}, "BillEmail": {"Address": email},
            "PrivateNote": f"Salesforce Project Milestone {milestone} (Opportunity {opportunity})",
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": total, "Description": title,
                      "SalesItemLineDetail": {"ItemRef": {"value": services["Id"]}, "Qty": 1,
                                              "UnitPrice": total, "TaxCodeRef": {"value": "NON"}}}]},
            {})
        assert invoice["Id"] == invoice_id, "demo ids must match the Salesforce demo"
        if Decimal(paid):
            payments.append((invoice["Id"], Decimal(paid)))
    for invoice_id, amount in payments:
        company.create("Payment", {
            "CustomerRef": {"value": job["Id"]}, "TotalAmt": amount,
            "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]}]},
            {})
