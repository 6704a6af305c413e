"""Sub-customers and jobs of the emulated company, and the balances customers carry.

QuickBooks nests customers: a sub-customer or job is a Customer with ``Job: true`` and a
``ParentRef`` to an existing, active customer (2500 Invalid Reference Id otherwise; 2020 when
``Job`` is true without a parent). The server computes ``Level`` (0 for a top-level customer, at
most 4 below it: 6000 beyond) and ``FullyQualifiedName``, the names of the levels joined by ``:``
(``Acme Corp:Website Redesign``), which is why no name field may hold a ``:``
(:mod:`.validation`). ``DisplayName`` stays unique across every customer, vendor and employee,
jobs included (6240, :mod:`.entities`), so two parents cannot each have a job of the same name. A
job takes its parent's currency. Renaming or moving a customer renames its descendants'
``FullyQualifiedName`` and moves their ``Level``.

QuickBooks "Projects" are customers with ``IsProject: true``; the v3 API only reads that flag (a
project is made in the product or through the GraphQL Project API), so it is read-only here and
false on every customer made through this API.

``Balance`` is what the customer's own open invoices still owe; ``BalanceWithJobs`` adds its
descendants' balances. Both follow every invoice and payment change.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from connectors.quickbooks.emulator.faults import Fault
from connectors.quickbooks.emulator.table import Table

if TYPE_CHECKING:
    from connectors.quickbooks.emulator.entities import Company

__all__ = ["MAX_LEVEL", "children", "customer_changed", "customer_nesting", "invoice_changed",
           "rename_descendants"]

#: How deep sub-customers nest below a top-level customer.
MAX_LEVEL = 4
ZERO = Decimal("0")


def _business(detail: str, element: str = "") -> Fault:
    return Fault("6000", "A business validation error has occurred while processing your request",
                 f"Business Validation Error: {detail}", element=element)


def children(company: Company, customer_id: str) -> list[dict[str, Any]]:
    """The customers whose ``ParentRef`` is ``customer_id`` (inactive ones too)."""
    table = company.tables["Customer"]
    if isinstance(table, Table):
        return table.lookup("ParentRef", [str(customer_id).lower()])
    return [c for c in table.values() if (c.get("ParentRef") or {}).get("value") == customer_id]


def customer_nesting(company: Company, record: dict[str, Any], existing: dict[str, Any] | None) -> None:
    """Check a customer's place in the hierarchy and set ``Job``, ``Level``,
    ``FullyQualifiedName``, ``IsProject`` and (for a job) its parent's currency."""
    record["IsProject"] = bool(existing.get("IsProject")) if existing else False
    parent_ref = record.get("ParentRef")
    if not parent_ref:
        if record.get("Job") is True:
            raise Fault("2020", "Required param missing, need to supply the required value for the API",
                        "Required parameter ParentRef is missing in the request", element="ParentRef")
        record["Job"] = False
        record["BillWithParent"] = False
        record["Level"] = 0
        record["FullyQualifiedName"] = record["DisplayName"]
        return
    parent = company.ref("Customer", parent_ref, "ParentRef")
    own_id = existing["Id"] if existing else None
    ancestor: dict[str, Any] | None = parent
    while ancestor is not None:
        if own_id is not None and ancestor["Id"] == own_id:
            raise _business("A customer cannot be its own parent or the sub-customer of one of "
                            "its sub-customers", "ParentRef")
        up = (ancestor.get("ParentRef") or {}).get("value")
        ancestor = company.tables["Customer"].get(str(up)) if up else None
    level = int(parent.get("Level", 0)) + 1
    depth = _depth_below(company, own_id) if own_id else 0
    if level + depth > MAX_LEVEL:
        raise _business(f"Sub-customers can be nested only {MAX_LEVEL} levels below a customer",
                        "ParentRef")
    currency = parent.get("CurrencyRef")
    if record.get("CurrencyRef") and currency and \
            record["CurrencyRef"].get("value") != currency.get("value"):
        raise _business("A sub-customer must use the currency of its parent customer", "CurrencyRef")
    if currency:
        record["CurrencyRef"] = dict(currency)
    record["ParentRef"] = {"value": parent["Id"]}
    record["Job"] = True
    record["BillWithParent"] = bool(record.get("BillWithParent", False))
    record["Level"] = level
    record["FullyQualifiedName"] = f"{parent['FullyQualifiedName']}:{record['DisplayName']}"


def _depth_below(company: Company, customer_id: str) -> int:
    """How many levels of sub-customers hang below ``customer_id``."""
    kids = children(company, customer_id)
    return 1 + max(_depth_below(company, k["Id"]) for k in kids) if kids else 0


def rename_descendants(company: Company, record: dict[str, Any]) -> None:
    """After a customer's name or parent changed: its descendants' names and levels follow."""
    for child in children(company, record["Id"]):
        fqn = f"{record['FullyQualifiedName']}:{child['DisplayName']}"
        level = int(record.get("Level", 0)) + 1
        if child.get("FullyQualifiedName") != fqn or child.get("Level") != level:
            child["FullyQualifiedName"] = fqn
            child["Level"] = level
            company.reindex("Customer", child)
            rename_descendants(company, child)


def customer_changed(company: Company, record: dict[str, Any], before: dict[str, Any]) -> None:
    """After a customer's update: its descendants' names follow, and a customer moved to another
    parent takes its balance from the old parent's ``BalanceWithJobs`` to the new one's."""
    rename_descendants(company, record)
    was = (before.get("ParentRef") or {}).get("value")
    now = (record.get("ParentRef") or {}).get("value")
    if was != now:
        if was:
            _rebalance(company, str(was))
        _rebalance(company, record["Id"])


def _own_balance(company: Company, customer_id: str) -> Decimal:
    invoices = company.tables["Invoice"]
    rows = invoices.lookup("CustomerRef", [customer_id.lower()]) if isinstance(invoices, Table) \
        else [i for i in invoices.values() if (i.get("CustomerRef") or {}).get("value") == customer_id]
    return sum((Decimal(str(i.get("Balance", ZERO))) for i in rows), ZERO)


def _rebalance(company: Company, customer_id: str) -> None:
    """One customer's balances, then its ancestors' ``BalanceWithJobs``."""
    customer = company.tables["Customer"].get(str(customer_id))
    own = True
    while customer is not None:
        if own:
            customer["Balance"] = _own_balance(company, customer["Id"])
            own = False
        customer["BalanceWithJobs"] = Decimal(str(customer.get("Balance", ZERO))) + sum(
            (Decimal(str(k.get("BalanceWithJobs", ZERO))) for k in children(company, customer["Id"])),
            ZERO)
        company.reindex("Customer", customer)
        up = (customer.get("ParentRef") or {}).get("value")
        customer = company.tables["Customer"].get(str(up)) if up else None


def invoice_changed(company: Company, invoice: dict[str, Any] | None,
                    before: dict[str, Any] | None = None) -> None:
    """An invoice was made, changed, paid, voided or deleted: its customer's balances (and those
    of the customer it had before) follow."""
    ids = {str((doc.get("CustomerRef") or {}).get("value")) for doc in (invoice, before)
           if doc and (doc.get("CustomerRef") or {}).get("value")}
    for customer_id in sorted(ids):
        _rebalance(company, customer_id)
