"""Which record an update or upsert step names, read the same way by the write and its dry-run
preview, so that a preview refuses exactly what the write would."""

from __future__ import annotations

from typing import Any

from connectors.salesforce.errors import SalesforceError

__all__ = ["update_id", "upsert_key"]


def update_id(params: dict[str, Any]) -> str:
    """The Id of the record ``salesforce.update`` changes: ``id``, else ``record.Id``."""
    record_id = params.get("id") or params["record"].get("Id")
    if not record_id:
        raise SalesforceError("update needs id (or record.Id)", error_type="SALESFORCE:VALIDATION")
    return str(record_id)


def upsert_key(params: dict[str, Any]) -> tuple[str, Any]:
    """``(field, value)`` of the external id ``salesforce.upsert`` writes by: ``external-id``, else
    the record's own value of ``external-id-field``."""
    field = params["external-id-field"]
    value = params.get("external-id")
    if value in (None, ""):
        value = params["record"].get(field)
    if value in (None, ""):
        raise SalesforceError(f"upsert needs external-id or record.{field}",
                              error_type="SALESFORCE:VALIDATION")
    return field, value
