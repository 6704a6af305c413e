"""Fidelity of multi-currency through the real python-quickbooks client: the company preference,
a customer's fixed currency, an invoice in the customer's currency at the company's rate."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.connectors.quickbooks.test_fidelity import qbo  # noqa: F401 (the logged-in client fixture)

pytestmark = pytest.mark.slow


def test_eur_customer_and_invoice_read_back_with_rate_and_home_amounts(
        qbo: Any, served_emulator: tuple[str, Any]) -> None:  # noqa: F811
    import httpx
    from quickbooks.exceptions import QuickbooksException
    from quickbooks.objects.base import Ref
    from quickbooks.objects.customer import Customer
    from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
    from quickbooks.objects.invoice import Invoice
    from quickbooks.objects.item import Item
    from quickbooks.objects.preferences import Preferences

    base, _app = served_emulator
    assert Preferences.get(qb=qbo).CurrencyPrefs.MultiCurrencyEnabled is False
    assert httpx.post(f"{base}/_emulator/multicurrency", json={"rates": {"EUR": "1.085"}}).status_code == 200
    prefs = Preferences.get(qb=qbo).CurrencyPrefs
    assert prefs.MultiCurrencyEnabled is True and prefs.HomeCurrency.value == "USD"

    customer = Customer()
    customer.DisplayName = "Fidélité (EUR)"
    customer.CurrencyRef = Ref()
    customer.CurrencyRef.value = "EUR"
    customer = Customer.get(customer.save(qb=qbo).Id, qb=qbo)
    assert (customer.CurrencyRef.value, customer.CurrencyRef.name) == ("EUR", "Euro")

    hours = Item.filter(Name="Hours", qb=qbo)[0]
    made = Invoice()
    line = SalesItemLine()
    line.Amount = Decimal("150.00")
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = hours.to_ref()
    line.SalesItemLineDetail.Qty = 2
    line.SalesItemLineDetail.UnitPrice = Decimal("75")
    made.Line.append(line)
    made.CustomerRef = customer.to_ref()
    made.CurrencyRef = Ref()
    made.CurrencyRef.value = "EUR"
    invoice = Invoice.get(made.save(qb=qbo).Id, qb=qbo)
    assert invoice.CurrencyRef.value == "EUR"
    assert Decimal(str(invoice.ExchangeRate)) == Decimal("1.085")
    assert Decimal(str(invoice.TotalAmt)) == Decimal("150.00")
    assert Decimal(str(invoice.HomeTotalAmt)) == Decimal("162.75")

    made.CurrencyRef.value = "USD"  # not the customer's currency
    with pytest.raises(QuickbooksException) as refused:
        made.Id = None
        made.save(qb=qbo)
    assert refused.value.error_code == 6000

    customer.CurrencyRef.value = "USD"  # a customer's currency never changes
    with pytest.raises(QuickbooksException) as fixed:
        customer.save(qb=qbo)
    assert fixed.value.error_code == 6000 and "change the currency" in fixed.value.detail
