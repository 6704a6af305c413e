"""Webhook deliveries of the emulator: signed like Intuit's, classic or CloudEvents payloads.

Changes queue up and go out on :meth:`WebhookSender.flush`, one POST per flush (Intuit aggregates
too): the classic ``eventNotifications`` object grouped per realm, or a CloudEvents array. The
``intuit-signature`` header is the base64 HMAC-SHA256 of the exact body with the verifier token.
A delivery that fails (no 200) stays queued and goes out again with the next flush; the fault
switches can drop or duplicate deliveries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from connectors.quickbooks.emulator.faults import FaultSwitches

__all__ = ["WebhookSender", "sign"]

_VERBS = {"Create": "created", "Update": "updated", "Delete": "deleted", "Void": "voided",
          "Merge": "merged", "Emailed": "emailed"}


def sign(body: bytes, verifier_token: str) -> str:
    """The ``intuit-signature`` of a body."""
    digest = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _classic_time(value: str) -> str:
    # Intuit's classic payload writes offsets without a colon: 2015-10-05T14:42:19-0700.
    return value[:-3] + value[-2:] if len(value) > 6 and value[-3] == ":" else value


class WebhookSender:
    """Queued change notifications for one configured endpoint."""

    def __init__(self, url: str | None, verifier_token: str, *, fmt: str = "legacy",
                 transport: httpx.AsyncBaseTransport | None = None,
                 faults: FaultSwitches | None = None) -> None:
        if fmt not in ("legacy", "cloudevents"):
            raise ValueError("webhook format must be 'legacy' or 'cloudevents'")
        self.url = url
        self.verifier_token = verifier_token
        self.format = fmt
        self.transport = transport
        self.faults = faults or FaultSwitches()
        self.pending: list[tuple[str, str, str, str, str]] = []
        self.delivered = 0
        self.dropped = 0

    def notify(self, realm: str, entity: str, entity_id: str, operation: str, when: str) -> None:
        """Queue one change (nothing is queued when no endpoint is configured)."""
        if self.url:
            self.pending.append((realm, entity, entity_id, operation, when))

    def body(self, events: list[tuple[str, str, str, str, str]]) -> Any:
        """The payload for a list of changes in the configured format."""
        if self.format == "cloudevents":
            return [{"specversion": "1.0", "id": str(uuid.uuid4()),
                     "source": "intuit.emulator", "type": f"qbo.{entity.lower()}."
                     f"{_VERBS.get(op, op.lower())}.v1", "datacontenttype": "application/json",
                     "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                     "intuitentityid": eid, "intuitaccountid": realm, "data": {}}
                    for realm, entity, eid, op, _ in events]
        realms: dict[str, list[dict[str, str]]] = {}
        for realm, entity, eid, op, when in events:
            realms.setdefault(realm, []).append({"name": entity, "id": eid, "operation": op,
                                                 "lastUpdated": _classic_time(when)})
        return {"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": ents}}
                                       for realm, ents in realms.items()]}

    async def flush(self) -> int:
        """Deliver what is queued; returns how many POSTs were answered 200."""
        if not self.pending or not self.url:
            return 0
        events, self.pending = self.pending, []
        raw = json.dumps(self.body(events)).encode()
        if self.faults.take("drop_webhooks"):
            self.dropped += 1
            return 0
        copies = 2 if self.faults.take("duplicate_webhooks") else 1
        headers = {"content-type": "application/json", "intuit-signature":
                   sign(raw, self.verifier_token)}
        ok = 0
        async with httpx.AsyncClient(transport=self.transport, timeout=5.0) as client:
            for _ in range(copies):
                try:
                    response = await client.post(self.url, content=raw, headers=headers)
                    success = response.status_code == 200
                except httpx.HTTPError:
                    success = False
                if success:
                    ok += 1
                    self.delivered += 1
        if not ok:
            self.pending[:0] = events
        return ok
