"""Demo data for ``create_app(demo=True)`` (``splice serve`` in sandbox mode, ``splice sandbox
salesforce --option demo=true``): a small, believable book of business.

Eight accounts (one name with an apostrophe, two with non-ASCII letters, two of the same name in
two cities, one named like a QuickBooks vendor), a contact each, five products with product codes
and standard prices, and twenty-five opportunities that cover every stage of the sales process, one
of them won without products, the others with line items. Some Closed Won opportunities were already invoiced in
QuickBooks (they carry the invoice id, number and payment state); others are Closed Won and not yet
invoiced, so the sync has work to do the moment it starts; one was invoiced and the invoice then
voided in QuickBooks. Two invoiced ones were lost and cancelled: one's unpaid invoice voided, the
other's unpaid part credited (DEMO_CANCELLATIONS). Those waiting ones close a few days
to a few weeks before the day the demo is seeded (their CloseDate is relative to today), so they
always fall in the nightly reconciliation's period, which `splice serve` runs at start in sandbox
mode; every other date is fixed.

The QuickBooks emulator's demo company (``connectors/quickbooks/emulator/demo.py``) holds the same
products as items (``Sku`` = ``ProductCode``), the already synced accounts as customers and the
invoices named here. The two packages do not import each other (each emulator stands alone), so the
shared facts are written down twice; ``tests/sandbox/test_demo.py`` checks that they agree.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from connectors.salesforce.emulator.demo_headers import seed_demo_headers
from connectors.salesforce.emulator.demo_projects import seed_demo_projects
from connectors.salesforce.emulator.schema import STAGES

if TYPE_CHECKING:
    from connectors.salesforce.emulator.store import Org

__all__ = ["DEMO_ACCOUNTS", "DEMO_AMOUNTS", "DEMO_CANCELLATIONS", "DEMO_ESTIMATE_DEALS", "DEMO_OPPORTUNITIES",
           "DEMO_PRODUCTS", "DEMO_SALES_RECEIPTS", "DEMO_WON_ESTIMATES", "seed_demo"]

#: (Name, ProductCode, Family, list price)
DEMO_PRODUCTS: tuple[tuple[str, str, str, float], ...] = (
    ("Widget", "WID-100", "Hardware", 62.5),
    ("Gadget", "GAD-200", "Hardware", 149.0),
    ("Sensor Kit", "SEN-300", "Hardware", 310.0),
    ("Installation", "SVC-INST", "Services", 95.0),
    ("Support Plan", "SVC-SUP", "Services", 1200.0),
)

#: (Name, street, city, state, postal code, country, industry, QuickBooks customer id or None,
#: contact first name, last name)
DEMO_ACCOUNTS: tuple[tuple[Any, ...], ...] = (
    ("Acme Corp", "1 Market St", "San Francisco", "CA", "94105", "USA", "Manufacturing", "14",
     "Ada", "Lovelace"),
    ("Globex", "742 Evergreen Ter", "Springfield", "OR", "97477", "USA", "Energy", "15",
     "Grace", "Hopper"),
    ("Initech", "4120 Freidrich Ln", "Austin", "TX", "78744", "USA", "Technology", None,
     "Alan", "Turing"),
    ("Nordlys Møbler AS", "Karl Johans gate 1", "Oslo", None, "0154", "Norway", "Retail", None,
     "Ingrid", "Bjørnstad"),
    ("O'Brien Logistics", "88 Seaport Blvd", "Boston", "MA", "02210", "USA", "Transportation", "16",
     "Siobhán", "O'Brien"),
    ("Zoë's Bäckerei", "Marienplatz 8", "München", None, "80331", "Germany", "Food & Beverage",
     None, "Zoë", "Müller"),
    # The edges of matching (created after the opportunities above, which keep their ids): a
    # second "O'Brien Logistics", in Denver (its own QuickBooks customer, "O'Brien Logistics
    # (Denver)", never the Boston one's), and an account named like a QuickBooks vendor.
    ("O'Brien Logistics", "1700 Wynkoop St", "Denver", "CO", "80202", "USA", "Transportation", None,
     "Dana", "Kowalski"),
    ("Pinewood Supplies", "220 NW 8th Ave", "Portland", "OR", "97209", "USA", "Wholesale", None,
     "Priya", "Natarajan"),
)
#: Accounts from this index on are created when their first opportunity is (ids follow creation).
_LATER_ACCOUNTS = 6

#: (account index, Name, StageName, CloseDate, ((ProductCode, Quantity), ...), invoice or None)
#: where invoice = (QuickBooks Invoice Id, DocNumber, Payment_Status__c, amount paid[, sales tax])
#: and CloseDate is a date, or a number of days before the day of seeding (the Closed Won ones waiting for an
#: invoice, so that they stay in the reconciliation period of the last 31 days). DocNumbers
#: follow the flows' rule ("SF-" and the opportunity's 15-character Id, which is fixed here since
#: ids come from a counter in creation order).
DEMO_OPPORTUNITIES: tuple[tuple[Any, ...], ...] = (
    (0, "Acme Corp - Widget rollout", "Closed Won", "2026-02-12",
     (("WID-100", 40), ("SVC-INST", 4)), ("22", "SF-006Rx000035eCml", "Paid", 2880.0)),
    (0, "Acme Corp - Support renewal", "Closed Won", 26, (("SVC-SUP", 1),), None),
    (0, "Acme Corp - Sensor pilot", "Prospecting", "2027-01-20", (("SEN-300", 5),), None),
    (1, "Globex - Plant sensors", "Closed Won", "2026-05-04",
     (("SEN-300", 12), ("SVC-INST", 6)), ("23", "SF-006Rx000035hHV0", "Partially Paid", 2000.0)),
    (1, "Globex - Gadget refresh", "Negotiation/Review", "2026-12-15", (("GAD-200", 25),), None),
    (1, "Globex - Second site", "Qualification", "2027-02-01", (("WID-100", 60),), None),
    (2, "Initech - TPS hardware", "Closed Won", 23,
     (("GAD-200", 8), ("WID-100", 16)), None),
    (2, "Initech - Support plan", "Proposal/Price Quote", "2026-12-20", (("SVC-SUP", 2),), None),
    (2, "Initech - Printer sensors", "Closed Lost", "2026-08-11", (("SEN-300", 3),), None),
    (3, "Nordlys Møbler AS - Showroom kit", "Closed Won", 15,
     (("SEN-300", 4), ("SVC-INST", 2)), None),
    (3, "Nordlys Møbler AS - Widgets", "Needs Analysis", "2027-01-05", (("WID-100", 100),), None),
    (3, "Nordlys Møbler AS - Installation", "Value Proposition", "2027-01-28", (("SVC-INST", 10),), None),
    (4, "O'Brien Logistics - Fleet gadgets", "Closed Won", "2026-09-18",
     (("GAD-200", 20), ("SVC-SUP", 1)), ("24", "SF-006Rx000035qVdj", "Unpaid", 0.0)),
    (4, "O'Brien Logistics - Depot sensors", "Id. Decision Makers", "2027-01-15", (("SEN-300", 20),), None),
    (4, "O'Brien Logistics - Support", "Perception Analysis", "2027-02-10", (("SVC-SUP", 1),), None),
    (5, "Zoë's Bäckerei - Ofen-Sensoren", "Closed Won", 5, (("SEN-300", 2),), None),
    (5, "Zoë's Bäckerei - Kassen", "Prospecting", "2027-03-01", (("GAD-200", 3),), None),
    (5, "Zoë's Bäckerei - Widgets", "Closed Lost", "2026-07-07", (("WID-100", 10),), None),
    # Invoiced, then the invoice was voided in QuickBooks: the sync never writes it again and the
    # reconciliation reports it as voided.
    (1, "Globex - Cancelled gadgets", "Closed Won", "2026-06-22",
     (("GAD-200", 10), ("SVC-INST", 3)), ("25", "SF-006Rx000035wDp2", "Voided", 0.0)),
    # Won without products: invoiced for its Amount on one line (invoice.without-products).
    (2, "Initech - Consulting retainer", "Closed Won", 10, (), None),
    # Invoiced with sales tax (QuickBooks' automated sales tax, 8.25% on the taxable Gadgets): the
    # invoice's total is the Amount plus 49.17 tax; the reconciliation finds it in sync.
    (0, "Acme Corp - Gadget order", "Closed Won", "2026-10-05",
     (("GAD-200", 4), ("SVC-INST", 1)), ("26", "SF-006Rx000035xynk", "Unpaid", 0.0, 49.17)),
    # Matching: the Denver O'Brien is invoiced on a customer of its own, and Pinewood Supplies on
    # "Pinewood Supplies (Portland)", since a QuickBooks vendor holds its name.
    (6, "O'Brien Logistics Denver - Depot widgets", "Closed Won", 8, (("WID-100", 30),), None),
    (7, "Pinewood Supplies - Yard sensors", "Closed Won", 12, (("SEN-300", 3),), None),
    # Cancelled (opportunity-cancellation; DEMO_CANCELLATIONS): invoiced, then lost. The unpaid
    # invoice was voided; the partly paid one had its unpaid part credited (a credit memo applied).
    (4, "O'Brien Logistics - Cancelled install", "Closed Lost", "2026-10-20",
     (("SVC-INST", 2),), ("30", "SF-006Rx0000362oUh", "Voided", 0.0)),
    (0, "Acme Corp - Returned installation", "Closed Lost", "2026-11-03",
     (("SVC-INST", 10),), ("31", "SF-006Rx0000363gz3", "Paid", 400.0)),
)

#: Opportunity name -> (Cancellation_Status__c, QuickBooks_Credit_Memo_Id__c, Amount_Credited__c):
#: the cancelled deals, as opportunity-cancellation left them (the QuickBooks demo's
#: DEMO_CANCELLATIONS holds their invoices and credit memo).
DEMO_CANCELLATIONS: dict[str, tuple[str, str | None, float]] = {
    "O'Brien Logistics - Cancelled install": ("Cancelled - Voided", None, 0.0),
    "Acme Corp - Returned installation": ("Cancelled - Credited", "33", 550.0),
}

#: The Amount of each opportunity without products (the others' comes from their line items).
DEMO_AMOUNTS: dict[str, float] = {"Initech - Consulting retainer": 3878.95}

assert set(STAGES) <= {o[2] for o in DEMO_OPPORTUNITIES}, "the demo must show every stage"


_INVOICE_LINK = "https://app.sandbox.qbo.intuit.com/app/invoice?txnId="
#: Billing e-mail of each account; the QuickBooks customers of synced accounts carry the same.
_EMAILS = {"Acme Corp": "ap@acme.example", "Globex": "billing@globex.example",
           "O'Brien Logistics": "accounts@obrien.example"}


#: A second site of the same name bills to its own address.
_SITE_EMAILS = {("O'Brien Logistics", "Denver"): "denver-ap@obrien.example"}


def _email(account: str, city: str) -> str:
    if (account, city) in _SITE_EMAILS:
        return _SITE_EMAILS[(account, city)]
    if account in _EMAILS:
        return _EMAILS[account]
    slug = "".join(c for c in account.lower().replace("ø", "o").replace("ë", "e").replace("ä", "a")
                   if c.isalnum())
    return f"invoices@{slug}.example"


def seed_demo(org: Org) -> None:
    """Fill ``org`` with the demo records (no change events are kept for them)."""
    entries: dict[str, dict[str, Any]] = {}
    prices: dict[str, float] = {}
    for name, code, family, price in DEMO_PRODUCTS:
        product = org.create("Product2", {"Name": name, "ProductCode": code, "Family": family,
                                          "IsActive": True, "StockKeepingUnit": code})
        entries[code] = org.create("PricebookEntry", {"Pricebook2Id": org.standard_pricebook,
                                                      "Product2Id": product["Id"], "UnitPrice": price})
        prices[code] = price
    accounts: dict[int, dict[str, Any]] = {}

    def account(index: int) -> dict[str, Any]:
        if index not in accounts:
            accounts[index] = _create_account(org, index)
        return accounts[index]

    for index in range(_LATER_ACCOUNTS):
        account(index)
    today = datetime.now(UTC).date()
    for account_index, name, stage, close, lines, invoice in DEMO_OPPORTUNITIES:
        if isinstance(close, int):
            close = (today - timedelta(days=close)).isoformat()
        opportunity = org.create("Opportunity", {
            "Name": name, "AccountId": account(account_index)["Id"], "StageName": stage,
            "CloseDate": close, "Pricebook2Id": org.standard_pricebook, "Type": "New Customer"})
        for code, quantity in lines:
            org.create("OpportunityLineItem", {"OpportunityId": opportunity["Id"],
                                               "PricebookEntryId": entries[code]["Id"],
                                               "Quantity": quantity})
        if not lines:
            org.update("Opportunity", opportunity["Id"], {"Amount": DEMO_AMOUNTS[name]})
        if invoice is not None:
            invoice_id, number, payment_status, paid, *tax = invoice
            total = sum(prices[code] * quantity for code, quantity in lines) + sum(tax)
            assert number == "SF-" + opportunity["Id"][:15], f"demo ids follow creation order: {opportunity['Id']}"
            org.update("Opportunity", opportunity["Id"], {
                "QuickBooks_Invoice_Id__c": invoice_id, "QuickBooks_Invoice_Number__c": number,
                "QuickBooks_Invoice_Link__c": f"{_INVOICE_LINK}{invoice_id}",
                "Invoice_Status__c": "Sent", "Payment_Status__c": payment_status,
                "Amount_Paid__c": paid,
                "Balance_Due__c": 0.0 if payment_status == "Voided" else round(total - paid, 2)})
        if name in DEMO_CANCELLATIONS:
            _cancelled(org, opportunity["Id"], total, paid, DEMO_CANCELLATIONS[name])
    seed_demo_headers(org)
    seed_demo_projects(org)
    _seed_transaction_types(org, accounts, entries, today)
    org.events.clear()


def _cancelled(org: Org, opportunity_id: str, total: float, paid: float,
               cancellation: tuple[str, str | None, float]) -> None:
    """A cancelled deal's write-back: its status, credit memo and credited amount (what credits
    settled is not money paid, and nothing is due)."""
    status, credit_memo, credited = cancellation
    assert round(paid + credited, 2) in (0.0, round(total, 2)), "credited is the unpaid part"
    org.update("Opportunity", opportunity_id, {
        "Cancellation_Status__c": status, "QuickBooks_Credit_Memo_Id__c": credit_memo,
        "Amount_Credited__c": credited, "Amount_Refunded__c": 0.0, "Unapplied_Amount__c": 0.0,
        "Balance_Due__c": 0.0})


#: (Name, the account's index, CloseDate as days before seeding, ((ProductCode, Quantity), ...)):
#: Closed Won Sales Receipt deals waiting for their receipt (made at the sale, so Paid at once).
DEMO_SALES_RECEIPTS: tuple[tuple[Any, ...], ...] = (
    ("Acme Corp - Counter sale", 0, 3, (("WID-100", 8),)),
)
#: Opportunity name -> (QuickBooks Estimate Id, DocNumber): Estimate deals with a Pending estimate
#: (the QuickBooks demo's DEMO_ESTIMATES); `splice sandbox close-opportunity` invoices one from it.
DEMO_ESTIMATE_DEALS: dict[str, tuple[str, str]] = {
    "Globex - Gadget refresh": ("44", "SF-006Rx000035ibEX"),
}
#: (Name, the account's index, CloseDate, ((ProductCode, Quantity), ...), QuickBooks Estimate Id,
#: Invoice Id, DocNumber): Estimate deals already won and invoiced from their estimate (the
#: QuickBooks demo's DEMO_WON_ESTIMATES: the estimate Closed, linked to the invoice both ways),
#: written back as the flows write them; estimate and invoice share the DocNumber.
DEMO_WON_ESTIMATES: tuple[tuple[Any, ...], ...] = (
    ("Globex - Support onboarding", 1, "2026-11-24", (("SVC-INST", 8), ("SVC-SUP", 1)),
     "45", "46", "SF-006Rx0000368Wg0"),
)


def _seed_transaction_types(org: Org, accounts: dict[int, dict[str, Any]],
                            entries: dict[str, dict[str, Any]], today: Any) -> None:
    """Deals of the other transaction types (QuickBooks_Transaction_Type__c), after the rest so
    the ids above stay as they are."""
    for name, (estimate_id, number) in DEMO_ESTIMATE_DEALS.items():
        [deal] = [o for o in org.records["Opportunity"].values() if o["Name"] == name]
        assert number == "SF-" + deal["Id"][:15], f"demo ids follow creation order: {deal['Id']}"
        org.update("Opportunity", deal["Id"], {
            "QuickBooks_Transaction_Type__c": "Estimate", "QuickBooks_Estimate_Id__c": estimate_id,
            "QuickBooks_Estimate_Number__c": number})
    for name, account_index, days, lines in DEMO_SALES_RECEIPTS:
        deal = org.create("Opportunity", {
            "Name": name, "AccountId": accounts[account_index]["Id"], "StageName": "Closed Won",
            "CloseDate": (today - timedelta(days=days)).isoformat(),
            "Pricebook2Id": org.standard_pricebook, "Type": "Existing Customer - Upgrade",
            "QuickBooks_Transaction_Type__c": "Sales Receipt"})
        for code, quantity in lines:
            org.create("OpportunityLineItem", {"OpportunityId": deal["Id"],
                                               "PricebookEntryId": entries[code]["Id"],
                                               "Quantity": quantity})
    for name, account_index, close, lines, estimate_id, invoice_id, number in DEMO_WON_ESTIMATES:
        deal = org.create("Opportunity", {
            "Name": name, "AccountId": accounts[account_index]["Id"], "StageName": "Closed Won",
            "CloseDate": close, "Pricebook2Id": org.standard_pricebook, "Type": "Existing Customer - Upgrade",
            "QuickBooks_Transaction_Type__c": "Estimate"})
        assert number == "SF-" + deal["Id"][:15], f"demo ids follow creation order: {deal['Id']}"
        total = 0.0
        for code, quantity in lines:
            line = org.create("OpportunityLineItem", {"OpportunityId": deal["Id"],
                                                      "PricebookEntryId": entries[code]["Id"],
                                                      "Quantity": quantity})
            total += float(line["TotalPrice"])
        org.update("Opportunity", deal["Id"], {
            "QuickBooks_Estimate_Id__c": estimate_id, "QuickBooks_Estimate_Number__c": number,
            "QuickBooks_Invoice_Id__c": invoice_id, "QuickBooks_Invoice_Number__c": number,
            "QuickBooks_Invoice_Link__c": f"{_INVOICE_LINK}{invoice_id}", "Invoice_Status__c": "Sent",
            "Payment_Status__c": "Unpaid", "Amount_Paid__c": 0.0, "Balance_Due__c": round(total, 2)})


def _create_account(org: Org, index: int) -> dict[str, Any]:
    """The demo account ``DEMO_ACCOUNTS[index]`` and its contact."""
    name, street, city, state, postal, country, industry, customer_id, first, last = DEMO_ACCOUNTS[index]
    body: dict[str, Any] = {"Name": name, "BillingStreet": street, "BillingCity": city,
                            "BillingState": state, "BillingPostalCode": postal,
                            "BillingCountry": country, "Phone": f"(555) 010-{1000 + index}",
                            "Industry": industry, "Type": "Customer - Direct",
                            "Billing_Email__c": _email(name, city), "Currency__c": "USD"}
    if customer_id:
        body.update({"QB_Customer_Id__c": customer_id, "QB_Sync_Status__c": "Synced"})
    account = org.create("Account", body)
    email = f"{first}.{last}".lower().replace("'", "").replace("ø", "o").replace("á", "a")
    email = email.replace("ë", "e").replace("ü", "u")
    org.create("Contact", {"AccountId": account["Id"], "FirstName": first, "LastName": last,
                           "Email": f"{email}@example.com"})
    return account
