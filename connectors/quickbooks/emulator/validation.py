"""What QuickBooks refuses in a write or a query before it looks at any other record.

Name fields may not hold ``:`` (it separates the levels of a FullyQualifiedName), a tab or a newline;
e-mail addresses need an ``@`` and a ``.`` after it; an invoice's ``DocNumber`` is at most 21
characters; a query may filter only on the properties Intuit's reference marks filterable (anything
else is a 4001 ``QueryValidationError``). Each refusal is the fault QuickBooks answers, in its
envelope.
"""

from __future__ import annotations

import re
from typing import Any

from connectors.quickbooks.emulator.faults import Fault

__all__ = ["FILTERABLE", "check_filters", "check_record"]

_META = frozenset({"Id", "MetaData.CreateTime", "MetaData.LastUpdatedTime"})
_PERSON = frozenset({"DisplayName", "GivenName", "MiddleName", "FamilyName", "PrintOnCheckName",
                     "PrimaryEmailAddr", "Active", "Title", "Suffix"})

#: Entity -> the properties a WHERE clause may name (Intuit's API reference, "filterable").
FILTERABLE: dict[str, frozenset[str]] = {
    "Customer": _META | _PERSON | {"CompanyName", "FullyQualifiedName", "Balance", "Job",
                                   "ParentRef"},
    "Vendor": _META | _PERSON | {"CompanyName", "Balance"},
    "Employee": _META | _PERSON | {"EmployeeNumber"},
    "Item": _META | {"Name", "Sku", "Type", "Active", "FullyQualifiedName", "QtyOnHand"},
    "Account": _META | {"Name", "FullyQualifiedName", "Active", "AccountType", "AccountSubType",
                        "Classification", "CurrentBalance", "CurrentBalanceWithSubAccounts",
                        "SubAccount"},
    "Invoice": _META | {"DocNumber", "TxnDate", "DueDate", "CustomerRef", "TotalAmt", "Balance",
                        "EmailStatus", "DepartmentRef"},
    "Payment": _META | {"TxnDate", "CustomerRef", "TotalAmt"},
    "CreditMemo": _META | {"DocNumber", "TxnDate", "CustomerRef", "TotalAmt", "Balance"},
    "RefundReceipt": _META | {"DocNumber", "TxnDate", "CustomerRef", "TotalAmt"},
    "SalesReceipt": _META | {"DocNumber", "TxnDate", "CustomerRef", "TotalAmt", "DepartmentRef"},
    "Estimate": _META | {"DocNumber", "TxnDate", "CustomerRef", "TotalAmt", "TxnStatus",
                         "ExpirationDate", "DepartmentRef"},
    "PaymentMethod": _META | {"Name", "Active", "Type"},
    "Term": _META | {"Name", "Active"},
    "Class": _META | {"Name", "Active", "FullyQualifiedName"},
    "Department": _META | {"Name", "Active", "FullyQualifiedName"},
    "TaxCode": _META | {"Name", "Active"},
    "TaxRate": _META | {"Name", "Active"},
    "CompanyInfo": _META,
    "Preferences": _META,
}

#: Entity -> its fields that are names (no ``:``, tab or newline).
_NAME_FIELDS: dict[str, tuple[str, ...]] = {
    **{person: ("DisplayName", "GivenName", "MiddleName", "FamilyName", "CompanyName",
                "PrintOnCheckName", "Title", "Suffix") for person in ("Customer", "Vendor", "Employee")},
    "Item": ("Name",), "Account": ("Name",), "Term": ("Name",), "Class": ("Name",),
    "Department": ("Name",), "PaymentMethod": ("Name",),
}
#: Entity -> its e-mail address fields (objects with an ``Address``).
_EMAIL_FIELDS: dict[str, tuple[str, ...]] = {
    "Customer": ("PrimaryEmailAddr",), "Vendor": ("PrimaryEmailAddr",),
    "Employee": ("PrimaryEmailAddr",), "Invoice": ("BillEmail", "BillEmailCc", "BillEmailBcc"),
    "SalesReceipt": ("BillEmail",), "Estimate": ("BillEmail",),
}
_EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;.]+$")
_DOC_NUMBER_MAX = 21
#: Sales forms numbered by DocNumber.
_NUMBERED = frozenset({"Invoice", "CreditMemo", "RefundReceipt", "SalesReceipt", "Estimate"})
_NAME_FORBIDDEN = re.compile(r"[:\t\n\r]")


def check_record(entity: str, record: dict[str, Any]) -> None:
    """The fault QuickBooks answers for a record with a malformed name, e-mail or DocNumber."""
    for name in _NAME_FIELDS.get(entity, ()):
        value = record.get(name)
        if isinstance(value, str) and _NAME_FORBIDDEN.search(value):
            raise Fault("2050", "Invalid String",
                        f"Invalid String : {name} cannot contain a colon (:), tab or newline. "
                        f"Supplied value:{value}", element=name)
    for name in _EMAIL_FIELDS.get(entity, ()):
        field = record.get(name)
        address = field.get("Address") if isinstance(field, dict) else None
        if address in (None, ""):
            continue
        # An invoice's BillEmail may hold several addresses, separated by commas.
        parts = [p.strip() for p in str(address).split(",")] if entity == "Invoice" else [str(address)]
        if not all(_EMAIL.match(part) for part in parts):
            raise Fault("2050", "Invalid Email Address format",
                        f"Email Address does not conform to the syntax rules of RFC 822. "
                        f"Supplied value:{address}", element=f"{name}.Address")
    number = record.get("DocNumber")
    if entity in _NUMBERED and number is not None and len(str(number)) > _DOC_NUMBER_MAX:
        raise Fault("2050", "String length is either shorter or longer than supported by "
                    "specification",
                    f"String length specified does not match the supported length. Min:0 "
                    f"Max:{_DOC_NUMBER_MAX} supported. Supplied length:{len(str(number))}",
                    element="DocNumber")


def check_filters(entity: str, paths: list[str]) -> None:
    """The 4001 fault for a WHERE clause on a property QuickBooks cannot filter on."""
    allowed = FILTERABLE.get(entity)
    if allowed is None:
        return
    for path in paths:
        if path not in allowed and path.split(".")[0] not in allowed:
            raise Fault("4001", "Invalid query",
                        f"QueryValidationError: property '{path}' is not queryable")
