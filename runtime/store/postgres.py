"""The shared object store: PostgreSQL, for several ``splice serve`` replicas working together.

Same table shape and semantics as the SQLite store, on an asyncpg pool:

* writes are single ``INSERT ... ON CONFLICT`` statements (atomic per row without extra locking);
  ``compare_and_set`` reads the row ``FOR UPDATE`` in a transaction, so it compares the latest
  committed value;
* keys use ``COLLATE "C"``, so key order is code-point order, as in SQLite and in Python;
* expiry is decided with this process's ``clock`` (replicas are expected to keep their clocks in
  sync, as NTP does), and expired rows are purged lazily;
* ``lock()`` is a session-level advisory lock, ``pg_try_advisory_lock`` polled until the timeout,
  held on a dedicated connection from a separate small pool for as long as the body runs. When the
  holder dies its connection closes and the server frees the lock at once, so ``lease`` is not
  needed here. The other way round, a holder whose session ends while it lives (failover, a
  network blip, ``pg_terminate_backend``) has lost the lock to whoever polls next: the session is
  checked every :data:`LEASE_CHECK` seconds and before each unit of work (:class:`Lease`), and the
  body is cancelled when it is gone. Lock names are hashed to 32 bits (``hashtext``): two names that collide merely
  exclude each other.

Tables live in their own schema (``splice`` unless told otherwise), created on first use.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

import anyio

from runtime.store._locking import LocalLocks, log, poll, watched
from runtime.store.base import (
    Lease,
    LockLostError,
    ObjectStore,
    StoreOpenError,
    StoreUnavailableError,
    decode,
    encode,
)
from runtime.store.sqlite import key_range

if TYPE_CHECKING:
    from runtime.store.postgres_queue import PostgresWorkQueue

__all__ = ["PostgresStore"]

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_LIVE = "(expires_at IS NULL OR expires_at > $3)"


#: How long one attempt at a lock may wait for a connection of the lock pool (seconds).
CONNECTION_WAIT = 5.0
#: How often a held lock's session is checked while its body runs (seconds), besides the check
#: before each unit of work (:meth:`Lease.confirm`).
LEASE_CHECK = 1.0
#: How long one such check may take before the lock counts as lost (a partitioned network).
LEASE_CHECK_TIMEOUT = 5.0

_HOLDS_LOCK = ("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
               "AND pid = pg_backend_pid() AND classid = hashtext($1)::oid "
               "AND objid = hashtext($2)::oid AND objsubid = 2)")


P = ParamSpec("P")
T = TypeVar("T")


def _is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not do the work (connection cut or refused, server
    shutting down or out of resources, read-only, a transaction rolled back by a conflict), as
    opposed to a mistake in the statement, which stays itself."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - a PostgreSQL store always has it
        return False
    errors = asyncpg.exceptions
    return isinstance(exc, errors.InterfaceError | errors.PostgresConnectionError
                      | errors.OperatorInterventionError | errors.InsufficientResourcesError
                      | errors.TransactionRollbackError | errors.ReadOnlySQLTransactionError
                      | errors.CannotConnectNowError)


@contextmanager
def _typed(where: str) -> Iterator[None]:
    """Raise a database failure inside as :class:`StoreUnavailableError`."""
    try:
        yield
    except StoreUnavailableError:
        raise
    except Exception as exc:
        if _is_unavailable(exc):
            raise StoreUnavailableError(f"the PostgreSQL store {where} failed: "
                                        f"{type(exc).__name__}: {exc}") from exc
        raise


def _typed_failures(method: Callable[P, Coroutine[Any, Any, T]]
                    ) -> Callable[P, Coroutine[Any, Any, T]]:
    """A store operation whose database failures come out as :class:`StoreUnavailableError`."""

    @functools.wraps(method)
    async def typed(*args: P.args, **kwargs: P.kwargs) -> T:
        with _typed(f"{method.__name__}"):
            return await method(*args, **kwargs)

    return typed


def _quiet_pool_releases() -> None:
    """Tell asyncpg's background releases of connections whose session ended apart from bugs.

    When a query is cancelled (a lock's body stopped, a deadline), asyncpg gives the connection
    back to its pool in a task of its own, resetting it first; if the session ended meanwhile (a
    failover, a cut connection) that task fails with nobody to hear it, and asyncio prints "Task
    exception was never retrieved" with a traceback. The pool replaces such a connection by
    itself, so that is one warning line here; every other unheard failure goes to the handler that
    was there before.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    if getattr(previous, "quiets_pool_releases", False):
        return

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        task = context.get("future")
        coro = getattr(task, "get_coro", lambda: None)() if task is not None else None
        if "PoolConnectionHolder.release" in getattr(coro, "__qualname__", ""):
            log.warning("a pooled PostgreSQL connection could not be reset after its session "
                        "ended (%s); the pool opens another", context.get("exception"))
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler.quiets_pool_releases = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)


