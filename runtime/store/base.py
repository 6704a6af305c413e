"""The object store: the one place where Splice keeps state that must survive a restart.

Watermarks, the idempotency ledger, dead letters, OAuth tokens, webhook inboxes and job state all
live here, on top of one small key/value protocol with namespaces, TTLs, compare-and-set and named
locks. A backend implements :class:`ObjectStore`; everything else (:mod:`runtime.store.ledger`,
:mod:`runtime.store.deadletters`...) is written against the protocol, so moving from the embedded
SQLite file to PostgreSQL changes no flow and no connector.

Values are JSON documents. :func:`encode` / :func:`decode` keep ``Decimal`` and ``datetime`` exact
across the round trip (money stays Decimal).
"""

from __future__ import annotations

import base64
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from runtime.errors import ConfigurationError, SpliceError

if TYPE_CHECKING:
    from runtime.store.queue import WorkQueue

_orjson: Any
try:  # the fast extra (see runtime.jsonutil)
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised where orjson is not installed
    _orjson = None
_ORJSON_OPTIONS = 0 if _orjson is None else (
    _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS
    | _orjson.OPT_PASSTHROUGH_SUBCLASS)

__all__ = ["STORE_UNAVAILABLE", "Lease", "LockLostError", "LockTimeoutError", "ObjectStore",
           "StoreOpenError", "StoreURLError", "StoreUnavailableError", "decode", "encode"]


class StoreURLError(ConfigurationError):
    """The store URL of the settings (or ``--store``) is not one ``open_store`` understands."""


class StoreOpenError(ConfigurationError):
    """The store cannot be opened where the settings put it: a directory that cannot be made, a
    file that cannot be written. Raised when the store is first used, never for a later failure."""


#: The error type of a store that does not answer, or answers with a failure of its own.
STORE_UNAVAILABLE = "STORE:UNAVAILABLE"


class StoreUnavailableError(SpliceError):
    """The store failed to do what it was asked: unreachable, its connection cut, locked, read-only
    or damaged. Typed and retryable, so a step that meets it inside a connector is retried with
    backoff (the engine's built-in policy) instead of failing as a connector's unexpected error;
    what was asked of the store may or may not have happened, exactly as after a lost answer."""

    default_type = STORE_UNAVAILABLE

    def __init__(self, message: str) -> None:
        super().__init__(message, error_type=STORE_UNAVAILABLE, retryable=True, status=503)


class LockTimeoutError(Exception):
    """A named lock could not be taken within the given time."""


class LockLostError(Exception):
    """The holder of a named lock no longer holds it: its database session ended (failover, a
    network blip, an administrator's ``pg_terminate_backend``) or its lease was taken over. Work
    that only the holder may do must stop: another process may hold the lock now."""


