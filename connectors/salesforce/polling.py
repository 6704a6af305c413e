"""``salesforce.changes``: poll an object on ``SystemModstamp``, at least once and without repeats.

Each poll asks for ``SystemModstamp >= watermark - overlap`` ordered by ``SystemModstamp, Id`` and
streams every page. The overlap re-reads the last minutes because a long transaction can commit rows
stamped before the previous poll's high-water mark; rows already handled are skipped by their
``(Id, SystemModstamp)`` pair, kept for exactly the overlap window. The watermark and that window
are saved only after ``ctx.handle_many`` says the batch was processed or dead-lettered, so a crash
replays at most the unsaved batch and a restart loses nothing. An event whose handling failed stops
the watermark: it and everything after it come again on the next poll (done ones are skipped).
Up to ``pipeline`` batches of one poll run at once; the watermark still moves in order.

With ``ignore-own-writes`` a polled record whose only change is this connection's own write (a
flow's write-back) is skipped like a handled one, as the stream skips its change event (see
:mod:`.echoes`); a change by anybody else to any field is handed over.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.echoes import EchoFilter
from connectors.salesforce.soql import format_datetime, parse_datetime
from runtime import Event, Param, SourceContext

__all__ = ["FATAL_KINDS", "IGNORE_OWN_WRITES", "POLL_PARAMS", "ChangePoller", "salesforce_datetime",
           "select_fields"]

#: Errors that mean the source's configuration is wrong: retrying cannot help.
FATAL_KINDS = frozenset({"INVALID_FIELD", "MALFORMED_QUERY", "INVALID_TYPE", "NOT_FOUND", "FORBIDDEN"})
_SKIP_TYPES = frozenset({"address", "location", "base64", "complexvalue"})


def salesforce_datetime(value: datetime) -> str:
    """The REST form of a datetime (``...000+0000``)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


async def select_fields(client: SalesforceClient, sobject: str, fields: list[str] | None) -> list[str]:
    """The configured fields (plus Id and SystemModstamp), or every plain field from describe."""
    if not fields:
        described = await client.describe(sobject)
        fields = [f["name"] for f in described.get("fields", []) if f.get("type") not in _SKIP_TYPES]
    out = list(dict.fromkeys(["Id", "SystemModstamp", *fields]))
    return out


