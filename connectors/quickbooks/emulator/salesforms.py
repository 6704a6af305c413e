"""SalesReceipt and Estimate rules of the emulated company, and an invoice made from an estimate.

Both forms share the invoice's line model (lines, 6070, sales tax, ``SubTotalLineDetail``). A
SalesReceipt is paid at the sale: ``Balance`` is always 0, the money goes to
``DepositToAccountRef`` (Undeposited Funds when not given) and ``PaymentMethodRef`` names how it
was paid. An Estimate has a ``TxnStatus`` (Pending, Accepted, Closed, Rejected; Pending when not
given) and an optional ``ExpirationDate``. An Invoice created with
``LinkedTxn: [{"TxnId": <estimate>, "TxnType": "Estimate"}]`` closes that estimate as QuickBooks
does: the estimate's ``TxnStatus`` becomes Closed and its ``LinkedTxn`` shows the invoice (its
SyncToken moves on); deleting or voiding the invoice opens the estimate again (Accepted, its link
gone). Document numbers are unique per form (6140), like invoices'.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from connectors.quickbooks.emulator.faults import Fault
from connectors.quickbooks.emulator.salestax import sales_tax

if TYPE_CHECKING:
    from connectors.quickbooks.emulator.entities import Company

__all__ = ["ESTIMATE_STATUSES", "PAYMENT_METHODS", "complete_estimate", "complete_sales_receipt",
           "estimate_links", "invoice_removed", "invoice_saved", "seed_payment_methods"]

ZERO = Decimal("0")
#: The values of an estimate's TxnStatus.
ESTIMATE_STATUSES = ("Pending", "Accepted", "Closed", "Rejected")
#: The payment methods a new QuickBooks company starts with (name, type), ids 1.. in this order.
PAYMENT_METHODS = (("Cash", "NON_CREDIT_CARD"), ("Check", "NON_CREDIT_CARD"),
                   ("Visa", "CREDIT_CARD"), ("MasterCard", "CREDIT_CARD"),
                   ("Discover", "CREDIT_CARD"), ("American Express", "CREDIT_CARD"),
                   ("Diners Club", "CREDIT_CARD"))
_USD = {"value": "USD", "name": "United States Dollar"}


def seed_payment_methods(company: Company) -> None:
    """The company's payment methods, numbered in their own sequence as QuickBooks numbers them
    (so the shared id counter, and the ids the demo data relies on, do not move)."""
    now = company.now()
    for number, (name, kind) in enumerate(PAYMENT_METHODS, start=1):
        company.tables["PaymentMethod"][str(number)] = {
            "Id": str(number), "Name": name, "Type": kind, "Active": True, "SyncToken": "0",
            "domain": "QBO", "sparse": False,
            "MetaData": {"CreateTime": now, "LastUpdatedTime": now}}


def _ref(target: dict[str, Any]) -> dict[str, Any]:
    name = target.get("DisplayName") or target.get("FullyQualifiedName") or target.get("Name")
    return {"value": target["Id"], "name": name}


def _required(record: dict[str, Any], name: str) -> Any:
    if record.get(name) in (None, "", [], {}):
        raise Fault("2020", "Required param missing, need to supply the required value for the API",
                    f"Required parameter {name} is missing in the request", element=name)
    return record[name]


def _header(company: Company, entity: str, record: dict[str, Any], options: dict[str, str],
            existing: dict[str, Any] | None, *, customer_required: bool) -> Decimal:
    """Customer, lines, tax, TotalAmt, TxnDate and DocNumber of a sales form; its total."""
    from connectors.quickbooks.emulator.transactions import _lines

    customer = None
    if customer_required:
        _required(record, "CustomerRef")
    if record.get("CustomerRef"):
        customer = company.ref("Customer", record["CustomerRef"], "CustomerRef")
        record["CustomerRef"] = _ref(customer)
    subtotal, taxable = _lines(company, record)
    record["TxnTaxDetail"] = sales_tax(company, record, customer or {}, taxable)
    record.setdefault("ApplyTaxAfterDiscount", False)
    total: Decimal = subtotal + record["TxnTaxDetail"]["TotalTax"]
    record["TotalAmt"] = total
    record.setdefault("TxnDate", company.clock().date().isoformat())
    record.setdefault("EmailStatus", "NotSet")
    record.setdefault("PrintStatus", "NotSet")
    record.setdefault("CurrencyRef", dict(_USD))
    _doc_number(company, entity, record, options, existing["Id"] if existing else None)
    return total


def _doc_number(company: Company, entity: str, record: dict[str, Any], options: dict[str, str],
                own: str | None) -> None:
    if not record.get("DocNumber"):
        record["DocNumber"] = str(company.next_doc_number)
        company.next_doc_number += 1
        return
    if options.get("include") == "allowduplicatedocnum":
        return
    for other in company.tables[entity].lookup("DocNumber", [str(record["DocNumber"]).lower()]):
        if other["Id"] != own and other.get("DocNumber") == record["DocNumber"]:
            raise Fault("6140", "Duplicate Document Number Error",
                        "Duplicate Document Number Error : You must specify a different number. "
                        f"This number has already been used. DocNumber={record['DocNumber']}",
                        element="DocNumber")


def complete_sales_receipt(company: Company, record: dict[str, Any], options: dict[str, str],
                           existing: dict[str, Any] | None) -> None:
    """Validate a sales receipt: paid in full at the sale (Balance 0), deposited to an account."""
    _header(company, "SalesReceipt", record, options, existing, customer_required=False)
    record["Balance"] = ZERO
    if record.get("DepositToAccountRef"):
        account = company.ref("Account", record["DepositToAccountRef"], "DepositToAccountRef")
    else:
        funds = [a for a in company.tables["Account"].values()
                 if a.get("AccountSubType") == "UndepositedFunds"]
        if not funds:
            _required(record, "DepositToAccountRef")
        account = funds[0]
    record["DepositToAccountRef"] = _ref(account)
    if record.get("PaymentMethodRef"):
        method = company.ref("PaymentMethod", record["PaymentMethodRef"], "PaymentMethodRef")
        record["PaymentMethodRef"] = _ref(method)
    record["LinkedTxn"] = existing.get("LinkedTxn", []) if existing else []


def complete_estimate(company: Company, record: dict[str, Any], options: dict[str, str],
                      existing: dict[str, Any] | None) -> None:
    """Validate an estimate: its status, expiration date and the invoices made from it."""
    _header(company, "Estimate", record, options, existing, customer_required=True)
    links = existing.get("LinkedTxn", []) if existing else []
    status = record.get("TxnStatus") or ("Closed" if links else "Pending")
    if status not in ESTIMATE_STATUSES:
        raise Fault("2170", "Invalid Enumeration", f"Invalid Enumeration : {status}",
                    element="TxnStatus")
    record["TxnStatus"] = status
    if status == "Accepted":
        record.setdefault("AcceptedDate", company.clock().date().isoformat())
    if record.get("ExpirationDate"):
        try:
            date.fromisoformat(str(record["ExpirationDate"]))
        except ValueError:
            raise Fault("2050", "Invalid Date", f"Invalid Date : {record['ExpirationDate']}",
                        element="ExpirationDate") from None
    record["LinkedTxn"] = links


def estimate_links(company: Company, record: dict[str, Any],
                   existing: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The estimate links of an invoice being saved: those it is created with (each estimate must
    exist, for the invoice's customer), or the ones it already has (an update keeps them)."""
    if existing is not None:
        return [link for link in existing.get("LinkedTxn", []) if link.get("TxnType") == "Estimate"]
    out = []
    for link in record.get("LinkedTxn") or []:
        if not isinstance(link, dict) or link.get("TxnType") != "Estimate":
            continue
        estimate = company.tables["Estimate"].get(str(link.get("TxnId")))
        customer = (record.get("CustomerRef") or {}).get("value")
        if estimate is None or estimate["CustomerRef"]["value"] != customer:
            raise Fault("2500", "Invalid Reference Id",
                        f"Invalid Reference Id : Estimate {link.get('TxnId')} does not exist "
                        "for this customer", element="LinkedTxn")
        out.append({"TxnId": estimate["Id"], "TxnType": "Estimate"})
    return out


