"""Fidelity of what matching relies on, through the real python-quickbooks client: a filter on
PrimaryEmailAddr compares the address, and DisplayName is unique across customers, vendors and
employees."""

from __future__ import annotations

from typing import Any

import pytest

from tests.connectors.quickbooks.test_fidelity import qbo  # noqa: F401 (the logged-in client fixture)

pytestmark = pytest.mark.slow


def test_customers_filtered_by_e_mail_and_names_unique_across_people(qbo: Any) -> None:  # noqa: F811
    from quickbooks.exceptions import QuickbooksException
    from quickbooks.objects.customer import Customer
    from quickbooks.objects.employee import Employee

    [cars] = Customer.filter(PrimaryEmailAddr="cars@intuit.example", qb=qbo)
    assert cars.DisplayName == "Cool Cars"
    assert Customer.filter(PrimaryEmailAddr="nobody@intuit.example", qb=qbo) == []

    employee = Employee()
    employee.GivenName, employee.FamilyName = "Grace", "Hopper"
    employee.save(qb=qbo)
    clash = Customer()
    clash.DisplayName = "Grace Hopper"
    with pytest.raises(QuickbooksException) as refused:
        clash.save(qb=qbo)
    assert refused.value.error_code == 6240
