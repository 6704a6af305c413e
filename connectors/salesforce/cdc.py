"""``salesforce.change-events``: Change Data Capture over the Streaming API (CometD long polling).

The source handshakes on ``{instance}/cometd/<version>``, subscribes to ``/data/<Object>ChangeEvent``
(or ``/data/ChangeEvents``) with the ``replay`` extension, and long-polls ``/meta/connect``. After each
batch is processed or dead-lettered it saves the last replay id, so a restart resumes where it left
off (Salesforce keeps events 72 hours). A stored replay id that is too old is answered with a
``SystemModstamp`` catch-up poll from the last commit time, then new events only.

When the stream is unavailable (503, no CometD endpoint, no CDC entitlement) the source polls on
``SystemModstamp`` instead (see :mod:`.polling`), then tries the stream again after
``retry-stream-after``, resuming from the stored replay id: nothing is lost, but changes made during
the outage may arrive twice (once polled, once replayed), so keep the flow's writes idempotent.

Events whose ``changeOrigin`` carries one of ``ignore-origins`` (``client=<name>`` from
``Sforce-Call-Options``; ``ignore-own-writes`` adds this connection's ``client-name``) are skipped
but still move the replay id: this stops a write-back flow from triggering itself. While the
source polls instead, ``ignore-own-writes`` skips a record whose only change is this connection's
own write (see :mod:`.echoes`); records handled from the stream count as handled for that check.

With ``fetch-records`` each event becomes one message per record, carrying the record as it is now:
the records behind a batch of events are read with one SOQL query per object and 200 ids (the
configured ``fields``, else every plain field), and for the trigger's own object ``where`` filters
them, as it does when polling. A record that is gone arrives as ``{"Id": ..., "IsDeleted": true}``.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from typing import Any

import anyio

from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.echoes import EchoFilter
from connectors.salesforce.errors import SalesforceError
from connectors.salesforce.polling import (
    FATAL_KINDS,
    POLL_PARAMS,
    ChangePoller,
    salesforce_datetime,
    select_fields,
)
from connectors.salesforce.soql import quote_string
from runtime import Event, Outcome, Param, SourceContext, SourceSpec

__all__ = ["CHANGE_EVENTS", "CometdSession", "StreamUnavailable", "change_event_channel",
           "run_change_events"]

NEW_ONLY, ALL_RETAINED = -1, -2
#: Pauses before connecting again after a connect that came back early with nothing: the first,
#: and the longest (each empty early answer in a row doubles the pause).
_EMPTY_PAUSE, _EMPTY_PAUSE_MAX = 0.1, 5.0
#: Record ids per query when fetching the records behind change events (keeps the URL short).
_FETCH_CHUNK = 200


class StreamUnavailable(Exception):
    """The streaming endpoint cannot be used right now (fall back to polling)."""


class _Rehandshake(Exception):
    """The server forgot our client (``advice.reconnect == "handshake"``)."""


class _ReplayInvalid(Exception):
    """The stored replay id is outside the retention window."""


class CometdSession:
    """One Bayeux client (handshake, subscribe, connect, disconnect) over the connection's HTTP."""

    def __init__(self, client: SalesforceClient, channel: str) -> None:
        self.client = client
        self.channel = channel
        self.path = f"/cometd/{client.settings.api_version}"
        self.client_id: str | None = None
        self.poll_timeout = 110.0
        #: Bayeux ``advice.interval`` of the last connect answer: seconds to wait before the next.
        self.interval = 0.0
        self._empty_in_a_row = 0
        self._ids = itertools.count(1)

    async def _send(self, message: dict[str, Any], read_timeout: float | None = None) -> list[dict[str, Any]]:
        message = {**message, "id": str(next(self._ids))}
        if self.client_id:
            message["clientId"] = self.client_id
        try:
            response = await self.client.request("POST", self.path, json=[message], read_timeout=read_timeout,
                                                 unlimited=read_timeout is not None, context="streaming")
        except SalesforceError as error:
            if error.kind in ("INVALID_SESSION", "AUTHENTICATION", "REQUEST_LIMIT_EXCEEDED"):
                raise
            raise StreamUnavailable(str(error)) from None
        replies = response.json()
        if not isinstance(replies, list):
            raise StreamUnavailable("streaming endpoint answered something other than Bayeux")
        return replies

    @staticmethod
    def _meta(replies: list[dict[str, Any]], channel: str) -> dict[str, Any]:
        return next((r for r in replies if r.get("channel") == channel), {"successful": False, "error": "no reply"})

    async def handshake(self) -> None:
        """Get a ``clientId``; remember the server's long-poll timeout."""
        self.client_id = None
        replies = await self._send({"channel": "/meta/handshake", "version": "1.0", "minimumVersion": "1.0",
                                    "supportedConnectionTypes": ["long-polling"], "ext": {"replay": True}})
        reply = self._meta(replies, "/meta/handshake")
        if not reply.get("successful"):
            raise StreamUnavailable(f"handshake refused: {reply.get('error')}")
        self.client_id = str(reply["clientId"])
        timeout = (reply.get("advice") or {}).get("timeout")
        if isinstance(timeout, int | float):
            self.poll_timeout = timeout / 1000.0

    async def subscribe(self, replay_id: int) -> None:
        """Subscribe to the channel from ``replay_id`` (-1 new only, -2 all retained)."""
        replies = await self._send({"channel": "/meta/subscribe", "subscription": self.channel,
                                    "ext": {"replay": {self.channel: replay_id}}})
        reply = self._meta(replies, "/meta/subscribe")
        if not reply.get("successful"):
            error = str(reply.get("error"))
            if "replayId" in error:
                raise _ReplayInvalid(error)
            raise StreamUnavailable(f"subscribe refused: {error}")

    async def connect(self) -> list[dict[str, Any]]:
        """Long-poll once; the delivered event messages (possibly none)."""
        replies = await self._send({"channel": "/meta/connect", "connectionType": "long-polling"},
                                   read_timeout=self.poll_timeout + 30.0)
        reply = self._meta(replies, "/meta/connect")
        advice = reply.get("advice") or {}
        if not reply.get("successful"):
            if advice.get("reconnect") == "handshake":
                raise _Rehandshake(str(reply.get("error")))
            raise StreamUnavailable(f"connect refused: {reply.get('error')}")
        interval = advice.get("interval")
        self.interval = interval / 1000.0 if isinstance(interval, int | float) and interval > 0 else 0.0
        return [r for r in replies if not str(r.get("channel", "")).startswith("/meta/")]

    def pause_before_next(self, delivered: int, waited: float) -> float:
        """Seconds to wait before the next connect, after one that delivered ``delivered`` events
        and took ``waited`` seconds.

        The server's ``advice.interval`` always. Beyond it: a connect holds until there is something
        to deliver or its long-poll timeout passes, so one that comes back with nothing well before
        that timeout means a server not holding connects; connecting again at once would spin as
        fast as the loop goes, so such answers in a row get growing pauses (up to 5 s) instead.
        """
        if delivered or waited >= self.poll_timeout / 2:
            self._empty_in_a_row = 0
            return self.interval
        self._empty_in_a_row += 1
        backoff = min(_EMPTY_PAUSE_MAX, _EMPTY_PAUSE * 2.0 ** min(self._empty_in_a_row - 1, 16))
        return max(self.interval, backoff)

    async def disconnect(self) -> None:
        """Tell the server we are gone (best effort)."""
        if self.client_id:
            try:
                await self._send({"channel": "/meta/disconnect"})
            except (StreamUnavailable, SalesforceError):
                pass
            self.client_id = None


