"""The object store and the bookkeeping built on it.

:func:`open_store` turns a URL from the runtime's configuration into a backend:

* ``sqlite:///relative/path.db`` (relative to the working directory), ``sqlite:////abs/path.db``,
  or plain ``sqlite://`` for the default ``.splice/store.db``: the embedded default;
* ``memory://``: a private SQLite database in memory, gone when closed (tests, ``--sandbox``);
* ``postgresql://user@host/db`` or ``postgres://...``: shared by several ``splice serve``
  replicas; ``?schema=name`` picks the schema (default ``splice``).

A store that serves replicas has a :class:`WorkQueue` (:meth:`ObjectStore.work_queue`): the events of
exclusive triggers, shared by the replicas' workers (:mod:`runtime.store.queue`).

The helpers (:class:`IdempotencyLedger`, :class:`DeadLetterQueue`, :class:`Inbox`,
:class:`JobState`, :class:`SourceStateStore`) use only the :class:`ObjectStore` protocol, so they
behave the same on every backend.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from runtime.store.base import (
    Lease,
    LockLostError,
    LockTimeoutError,
    ObjectStore,
    StoreOpenError,
    StoreURLError,
    decode,
    encode,
)
from runtime.store.deadletters import DEAD_LETTERS_NAMESPACE, DeadLetter, DeadLetterQueue
from runtime.store.ids import compare_and_delete, new_id
from runtime.store.inbox import Inbox, InboxItem
from runtime.store.jobs import JobRun, JobState
from runtime.store.ledger import IdempotencyLedger, LedgerEntry
from runtime.store.postgres import PostgresStore
from runtime.store.queue import QueueDepth, WorkItem, WorkQueue
from runtime.store.sourcestate import SOURCE_STATE_NAMESPACE, SourceStateStore
from runtime.store.sqlite import DEFAULT_PATH, MEMORY, SQLiteStore

__all__ = [
    "DEAD_LETTERS_NAMESPACE",
    "DEFAULT_PATH",
    "SOURCE_STATE_NAMESPACE",
    "DeadLetter",
    "DeadLetterQueue",
    "IdempotencyLedger",
    "Inbox",
    "InboxItem",
    "JobRun",
    "JobState",
    "LedgerEntry",
    "MEMORY",
    "Lease",
    "LockLostError",
    "LockTimeoutError",
    "ObjectStore",
    "PostgresStore",
    "QueueDepth",
    "SQLiteStore",
    "SourceStateStore",
    "StoreOpenError",
    "StoreURLError",
    "WorkItem",
    "WorkQueue",
    "compare_and_delete",
    "decode",
    "encode",
    "new_id",
    "open_store",
]

_ACCEPTED = ("sqlite:///relative/path.db, sqlite:////absolute/path.db, sqlite:// (default "
             f"{DEFAULT_PATH}), memory://, postgresql://user@host:port/database[?schema=name] "
             "(or postgres://...)")


def open_store(url: str, **options: Any) -> ObjectStore:
    """The backend a store URL names; no I/O happens until the store is first used.

    ``options`` go to the backend's constructor (``clock``, ``durable``, pool sizes...).
    Raises :class:`StoreURLError` (a :class:`ValueError`) for a URL it does not understand, listing the accepted forms.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise StoreURLError(f"not a store URL: {url!r}; expected one of {_ACCEPTED}")
    if scheme == "sqlite":
        if rest and not rest.startswith("/"):
            raise StoreURLError(f"sqlite URLs need three slashes before a path: {url!r}; "
                             f"expected one of {_ACCEPTED}")
        path = rest[1:]  # "/rel.db" -> "rel.db"; "//abs.db" -> "/abs.db"
        return SQLiteStore(path or DEFAULT_PATH, **options)
    if scheme == "memory":
        if rest.strip("/"):
            raise StoreURLError(f"memory:// takes no path: {url!r}; expected one of {_ACCEPTED}")
        return SQLiteStore(MEMORY, **options)
    if scheme in {"postgresql", "postgres"}:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        schema = [value for name, value in query if name == "schema"]
        if schema:
            options.setdefault("schema", schema[-1])
        dsn = urlunsplit(parts._replace(query=urlencode([(n, v) for n, v in query if n != "schema"])))
        return PostgresStore(dsn, **options)
    raise StoreURLError(f"unknown store URL scheme {scheme!r} in {url!r}; expected one of {_ACCEPTED}")
