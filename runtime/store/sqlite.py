"""The default object store: one SQLite file, zero set-up, shared safely by several processes.

Why it is built this way:

* **Two connections, each one thread at a time.** Every call runs in a worker thread through
  :func:`anyio.to_thread.run_sync`, serialised per connection by an :class:`anyio.Lock`, so the
  event loop never blocks on disk and no connection is used by two threads at once. Writes share one
  connection, reads the other, so a read never queues behind a write that is waiting for another
  process. Each call is one short statement or transaction; a burst of a thousand writers just
  queues.
* **Several processes on one file.** The file is in WAL mode (readers never wait for the writer) with
  a ``busy_timeout``; every read-modify-write runs in ``BEGIN IMMEDIATE``, which takes the write lock
  up front, so two processes can never both read the old value and both write.
* **Expiry is decided by the reader.** A row whose ``expires_at`` has passed reads as absent at once
  and is deleted lazily, during writes, at most once per ``purge_interval``.
* **Waiting for another process is done in slices.** SQLite's own busy handler cannot be stopped
  once it waits, so each connection waits at most :data:`BUSY_SLICE` per try and the call tries
  again until ``busy_timeout`` has passed, unless meanwhile its caller was cancelled or the store
  gave up waiting (:meth:`SQLiteStore.give_up_waiting`, and :meth:`~SQLiteStore.aclose`): a store
  locked by another process cannot hold a shutdown past its deadline.
* **Locks are rows.** ``lock()`` inserts ``locks(name, owner, expires_at)`` unless a live row exists,
  keeps the lease alive while the body runs, and deletes the row only if it still owns it. A holder
  that crashed stops renewing, and its row can be taken once ``lease`` seconds have passed.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.from_thread

from runtime.store._locking import LocalLocks, beside, log, poll
from runtime.store.base import (
    Lease,
    LockLostError,
    ObjectStore,
    StoreOpenError,
    StoreUnavailableError,
    decode,
    encode,
)

__all__ = ["DEFAULT_PATH", "SQLiteStore"]

DEFAULT_PATH = Path(".splice") / "store.db"
MEMORY = ":memory:"
#: Seconds SQLite's busy handler waits per try before the call looks whether it should go on.
BUSY_SLICE = 0.1

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    expires_at REAL NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expires_at ON kv (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS locks (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
"""

