"""How the language's own step kinds run: transform, choice, foreach, set-variable, log, flow-ref,
dry-run.

Each runner is registered by the runtime's built-in plugin (:mod:`runtime.builtins`) next to the
step kind's builder from :mod:`dsl.steps`, exactly as a plugin's own step kind would be.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio

from dsl.model import (
    ChoiceStep,
    DryRunStep,
    Flow,
    FlowRefStep,
    ForeachStep,
    LogStep,
    SetVariableStep,
    TransformStep,
)
from runtime.errors import FlowExecutionError, SpliceError
from runtime.message import Message
from runtime.preview import previewing
from runtime.spec import aiter_records, materialize
from runtime.steps.execution import StepExecution, store_result
from runtime.steps.expressions import evaluate_expression, render_value

__all__ = [
    "MAX_FLOW_REF_DEPTH",
    "in_chunks",
    "run_choice",
    "run_dry_run",
    "run_flow_ref",
    "run_foreach",
    "run_log",
    "run_set_variable",
    "run_transform",
]

#: How deep flow-refs may nest: deeper is taken for a cycle.
MAX_FLOW_REF_DEPTH = 32
_flow_ref_depth: contextvars.ContextVar[int] = contextvars.ContextVar("splice_flow_ref_depth",
                                                                       default=0)


async def run_transform(execution: StepExecution, flow: Flow, step: TransformStep,
                        message: Message, path: str) -> None:
    """The payload (a stream read to the end first) through the JSONata expression."""
    message.payload = await materialize(message.payload)
    store_result(step, message, await evaluate_expression(
        step.expression, message.payload, message, execution.costs, execution.transform_threads))


def _scope(message: Message) -> dict[str, Any]:
    return {"payload": message.payload, "attributes": message.attributes, "vars": message.vars}


async def run_choice(execution: StepExecution, flow: Flow, step: ChoiceStep,
                     message: Message, path: str) -> None:
    """The steps of the first branch whose condition holds, else ``otherwise``."""
    message.payload = await materialize(message.payload)
    for index, branch in enumerate(step.branches):
        if await evaluate_expression(branch.when, _scope(message), message,
                                     execution.costs, execution.transform_threads):
            await execution.run_steps(flow, branch.steps, message, f"{path}/when/{index}/steps")
            return
    await execution.run_steps(flow, step.otherwise, message, f"{path}/otherwise")


async def run_dry_run(execution: StepExecution, flow: Flow, step: DryRunStep,
                      message: Message, path: str) -> None:
    """The steps with their writes previewed (when ``when`` holds); the writes go to a variable.

    The steps work on the message itself, as a choice branch's do. Without a dry run (``when``
    false) they write as usual and the variable is left as it was.
    """
    if step.when is not None:
        message.payload = await materialize(message.payload)
        if not await evaluate_expression(step.when, _scope(message), message, execution.costs,
                                         execution.transform_threads):
            await execution.run_steps(flow, step.steps, message, f"{path}/steps")
            return
    with previewing() as plan:
        try:
            await execution.run_steps(flow, step.steps, message, f"{path}/steps")
        finally:
            message.vars[step.writes_var] = [write.to_dict() for write in plan.writes]


async def run_foreach(execution: StepExecution, flow: Flow, step: ForeachStep,
                      message: Message, path: str) -> None:
    """The steps once per item (or chunk), ``concurrency`` at a time; see :class:`dsl.model.ForeachStep`."""
    single = getattr(step.collection, "single_expression", None)
    if single is not None and single.source.strip() in ("payload", "$payload"):
        collection = message.payload  # a streamed payload is iterated as it arrives
    else:
        message.payload = await materialize(message.payload)
        collection = render_value(step.collection, message)
    if not (hasattr(collection, "__aiter__") or isinstance(collection, list | tuple)
            or collection is None):
        collection = [collection]
    results: dict[int, Any] = {}
    captured: list[dict[str, Any]] = []
    failures: list[SpliceError] = []
    limiter = anyio.Semaphore(max(1, step.concurrency))
    count = 0

    async def one(index: int, item: Any) -> None:
        try:
            item_message = message.copy()
            item_message.payload = item
            item_message.vars[step.item_var] = item
            item_message.vars[step.index_var] = index
            await execution.run_steps(flow, step.steps, item_message, f"{path}/steps")
            if step.collect:
                results[index] = item_message.payload
        except SpliceError as error:
            if step.on_item_error == "continue":
                captured.append({"index": index, "item": item, "error": error.to_dict()})
                if step.collect:
                    results[index] = None
            else:
                failures.append(error)
        finally:
            limiter.release()

    items = aiter_records(collection)
    if step.batch_size > 1:
        items = in_chunks(items, step.batch_size)
    async with anyio.create_task_group() as tg:
        async for item in items:
            await limiter.acquire()
            if failures:
                limiter.release()
                break
            tg.start_soon(one, count, item)
            count += 1
    if failures:
        raise failures[0]
    if captured:
        message.vars[step.errors_var] = sorted(captured, key=lambda c: c["index"])
    if step.collect:
        store_result(step, message, [results[i] for i in range(count)])
    else:
        store_result(step, message, {"count": count, "failed": len(captured)})


async def in_chunks(items: AsyncIterator[Any], size: int) -> AsyncIterator[list[Any]]:
    """Consecutive lists of up to ``size`` items, each handed on as soon as it is full."""
    chunk: list[Any] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def run_set_variable(execution: StepExecution, flow: Flow, step: SetVariableStep,
                           message: Message, path: str) -> None:
    """``vars.<name>`` gets the rendered value."""
    message.vars[step.name] = render_value(step.value, message)


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


async def run_log(execution: StepExecution, flow: Flow, step: LogStep,
                  message: Message, path: str) -> None:
    """The rendered message to the ``flow`` logger at the step's level."""
    text = render_value(step.message, message)
    execution.logger.getChild("flow").log(_LEVELS[step.level], "[%s %s] %s", flow.name,
                                          message.correlation_id[:8], text)


async def run_flow_ref(execution: StepExecution, flow: Flow, step: FlowRefStep,
                       message: Message, path: str) -> None:
    """The other flow's steps on a copy of the message; its variables and result come back.

    When its steps fail, the other flow's own ``on-error`` handler decides, as it would for an
    execution of its own: its steps run, ``continue`` ends the flow-ref normally, ``dead-letter``
    keeps the message as it was handed over (replayable as that flow) and fails the calling step.
    """
    depth = _flow_ref_depth.get()
    if depth >= MAX_FLOW_REF_DEPTH:
        raise FlowExecutionError(f"flow-ref nested deeper than {MAX_FLOW_REF_DEPTH} (a cycle?)",
                                 error_type="FLOW:RECURSION")
    target = execution.flow(step.flow)
    token = _flow_ref_depth.set(depth + 1)
    try:
        entry = message.copy()
        inner = message.copy()
        try:
            await execution.run_steps(target, target.steps, inner, f"flow/{target.name}/steps")
        except SpliceError as error:
            await execution.called_flow_failed(target, entry, inner, error)
    finally:
        _flow_ref_depth.reset(token)
    message.vars = inner.vars  # variables set by the called flow are visible afterwards, as in Mule
    store_result(step, message, inner.payload)
