"""The execution a line of code runs in, for log lines and the history's step timeline.

The engine makes an :class:`ExecutionScope` current (:data:`CURRENT_EXECUTION`, a context variable
that anyio copies into every task a step starts, so foreach branches and flow-refs see it) for the
whole of an execution. Whatever logs inside it, the engine, a step or a connector, gets the
execution's id, flow and business ids on its line (:mod:`runtime.logformat`), without any of that
being passed down.

:data:`CURRENT_OPERATION` names the operation step (or trigger) a connector's HTTP request is made
for, so that the request metrics count by operation without connectors passing it down.

The scope costs an execution one object and one context variable: its id is made at the start with
the history on (so that ids sort as executions started), else only when a log line asks for it; the
business ids are rendered only when a line is written.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from runtime.store.ids import new_id

if TYPE_CHECKING:
    from dsl.model import Flow, Step
    from runtime.message import Message

__all__ = ["CURRENT_EXECUTION", "CURRENT_OPERATION", "ExecutionScope", "StepNote", "StepTiming",
           "business_ids"]

#: A step attempt: path, step, start and end (``time.perf_counter``), outcome.
StepTiming = tuple[str, "Step", float, float, str]
#: What a step attempt adds to its timeline entry: path, when (``time.perf_counter``), fields.
StepNote = tuple[str, float, dict[str, Any]]


class ExecutionScope:
    """One running execution: its flow, message, start and (with history on) step timeline."""

    __slots__ = ("_id", "flow", "message", "notes", "started", "steps")

    def __init__(self, flow: Flow, message: Message, started: float,
                 steps: list[StepTiming] | None) -> None:
        self.flow = flow
        self.message = message
        #: Epoch seconds (``time.time``) the execution started at; its id is made from it.
        self.started = started
        #: Step attempts so far (``None`` with the history off).
        self.steps = steps
        #: Fields step attempts add to their timeline entries (``None`` until one does).
        self.notes: list[StepNote] | None = None
        self._id: str | None = None

    def note(self, path: str, **fields: Any) -> None:
        """Add ``fields`` to the timeline entry of the attempt of step ``path`` running now
        (``batchSize`` of a batched call); nothing with the history off."""
        if self.steps is None:
            return
        if self.notes is None:
            self.notes = []
        self.notes.append((path, time.perf_counter(), fields))

    @property
    def id(self) -> str:
        """The execution's id: the one its history record gets and its log lines carry."""
        if self._id is None:
            self._id = new_id(self.started)
        return self._id

    def make_id(self) -> None:
        """Make the id now (ids sort by when they were made, whatever ``started`` says)."""
        if self._id is None:
            self._id = new_id(self.started)

    def record_ids(self) -> list[str]:
        """The business ids the flow declares (``record-ids``) that its message holds by now."""
        return business_ids(self.flow, self.message)


#: The execution running in this context (``None`` outside any).
CURRENT_EXECUTION: ContextVar[ExecutionScope | None] = ContextVar("splice_execution", default=None)

#: What a connector's HTTP request is made for, for its metrics: the operation step running
#: (``quickbooks.create``), else the trigger whose source polls (``salesforce.changes``).
CURRENT_OPERATION: ContextVar[str] = ContextVar("splice_operation", default="none")


def business_ids(flow: Flow, message: Message) -> list[str]:
    """The values of ``flow``'s ``record-ids`` templates on ``message``, in order, without repeats.

    A template whose value is not there (yet, or ever: ``vars.invoice`` of an execution that failed
    before creating one) is skipped; lists contribute each of their items.
    """
    if not flow.record_ids:
        return []
    from runtime.steps import render_value

    found: list[str] = []
    for template in flow.record_ids:
        try:
            value: Any = render_value(template, message)
        except Exception:  # an id a failed execution never got (vars.invoice unset...)
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str | int) and not isinstance(item, bool) and str(item):
                text = str(item)
                if text not in found:
                    found.append(text)
    return found
