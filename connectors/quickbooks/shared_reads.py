"""One query page for every identical query asked while it is in flight.

Batches of a burst ask QuickBooks the same thing at the same moment: each batch of item
match-or-create reads the items its records link to, and in a burst of a thousand opportunities
over five products twenty batches read ``select * from Item where Id in (...)`` within a second.
Each of those is a metered request of the realm's 500 a minute and a wait before the batch's
create. A query already in flight answers them all instead.

It never answers with what a caller could not have seen: a caller joins a query only when no
write of this connection has ended since that query was asked, so a record this process has just
written is in the answer of any query asked after the write (read your own writes). Followers get
their own copy of the page, and a query whose asker was cancelled is asked again by the next one.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

__all__ = ["SharedPages"]


class _Pending:
    __slots__ = ("done", "error", "followers", "page", "writes")

    def __init__(self, writes: int) -> None:
        self.done = anyio.Event()
        self.page: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.followers = 0
        self.writes = writes


class SharedPages:
    """Identical query pages in flight, asked once (see the module's docstring)."""

    def __init__(self) -> None:
        self._pending: dict[str, _Pending] = {}
        self._writes = 0
        #: How many askers were answered by a query already in flight (for tests and stats).
        self.joined = 0

    def write_ended(self) -> None:
        """A write of this connection ended (answered or not): later reads must see it."""
        self._writes += 1

    async def page(self, sql: str, ask: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        """The page of ``sql``: joined to the identical query in flight, else ``ask()``-ed."""
        pending = self._pending.get(sql)
        if pending is not None and pending.writes == self._writes:
            pending.followers += 1
            await pending.done.wait()
            if pending.page is not None:
                self.joined += 1
                return copy.deepcopy(pending.page)
            if pending.error is not None:
                raise pending.error
            # Its asker was cancelled: ask it again below.
        mine = _Pending(self._writes)
        self._pending[sql] = mine
        try:
            page = await ask()
            mine.page = page
            return copy.deepcopy(page) if mine.followers else page
        except Exception as error:
            mine.error = error
            raise
        finally:
            if self._pending.get(sql) is mine:
                del self._pending[sql]
            mine.done.set()
