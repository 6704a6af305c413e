"""Invoice and Payment rules of the emulated company: lines, 6070, totals, balances, links.

A sales line with both ``Qty`` and ``UnitPrice`` must carry ``Amount`` equal to their product
rounded half up to cents (6070 otherwise). ``TotalAmt`` is the sum of the sales lines plus the sales
tax QuickBooks computes on the lines marked taxable (:mod:`.salestax`); ``Balance`` is what payments
have not covered. A Payment line linked to an invoice lowers that invoice's Balance,
adds the payment to the invoice's ``LinkedTxn`` and bumps its SyncToken (so a client holding the old
invoice gets 5010); deleting or voiding the payment gives the balance back.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from connectors.quickbooks.emulator import jobs, salesforms
from connectors.quickbooks.emulator.currency import home_amounts
from connectors.quickbooks.emulator.faults import Fault
from connectors.quickbooks.emulator.headers import complete_header
from connectors.quickbooks.emulator.salestax import sales_tax
from connectors.quickbooks.emulator.table import Table

if TYPE_CHECKING:
    from connectors.quickbooks.emulator.entities import Company

__all__ = ["ZERO", "after_save", "amount_of", "before_delete", "complete_invoice",
           "complete_payment", "customer_defaults", "named_ref", "sales_lines", "void"]

ZERO = Decimal("0")
CENT = Decimal("0.01")


def _dec(value: Any, element: str) -> Decimal:
    try:
        return value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise Fault("2050", "Invalid Number", f"Invalid Number : {value}", element=element) from None


def _ref(target: dict[str, Any]) -> dict[str, Any]:
    name = target.get("DisplayName") or target.get("FullyQualifiedName") or target.get("Name")
    return {"value": target["Id"], "name": name}


def amount_of(value: Any, element: str) -> Decimal:
    """A money field as Decimal, or the 2050 fault naming the element."""
    return _dec(value, element)


def named_ref(target: dict[str, Any]) -> dict[str, Any]:
    """A ``{"value", "name"}`` reference to a stored record."""
    return _ref(target)


def sales_lines(company: Company, record: dict[str, Any]) -> tuple[Decimal, Decimal]:
    """Check and number a sales form's lines (invoice, credit memo, refund receipt); the subtotal
    and the net of the lines marked taxable."""
    return _lines(company, record)


def _money_text(value: Decimal) -> str:
    return f"{value:,.2f}"


def customer_defaults(company: Company, record: dict[str, Any], existing: dict[str, Any] | None) -> None:
    """Balances, currency and job nesting (:mod:`.jobs`) of a customer."""
    record["Balance"] = existing.get("Balance", ZERO) if existing else ZERO
    record["BalanceWithJobs"] = existing.get("BalanceWithJobs", ZERO) if existing else ZERO
    record.setdefault("Taxable", True)
    jobs.customer_nesting(company, record, existing)
    record.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})


def _lines(company: Company, record: dict[str, Any]) -> tuple[Decimal, Decimal]:
    """Check and number the lines; the subtotal and the net of the lines marked taxable."""
    lines = record.get("Line")
    if not isinstance(lines, list) or not lines:
        raise Fault("2020", "Required param missing, need to supply the required value for the API",
                    "Required parameter Line is missing in the request", element="Line")
    total = taxable = discount = ZERO
    kept = []
    for number, line in enumerate((ln for ln in lines if ln.get("DetailType") != "SubTotalLineDetail"),
                                  start=1):
        kind = line.get("DetailType")
        if kind not in ("SalesItemLineDetail", "DescriptionOnly", "DiscountLineDetail"):
            raise Fault("2170", "Invalid Enumeration", f"Invalid Enumeration : {kind}",
                        element="Line.DetailType")
        if "Amount" not in line and kind != "DescriptionOnly":
            raise Fault("2020", "Required param missing, need to supply the required value for the API",
                        "Required parameter Line.Amount is missing in the request",
                        element="Line.Amount")
        amount = _dec(line.get("Amount", ZERO), "Line.Amount")
        if kind == "SalesItemLineDetail":
            detail = line.setdefault("SalesItemLineDetail", {})
            if detail.get("ItemRef"):
                detail["ItemRef"] = _ref(company.ref("Item", detail["ItemRef"], "ItemRef"))
                qty, price = detail.get("Qty"), detail.get("UnitPrice")
                if qty is not None and price is not None:
                    expected = (_dec(qty, "Qty") * _dec(price, "UnitPrice")).quantize(
                        CENT, rounding=ROUND_HALF_UP)
                    if amount != expected:
                        raise Fault("6070", "Amount is not equal to UnitPrice * Qty. Supplied value:"
                                    + _money_text(amount),
                                    "Amount is not equal to UnitPrice * Qty. Supplied value:"
                                    + _money_text(amount), element="Line.Amount")
                elif qty is not None and _dec(qty, "Qty") != ZERO:
                    detail["UnitPrice"] = amount / _dec(qty, "Qty")
                total += amount
            code = company.ref("TaxCode", detail.setdefault("TaxCodeRef", {"value": "NON"}),
                               "Line.SalesItemLineDetail.TaxCodeRef")
            detail["TaxCodeRef"] = {"value": code["Id"]}
            if code.get("Taxable") and detail.get("ItemRef"):
                taxable += amount
        elif kind == "DiscountLineDetail":
            total -= amount
            discount += amount
        line["Amount"] = amount
        line["Id"] = str(number)
        line["LineNum"] = number
        kept.append(line)
    kept.append({"Amount": total, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
    record["Line"] = kept
    gross = total + discount
    if record.get("ApplyTaxAfterDiscount") and discount and gross:
        # The discount lowers the taxable lines in proportion to their share of the lines.
        taxable -= (discount * taxable / gross).quantize(CENT, rounding=ROUND_HALF_UP)
    return total, taxable


def complete_invoice(company: Company, record: dict[str, Any], options: dict[str, str],
                     existing: dict[str, Any] | None) -> None:
    """Validate an invoice and compute its totals, dates and document number."""
    if not record.get("CustomerRef"):
        raise Fault("2020", "Required param missing, need to supply the required value for the API",
                    "Required parameter CustomerRef is missing in the request", element="CustomerRef")
    customer = company.ref("Customer", record["CustomerRef"], "CustomerRef")
    record["CustomerRef"] = _ref(customer)
    complete_header(company, record, customer, existing)
    subtotal, taxable = _lines(company, record)
    record["TxnTaxDetail"] = sales_tax(company, record, customer, taxable)
    record.setdefault("ApplyTaxAfterDiscount", False)
    total = subtotal + record["TxnTaxDetail"]["TotalTax"]
    paid = _paid(company, existing["Id"]) if existing else ZERO
    record["TotalAmt"] = total
    record["Balance"] = total - paid
    record.setdefault("TxnDate", company.clock().date().isoformat())
    if "DueDate" not in record:
        due = date.fromisoformat(record["TxnDate"])
        if record.get("SalesTermRef"):
            term = company.ref("Term", record["SalesTermRef"], "SalesTermRef")
            due += timedelta(days=int(term.get("DueDays", 0)))
        record["DueDate"] = due.isoformat()
    own = existing["Id"] if existing else None
    if not record.get("DocNumber"):
        record["DocNumber"] = str(company.next_doc_number)
        company.next_doc_number += 1
    elif options.get("include") != "allowduplicatedocnum":
        for other in _same_doc_number(company, record["DocNumber"]):
            if other["Id"] != own and other.get("DocNumber") == record["DocNumber"]:
                raise Fault("6140", "Duplicate Document Number Error",
                            "Duplicate Document Number Error : You must specify a different number. "
                            f"This number has already been used. DocNumber={record['DocNumber']}",
                            element="DocNumber")
    record.setdefault("EmailStatus", "NotSet")
    record.setdefault("PrintStatus", "NotSet")
    record.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})
    # Payments are linked by QuickBooks; the estimates it was made from by the client, on create.
    payments = [lk for lk in existing.get("LinkedTxn", []) if lk.get("TxnType") != "Estimate"] \
        if existing else []
    record["LinkedTxn"] = salesforms.estimate_links(company, record, existing) + payments


def _same_doc_number(company: Company, number: Any) -> list[dict[str, Any]]:
    """The invoices that may carry this DocNumber: from the table's index for a text number (a
    row equal to it holds the same text, so the same key), else all of them."""
    invoices = company.tables["Invoice"]
    if isinstance(number, str) and isinstance(invoices, Table):
        return invoices.lookup("DocNumber", [number.lower()])
    return list(invoices.values())


def _paid(company: Company, invoice_id: str) -> Decimal:
    paid = ZERO
    for payment in company.tables["Payment"].values():
        for line, txn in _links(payment):
            if txn == invoice_id:
                paid += _dec(line.get("Amount", ZERO), "Line.Amount")
    return paid


def _links(payment: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    out = []
    for line in payment.get("Line") or []:
        for link in line.get("LinkedTxn") or []:
            if link.get("TxnType") == "Invoice":
                out.append((line, str(link.get("TxnId"))))
    return out


def complete_payment(company: Company, record: dict[str, Any], existing: dict[str, Any] | None) -> None:
    """Validate a payment against the invoices it pays."""
    if not record.get("CustomerRef"):
        raise Fault("2020", "Required param missing, need to supply the required value for the API",
                    "Required parameter CustomerRef is missing in the request", element="CustomerRef")
    customer = company.ref("Customer", record["CustomerRef"], "CustomerRef")
    record["CustomerRef"] = _ref(customer)
    if "TotalAmt" not in record:
        raise Fault("2020", "Required param missing, need to supply the required value for the API",
                    "Required parameter TotalAmt is missing in the request", element="TotalAmt")
    total = _dec(record["TotalAmt"], "TotalAmt")
    applied = credits = ZERO
    for line in record.get("Line") or []:
        amount = _dec(line.get("Amount", ZERO), "Line.Amount")
        line["Amount"] = amount
        # A line linked to a credit memo is credit the payment spends on its invoice lines.
        is_credit = any(link.get("TxnType") == "CreditMemo" for link in line.get("LinkedTxn") or [])
        for link in line.get("LinkedTxn") or []:
            if link.get("TxnLineId") in (0, "0"):
                link.pop("TxnLineId")
            if link.get("TxnType") == "CreditMemo":
                link["TxnId"] = str(link.get("TxnId"))
            if link.get("TxnType") != "Invoice":
                continue
            invoice = company.tables["Invoice"].get(str(link.get("TxnId")))
            if invoice is None or invoice["CustomerRef"]["value"] != customer["Id"]:
                raise Fault("2500", "Invalid Reference Id",
                            f"Invalid Reference Id : Invoice {link.get('TxnId')} does not exist "
                            "for this customer", element="LinkedTxn")
            link["TxnId"] = invoice["Id"]
            already = _paid_by(existing, invoice["Id"]) if existing else ZERO
            if amount > invoice["Balance"] + already:
                raise Fault("6000", "A business validation error has occurred while processing "
                            "your request", "Business Validation Error: The payment amount "
                            "exceeds the open balance of the invoice", element="Line.Amount")
        if is_credit:
            credits += amount
        else:
            applied += amount
    if applied > total + credits:
        raise Fault("6000", "A business validation error has occurred while processing your request",
                    "Business Validation Error: The amount applied exceeds the payment amount")
    record["TotalAmt"] = total
    record["UnappliedAmt"] = total + credits - applied
    record.setdefault("TxnDate", company.clock().date().isoformat())
    record.setdefault("ProcessPayment", False)
    record.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})


def _paid_by(payment: dict[str, Any] | None, invoice_id: str) -> Decimal:
    return sum((_dec(line.get("Amount", ZERO), "Amount") for line, txn in _links(payment or {})
                if txn == invoice_id), ZERO)


def _rebalance(company: Company, invoice_ids: set[str]) -> None:
    for invoice_id in invoice_ids:
        invoice = company.tables["Invoice"].get(invoice_id)
        if invoice is None:
            continue
        invoice["Balance"] = invoice["TotalAmt"] - _paid(company, invoice_id)
        home_amounts(company, invoice)
        payments = sorted({pid for pid, p in company.tables["Payment"].items()
                           if any(txn == invoice_id for _, txn in _links(p))}, key=int)
        invoice["LinkedTxn"] = [*(lk for lk in invoice.get("LinkedTxn", []) if lk.get("TxnType") != "Payment"),
                                *({"TxnId": pid, "TxnType": "Payment"} for pid in payments)]
        company.touch("Invoice", invoice)


def after_save(company: Company, entity: str, record: dict[str, Any],
               before: dict[str, Any] | None) -> None:
    """Side effects of a saved payment on the invoices it pays (or paid), of a new invoice on the
    estimates it was made from."""
    if entity == "Invoice" and before is None:
        salesforms.invoice_saved(company, record)
    if entity != "Payment":
        return
    touched = {txn for _, txn in _links(record)} | {txn for _, txn in _links(before or {})}
    _rebalance(company, touched)


def before_delete(company: Company, entity: str, record: dict[str, Any]) -> None:
    """Refuse to delete a paid invoice; give a deleted payment's amounts back."""
    if entity == "Invoice" and any(lk.get("TxnType") == "Payment" for lk in record.get("LinkedTxn") or []):
        raise Fault("6000", "A business validation error has occurred while processing your request",
                    "Business Validation Error: This transaction is linked to payments; unlink "
                    "them before deleting it")
    if entity == "Invoice":
        salesforms.invoice_removed(company, record)
    if entity == "Payment":
        touched = {txn for _, txn in _links(record)}
        record["Line"] = []
        _rebalance(company, touched)


