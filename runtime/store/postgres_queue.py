"""The work queue on PostgreSQL: one table, ``FOR UPDATE SKIP LOCKED`` takes, ``LISTEN/NOTIFY``.

The pattern of PostgreSQL job queues (Oban, procrastinate, pg-boss), reduced to what hand-over
between replicas needs:

* an item is a row (flow, the encoded event, when it was enqueued, attempts, lease owner and
  expiry); enqueueing inserts the rows and ``pg_notify`` in one transaction, so workers are woken
  only for committed items;
* a take picks the oldest rows of a flow that nobody holds with ``FOR UPDATE SKIP LOCKED`` (two
  workers never pick the same row, and never wait for each other) and leases them in the same
  statement: owner and expiry. "Nobody holds" includes a lease that expired, which is how the items
  of a dead worker return; a finished item is deleted;
* lease times are the database's clock (``clock_timestamp()``), so replicas whose clocks differ
  still agree on when a lease ended;
* workers wait on ``LISTEN`` over a connection of their own, outside the pool (a listening
  connection cannot be shared); when it is lost they fall back to their poll until it is back.

The table lives in the store's schema and is created on first use, under the same advisory lock as
the store's own schema.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import anyio

from runtime.message import Event
from runtime.store.postgres import _typed
from runtime.store.queue import QueueDepth, WorkItem, WorkQueue, decode_event, encode_event

__all__ = ["PostgresWorkQueue"]

log = logging.getLogger("splice.store.queue")

#: How long opening the listening connection may take before waiting falls back to polling.
LISTEN_CONNECT_TIMEOUT = 5.0
#: The pause before the listening connection is opened again after it failed (seconds).
LISTEN_RETRY = 5.0

_NOW = "clock_timestamp()"


def _ddl(table: str) -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS {table} ("
        " id bigserial PRIMARY KEY,"
        " flow text NOT NULL,"
        " event text NOT NULL,"
        f" enqueued_at timestamptz NOT NULL DEFAULT {_NOW},"
        " attempts integer NOT NULL DEFAULT 0,"
        " lease_owner text NULL,"
        # The end of the owner's lease; for an item given back with a delay, when it may be taken.
        " available_at timestamptz NULL,"
        " last_error text NULL)",
        f"CREATE INDEX IF NOT EXISTS work_queue_by_flow ON {table} (flow, id)",
    ]


class PostgresWorkQueue(WorkQueue):
    """:class:`WorkQueue` in the schema of a :class:`~runtime.store.postgres.PostgresStore`.

    ``pool`` gives the store's connection pool (opening it on first use); ``dsn`` opens the
    listening connection.
    """

    def __init__(self, *, dsn: str, schema: str, pool: Callable[[], Awaitable[Any]]) -> None:
        self.dsn = dsn
        self.schema = schema
        self._pool = pool
        self._table = f'"{schema}".work_queue'
        # Channel names are identifiers: at most 63 bytes.
        self.channel = f"splice_work.{schema}"[:63]
        self._created = False
        self._create_lock = anyio.Lock()
        self._listener: Any = None
        self._listen_lock = anyio.Lock()
        self._listen_failed_at: float | None = None
        self._wake: dict[str, anyio.Event] = {}

    async def _ready(self) -> Any:
        pool = await self._pool()
        if not self._created:
            async with self._create_lock:
                if not self._created:
                    with _typed("queue set-up"):
                        async with pool.acquire() as conn, conn.transaction():
                            await conn.execute(
                                "SELECT pg_advisory_xact_lock(hashtext('splice:create-schema'))")
                            for statement in _ddl(self._table):
                                await conn.execute(statement)
                    self._created = True
        return pool

    # -- the producer -------------------------------------------------------------------------------

    async def enqueue(self, flow: str, events: Sequence[Event]) -> list[int]:
        if not events:
            return []
        pool = await self._ready()
        texts = [encode_event(event) for event in events]
        with _typed("enqueue"):
            async with pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    f"INSERT INTO {self._table} (flow, event) "
                    "SELECT $1, text FROM unnest($2::text[]) WITH ORDINALITY AS t(text, n) "
                    "ORDER BY n RETURNING id", flow, texts)
                # Delivered at commit, and only then: nobody wakes for rows it cannot see yet.
                await conn.execute("SELECT pg_notify($1, $2)", self.channel, flow)
        return sorted(int(row["id"]) for row in rows)

    # -- the workers --------------------------------------------------------------------------------

    async def take(self, flow: str, *, owner: str, limit: int, lease: float) -> list[WorkItem]:
        if limit <= 0:
            return []
        pool = await self._ready()
        with _typed("take"):
            rows = await pool.fetch(
                f"WITH picked AS (SELECT id, lease_owner AS previous FROM {self._table} "
                f"  WHERE flow = $1 AND (available_at IS NULL OR available_at <= {_NOW}) "
                "  ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) "
                f"UPDATE {self._table} AS q SET lease_owner = $3, attempts = q.attempts + 1, "
                f"  available_at = {_NOW} + make_interval(secs => $4) "
                "FROM picked WHERE q.id = picked.id "
                "RETURNING q.id, q.flow, q.event, q.attempts, "
                "  extract(epoch FROM q.enqueued_at)::float8 AS enqueued, picked.previous",
                flow, limit, owner, float(lease))
        items = [WorkItem(id=int(row["id"]), flow=row["flow"], event=decode_event(row["event"]),
                          attempts=int(row["attempts"]), enqueued_at=float(row["enqueued"]),
                          expired_owner=row["previous"])
                 for row in rows]
        return sorted(items, key=lambda item: item.id)

    async def extend(self, ids: Iterable[int], *, owner: str, lease: float) -> set[int]:
        wanted = list(ids)
        if not wanted:
            return set()
        pool = await self._ready()
        with _typed("extend"):
            rows = await pool.fetch(
                f"UPDATE {self._table} SET available_at = {_NOW} + make_interval(secs => $3) "
                "WHERE id = ANY($1::bigint[]) AND lease_owner = $2 RETURNING id",
                wanted, owner, float(lease))
        return {int(row["id"]) for row in rows}

    async def complete(self, item_id: int, *, owner: str) -> bool:
        pool = await self._ready()
        with _typed("complete"):
            deleted = await pool.fetchval(
                f"DELETE FROM {self._table} WHERE id = $1 AND lease_owner = $2 RETURNING true",
                item_id, owner)
        return bool(deleted)

    async def release(self, item_id: int, *, owner: str, delay: float = 0.0,
                      error: str | None = None) -> bool:
        pool = await self._ready()
        with _typed("release"):
            flow = await pool.fetchval(
                f"UPDATE {self._table} SET lease_owner = NULL, last_error = $4, "
                f"  available_at = CASE WHEN $3 > 0 THEN {_NOW} + make_interval(secs => $3) END "
                "WHERE id = $1 AND lease_owner = $2 RETURNING flow",
                item_id, owner, float(delay), error)
            if flow is not None and delay <= 0:
                await pool.execute("SELECT pg_notify($1, $2)", self.channel, flow)
        return flow is not None

    async def depth(self) -> Mapping[str, QueueDepth]:
        pool = await self._ready()
        with _typed("depth"):
            rows = await pool.fetch(
                "SELECT flow, count(*) FILTER (WHERE lease_owner IS NULL "
                f"  OR available_at <= {_NOW}) AS queued, "
                f"  count(*) FILTER (WHERE lease_owner IS NOT NULL AND available_at > {_NOW}) "
                f"  AS leased FROM {self._table} GROUP BY flow ORDER BY flow")
        return {row["flow"]: QueueDepth(queued=int(row["queued"]), leased=int(row["leased"]))
                for row in rows}

    # -- waking -------------------------------------------------------------------------------------

    async def wait(self, flow: str, seconds: float) -> bool:
        wake = self._wake.get(flow)
        if wake is None:
            wake = self._wake[flow] = anyio.Event()
        await self._listen()
        with anyio.move_on_after(seconds):
            await wake.wait()
            return True
        return False

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        """asyncpg's listener callback (on the event loop): wake the flow's waiters."""
        wake = self._wake.pop(payload, None)
        if wake is not None:
            wake.set()

    def _listener_lost(self, _conn: Any) -> None:
        """The listening connection closed: wake every waiter (they poll), reconnect later."""
        self._listener = None
        self._listen_failed_at = anyio.current_time()
        for flow in list(self._wake):
            self._wake.pop(flow).set()

    async def _listen(self) -> None:
        """Open the listening connection unless it is open or failed moments ago."""
        if self._listener is not None and not self._listener.is_closed():
            return
        failed = self._listen_failed_at
        if failed is not None and anyio.current_time() - failed < LISTEN_RETRY:
            return
        async with self._listen_lock:
            if self._listener is not None and not self._listener.is_closed():
                return
            import asyncpg

            conn = None
            try:
                with anyio.fail_after(LISTEN_CONNECT_TIMEOUT):
                    conn = await asyncpg.connect(self.dsn)
                    await conn.add_listener(self.channel, self._notified)
                conn.add_termination_listener(self._listener_lost)
            except Exception as exc:  # unreachable, or a blip: poll until the next attempt
                self._listen_failed_at = anyio.current_time()
                log.warning("the work queue cannot listen for new items (%s: %s); workers poll "
                            "until it can", type(exc).__name__, exc)
                if conn is not None:
                    conn.terminate()
                return
            except BaseException:  # cancelled while connecting: the connection is nobody's
                if conn is not None:
                    conn.terminate()
                raise
            self._listener, self._listen_failed_at = conn, None

    async def aclose(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None and not conn.is_closed():
            try:
                with anyio.move_on_after(2.0):
                    await conn.close()
            except Exception:  # closing a connection whose server went away
                conn.terminate()
            if not conn.is_closed():  # the close did not finish in time
                conn.terminate()
        for flow in list(self._wake):
            self._wake.pop(flow).set()