class Lease:
    """What the holder of a named lock has while its body runs: ask :meth:`confirm` before each
    unit of work that only the holder may do (the fencing check), so that a holder that lost the
    lock stops at once instead of working on beside the new holder.

    The backend watches the lock too and cancels the body when it finds it lost, so a holder that
    does no work is stopped as well. This base lease is for locks that cannot be lost while the
    process lives; backends whose locks can (a database session, a lease row) override
    :meth:`_check`.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lost: str | None = None

    @property
    def lost(self) -> bool:
        """Whether the lock is known to be lost (no round trip)."""
        return self._lost is not None

    def lose(self, reason: str) -> None:
        """Record that the lock is gone, and why; every later :meth:`confirm` raises."""
        if self._lost is None:
            self._lost = reason

    async def confirm(self) -> None:
        """Return when the lock is still held; raise :class:`LockLostError` when it is not."""
        if self._lost is None:
            try:
                await self._check()
            except LockLostError as exc:
                self.lose(str(exc))
        if self._lost is not None:
            raise LockLostError(f"lock {self.name!r} was lost: {self._lost}")

    async def _check(self) -> None:
        """Raise :class:`LockLostError` when the backend no longer holds the lock."""


class ObjectStore(ABC):
    """Async key/value store with namespaces.

    Every method is safe to call from many concurrent tasks; ``put_if_absent``,
    ``compare_and_set`` and ``lock`` are atomic across processes that share the backend.
    ``ttl`` is in seconds; an expired key reads as absent.
    """

    #: Whether several ``serve`` replicas (on several hosts) may share this store; they then take
    #: turns at exclusive triggers through :meth:`lock`.
    serves_replicas: ClassVar[bool] = False

    @abstractmethod
    async def get(self, namespace: str, key: str) -> Any | None:
        """The value, or ``None`` when absent or expired."""

    @abstractmethod
    async def put(self, namespace: str, key: str, value: Any, *, ttl: float | None = None) -> None:
        """Create or replace."""

    async def put_many(self, entries: Sequence[tuple[str, str, Any]], *,
                       ttl: float | None = None) -> None:
        """Create or replace several ``(namespace, key, value)`` entries, in one write if the backend
        can (background writers batch with it: one commit for many records)."""
        for namespace, key, value in entries:
            await self.put(namespace, key, value, ttl=ttl)

    @abstractmethod
    async def put_if_absent(self, namespace: str, key: str, value: Any, *,
                            ttl: float | None = None) -> bool:
        """Create only if absent (or expired); ``True`` if this call created it."""

    @abstractmethod
    async def compare_and_set(self, namespace: str, key: str, expected: Any, value: Any, *,
                              ttl: float | None = None) -> bool:
        """Replace only if the current value equals ``expected`` (``None``: absent)."""

    @abstractmethod
    async def delete(self, namespace: str, key: str) -> bool:
        """Remove; ``True`` if something was there."""

    @abstractmethod
    def items(self, namespace: str, prefix: str = "", *, limit: int | None = None,
              after: str | None = None) -> AsyncIterator[tuple[str, Any]]:
        """Live entries in key order, starting after key ``after``; a page at a time internally."""

    @abstractmethod
    async def count(self, namespace: str, prefix: str = "") -> int:
        """How many live entries."""

    @abstractmethod
    def lock(self, name: str, *, timeout: float = 30.0,
             lease: float = 60.0) -> AbstractAsyncContextManager[Lease]:
        """A named mutual-exclusion lock, shared by every process using the same backend.

        Waits at most ``timeout`` seconds while another holder has it (then
        :class:`LockTimeoutError`); ``timeout=0`` takes it only if it is free. Reaching the backend
        is not part of that wait. ``lease`` bounds how long a crashed holder can keep others out.

        The body gets a :class:`Lease` to confirm before each unit of work. When the backend finds
        the lock lost while the body runs, it cancels the body and raises :class:`LockLostError`.
        """

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections and files."""

    def work_queue(self) -> WorkQueue | None:
        """The queue through which replicas share the executions of exclusive triggers (see
        :mod:`runtime.store.queue`); ``None``: this backend has none, executions run where their
        trigger runs. The same object on every call; closed with the store."""
        return None

    async def diagnose(self) -> list[str]:
        """What keeps this store from serving a deployment, one line each (``[]``: nothing found).

        ``GET /ready`` calls it every few seconds besides its read: a backend checks here what a
        read does not show (it is read-only, its write lock is held, its file is corrupt). The
        default finds nothing; a backend must answer within a second or two and never raise.
        """
        return []

    async def __aenter__(self) -> ObjectStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return {"$decimal": str(obj)}
    if isinstance(obj, datetime):
        return {"$datetime": obj.isoformat()}
    if isinstance(obj, date):
        return {"$date": obj.isoformat()}
    if isinstance(obj, bytes):
        return {"$bytes": base64.b64encode(obj).decode("ascii")}
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    raise TypeError(f"cannot store a value of type {type(obj).__name__}")


def _hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((tag, raw),) = obj.items()
        if tag == "$decimal":
            return Decimal(raw)
        if tag == "$datetime":
            return datetime.fromisoformat(raw)
        if tag == "$date":
            return date.fromisoformat(raw)
        if tag == "$bytes":
            return base64.b64decode(raw)
    return obj


def encode(value: Any) -> str:
    """JSON text for a stored value (compact, keys kept in order).

    orjson writes it when installed (the store's writes, the execution history's above all, spend
    much of their time here); whatever it would write differently (``str`` or ``int`` subclasses,
    non-string keys, integers beyond 64 bits, dates, which are tagged) it refuses, and the standard
    library writes. Both give the same text but for floats' spelling (``1e16``, ``1e+16``), which
    read back the same, and NaN (``null``, ``NaN``), which no JSON document carries.
    """
    if _orjson is not None:
        try:
            return str(_orjson.dumps(value, default=_default, option=_ORJSON_OPTIONS), "utf-8")
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            pass
    return json.dumps(value, default=_default, separators=(",", ":"), ensure_ascii=False)


def decode(text: str | bytes) -> Any:
    """The value :func:`encode` wrote."""
    return json.loads(text, object_hook=_hook)
