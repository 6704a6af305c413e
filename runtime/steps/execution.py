"""What a step runner gets to work with: one narrow value per engine, not the engine itself.

A runner is ``async def run(execution, flow, step, message, path)``: it mutates ``message`` and
raises :class:`runtime.errors.SpliceError` on failure. Retries, spans and error handlers are the
engine's business; a runner that runs nested steps (``foreach``, ``choice``) calls
``execution.run_steps``, which brings those along.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from opentelemetry import trace

from dsl.model import Flow, Step
from runtime.cache import ResultCache
from runtime.message import Message
from runtime.steps.expressions import ExpressionCosts
from runtime.store.base import ObjectStore

if TYPE_CHECKING:
    from runtime.batching import BatchGatherer
    from runtime.spec import OperationSpec

__all__ = ["StepExecution", "StepRunner", "store_result"]


@dataclass(frozen=True, slots=True)
class StepExecution:
    """The engine's resources a step may use; one per engine, shared by all its executions."""

    store: ObjectStore
    tracer: trace.Tracer
    logger: logging.Logger
    #: Results of steps with ``cache:`` (see :mod:`runtime.cache`).
    results: ResultCache
    #: The open batches of steps with ``batch:`` (see :mod:`runtime.batching`).
    batches: BatchGatherer
    #: Measured cost of each expression, deciding which ones run in a worker thread.
    costs: ExpressionCosts
    #: The worker thread that expressions proven slow run in.
    transform_threads: anyio.CapacityLimiter
    #: Installed operations by qualified name (``salesforce.query``).
    operations: Mapping[str, OperationSpec]
    #: ``connection_for(connector, name or None)`` -> ``(connection name, opened connection)``.
    connection_for: Callable[[str, str | None], tuple[str | None, Any]]
    #: The flow of a name (``FLOW:NOT_FOUND`` if none), for ``flow-ref``.
    flow: Callable[[str], Flow]
    #: ``run_steps(flow, steps, message, path)``: nested steps, each traced and retried.
    run_steps: Callable[[Flow, Sequence[Step], Message, str], Awaitable[None]]
    #: ``called_flow_failed(flow, entry, message, error)``: a flow run by ``flow-ref`` failed with
    #: ``error``; its own ``on-error`` handler applies (``entry`` is the message as it was handed
    #: over, kept if the handler dead-letters). Returns when the handler continues, else raises.
    called_flow_failed: Callable[[Flow, Message, Message, Exception], Awaitable[None]]


#: ``async def run(execution, flow, step, message, path)``.
StepRunner = Callable[[StepExecution, Flow, Any, Message, str], Awaitable[None]]


def store_result(step: Step, message: Message, result: Any) -> None:
    """A step's result goes to ``vars.<target>`` when it has one, else it becomes the payload."""
    if step.target:
        message.vars[step.target] = result
    else:
        message.payload = result
