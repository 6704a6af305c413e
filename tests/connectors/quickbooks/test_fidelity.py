"""Fidelity: the real python-quickbooks client, unmodified, against the emulator over HTTP.

The client is pointed at the emulator the documented way (its ``api_url_v3`` attribute, the
intuit-oauth discovery URL, ``OAUTHLIB_INSECURE_TRANSPORT`` for plain http); the emulator has no
special case for it. If the emulator's shapes drifted from QuickBooks', this client would break.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from tests.support.quickbooks import CLIENT_ID, CLIENT_SECRET, REALM, SEED_REFRESH_TOKEN

pytestmark = pytest.mark.slow


def _hours_invoice(qbo: Any, customer: Any, hours: Any, note: str | None = None) -> Any:
    """Save an invoice of 2 x 75.00 of the item ``hours`` for ``customer``, the vendor's client's way."""
    from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
    from quickbooks.objects.invoice import Invoice

    made = Invoice()
    line = SalesItemLine()
    line.Amount = Decimal("150.00")
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = hours.to_ref()
    line.SalesItemLineDetail.Qty = 2
    line.SalesItemLineDetail.UnitPrice = Decimal("75")
    made.Line.append(line)
    made.CustomerRef = customer.to_ref()
    if note is not None:
        made.PrivateNote = note
    return made.save(qb=qbo)


@pytest.fixture
def qbo(served_emulator: tuple[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """A python-quickbooks client logged in through the emulator's token endpoint."""
    from intuitlib.client import AuthClient
    from quickbooks import QuickBooks

    base, _app = served_emulator
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    auth = AuthClient(CLIENT_ID, CLIENT_SECRET, "http://localhost/callback",
                      environment=f"{base}/.well-known/openid_configuration")
    client = QuickBooks(auth_client=auth, refresh_token=SEED_REFRESH_TOKEN, company_id=REALM,
                        minorversion=75, use_decimal=True)
    client.api_url_v3 = f"{base}/v3"
    return client


def test_customer_invoice_payment_batch_and_cdc(qbo: Any, served_emulator: tuple[str, Any]) -> None:
    """Create and query customers and invoices, pay an invoice, batch-create, read CDC."""
    from quickbooks.batch import batch_create
    from quickbooks.cdc import change_data_capture
    from quickbooks.exceptions import QuickbooksException
    from quickbooks.objects.base import LinkedTxn
    from quickbooks.objects.customer import Customer
    from quickbooks.objects.invoice import Invoice
    from quickbooks.objects.item import Item
    from quickbooks.objects.payment import Payment, PaymentLine

    _base, app = served_emulator
    assert qbo.refresh_token in app.state.emulator.authority.valid_refresh_tokens(REALM)
    # python-quickbooks writes changedSince without an offset: the company's (Pacific) wall time.
    since = datetime.now(timezone(timedelta(hours=-7))).replace(tzinfo=None) - timedelta(hours=2)

    customer = Customer()
    customer.DisplayName = "O'Hare Fidelity"
    customer = customer.save(qb=qbo)
    assert customer.Id and customer.SyncToken == "0"
    found = Customer.filter(DisplayName="O'Hare Fidelity", qb=qbo)
    assert [c.Id for c in found] == [customer.Id]
    with pytest.raises(QuickbooksException) as dup:
        again = Customer()
        again.DisplayName = "O'Hare Fidelity"
        again.save(qb=qbo)
    assert dup.value.error_code == 6240

    hours = Item.filter(Name="Hours", qb=qbo)[0]
    invoice = _hours_invoice(qbo, customer, hours)
    assert Decimal(str(invoice.TotalAmt)) == Decimal("150.00")
    assert [i.Id for i in Invoice.filter(CustomerRef=customer.Id, qb=qbo)] == [invoice.Id]

    payment = Payment()
    payment.TotalAmt = Decimal("150.00")
    payment.CustomerRef = customer.to_ref()
    pay_line = PaymentLine()
    pay_line.Amount = Decimal("150.00")
    link = LinkedTxn()
    link.TxnId = invoice.Id
    link.TxnType = "Invoice"
    pay_line.LinkedTxn.append(link)
    payment.Line.append(pay_line)
    payment = payment.save(qb=qbo)
    paid = Invoice.get(invoice.Id, qb=qbo)
    assert Decimal(str(paid.Balance)) == 0
    assert paid.LinkedTxn[0].TxnId == payment.Id

    batch = []
    for name in ("Batch One", "Batch Two", "Cool Cars"):
        c = Customer()
        c.DisplayName = name
        batch.append(c)
    results = batch_create(batch, qb=qbo)
    assert sorted(c.DisplayName for c in results.successes) == ["Batch One", "Batch Two"]
    assert results.faults[0].Error[0].code == "6240"

    changes = change_data_capture([Invoice, Customer], since, qb=qbo)
    assert invoice.Id in [i.Id for i in changes.Invoice]
    assert "O'Hare Fidelity" in [c.DisplayName for c in changes.Customer]