def change_event_channel(obj: str) -> str:
    """An object's CDC channel: ``/data/OpportunityChangeEvent``; a custom object's drops the ``c``
    of ``__c`` (``/data/Project_Milestone__ChangeEvent``)."""
    return f"/data/{obj.removesuffix('__c') + '__' if obj.endswith('__c') else obj}ChangeEvent"


class _ChangeEventSource:
    def __init__(self, ctx: SourceContext, params: dict[str, Any]) -> None:
        self.ctx = ctx
        self.client: SalesforceClient = ctx.connection
        self.object: str | None = params.get("object")
        self.channel = params.get("channel") or (change_event_channel(self.object) if self.object else
                                                 "/data/ChangeEvents")
        self.params = params
        self.ignore = {str(o) for o in params.get("ignore-origins") or ()}
        self.echoes: EchoFilter | None = None
        if params.get("ignore-own-writes"):
            self.ignore.add(self.client.settings.client_name)
            if self.object:
                self.echoes = EchoFilter(self.client.own_writes, self.object)
        self.fetch: bool = params["fetch-records"]
        self.state: dict[str, Any] = {}
        self.handled: set[int] = set()
        #: Set while changes were being polled: the next subscription must close the gap behind it.
        self.polled = False
        self.broken = False

    async def save(self) -> None:
        await self.ctx.save_state(dict(self.state))

    def _ignored(self, header: dict[str, Any]) -> bool:
        origin = str(header.get("changeOrigin") or "")
        return any(f"client={name}" in origin for name in self.ignore)

    @staticmethod
    def _header(message: dict[str, Any]) -> dict[str, Any]:
        return ((message.get("data") or {}).get("payload") or {}).get("ChangeEventHeader") or {}

    @staticmethod
    def _event(message: dict[str, Any]) -> dict[str, Any]:
        """The delivery's ``data.event`` (where the replay id is), ``{}`` when absent."""
        return (message.get("data") or {}).get("event") or {}

    def _attributes(self, message: dict[str, Any]) -> dict[str, Any]:
        header = self._header(message)
        return {"channel": message.get("channel"),
                "replayId": int(self._event(message)["replayId"]),
                "source": "stream", "changeType": header.get("changeType"),
                "entityName": header.get("entityName"), "recordIds": header.get("recordIds"),
                "changeOrigin": header.get("changeOrigin"),
                "commitTimestamp": header.get("commitTimestamp")}

    async def _fetch(self, messages: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any] | None]:
        """The current records behind ``messages``, one query per object and 200 ids.

        ``None`` marks a record that is gone, or (for the trigger's own object) that does not match
        ``where``; records of deleted changes and wildcard ids are not fetched.
        """
        wanted: dict[str, list[str]] = {}
        for message in messages:
            header = self._header(message)
            if str(header.get("changeType", "")).endswith("DELETE"):
                continue
            entity = str(header.get("entityName"))
            wanted.setdefault(entity, []).extend(
                str(i) for i in header.get("recordIds") or () if "*" not in str(i))
        found: dict[tuple[str, str], dict[str, Any] | None] = {}
        for entity, ids in wanted.items():
            own = entity == self.object
            fields = await select_fields(self.client, entity, self.params.get("fields") if own else None)
            where = f" AND ({self.params['where']})" if own and self.params.get("where") else ""
            unique = list(dict.fromkeys(ids))
            for start in range(0, len(unique), _FETCH_CHUNK):
                chunk = unique[start:start + _FETCH_CHUNK]
                soql = (f"SELECT {', '.join(fields)} FROM {entity} "
                        f"WHERE Id IN ({', '.join(quote_string(i) for i in chunk)}){where}")
                found.update({(entity, i): None for i in chunk})
                async for record in await self.client.query(soql):
                    found[(entity, str(record["Id"]))] = record
        return found

    def _events(self, message: dict[str, Any],
                fetched: dict[tuple[str, str], dict[str, Any] | None]) -> list[Event]:
        payload = (message.get("data") or {}).get("payload") or {}
        header = self._header(message)
        attributes = self._attributes(message)
        replay_id = attributes["replayId"]
        if not self.fetch:
            return [Event(payload=payload, attributes=attributes, id=f"cdc:{self.channel}:{replay_id}")]
        entity = str(header.get("entityName"))
        # A deletion is never looked up: the record of an earlier change in the same batch (a
        # roll-up from its line items being deleted first) was found gone, which is no answer here.
        deleted = str(header.get("changeType", "")).endswith("DELETE")
        out = []
        for record_id in header.get("recordIds") or ():
            key = (entity, str(record_id))
            record: dict[str, Any] | None = {"Id": record_id, "IsDeleted": True}
            if key in fetched and not deleted:
                record = fetched[key]
                if record is None:
                    if entity == self.object and self.params.get("where"):
                        continue  # exists but does not match where (or is gone): nothing to do
                    record = {"Id": record_id, "IsDeleted": True}
            out.append(Event(payload=record, attributes={**attributes, "recordId": record_id},
                             id=f"cdc:{self.channel}:{replay_id}:{record_id}"))
        return out

    async def handle(self, messages: list[dict[str, Any]]) -> bool:
        """Hand over new events; advance the replay id over the done prefix. ``False`` on a failure."""
        todo, outcomes = await self._hand_over(messages)
        return await self._advance(todo, outcomes)

    async def _hand_over(self, messages: list[dict[str, Any]]
                         ) -> tuple[list[tuple[int, dict[str, Any], list[Event]]], list[Outcome]]:
        """Run the flow for a delivery's new events (their records fetched first): what each
        message became, and the events' outcomes."""
        fresh: list[tuple[int, dict[str, Any], dict[str, Any], bool]] = []
        for message in messages:
            replay_id = int(self._event(message).get("replayId", 0))
            if replay_id <= int(self.state.get("replayId") or -3):
                continue
            header = self._header(message)
            skip = replay_id in self.handled or self._ignored(header)
            fresh.append((replay_id, message, header, skip))
        fetched = await self._fetch([m for _, m, _, skip in fresh if not skip]) if self.fetch else {}
        todo: list[tuple[int, dict[str, Any], list[Event]]] = [
            (replay_id, header, [] if skip else self._events(message, fetched))
            for replay_id, message, header, skip in fresh]
        outcomes = await self.ctx.handle_many([e for _, _, events in todo for e in events])
        return todo, outcomes

    async def _advance(self, todo: list[tuple[int, dict[str, Any], list[Event]]],
                       outcomes: list[Outcome]) -> bool:
        """Advance the replay id over the done prefix of a delivery (after every earlier one):
        ``False`` when one of its events failed, and from then on, for the rest of the session."""
        position, ok = 0, not self.broken
        for replay_id, header, events in todo:
            done = all(o.done for o in outcomes[position:position + len(events)])
            position += len(events)
            if done and self.echoes is not None and self.fetch:  # the records as handled
                for event in events:
                    if header.get("entityName") == self.object and not event.payload.get("IsDeleted"):
                        self.echoes.remember(event.payload)
            if not done:
                if ok and self.state.get("replayId") is None:
                    # First event ever failed: resume just before it, not at "new events only".
                    self.state["replayId"] = replay_id - 1
                ok = False
                continue
            self.handled.add(replay_id)
            if ok:
                self.state["replayId"] = replay_id
                stamp = header.get("commitTimestamp")
                if isinstance(stamp, int | float):
                    self.state["watermark"] = salesforce_datetime(datetime.fromtimestamp(stamp / 1000, UTC))
        await self.save()
        # Ids at or below the saved replay id are skipped anyway; keep only those beyond it.
        floor = int(self.state.get("replayId", -3))
        self.handled = {r for r in self.handled if r > floor}
        self.broken = self.broken or not ok
        return ok

    async def _deliver(self, messages: list[dict[str, Any]], before: anyio.Event | None,
                       done: anyio.Event, window: anyio.Semaphore) -> None:
        """One delivery, run beside the ones before it: its events are handled at once, and the
        replay id moves over them only after every earlier delivery has moved it."""
        try:
            todo, outcomes = await self._hand_over(messages)
            if before is not None:
                await before.wait()
            await self._advance(todo, outcomes)
        finally:
            done.set()
            window.release()

    async def catch_up(self, until: float | None) -> None:
        """Poll on SystemModstamp from the stored watermark (once, or until ``until``)."""
        if not self.object:
            self.ctx.logger.warning("salesforce.change-events: %s cannot be polled; waiting", self.channel)
            await self.ctx.sleep(max(0.0, (until or time.monotonic()) - time.monotonic()))
            return
        fields = await select_fields(self.client, self.object, self.params.get("fields"))

        async def save(poll_state: dict[str, Any]) -> None:
            self.state.update(poll_state)
            await self.save()

        poller = ChangePoller(self.client, self.object, fields, where=self.params.get("where"),
                              overlap=self.params["overlap"], batch_size=self.params["batch-size"],
                              state={"watermark": self.state.get("watermark"), "seen": self.state.get("seen")},
                              save=save, echoes=self.echoes, pipeline=self.params["pipeline"])
        interval: float = self.params["fallback-interval"]
        while not self.ctx.stopping:
            await poller.poll(self.ctx)
            if until is None or time.monotonic() >= until or not await self.ctx.sleep(interval):
                return

    async def stream(self) -> None:
        """Handshake, subscribe (from the stored replay id) and long-poll until stopping."""
        session = CometdSession(self.client, self.channel)
        await session.handshake()
        stored = self.state.get("replayId")
        start = stored if stored is not None else (
            ALL_RETAINED if self.params.get("start") == "retained" else NEW_ONLY)
        try:
            await session.subscribe(int(start))
            if stored is None and (self.polled or start == NEW_ONLY):
                # No replay id yet and only new events: changes between the watermark (the first
                # start, or the last poll) and this subscription are only reachable by one poll;
                # events from here on are queued for this session (one in between may come twice).
                await self.catch_up(None)
        except _ReplayInvalid as error:
            self.ctx.logger.warning("salesforce.change-events: %s; catching up by polling", error)
            await session.subscribe(NEW_ONLY)
            await self.catch_up(None)
        self.polled = False
        self.broken = False
        # Deliveries overlap: the next long poll is made while the events of the last ones still
        # run (at most ``pipeline`` deliveries at once), so a burst is not handled in waves of
        # one delivery each; the replay id still moves in order, over what is done.
        window = anyio.Semaphore(self.params["pipeline"])
        try:
            async with anyio.create_task_group() as deliveries:
                last: anyio.Event | None = None
                while not self.ctx.stopping and not self.broken:
                    # A server that answers at once (an emulator mounted in process, a backlog of
                    # events) must not keep the event loop from the rest of the process.
                    await anyio.lowlevel.checkpoint()
                    started = time.monotonic()
                    try:
                        messages = await session.connect()
                    except _Rehandshake:
                        break
                    if messages:
                        await window.acquire()
                        done = anyio.Event()
                        deliveries.start_soon(self._deliver, messages, last, done, window)
                        last = done
                    pause = session.pause_before_next(len(messages), time.monotonic() - started)
                    if pause and not await self.ctx.sleep(pause):
                        break
            if self.broken:
                await self.ctx.sleep(self.params["retry-delay"])
                return  # a new session replays from the saved id
        finally:
            await session.disconnect()

    async def run(self) -> None:
        self.state = dict(await self.ctx.load_state() or {})
        if not self.state.get("watermark"):
            self.state["watermark"] = salesforce_datetime(datetime.now(UTC))
        retry_stream: float = self.params["retry-stream-after"]
        while not self.ctx.stopping:
            try:
                await self.stream()
            except StreamUnavailable as error:
                self.ctx.logger.warning("salesforce.change-events: stream unavailable (%s); polling", error)
                self.polled = True
                try:
                    await self.catch_up(time.monotonic() + retry_stream)
                except SalesforceError as poll_error:
                    if poll_error.kind in FATAL_KINDS:
                        raise
                    self.ctx.logger.warning("salesforce.change-events: polling failed: %s", poll_error)
                    if not await self.ctx.sleep(max(1.0, poll_error.retry_after or 0.0)):
                        return
            except SalesforceError as error:
                if error.kind in FATAL_KINDS or error.kind in ("INVALID_SESSION", "AUTHENTICATION"):
                    raise
                self.ctx.logger.warning("salesforce.change-events: %s", error)
                if not await self.ctx.sleep(max(1.0, error.retry_after or 0.0)):
                    return


