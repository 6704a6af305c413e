"""Matching rules: which existing Customer or Item a record is, and why; never one taken by another.

A record (an Account as a Customer, a product as an Item) is matched by the first of these that
gives an answer:

1. its stored link: the QuickBooks id the source record remembers (``link``), or the one this
   runtime remembered for its external key;
2. the rules, in order, each a list of field paths that must all be equal (``PrimaryEmailAddr.Address``;
   ``DisplayName + BillAddr.PostalCode``; ``DisplayName``). A rule picks a candidate only when it
   finds exactly one that is free: not linked to another record (``linked-elsewhere``, or the
   owner this runtime remembered) and not distinct from the record by a ``distinct-by`` field
   (two products with different SKUs are two items, whatever their names).

No rule with candidates: a new record under its own name. Candidates but none free, or several:
the match is *ambiguous*, and the policy decides: ``create`` a distinct record under a name from
the template (``{Name} ({BillingCity})`` rendered from ``template-values``, then numbered), or
``hold`` it for a person. A name QuickBooks refuses because a Vendor or Employee (or a customer
linked elsewhere) holds it (6240) gets the template's name too. Every answer is a
:class:`Decision`: what was done, by which rule, with which candidates, and a short note for the
record's sync note field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.query import quote
from connectors.quickbooks.writes import apply_update
from runtime import OperationContext

__all__ = ["NAME_LIMIT", "OWNER_NAMESPACE", "Decision", "NameSlots", "RowCache", "candidates_for", "field_value",
           "label", "parse_rules", "reactivated", "remember_owner", "remembered_owner"]

#: ``{realm}:{entity}:{QuickBooks id}`` -> ``{"key": external key}``: who a record is linked to.
OWNER_NAMESPACE = "quickbooks-xref-owner"
#: QuickBooks' longest name (DisplayName of the flows' customers, Name of items).
NAME_LIMIT = 100
#: Words for field paths in notes; other paths are shown as they are.
_LABELS = {"PrimaryEmailAddr.Address": "e-mail", "DisplayName": "name", "Name": "name",
           "BillAddr.PostalCode": "billing postal code", "BillAddr.City": "billing city",
           "CompanyName": "company name", "Sku": "SKU", "link": "stored link"}
#: Fields QuickBooks can filter on; a rule is queried by its first such field, the rest compared here.
_QUERYABLE = {"Customer": ("DisplayName", "PrimaryEmailAddr", "CompanyName", "GivenName",
                           "FamilyName"),
              "Item": ("Name", "Sku")}
_FORBIDDEN = re.compile(r"\s*:\s*")
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.]+)\}")


def label(rule: Sequence[str]) -> str:
    """A rule in words: ``name + billing postal code``."""
    return " + ".join(_LABELS.get(path, path) for path in rule)


def parse_rules(value: Any) -> list[tuple[str, ...]]:
    """Rules from a list (of paths or ``a+b`` strings, or of lists) or a comma-separated string."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    rules = []
    for item in items:
        parts = item if isinstance(item, list | tuple) else str(item).split("+")
        rule = tuple(str(p).strip() for p in parts if str(p).strip())
        if rule:
            rules.append(rule)
    return rules


