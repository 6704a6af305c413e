"""Bulk API 2.0 query jobs: create, poll with backoff, stream the CSV result pages as records.

Result pages are fetched one at a time with ``Sforce-Locator`` until the header holds the literal
string ``null``; rows are yielded as they are parsed, so memory holds one page at most. Bulk CSV has
no null: an empty cell becomes ``None``. Parent fields keep their dotted names (``Account.Name``).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio

from connectors.salesforce.errors import SalesforceError

if TYPE_CHECKING:
    from connectors.salesforce.client import SalesforceClient

__all__ = ["BulkQuery", "start_bulk_query"]

_TERMINAL_FAILED = ("Failed", "Aborted")


class BulkQuery:
    """A finished (``JobComplete``) query job whose rows can be iterated once."""

    def __init__(self, client: SalesforceClient, job: dict[str, Any], page_size: int) -> None:
        self._client = client
        self.job = job
        self.job_id = str(job["id"])
        self.page_size = page_size

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._rows()

    async def _rows(self) -> AsyncIterator[dict[str, Any]]:
        locator: str | None = None
        path = self._client.data(f"jobs/query/{self.job_id}/results")
        while True:
            params: dict[str, Any] = {"maxRecords": self.page_size}
            if locator:
                params["locator"] = locator
            response = await self._client.request("GET", path, params=params,
                                                  headers={"Accept": "text/csv"},
                                                  context="bulk query results")
            for row in csv.DictReader(io.StringIO(response.text)):
                yield {k: (v if v != "" else None) for k, v in row.items()}
            locator = response.headers.get("Sforce-Locator")
            if not locator or locator == "null":
                return


async def start_bulk_query(client: SalesforceClient, soql: str, *, include_deleted: bool = False,
                           poll_interval: float = 1.0, max_poll_interval: float = 30.0,
                           max_wait: float = 3600.0, page_size: int = 50000) -> BulkQuery:
    """Create a query job and wait (polling with growing pauses) until its results are ready."""
    body = {"operation": "queryAll" if include_deleted else "query", "query": soql,
            "contentType": "CSV", "columnDelimiter": "COMMA", "lineEnding": "LF"}
    job = (await client.request("POST", client.data("jobs/query"), json=body,
                                context="bulk query")).json()
    job_id = str(job["id"])
    deadline = time.monotonic() + max_wait
    delay = poll_interval
    while job.get("state") != "JobComplete":
        if job.get("state") in _TERMINAL_FAILED:
            raise SalesforceError(f"bulk query job {job.get('state')}: {job.get('errorMessage', '')}",
                                  error_type="SALESFORCE:BULK_JOB_FAILED",
                                  details={"jobId": job_id, "state": job.get("state")})
        if time.monotonic() > deadline:
            await client.request("PATCH", client.data(f"jobs/query/{job_id}"),
                                 json={"state": "Aborted"}, context="bulk query abort")
            raise SalesforceError(f"bulk query job still {job.get('state')} after {max_wait:.0f} s",
                                  error_type="SALESFORCE:TIMEOUT", retryable=True,
                                  details={"jobId": job_id})
        await anyio.sleep(delay)
        delay = min(max_poll_interval, delay * 1.5)
        job = (await client.request("GET", client.data(f"jobs/query/{job_id}"),
                                    context="bulk query status")).json()
    return BulkQuery(client, job, page_size)