async def run_change_events(ctx: SourceContext, params: dict[str, Any]) -> None:
    """Deliver change events until the flow stops (see the module docstring)."""
    if not params.get("object") and not params.get("channel"):
        raise SalesforceError("change-events needs object or channel", error_type="SALESFORCE:VALIDATION")
    await _ChangeEventSource(ctx, params).run()


CHANGE_EVENTS = SourceSpec(
    "change-events", run_change_events,
    summary="Change Data Capture events over the Streaming API, with replay and a polling fallback",
    exclusive=True,
    params=(*(p for p in POLL_PARAMS if p.name != "object"),
            Param("object", dynamic=False, examples=("Opportunity",),
                  summary="Object whose /data/<Object>ChangeEvent channel to follow (and poll as fallback)"),
            Param("channel", dynamic=False, examples=("/data/ChangeEvents",),
                  summary="Channel to subscribe to instead of the object's own"),
            Param("start", enum=("new", "retained"), default="new", dynamic=False,
                  summary="Without a stored replay id: only new events, or every retained one (72 h)"),
            Param("ignore-origins", type="array", dynamic=False,
                  schema={"type": "array", "items": {"type": "string"}},
                  summary="Skip events whose changeOrigin has client=<one of these>"),
            Param("ignore-own-writes", type="boolean", default=False, dynamic=False,
                  summary="Skip events caused by this connection's own writes (its client-name; while "
                          "polling, records whose only change is its own write)"),
            Param("fetch-records", type="boolean", default=False, dynamic=False,
                  summary="Payload = the current record (one event per record id, fetched by one "
                          "query per 200 ids, filtered by where) instead of the change event"),
            Param("fallback-interval", type="duration", default="30s", dynamic=False,
                  summary="Polling interval while the stream is unavailable"),
            Param("retry-stream-after", type="duration", default="5m", dynamic=False,
                  summary="How long to poll before trying the stream again"),
            Param("retry-delay", type="duration", default="5s", dynamic=False,
                  summary="Pause before replaying events whose handling failed"),
            Param("pipeline", type="integer", default=4, dynamic=False,
                  summary="Deliveries of events handled at once (the next is read while earlier "
                          "ones run; the replay id moves in order over what is done)")),
)
