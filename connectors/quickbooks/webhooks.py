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


def _cloudevent(ce: dict[str, Any]) -> WebhookEvent:
    parts = str(ce.get("type", "")).split(".")
    if len(parts) < 3 or parts[0] != "qbo":
        raise ValueError(f"not a QuickBooks event type: {ce.get('type')!r}")
    verb = parts[2]
    realm = str(ce.get("intuitaccountid") or "")
    entity_id = str(ce.get("intuitentityid") or "")
    if not ce.get("id") or not realm or not entity_id:
        raise ValueError("a CloudEvent needs id, intuitaccountid and intuitentityid")
    return WebhookEvent(event_id=f"ce:{ce['id']}", realm_id=realm, entity=_entity(parts[1]),
                        entity_id=entity_id, operation=_VERBS.get(verb, verb.capitalize()),
                        last_updated=ce.get("time"), format="cloudevents")


def parse_notifications(body: bytes) -> list[WebhookEvent]:
    """The events of one delivery, whichever format; ``ValueError`` for anything else."""
    data = json.loads(body)
    if isinstance(data, list):
        return [_cloudevent(ce) for ce in data if isinstance(ce, dict)]
    if not isinstance(data, dict) or not isinstance(data.get("eventNotifications"), list):
        raise ValueError("neither an eventNotifications object nor a CloudEvents array")
    events = []
    for note in data["eventNotifications"]:
        realm = str(note.get("realmId") or "")
        for ent in (note.get("dataChangeEvent") or {}).get("entities") or []:
            entity, entity_id = _entity(str(ent.get("name", ""))), str(ent.get("id", ""))
            operation, updated = str(ent.get("operation", "")), ent.get("lastUpdated")
            if not (realm and entity and entity_id and operation):
                raise ValueError("an entity change needs realmId, name, id and operation")
            events.append(WebhookEvent(
                event_id=f"{realm}:{entity}:{entity_id}:{operation}:{updated}", realm_id=realm,
                entity=entity, entity_id=entity_id, operation=operation, last_updated=updated,
                format="classic"))
    return events