def test_what_quickbooks_refuses_python_quickbooks_sees_refused(qbo: Any) -> None:
    """Names with ':', malformed e-mails, a DocNumber over 21 characters, a filter on a property
    QuickBooks cannot filter on, a customer name a vendor has: each is the fault the client knows."""
    from quickbooks.exceptions import QuickbooksException, ValidationException
    from quickbooks.objects.base import EmailAddress
    from quickbooks.objects.customer import Customer
    from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
    from quickbooks.objects.invoice import Invoice
    from quickbooks.objects.item import Item
    from quickbooks.objects.vendor import Vendor

    colon = Customer()
    colon.DisplayName = "Acme: Denver"
    with pytest.raises(ValidationException) as refused:
        colon.save(qb=qbo)
    assert refused.value.error_code == 2050

    mail = Customer()
    mail.DisplayName = "Mail Fidelity"
    mail.PrimaryEmailAddr = EmailAddress()
    mail.PrimaryEmailAddr.Address = "billing.acme.example"
    with pytest.raises(ValidationException) as refused:
        mail.save(qb=qbo)
    assert refused.value.error_code == 2050 and "RFC 822" in refused.value.detail

    with pytest.raises(ValidationException) as refused:
        Customer.filter(Notes="vip", qb=qbo)
    assert refused.value.error_code == 4001 and "not queryable" in refused.value.detail

    vendor = Vendor()
    vendor.DisplayName = "Harbor Fidelity"
    vendor.save(qb=qbo)
    clash = Customer()
    clash.DisplayName = "Harbor Fidelity"
    with pytest.raises(QuickbooksException) as refused:
        clash.save(qb=qbo)
    assert refused.value.error_code == 6240

    customer = Customer()
    customer.DisplayName = "DocNumber Fidelity"
    customer = customer.save(qb=qbo)
    invoice = Invoice()
    line = SalesItemLine()
    line.Amount = Decimal("75.00")
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = Item.filter(Name="Hours", qb=qbo)[0].to_ref()
    line.SalesItemLineDetail.Qty = 1
    line.SalesItemLineDetail.UnitPrice = Decimal("75")
    invoice.Line.append(line)
    invoice.CustomerRef = customer.to_ref()
    invoice.DocNumber = "SF-006Dn000004AbcdEFGH"  # 22 characters
    with pytest.raises(ValidationException) as refused:
        invoice.save(qb=qbo)
    assert refused.value.error_code == 2050
    invoice.DocNumber = invoice.DocNumber[:21]
    assert invoice.save(qb=qbo).Id


def test_voided_and_deleted_invoices_look_as_in_quickbooks(qbo: Any) -> None:
    """invoice.void() keeps the invoice under its Id with TotalAmt, Balance and line amounts 0 and a
    PrivateNote starting "Voided"; invoice.delete() removes it, and CDC lists it as Deleted."""
    from quickbooks.cdc import change_data_capture
    from quickbooks.objects.customer import Customer
    from quickbooks.objects.invoice import Invoice
    from quickbooks.objects.item import Item

    since = datetime.now(timezone(timedelta(hours=-7))).replace(tzinfo=None) - timedelta(hours=2)
    customer = Customer.filter(DisplayName="Cool Cars", qb=qbo)[0]
    hours = Item.filter(Name="Hours", qb=qbo)[0]

    kept = _hours_invoice(qbo, customer, hours, "Salesforce Opportunity A")
    gone = _hours_invoice(qbo, customer, hours, "Salesforce Opportunity B")
    kept.void(qb=qbo)
    voided = Invoice.get(kept.Id, qb=qbo)
    assert voided.Id == kept.Id and voided.DocNumber == kept.DocNumber
    assert Decimal(str(voided.TotalAmt)) == 0 and Decimal(str(voided.Balance)) == 0
    assert [Decimal(str(line.Amount)) for line in voided.Line if line.DetailType == "SalesItemLineDetail"] == [0]
    assert voided.PrivateNote.startswith("Voided")

    gone.delete(qb=qbo)
    assert [i.Id for i in Invoice.filter(Id=gone.Id, qb=qbo)] == []
    changes = change_data_capture([Invoice], since, qb=qbo)
    [deleted] = [i for i in changes.Invoice if i.Id == gone.Id]
    assert deleted.status == "Deleted"
    assert voided.Id in [i.Id for i in changes.Invoice]


