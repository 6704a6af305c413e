"""Fidelity: python-quickbooks' SalesReceipt, Estimate and PaymentMethod against the emulator."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.connectors.quickbooks.test_fidelity import qbo  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow


def _hours_line() -> Any:
    from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail

    line = SalesItemLine()
    line.Amount = Decimal("150.00")
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.Qty = 2
    line.SalesItemLineDetail.UnitPrice = Decimal("75")
    return line


def test_sales_receipt_estimate_and_invoice_from_estimate(qbo: Any) -> None:  # noqa: F811
    """The vendor's client saves, reads, queries and voids a receipt, and turns an estimate
    into an invoice; the estimate reads back Closed with the invoice linked."""
    from quickbooks.objects.base import LinkedTxn
    from quickbooks.objects.customer import Customer
    from quickbooks.objects.estimate import Estimate
    from quickbooks.objects.invoice import Invoice
    from quickbooks.objects.item import Item
    from quickbooks.objects.paymentmethod import PaymentMethod
    from quickbooks.objects.salesreceipt import SalesReceipt

    customer = Customer.filter(DisplayName="Cool Cars", qb=qbo)[0]
    hours = Item.filter(Name="Hours", qb=qbo)[0]
    cash = PaymentMethod.filter(Name="Cash", qb=qbo)[0]
    assert cash.Type == "NON_CREDIT_CARD"

    receipt = SalesReceipt()
    receipt.CustomerRef = customer.to_ref()
    line = _hours_line()
    line.SalesItemLineDetail.ItemRef = hours.to_ref()
    receipt.Line.append(line)
    receipt.PaymentMethodRef = cash.to_ref()
    receipt.DocNumber = "SR-FID-1"
    receipt = receipt.save(qb=qbo)
    assert receipt.Id and Decimal(str(receipt.TotalAmt)) == Decimal("150")
    assert Decimal(str(receipt.Balance)) == 0
    assert receipt.DepositToAccountRef.name == "Undeposited Funds"
    assert [r.Id for r in SalesReceipt.filter(DocNumber="SR-FID-1", qb=qbo)] == [receipt.Id]
    receipt.void(qb=qbo)
    voided = SalesReceipt.get(receipt.Id, qb=qbo)
    assert Decimal(str(voided.TotalAmt)) == 0 and voided.PrivateNote.startswith("Voided")

    estimate = Estimate()
    estimate.CustomerRef = customer.to_ref()
    line = _hours_line()
    line.SalesItemLineDetail.ItemRef = hours.to_ref()
    estimate.Line.append(line)
    estimate.ExpirationDate = "2026-12-31"
    estimate = estimate.save(qb=qbo)
    assert estimate.TxnStatus == "Pending" and estimate.ExpirationDate == "2026-12-31"

    invoice = Invoice()
    invoice.CustomerRef = customer.to_ref()
    line = _hours_line()
    line.SalesItemLineDetail.ItemRef = hours.to_ref()
    invoice.Line.append(line)
    link = LinkedTxn()
    link.TxnId = estimate.Id
    link.TxnType = "Estimate"
    invoice.LinkedTxn.append(link)
    invoice = invoice.save(qb=qbo)
    assert [(lk.TxnId, lk.TxnType) for lk in invoice.LinkedTxn] == [(estimate.Id, "Estimate")]
    closed = Estimate.get(estimate.Id, qb=qbo)
    assert closed.TxnStatus == "Closed"
    assert [(lk.TxnId, lk.TxnType) for lk in closed.LinkedTxn] == [(invoice.Id, "Invoice")]
