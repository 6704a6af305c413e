"""Triggers: ``salesforce.changes`` (SystemModstamp polling, see :mod:`.polling`) and
``salesforce.change-events`` (Change Data Capture over CometD, see :mod:`.cdc`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors.salesforce.cdc import CHANGE_EVENTS
from connectors.salesforce.client import SalesforceClient
from connectors.salesforce.echoes import EchoFilter
from connectors.salesforce.errors import SalesforceError
from connectors.salesforce.polling import (
    FATAL_KINDS,
    IGNORE_OWN_WRITES,
    POLL_PARAMS,
    ChangePoller,
    salesforce_datetime,
    select_fields,
)
from connectors.salesforce.soql import parse_datetime
from runtime import Param, SourceContext, SourceSpec

__all__ = ["CHANGES", "SOURCES", "run_changes"]


def _since(value: Any) -> str | None:
    if not value:
        return None
    if str(value).lower() == "now":
        return salesforce_datetime(datetime.now(UTC))
    return salesforce_datetime(parse_datetime(str(value)))


async def run_changes(ctx: SourceContext, params: dict[str, Any]) -> None:
    """Poll until the flow stops; configuration errors end the source, others wait and retry."""
    client: SalesforceClient = ctx.connection
    interval: float = params["interval"]
    fields = await select_fields(client, params["object"], params.get("fields"))
    poller = ChangePoller(client, params["object"], fields, where=params.get("where"),
                          overlap=params["overlap"], batch_size=params["batch-size"],
                          include_deleted=params["include-deleted"],
                          state=await ctx.load_state(), since=_since(params.get("since")),
                          echoes=EchoFilter(client.own_writes, params["object"])
                          if params.get("ignore-own-writes") else None,
                          pipeline=params["pipeline"])
    while not ctx.stopping:
        wait = interval
        try:
            await poller.poll(ctx)
        except SalesforceError as error:
            if error.kind in FATAL_KINDS:
                raise
            ctx.logger.warning("salesforce.changes on %s: %s", params["object"], error)
            wait = max(interval, error.retry_after or 0.0)
        if not await ctx.sleep(wait):
            return


CHANGES = SourceSpec(
    "changes", run_changes,
    summary="New and changed records of an object, polled on SystemModstamp",
    exclusive=True,
    params=(*POLL_PARAMS,
            Param("interval", type="duration", default="30s", dynamic=False, summary="Pause between polls"),
            Param("since", dynamic=False, examples=("now", "2026-01-01T00:00:00Z"),
                  summary="Where the very first poll starts: 'now', a datetime, or empty for all records"),
            Param("include-deleted", type="boolean", default=False, dynamic=False,
                  summary="Use queryAll so deletions arrive too (attributes.deleted = true)"),
            Param("pipeline", type="integer", default=4, dynamic=False,
                  summary="Batches handled at once (the next is handed over while earlier ones "
                          "run; the watermark moves in order over what is done)"),
            IGNORE_OWN_WRITES),
)

SOURCES: tuple[SourceSpec, ...] = (CHANGES, CHANGE_EVENTS)