def void(company: Company, entity: str, record: dict[str, Any]) -> None:
    """Keep the transaction with zero amounts (and give a payment's amounts back).

    An invoice that payments or credits settle (its LinkedTxn) is not voided: QuickBooks refuses,
    the payments must be removed first (or the unpaid part credited). Its link to the estimate it
    was made from does not settle it."""
    settled_by = {"Payment", "CreditMemo", "ReceivePayment"}
    if entity == "Invoice" and any(link.get("TxnType") in settled_by for link in record.get("LinkedTxn") or []):
        raise Fault("6000", "A business validation error has occurred while processing your request",
                    "Business Validation Error: This invoice has payments or credits applied to it; "
                    "remove them before voiding it")
    touched = {txn for _, txn in _links(record)} if entity == "Payment" else set()
    for line in record.get("Line") or []:
        line["Amount"] = ZERO
    if entity == "Payment":
        record["Line"] = []
        record["UnappliedAmt"] = ZERO
    else:
        record["Balance"] = ZERO
        record["TxnTaxDetail"] = {"TotalTax": ZERO}
    record["TotalAmt"] = ZERO
    home_amounts(company, record)
    record["PrivateNote"] = "Voided" + (f" - {record['PrivateNote']}" if record.get("PrivateNote") else "")
    _rebalance(company, touched)
    if entity == "Invoice":
        salesforms.invoice_removed(company, record)
        record["LinkedTxn"] = [lk for lk in record.get("LinkedTxn", []) if lk.get("TxnType") != "Estimate"]