def _drop(conn: Any) -> None:
    """Close a pooled connection at once. One whose session already ended has been taken back by
    its pool (asyncpg detaches the proxy), and there is nothing left to close."""
    try:
        conn.terminate()
    except Exception as exc:  # asyncpg's InterfaceError: released back to the pool
        log.debug("connection already gone: %s", exc)


class _SessionLease(Lease):
    """A lease on a session-level advisory lock: held for as long as its session lives.

    The check asks the holding session itself whether the server still lists the lock as granted
    to it; a session that was terminated, timed out or cannot be reached has lost it (the server
    frees a session's locks when the session ends, and a standby may already hold it). Checks are
    one at a time: an asyncpg connection runs one statement at once.
    """

    def __init__(self, name: str, conn: Any, scope: str) -> None:
        super().__init__(name)
        self._conn = conn
        self._scope = scope
        self._one_at_a_time = anyio.Lock()

    async def _check(self) -> None:
        async with self._one_at_a_time:
            if self.lost:
                return
            try:
                with anyio.fail_after(LEASE_CHECK_TIMEOUT):
                    held = await self._conn.fetchval(_HOLDS_LOCK, self._scope, self.name)
            except Exception as exc:  # terminated, reset, unreachable: the session is gone
                raise LockLostError(f"its database session failed ({type(exc).__name__}: {exc})"
                                    ) from exc
            if not held:
                raise LockLostError("the database no longer lists it as held by this session")


