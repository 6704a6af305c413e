"""Invoice headers of the emulated company: Class, Department, custom fields, customer defaults,
e-mail delivery and the customer-facing link.

What QuickBooks does with them, and so what the emulator does:

- ``Class`` and ``Department`` (shown as "Location" in the UI) are name lists: ``Name`` is required
  and free of ``:``; a child (``SubClass``/``SubDepartment`` with ``ParentRef``) is named
  ``Parent:Child`` in ``FullyQualifiedName``; they are made inactive, never deleted.
- An invoice's ``ClassRef`` (header, or per sales line) and ``DepartmentRef`` must name an active
  record, else 2500 Invalid Reference Id. Which of them the company keeps is a preference
  (``Preferences.AccountingInfoPrefs``): ``ClassTrackingPerTxn`` keeps the header's class,
  ``ClassTrackingPerTxnLine`` the lines', ``TrackDepartments`` the department; a reference to a
  feature the company has turned off is dropped, as the QuickBooks form does not show it.
- ``CustomField`` entries are the (up to three) string fields the company defined in
  ``Preferences.SalesFormsPrefs.CustomField``; QuickBooks keeps the entries whose ``DefinitionId``
  is enabled there, names them, and refuses a value longer than 31 characters (2050).
- A new invoice takes the customer's ``SalesTermRef``, ``BillAddr`` and ``ShipAddr`` when it gives
  none; ``CustomerMemo`` is at most 1000 characters; ``EmailStatus`` is ``NotSet``,
  ``NeedToSend`` or ``EmailSent`` (2170 otherwise).
- ``POST /invoice/{id}/send[?sendTo=]`` mails the invoice: ``sendTo`` (which becomes the
  ``BillEmail``) or the ``BillEmail`` it has; neither is a 6000 business validation fault, with
  the detail QuickBooks gives when a form marked to be e-mailed has no address ("You must enter
  the email address for this customer in order to email statements.").
  ``EmailStatus`` becomes ``EmailSent`` and ``DeliveryInfo`` says when.
- ``InvoiceLink``, the link a customer opens to see and pay the invoice, is returned only with
  ``include=invoiceLink``, and only for an invoice that can be paid online: the company takes
  online payments (``SalesFormsPrefs.ETransactionPaymentEnabled``), the invoice allows card or
  bank payment (``AllowOnlineCreditCardPayment``/``AllowOnlineACHPayment``) and has a
  ``BillEmail``. Sandbox companies answer with a ``developer.intuit.com`` link, as here.
"""

from __future__ import annotations

import copy
import hashlib
from typing import TYPE_CHECKING, Any

from connectors.quickbooks.emulator.faults import Fault

if TYPE_CHECKING:
    from connectors.quickbooks.emulator.entities import Company

__all__ = ["CUSTOM_FIELD_MAX", "HEADER_LISTS", "complete_header", "complete_list_entry",
           "custom_field_definitions", "invoice_link", "send_invoice", "set_header_preferences",
           "with_invoice_links"]

#: The name lists that classify transactions.
HEADER_LISTS = ("Class", "Department")
#: The longest value a sales-form custom field holds.
CUSTOM_FIELD_MAX = 31
_MEMO_MAX = 1000
_EMAIL_STATUSES = ("NotSet", "NeedToSend", "EmailSent")
_SANDBOX_LINK = "https://developer.intuit.com/comingSoonview/scs-v1-"


def _preferences(company: Company) -> dict[str, Any]:
    prefs: dict[str, Any] = company.tables["Preferences"].get("1") or {}
    return prefs


def _accounting(company: Company) -> dict[str, Any]:
    accounting: dict[str, Any] = _preferences(company).get("AccountingInfoPrefs") or {}
    return accounting


def _sales_forms(company: Company) -> dict[str, Any]:
    sales: dict[str, Any] = _preferences(company).get("SalesFormsPrefs") or {}
    return sales


def custom_field_definitions(company: Company) -> dict[str, str]:
    """DefinitionId -> name of the sales-form custom fields the company has turned on.

    ``SalesFormsPrefs.CustomField`` holds two groups of name-value pairs, as QuickBooks answers:
    ``SalesFormsPrefs.UseSalesCustomN`` (BooleanType) and ``SalesFormsPrefs.SalesCustomNameN``
    (StringType).
    """
    used: set[str] = set()
    names: dict[str, str] = {}
    for group in _sales_forms(company).get("CustomField") or []:
        for pair in group.get("CustomField") or []:
            name = str(pair.get("Name", ""))
            if name.startswith("SalesFormsPrefs.UseSalesCustom") and pair.get("BooleanValue"):
                used.add(name.removeprefix("SalesFormsPrefs.UseSalesCustom"))
            elif name.startswith("SalesFormsPrefs.SalesCustomName"):
                names[name.removeprefix("SalesFormsPrefs.SalesCustomName")] = str(
                    pair.get("StringValue", ""))
    return {number: names.get(number, "") for number in sorted(used)}


