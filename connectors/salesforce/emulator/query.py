"""Evaluating parsed SOQL against the emulated org's records, and shaping the REST answer."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from connectors.salesforce.emulator.errors import ApiError
from connectors.salesforce.emulator.ids import parse_any_datetime
from connectors.salesforce.emulator.schema import FieldDef, ObjectDef
from connectors.salesforce.emulator.soql import Cond, Literal, Query, parse

if TYPE_CHECKING:
    from connectors.salesforce.emulator.store import Org

__all__ = ["Result", "execute", "flatten", "run_query"]

Path = tuple[str, ...]


def _no_column(name: str, definition: ObjectDef) -> ApiError:
    return ApiError(400, "INVALID_FIELD",
                    f"\nNo such column '{name}' on entity '{definition.name}'. If you are attempting to "
                    f"use a custom field, be sure to append the '__c' after the custom field name. "
                    f"Please reference your WSDL or the describe call for the appropriate names.")


def _parent(definition: ObjectDef, name: str) -> FieldDef | None:
    found = definition.parent(name)
    if found is None and name.lower().endswith("__r"):
        found = definition.field(name[:-3] + "__c")
    return found if found is not None and found.reference_to else None


def resolve(org: Org, definition: ObjectDef, path: Path) -> list[tuple[ObjectDef, FieldDef]]:
    """The chain of (object, field) for a dotted path; raises INVALID_FIELD like Salesforce."""
    chain: list[tuple[ObjectDef, FieldDef]] = []
    current = definition
    for i, name in enumerate(path):
        if i < len(path) - 1:
            ref = _parent(current, name)
            if ref is None:
                raise ApiError(400, "INVALID_FIELD", f"\nDidn't understand relationship '{name}' in field "
                                                     f"path. If you are attempting to use a custom "
                                                     f"relationship, be sure to append the '__r' after "
                                                     f"the custom relationship name.")
            chain.append((current, ref))
            current = org.schemas[str(ref.reference_to)]
        else:
            fdef = current.field(name)
            if fdef is None:
                raise _no_column(name, current)
            chain.append((current, fdef))
    return chain


def _value(org: Org, record: dict[str, Any] | None, chain: list[tuple[ObjectDef, FieldDef]]) -> Any:
    for definition, fdef in chain[:-1]:
        if record is None:
            return None
        target = record.get(fdef.name)
        record = org.find(str(fdef.reference_to), target) if target else None
        del definition
    return None if record is None else record.get(chain[-1][1].name)


def _interval(token: str) -> tuple[datetime, datetime]:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    day = timedelta(days=1)
    if token == "TODAY":
        return today, today + day
    if token == "YESTERDAY":
        return today - day, today
    if token == "TOMORROW":
        return today + day, today + 2 * day
    name, n = token.split(":")
    if name == "LAST_N_DAYS":
        return today - int(n) * day, today + day
    return today + day, today + (int(n) + 1) * day


def _as(fdef: FieldDef, literal: Literal, definition: ObjectDef) -> Any:
    kind, value = literal.kind, literal.value
    if kind == "null":
        return None
    typed = {"date": ("date", "datetime", "relative"), "datetime": ("datetime", "date", "relative"),
             "boolean": ("bool",), "currency": ("number",), "double": ("number",), "percent": ("number",),
             "int": ("number",)}.get(fdef.type)
    if typed is not None and kind not in typed or typed is None and kind != "string":
        raise ApiError(400, "INVALID_FIELD", f"\nvalue of filter criterion for field '{fdef.name}' must be "
                                             f"of type {fdef.type} and should "
                                             f"{'' if typed is None else 'not '}be enclosed in quotes")
    return value


def _sortable(fdef: FieldDef, value: Any) -> Any:
    if value is None:
        return None
    if fdef.type == "datetime":
        return parse_any_datetime(value)
    if fdef.type == "date":
        return date.fromisoformat(value)
    if isinstance(value, str):
        return value.lower()
    return value


def _compare(fdef: FieldDef, actual: Any, op: str, literal: Literal, definition: ObjectDef) -> bool:
    expected = _as(fdef, literal, definition)
    if expected is None or actual is None:
        same = expected is None and actual is None
        return same if op == "=" else (not same if op == "!=" else False)
    left = _sortable(fdef, actual)
    if literal.kind == "relative" or (literal.kind == "date" and fdef.type == "datetime"):
        moments = _interval(expected) if literal.kind == "relative" else (
            datetime.combine(expected, datetime.min.time(), UTC),
            datetime.combine(expected, datetime.min.time(), UTC) + timedelta(days=1))
        # A date field compares with the days of the interval, a datetime field with its instants.
        start, end = (moments[0].date(), moments[1].date()) if fdef.type == "date" else moments
        within: dict[str, bool] = {"=": start <= left < end, "!=": not start <= left < end,
                                   "<": left < start, "<=": left < end, ">": left >= end,
                                   ">=": left >= start}
        return within[op]
    if fdef.type in ("id", "reference") and op in ("=", "!="):
        # 15- and 18-character forms of an id name the same record.
        same = str(actual)[:15] == str(expected)[:15]
        return same if op == "=" else not same
    right = expected.lower() if isinstance(expected, str) else expected
    if literal.kind == "datetime" and fdef.type == "date":
        right = expected.date()
    outcome: dict[str, bool] = {"=": left == right, "!=": left != right, "<": left < right,
                                "<=": left <= right, ">": left > right, ">=": left >= right}
    return outcome[op]


def _like(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            out += re.escape(pattern[i + 1])
            i += 2
            continue
        out += ".*" if ch == "%" else "." if ch == "_" else re.escape(ch)
        i += 1
    return re.compile(f"^{out}$", re.IGNORECASE | re.DOTALL)


def compile_condition(org: Org, definition: ObjectDef, cond: Cond) -> Callable[[dict[str, Any]], bool]:
    """A predicate over records of ``definition`` (names resolved and checked once)."""
    if cond.op in ("and", "or"):
        parts = [compile_condition(org, definition, c) for c in cond.args]
        if cond.op == "and":
            return lambda r: all(p(r) for p in parts)
        return lambda r: any(p(r) for p in parts)
    if cond.op == "not":
        inner = compile_condition(org, definition, cond.args[0])
        return lambda r: not inner(r)
    chain = resolve(org, definition, cond.args[0])
    owner, fdef = chain[-1]
    if cond.op == "compare":
        _, op, literal = cond.args
        _as(fdef, literal, owner)
        return lambda r: _compare(fdef, _value(org, r, chain), op, literal, owner)
    if cond.op == "like":
        regex = _like(str(cond.args[1].value))
        return lambda r: (v := _value(org, r, chain)) is not None and bool(regex.match(str(v)))
    values = cond.args[1]
    negate = cond.op == "not_in"
    expected = [_as(fdef, lit, owner) for lit in values]
    if fdef.type in ("id", "reference") and all(e is not None for e in expected):
        # Ids by their 15-character form, looked up in a set: a query for the 200 records behind
        # a delivery of change events does not compare each record with each of the 200 ids.
        keys = {str(e)[:15] for e in expected}
        return lambda r: negate != ((v := _value(org, r, chain)) is not None and str(v)[:15] in keys)
    return lambda r: negate != any(_compare(fdef, _value(org, r, chain), "=", lit, owner) for lit in values)


def _attributes(org: Org, definition: ObjectDef, record_id: str) -> dict[str, str]:
    return {"type": definition.name,
            "url": f"/services/data/v{org.api_version}/sobjects/{definition.name}/{record_id}"}


def _child_relationship(definition: ObjectDef, source: str) -> str:
    """The canonical name of the child relationship a subquery selects from (checked by ``_select``)."""
    for name in definition.children:
        if name.lower() == source.lower():
            return name
    raise KeyError(source)


def _referring_to(parent_id: Any, foreign_key: str) -> Callable[[dict[str, Any]], bool]:
    """A filter for the child rows whose ``foreign_key`` names the parent ``parent_id``."""
    return lambda row: row.get(foreign_key) == parent_id


def _render(org: Org, definition: ObjectDef, record: dict[str, Any], query: Query,
            include_deleted: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"attributes": _attributes(org, definition, record["Id"])}
    for item in query.fields:
        if isinstance(item, Query):
            relationship = _child_relationship(definition, item.source)
            child, foreign_key = definition.children[relationship]
            rows = _select(org, org.schemas[child], item, include_deleted,
                           extra=_referring_to(record["Id"], foreign_key))
            out[relationship] = ({"totalSize": len(rows), "done": True,
                                  "records": [_render(org, org.schemas[child], r, item, include_deleted)
                                              for r in rows]} if rows else None)
            continue
        _render_path(org, out, record, resolve(org, definition, item))
    return out


def _render_path(org: Org, out: dict[str, Any], record: dict[str, Any],
                 chain: list[tuple[ObjectDef, FieldDef]]) -> None:
    """Put the value at ``chain`` into ``out``, parents nested by relationship name as Salesforce
    answers (a parent that is not there is ``null`` and ends the path)."""
    target = out
    current = record
    for _owner, ref in chain[:-1]:
        rel = str(ref.relationship_name or ref.name[:-3] + "__r")
        parent_id = current.get(ref.name)
        parent = org.find(str(ref.reference_to), parent_id) if parent_id else None
        if parent is None:
            target.setdefault(rel, None)
            return
        current = parent
        nested = target.get(rel)
        if nested is None:
            nested = {"attributes": _attributes(org, org.schemas[str(ref.reference_to)], parent["Id"])}
            target[rel] = nested
        target = nested
    name = chain[-1][1].name
    target[name] = current.get(name)


def _select(org: Org, definition: ObjectDef, query: Query, include_deleted: bool,
            extra: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
    for item in query.fields:
        if isinstance(item, Query):
            if not any(n.lower() == item.source.lower() for n in definition.children):
                raise ApiError(400, "INVALID_TYPE", f"\nDidn't understand relationship '{item.source}' in "
                                                    f"FROM part of query call. If you are attempting to use "
                                                    f"a custom relationship, be sure to append the '__r' "
                                                    f"after the custom relationship name.")
        else:
            resolve(org, definition, item)
    rows = list(org.records[definition.name].values())
    if include_deleted:
        rows += list(org.deleted[definition.name].values())
    if extra is not None:
        rows = [r for r in rows if extra(r)]
    if query.where is not None:
        predicate = compile_condition(org, definition, query.where)
        rows = [r for r in rows if predicate(r)]
    for path, desc, nulls_first in reversed(query.order):
        chain = resolve(org, definition, path)
        fdef = chain[-1][1]
        keyed = [(_sortable(fdef, _value(org, r, chain)), r) for r in rows]
        present = sorted((k for k in keyed if k[0] is not None), key=lambda k: k[0], reverse=desc)
        missing = [k for k in keyed if k[0] is None]
        rows = [r for _, r in (missing + present if nulls_first else present + missing)]
    rows = rows[query.offset:]
    if query.limit is not None:
        rows = rows[: query.limit]
    return rows


class Result:
    """The rows a query matched; each is shaped into a REST record only when its page is served."""

    def __init__(self, org: Org, definition: ObjectDef, query: Query, rows: list[dict[str, Any]],
                 include_deleted: bool) -> None:
        self.org, self.definition, self.query = org, definition, query
        self.rows = [] if query.count else rows
        self.total = len(rows)
        self.include_deleted = include_deleted

    def __len__(self) -> int:
        return len(self.rows)

    def page(self, start: int, size: int) -> list[dict[str, Any]]:
        """Rendered records ``start .. start + size``."""
        return [_render(self.org, self.definition, r, self.query, self.include_deleted)
                for r in self.rows[start:start + size]]


def execute(org: Org, text: str, *, include_deleted: bool = False) -> Result:
    """Run a SOQL text; validation errors are raised now, records are rendered page by page."""
    query = parse(text)
    canonical = org._by_lower.get(query.source.lower())
    if canonical is None:
        raise ApiError(400, "INVALID_TYPE", f"\nsObject type '{query.source}' is not supported. If you are "
                                            f"attempting to use a custom object, be sure to append the "
                                            f"'__c' after the entity name.")
    definition = org.schemas[canonical]
    return Result(org, definition, query, _select(org, definition, query, include_deleted), include_deleted)


def run_query(org: Org, text: str, *, include_deleted: bool = False) -> tuple[int, list[dict[str, Any]]]:
    """``(totalSize, records)`` for a SOQL text, every record shaped like the REST answer."""
    result = execute(org, text, include_deleted=include_deleted)
    return result.total, result.page(0, len(result))


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Bulk CSV columns: nested parents become dotted names; attributes are dropped."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if key == "attributes":
            continue
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
