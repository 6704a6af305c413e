"""Messages moving through a flow, the events sources produce, and the outcome of handling one."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from runtime.errors import SpliceError

__all__ = ["Event", "Message", "Outcome", "new_correlation_id"]


def new_correlation_id() -> str:
    """A fresh random 128-bit id (hex) that ties logs, spans and dead letters of one execution."""
    return os.urandom(16).hex()


@dataclass(slots=True)
class Event:
    """What a source hands to the runtime: the first payload plus metadata.

    ``id`` identifies the event at its origin (a webhook delivery id, ``Id@SystemModstamp``); the
    engine keeps it as ``attributes.eventId``, so a redelivered event is recognisable in logs and
    dead letters while each execution still gets its own correlation id.
    """

    payload: Any
    attributes: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(slots=True)
class Message:
    """The state of one execution: ``payload`` (what steps work on), ``attributes`` (read-only
    metadata of the trigger) and ``vars`` (named values steps set for later steps)."""

    payload: Any
    attributes: dict[str, Any] = field(default_factory=dict)
    vars: dict[str, Any] = field(default_factory=dict)
    correlation_id: str = field(default_factory=new_correlation_id)

    def copy(self, payload: Any = None, *, keep_payload: bool = True) -> Message:
        """A copy with its own ``vars`` dict, so branches and foreach items do not see each other."""
        return Message(
            payload=self.payload if keep_payload else payload,
            attributes=self.attributes,
            vars=dict(self.vars),
            correlation_id=self.correlation_id,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form stored with dead letters."""
        return {
            "payload": self.payload,
            "attributes": self.attributes,
            "vars": self.vars,
            "correlationId": self.correlation_id,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        """Rebuild a message stored by :meth:`to_dict`."""
        return cls(
            payload=data.get("payload"),
            attributes=dict(data.get("attributes") or {}),
            vars=dict(data.get("vars") or {}),
            correlation_id=str(data.get("correlationId") or new_correlation_id()),
        )


OutcomeStatus = Literal["completed", "dead-lettered", "failed", "enqueued"]


@dataclass(slots=True)
class Outcome:
    """How one event ended.

    ``completed``: the steps ran (possibly via an ``on-error`` ``continue``). ``dead-lettered``: kept
    in the dead-letter queue under ``dead_letter_id``. ``failed``: the error propagated to the caller
    (an HTTP listener answers with it; a polling source dead-letters it so nothing is lost).
    ``enqueued``: handed over to the work queue shared by replicas (committed there), where a
    worker of some replica runs it (see :mod:`runtime.workqueue`); the source may move past it.
    """

    status: OutcomeStatus
    message: Message
    error: SpliceError | None = None
    dead_letter_id: str | None = None

    @property
    def done(self) -> bool:
        """Whether a source may move past this event (it was processed or kept as a dead letter)."""
        return self.status in ("completed", "dead-lettered", "enqueued")
