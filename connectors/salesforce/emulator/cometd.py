"""The Streaming API's CometD endpoint (``/cometd/NN.N``) delivering Change Data Capture events.

Bayeux over long polling: ``/meta/handshake`` gives a ``clientId``; ``/meta/subscribe`` names a
channel (``/data/ChangeEvents`` or ``/data/<Object>ChangeEvent``) and, through the ``replay``
extension, where to start (``-1`` new events only, ``-2`` everything retained, or a replay id);
``/meta/connect`` waits up to the long-poll timeout for events and returns them with the connect
answer. A replay id older than the retained window is refused, as Salesforce does after 72 h.
"""

from __future__ import annotations

import bisect
import json
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors.salesforce.emulator.errors import ApiError
from connectors.salesforce.emulator.schema import change_event_channel
from connectors.salesforce.emulator.state import Emulator

__all__ = ["cometd_endpoint"]

_MAX_BATCH = 200


def _advice(emu: Emulator) -> dict[str, Any]:
    return {"reconnect": "retry", "interval": 0, "timeout": int(emu.options.long_poll_timeout * 1000)}


def _channel_ok(emu: Emulator, channel: str) -> bool:
    if channel == "/data/ChangeEvents":
        return True
    if channel.startswith("/data/") and channel.endswith("ChangeEvent"):
        return any(change_event_channel(name).lower() == channel.lower() for name in emu.org.schemas)
    return False


def _matches(subscribed: str, channel: str) -> bool:
    return subscribed == channel or subscribed == "/data/ChangeEvents"


def _subscribe(emu: Emulator, client: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    channel = str(message.get("subscription") or "")
    answer = {"channel": "/meta/subscribe", "clientId": message.get("clientId"), "subscription": channel,
              "id": message.get("id")}
    if not _channel_ok(emu, channel):
        return {**answer, "successful": False, "error": f"400::The channel you requested to subscribe to "
                                                        f"does not exist {{{channel}}}"}
    replay = int(((message.get("ext") or {}).get("replay") or {}).get(channel, -1))
    events = emu.org.events
    oldest = events[0]["replayId"] if events else None
    latest = events[-1]["replayId"] if events else 0
    if replay == -1:
        position = latest
    elif replay == -2:
        position = (oldest - 1) if oldest is not None else 0
    elif oldest is not None and replay < oldest - 1 or replay > latest:
        return {**answer, "successful": False,
                "error": f"400::The replayId {{{replay}}} you provided was invalid.  Please provide a valid "
                         f"ID, -2 to replay all events, or -1 to replay only new events."}
    else:
        position = replay
    client["subscriptions"][channel] = position
    return {**answer, "successful": True}


def _pending(emu: Emulator, subs: dict[str, int]) -> list[tuple[str, dict[str, Any]]]:
    """``(subscribed channel, event)`` for the next events past the client's positions (at most a
    batch); the positions move past every event looked at, delivered or of no interest to the
    client, so the next look starts where this one ended."""
    if not subs:
        return []
    events = emu.org.events
    start = bisect.bisect_right(events, min(subs.values()), key=lambda e: int(e["replayId"]))
    out: list[tuple[str, dict[str, Any]]] = []
    seen = None
    for event in events[start:]:
        seen = int(event["replayId"])
        channels = [c for c, pos in subs.items() if _matches(c, event["channel"]) and seen > pos]
        if channels:
            out.append((channels[0], event))
            if len(out) >= _MAX_BATCH:
                break
    if seen is not None:
        for channel, position in subs.items():
            subs[channel] = max(position, seen)
    return out


async def _connect(emu: Emulator, client_id: str, client: dict[str, Any],
                   message: dict[str, Any]) -> list[dict[str, Any]]:
    """Answer with the client's next events, waiting up to the long-poll timeout for some.

    Events on channels the client did not subscribe to do not end the wait: answering them at
    once with nothing would make the client connect again at once, and again, as fast as it can.
    """
    subs: dict[str, int] = client["subscriptions"]
    found: list[tuple[str, dict[str, Any]]] = []

    def ready() -> bool:
        found.extend(_pending(emu, subs))
        return bool(found)

    await emu.org.wait_for_events(ready, emu.options.long_poll_timeout)
    delivered = [{"channel": channel, "data": {"schema": event["schema"], "payload": event["payload"],
                                              "event": {"replayId": event["replayId"]}}}
                 for channel, event in found]
    return [*delivered, {"channel": "/meta/connect", "clientId": client_id, "successful": True,
                         "id": message.get("id"), "advice": _advice(emu)}]


async def cometd_endpoint(request: Request) -> Response:
    """``POST /cometd/{version}``: a JSON array of Bayeux messages in, a JSON array out."""
    emu: Emulator = request.app.state.emulator
    if emu.faults.streaming_unavailable:
        return JSONResponse([{"message": "Streaming API is temporarily unavailable",
                              "errorCode": "SERVER_UNAVAILABLE"}], status_code=503)
    try:
        emu.check_token(request.headers.get("authorization"))
    except ApiError as error:
        return JSONResponse(error.body(), status_code=error.status)
    try:
        messages = json.loads(await request.body() or b"[]")
    except ValueError:
        return JSONResponse([{"successful": False, "error": "400::Bad JSON"}], status_code=400)
    if isinstance(messages, dict):
        messages = [messages]
    replies: list[dict[str, Any]] = []
    for message in messages:
        channel = message.get("channel")
        client_id = str(message.get("clientId") or "")
        client = emu.streaming_clients.get(client_id)
        if channel == "/meta/handshake":
            client_id = secrets.token_hex(12)
            emu.streaming_clients[client_id] = {"subscriptions": {}}
            replies.append({"channel": channel, "version": "1.0", "successful": True, "clientId": client_id,
                            "supportedConnectionTypes": ["long-polling"], "minimumVersion": "1.0",
                            "ext": {"replay": True, "payload.format": True}, "advice": _advice(emu),
                            "id": message.get("id")})
        elif client is None:
            replies.append({"channel": channel, "successful": False, "clientId": client_id,
                            "error": "403::Unknown client", "id": message.get("id"),
                            "advice": {"reconnect": "handshake", "interval": 0}})
        elif channel == "/meta/subscribe":
            replies.append(_subscribe(emu, client, message))
        elif channel == "/meta/unsubscribe":
            client["subscriptions"].pop(message.get("subscription"), None)
            replies.append({"channel": channel, "successful": True, "clientId": client_id,
                            "subscription": message.get("subscription"), "id": message.get("id")})
        elif channel == "/meta/connect":
            replies.extend(await _connect(emu, client_id, client, message))
        elif channel == "/meta/disconnect":
            emu.streaming_clients.pop(client_id, None)
            replies.append({"channel": channel, "successful": True, "clientId": client_id,
                            "id": message.get("id")})
        else:
            replies.append({"channel": channel, "successful": False, "error": "400::Unknown channel",
                            "id": message.get("id")})
    return JSONResponse(replies)
