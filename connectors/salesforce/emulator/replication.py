"""``sobjects/X/updated`` and ``sobjects/X/deleted``: the ids of records changed or deleted in a
window, as Salesforce's replication API (getUpdated / getDeleted) reports them.

Salesforce ignores the seconds of ``start`` and ``end`` (whole minutes), wants ``start`` at least a
minute before ``end``, and looks back 30 days for updates and 15 for deletes (the recycle bin); an
older ``start`` is ``INVALID_REPLICATION_DATE``. ``latestDateCovered`` is the end of the window
covered: a poller restarts from it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from connectors.salesforce.emulator.errors import ApiError
from connectors.salesforce.emulator.ids import format_datetime, parse_any_datetime
from connectors.salesforce.emulator.state import Emulator

__all__ = ["changed_ids"]

#: How far back each resource looks (days).
LOOK_BACK = {"updated": 30, "deleted": 15}
#: At most this many ids per answer (Salesforce: ``EXCEEDED_ID_LIMIT`` above 600,000).
MAX_IDS = 600_000


def _minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)


def _bound(request: Request, name: str) -> datetime:
    text = request.query_params.get(name)
    if not text:
        raise ApiError(400, "MISSING_ARGUMENT", f"Missing argument: {name}")
    try:
        return _minute(parse_any_datetime(text))
    except ValueError:
        raise ApiError(400, "INVALID_REPLICATION_DATE", f"{name} is not a valid date time: {text}"
                       ) from None


async def changed_ids(request: Request, emu: Emulator, v: str, obj: str, kind: str) -> Response:
    """``GET sobjects/X/updated/?start=&end=`` or ``.../deleted/?start=&end=``."""
    org = emu.org
    name = org.schema(obj).name
    start, end = _bound(request, "start"), _bound(request, "end")
    now = org.clock.now()
    if end - start < timedelta(minutes=1):
        raise ApiError(400, "INVALID_REPLICATION_DATE",
                       "startDate must chronologically precede endDate by more than one minute")
    earliest = _minute(now - timedelta(days=LOOK_BACK[kind]))
    if start < earliest:
        raise ApiError(400, "INVALID_REPLICATION_DATE",
                       f"startDate cannot be more than {LOOK_BACK[kind]} days ago")
    end = min(end, _minute(now))

    def within(record: dict[str, Any]) -> bool:
        return start <= parse_any_datetime(str(record["SystemModstamp"])) < end

    if kind == "updated":
        ids = [r["Id"] for r in org.records[name].values() if within(r)]
        body: dict[str, Any] = {"ids": ids, "latestDateCovered": format_datetime(end)}
    else:
        gone = [r for r in org.deleted[name].values() if within(r)]
        ids = [r["Id"] for r in gone]
        body = {"deletedRecords": [{"id": r["Id"], "deletedDate": r["SystemModstamp"]} for r in gone],
                "earliestDateAvailable": format_datetime(earliest),
                "latestDateCovered": format_datetime(end)}
    if len(ids) > MAX_IDS:
        raise ApiError(400, "EXCEEDED_ID_LIMIT", f"more than {MAX_IDS} ids in the window")
    return JSONResponse(body)
