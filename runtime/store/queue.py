"""The durable work queue: events an exclusive trigger hands over, for every replica to run.

With several ``splice serve`` replicas on one shared store, an exclusive trigger (a poll, a change
stream) runs on one replica only. Running every execution it triggers on that replica too would
leave the others idle, so the trigger enqueues its events here instead and every replica's workers
take them (see :mod:`runtime.workqueue`). The hand-over is at least once:

* :meth:`WorkQueue.enqueue` returns once the events are committed; only then may the trigger save
  its position, so an event is never lost between the trigger and the queue;
* :meth:`WorkQueue.take` leases items to one worker (its replica id) until an expiry; a worker that
  dies (SIGKILL, a lost host) stops renewing, its leases expire and its items return to the queue;
* :meth:`WorkQueue.complete` deletes an item once its execution ended (completed or dead-lettered).

An item may therefore run twice (its worker died after the effects, before ``complete``); the
effects stay exactly once through the idempotency ledger and the connectors' idempotency keys, as
for a trigger that delivers an event again.

A backend provides the queue through :meth:`runtime.store.base.ObjectStore.work_queue`; only stores
that serve replicas have one (PostgreSQL). The embedded SQLite store runs executions in process.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from runtime.message import Event
from runtime.store.base import decode, encode

__all__ = ["QueueDepth", "WorkItem", "WorkQueue", "decode_event", "encode_event"]


def encode_event(event: Event) -> str:
    """The stored form of an event: what the engine needs to run it (money stays Decimal)."""
    return encode({"payload": event.payload, "attributes": event.attributes, "id": event.id})


def decode_event(text: str) -> Event:
    """The event :func:`encode_event` stored."""
    data = decode(text)
    return Event(payload=data.get("payload"), attributes=dict(data.get("attributes") or {}),
                 id=data.get("id"))


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One queued event, leased to the worker that took it."""

    id: int
    flow: str
    event: Event
    #: How many times the item was taken, this time included (more than one: it ran, or began
    #: to run, before; a previous worker died or released it).
    attempts: int
    #: When the trigger enqueued it (epoch seconds).
    enqueued_at: float
    #: The replica whose lease on the item expired before this take (``None``: none had it).
    expired_owner: str | None = None


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """How many items of a flow wait (``queued``) and run under a live lease (``leased``)."""

    queued: int = 0
    leased: int = 0


class WorkQueue(ABC):
    """A queue of events per flow shared by every replica of one store.

    Items of one flow are taken oldest first. Every method may raise
    :class:`runtime.store.base.StoreUnavailableError`; what it was asked may or may not have
    happened, as after any lost answer (a lease that was not renewed expires; an item that was not
    completed runs again).
    """

    @abstractmethod
    async def enqueue(self, flow: str, events: Sequence[Event]) -> list[int]:
        """Add ``events`` for ``flow`` in one transaction and wake idle workers; their ids."""

    @abstractmethod
    async def take(self, flow: str, *, owner: str, limit: int, lease: float) -> list[WorkItem]:
        """Lease up to ``limit`` items of ``flow`` that nobody holds to ``owner`` for ``lease``
        seconds. Items whose lease expired count as held by nobody."""

    @abstractmethod
    async def extend(self, ids: Iterable[int], *, owner: str, lease: float) -> set[int]:
        """Renew ``owner``'s leases on ``ids`` for ``lease`` seconds from now; the ids it still
        held (the others expired and may run elsewhere)."""

    @abstractmethod
    async def complete(self, item_id: int, *, owner: str) -> bool:
        """Remove a finished item; ``False`` when ``owner`` no longer held it."""

    @abstractmethod
    async def release(self, item_id: int, *, owner: str, delay: float = 0.0,
                      error: str | None = None) -> bool:
        """Give an item back, to be taken again after ``delay`` seconds (``error``: why its run
        did not finish); ``False`` when ``owner`` no longer held it."""

    @abstractmethod
    async def depth(self) -> Mapping[str, QueueDepth]:
        """The items of each flow that has any."""

    @abstractmethod
    async def wait(self, flow: str, seconds: float) -> bool:
        """Until items of ``flow`` may have been added (``True``) or ``seconds`` passed.

        A wake-up is a hint, not a promise: callers take and find out. Missing one costs at most
        ``seconds`` (the fallback poll), so a backend may lose them (a reconnect) and stay correct.
        """

    @abstractmethod
    async def aclose(self) -> None:
        """Release what waiting holds (a listening connection); the queue's items stay."""

