"""One emulated company (realm): its entities, ids, SyncTokens, MetaData and change log.

Writes follow QuickBooks: ids are numeric strings, every change bumps ``SyncToken`` and
``MetaData.LastUpdatedTime``, an update with an old SyncToken fails with 5010, name-list names are
unique (6240; a customer's DisplayName across customers, vendors and employees, inactive ones too),
name lists are made inactive rather than deleted, and a deleted transaction leaves a trace for CDC.
Input is taken the way python-quickbooks sends it: empty strings mean "no value", read-only fields
are ignored. Invoice and Payment rules live in :mod:`.transactions`, CreditMemo and RefundReceipt
rules in :mod:`.creditmemo`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from connectors.quickbooks.emulator import creditmemo, currency, jobs, salesforms, transactions
from connectors.quickbooks.emulator.faults import Fault
from connectors.quickbooks.emulator.headers import HEADER_LISTS, complete_list_entry
from connectors.quickbooks.emulator.table import Table
from connectors.quickbooks.emulator.validation import check_record

__all__ = ["ENTITIES", "NAME_LISTS", "Company", "company_time", "not_found"]

#: URL segment -> entity name.
ENTITIES = {name.lower(): name for name in (
    "Customer", "Vendor", "Employee", "Item", "Invoice", "Payment", "Account", "TaxCode", "TaxRate",
    "Term", "CompanyInfo", "Preferences", "Class", "Department", "CreditMemo", "RefundReceipt",
    "PaymentMethod", "SalesReceipt", "Estimate")}
#: Read-only here: seeded with the company, never created through the API.
READ_ONLY_ENTITIES = frozenset({"TaxCode", "TaxRate", "CompanyInfo", "Preferences"})
#: Entities that are made inactive instead of deleted, and whose queries hide inactive rows.
NAME_LISTS = frozenset({"Customer", "Vendor", "Employee", "Item", "Account", "TaxCode", "TaxRate",
                        "Term", "Class", "Department", "PaymentMethod"})
#: Transactions that are voided (kept with zero amounts) rather than only deleted.
VOIDABLE = frozenset({"Invoice", "Payment", "SalesReceipt"})
READ_ONLY = frozenset({"Id", "SyncToken", "MetaData", "domain", "sparse", "time", "status",
                       "FullyQualifiedName", "Level", "BalanceWithJobs", "IsProject", "HomeBalance",
                       "HomeTotalAmt", "UnappliedAmt", "CurrentBalance",
                       "CurrentBalanceWithSubAccounts", "RemainingCredit"})
_NAME_FIELD = {"Customer": "DisplayName", "Vendor": "DisplayName", "Employee": "DisplayName",
               "Item": "Name", "Account": "Name", "Term": "Name", "TaxCode": "Name",
               "Class": "FullyQualifiedName", "Department": "FullyQualifiedName",
               "PaymentMethod": "Name"}
_PEOPLE = ("Customer", "Vendor", "Employee")
PACIFIC = timezone(timedelta(hours=-7))


def company_time(moment: datetime) -> str:
    """A timestamp the way QuickBooks writes it: seconds, company (Pacific) offset."""
    return moment.astimezone(PACIFIC).replace(microsecond=0).isoformat()


def not_found(entity: str, entity_id: str) -> Fault:
    """The 610 fault for a missing object."""
    return Fault("610", "Object Not Found",
                 f"Object Not Found : Something you're trying to use has been made inactive. "
                 f"Check the fields with accounts, customers, items, vendors or employees. "
                 f"({entity} {entity_id})")


def clean(value: Any) -> Any:
    """Drop empty strings and nulls (python-quickbooks sends ``""`` for every unset field)."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items() if v is not None and v != ""}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def required(record: dict[str, Any], name: str, entity: str) -> Any:
    """A required field's value, or the 2020 fault naming it."""
    if record.get(name) in (None, "", [], {}):
        raise Fault("2020", "Required param missing, need to supply the required value for the API",
                    f"Required parameter {name} is missing in the request", element=name)
    return record[name]