def field_value(record: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``BillAddr.PostalCode``), or None."""
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().casefold() == b.strip().casefold()
    return bool(a == b)


@dataclass
class Decision:
    """What matching did with one record, and why (the operation's output)."""

    action: str  #: ``linked``, ``created`` or ``held``
    rule: str  #: the rule that decided, in words (``stored link``, ``e-mail``, ``none``)
    record: dict[str, Any] | None = None
    name: str | None = None  #: the name the record goes by in QuickBooks
    candidates: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""

    def note(self, entity: str) -> str:
        """One short line for the record's sync note field."""
        noun = entity.lower()
        rid = (self.record or {}).get("Id")
        if self.action == "held":
            return f"Held for review: {self.reason}"[:255]
        if self.action == "linked":
            why = f": {self.reason}" if self.reason else ""
            return f"QuickBooks {noun} {rid} matched by {self.rule}{why}"[:255]
        return f"QuickBooks {noun} {rid} created as '{self.name}': {self.reason}"[:255]

    def as_output(self, entity: str) -> dict[str, Any]:
        """The decision as the operation returns it."""
        return {"action": self.action, "rule": self.rule, "name": self.name,
                "candidates": self.candidates, "reason": self.reason, "note": self.note(entity),
                "record": self.record}


async def remembered_owner(ctx: OperationContext, realm: str, entity: str, record_id: str) -> str | None:
    """The external key this runtime linked a QuickBooks record to, if any."""
    found = await ctx.store.get(OWNER_NAMESPACE, f"{realm}:{entity}:{record_id}")
    return str(found["key"]) if found else None


async def remember_owner(ctx: OperationContext, realm: str, entity: str, record_id: str,
                         key: str) -> None:
    """Remember that a QuickBooks record belongs to ``key`` (checked before anyone else links it)."""
    await ctx.store.put(OWNER_NAMESPACE, f"{realm}:{entity}:{record_id}", {"key": key})


class RowCache:
    """Query answers of one decision: rules sharing their first field (``DisplayName`` alone, and
    with the postal code) cost one call."""

    def __init__(self, client: QuickBooksClient) -> None:
        self.client = client
        self.answers: dict[str, list[dict[str, Any]]] = {}

    async def rows(self, entity: str, sql: str) -> list[dict[str, Any]]:
        if sql not in self.answers:
            self.answers[sql] = list((await self.client.query_page(sql)).get(entity) or [])
        return self.answers[sql]


async def candidates_for(cache: RowCache, entity: str, record: Mapping[str, Any],
                         rule: Sequence[str]) -> list[dict[str, Any]] | None:
    """The rows (inactive ones too) equal to ``record`` on every field of ``rule``; None when the
    record lacks one of the fields (the rule does not apply)."""
    values = {path: field_value(record, path) for path in rule}
    if any(v in (None, "") for v in values.values()):
        return None
    queryable = _QUERYABLE.get(entity, ())
    first = next((p for p in rule if p.split(".")[0] in queryable), None)
    if first is None:
        raise ValueError(f"a {entity} rule needs a field QuickBooks can filter on "
                         f"({', '.join(queryable)}): {' + '.join(rule)}")
    sql = (f"select * from {entity} where {first.split('.')[0]} = {quote(values[first])}"
           " and Active in (true, false) MAXRESULTS 50")
    rows = await cache.rows(entity, sql)
    return [row for row in rows if all(_same(field_value(row, p), v) for p, v in values.items())]


async def reactivated(client: QuickBooksClient, entity: str, row: dict[str, Any]) -> dict[str, Any]:
    """An inactive match made active again (an inactive name-list row still holds its name)."""
    if row.get("Active") is False:
        return await apply_update(client, entity, {"Id": row["Id"], "SyncToken": row["SyncToken"],
                                                   "Active": True})
    return row


class NameSlots:
    """The names a new record may take, in order: its own, the template's, then numbered.

    ``{Field}`` placeholders are filled from ``values`` (the source record); a template with an
    empty placeholder, one longer than QuickBooks allows, or one that gives the record's own name,
    is skipped.
    """

    def __init__(self, base: str, template: str | None, values: Mapping[str, Any]) -> None:
        self.base = base
        self.template = template or ""
        self.values = values

    def rendered(self) -> str | None:
        """The template filled in, or None when a placeholder has no value."""
        if not self.template:
            return None
        missing = False

        def fill(match: re.Match[str]) -> str:
            nonlocal missing
            value = field_value(self.values, match.group(1))
            if value in (None, ""):
                missing = True
                return ""
            return str(value)

        name = " ".join(_FORBIDDEN.sub(" - ", _PLACEHOLDER.sub(fill, self.template)).split())
        if missing or not name or len(name) > NAME_LIMIT or name.casefold() == self.base.casefold():
            return None  # a cut-off template name would say less than a numbered one
        return name

    def alternatives(self, limit: int = 8) -> list[str]:
        """Names other than the base one, best first."""
        out = []
        rendered = self.rendered()
        if rendered:
            out.append(rendered)
        for n in range(2, 2 + limit):
            suffix = f" ({n})"
            out.append(self.base[:NAME_LIMIT - len(suffix)].rstrip() + suffix)
        return out

    def is_variant(self, name: str) -> bool:
        """Whether ``name`` is the base name or one the disambiguation would make from it (with
        whatever the template's other fields held then): such a name is kept, not "corrected"."""
        if _same(name, self.base):
            return True
        if re.fullmatch(re.escape(self.base[:NAME_LIMIT - 6].rstrip()) + r" \(\d+\)", name):
            return True
        if not self.template:
            return False
        parts = _PLACEHOLDER.split(self.template)  # literal, field, literal, field, ...
        pattern = "".join(".+" if i % 2 else re.escape(p) for i, p in enumerate(parts))
        return name.casefold().startswith(self.base.casefold()) and bool(
            re.fullmatch(pattern, name, flags=re.IGNORECASE))