class PostgresStore(ObjectStore):
    """:class:`ObjectStore` on PostgreSQL through asyncpg (installed with the ``postgres`` extra).

    The pools open on first use, so constructing a store does no I/O. ``clock`` (epoch seconds)
    decides expiry; tests inject a fake one.
    """

    serves_replicas = True

    def __init__(self, dsn: str, *, schema: str = "splice", clock: Callable[[], float] = time.time,
                 min_size: int = 1, max_size: int = 10, lock_pool_size: int = 10,
                 page_size: int = 200, purge_interval: float = 60.0) -> None:
        if not _IDENTIFIER.match(schema):
            raise ValueError(f"schema must be a plain SQL identifier, not {schema!r}")
        self.dsn = dsn
        self.schema = schema
        self.clock = clock
        self.min_size = min_size
        self.max_size = max_size
        self.lock_pool_size = lock_pool_size
        self.page_size = page_size
        self.purge_interval = purge_interval
        self._kv = f'"{schema}".kv'
        self._pool: Any = None
        self._lock_pool: Any = None
        self._closed = False
        self._init_lock = anyio.Lock()
        self._local_locks = LocalLocks()
        #: One per connection of the lock pool: waiting for a free one here can be cancelled.
        self._lock_connections = anyio.Semaphore(lock_pool_size)
        self._last_purge = float("-inf")
        self._queue: PostgresWorkQueue | None = None

    def __repr__(self) -> str:
        return f"PostgresStore(schema={self.schema!r})"

    # -- plumbing -------------------------------------------------------------------------------

    async def _pools(self) -> tuple[Any, Any]:
        if self._pool is None:
            async with self._init_lock:
                if self._closed:
                    raise anyio.ClosedResourceError("the store is closed")
                if self._pool is None:
                    # Shielded: the pools are shared, so a caller cancelled meanwhile must not abort
                    # their opening halfway. Interrupted there, asyncpg leaves a connection being
                    # opened or released behind (their errors surface later, in unrelated tasks);
                    # the cancellation reaches the caller as soon as the pools are ready.
                    with anyio.CancelScope(shield=True):
                        self._pool, self._lock_pool = await self._open_pools()
        if self._closed:
            raise anyio.ClosedResourceError("the store is closed")
        return self._pool, self._lock_pool

    async def _open_pools(self) -> tuple[Any, Any]:
        try:
            import asyncpg  # optional dependency: only PostgreSQL users need it
        except ImportError as exc:
            raise RuntimeError("a postgresql:// store needs asyncpg: "
                               "pip install 'splice[postgres]'") from exc

        _quiet_pool_releases()
        try:
            pool = await asyncpg.create_pool(self.dsn, min_size=self.min_size,
                                             max_size=self.max_size)
        except (OSError, asyncpg.PostgresError) as exc:  # unreachable, unknown role or database
            raise StoreOpenError(f"cannot open the PostgreSQL store {self._where()}: "
                                 f"{type(exc).__name__}: {exc}") from exc
        try:
            async with pool.acquire() as conn:
                await self._create_schema(conn)
            lock_pool = await asyncpg.create_pool(self.dsn, min_size=0, max_size=self.lock_pool_size)
        except BaseException:
            await pool.close()
            raise
        return pool, lock_pool

    def _where(self) -> str:
        """The DSN's host, port and database, never its password (for error messages)."""
        parts = urlsplit(self.dsn)
        user = f"{parts.username}@" if parts.username else ""
        port = f":{parts.port}" if parts.port else ""
        return f"'{user}{parts.hostname or ''}{port}{parts.path}'"

    async def _create_schema(self, conn: Any) -> None:
        # Replicas starting together would race on CREATE ... IF NOT EXISTS; serialise them.
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('splice:create-schema'))")
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._kv} ("
                " namespace text NOT NULL,"
                ' key text COLLATE "C" NOT NULL,'
                " value text NOT NULL,"
                " expires_at double precision NULL,"
                " PRIMARY KEY (namespace, key))")
            await conn.execute(f"CREATE INDEX IF NOT EXISTS kv_expires_at ON {self._kv} (expires_at)"
                               " WHERE expires_at IS NOT NULL")

    async def _maybe_purge(self, conn: Any, now: float) -> None:
        if now - self._last_purge < self.purge_interval:
            return
        self._last_purge = now
        await conn.execute(f"DELETE FROM {self._kv} WHERE expires_at IS NOT NULL AND expires_at <= $1",
                           now)

    @staticmethod
    def _expiry(now: float, ttl: float | None) -> float | None:
        return None if ttl is None else now + ttl

    # -- ObjectStore ----------------------------------------------------------------------------

    async def diagnose(self) -> list[str]:
        """A server that answers reads but refuses writes: a standby in recovery, or a database or
        role set to read-only (``default_transaction_read_only``)."""
        try:
            pool, _ = await self._pools()
            row = await pool.fetchrow("SELECT pg_is_in_recovery() AS recovery, "
                                      "current_setting('transaction_read_only') AS read_only")
        except Exception as exc:  # reported by the read probe too; say it here in one line
            return [f"PostgreSQL cannot be asked whether it accepts writes: {type(exc).__name__}"]
        if row is None:
            return []
        if row["recovery"]:
            return ["PostgreSQL is read-only: the server is a standby in recovery"]
        if str(row["read_only"]).lower() == "on":
            return ["PostgreSQL is read-only: transactions of this role or database default to "
                    "read only"]
        return []

    @_typed_failures
    async def get(self, namespace: str, key: str) -> Any | None:
        pool, _ = await self._pools()
        text = await pool.fetchval(
            f"SELECT value FROM {self._kv} WHERE namespace = $1 AND key = $2 AND {_LIVE}",
            namespace, key, self.clock())
        return None if text is None else decode(text)

    @_typed_failures
    async def put(self, namespace: str, key: str, value: Any, *, ttl: float | None = None) -> None:
        pool, _ = await self._pools()
        now = self.clock()
        async with pool.acquire() as conn:
            await self._maybe_purge(conn, now)
            await conn.execute(
                f"INSERT INTO {self._kv} (namespace, key, value, expires_at) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (namespace, key) DO UPDATE "
                "SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at",
                namespace, key, encode(value), self._expiry(now, ttl))

    @_typed_failures
    async def put_many(self, entries: Sequence[tuple[str, str, Any]], *,
                       ttl: float | None = None) -> None:
        if not entries:
            return
        pool, _ = await self._pools()
        now = self.clock()
        expires = self._expiry(now, ttl)
        rows = [(namespace, key, encode(value), expires) for namespace, key, value in entries]
        async with pool.acquire() as conn, conn.transaction():
            await self._maybe_purge(conn, now)
            await conn.executemany(
                f"INSERT INTO {self._kv} (namespace, key, value, expires_at) VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (namespace, key) DO UPDATE "
                "SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at", rows)

    @_typed_failures
    async def put_if_absent(self, namespace: str, key: str, value: Any, *,
                            ttl: float | None = None) -> bool:
        pool, _ = await self._pools()
        now = self.clock()
        async with pool.acquire() as conn:
            await self._maybe_purge(conn, now)
            created = await conn.fetchval(
                f"INSERT INTO {self._kv} AS kv (namespace, key, value, expires_at) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (namespace, key) DO UPDATE "
                "SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at "
                "WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= $5 RETURNING true",
                namespace, key, encode(value), self._expiry(now, ttl), now)
        return bool(created)

    @_typed_failures
    async def compare_and_set(self, namespace: str, key: str, expected: Any, value: Any, *,
                              ttl: float | None = None) -> bool:
        if expected is None:
            return await self.put_if_absent(namespace, key, value, ttl=ttl)
        wanted = decode(encode(expected))
        pool, _ = await self._pools()
        now = self.clock()
        async with pool.acquire() as conn, conn.transaction():
            current = await conn.fetchval(
                f"SELECT value FROM {self._kv} WHERE namespace = $1 AND key = $2 AND {_LIVE} "
                "FOR UPDATE", namespace, key, now)
            if current is None or decode(current) != wanted:
                return False
            await conn.execute(
                f"UPDATE {self._kv} SET value = $3, expires_at = $4 WHERE namespace = $1 AND key = $2",
                namespace, key, encode(value), self._expiry(now, ttl))
            return True

    @_typed_failures
    async def delete(self, namespace: str, key: str) -> bool:
        pool, _ = await self._pools()
        now = self.clock()
        rows = await pool.fetch(
            f"DELETE FROM {self._kv} WHERE namespace = $1 AND key = $2 RETURNING expires_at",
            namespace, key)
        return any(row[0] is None or row[0] > now for row in rows)

    async def items(self, namespace: str, prefix: str = "", *, limit: int | None = None,
                    after: str | None = None) -> AsyncIterator[tuple[str, Any]]:
        pool, _ = await self._pools()
        low, exclusive, high = key_range(prefix, after)
        remaining = limit
        while remaining is None or remaining > 0:
            size = self.page_size if remaining is None else min(self.page_size, remaining)
            upper = " AND key < $5" if high is not None else ""
            params: list[Any] = [namespace, low, self.clock(), size]
            if high is not None:
                params.append(high)
            with _typed("items"):
                page = await pool.fetch(
                    f"SELECT key, value FROM {self._kv} WHERE namespace = $1 "
                    f"AND key {'>' if exclusive else '>='} $2{upper} AND {_LIVE} ORDER BY key "
                    "LIMIT $4", *params)
            for row in page:
                yield row[0], decode(row[1])
            if len(page) < size:
                return
            low, exclusive = page[-1][0], True
            if remaining is not None:
                remaining -= len(page)

    @_typed_failures
    async def count(self, namespace: str, prefix: str = "") -> int:
        pool, _ = await self._pools()
        low, _, high = key_range(prefix, None)
        upper = " AND key < $4" if high is not None else ""
        params: list[Any] = [namespace, low, self.clock()]
        if high is not None:
            params.append(high)
        return int(await pool.fetchval(
            f"SELECT count(*) FROM {self._kv} WHERE namespace = $1 AND key >= $2{upper} AND {_LIVE}",
            *params))

    def lock(self, name: str, *, timeout: float = 30.0,
             lease: float = 60.0) -> AbstractAsyncContextManager[Lease]:
        return self._lock(name, timeout)

    @asynccontextmanager
    async def _lock(self, name: str, wait: float) -> AsyncIterator[Lease]:
        deadline = anyio.current_time() + wait
        scope = f"splice:{self.schema}"
        async with self._local_locks.hold(name, deadline):
            _, lock_pool = await self._pools()
            held: list[Any] = []

            async def attempt() -> bool:
                # A connection is borrowed per attempt, so waiters never starve the pool. Waiting
                # for one (all busy, or opening one under load) is not waiting for the lock: a zero
                # timeout still means "take it if free", not "fail unless a connection is ready".
                conn = await self._borrow(lock_pool, max(deadline - anyio.current_time(), CONNECTION_WAIT))
                if conn is None:
                    return False
                # Shielded: a lock taken on the server must never go unrecorded here.
                with anyio.CancelScope(shield=True):
                    try:
                        with _typed("lock"):
                            took = await conn.fetchval(
                                "SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))",
                                scope, name)
                    except BaseException:
                        await self._give_back(lock_pool, conn)
                        raise
                    if took:
                        held.append(conn)
                        return True
                    await self._give_back(lock_pool, conn)
                return False

            with _typed("lock"):
                await poll(name, attempt, deadline)
            conn = held[0]
            lease = _SessionLease(name, conn, scope)
            try:
                async with watched(lease, LEASE_CHECK):
                    yield lease
            finally:
                with anyio.CancelScope(shield=True):
                    await self._unlock(lock_pool, conn, scope, name, lost=lease.lost)

    async def _borrow(self, lock_pool: Any, wait: float) -> Any | None:
        """A connection of the lock pool, or ``None`` when none came within ``wait`` seconds.

        Waiting for a free one can be cancelled. Opening one cannot (it is shielded, bounded by
        :data:`CONNECTION_WAIT`): asyncpg interrupted halfway through a connection's handshake leaves
        its failure behind, reported later as an error of no task. A cancellation arrives just after.
        """
        with anyio.move_on_after(wait) as waiting:
            await self._lock_connections.acquire()
        if waiting.cancelled_caught:
            return None
        conn = None
        try:
            with anyio.CancelScope(shield=True):
                # The slot is ours, so the pool has a free connection for us and never queues us.
                conn = await lock_pool.acquire(timeout=CONNECTION_WAIT)
        except TimeoutError:
            pass
        finally:
            if conn is None:
                self._lock_connections.release()
        return conn

    async def _give_back(self, lock_pool: Any, conn: Any) -> None:
        """Return a connection :meth:`_borrow` lent (its slot with it); call it shielded."""
        try:
            await lock_pool.release(conn)
        finally:
            self._lock_connections.release()

    async def _unlock(self, lock_pool: Any, conn: Any, scope: str, name: str, *,
                      lost: bool = False) -> None:
        """Release the lock and give its connection back, whatever state the session is in: a lost
        one is dropped, never handed to anyone again (its session is suspect), and the lock pool's
        slot is always returned, or the next lock would wait for a slot that never comes."""
        try:
            if lost:
                _drop(conn)
            else:
                try:
                    await conn.execute("SELECT pg_advisory_unlock(hashtext($1), hashtext($2))",
                                       scope, name)
                except Exception as exc:  # the session ending frees the lock too
                    log.warning("could not release lock %r cleanly (%s); dropping its connection",
                                name, exc)
                    _drop(conn)
        finally:
            try:
                await self._give_back(lock_pool, conn)
            except Exception as exc:  # the pool drops a connection it cannot reset; the lock goes
                log.warning("could not return the connection of lock %r (%s); dropped it",
                            name, exc)

    def work_queue(self) -> PostgresWorkQueue:
        if self._queue is None:
            from runtime.store.postgres_queue import PostgresWorkQueue

            self._queue = PostgresWorkQueue(dsn=self.dsn, schema=self.schema,
                                            pool=self._main_pool)
        return self._queue

    async def _main_pool(self) -> Any:
        pool, _ = await self._pools()
        return pool

    async def aclose(self) -> None:
        if self._queue is not None:
            await self._queue.aclose()
        async with self._init_lock:
            self._closed = True
            pool, lock_pool = self._pool, self._lock_pool
            self._pool = self._lock_pool = None
        for each in (lock_pool, pool):
            if each is not None:
                await each.close()

