"""The emulated org's data: records, validation, derived fields, and the change-event log.

Every write (REST, collections, the control API) goes through :meth:`Org.create`,
:meth:`Org.update` or :meth:`Org.delete`, so validation, audit fields, roll-ups and Change Data
Capture events behave the same whichever door a record came in by.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

import anyio

from connectors.salesforce.emulator.derived import apply_derived, rollup
from connectors.salesforce.emulator.errors import ApiError
from connectors.salesforce.emulator.ids import Clock, IdFactory, format_datetime, parse_any_datetime
from connectors.salesforce.emulator.schema import FieldDef, ObjectDef, build_schemas, change_event_channel

__all__ = ["Org"]

_ID_RE = re.compile(r"^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$")
_SYSTEM_FIELDS = ("Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate",
                  "LastModifiedById", "SystemModstamp")


def _guess_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "double"
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return "date"
    return "string"


class Org:
    """One emulated org: schemas, records, ids, clock, CDC log and the integration user."""

    def __init__(self, *, api_version: str = "66.0", event_retention: int = 100_000) -> None:
        self.api_version = api_version
        self.schemas: dict[str, ObjectDef] = build_schemas()
        #: Active currencies when the org has multi-currency (the first is corporate); () if not.
        self.currencies: tuple[str, ...] = ()
        self._by_lower = {name.lower(): name for name in self.schemas}
        self.records: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.schemas}
        self.deleted: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.schemas}
        self.ids = IdFactory()
        self.clock = Clock()
        self.org_id = "00DRx0000000001EAA"
        self.events: list[dict[str, Any]] = []
        #: (object, field) -> lower-cased value -> ids, for unique and external id fields.
        self._keys: dict[tuple[str, str], dict[str, set[str]]] = {}
        self.event_retention = event_retention
        self._replay = itertools.count(1)
        self._commit = itertools.count(10_651_898_000)
        self._waiters: list[anyio.Event] = []
        self.user_id = self.create("User", {"Name": "Integration User", "Username": "integration@example.com",
                                            "Email": "integration@example.com"}, emit=False)["Id"]
        self.standard_pricebook = self.create("Pricebook2", {"Name": "Standard Price Book", "IsActive": True},
                                              emit=False, system={"IsStandard": True})["Id"]

    # -- lookups ------------------------------------------------------------------------------

    def schema(self, name: str) -> ObjectDef:
        """The object definition, or 404 NOT_FOUND like a REST path to an unknown sObject."""
        canonical = self._by_lower.get(name.lower())
        if canonical is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return self.schemas[canonical]

    def object_of(self, record_id: str) -> str | None:
        """Which object an id belongs to (by key prefix)."""
        for name, definition in self.schemas.items():
            if record_id.startswith(definition.prefix):
                return name
        return None

    def find(self, obj: str, record_id: str) -> dict[str, Any] | None:
        """A live record by 15- or 18-character id."""
        table = self.records[self.schema(obj).name]
        if len(record_id) == 15:
            record_id = next((k for k in table if k.startswith(record_id)), record_id)
        return table.get(record_id)

    def get(self, obj: str, record_id: str) -> dict[str, Any]:
        """A live record, or the REST error a wrong/deleted id gets."""
        if not _ID_RE.match(record_id):
            raise ApiError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not "
                                             f"accessible: {record_id}")
        record = self.find(obj, record_id)
        if record is None:
            if any(gone[:15] == record_id[:15] for gone in self.deleted[self.schema(obj).name]):
                raise ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return record

    def by_external_id(self, obj: str, field: str, value: Any) -> list[dict[str, Any]]:
        """Live records whose external id field matches ``value`` (case-insensitively)."""
        definition = self.schema(obj)
        fdef = definition.field(field)
        if fdef is None or not (fdef.external_id or fdef.name == "Id"):
            raise ApiError(404, "NOT_FOUND", f"Provided external ID field does not exist or is not "
                                             f"accessible: {field}")
        table = self.records[definition.name]
        if fdef.name == "Id":
            found = self.find(definition.name, str(value))
            return [found] if found else []
        ids = self._keys.get((definition.name, fdef.name), {}).get(str(value).lower(), set())
        return [table[i] for i in sorted(ids) if i in table]

    # -- writes -------------------------------------------------------------------------------

    def _coerce(self, definition: ObjectDef, fdef: FieldDef, value: Any) -> Any:
        if value is None:
            return None
        try:
            if fdef.type in ("date",):
                return date.fromisoformat(str(value)).isoformat()
            if fdef.type == "datetime":
                return format_datetime(parse_any_datetime(str(value)))
            if fdef.type == "boolean":
                if not isinstance(value, bool):
                    raise ValueError(value)
                return value
            if fdef.type in ("currency", "double", "percent"):
                if isinstance(value, bool):
                    raise ValueError(value)
                return float(value)
            if fdef.type == "int":
                return int(value)
            if fdef.type in ("reference", "id"):
                text = str(value)
                if not _ID_RE.match(text):
                    raise ApiError(400, "MALFORMED_ID", f"{fdef.name}: id value of incorrect type: {text}",
                                   [fdef.name])
                target = fdef.reference_to and self.find(fdef.reference_to, text)
                if fdef.reference_to and target is None:
                    raise ApiError(400, "INVALID_CROSS_REFERENCE_KEY",
                                   "invalid cross reference id", [fdef.name])
                return target["Id"] if target else text
        except ValueError:
            raise ApiError(400, "JSON_PARSER_ERROR",
                           f"Cannot deserialize instance of {fdef.type} from value {value!r} "
                           f"for field {definition.name}.{fdef.name}") from None
        if isinstance(value, dict | list):
            raise ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize {fdef.name} from an object")
        return str(value) if not isinstance(value, str) else value

    def _resolve(self, definition: ObjectDef, body: Mapping[str, Any], *, creating: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in body.items():
            if key == "attributes":
                continue
            fdef = definition.field(key)
            parent = definition.parent(key) if fdef is None and isinstance(value, Mapping) else None
            if parent is not None:
                # Relationship by external id: "Account": {"QB_Customer_Id__c": "58"}
                ((ext_field, ext_value),) = [(k, v) for k, v in value.items() if k != "attributes"][:1] or [("", None)]
                matches = self.by_external_id(str(parent.reference_to), ext_field, ext_value)
                if len(matches) != 1:
                    raise ApiError(400, "INVALID_FIELD", f"Foreign key external ID: {ext_value} not found "
                                                         f"for field {ext_field} in entity {parent.reference_to}")
                fdef, value = parent, matches[0]["Id"]
            if fdef is None and key.endswith("__c"):
                fdef = FieldDef(name=key, type=_guess_type(value))
                definition.add_field(fdef)
            if fdef is None:
                raise ApiError(400, "INVALID_FIELD", f"No such column '{key}' on sobject of type "
                                                     f"{definition.name}", [key])
            allowed = fdef.createable if creating else fdef.updateable
            if not allowed:
                raise ApiError(400, "INVALID_FIELD_FOR_INSERT_UPDATE",
                               f"Unable to create/update fields: {fdef.name}. Please check the security "
                               f"settings of this field and verify that it is read/write for your "
                               f"profile or permission set.", [fdef.name])
            out[fdef.name] = self._coerce(definition, fdef, value)
        return out

    def _check_unique(self, definition: ObjectDef, values: Mapping[str, Any], own_id: str | None) -> None:
        for name, value in values.items():
            fdef = definition.fields[name]
            if not fdef.unique or value is None or name == "Id":
                continue
            for other in self.by_external_id(definition.name, name, value) if fdef.external_id else [
                    r for r in self.records[definition.name].values()
                    if str(r.get(name) or "").lower() == str(value).lower()]:
                if other["Id"] != own_id:
                    raise ApiError(400, "DUPLICATE_VALUE", f"duplicate value found: {name} duplicates "
                                                           f"value on record with id: {other['Id']}", [name])

    def _index(self, obj: str, record: Mapping[str, Any], *, add: bool) -> None:
        for fdef in self.schemas[obj].fields.values():
            if not fdef.external_id or record.get(fdef.name) is None:
                continue
            ids = self._keys.setdefault((obj, fdef.name), {}).setdefault(str(record[fdef.name]).lower(), set())
            (ids.add if add else ids.discard)(record["Id"])

    def reindex(self) -> None:
        """Rebuild the external id index (after records were replaced wholesale, e.g. a rollback)."""
        self._keys = {}
        for obj, table in self.records.items():
            for record in table.values():
                self._index(obj, record, add=True)

    def create(self, obj: str, body: Mapping[str, Any], *, origin: str | None = None, emit: bool = True,
               system: Mapping[str, Any] | None = None, stamp: datetime | None = None) -> dict[str, Any]:
        """Insert a record (validated, derived fields filled) and return it."""
        definition = self.schema(obj)
        values = self._resolve(definition, body, creating=True)
        self._check_unique(definition, values, None)
        now = format_datetime(stamp or self.clock.now())
        record: dict[str, Any] = {name: None for name in definition.fields}
        record.update({f.name: False for f in definition.fields.values() if f.type == "boolean"})
        if "IsActive" in record:
            record["IsActive"] = True
        record.update(values)
        record.update({"Id": self.ids.new(definition.prefix), "IsDeleted": False, "CreatedDate": now,
                       "LastModifiedDate": now, "SystemModstamp": now})
        if "CreatedById" in record and hasattr(self, "user_id"):
            record["CreatedById"] = record["LastModifiedById"] = self.user_id
        if "OwnerId" in record and record["OwnerId"] is None and hasattr(self, "user_id"):
            record["OwnerId"] = self.user_id
        record.update(system or {})
        touched = apply_derived(self, definition.name, record, set(values), creating=True)
        missing = [f.name for f in definition.fields.values()
                   if f.createable and not f.nillable and not f.defaulted and record.get(f.name) is None]
        if missing:
            raise ApiError(400, "REQUIRED_FIELD_MISSING",
                           f"Required fields are missing: [{', '.join(missing)}]", missing)
        self.records[definition.name][record["Id"]] = record
        self._index(definition.name, record, add=True)
        if emit:
            self.emit(definition.name, "CREATE", record, [k for k, v in record.items() if v is not None],
                      origin)
        self._touch_parents(touched, origin, stamp)
        return record

    def update(self, obj: str, record_id: str, body: Mapping[str, Any], *, origin: str | None = None,
               stamp: datetime | None = None) -> dict[str, Any]:
        """Update a record's fields; bumps LastModifiedDate and SystemModstamp."""
        definition = self.schema(obj)
        record = self.get(definition.name, record_id)
        values = self._resolve(definition, body, creating=False)
        self._check_unique(definition, values, record["Id"])
        candidate = dict(record)
        candidate.update(values)
        touched = apply_derived(self, definition.name, candidate, set(values), creating=False)
        empty = [f.name for f in definition.fields.values()
                 if f.createable and not f.nillable and not f.defaulted and candidate.get(f.name) is None]
        if empty:
            raise ApiError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(empty)}]",
                           empty)
        now = format_datetime(stamp or self.clock.now())
        changed = [k for k, v in candidate.items() if record.get(k) != v]
        candidate.update({"LastModifiedDate": now, "SystemModstamp": now})
        self._index(definition.name, record, add=False)
        record.clear()
        record.update(candidate)
        self._index(definition.name, record, add=True)
        self.emit(definition.name, "UPDATE", record, [*changed, "LastModifiedDate"], origin)
        self._touch_parents(touched, origin, stamp)
        return record

    def delete(self, obj: str, record_id: str, *, origin: str | None = None) -> None:
        """Move a record to the recycle bin (cascading to line items and contacts)."""
        definition = self.schema(obj)
        record = self.get(definition.name, record_id)
        for child, ref in definition.children.values():
            if child in ("OpportunityLineItem", "Contact", "Opportunity", "PricebookEntry"):
                for other in list(self.records[child].values()):
                    if other.get(ref) == record["Id"]:
                        self.delete(child, other["Id"], origin=origin)
        now = format_datetime(self.clock.now())
        del self.records[definition.name][record["Id"]]
        self._index(definition.name, record, add=False)
        record.update({"IsDeleted": True, "SystemModstamp": now})
        self.deleted[definition.name][record["Id"]] = record
        self.emit(definition.name, "DELETE", record, [], origin)
        touched = apply_derived(self, definition.name, record, set(), creating=False, deleting=True)
        self._touch_parents(touched, origin, None)

    def _touch_parents(self, touched: list[tuple[str, str, dict[str, Any]]], origin: str | None,
                       stamp: datetime | None) -> None:
        # Roll-ups (Opportunity.Amount from its line items) change the parent like a write would.
        expanded: list[tuple[str, str, dict[str, Any]]] = []
        for obj, record_id, values in touched:
            expanded.extend(rollup(self, record_id) if obj.endswith(":rollup") else [(obj, record_id, values)])
        for obj, record_id, values in expanded:
            parent = self.find(obj, record_id)
            if parent is None:
                continue
            changed = [k for k, v in values.items() if parent.get(k) != v]
            if not changed:
                continue
            now = format_datetime(stamp or self.clock.now())
            parent.update(values)
            parent.update({"LastModifiedDate": now, "SystemModstamp": now})
            self.emit(obj, "UPDATE", parent, [*changed, "LastModifiedDate"], origin)

    # -- change data capture ------------------------------------------------------------------

    def emit(self, obj: str, change_type: str, record: Mapping[str, Any], fields: list[str],
             origin: str | None) -> None:
        """Append a change event for ``/data/<obj>ChangeEvent`` (a custom object's
        ``/data/<Name>__ChangeEvent``) and wake long polls."""
        stamp = parse_any_datetime(str(record.get("SystemModstamp") or record.get("LastModifiedDate")))
        definition = self.schemas[obj]
        # Components stand for their compound address here (its own change shows through them).
        changed = [f for f in dict.fromkeys(fields) if f not in ("Id", "SystemModstamp", "IsDeleted")
                   and not (f in definition.fields and definition.fields[f].type == "address")]
        payload: dict[str, Any] = {"ChangeEventHeader": {
            "entityName": obj, "recordIds": [record["Id"]], "changeType": change_type,
            "changeOrigin": f"com/salesforce/api/rest/{self.api_version}" + (f";client={origin}" if origin else ""),
            "transactionKey": str(uuid.uuid4()), "sequenceNumber": 1,
            "commitTimestamp": int(stamp.timestamp() * 1000), "commitNumber": next(self._commit),
            "commitUser": getattr(self, "user_id", "005Rx0000000001AAA"),
            "changedFields": changed if change_type == "UPDATE" else [],
        }}
        if change_type in ("CREATE", "UPDATE", "UNDELETE"):
            for name in changed:
                value = record.get(name)
                if isinstance(value, str) and name.endswith(("Date", "Stamp")) and "T" in value:
                    value = value.replace("+0000", "Z")
                payload[name] = value
        self.events.append({"channel": change_event_channel(obj), "replayId": next(self._replay),
                            "payload": payload, "schema": "emulated-" + obj})
        if len(self.events) > self.event_retention:
            del self.events[: len(self.events) - self.event_retention]
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.set()

    @property
    def waiting(self) -> int:
        """How many waits for events (held long polls) wait right now."""
        return len(self._waiters)

    async def wait_for_events(self, ready: Callable[[], bool], wait: float) -> bool:
        """Wait until ``ready()`` is true, checking it now and after every new event; give up
        after ``wait`` seconds. Returns the last ``ready()``.

        The caller says what it waits for (a long poll: an event on one of its channels), so events
        it has no interest in wake it only to check, never to answer early.
        """
        with anyio.move_on_after(wait):
            while not ready():
                waiter = anyio.Event()
                self._waiters.append(waiter)
                try:
                    await waiter.wait()
                finally:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
            return True
        return ready()
