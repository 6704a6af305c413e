"""CreditMemo and RefundReceipt of the emulated company, and how a credit is used up.

A CreditMemo has the lines of an invoice (the same rules, the same sales tax) and a ``TotalAmt``;
``RemainingCredit`` (and ``Balance``, the same figure) is the total less what is used of it. A
credit is used in two ways, as in QuickBooks: a Payment line linked to the credit memo, beside a
line linked to the invoice it settles (QuickBooks records "apply this credit to that invoice" as
such a payment, of ``TotalAmt`` 0 when no money moves), and a RefundReceipt linked to it (the credit
paid out to the customer). Either may use at most the remaining credit (6000 otherwise), and a
credit memo that is used cannot be deleted until the payments and refunds are removed.

A RefundReceipt is a sales receipt in reverse: lines like an invoice's, ``DepositToAccountRef``
(required: the bank, credit card or other current asset account the money leaves) and an optional
``PaymentMethodRef``; its ``Balance`` is 0 (the money has left). Neither entity can be voided
through the API here; they are deleted.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from connectors.quickbooks.emulator.faults import Fault
from connectors.quickbooks.emulator.salestax import sales_tax
from connectors.quickbooks.emulator.transactions import ZERO, amount_of, named_ref, sales_lines

if TYPE_CHECKING:
    from connectors.quickbooks.emulator.entities import Company

__all__ = ["CREDIT_ENTITIES", "after_save", "before_delete", "check_payment_credits",
           "complete_credit_memo", "complete_refund_receipt", "credit_links", "rebalance"]

#: The entities of this module.
CREDIT_ENTITIES = frozenset({"CreditMemo", "RefundReceipt"})
#: Accounts money can be refunded from (QuickBooks' "Refund From" list).
_REFUND_ACCOUNT_TYPES = frozenset({"Bank", "Credit Card", "Other Current Asset"})
_BUSINESS = "A business validation error has occurred while processing your request"


def credit_links(txn: dict[str, Any] | None) -> list[tuple[Decimal, str]]:
    """(amount, credit memo id) of each use of a credit memo in a Payment or RefundReceipt."""
    if not txn:
        return []
    out = []
    if txn.get("TotalAmt") is not None:
        # A refund (its LinkedTxn, at the top) pays out its whole total of the credit memo it links.
        for link in txn.get("LinkedTxn") or []:
            if link.get("TxnType") == "CreditMemo":
                out.append((amount_of(txn["TotalAmt"], "TotalAmt"), str(link.get("TxnId"))))
                break
    for line in txn.get("Line") or []:
        for link in line.get("LinkedTxn") or []:
            if link.get("TxnType") == "CreditMemo":
                out.append((amount_of(line.get("Amount", ZERO), "Line.Amount"), str(link.get("TxnId"))))
    return out


def _used(company: Company, memo_id: str) -> tuple[Decimal, list[dict[str, str]]]:
    """What payments and refunds use of a credit memo, and their links."""
    used = ZERO
    links = []
    for entity in ("Payment", "RefundReceipt"):
        for txn in company.tables[entity].values():
            amounts = [amount for amount, memo in credit_links(txn) if memo == memo_id]
            if amounts:
                used += sum(amounts, ZERO)
                links.append({"TxnId": txn["Id"], "TxnType": entity})
    return used, sorted(links, key=lambda link: int(link["TxnId"]))


def _memo(company: Company, memo_id: str, customer_id: str) -> dict[str, Any]:
    memo = company.tables["CreditMemo"].get(memo_id)
    if memo is None or memo["CustomerRef"]["value"] != customer_id:
        raise Fault("2500", "Invalid Reference Id",
                    f"Invalid Reference Id : CreditMemo {memo_id} does not exist for this customer",
                    element="LinkedTxn")
    return memo


def _check_available(company: Company, txn: dict[str, Any], existing: dict[str, Any] | None) -> None:
    customer_id = txn["CustomerRef"]["value"]
    for amount, memo_id in credit_links(txn):
        memo = _memo(company, memo_id, customer_id)
        already = sum((a for a, m in credit_links(existing) if m == memo_id), ZERO)
        if amount > memo["RemainingCredit"] + already:
            raise Fault("6000", _BUSINESS, "Business Validation Error: The amount applied exceeds the "
                        f"remaining credit of credit memo {memo.get('DocNumber', memo_id)}",
                        element="LinkedTxn")


def check_payment_credits(company: Company, record: dict[str, Any],
                          existing: dict[str, Any] | None) -> None:
    """Refuse a payment that applies a credit memo of another customer, or more than is left."""
    _check_available(company, record, existing)


def _complete_sale(company: Company, record: dict[str, Any], entity: str) -> dict[str, Any]:
    """Customer, lines, sales tax and totals: what a credit memo and a refund receipt share."""
    if not record.get("CustomerRef"):
        raise Fault("2020", "Required param missing, need to supply the required value for the API",
                    "Required parameter CustomerRef is missing in the request", element="CustomerRef")
    customer = company.ref("Customer", record["CustomerRef"], "CustomerRef")
    record["CustomerRef"] = named_ref(customer)
    subtotal, taxable = sales_lines(company, record)
    record["TxnTaxDetail"] = sales_tax(company, record, customer, taxable)
    record.setdefault("ApplyTaxAfterDiscount", False)
    record["TotalAmt"] = subtotal + record["TxnTaxDetail"]["TotalTax"]
    record.setdefault("TxnDate", company.clock().date().isoformat())
    record.setdefault("CurrencyRef", {"value": "USD", "name": "United States Dollar"})
    if not record.get("DocNumber"):
        record["DocNumber"] = str(company.next_doc_number)
        company.next_doc_number += 1
    return customer


def _check_doc_number(company: Company, entity: str, record: dict[str, Any],
                      existing: dict[str, Any] | None, options: dict[str, str]) -> None:
    if options.get("include") == "allowduplicatedocnum":
        return
    own = existing["Id"] if existing else None
    for other in company.tables[entity].values():
        if other["Id"] != own and other.get("DocNumber") == record["DocNumber"]:
            raise Fault("6140", "Duplicate Document Number Error",
                        "Duplicate Document Number Error : You must specify a different number. "
                        f"This number has already been used. DocNumber={record['DocNumber']}",
                        element="DocNumber")


def complete_credit_memo(company: Company, record: dict[str, Any], options: dict[str, str],
                         existing: dict[str, Any] | None) -> None:
    """Validate a credit memo and compute its total and the credit that is left."""
    _complete_sale(company, record, "CreditMemo")
    _check_doc_number(company, "CreditMemo", record, existing, options)
    used, links = _used(company, existing["Id"]) if existing else (ZERO, [])
    if record["TotalAmt"] < used:
        raise Fault("6000", _BUSINESS, "Business Validation Error: The credit memo total is less than "
                    "the credit already applied or refunded", element="Line.Amount")
    record["RemainingCredit"] = record["Balance"] = record["TotalAmt"] - used
    record["LinkedTxn"] = links
    record.setdefault("PrintStatus", "NotSet")
    record.setdefault("EmailStatus", "NotSet")


def complete_refund_receipt(company: Company, record: dict[str, Any], options: dict[str, str],
                            existing: dict[str, Any] | None) -> None:
    """Validate a refund receipt: its lines, the account the money leaves, a credit it pays out."""
    if not record.get("DepositToAccountRef"):
        raise Fault("2020", "Required param missing, need to supply the required value for the API",
                    "Required parameter DepositToAccountRef is missing in the request",
                    element="DepositToAccountRef")
    account = company.ref("Account", record["DepositToAccountRef"], "DepositToAccountRef")
    if account.get("AccountType") not in _REFUND_ACCOUNT_TYPES:
        raise Fault("6000", _BUSINESS, "Business Validation Error: A refund must be paid from a bank, "
                    f"credit card or other current asset account, not {account.get('AccountType')}",
                    element="DepositToAccountRef")
    record["DepositToAccountRef"] = named_ref(account)
    if record.get("PaymentMethodRef"):
        record["PaymentMethodRef"] = named_ref(
            company.ref("PaymentMethod", record["PaymentMethodRef"], "PaymentMethodRef"))
    _complete_sale(company, record, "RefundReceipt")
    _check_doc_number(company, "RefundReceipt", record, existing, options)
    for link in record.get("LinkedTxn") or []:
        if link.get("TxnType") != "CreditMemo":
            raise Fault("2170", "Invalid Enumeration",
                        f"Invalid Enumeration : LinkedTxn.TxnType {link.get('TxnType')}",
                        element="LinkedTxn.TxnType")
        link["TxnId"] = str(link.get("TxnId"))
    _check_available(company, record, existing)
    record["Balance"] = ZERO
    record.setdefault("PrintStatus", "NotSet")


def _rebalance(company: Company, memo_ids: set[str]) -> None:
    for memo_id in memo_ids:
        memo = company.tables["CreditMemo"].get(memo_id)
        if memo is None:
            continue
        used, links = _used(company, memo_id)
        memo["RemainingCredit"] = memo["Balance"] = memo["TotalAmt"] - used
        memo["LinkedTxn"] = links
        company.touch("CreditMemo", memo)


def after_save(company: Company, entity: str, record: dict[str, Any],
               before: dict[str, Any] | None) -> None:
    """A payment or refund that uses (or used) a credit memo changes what is left of it."""
    if entity in ("Payment", "RefundReceipt"):
        _rebalance(company, {m for _, m in credit_links(record)} | {m for _, m in credit_links(before)})


def before_delete(company: Company, entity: str, record: dict[str, Any]) -> set[str]:
    """Refuse to delete a credit memo in use; the credit memos a deleted or voided payment or
    refund used (hand them to :func:`rebalance` once it is gone)."""
    if entity == "CreditMemo" and record.get("LinkedTxn"):
        raise Fault("6000", _BUSINESS, "Business Validation Error: This credit memo is applied to "
                    "payments or refunds; remove them before deleting it")
    return {m for _, m in credit_links(record)}


def rebalance(company: Company, memo_ids: set[str]) -> None:
    """What is left of these credit memos, after a payment or refund using them went away."""
    _rebalance(company, memo_ids)
