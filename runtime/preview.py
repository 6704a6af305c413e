"""Dry runs: the reads happen, every write is told instead of done.

A *write plan* collects, in the order the steps reach them, the writes an execution would make:
operation, connection, target and the exact payload it would send (secrets masked as in logs).
While a plan is current (a context variable, so foreach branches and flow-refs started inside it
share it), the operation runner never calls a writing operation's handler (see
:mod:`runtime.steps.operation`): the operation's ``preview`` tells what it would send and gives a
stand-in result, so later steps, and their writes, still run. The engine keeps nothing of a dry
run: no dead letters, no history record; connectors keep no ledger entries, since the handlers that
would write them are not called.

``splice run FLOW --dry-run`` runs a whole execution under a plan; the ``dry-run`` step runs only
its own steps under one (the reconciliation's ``repair: preview``). A plan opened inside another
also hands each write to the outer one, so a dry run shows every write, however deeply nested.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from runtime.redaction import MASK, SECRET_KEYS, redact

__all__ = [
    "DRY_RUN_ID",
    "PlannedWrite",
    "WritePlan",
    "current_plan",
    "previewing",
    "redact_payload",
]

#: The id a stand-in result of a dry run carries where the system would have given one.
DRY_RUN_ID = "(dry-run)"


def redact_payload(value: Any) -> Any:
    """``value`` with secret keys masked and secret values removed from strings, at any depth."""
    if isinstance(value, Mapping):
        return {key: MASK if str(key).lower() in SECRET_KEYS and item is not None
                else redact_payload(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_payload(item) for item in value]
    if isinstance(value, str):
        return redact(value)
    return value


@dataclass(frozen=True, slots=True)
class PlannedWrite:
    """One write a dry run did not make: what, where and exactly what it would have sent."""

    #: The step's operation, qualified (``quickbooks.create``).
    operation: str
    #: What the write does, in the operation's words (``create``, ``update``, ``POST``).
    action: str
    #: The connection it would go through (``None`` for operations without one).
    connection: str | None
    #: What it writes to: ``{"entity": "Invoice"}``, ``{"object": "Opportunity", "id": "006..."}``.
    target: Mapping[str, Any]
    #: The body it would send, redacted like logs.
    payload: Any
    #: The flow and step that would have made it.
    flow: str
    step: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as ``splice run --dry-run --output json`` prints it."""
        return {"operation": self.operation, "action": self.action,
                "connection": self.connection, "target": dict(self.target),
                "payload": self.payload, "flow": self.flow, "step": self.step}

    def describe(self) -> str:
        """One line for people: ``quickbooks.create (quickbooks): create Invoice``."""
        where = " ".join(str(v) for v in self.target.values() if v not in (None, ""))
        via = f" ({self.connection})" if self.connection else ""
        return f"{self.operation}{via}: {self.action} {where}".rstrip()


@dataclass(slots=True)
class WritePlan:
    """The writes of one dry-run scope, in order; an outer scope's plan sees them too."""

    parent: WritePlan | None = None
    writes: list[PlannedWrite] = field(default_factory=list)

    def add(self, write: PlannedWrite) -> None:
        """Record ``write`` here and in every enclosing plan."""
        plan: WritePlan | None = self
        while plan is not None:
            plan.writes.append(write)
            plan = plan.parent


_current: ContextVar[WritePlan | None] = ContextVar("splice_write_plan", default=None)


def current_plan() -> WritePlan | None:
    """The plan of the running dry run, or ``None`` when writes are real."""
    return _current.get()


@contextmanager
def previewing() -> Iterator[WritePlan]:
    """Run the ``with`` body as a dry run; the plan it yields fills with the writes not made."""
    plan = WritePlan(parent=_current.get())
    token = _current.set(plan)
    try:
        yield plan
    finally:
        _current.reset(token)