class Company:
    """Entities of one realm, and what happened to them (for CDC and webhooks)."""

    def __init__(self, realm_id: str, *, clock: Callable[[], datetime],
                 on_change: Callable[[str, str, str, str, str], None] | None = None) -> None:
        self.realm_id = realm_id
        self.clock = clock
        self.on_change = on_change
        #: Entity -> its rows by Id; rows changed in place are handed to :meth:`touch`, which
        #: keeps the table's indexes current.
        self.tables: dict[str, Table] = {name: Table() for name in ENTITIES.values()}
        self.deleted: dict[tuple[str, str], str] = {}
        self.next_id = 1
        self.next_doc_number = 1001
        #: requestid -> (status, body) of the first answer.
        self.requests: dict[str, tuple[int, bytes]] = {}
        #: Currency code -> home units per one unit (multi-currency companies; :mod:`.currency`).
        self.exchange_rates: dict[str, Decimal] = {}

    # ------------------------------------------------------------------ helpers

    def now(self) -> str:
        """The company's current time."""
        return company_time(self.clock())

    def get(self, entity: str, entity_id: Any) -> dict[str, Any]:
        """The stored record (not a copy), or 610."""
        record = self.tables[entity].get(str(entity_id))
        if record is None:
            raise not_found(entity, str(entity_id))
        return record

    def ref(self, entity: str, ref: Any, element: str) -> dict[str, Any]:
        """Resolve a ``{"value": id}`` reference to an active record, or 2500."""
        value = ref.get("value") if isinstance(ref, dict) else ref
        record = self.tables[entity].get(str(value))
        if record is None or record.get("Active") is False:
            raise Fault("2500", "Invalid Reference Id",
                        f"Invalid Reference Id : {entity} assigned to this transaction has been "
                        f"deleted or is inactive ({value})", element=element)
        return record

    def _changed(self, entity: str, record: dict[str, Any], operation: str) -> None:
        if entity == "Invoice":
            jobs.invoice_changed(self, record)
        if self.on_change is not None:
            self.on_change(self.realm_id, entity, record["Id"], operation,
                           record["MetaData"]["LastUpdatedTime"])

    def _stamp(self, record: dict[str, Any], *, created: bool) -> None:
        now = self.now()
        meta = record.setdefault("MetaData", {})
        if created:
            meta["CreateTime"] = now
        meta["LastUpdatedTime"] = now

    def touch(self, entity: str, record: dict[str, Any], operation: str = "Update") -> None:
        """Record a server-side change (SyncToken and LastUpdatedTime move on)."""
        record["SyncToken"] = str(int(record["SyncToken"]) + 1)
        self._stamp(record, created=False)
        self.reindex(entity, record)
        self._changed(entity, record, operation)

    def reindex(self, entity: str, record: dict[str, Any]) -> None:
        """A stored record changed in place: its table's indexes follow."""
        table = self.tables[entity]
        if isinstance(table, Table):
            table.reindex(str(record["Id"]))

    def _check_name(self, entity: str, record: dict[str, Any], own_id: str | None) -> None:
        field = _NAME_FIELD.get(entity)
        if field is None:
            return
        name = str(record.get(field, "")).strip().lower()
        scope = _PEOPLE if entity in _PEOPLE else (entity,)
        for table in scope:
            for other in self.tables[table].values():
                if other["Id"] != own_id or table != entity:
                    if str(other.get(_NAME_FIELD[table], "")).strip().lower() == name:
                        raise Fault("6240", "Duplicate Name Exists Error",
                                    "The name supplied already exists. : Another customer, vendor "
                                    "or employee is already using this name. Please use a "
                                    "different name." if entity in _PEOPLE else
                                    f"The name supplied already exists. : {name}",
                                    element=field)

    # ------------------------------------------------------------------ writes

    def create(self, entity: str, body: dict[str, Any], options: dict[str, str]) -> dict[str, Any]:
        """A new record from a create body."""
        if entity in READ_ONLY_ENTITIES:
            raise Fault("500", "Unsupported Operation",
                        f"Operation Create is not supported for {entity}")
        record = {k: v for k, v in clean(body).items() if k not in READ_ONLY}
        record = self._complete(entity, record, options, existing=None)
        record.update({"Id": str(self.next_id), "SyncToken": "0", "domain": "QBO", "sparse": False})
        self._stamp(record, created=True)
        self.next_id += 1
        self.tables[entity][record["Id"]] = record
        transactions.after_save(self, entity, record, None)
        creditmemo.after_save(self, entity, record, None)
        self._changed(entity, record, "Create")
        return record

    def update(self, entity: str, body: dict[str, Any], options: dict[str, str]) -> dict[str, Any]:
        """Full or sparse update with the SyncToken check."""
        body = clean(body)
        entity_id = str(required(body, "Id", entity))
        current = self.get(entity, entity_id)
        if str(body.get("SyncToken")) != current["SyncToken"]:
            raise Fault("5010", "Stale Object Error",
                        "Stale Object Error : You and Someone else were working on this at the same "
                        "time. Someone else finished before you did, so your work was not saved.")
        changes = {k: v for k, v in body.items() if k not in READ_ONLY}
        if options.get("include") == "void":
            return self.void(entity, body)
        before = copy.deepcopy(current)
        if str(body.get("sparse")).lower() == "true":
            merged = {**{k: v for k, v in current.items() if k not in READ_ONLY}, **changes}
        else:
            keep = ("Balance", "TotalAmt", "LinkedTxn") if entity in ("Invoice", "Estimate") else ()
            merged = {**changes, **{k: current[k] for k in keep if k in current}}
        merged = self._complete(entity, merged, options, existing=current)
        for key in [k for k in current if k not in READ_ONLY]:
            current.pop(key)
        current.update(merged)
        transactions.after_save(self, entity, current, before)
        creditmemo.after_save(self, entity, current, before)
        self.touch(entity, current)
        if entity == "Invoice":
            jobs.invoice_changed(self, current, before)
        elif entity == "Customer":
            jobs.customer_changed(self, current, before)
        return current

    def delete(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        """Delete a transaction (name lists are made inactive instead: 500 here)."""
        body = clean(body)
        entity_id = str(required(body, "Id", entity))
        current = self.get(entity, entity_id)
        if entity in NAME_LISTS:
            raise Fault("500", "Unsupported Operation",
                        f"Operation Delete is not supported for {entity}; set Active to false")
        if str(body.get("SyncToken")) != current["SyncToken"]:
            raise Fault("5010", "Stale Object Error", "Stale Object Error : the object changed")
        credits = creditmemo.before_delete(self, entity, current)
        transactions.before_delete(self, entity, current)
        del self.tables[entity][entity_id]
        creditmemo.rebalance(self, credits)
        if entity == "Invoice":
            jobs.invoice_changed(self, None, current)
        now = self.now()
        self.deleted[(entity, entity_id)] = now
        if self.on_change is not None:
            self.on_change(self.realm_id, entity, entity_id, "Delete", now)
        return {"status": "Deleted", "domain": "QBO", "Id": entity_id}

    def void(self, entity: str, body: dict[str, Any]) -> dict[str, Any]:
        """Void a transaction: kept, amounts zeroed, PrivateNote prefixed."""
        body = clean(body)
        current = self.get(entity, str(required(body, "Id", entity)))
        if entity not in VOIDABLE:
            raise Fault("500", "Unsupported Operation", f"Operation Void is not supported for {entity}")
        if str(body.get("SyncToken")) != current["SyncToken"]:
            raise Fault("5010", "Stale Object Error", "Stale Object Error : the object changed")
        credits = creditmemo.before_delete(self, entity, current)
        transactions.void(self, entity, current)
        creditmemo.rebalance(self, credits)
        self.touch(entity, current, "Void")
        return current

    def _complete(self, entity: str, record: dict[str, Any], options: dict[str, str],
                  existing: dict[str, Any] | None) -> dict[str, Any]:
        """Validate a record and add server-computed fields."""
        own_id = existing["Id"] if existing else None
        check_record(entity, record)
        if entity in _PEOPLE:
            if not record.get("DisplayName"):
                parts = [record.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName",
                                                  "Suffix")]
                name = " ".join(str(p) for p in parts if p)
                if not name:
                    required(record, "DisplayName", entity)
                record["DisplayName"] = name
            record.setdefault("Active", True)
            record.setdefault("PrintOnCheckName", record["DisplayName"])
            if entity == "Customer":
                currency.customer_currency(self, record, existing)
                transactions.customer_defaults(self, record, existing)
        elif entity in ("Item", "Account", "Term", "PaymentMethod"):
            required(record, "Name", entity)
            record.setdefault("Active", True)
            if entity == "Item":
                _item(self, record)
            elif entity == "Account":
                required(record, "AccountType", entity)
                record.setdefault("FullyQualifiedName", record["Name"])
                record.setdefault("CurrentBalance", Decimal("0"))
            elif entity == "PaymentMethod":
                record.setdefault("Type", "NON_CREDIT_CARD")
            else:
                record.setdefault("Type", "STANDARD")
                record.setdefault("DueDays", 30)
        elif entity in HEADER_LISTS:
            complete_list_entry(self, entity, record)
        elif entity == "Invoice":
            currency.transaction_currency(self, record)
            transactions.complete_invoice(self, record, options, existing)
            currency.home_amounts(self, record)
        elif entity == "Payment":
            currency.transaction_currency(self, record)
            transactions.complete_payment(self, record, existing)
            creditmemo.check_payment_credits(self, record, existing)
            currency.home_amounts(self, record)
        elif entity in ("CreditMemo", "RefundReceipt", "SalesReceipt", "Estimate"):
            # Every sales form is in its customer's currency, as an invoice is.
            currency.transaction_currency(self, record)
            if entity == "CreditMemo":
                creditmemo.complete_credit_memo(self, record, options, existing)
            elif entity == "RefundReceipt":
                creditmemo.complete_refund_receipt(self, record, options, existing)
            elif entity == "SalesReceipt":
                salesforms.complete_sales_receipt(self, record, options, existing)
            else:
                salesforms.complete_estimate(self, record, options, existing)
            currency.home_amounts(self, record)
        self._check_name(entity, record, own_id)
        return record


def _item(company: Company, record: dict[str, Any]) -> None:
    kind = required(record, "Type", "Item")
    if kind not in ("Service", "Inventory", "NonInventory"):
        raise Fault("2170", "Invalid Enumeration", f"Invalid Enumeration : {kind}", element="Type")
    if kind in ("Service", "Inventory"):
        required(record, "IncomeAccountRef", "Item")
    if record.get("IncomeAccountRef"):
        record["IncomeAccountRef"] = _named_ref(
            company.ref("Account", record["IncomeAccountRef"], "IncomeAccountRef"))
    record["FullyQualifiedName"] = record["Name"]
    record.setdefault("Taxable", False)
    record.setdefault("UnitPrice", Decimal("0"))
    record.setdefault("TrackQtyOnHand", False)


def _named_ref(target: dict[str, Any]) -> dict[str, Any]:
    name = target.get("DisplayName") or target.get("FullyQualifiedName") or target.get("Name")
    return {"value": target["Id"], "name": name}
