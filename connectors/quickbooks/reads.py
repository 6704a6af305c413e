"""Many records by Id in one query, answering for each Id as ``GET /{entity}/{id}`` would.

Batch forms read the records they need (the SyncToken of updates, the stored links of
match-or-create) with one ``select * from <Entity> where Id in (...)`` instead of one GET each. A
read by Id finds an inactive name-list record too, while a query hides those unless it filters on
``Active``; so name lists are queried with ``Active in (true, false)``. An Id the query does not
return gets the same ``QUICKBOOKS:NOT_FOUND`` (610) a read of it would.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.errors import QuickBooksFault, error_from_faults
from connectors.quickbooks.query import quote
from runtime import SpliceError

__all__ = ["NAME_LISTS", "not_found", "read_many"]

#: Entities QuickBooks makes inactive instead of deleting, and whose queries hide inactive rows.
NAME_LISTS = frozenset({"Customer", "Vendor", "Employee", "Item", "Account", "Term", "Class",
                        "Department", "PaymentMethod", "TaxCode"})
#: Ids per query: the query stays short, as QuickBooks takes it in the URL.
IDS_PER_QUERY = 100


def not_found(entity: str, entity_id: str) -> SpliceError:
    """The error a read of a missing ``entity`` ``entity_id`` gets (fault 610, as QuickBooks)."""
    return error_from_faults([QuickBooksFault(
        code="610", message="Object Not Found",
        detail=f"Object Not Found : Something you're trying to use has been made inactive. "
               f"Check the fields with accounts, customers, items, vendors or employees. "
               f"({entity} {entity_id})", fault_type="ValidationFault")], status=400)


async def read_many(client: QuickBooksClient, entity: str,
                    ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The records of ``ids`` that exist, by Id (one query per :data:`IDS_PER_QUERY` Ids)."""
    # Sorted: batches that want the same records ask the same query, which one request answers
    # while it is in flight (connectors.quickbooks.shared_reads).
    wanted = sorted({str(i) for i in ids if str(i).strip()}, key=lambda i: (len(i), i))
    active = " and Active in (true, false)" if entity in NAME_LISTS else ""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), IDS_PER_QUERY):
        chunk = wanted[start:start + IDS_PER_QUERY]
        sql = f"select * from {entity} where Id in {quote(chunk)}{active}"
        async for row in client.query(sql):
            if str(row.get("Id")) in chunk:
                found[str(row["Id"])] = row
    return found