def set_header_preferences(company: Company, *, class_tracking: str | None = None,
                           departments: bool | None = None,
                           custom_fields: tuple[str, ...] | None = None,
                           online_payments: bool | None = None) -> None:
    """Turn header features on or off, as a person does in the company's settings (QuickBooks
    defines custom fields only there, never through the API).

    ``class_tracking``: ``"txn"`` (one class per invoice), ``"line"`` (per line) or ``"off"``;
    ``custom_fields``: the names of custom fields 1..3 (at most three; the rest are turned off).
    """
    prefs = _preferences(company)
    accounting = prefs.setdefault("AccountingInfoPrefs", {})
    sales = prefs.setdefault("SalesFormsPrefs", {})
    if class_tracking is not None:
        if class_tracking not in ("txn", "line", "off"):
            raise ValueError(f"class_tracking is txn, line or off, not {class_tracking!r}")
        accounting["ClassTrackingPerTxn"] = class_tracking == "txn"
        accounting["ClassTrackingPerTxnLine"] = class_tracking == "line"
    if departments is not None:
        accounting["TrackDepartments"] = departments
    if custom_fields is not None:
        if len(custom_fields) > 3:
            raise ValueError("QuickBooks sales forms have at most three custom fields")
        sales["CustomField"] = [
            {"CustomField": [{"Name": f"SalesFormsPrefs.UseSalesCustom{n}", "Type": "BooleanType",
                              "BooleanValue": n <= len(custom_fields)} for n in (1, 2, 3)]},
            {"CustomField": [{"Name": f"SalesFormsPrefs.SalesCustomName{n}", "Type": "StringType",
                              "StringValue": custom_fields[n - 1]}
                             for n in (1, 2, 3) if n <= len(custom_fields)]}]
    if online_payments is not None:
        sales["ETransactionPaymentEnabled"] = online_payments
    company.touch("Preferences", prefs)


def complete_list_entry(company: Company, entity: str, record: dict[str, Any]) -> None:
    """Defaults and naming of a Class or Department."""
    name = record.get("Name")
    if name in (None, ""):
        raise Fault("2020", "Required param missing, need to supply the required value for the API",
                    "Required parameter Name is missing in the request", element="Name")
    record.setdefault("Active", True)
    sub = "SubClass" if entity == "Class" else "SubDepartment"
    parent_ref = record.get("ParentRef")
    if parent_ref:
        parent = company.ref(entity, parent_ref, "ParentRef")
        record["ParentRef"] = {"value": parent["Id"]}
        record[sub] = True
        record["FullyQualifiedName"] = f"{parent['FullyQualifiedName']}:{name}"
    else:
        record[sub] = False
        record["FullyQualifiedName"] = str(name)


def _named(target: dict[str, Any]) -> dict[str, Any]:
    return {"value": target["Id"], "name": target.get("FullyQualifiedName") or target.get("Name")}


def _too_long(element: str, value: str, limit: int) -> Fault:
    return Fault("2050", "String length is either shorter or longer than supported by specification",
                 f"String length specified does not match the supported length. Min:0 Max:{limit} "
                 f"supported. Supplied length:{len(value)}", element=element)


def _classes(company: Company, record: dict[str, Any]) -> None:
    accounting = _accounting(company)
    if record.get("ClassRef"):
        found = company.ref("Class", record["ClassRef"], "ClassRef")
        if accounting.get("ClassTrackingPerTxn"):
            record["ClassRef"] = _named(found)
        else:
            del record["ClassRef"]
    for line in record.get("Line") or []:
        detail = line.get("SalesItemLineDetail")
        if isinstance(detail, dict) and detail.get("ClassRef"):
            found = company.ref("Class", detail["ClassRef"], "Line.SalesItemLineDetail.ClassRef")
            if accounting.get("ClassTrackingPerTxnLine"):
                detail["ClassRef"] = _named(found)
            else:
                del detail["ClassRef"]
    if record.get("DepartmentRef"):
        found = company.ref("Department", record["DepartmentRef"], "DepartmentRef")
        if accounting.get("TrackDepartments"):
            record["DepartmentRef"] = _named(found)
        else:
            del record["DepartmentRef"]