class ChangePoller:
    """Watermark, overlap window and de-duplication for one object; its state is JSON."""

    def __init__(self, client: SalesforceClient, sobject: str, fields: list[str], *, where: str | None = None,
                 overlap: float = 120.0, batch_size: int = 200, include_deleted: bool = False,
                 state: dict[str, Any] | None = None, since: str | None = None,
                 save: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
                 echoes: EchoFilter | None = None, pipeline: int = 4) -> None:
        self.client = client
        self.sobject = sobject
        self.fields = fields
        self.where = where
        self.overlap = timedelta(seconds=overlap)
        self.batch_size = max(1, batch_size)
        self.include_deleted = include_deleted
        state = state or {}
        self.watermark: str | None = state.get("watermark") or since
        #: Id -> SystemModstamp of records handled inside the overlap window.
        self.seen: dict[str, str] = dict(state.get("seen") or {})
        self._blocked = False
        #: Where state goes after each batch (default ``ctx.save_state``; the CDC fallback merges it).
        self._save = save
        #: Set with ``ignore-own-writes``: tells a record changed only by this connection's writes.
        self.echoes = echoes
        #: Batches handled at once: the next is handed over while earlier ones run.
        self.pipeline = max(1, pipeline)

    def state(self) -> dict[str, Any]:
        """What to persist: the watermark and the handled keys still inside the overlap window."""
        return {"watermark": self.watermark, "seen": dict(self.seen)}

    def soql(self) -> str:
        """The poll query."""
        conditions = []
        if self.watermark:
            lower = parse_datetime(self.watermark) - self.overlap
            conditions.append(f"SystemModstamp >= {format_datetime(lower)}")
        if self.where:
            conditions.append(f"({self.where})")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return f"SELECT {', '.join(self.fields)} FROM {self.sobject}{where} ORDER BY SystemModstamp, Id"

    def _event(self, record: dict[str, Any]) -> Event:
        stamp = str(record.get("SystemModstamp"))
        attributes = {"object": self.sobject, "recordId": record.get("Id"), "systemModstamp": stamp,
                      "source": "poll", "deleted": bool(record.get("IsDeleted"))}
        return Event(payload=record, attributes=attributes, id=f"{record.get('Id')}@{stamp}")

    async def poll(self, ctx: SourceContext) -> bool:
        """One pass over everything changed since ``watermark - overlap``; ``False`` if an event failed.

        Events after a failed one are still handed over (and remembered as seen), but the watermark
        stays before the failed one until a later poll gets it through.

        Batches overlap: up to ``pipeline`` are handled at once (a poll after an outage or a
        month-end burst is not handled in waves of one batch each), and the watermark moves over
        them in order, after every earlier batch.
        """
        stream = await self.client.query(self.soql(), include_deleted=self.include_deleted)
        self._blocked = False
        window = anyio.Semaphore(self.pipeline)
        async with anyio.create_task_group() as batches:
            last: anyio.Event | None = None

            async def hand_over(batch: list[dict[str, Any]]) -> None:
                nonlocal last
                await window.acquire()
                done = anyio.Event()
                batches.start_soon(self._handle, ctx, batch, last, done, window)
                last = done

            batch: list[dict[str, Any]] = []
            async for record in stream:
                if self.seen.get(str(record.get("Id"))) == record.get("SystemModstamp"):
                    continue
                batch.append(record)
                if len(batch) >= self.batch_size:
                    await hand_over(batch)
                    batch = []
                    if ctx.stopping:
                        break
            if batch:
                await hand_over(batch)
        return not self._blocked

    async def _handle(self, ctx: SourceContext, batch: list[dict[str, Any]], before: anyio.Event | None,
                      done: anyio.Event, window: anyio.Semaphore) -> None:
        try:
            await self._handle_in_turn(ctx, batch, before)
        finally:
            done.set()
            window.release()

    async def _handle_in_turn(self, ctx: SourceContext, batch: list[dict[str, Any]],
                              before: anyio.Event | None) -> None:
        """Hand a batch over; once every earlier batch is done, move the watermark over it."""
        echoes = [self.echoes is not None and self.echoes.is_echo(r) for r in batch]
        outcomes = await ctx.handle_many([self._event(r) for r, echo in zip(batch, echoes, strict=True)
                                          if not echo])
        if before is not None:
            await before.wait()
        handled = iter(outcomes)
        for record, echo in zip(batch, echoes, strict=True):
            if not (echo or next(handled).done):
                self._blocked = True
                continue
            if self.echoes is not None:
                self.echoes.remember(record)
            stamp = str(record["SystemModstamp"])
            self.seen[str(record["Id"])] = stamp
            if not self._blocked and (self.watermark is None or parse_datetime(stamp) > parse_datetime(self.watermark)):
                self.watermark = stamp
        if self.watermark:
            floor = parse_datetime(self.watermark) - self.overlap
            self.seen = {k: v for k, v in self.seen.items() if parse_datetime(v) >= floor}
        await (self._save or ctx.save_state)(self.state())
        failed = sum(1 for o in outcomes if not o.done)
        if failed:
            ctx.logger.warning("salesforce.changes: %s event(s) of %s not handled; they come again next poll",
                               failed, self.sobject)


POLL_PARAMS: tuple[Param, ...] = (
    Param("object", required=True, dynamic=False, examples=("Opportunity",), summary="sObject to watch"),
    Param("fields", type="array", dynamic=False, schema={"type": "array", "items": {"type": "string"}},
          summary="Fields of each record (default: every field from describe)"),
    Param("where", dynamic=False, examples=("StageName = 'Closed Won'",),
          summary="Extra SOQL condition ANDed to the SystemModstamp filter"),
    Param("overlap", type="duration", default="2m", dynamic=False,
          summary="How far before the watermark each poll re-reads (late commits); repeats are skipped"),
    Param("batch-size", type="integer", default=200, dynamic=False,
          summary="Events handed to the flow at once; the watermark is saved after each batch"),
)
#: ``ignore-own-writes`` of the polling trigger (the change-event trigger has its own, same name).
IGNORE_OWN_WRITES = Param(
    "ignore-own-writes", type="boolean", default=False, dynamic=False,
    summary="Skip records whose only change is this connection's own write (a flow's write-back)")

