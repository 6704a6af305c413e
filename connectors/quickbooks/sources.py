"""The triggers: ``quickbooks.webhook`` (pushed changes) and ``quickbooks.changes`` (CDC polling).

The webhook endpoint does the least it can before answering, because Intuit wants a 200 within
3 seconds and holds back later events while one is unanswered: check the signature, parse, put the
delivery in a durable inbox (``ctx.inbox``) with one write (a redelivery of the same bytes
is dropped there), wake the loop, answer. The loop hands each delivery's events to the flow, skips
events another delivery already carried, and completes a delivery only once every outcome is done.

``changes`` is the safety net Intuit itself recommends: CDC from a stored watermark per entity,
clamped to the 30 days CDC can see, deletions delivered as ``operation = "Delete"`` events. The
watermark moves only after the events it covers were handled.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.errors import quickbooks_error
from connectors.quickbooks.webhooks import WebhookEvent, parse_notifications, verify_signature
from runtime import (
    ConnectionConfigError,
    Event,
    HttpRequest,
    HttpResponse,
    Inbox,
    Param,
    SourceContext,
    SourceSpec,
    SpliceError,
)

__all__ = ["SOURCES", "run_changes", "run_webhook"]

CDC_WINDOW = timedelta(days=30)
#: How long a handled webhook event is remembered (Intuit retries for days at most).
HANDLED_TTL = 7 * 24 * 3600.0
CDC_MAX_OBJECTS = 1000


def _client(ctx: SourceContext) -> QuickBooksClient:
    if not isinstance(ctx.connection, QuickBooksClient):
        raise ConnectionConfigError("quickbooks sources need a quickbooks connection")
    return ctx.connection


async def _wait(ctx: SourceContext, wake: anyio.Event, seconds: float) -> bool:
    """Sleep until woken, the timeout, or shutdown; ``False`` on shutdown."""
    alive = True
    async with anyio.create_task_group() as tg:
        async def woken() -> None:
            await wake.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(woken)
        alive = await ctx.sleep(seconds)
        tg.cancel_scope.cancel()
    return alive and not ctx.stopping


def _webhook_event(event: WebhookEvent, payload: Any) -> Event:
    attributes = {"source": "quickbooks.webhook", "realmId": event.realm_id,
                  "entity": event.entity, "entityId": event.entity_id,
                  "operation": event.operation, "lastUpdated": event.last_updated,
                  "eventId": event.event_id, "format": event.format}
    return Event(payload=payload, attributes=attributes, id=event.event_id)


def _refusal(status: int, kind: str, message: str) -> HttpResponse:
    """A delivery the endpoint refuses, as the JSON error every Splice endpoint answers."""
    return HttpResponse(status, {"error": {"type": f"QUICKBOOKS_WEBHOOK:{kind}", "message": message}})


def _delivery_id(body: bytes) -> str:
    """Intuit redelivers the same bytes; their hash identifies the delivery."""
    return "d:" + hashlib.sha256(body).hexdigest()


async def run_webhook(ctx: SourceContext, params: dict[str, Any]) -> None:
    """Serve the webhook endpoint and feed its inbox to the flow until shutdown."""
    client = _client(ctx)
    token = params.get("verifier-token") or client.settings.webhook_verifier_token
    if not token:
        raise ConnectionConfigError("quickbooks.webhook needs webhook-verifier-token on the "
                                    "connection (or verifier-token on the trigger)")
    realms = {client.realm_id} if not params.get("all-realms") else None
    entities = set(params.get("entities") or ()) or None
    inbox = ctx.inbox(f"quickbooks-webhook:{ctx.flow}")
    wake = [anyio.Event()]

    async def endpoint(request: HttpRequest) -> HttpResponse:
        signature = {k.lower(): v for k, v in request.headers.items()}.get("intuit-signature")
        if not verify_signature(request.body, signature, token):
            return _refusal(401, "UNAUTHORIZED", "invalid or missing intuit-signature")
        try:
            events = parse_notifications(request.body)
        except ValueError as exc:
            return _refusal(400, "BAD_REQUEST", f"unreadable QuickBooks notification: {exc}")
        kept = [e for e in events if not ((realms and e.realm_id not in realms)
                                          or (entities and e.entity not in entities))]
        stored = False
        if kept:
            # One write per delivery, however many events it carries: the answer stays fast.
            stored = await inbox.put(_delivery_id(request.body),
                                     {"events": [e.to_dict() for e in kept]})
            wake[0].set()
        return HttpResponse(200, {"accepted": len(kept) if stored else 0, "received": len(events)})

    ctx.add_route(str(params["path"]), ["POST"], endpoint)
    poll: float = params["poll-interval"]
    fetch: bool = params["fetch"]
    batch: int = params["batch-size"]
    while True:
        wake[0] = anyio.Event()
        await _drain(ctx, client, inbox, fetch, batch)
        if not await _wait(ctx, wake[0], poll):
            return


async def _flow_events(ctx: SourceContext, client: QuickBooksClient, events: list[WebhookEvent],
                       fetch: bool) -> list[Event] | None:
    out = []
    for event in events:
        payload: Any = event.to_dict()
        if fetch and event.operation not in ("Delete", "Merge"):
            try:
                payload = await client.read(event.entity, event.entity_id)
            except SpliceError as exc:
                if exc.error_type != "QUICKBOOKS:NOT_FOUND":
                    # Leave the delivery pending; the next round tries again.
                    ctx.logger.warning("quickbooks.webhook: reading %s %s failed: %s",
                                       event.entity, event.entity_id, exc)
                    return None
        out.append(_webhook_event(event, payload))
    return out


async def _drain(ctx: SourceContext, client: QuickBooksClient, inbox: Inbox, fetch: bool,
                 batch: int) -> None:
    """Hand pending deliveries to the flow, oldest first; stop at the first that is not done."""
    handled = f"quickbooks-webhook-handled:{ctx.flow}"
    while True:
        items = await inbox.pending(batch)
        if not items:
            return
        for item in items:
            unique = {e["event_id"]: WebhookEvent.from_dict(e) for e in item.payload["events"]}
            # Another delivery may have carried the same event already.
            todo = [e for key, e in unique.items() if await ctx.store.get(handled, key) is None]
            flow_events = await _flow_events(ctx, client, todo, fetch)
            if flow_events is None:
                return
            outcomes = await ctx.handle_many(flow_events) if flow_events else []
            failure = None
            for event, outcome in zip(todo, outcomes, strict=True):
                if outcome.done:
                    await ctx.store.put(handled, event.event_id, True, ttl=HANDLED_TTL)
                else:
                    failure = outcome
            if failure is not None:
                error = failure.error.to_dict() if failure.error else {"message": failure.status}
                await inbox.fail(item.id, error)
                return  # try again after the next wait
            await inbox.complete(item.id)


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _change_event(entity: str, row: dict[str, Any]) -> Event:
    meta = row.get("MetaData") or {}
    if row.get("status") == "Deleted":
        operation = "Delete"
    elif str(row.get("SyncToken")) == "0":
        operation = "Create"  # never changed since it was created
    else:
        operation = "Update"
    attributes = {"source": "quickbooks.changes", "entity": entity, "entityId": row.get("Id"),
                  "operation": operation, "lastUpdated": meta.get("LastUpdatedTime")}
    return Event(payload=row, attributes=attributes,
                 id=f"{entity}:{row.get('Id')}:{row.get('SyncToken', 'deleted')}")


def _row_key(row: dict[str, Any]) -> str:
    return f"{row.get('Id')}:{row.get('SyncToken', 'deleted')}"


async def poll_entity(ctx: SourceContext, client: QuickBooksClient, entity: str,
                      state: dict[str, Any], now: datetime, lookback: float) -> bool:
    """One CDC round for one entity; ``False`` when some event was not done (state unchanged)."""
    mine = state.get(entity) or {}
    since = _instant(mine["since"]) if mine.get("since") else now - timedelta(seconds=lookback)
    floor = now - CDC_WINDOW + timedelta(minutes=5)
    if since < floor:
        ctx.logger.warning("quickbooks.changes: %s watermark %s is beyond CDC's 30 days; changes "
                           "before %s cannot be seen (run a full reconcile)", entity,
                           since.isoformat(), floor.isoformat())
        since = floor
    rows = (await client.cdc([entity], since.isoformat(timespec="seconds")))[entity]
    if len(rows) >= CDC_MAX_OBJECTS:
        ctx.logger.warning("quickbooks.changes: %s answered CDC's maximum of %d objects; the rest "
                           "comes with the next polls (poll more often if this repeats)", entity,
                           CDC_MAX_OBJECTS)
    seen = set(mine.get("seen") or ())
    fresh = [r for r in rows if _row_key(r) not in seen]
    if fresh:
        outcomes = await ctx.handle_many([_change_event(entity, r) for r in fresh])
        if not all(o.done for o in outcomes):
            return False
    if rows:
        newest = max(_instant(r["MetaData"]["LastUpdatedTime"]) for r in rows)
        at_newest = [_row_key(r) for r in rows if _instant(r["MetaData"]["LastUpdatedTime"]) == newest]
        keep = seen | set(at_newest) if newest == since else set(at_newest)
        state[entity] = {"since": newest.isoformat(), "seen": sorted(keep)}
    else:
        state[entity] = {"since": since.isoformat(), "seen": sorted(seen)}
    return True


async def run_changes(ctx: SourceContext, params: dict[str, Any]) -> None:
    """Poll CDC every ``interval`` and hand the changes to the flow."""
    client = _client(ctx)
    entities = params["entities"]
    if isinstance(entities, str):
        entities = [e.strip() for e in entities.split(",") if e.strip()]
    if not entities:
        raise quickbooks_error("VALIDATION", "quickbooks.changes needs at least one entity")
    interval: float = params["interval"]
    lookback: float = params["initial-lookback"]
    while True:
        state = dict(await ctx.load_state() or {})
        for entity in entities:
            now = datetime.now(UTC)
            if not await poll_entity(ctx, client, entity, state, now, lookback):
                break
            await ctx.save_state(state)
        if not await ctx.sleep(interval):
            return


SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec("webhook", run_webhook, (
        Param("path", default="/webhooks/quickbooks", dynamic=False,
              summary="Where splice serve mounts the endpoint"),
        Param("verifier-token", secret=True, dynamic=False,
              summary="Overrides the connection's webhook-verifier-token"),
        Param("entities", "array", dynamic=False, summary="Only these entities (default: all)"),
        Param("all-realms", "boolean", default=False, dynamic=False,
              summary="Accept events of other realms than the connection's"),
        Param("fetch", "boolean", default=False, dynamic=False,
              summary="Read the changed entity and make it the payload"),
        Param("batch-size", "integer", default=50, dynamic=False),
        Param("poll-interval", "duration", default="5s", dynamic=False,
              summary="How often the inbox is checked without a wake-up")),
        summary="QuickBooks webhooks (classic and CloudEvents), signed, deduplicated, durable"),
    SourceSpec("changes", run_changes, (
        Param("entities", "any", required=True, dynamic=False,
              summary="Entities to watch (list or comma-separated)"),
        Param("interval", "duration", default="5m", dynamic=False),
        Param("initial-lookback", "duration", default="1h", dynamic=False,
              summary="How far back the first poll looks (at most 30 days)")),
        summary="Change data capture polling with a stored watermark; deletions included",
        exclusive=True),
)
