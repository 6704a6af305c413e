"""``salesforce.change-events``: CDC over CometD, replay id persistence, echo suppression, and the
polling fallback when the stream is unavailable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from connectors.salesforce.cdc import CHANGE_EVENTS
from connectors.salesforce.polling import salesforce_datetime
from runtime.testing import typed_call, wait_until

pytestmark = pytest.mark.anyio

run_change_events = typed_call(CHANGE_EVENTS)

PARAMS = {"object": "Account", "fields": ["Name"], "overlap": "1m", "fallback-interval": 0, "start": "retained",
          "retry-stream-after": 0, "retry-delay": 0}


async def _run_while(ctx: Any, params: dict[str, Any], action: Any) -> None:
    """Run the source; call ``action`` once it is subscribed; give up after 10 s."""
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_change_events, ctx, params)
            await anyio.sleep(0.05)
            await action()


async def test_stream_delivers_and_restart_resumes_from_replay_id(app: Any, client: Any, store: Any,
                                                                  source_context: Any) -> None:
    """Three events stream in; two made while stopped arrive after a restart, none twice."""
    org = app.state.emulator.org
    first = source_context(client, store, stop_after=3)

    async def write_three() -> None:
        for i in range(3):
            org.create("Account", {"Name": f"Live {i}"}, origin="crm-user")

    await _run_while(first, dict(PARAMS), write_three)
    assert [e.payload["Name"] for e in first.events] == ["Live 0", "Live 1", "Live 2"]
    assert first.events[0].attributes["changeType"] == "CREATE"
    assert first.events[0].attributes["source"] == "stream"
    saved = first.state["replayId"]
    assert saved == first.events[-1].attributes["replayId"]
    org.create("Account", {"Name": "While down 1"})
    account = org.create("Account", {"Name": "While down 2"})
    second = source_context(client, store, stop_after=3, state=first.state)

    async def update_one() -> None:
        org.update("Account", account["Id"], {"Phone": "555"})

    await _run_while(second, dict(PARAMS), update_one)
    assert [e.payload.get("Name") for e in second.events] == ["While down 1", "While down 2", None]
    assert second.events[-1].payload["Phone"] == "555"
    assert second.events[-1].payload["ChangeEventHeader"]["changedFields"][0] == "Phone"


async def test_own_writes_are_ignored_but_advance_replay(app: Any, client: Any, store: Any,
                                                         source_context: Any) -> None:
    """Writes through this connection (client=splice) do not trigger the flow."""
    org = app.state.emulator.org
    ctx = source_context(client, store, stop_after=1)

    async def writes() -> None:
        await client.create("Account", {"Name": "Echo"})
        org.create("Account", {"Name": "From a user"}, origin="web")

    await _run_while(ctx, {**PARAMS, "ignore-own-writes": True}, writes)
    assert [e.payload["Name"] for e in ctx.events] == ["From a user"]
    assert ctx.state["replayId"] == org.events[-1]["replayId"]


async def test_failed_event_is_redelivered(app: Any, client: Any, store: Any, source_context: Any) -> None:
    """A change event whose handling failed comes again from the saved replay id."""
    org = app.state.emulator.org
    ctx = source_context(client, store, stop_after=2)
    ctx.fail = {f"cdc:/data/AccountChangeEvent:{len(org.events) + 1}": 1}

    async def writes() -> None:
        org.create("Account", {"Name": "A"})
        org.create("Account", {"Name": "B"})

    await _run_while(ctx, dict(PARAMS), writes)
    assert [e.payload["Name"] for e in ctx.events] == ["B", "A"]  # B went through, A came again
    assert ctx.state["replayId"] == org.events[-1]["replayId"]


async def test_fetch_records_gives_full_records(app: Any, client: Any, store: Any, source_context: Any) -> None:
    """With fetch-records and no field list the payload is the whole current record."""
    org = app.state.emulator.org
    ctx = source_context(client, store, stop_after=1)

    async def write() -> None:
        org.create("Account", {"Name": "Full", "QB_Customer_Id__c": "7"})

    await _run_while(ctx, {k: v for k, v in PARAMS.items() if k != "fields"} | {"fetch-records": True},
                     write)
    assert ctx.events[0].payload["QB_Customer_Id__c"] == "7"
    assert ctx.events[0].payload["SystemModstamp"].endswith("+0000")


async def test_fetch_records_reads_a_backlog_in_one_query_and_applies_where(
        app: Any, client: Any, store: Any, source_context: Any) -> None:
    """A backlog of 40 changes costs one query, not one call per record; where filters it, as
    polling does, and the replay id still moves past the records it filtered out."""
    emulator = app.state.emulator
    for i in range(40):
        emulator.org.create("Account", {"Name": f"{'Skip' if i % 2 else 'Keep'} {i:02d}"})
    ctx = source_context(client, store, stop_after=20)
    before = emulator.request_count

    async def nothing() -> None:
        return None

    await _run_while(ctx, {**PARAMS, "fetch-records": True, "where": "Name LIKE 'Keep%'"}, nothing)
    assert [e.payload["Name"] for e in ctx.events] == [f"Keep {i:02d}" for i in range(0, 40, 2)]
    assert set(ctx.events[0].payload) == {"attributes", "Id", "SystemModstamp", "Name"}
    assert ctx.state["replayId"] == emulator.org.events[-1]["replayId"]  # "Skip 39" included
    assert emulator.request_count - before < 10  # handshake, subscribe, connects and one query


async def test_a_deletion_after_a_change_of_the_same_record_in_one_batch_is_delivered(
        app: Any, client: Any, store: Any, source_context: Any) -> None:
    """With fetch-records and where, a record changed then deleted (one batch) arrives as deleted:
    the change finds it gone and is skipped, the deletion is not."""
    org = app.state.emulator.org
    kept = org.create("Account", {"Name": "Keep then delete"})
    org.update("Account", kept["Id"], {"Name": "Keep, changed"})
    org.delete("Account", kept["Id"])
    ctx = source_context(client, store, stop_after=1)

    async def nothing() -> None:
        return None

    await _run_while(ctx, {**PARAMS, "fetch-records": True, "where": "Name LIKE 'Keep%'"}, nothing)
    assert [e.payload for e in ctx.events] == [{"Id": kept["Id"], "IsDeleted": True}]


async def test_a_change_before_the_first_subscription_is_not_lost(app: Any, client: Any, store: Any,
                                                                    source_context: Any) -> None:
    """A fresh trigger subscribes for new events only; what changed between its first start
    (its watermark) and the subscription is polled once, so it still arrives."""
    org = app.state.emulator.org
    started = datetime.now(UTC) - timedelta(seconds=5)
    org.create("Account", {"Name": "Closed in the gap"})
    ctx = source_context(client, store, stop_after=1, state={"watermark": salesforce_datetime(started)})

    async def nothing() -> None:
        return None

    await _run_while(ctx, {**PARAMS, "start": "new", "fetch-records": True}, nothing)
    assert [e.payload["Name"] for e in ctx.events] == ["Closed in the gap"]


async def test_falls_back_to_polling_and_returns_to_the_stream(app: Any, client: Any, store: Any,
                                                               source_context: Any) -> None:
    """Stream down: changes arrive by polling; stream back: the source subscribes again, nothing lost."""
    emu = app.state.emulator
    emu.faults.update({"streaming_unavailable": True})
    ctx = source_context(client, store, stop_after=2)

    def subscribed() -> bool:
        return any(c["subscriptions"] for c in emu.streaming_clients.values())

    async def outage() -> None:
        emu.org.create("Account", {"Name": "Polled"})
        await wait_until(lambda: ctx.events)
        emu.faults.update({"streaming_unavailable": False})
        await wait_until(subscribed)
        emu.org.create("Account", {"Name": "After the outage"})

    await _run_while(ctx, {**PARAMS, "start": "new"}, outage)
    assert [(e.payload["Name"], e.attributes["source"]) for e in ctx.events[:1]] == [("Polled", "poll")]
    # Right after subscribing the source polls once more (closing the gap behind the subscription),
    # so the second change arrives by whichever path sees it first (across a switch of paths a
    # change may come twice: at least once, never lost).
    assert [e.payload.get("Name") for e in ctx.events] == ["Polled", "After the outage"]


async def test_expired_replay_id_catches_up_by_polling(store: Any, client: Any, app: Any,
                                                       source_context: Any) -> None:
    """A stored replay id older than retention: a SystemModstamp poll covers the gap."""
    emu = app.state.emulator
    emu.org.event_retention = 2
    for i in range(5):
        emu.org.create("Account", {"Name": f"Old {i}"})
    state = {"replayId": 1, "watermark": "2020-01-01T00:00:00.000+0000"}
    ctx = source_context(client, store, stop_after=5, state=state)

    async def nothing() -> None:
        pass

    await _run_while(ctx, dict(PARAMS), nothing)
    assert sorted(e.payload["Name"] for e in ctx.events) == [f"Old {i}" for i in range(5)]
    assert {e.attributes["source"] for e in ctx.events} == {"poll"}


async def test_connects_answered_at_once_with_nothing_are_paced(app: Any, store: Any, source_context: Any,
                                                                 make_connection_context: Any) -> None:
    """A server that answers every long poll at once with no events (not holding connects as
    CometD does) gets growing pauses between connects, not a client connecting as fast as it can."""
    from connectors.salesforce.plugin import CONNECTOR

    from .conftest import SETTINGS

    connects = 0
    pauses: list[float] = []

    async def impatient(scope: Any, receive: Any, send: Any) -> None:
        nonlocal connects
        if scope["type"] == "http" and scope["path"].startswith("/cometd/"):
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            if b"/meta/connect" in body:
                connects += 1
                reply = b'[{"channel": "/meta/connect", "successful": true, "advice": {"interval": 0}}]'
                await send({"type": "http.response.start", "status": 200,
                            "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": reply})
                return

            async def replay() -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            await app(scope, replay, send)
            return
        await app(scope, receive, send)

    async with CONNECTOR.connection.connect(dict(SETTINGS), make_connection_context(impatient, store)) as client:
        ctx = source_context(client, store, polls=5)
        slept = ctx.sleep

        async def sleep(seconds: float) -> bool:
            pauses.append(seconds)
            return bool(await slept(seconds))

        ctx.sleep = sleep
        with anyio.fail_after(10):
            await run_change_events(ctx, {**PARAMS, "start": "new", "fallback-interval": "1h"})
    # The catch-up poll after subscribing sleeps nothing (it polls once); every empty early answer
    # is followed by a pause, each longer than the one before until the cap.
    assert connects == len(pauses) == 5
    assert pauses == sorted(pauses) and pauses[0] > 0 and pauses[-1] > pauses[0]


async def test_a_slow_delivery_does_not_hold_up_the_next_and_the_replay_id_waits_for_it(
        app: Any, client: Any, store: Any, source_context: Any) -> None:
    """Deliveries overlap: the next one is handled while an earlier one still runs (a burst is
    not handled in waves), and the saved replay id never passes an event that is not done."""
    org = app.state.emulator.org
    slow_started, release = anyio.Event(), anyio.Event()
    saved_while_slow: list[Any] = []

    class Context(source_context):  # type: ignore[misc, valid-type]
        async def handle_many(self, events: Any) -> Any:
            events = list(events)
            names = [e.payload.get("Name") for e in events]
            if "Slow" in names:
                slow_started.set()
                await release.wait()
            if "Fast" in names:
                saved_while_slow.append((self.state or {}).get("replayId"))
                outcomes = await super().handle_many(events)
                release.set()
                return outcomes
            return await super().handle_many(events)

    ctx = Context(client, store, stop_after=2)

    async def writes() -> None:
        slow = org.create("Account", {"Name": "Slow"})
        await slow_started.wait()  # the first delivery is being handled: the next is another
        org.create("Account", {"Name": "Fast"})
        writes.slow_replay = org.events[-2]["replayId"]  # type: ignore[attr-defined]
        assert slow["Name"] == "Slow"

    await _run_while(ctx, dict(PARAMS), writes)
    assert [e.payload["Name"] for e in ctx.events] == ["Fast", "Slow"]
    slow_replay = writes.slow_replay  # type: ignore[attr-defined]
    assert saved_while_slow and (saved_while_slow[0] is None or saved_while_slow[0] < slow_replay)
    assert ctx.state["replayId"] == org.events[-1]["replayId"]