def _custom_fields(company: Company, record: dict[str, Any]) -> None:
    given = record.get("CustomField")
    if given is None:
        return
    definitions = custom_field_definitions(company)
    kept = []
    for entry in given if isinstance(given, list) else []:
        number = str(entry.get("DefinitionId", ""))
        value = entry.get("StringValue")
        if number not in definitions or value in (None, ""):
            continue
        if len(str(value)) > CUSTOM_FIELD_MAX:
            raise _too_long("CustomField.StringValue", str(value), CUSTOM_FIELD_MAX)
        kept.append({"DefinitionId": number, "Name": definitions[number], "Type": "StringType",
                     "StringValue": str(value)})
    record["CustomField"] = kept


def complete_header(company: Company, record: dict[str, Any], customer: dict[str, Any],
                    existing: dict[str, Any] | None) -> None:
    """Check an invoice's header fields and fill in what a new one takes from its customer."""
    if existing is None:
        for name in ("SalesTermRef", "BillAddr", "ShipAddr"):
            if not record.get(name) and customer.get(name):
                record[name] = copy.deepcopy(customer[name])
    _classes(company, record)
    _custom_fields(company, record)
    memo = record.get("CustomerMemo")
    if memo is not None:
        text = memo.get("value") if isinstance(memo, dict) else memo
        if len(str(text or "")) > _MEMO_MAX:
            raise _too_long("CustomerMemo", str(text), _MEMO_MAX)
        record["CustomerMemo"] = {"value": str(text or "")}
    status = record.get("EmailStatus")
    if status is not None and status not in _EMAIL_STATUSES:
        raise Fault("2170", "Invalid Enumeration", f"Invalid Enumeration : {status}",
                    element="EmailStatus")
    if existing is not None and existing.get("DeliveryInfo") and "DeliveryInfo" not in record:
        record["DeliveryInfo"] = existing["DeliveryInfo"]
    record.setdefault("AllowOnlineCreditCardPayment", False)
    record.setdefault("AllowOnlineACHPayment", False)


def invoice_link(company: Company, record: dict[str, Any]) -> str | None:
    """The customer-facing link of an invoice that can be paid online (stable per invoice)."""
    address = (record.get("BillEmail") or {}).get("Address")
    online = record.get("AllowOnlineCreditCardPayment") or record.get("AllowOnlineACHPayment")
    if not (_sales_forms(company).get("ETransactionPaymentEnabled") and address and online):
        return None
    digest = hashlib.sha256(f"{company.realm_id}:{record['Id']}".encode()).hexdigest()
    return f"{_SANDBOX_LINK}{digest[:32]}"


def with_invoice_links(company: Company, entity: str, answer: Any, include: str | None) -> Any:
    """``answer`` (a record, or a list of them) with ``InvoiceLink`` where ``include`` asks for it.

    The stored records are not changed: the link is part of an answer, not of the invoice.
    """
    wanted = "invoicelink" in {part.strip().lower() for part in (include or "").split(",")}
    if entity != "Invoice" or not wanted:
        return answer
    if isinstance(answer, list):
        return [with_invoice_links(company, entity, row, include) for row in answer]
    if not isinstance(answer, dict) or "Id" not in answer:
        return answer
    link = invoice_link(company, answer)
    return {**answer, "InvoiceLink": link} if link else answer


def send_invoice(company: Company, invoice_id: str, send_to: str | None) -> dict[str, Any]:
    """``POST /invoice/{id}/send``: mail the invoice; its e-mail state changes."""
    from connectors.quickbooks.emulator.validation import check_record

    invoice = company.get("Invoice", invoice_id)
    if send_to:
        check_record("Invoice", {"BillEmail": {"Address": send_to}})
        invoice["BillEmail"] = {"Address": send_to}
    if not (invoice.get("BillEmail") or {}).get("Address"):
        # QuickBooks' own wording when a form is to be e-mailed to a customer without an address.
        raise Fault("6000", "A business validation error has occurred while processing your request",
                    "Business Validation Error: You must enter the email address for this customer "
                    "in order to email statements.", element="BillEmail")
    invoice["EmailStatus"] = "EmailSent"
    invoice["DeliveryInfo"] = {"DeliveryType": "Email", "DeliveryTime": company.now()}
    company.touch("Invoice", invoice)
    return invoice