def invoice_saved(company: Company, invoice: dict[str, Any]) -> None:
    """A new invoice made from estimates closes them, and they show the invoice."""
    for link in invoice.get("LinkedTxn") or []:
        if link.get("TxnType") != "Estimate":
            continue
        estimate = company.tables["Estimate"].get(str(link["TxnId"]))
        if estimate is None:
            continue
        shown = [lk for lk in estimate.get("LinkedTxn", []) if lk.get("TxnId") != invoice["Id"]]
        estimate["LinkedTxn"] = [*shown, {"TxnId": invoice["Id"], "TxnType": "Invoice"}]
        estimate["TxnStatus"] = "Closed"
        company.touch("Estimate", estimate)


def invoice_removed(company: Company, invoice: dict[str, Any]) -> None:
    """A deleted or voided invoice no longer closes its estimates: they are Accepted again."""
    for link in invoice.get("LinkedTxn") or []:
        if link.get("TxnType") != "Estimate":
            continue
        estimate = company.tables["Estimate"].get(str(link["TxnId"]))
        if estimate is None:
            continue
        estimate["LinkedTxn"] = [lk for lk in estimate.get("LinkedTxn", [])
                                 if lk.get("TxnId") != invoice["Id"]]
        if not estimate["LinkedTxn"]:
            estimate["TxnStatus"] = "Accepted"
        company.touch("Estimate", estimate)

