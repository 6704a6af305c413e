"""Dead letters: events a flow gave up on, kept whole so that they can be read and replayed.

A dead letter keeps the full input message (payload, attributes, vars, correlation id) as it entered
the failing step, the typed error, and how many attempts were made. Ids sort by creation time
(:func:`runtime.store.ids.new_id`), so the store's key order is the queue's order: oldest first.
Listing streams through the store page by page; filtering by flow reads past other flows' letters,
which is fine for a queue that operators keep short.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import asdict, dataclass, field
from typing import Any

from runtime.store.base import ObjectStore
from runtime.store.ids import new_id, scan, utc_iso

__all__ = ["DEAD_LETTERS_NAMESPACE", "DeadLetter", "DeadLetterQueue"]

DEAD_LETTERS_NAMESPACE = "dead-letters"


@dataclass(slots=True)
class DeadLetter:
    """One dead-lettered event.

    ``message`` is the input message as a dict (``payload``, ``attributes``, ``vars``,
    ``correlationId``); ``error`` the error as a dict (``type`` such as ``QUICKBOOKS:VALIDATION``,
    ``message``, ``retryable``, safe details). ``created_at`` is ISO 8601 UTC.
    """

    id: str
    flow: str
    step: str
    message: dict[str, Any]
    error: dict[str, Any]
    created_at: str
    attempts: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain form, as stored and as printed by ``splice dead-letters``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeadLetter:
        """Rebuild a stored dead letter (unknown fields are kept in ``extra``)."""
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        rest = {name: value for name, value in data.items() if name not in cls.__dataclass_fields__}
        letter = cls(**known)
        letter.extra.update(rest)
        return letter


class DeadLetterQueue:
    """The dead letters of every flow, in one store namespace."""

    def __init__(self, store: ObjectStore, namespace: str = DEAD_LETTERS_NAMESPACE, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.namespace = namespace
        self.clock = clock

    async def add(self, *, flow: str, step: str, message: dict[str, Any], error: dict[str, Any],
                  attempts: int = 1) -> str:
        """Keep an event the flow gave up on; returns its id (for ``get``, ``delete``, replay)."""
        now = self.clock()
        letter = DeadLetter(id=new_id(now), flow=flow, step=step, message=message, error=error,
                            created_at=utc_iso(now), attempts=attempts)
        await self.store.put(self.namespace, letter.id, letter.to_dict())
        return letter.id

    async def iter(self, *, flow: str | None = None,
                   after: str | None = None) -> AsyncGenerator[DeadLetter, None]:
        """Every dead letter (of ``flow``), oldest first, starting after id ``after``."""
        async with scan(self.store, self.namespace, after=after) as entries:
            async for _, data in entries:
                if isinstance(data, dict) and (flow is None or data.get("flow") == flow):
                    yield DeadLetter.from_dict(data)

    async def list(self, *, flow: str | None = None, limit: int = 100,
                   after: str | None = None) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, oldest first; pass the last id as ``after`` for the next page."""
        found: list[DeadLetter] = []
        if limit <= 0:
            return found
        async with aclosing(self.iter(flow=flow, after=after)) as letters:
            async for letter in letters:
                found.append(letter)
                if len(found) >= limit:
                    break
        return found

    async def get(self, letter_id: str) -> DeadLetter | None:
        """One dead letter by id."""
        data = await self.store.get(self.namespace, letter_id)
        return DeadLetter.from_dict(data) if isinstance(data, dict) else None

    async def delete(self, letter_id: str) -> bool:
        """Drop a dead letter (after a successful replay, or by an operator)."""
        return await self.store.delete(self.namespace, letter_id)

    async def count(self, flow: str | None = None) -> int:
        """How many dead letters (of ``flow``)."""
        if flow is None:
            return await self.store.count(self.namespace)
        total = 0
        async for _ in self.iter(flow=flow):
            total += 1
        return total
