"""``quickbooks.match-or-create`` and ``quickbooks.find-or-create`` for Customers and Items.

Which existing record a Salesforce record is follows the matching rules of
:mod:`connectors.quickbooks.matching` (stored link, then the configured rules, never a record
linked to another one). Only then is a record created, with a ``requestid`` derived from the
idempotency key (or the match value) so two racing creates of one name are the same request, sent
by :func:`connectors.quickbooks.creates.create_record` (a lost answer is looked up by name, not sent
again blindly). If QuickBooks still answers 6240 (duplicate name), whoever holds the name is looked
up: a free customer created meanwhile by a racing execution is the one; a Vendor, an Employee or a
record linked elsewhere makes the new record take the next name of the disambiguation template.

Both operations are their own dry run: the lookups happen, a create or reactivation is told
(``ctx.would_write``) instead of sent, and nothing is claimed or remembered in the store.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import anyio

from connectors.quickbooks.creates import create_record
from connectors.quickbooks.errors import quickbooks_error
from connectors.quickbooks.matching import (
    OWNER_NAMESPACE,
    Decision,
    NameSlots,
    RowCache,
    candidates_for,
    field_value,
    label,
    parse_rules,
    reactivated,
    remember_owner,
    remembered_owner,
)
from connectors.quickbooks.query import quote
from connectors.quickbooks.steps import step_client
from connectors.quickbooks.writes import once, writable
from runtime import DRY_RUN_ID, OperationContext, SpliceError

__all__ = ["XREF_NAMESPACE", "decide", "find_or_create", "match_or_create"]

#: ``{realm}:{entity}:{external key}`` -> ``{"id": ...}``.
XREF_NAMESPACE = "quickbooks-xref"
NAME_FIELD = {"Customer": "DisplayName", "Item": "Name"}
_ATTEMPTS = 5
_NAME_HOLDERS = {"Customer": ("Vendor", "Employee")}


class _Matcher:
    """One match-or-create: the parameters read once, and the candidates seen so far."""

    def __init__(self, ctx: OperationContext, params: dict[str, Any],
                 links: Mapping[str, dict[str, Any] | None] | None = None) -> None:
        client = step_client(ctx)
        #: Linked records read beforehand (a batch reads them in one query): Id -> record, or
        #: None for one that does not exist; an Id not in it is read here.
        self.links = links or {}
        self.ctx, self.client, self.params = ctx, client, params
        self.entity = str(params["entity"])  # Customer or Item: the runtime checks the enum
        record = params.get("record") if params.get("record") is not None else ctx.message.payload
        if not isinstance(record, dict):
            raise quickbooks_error("VALIDATION", "the record to find or create must be an object")
        self.record: dict[str, Any] = record
        self.name_field = NAME_FIELD[self.entity]
        self.noun = self.entity.lower()
        rules = parse_rules(params.get("match-rules"))
        self.rules = rules or [(str(params.get("match-by") or self.name_field),)]
        external = params.get("external-key")
        self.owner_key = str(external) if external not in (None, "") else None
        self.xref_key = f"{client.realm_id}:{self.entity}:{external}" if self.owner_key else None
        self.elsewhere = {str(v) for v in params.get("linked-elsewhere") or [] if v not in (None, "")}
        self.distinct_by = parse_rules(params.get("distinct-by"))
        self.exclusive = params.get("exclusive") is not False
        base = record.get(self.name_field)
        self.slots = NameSlots(str(base or ""), params.get("name-template"),
                               params.get("template-values") or {})
        self.candidates: list[dict[str, Any]] = []
        self.cache = RowCache(client)

    # ------------------------------------------------------------------ lookups

    async def linked(self) -> dict[str, Any] | None:
        """The record the stored link names: the source record's own, else the remembered one."""
        ids = [params_link] if (params_link := self.params.get("link")) not in (None, "") else []
        if self.xref_key:
            known = await self.ctx.store.get(XREF_NAMESPACE, self.xref_key)
            if known:
                ids.append(known["id"])
        for record_id in ids:
            if str(record_id) in self.links:
                known = self.links[str(record_id)]
                if known is not None:
                    return copy.deepcopy(known)
                continue  # does not exist: as a read's NOT_FOUND
            try:
                return await self.client.read(self.entity, str(record_id))
            except SpliceError as exc:
                if exc.error_type != "QUICKBOOKS:NOT_FOUND":
                    raise
        return None

    async def taken(self, row: dict[str, Any]) -> str | None:
        """Why ``row`` cannot be this record's (linked to another, a different product), or None."""
        if str(row["Id"]) in self.elsewhere:
            return "linked to another record"
        if self.exclusive:
            owner = await remembered_owner(self.ctx, self.client.realm_id, self.entity,
                                           str(row["Id"]))
            if owner is not None and owner != self.owner_key:
                return "linked to another record"
        for rule in self.distinct_by:
            for path in rule:
                ours, theirs = field_value(self.record, path), field_value(row, path)
                if ours not in (None, "") and theirs not in (None, "") and \
                        str(ours).strip().casefold() != str(theirs).strip().casefold():
                    return f"different {label((path,))}"
        return None

    async def claim(self, row: dict[str, Any]) -> bool:
        """Make ``row`` this external key's, atomically: two executions of two accounts that both
        found (or one created and one found) the same record cannot both link it. A dry run only
        looks: whether it is free or already this key's."""
        if not (self.exclusive and self.owner_key):
            return True
        if self.ctx.dry_run:
            owner = await remembered_owner(self.ctx, self.client.realm_id, self.entity,
                                           str(row["Id"]))
            return owner in (None, self.owner_key)
        key = f"{self.client.realm_id}:{self.entity}:{row['Id']}"
        if await self.ctx.store.put_if_absent(OWNER_NAMESPACE, key, {"key": self.owner_key}):
            return True
        owner = await remembered_owner(self.ctx, self.client.realm_id, self.entity, str(row["Id"]))
        return owner == self.owner_key

    async def reactivated(self, row: dict[str, Any]) -> dict[str, Any]:
        """An inactive match made active again; in a dry run, told instead."""
        if self.ctx.dry_run and row.get("Active") is False:
            self.ctx.would_write("update", {"entity": self.entity, "id": row["Id"]},
                                 {"Id": row["Id"], "SyncToken": row["SyncToken"], "Active": True,
                                  "sparse": True})
            return {**row, "Active": True}
        return await reactivated(self.client, self.entity, row)

    def seen(self, row: dict[str, Any], rule: str, status: str) -> None:
        self.candidates.append({"Id": str(row["Id"]), "name": row.get(self.name_field),
                                "rule": rule, "status": status})

    def described(self) -> str:
        """The candidates in words: ``customer 14 'Acme Corp' (linked to another record)``."""
        return ", ".join(f"{self.noun} {c['Id']} '{c['name']}' ({c['status']})"
                         for c in self.candidates)

    async def holder(self, name: str) -> tuple[dict[str, Any] | None, str | None]:
        """Who holds ``name``: a row of this entity, or a Vendor/Employee (described); neither
        when the name is free."""
        for entity in (self.entity, *_NAME_HOLDERS.get(self.entity, ())):
            field = "DisplayName" if entity in ("Customer", "Vendor", "Employee") else "Name"
            sql = f"select * from {entity} where {field} = {quote(name)} and Active in (true, false)"
            rows = (await self.client.query_page(sql)).get(entity) or []
            if rows:
                if entity == self.entity:
                    return rows[0], None
                return None, f"a QuickBooks {entity} ({rows[0]['Id']})"
        return None, None

    # ------------------------------------------------------------------ the decision

    async def decide(self) -> Decision:
        found = await self.linked()
        if found is not None:
            name = found.get(self.name_field)
            if not self.slots.base or (isinstance(name, str) and self.slots.is_variant(name)):
                return Decision("linked", "stored link", found, name, [], "")
            if self.params.get("rename"):
                return await self.renamed(found)
            return Decision("linked", "stored link", found, self.slots.base, [], "")
        ambiguous: list[str] = []
        for rule in self.rules:
            try:
                rows = await candidates_for(self.cache, self.entity, self.record, rule)
            except ValueError as exc:
                raise quickbooks_error("VALIDATION", str(exc)) from None
            if not rows:
                continue
            words = label(rule)
            free = []
            for row in rows:
                why = await self.taken(row)
                self.seen(row, words, why or "free")
                if why is None:
                    free.append(row)
            if len(free) == 1 and not await self.claim(free[0]):
                # Another record's execution took it between our look and our claim.
                self.candidates[-len(rows) + rows.index(free[0])]["status"] = "linked to another record"
                free = []
            if len(free) == 1:
                row = await self.reactivated(free[0])
                only = "the only candidate" if len(rows) == 1 else "the only free candidate"
                return Decision("linked", words, row, row.get(self.name_field), self.candidates,
                                only)
            ambiguous.append(words)
            for c in self.candidates[-len(rows):]:
                if c["status"] == "free":
                    c["status"] = "one of several"
        if not self.slots.base:
            raise quickbooks_error("VALIDATION", f"the record has no {self.name_field} to create it with")
        if ambiguous:
            reason = f"{' / '.join(ambiguous)} matches {self.described()}"
            if self.params.get("on-ambiguous") == "hold":
                return Decision("held", ambiguous[0], None, None, self.candidates,
                                f"{reason}; nothing created")
            base_taken = any(str(c["name"]).casefold() == self.slots.base.casefold()
                             for c in self.candidates)
            return await self.create(reason, skip_base=base_taken)
        tried = ", ".join(label(r) for r in self.rules)
        return await self.create(f"no match by {tried}", skip_base=False)

    async def renamed(self, found: dict[str, Any]) -> Decision:
        """The linked record is to take the source record's new name: that name, or, when another
        record holds it (a Vendor, an Employee, another customer), the first free alternative."""
        taken = ""
        for name in [self.slots.base, *self.slots.alternatives()]:
            row, other = await self.holder(name)
            if row is not None and str(row["Id"]) != str(found["Id"]):
                other = f"{self.noun} {row['Id']}"
            if other is None:  # free, or the linked record's own name in another case
                reason = f"renamed to '{name}': {taken}" if taken else ""
                return Decision("linked", "stored link", found, name, [], reason)
            taken = taken or f"'{name}' is taken by {other}"
        raise quickbooks_error("DUPLICATE_NAME", f"no free name for '{self.slots.base}'",
                               details={"code": "6240", "element": self.name_field})

    async def create(self, reason: str, *, skip_base: bool) -> Decision:
        """Create under the base name, else the template's; 6240 moves on to the next name."""
        names = ([] if skip_base else [self.slots.base]) + self.slots.alternatives()
        key = self.params.get("idempotency-key") or \
            f"foc:{self.entity}:{'+'.join(self.rules[0])}:{field_value(self.record, self.rules[0][0])}"
        why = reason
        for index, name in enumerate(names):
            body = writable({**self.record, self.name_field: name}, self.entity)
            body.pop("Id", None)
            name_key = str(key) if name == self.slots.base else f"{key}:{name}"
            try:
                created = await self._create_once(name_key, body)
            except SpliceError as exc:
                if exc.error_type != "QUICKBOOKS:DUPLICATE_NAME":
                    raise
                row, holder = await self.holder(name)
                other = holder or "another record"
                if row is not None:
                    taken = await self.taken(row)
                    if taken is None and index == 0 and not skip_base:
                        if await self.claim(row):
                            # A racing execution for this record created it between our lookup
                            # and our create.
                            row = await self.reactivated(row)
                            self.seen(row, label((self.name_field,)), "created concurrently")
                            return Decision("linked", label((self.name_field,)), row, name,
                                            self.candidates, "created concurrently")
                        taken = "linked to another record"
                    self.seen(row, label((self.name_field,)), taken or "holds the name")
                    if self.params.get("on-ambiguous") == "hold" and taken:
                        return Decision("held", label((self.name_field,)), None, None,
                                        self.candidates,
                                        f"'{name}' is {self.noun} {row['Id']}, {taken}; nothing created")
                    other = f"{self.noun} {row['Id']} ({taken or 'holds the name'})"
                if name == self.slots.base:
                    why = f"'{name}' is taken by {other}"
                continue
            if not await self.claim(created):
                # Matched by another account's execution before we could claim what we made:
                # it is theirs now, and this record takes the next name.
                self.seen(created, label((self.name_field,)), "linked to another record")
                why = f"'{name}' is {self.noun} {created['Id']}, linked to another record"
                continue
            rule = "none" if name == self.slots.base else "disambiguation"
            return Decision("created", rule, created, name, self.candidates, why)
        raise quickbooks_error("DUPLICATE_NAME", f"no free name for '{self.slots.base}' after "
                               f"{len(names)} tries: {', '.join(names)}",
                               details={"code": "6240", "element": self.name_field})

    async def _create_once(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.ctx.dry_run:  # told, not sent: a stand-in with a placeholder Id
            self.ctx.would_write("create", {"entity": self.entity}, body)
            return {**body, "Id": DRY_RUN_ID, "SyncToken": "0"}
        for attempt in range(_ATTEMPTS):
            try:
                created: dict[str, Any] = await once(
                    self.ctx, self.client.realm_id, f"create:{self.entity}:{key}",
                    lambda: create_record(self.ctx, self.client, self.entity, body, key))
                return created
            except SpliceError as exc:
                if exc.error_type == "QUICKBOOKS:IN_PROGRESS" and attempt + 1 < _ATTEMPTS:
                    await anyio.sleep(0.1 * (attempt + 1))  # a peer is creating it: look again
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def remember(self, decision: Decision) -> None:
        """The link both ways: external key -> id, and id -> owner (never in a dry run)."""
        if decision.record is None or not self.owner_key or self.ctx.dry_run:
            return
        record_id = str(decision.record["Id"])
        assert self.xref_key is not None
        await self.ctx.store.put(XREF_NAMESPACE, self.xref_key, {"id": record_id})
        if self.exclusive:
            await remember_owner(self.ctx, self.client.realm_id, self.entity, record_id,
                                 self.owner_key)


async def decide(ctx: OperationContext, params: dict[str, Any],
                 links: Mapping[str, dict[str, Any] | None] | None = None) -> tuple[_Matcher, Decision]:
    """One record's decision, remembered (``links``: linked records read beforehand)."""
    matcher = _Matcher(ctx, params, links)
    decision = await matcher.decide()
    await matcher.remember(decision)
    ctx.annotate(entity=matcher.entity, match_action=decision.action, match_rule=decision.rule)
    if decision.record is not None:
        ctx.annotate(record_id=str(decision.record["Id"]))
    return matcher, decision


async def match_or_create(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """The matching decision for ``record``: linked, created (under which name) or held, and why."""
    matcher, decision = await decide(ctx, params)
    return decision.as_output(matcher.entity)


async def find_or_create(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """The existing record matching ``record``, or a new one (ambiguity: a distinct new one)."""
    _, decision = await decide(ctx, {**params, "on-ambiguous": "create"})
    assert decision.record is not None
    return decision.record
