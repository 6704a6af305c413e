"""``POST /batch``: up to 30 independent items, each answered with its entity, query or fault.

Items do not see each other's results and nothing is rolled back; the answer is 200 even when
every item failed, with the fault inside the item, as in QuickBooks. Each item is metered like a
request of its own (:func:`metered_items`, counted by the realm's throttle).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.quickbooks.emulator.entities import ENTITIES, Company
from connectors.quickbooks.emulator.faults import Fault
from connectors.quickbooks.emulator.query import run_query
from connectors.quickbooks.money import loads

__all__ = ["MAX_ITEMS", "metered_items", "run_batch"]

MAX_ITEMS = 30

#: ``write(company, entity, operation, body, options)`` -> the entity's answer object.
Writer = Callable[[Company, str, str, dict[str, Any], dict[str, str]], dict[str, Any]]


def metered_items(raw: bytes) -> int:
    """How many requests a ``/batch`` body is metered as: one per item, as QuickBooks meters them
    (a body that is no batch counts one; it is refused later)."""
    try:
        items = loads(raw).get("BatchItemRequest") if raw else None
    except (ValueError, AttributeError):
        return 1
    return len(items) if isinstance(items, list) and items else 1


def _fault_item(bid: Any, fault: Fault) -> dict[str, Any]:
    return {"bId": bid, "Fault": {"type": fault.fault_type, "Error": [
        {"Message": fault.message, "Detail": fault.detail, "code": fault.code,
         "element": fault.element}]}}


def run_batch(company: Company, body: Any, write: Writer) -> list[dict[str, Any]]:
    """The ``BatchItemResponse`` list for a batch request body."""
    items = body.get("BatchItemRequest") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise Fault("2020", "Required param missing, need to supply the required value for the API",
                    "Required parameter BatchItemRequest is missing in the request")
    if len(items) > MAX_ITEMS:
        raise Fault("6000", "A business validation error has occurred while processing your request",
                    f"Business Validation Error: a batch may hold at most {MAX_ITEMS} items, "
                    f"not {len(items)}")
    bids = [item.get("bId") for item in items]
    if any(not b for b in bids) or len(set(bids)) != len(bids):
        raise Fault("2020", "Required param missing, need to supply the required value for the API",
                    "Every batch item needs a bId that is unique in the request", element="bId")
    out = []
    for item in items:
        bid = item["bId"]
        try:
            if "Query" in item:
                out.append({"bId": bid, "QueryResponse": run_query(company, item["Query"])})
                continue
            names = [k for k in item if k in ENTITIES.values()]
            if len(names) != 1:
                raise Fault("2010", "Request has invalid or unsupported property",
                            "Each batch item carries exactly one entity or a Query")
            entity = names[0]
            operation = str(item.get("operation") or "create")
            options = {"include": "void"} if item.get("optionsData") == "void" else {}
            result = write(company, entity, operation, item[entity], options)
            out.append({"bId": bid, entity: result})
        except Fault as fault:
            out.append(_fault_item(bid, fault))
    return out