_LIVE = "(expires_at IS NULL OR expires_at > ?)"


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix`` (``None``: no bound).

    Both backends order keys by code point (SQLite ``BINARY``, PostgreSQL ``COLLATE "C"`` on UTF-8),
    so a prefix is the half-open range ``[prefix, prefix_end(prefix))`` and an index scan stops there.
    """
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:
                nxt = 0xE000
            return "".join(chars) + chr(nxt)
    return None


def key_range(prefix: str, after: str | None) -> tuple[str, bool, str | None]:
    """Lower bound, whether it is exclusive, and upper bound (exclusive) for a key scan."""
    if after is not None and after >= prefix:
        return after, True, prefix_end(prefix) if prefix else None
    return prefix, False, prefix_end(prefix) if prefix else None


class SQLiteStore(ObjectStore):
    """:class:`ObjectStore` on a SQLite file (``":memory:"`` for a private, throw-away store).

    ``clock`` (epoch seconds) decides expiry of values and lock leases; tests inject a fake one.
    ``durable=False`` trades the fsync of every commit for speed (``synchronous=NORMAL``): a process
    crash still loses nothing, a power cut may lose the last commits.
    """

    def __init__(self, path: str | Path = DEFAULT_PATH, *, clock: Callable[[], float] = time.time,
                 busy_timeout: float = 30.0, durable: bool = True, page_size: int = 200,
                 purge_interval: float = 60.0) -> None:
        self.path = path if str(path) == MEMORY else Path(path)
        self.clock = clock
        self.busy_timeout = busy_timeout
        self.durable = durable
        self.page_size = page_size
        self.purge_interval = purge_interval
        #: Set when waiting for another process's lock is pointless (shutdown past its deadline).
        self._giving_up = threading.Event()
        self._writer = _Connection(self._connect, busy_timeout, self._giving_up)
        # Reads get a connection of their own: in WAL mode they never wait for a writer, not even
        # one of ours that is queued behind another process's write lock. A memory database exists
        # only on its one connection, so there both share it.
        self._reader = self._writer if self.path == MEMORY else _Connection(
            self._connect, busy_timeout, self._giving_up)
        self._local_locks = LocalLocks()
        self._last_purge = float("-inf")
        #: Seconds :meth:`diagnose` waits for the write lock before it calls the store locked.
        self.probe_timeout = min(1.0, busy_timeout)
        self._checked = False  # quick_check passed once

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    # -- plumbing -------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            if isinstance(self.path, Path):
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=min(self.busy_timeout, BUSY_SLICE),
                                   isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.OperationalError) as exc:
            raise StoreOpenError(f"cannot open the SQLite store {str(self.path)!r}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(min(self.busy_timeout, BUSY_SLICE) * 1000)}")
            # Switching a fresh file to WAL can report "locked" at once, without waiting in the busy
            # handler, while another process does the same: retry here (this is a worker thread).
            deadline = time.monotonic() + self.busy_timeout
            pause = 0.005
            while True:
                try:
                    conn.execute("PRAGMA journal_mode = WAL")
                    conn.execute(f"PRAGMA synchronous = {'FULL' if self.durable else 'NORMAL'}")
                    conn.executescript(_SCHEMA)
                    break
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc):
                        raise
                    if time.monotonic() >= deadline or self._giving_up.is_set():
                        raise
                    anyio.from_thread.check_cancelled()
                    time.sleep(pause)
                    pause = min(pause * 2, 0.1)
        except BaseException:
            conn.close()
            raise
        return conn

    async def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the writing connection."""
        try:
            return await self._writer.run(fn)
        except _MISTAKES:
            raise
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from exc

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the reading connection (plain SELECTs only)."""
        try:
            return await self._reader.run(fn)
        except _MISTAKES:
            raise
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from exc

    def _maybe_purge(self, conn: sqlite3.Connection, now: float) -> None:
        """Delete expired rows now and then (readers already ignore them)."""
        if now - self._last_purge < self.purge_interval:
            return
        self._last_purge = now
        conn.execute("DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))
        conn.execute("DELETE FROM locks WHERE expires_at <= ?", (now,))

    def _expiry(self, now: float, ttl: float | None) -> float | None:
        return None if ttl is None else now + ttl

    # -- ObjectStore ----------------------------------------------------------------------------

    async def get(self, namespace: str, key: str) -> Any | None:
        now = self.clock()

        def op(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(f"SELECT value FROM kv WHERE namespace = ? AND key = ? AND {_LIVE}",
                               (namespace, key, now)).fetchone()
            return None if row is None else row[0]

        text = await self._read(op)
        return None if text is None else decode(text)

    async def put(self, namespace: str, key: str, value: Any, *, ttl: float | None = None) -> None:
        text, now = encode(value), self.clock()
        expires = self._expiry(now, ttl)

        def op(conn: sqlite3.Connection) -> None:
            self._maybe_purge(conn, now)
            conn.execute(
                "INSERT INTO kv (namespace, key, value, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (namespace, key) DO UPDATE "
                "SET value = excluded.value, expires_at = excluded.expires_at",
                (namespace, key, text, expires))

        await self._call(op)

    async def put_many(self, entries: Sequence[tuple[str, str, Any]], *,
                       ttl: float | None = None) -> None:
        now = self.clock()
        expires = self._expiry(now, ttl)
        rows = [(namespace, key, encode(value), expires) for namespace, key, value in entries]
        if not rows:
            return

        def op(conn: sqlite3.Connection) -> None:
            self._maybe_purge(conn, now)
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT INTO kv (namespace, key, value, expires_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (namespace, key) DO UPDATE "
                    "SET value = excluded.value, expires_at = excluded.expires_at", rows)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        await self._call(op)

    async def put_if_absent(self, namespace: str, key: str, value: Any, *,
                            ttl: float | None = None) -> bool:
        text, now = encode(value), self.clock()
        expires = self._expiry(now, ttl)

        def op(conn: sqlite3.Connection) -> bool:
            self._maybe_purge(conn, now)
            # One statement, so one write transaction: an expired row is replaced, a live one kept.
            cur = conn.execute(
                "INSERT INTO kv (namespace, key, value, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (namespace, key) DO UPDATE "
                "SET value = excluded.value, expires_at = excluded.expires_at "
                "WHERE kv.expires_at IS NOT NULL AND kv.expires_at <= ?",
                (namespace, key, text, expires, now))
            return cur.rowcount > 0

        return await self._call(op)

    async def compare_and_set(self, namespace: str, key: str, expected: Any, value: Any, *,
                              ttl: float | None = None) -> bool:
        if expected is None:
            return await self.put_if_absent(namespace, key, value, ttl=ttl)
        wanted = decode(encode(expected))  # compare in stored form: tuples as lists, and so on
        text, now = encode(value), self.clock()
        expires = self._expiry(now, ttl)

        def op(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    f"SELECT value FROM kv WHERE namespace = ? AND key = ? AND {_LIVE}",
                    (namespace, key, now)).fetchone()
                if row is None or decode(row[0]) != wanted:
                    conn.execute("ROLLBACK")
                    return False
                conn.execute("UPDATE kv SET value = ?, expires_at = ? WHERE namespace = ? AND key = ?",
                             (text, expires, namespace, key))
                conn.execute("COMMIT")
                return True
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        return await self._call(op)

    async def delete(self, namespace: str, key: str) -> bool:
        now = self.clock()

        def op(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            try:
                live = conn.execute(
                    f"SELECT 1 FROM kv WHERE namespace = ? AND key = ? AND {_LIVE}",
                    (namespace, key, now)).fetchone() is not None
                conn.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
                conn.execute("COMMIT")
                return live
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        return await self._call(op)

    async def items(self, namespace: str, prefix: str = "", *, limit: int | None = None,
                    after: str | None = None) -> AsyncIterator[tuple[str, Any]]:
        low, exclusive, high = key_range(prefix, after)
        remaining = limit
        while remaining is None or remaining > 0:
            size = self.page_size if remaining is None else min(self.page_size, remaining)
            now = self.clock()
            sql = (f"SELECT key, value FROM kv WHERE namespace = ? AND key {'>' if exclusive else '>='} ?"
                   f"{' AND key < ?' if high is not None else ''} AND {_LIVE} ORDER BY key LIMIT ?")
            params: tuple[Any, ...] = (namespace, low, *((high,) if high is not None else ()), now, size)

            def op(conn: sqlite3.Connection, sql: str = sql,
                   params: tuple[Any, ...] = params) -> list[tuple[str, str]]:
                return conn.execute(sql, params).fetchall()

            page = await self._read(op)
            for key, text in page:
                yield key, decode(text)
            if len(page) < size:
                return
            low, exclusive = page[-1][0], True
            if remaining is not None:
                remaining -= len(page)

    async def count(self, namespace: str, prefix: str = "") -> int:
        low, _, high = key_range(prefix, None)
        now = self.clock()
        sql = (f"SELECT count(*) FROM kv WHERE namespace = ? AND key >= ?"
               f"{' AND key < ?' if high is not None else ''} AND {_LIVE}")
        params = (namespace, low, *((high,) if high is not None else ()), now)
        return await self._read(lambda conn: int(conn.execute(sql, params).fetchone()[0]))

    def lock(self, name: str, *, timeout: float = 30.0,
             lease: float = 60.0) -> AbstractAsyncContextManager[Lease]:
        return self._lock(name, timeout, lease)

    @asynccontextmanager
    async def _lock(self, name: str, wait: float, lease: float) -> AsyncIterator[Lease]:
        deadline = anyio.current_time() + wait
        owner = uuid.uuid4().hex
        async with self._local_locks.hold(name, deadline):
            await poll(name, lambda: self._try_lock(name, owner, lease), deadline)
            held = _RowLease(self, name, owner)
            try:
                async with beside(lambda body: self._keep_lease(held, lease, body)):
                    yield held
                if held.lost:
                    await held.confirm()  # raises LockLostError: the body was cancelled for it
            finally:
                with anyio.CancelScope(shield=True):
                    try:
                        await self._call(lambda conn: conn.execute(
                            "DELETE FROM locks WHERE name = ? AND owner = ?", (name, owner)))
                    except anyio.ClosedResourceError:
                        log.warning("store closed while lock %r was held; it frees when its "
                                    "lease runs out", name)

    async def _try_lock(self, name: str, owner: str, lease: float) -> bool:
        now = self.clock()

        def op(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute(
                    "INSERT INTO locks (name, owner, expires_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                    "expires_at = excluded.expires_at WHERE locks.expires_at <= ?",
                    (name, owner, now + lease, now))
                conn.execute("COMMIT")
                return cur.rowcount > 0
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        # Shielded: a cancellation landing while the row is being written must not leave it
        # behind unowned; it is delivered right after, inside the lock, which then releases.
        with anyio.CancelScope(shield=True):
            took = await self._call(op)
        return took

    async def _keep_lease(self, held: _RowLease, lease: float, body: anyio.CancelScope) -> None:
        """Push the lease forward while the body runs, so only a dead holder loses the lock; when
        the row was taken over meanwhile (this process stalled past its lease), the lock is lost
        and the body is cancelled."""
        while True:
            await anyio.sleep(max(lease / 3, 0.01))
            until = self.clock() + lease

            def renew(conn: sqlite3.Connection, until: float = until) -> int:
                return conn.execute("UPDATE locks SET expires_at = ? WHERE name = ? AND owner = ?",
                                    (until, held.name, held.owner)).rowcount

            try:
                renewed = await self._call(renew)
            except (sqlite3.Error, anyio.ClosedResourceError) as exc:
                log.warning("could not renew the lease of lock %r: %s", held.name, exc)
                continue
            if renewed == 0:
                log.error("lock %r was taken over after its lease ran out; stopping the work done "
                          "under it", held.name)
                held.lose("taken over after its lease ran out")
                body.cancel()
                return

    def give_up_waiting(self) -> None:
        """From now on, a call that finds the file locked by another process fails at once
        (``database is locked``) instead of waiting up to ``busy_timeout``.

        For a shutdown past its deadline, when even shielded clean-ups (a lock row's release, the
        last execution records) must not wait for a lock another process holds.
        """
        self._giving_up.set()

    async def diagnose(self) -> list[str]:
        """Missing, read-only (the file cannot be opened for writing), corrupt (``PRAGMA
        quick_check``, run once, the first time) or locked (a write cannot take the write lock
        within :attr:`probe_timeout`), on a connection of its own so that the probe never queues
        behind the store's own writes. The probe's write is rolled back."""
        if self.path == MEMORY:
            return []
        return await anyio.to_thread.run_sync(self._diagnose)

    def _diagnose(self) -> list[str]:
        path = str(self.path)
        # Asked of the OS, not of SQLite: a connection of this process may reuse a descriptor its
        # other connections opened before the file became read-only, and write through it. Never
        # by opening the file: closing any descriptor of it drops every POSIX lock this process
        # holds on it, the store's own connections' included.
        for name in (path, path + "-wal"):
            if not os.path.exists(name):
                if name == path:
                    return [f"the SQLite file {path} is missing"]
                continue
            if not os.access(name, os.W_OK):
                return [f"the SQLite file {path} is read-only (no write access to {name})"]
        try:
            # mode=rw: a missing file is reported, not created empty behind the runtime's back.
            conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=rw", uri=True,
                                   timeout=self.probe_timeout, isolation_level=None)
        except sqlite3.Error as exc:
            return [f"the SQLite file {path} cannot be opened: {exc}"]
        try:
            if not self._checked:
                rows = conn.execute("PRAGMA quick_check").fetchall()
                problems = [str(row[0]) for row in rows if row and row[0] != "ok"]
                if problems:
                    return [f"the SQLite file {path} is corrupt: {'; '.join(problems[:3])}"]
                self._checked = True
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("INSERT OR REPLACE INTO kv (namespace, key, value, expires_at) "
                             "VALUES ('splice:ready', 'write-probe', '{}', 0)")
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            return [_sqlite_problem(path, exc, self.probe_timeout)]
        finally:
            conn.close()
        return []

    async def aclose(self) -> None:
        self._giving_up.set()  # a call waiting for another process's lock stops, so close won't wait
        await self._reader.aclose()
        await self._writer.aclose()


#: What the database answers when it cannot do the work (locked past the busy timeout, read-only,
#: disk or I/O errors, a damaged file), as opposed to a mistake in what was asked (constraint
#: violations, programming errors), which stays itself.
_UNAVAILABLE = (sqlite3.OperationalError, sqlite3.DatabaseError)
_MISTAKES = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


def _sqlite_problem(path: str, error: sqlite3.Error, waited: float) -> str:
    """One line for ``/ready`` from what SQLite said."""
    text = str(error)
    lower = text.lower()
    if "readonly" in lower or "read-only" in lower:
        return f"the SQLite file {path} is read-only ({text})"
    if "locked" in lower or "busy" in lower:
        return (f"the SQLite file {path} is locked: its write lock was not free within "
                f"{waited:g} s ({text})")
    if "malformed" in lower or "not a database" in lower or "corrupt" in lower:
        return f"the SQLite file {path} is corrupt ({text})"
    return f"the SQLite file {path} cannot be written: {text}"


def _unavailable(exc: sqlite3.Error) -> StoreUnavailableError:
    return StoreUnavailableError(f"the SQLite store failed: {type(exc).__name__}: {exc}")


class _RowLease(Lease):
    """A lease on a row of the ``locks`` table: held while the row names this owner and has not
    expired (a process that stalled past its lease may find its row taken over)."""

    def __init__(self, store: SQLiteStore, name: str, owner: str) -> None:
        super().__init__(name)
        self.owner = owner
        self._store = store

    async def _check(self) -> None:
        now = self._store.clock()

        def read(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT 1 FROM locks WHERE name = ? AND owner = ? AND expires_at > ?",
                               (self.name, self.owner, now)).fetchone()
            return row is not None

        if not await self._store._read(read):
            raise LockLostError("its lease row was taken over or ran out")


def _is_busy(error: sqlite3.OperationalError) -> bool:
    return "locked" in str(error) or "busy" in str(error)


class _Connection:
    """One sqlite3 connection, opened on first use, used from worker threads one call at a time.

    A call that finds the database locked by another process is tried again (each try waits
    :data:`BUSY_SLICE` in SQLite's busy handler) until ``busy_timeout`` has passed, its caller is
    cancelled, or ``giving_up`` is set. A failed try left nothing behind: a statement that got
    ``SQLITE_BUSY`` did nothing, and a transaction it was in is rolled back before the next try.
    """

    def __init__(self, opener: Callable[[], sqlite3.Connection], busy_timeout: float,
                 giving_up: threading.Event) -> None:
        self._opener = opener
        self._busy_timeout = busy_timeout
        self._giving_up = giving_up
        self._conn: sqlite3.Connection | None = None
        self._lock = anyio.Lock()
        self._closed = False
        # Its own thread token: blocking work elsewhere in the process cannot starve the store.
        self._limiter: anyio.CapacityLimiter | None = None

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        async with self._lock:
            if self._closed:
                raise anyio.ClosedResourceError("the store is closed")

            def call() -> T:
                if self._conn is None:
                    self._conn = self._opener()
                return self._patiently(fn, self._conn)

            # Not abandoned on cancellation: the call finishes (or rolls back) before the lock is
            # released, so the connection is never left inside a transaction.
            if self._limiter is None:
                self._limiter = anyio.CapacityLimiter(1)
            return await anyio.to_thread.run_sync(call, limiter=self._limiter)

    def _patiently(self, fn: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection) -> T:
        """``fn(conn)``, tried again while the database is locked (in a worker thread)."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                return fn(conn)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline or self._giving_up.is_set():
                    raise
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            # Raises the caller's cancellation here, between two tries, when it was cancelled.
            anyio.from_thread.check_cancelled()

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None:
                await anyio.to_thread.run_sync(conn.close)
