"""QuickBooks webhook deliveries: the ``intuit-signature`` check and both payload formats.

The signature is the base64 HMAC-SHA256 of the raw body with the app's verifier token (not the
client secret); it is checked on the exact bytes received, in constant time. Two payloads exist:
the classic ``{"eventNotifications": [{realmId, dataChangeEvent: {entities: [...]}}]}`` and, since
the 2025-2026 migration, a CloudEvents array (``type`` = ``qbo.<entity>.<verb>.v1``, realm in
``intuitaccountid``, entity id in ``intuitentityid``). Both become :class:`WebhookEvent` objects with
an identity that a redelivery repeats, for deduplication.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["WebhookEvent", "parse_notifications", "verify_signature"]

_ENTITIES = {name.lower(): name for name in (
    "Account", "Bill", "BillPayment", "Budget", "Class", "CreditMemo", "Currency", "Customer",
    "Department", "Deposit", "Employee", "Estimate", "Invoice", "Item", "JournalCode",
    "JournalEntry", "Payment", "PaymentMethod", "Preferences", "Purchase", "PurchaseOrder",
    "RefundReceipt", "SalesReceipt", "TaxAgency", "Term", "TimeActivity", "Transfer", "Vendor",
    "VendorCredit")}
_VERBS = {"created": "Create", "updated": "Update", "deleted": "Delete", "merged": "Merge",
          "voided": "Void", "emailed": "Emailed"}


def verify_signature(body: bytes, signature: str | None, verifier_token: str) -> bool:
    """Whether ``signature`` (the ``intuit-signature`` header) signs ``body``."""
    if not signature or not verifier_token:
        return False
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    expected = hmac.new(verifier_token.encode("utf-8"), body, hashlib.sha256).digest()
    return hmac.compare_digest(given, expected)


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One entity change announced by a delivery."""

    event_id: str
    realm_id: str
    entity: str
    entity_id: str
    operation: str
    last_updated: str | None
    format: str

    def to_dict(self) -> dict[str, Any]:
        """Stored (inbox) form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WebhookEvent:
        """Rebuild a stored event."""
        return cls(**data)


def _entity(name: str) -> str:
    return _ENTITIES.get(name.lower(), name[:1].upper() + name[1:])


def _text(value: Any) -> str:
    """A field that must be a string or a number (an id): anything else reads as absent."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _cloudevent(ce: Any) -> WebhookEvent:
    if not isinstance(ce, dict):
        raise ValueError("a CloudEvents array holds objects")
    parts = _text(ce.get("type")).split(".")
    if len(parts) < 3 or parts[0] != "qbo" or not parts[1] or not parts[2]:
        raise ValueError(f"not a QuickBooks event type: {ce.get('type')!r}"[:200])
    verb = parts[2]
    event_id, realm, entity_id = (_text(ce.get(k)) for k in ("id", "intuitaccountid", "intuitentityid"))
    if not event_id or not realm or not entity_id:
        raise ValueError("a CloudEvent needs id, intuitaccountid and intuitentityid")
    time = ce.get("time")
    return WebhookEvent(event_id=f"ce:{event_id}", realm_id=realm, entity=_entity(parts[1]),
                        entity_id=entity_id, operation=_VERBS.get(verb, verb.capitalize()),
                        last_updated=time if isinstance(time, str) else None, format="cloudevents")


def _classic(note: Any) -> list[WebhookEvent]:
    if not isinstance(note, dict):
        raise ValueError("eventNotifications holds objects")
    realm = _text(note.get("realmId"))
    change = note.get("dataChangeEvent")
    entities = change.get("entities") if isinstance(change, dict) else None
    if change is not None and not isinstance(change, dict) \
            or entities is not None and not isinstance(entities, list):
        raise ValueError("dataChangeEvent must be an object with an 'entities' list")
    events = []
    for ent in entities or []:
        if not isinstance(ent, dict):
            raise ValueError("dataChangeEvent.entities holds objects")
        entity, entity_id = _entity(_text(ent.get("name"))), _text(ent.get("id"))
        operation, updated = _text(ent.get("operation")), ent.get("lastUpdated")
        if not (realm and entity and entity_id and operation):
            raise ValueError("an entity change needs realmId, name, id and operation")
        updated = updated if isinstance(updated, str) else None
        events.append(WebhookEvent(
            event_id=f"{realm}:{entity}:{entity_id}:{operation}:{updated}", realm_id=realm,
            entity=entity, entity_id=entity_id, operation=operation, last_updated=updated,
            format="classic"))
    return events


def parse_notifications(body: bytes) -> list[WebhookEvent]:
    """The events of one delivery, whichever format; ``ValueError`` for anything else (not JSON,
    too deeply nested, or any field of the wrong type at any level)."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None
    if isinstance(data, list):
        return [_cloudevent(ce) for ce in data]
    if not isinstance(data, dict) or not isinstance(data.get("eventNotifications"), list):
        raise ValueError("neither an eventNotifications object nor a CloudEvents array")
    return [event for note in data["eventNotifications"] for event in _classic(note)]
