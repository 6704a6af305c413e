"""Fidelity: python-quickbooks' CreditMemo, RefundReceipt and Payment objects against the emulator.

The client sends its full objects with defaults (``"TotalAmt": 0``, empty strings); the emulator
takes them as QuickBooks does, and the client reads its answers back into its own classes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.connectors.quickbooks.test_fidelity import qbo  # noqa: F401 - the logged-in client fixture

pytestmark = pytest.mark.slow


def _line(item: Any, amount: str) -> Any:
    from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail

    line = SalesItemLine()
    line.Amount = Decimal(amount)
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = item.to_ref()
    line.SalesItemLineDetail.Qty = 1
    line.SalesItemLineDetail.UnitPrice = Decimal(amount)
    return line


def test_credit_memo_applied_then_refunded(qbo: Any) -> None:  # noqa: F811
    """A credit memo for part of an invoice, applied by a $0 payment of two lines, and a refund
    receipt paying out a second credit from a bank account by check."""
    from quickbooks.exceptions import QuickbooksException
    from quickbooks.objects.account import Account
    from quickbooks.objects.base import LinkedTxn
    from quickbooks.objects.creditmemo import CreditMemo
    from quickbooks.objects.customer import Customer
    from quickbooks.objects.invoice import Invoice
    from quickbooks.objects.item import Item
    from quickbooks.objects.payment import Payment, PaymentLine
    from quickbooks.objects.paymentmethod import PaymentMethod
    from quickbooks.objects.refundreceipt import RefundReceipt

    customer = Customer.filter(DisplayName="Bill's Windsurf Shop", qb=qbo)[0]
    hours = Item.filter(Name="Hours", qb=qbo)[0]
    invoice = Invoice()
    invoice.CustomerRef = customer.to_ref()
    invoice.Line.append(_line(hours, "300.00"))
    invoice = invoice.save(qb=qbo)

    memo = CreditMemo()
    memo.CustomerRef = customer.to_ref()
    memo.Line.append(_line(hours, "120.00"))
    memo = memo.save(qb=qbo)
    assert Decimal(str(memo.TotalAmt)) == Decimal("120") and Decimal(str(memo.RemainingCredit)) == Decimal("120")

    payment = Payment()
    payment.CustomerRef = customer.to_ref()
    payment.TotalAmt = 0
    for txn_id, txn_type in ((invoice.Id, "Invoice"), (memo.Id, "CreditMemo")):
        line = PaymentLine()
        line.Amount = Decimal("120.00")
        link = LinkedTxn()
        link.TxnId, link.TxnType = txn_id, txn_type
        line.LinkedTxn.append(link)
        payment.Line.append(line)
    payment.save(qb=qbo)
    assert Decimal(str(Invoice.get(invoice.Id, qb=qbo).Balance)) == Decimal("180")
    assert Decimal(str(CreditMemo.get(memo.Id, qb=qbo).RemainingCredit)) == 0

    bank = Account()
    bank.Name, bank.AccountType = "Refund Checking", "Bank"
    bank = bank.save(qb=qbo)
    method = PaymentMethod()
    method.Name = "Refund Check"
    method = method.save(qb=qbo)
    second = CreditMemo()
    second.CustomerRef = customer.to_ref()
    second.Line.append(_line(hours, "50.00"))
    second = second.save(qb=qbo)
    refund = RefundReceipt()
    refund.CustomerRef = customer.to_ref()
    refund.DepositToAccountRef = bank.to_ref()
    refund.PaymentMethodRef = method.to_ref()
    refund.Line.append(_line(hours, "50.00"))
    link = LinkedTxn()
    link.TxnId, link.TxnType = second.Id, "CreditMemo"
    refund.LinkedTxn.append(link)
    refund = refund.save(qb=qbo)
    assert Decimal(str(refund.TotalAmt)) == Decimal("50") and refund.DepositToAccountRef.value == bank.Id
    assert Decimal(str(CreditMemo.get(second.Id, qb=qbo).RemainingCredit)) == 0
    assert [r.Id for r in RefundReceipt.filter(CustomerRef=customer.Id, qb=qbo)] == [refund.Id]

    with pytest.raises(QuickbooksException) as refused:
        RefundReceipt().save(qb=qbo)
    assert refused.value.error_code == 2020
