"""Change data capture: what changed in a company since a moment, deletions after the rest.

Like QuickBooks: at most 30 days back, at most 1000 objects per answer (no paging; the caller
shrinks its window), objects grouped per entity and ordered by ``LastUpdatedTime``, deleted ones as
``{"Id", "status": "Deleted", "domain", "MetaData": {"LastUpdatedTime"}}``.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from connectors.quickbooks.emulator.entities import ENTITIES, Company
from connectors.quickbooks.emulator.faults import Fault
from connectors.quickbooks.emulator.query import _instant

__all__ = ["MAX_OBJECTS", "changes"]

MAX_OBJECTS = 1000
#: TaxCode and TaxRate are not in CDC in QuickBooks either.
_UNSUPPORTED = frozenset({"TaxCode", "TaxRate"})


def changes(company: Company, entities: str, changed_since: str) -> list[dict[str, Any]]:
    """The ``QueryResponse`` list of a ``CDCResponse`` entry."""
    names = [n.strip() for n in entities.split(",") if n.strip()]
    if not names:
        raise Fault("2020", "Required param missing, need to supply the required value for the API",
                    "Required parameter entities is missing in the request", element="entities")
    since = _instant(changed_since.replace(" ", "+"))
    if since is None:
        raise Fault("2050", "Invalid date", f"Invalid date/time for changedSince: {changed_since}",
                    element="changedSince")
    if since < company.clock() - timedelta(days=30):
        raise Fault("6000", "A business validation error has occurred while processing your request",
                    "changedSince must be within the last 30 days", element="changedSince")
    out: list[dict[str, Any]] = []
    budget = MAX_OBJECTS
    for raw in names:
        entity = ENTITIES.get(raw.lower())
        if entity is None or entity in _UNSUPPORTED:
            raise Fault("4001", "Invalid query", f"CDC is not supported for entity {raw}",
                        element="entities")
        live = [r for r in company.tables[entity].values()
                if (_instant(r["MetaData"]["LastUpdatedTime"]) or since) >= since]
        live.sort(key=lambda r: (_instant(r["MetaData"]["LastUpdatedTime"]), int(r["Id"])))
        gone = sorted(((eid, when) for (name, eid), when in company.deleted.items()
                       if name == entity and (_instant(when) or since) >= since),
                      key=lambda item: (_instant(item[1]), int(item[0])))
        rows: list[dict[str, Any]] = [copy.deepcopy(r) for r in live]
        rows += [{"Id": eid, "status": "Deleted", "domain": "QBO",
                  "MetaData": {"LastUpdatedTime": when}} for eid, when in gone]
        rows = rows[:budget]
        budget -= len(rows)
        if rows:
            out.append({entity: rows, "startPosition": 1, "maxResults": len(rows),
                        "totalCount": len(rows)})
    return out