def test_automated_sales_tax_python_quickbooks_reads_it_back(
        qbo: Any, served_emulator: tuple[str, Any]) -> None:
    """With automated sales tax on at 8.25%, QuickBooks taxes the lines marked TAX (not NON) and
    fills TxnTaxDetail; TotalAmt is the subtotal plus the tax; a tax-exempt customer pays none; a
    TxnTaxDetail the client sends is recomputed, not trusted."""
    import httpx
    from quickbooks.objects.customer import Customer
    from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
    from quickbooks.objects.invoice import Invoice
    from quickbooks.objects.item import Item
    from quickbooks.objects.tax import TxnTaxDetail
    from quickbooks.objects.taxcode import TaxCode
    from quickbooks.objects.taxrate import TaxRate

    base, _app = served_emulator
    assert httpx.post(f"{base}/_emulator/sales-tax", json={"rate": "8.25"}).status_code == 200
    assert httpx.post(f"{base}/_emulator/sales-tax", json={"rate": "lots"}).status_code == 400
    hours = Item.filter(Name="Hours", qb=qbo)[0]
    consulting = Item.filter(Name="Consulting", qb=qbo)[0]

    def invoice(customer: Any) -> Any:
        made = Invoice()
        for item, qty, price, code in ((hours, 3, "75", "TAX"), (consulting, 1, "150", "NON")):
            line = SalesItemLine()
            line.Amount = Decimal(price) * qty
            line.SalesItemLineDetail = SalesItemLineDetail()
            line.SalesItemLineDetail.ItemRef = item.to_ref()
            line.SalesItemLineDetail.Qty = qty
            line.SalesItemLineDetail.UnitPrice = Decimal(price)
            line.SalesItemLineDetail.TaxCodeRef = {"value": code}
            made.Line.append(line)
        made.CustomerRef = customer.to_ref()
        made.TxnTaxDetail = TxnTaxDetail()
        made.TxnTaxDetail.TotalTax = Decimal("99.99")  # ignored: automated sales tax computes it
        return Invoice.get(made.save(qb=qbo).Id, qb=qbo)

    taxed = invoice(Customer.filter(DisplayName="Cool Cars", qb=qbo)[0])
    # 225.00 taxable at 8.25% = 18.5625, rounded half up to 18.56; 150.00 is not taxable.
    assert Decimal(str(taxed.TxnTaxDetail.TotalTax)) == Decimal("18.56")
    assert Decimal(str(taxed.TotalAmt)) == Decimal("393.56")
    assert Decimal(str(taxed.Balance)) == Decimal("393.56")
    [tax_line] = taxed.TxnTaxDetail.TaxLine
    assert Decimal(str(tax_line.TaxLineDetail.NetAmountTaxable)) == Decimal("225.00")
    assert Decimal(str(tax_line.TaxLineDetail.TaxPercent)) == Decimal("8.25")
    rate = TaxRate.get(tax_line.TaxLineDetail.TaxRateRef.value, qb=qbo)
    assert Decimal(str(rate.RateValue)) == Decimal("8.25")
    assert TaxCode.get(taxed.TxnTaxDetail.TxnTaxCodeRef.value, qb=qbo).TaxGroup is True
    [subtotal] = [line for line in taxed.Line if line.DetailType == "SubTotalLineDetail"]
    assert Decimal(str(subtotal.Amount)) == Decimal("375.00")

    exempt = Customer()
    exempt.DisplayName = "Exempt School District"
    exempt.Taxable = False
    untaxed = invoice(exempt.save(qb=qbo))
    assert Decimal(str(untaxed.TxnTaxDetail.TotalTax)) == 0
    assert Decimal(str(untaxed.TotalAmt)) == Decimal("375.00")


def test_sub_customers_python_quickbooks_makes_and_reads_them(qbo: Any) -> None:
    """A job made the python-quickbooks way (``Job``, ``ParentRef`` from ``to_ref()``) reads back
    with its level and full name, is invoiced on, and an inactive parent is refused."""
    from quickbooks.exceptions import ValidationException
    from quickbooks.objects.customer import Customer
    from quickbooks.objects.item import Item

    parent = Customer()
    parent.DisplayName = "Fidelity Parent Co"
    parent = parent.save(qb=qbo)
    job = Customer()
    job.DisplayName = "Fidelity Project"
    job.Job = True
    job.BillWithParent = True
    job.ParentRef = parent.to_ref()
    job = job.save(qb=qbo)
    read = Customer.get(job.Id, qb=qbo)
    assert read.Job is True and read.ParentRef.value == parent.Id
    assert read.FullyQualifiedName == "Fidelity Parent Co:Fidelity Project" and read.Level == 1
    assert [c.Id for c in Customer.filter(FullyQualifiedName="Fidelity Parent Co:Fidelity Project",
                                          qb=qbo)] == [job.Id]
    hours = Item.filter(Name="Hours", qb=qbo)[0]
    invoice = _hours_invoice(qbo, read, hours)
    assert invoice.CustomerRef.value == job.Id
    assert Decimal(str(Customer.get(parent.Id, qb=qbo).BalanceWithJobs)) == Decimal("150.00")

    parent = Customer.get(parent.Id, qb=qbo)
    parent.Active = False
    parent.save(qb=qbo)
    another = Customer()
    another.DisplayName = "Fidelity Late Project"
    another.Job = True
    another.ParentRef = parent.to_ref()
    with pytest.raises(ValidationException) as refused:
        another.save(qb=qbo)
    assert refused.value.error_code == 2500
