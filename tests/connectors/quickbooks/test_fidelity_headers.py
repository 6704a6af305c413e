"""Fidelity of invoice headers: python-quickbooks' own objects for classes, departments,
preferences' custom fields, an invoice's header fields, ``send`` and ``include=invoiceLink``."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.quickbooks.emulator.headers import set_header_preferences
from tests.connectors.quickbooks.test_fidelity import _hours_invoice, qbo  # noqa: F401 (fixture)
from tests.support.quickbooks import REALM

pytestmark = pytest.mark.slow


def test_classes_departments_custom_fields_send_and_link(qbo: Any,  # noqa: F811
                                                         served_emulator: tuple[str, Any]) -> None:
    from quickbooks.exceptions import QuickbooksException
    from quickbooks.objects.base import CustomerMemo, CustomField, EmailAddress, Ref
    from quickbooks.objects.customer import Customer
    from quickbooks.objects.department import Department
    from quickbooks.objects.invoice import Invoice
    from quickbooks.objects.item import Item
    from quickbooks.objects.preferences import Preferences
    from quickbooks.objects.trackingclass import Class

    _base, app = served_emulator
    company = app.state.emulator.companies[REALM]
    set_header_preferences(company, class_tracking="txn", departments=True,
                           custom_fields=("P.O. Number",), online_payments=True)
    prefs = Preferences.get(qb=qbo)
    assert prefs.AccountingInfoPrefs.ClassTrackingPerTxn is True
    assert prefs.SalesFormsPrefs.ETransactionPaymentEnabled is True

    west = Class()
    west.Name = "West"
    west = west.save(qb=qbo)
    retail = Class()
    retail.Name = "Retail"
    retail.SubClass = True
    retail.ParentRef = west.to_ref()
    retail = retail.save(qb=qbo)
    assert retail.FullyQualifiedName == "West:Retail"
    assert [c.Id for c in Class.filter(Name="West", qb=qbo)] == [west.Id]
    boston = Department()
    boston.Name = "Boston"
    boston = boston.save(qb=qbo)
    assert [d.Name for d in Department.all(qb=qbo)] == ["Boston"]

    customer = Customer()
    customer.DisplayName = "Header Fidelity"
    customer = customer.save(qb=qbo)
    hours = Item.filter(Name="Hours", qb=qbo)[0]
    made = _hours_invoice(qbo, customer, hours)
    made.ClassRef = retail.to_ref()
    made.DepartmentRef = boston.to_ref()
    po = CustomField()
    po.DefinitionId, po.Type, po.StringValue = "1", "StringType", "PO-4410"
    made.CustomField = [po]
    made.CustomerMemo = CustomerMemo()
    made.CustomerMemo.value = "Thank you"
    made.BillEmail = EmailAddress()
    made.BillEmail.Address = "ap@fidelity.example"
    made.AllowOnlineCreditCardPayment = True
    made = made.save(qb=qbo)
    read = Invoice.get(made.Id, qb=qbo)
    assert read.ClassRef.value == retail.Id and read.DepartmentRef.value == boston.Id
    assert (read.CustomField[0].Name, read.CustomField[0].StringValue) == ("P.O. Number", "PO-4410")
    assert read.CustomerMemo.value == "Thank you" and read.EmailStatus == "NotSet"

    answer = read.send(qb=qbo, send_to="billing@fidelity.example")
    assert answer["Invoice"]["EmailStatus"] == "EmailSent"
    assert Invoice.get(made.Id, qb=qbo).BillEmail.Address == "billing@fidelity.example"
    linked = Invoice.get(made.Id, qb=qbo, params={"include": "invoiceLink"})
    assert linked.InvoiceLink.startswith("https://developer.intuit.com/comingSoonview/scs-v1-")

    unknown = Invoice.get(made.Id, qb=qbo)
    unknown.ClassRef = Ref()
    unknown.ClassRef.value = "99999"
    with pytest.raises(QuickbooksException) as refused:
        unknown.save(qb=qbo)
    assert refused.value.error_code == 2500
