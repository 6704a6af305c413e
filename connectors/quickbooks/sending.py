"""``quickbooks.send``: QuickBooks e-mails a sales form (an invoice, estimate...) to its customer.

``POST /{entity}/{id}/send[?sendTo=address]`` with an empty ``application/octet-stream`` body;
QuickBooks answers with the form, its ``EmailStatus`` now ``EmailSent`` and ``DeliveryInfo`` set.
A customer must never get the same invoice twice because an event was delivered twice, so the
operation needs an idempotency key: the ledger runs the send once per key, and the key is the
``requestid`` too, so a send whose answer was lost and that is sent again is answered from
QuickBooks' memory of the first.
"""

from __future__ import annotations

from typing import Any

from connectors.quickbooks.errors import quickbooks_error
from connectors.quickbooks.steps import step_client, step_entity
from connectors.quickbooks.writes import once, request_id
from runtime import OperationContext, OperationSpec, Param

__all__ = ["SENDING_OPERATIONS", "preview_send", "send"]

#: The forms QuickBooks mails through ``/{entity}/{id}/send``.
SENDABLE = ("Invoice", "Estimate", "SalesReceipt", "CreditMemo", "RefundReceipt", "PurchaseOrder")


def _target(params: dict[str, Any]) -> tuple[str, str, str | None, str]:
    entity = step_entity(params)
    if entity not in SENDABLE:
        raise quickbooks_error("VALIDATION", f"QuickBooks cannot e-mail a {entity} "
                               f"(it mails {', '.join(SENDABLE)})")
    key = params.get("idempotency-key")
    if not key:
        raise quickbooks_error("VALIDATION", "quickbooks.send needs an idempotency-key: a form must "
                               "never be mailed twice")
    send_to = params.get("send-to") or None
    return entity, str(params["id"]), None if send_to is None else str(send_to), str(key)


async def send(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """Mail the form once per idempotency key; returns the form as QuickBooks answered."""
    client = step_client(ctx)
    entity, entity_id, send_to, key = _target(params)

    async def mail() -> dict[str, Any]:
        payload = await client.request(
            "POST", f"{entity.lower()}/{entity_id}/send",
            params={"sendTo": send_to, "requestid": request_id(f"send-{key}")},
            content_type="application/octet-stream", idempotent=True)
        record: dict[str, Any] = payload[entity]
        return record

    result = await once(ctx, client.realm_id, f"send:{entity}:{key}", mail)
    ctx.annotate(entity=entity, record_id=entity_id)
    return result


async def preview_send(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """A dry run says whom it would mail, and mails nobody."""
    entity, entity_id, send_to, _key = _target(params)
    ctx.would_write("send", {"entity": entity, "id": entity_id}, {"sendTo": send_to})
    return {"Id": entity_id, "EmailStatus": "NeedToSend"}


SENDING_OPERATIONS: tuple[OperationSpec, ...] = (
    OperationSpec("send", send, (
        Param("entity", default="Invoice", enum=SENDABLE),
        Param("id", required=True, summary="Id of the form to mail"),
        Param("send-to", summary="Address to mail (it becomes the form's BillEmail); default: "
              "the form's BillEmail"),
        Param("idempotency-key", required=True, summary="Stable key of this mailing: the form is "
              "mailed once per key", examples=("#[ 'send-opp-' & vars.opp.Id ]",))),
        summary="E-mail an invoice (or another sales form) to its customer, once per key",
        output="The form as QuickBooks answered (EmailStatus EmailSent, DeliveryInfo)",
        writes=True, preview=preview_send),
)
