"""How each kind of step runs: connector operations and the language's built-in steps.

Every runner takes the engine, the flow, the step, the message (mutated in place) and the step's
path, and raises :class:`runtime.errors.SpliceError` on failure. A step with ``target`` stores its
result in ``vars.<target>`` and leaves the payload alone.
"""

from __future__ import annotations

import contextvars
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from dsl.expressions import ExpressionEvaluationError
from dsl.model import (
    ChoiceStep,
    Expression,
    FlowRefStep,
    ForeachStep,
    LogStep,
    OperationStep,
    SetVariableStep,
    Step,
    TransformStep,
)
from dsl.templates import render
from runtime.cache import cache_key
from runtime.context import OperationContext
from runtime.errors import FlowExecutionError, SpliceError, TransformError
from runtime.message import Message
from runtime.redaction import redact
from runtime.spec import aiter_records, materialize

if TYPE_CHECKING:
    from dsl.model import Flow
    from runtime.engine import FlowEngine

__all__ = ["evaluate_expression", "execute", "materialize", "render_value"]

#: A transform whose evaluations took longer than this (moving average) runs in a worker thread,
#: so one heavy expression cannot stall every other execution on the event loop. Cheaper ones run
#: inline: a thread hop costs more than they do.
OFFLOAD_AFTER_SECONDS = 0.0005
#: Measured cost per expression (a moving average); weak, so a compiled expression that is gone
#: takes its cost along instead of leaving it to a new one that happens to reuse its id.
_costs: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
_flow_ref_depth: contextvars.ContextVar[int] = contextvars.ContextVar("splice_flow_ref_depth",
                                                                       default=0)
MAX_FLOW_REF_DEPTH = 32


def _translate(error: ExpressionEvaluationError) -> TransformError:
    code = getattr(error, "code", None)
    span = getattr(error, "span", None)
    details: dict[str, Any] = {}
    if code:
        details["code"] = code
    if span is not None:
        details["at"] = str(span)
    return TransformError(redact(str(getattr(error, "message", error))),
                          error_type="TRANSFORM:EVALUATION", details=details)


def render_value(value: Any, message: Message) -> Any:
    """A parameter tree with its ``#[ ]`` expressions evaluated against ``message``."""
    try:
        return render(value, payload=message.payload, attributes=message.attributes,
                      vars=message.vars)
    except ExpressionEvaluationError as error:
        raise _translate(error) from None


def _evaluate_timed(expression: Expression, data: Any, bindings: dict[str, Any]) -> Any:
    started = time.perf_counter()
    try:
        return expression.evaluate(data, bindings)
    finally:
        elapsed = time.perf_counter() - started
        try:
            known = _costs.get(expression)
            _costs[expression] = elapsed if known is None else 0.8 * known + 0.2 * elapsed
        except TypeError:  # an expression type that cannot be weakly referenced: not measured
            pass


def _cost(expression: Expression) -> float:
    try:
        return _costs.get(expression, 0.0)
    except TypeError:
        return 0.0


async def evaluate_expression(expression: Expression, data: Any, message: Message,
                              threads: anyio.CapacityLimiter | None = None) -> Any:
    """Evaluate a compiled expression, in a worker thread when it has proven to be slow.

    ``threads`` bounds the worker threads (the engine keeps one: offloaded transforms hold the GIL
    while they run, so more threads would only take more turns away from the event loop).
    """
    bindings = {"payload": message.payload, "vars": message.vars, "attributes": message.attributes}
    try:
        if _cost(expression) > OFFLOAD_AFTER_SECONDS:
            return await anyio.to_thread.run_sync(_evaluate_timed, expression, data, bindings,
                                                  limiter=threads)
        return _evaluate_timed(expression, data, bindings)
    except ExpressionEvaluationError as error:
        raise _translate(error) from None


def _store(step: Step, message: Message, result: Any) -> None:
    if step.target:
        message.vars[step.target] = result
    else:
        message.payload = result


# -- runners ---------------------------------------------------------------------------------------


async def _operation(engine: FlowEngine, flow: Flow, step: OperationStep, message: Message,
                     path: str) -> None:
    spec = engine.registry.operations.get(step.name)
    if spec is None:
        raise FlowExecutionError(f"operation '{step.name}' is not installed",
                                 error_type="FLOW:UNKNOWN_OPERATION")
    params = spec.coerce(render_value(step.params, message))
    connection_name, connection = (None, None)
    if spec.needs_connection:
        connection_name, connection = engine.connection_for(step.connector, step.connection)
    ctx = OperationContext(
        flow=flow.name, path=path, message=message, store=engine.store,
        logger=engine.logger.getChild(step.connector), tracer=engine.tracer,
        connection=connection, connection_name=connection_name, label=step.label,
    )
    try:
        if step.cache is None:
            result = await spec.handler(ctx, params)
        else:
            async def load() -> Any:
                return await materialize(await spec.handler(ctx, params))

            result = await engine.results.get(cache_key(connection_name, step.name, params),
                                              step.cache, load)
    except SpliceError:
        raise
    except Exception as exc:  # a connector bug must still become a typed, dead-letterable error
        raise SpliceError(f"{step.name} failed unexpectedly: {type(exc).__name__}: {redact(str(exc))}",
                          error_type=f"{step.connector.upper()}:UNEXPECTED") from exc
    _store(step, message, result)


async def _transform(engine: FlowEngine, flow: Flow, step: TransformStep, message: Message,
                     path: str) -> None:
    message.payload = await materialize(message.payload)
    _store(step, message, await evaluate_expression(step.expression, message.payload, message,
                                                    engine.transform_threads))


def _scope(message: Message) -> dict[str, Any]:
    return {"payload": message.payload, "attributes": message.attributes, "vars": message.vars}


async def _choice(engine: FlowEngine, flow: Flow, step: ChoiceStep, message: Message,
                  path: str) -> None:
    message.payload = await materialize(message.payload)
    for index, branch in enumerate(step.branches):
        if await evaluate_expression(branch.when, _scope(message), message,
                                     engine.transform_threads):
            await engine.run_steps(flow, branch.steps, message, f"{path}/when/{index}/steps")
            return
    await engine.run_steps(flow, step.otherwise, message, f"{path}/otherwise")


async def _foreach(engine: FlowEngine, flow: Flow, step: ForeachStep, message: Message,
                   path: str) -> None:
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
            await engine.run_steps(flow, step.steps, item_message, f"{path}/steps")
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
        items = _chunks(items, step.batch_size)
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
        _store(step, message, [results[i] for i in range(count)])
    else:
        _store(step, message, {"count": count, "failed": len(captured)})


async def _chunks(items: AsyncIterator[Any], size: int) -> AsyncIterator[list[Any]]:
    """Consecutive lists of up to ``size`` items, each handed on as soon as it is full."""
    chunk: list[Any] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _set_variable(engine: FlowEngine, flow: Flow, step: SetVariableStep, message: Message,
                        path: str) -> None:
    message.vars[step.name] = render_value(step.value, message)


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


async def _log(engine: FlowEngine, flow: Flow, step: LogStep, message: Message, path: str) -> None:
    text = render_value(step.message, message)
    engine.logger.getChild("flow").log(_LEVELS[step.level], "[%s %s] %s", flow.name,
                                       message.correlation_id[:8], text)


async def _flow_ref(engine: FlowEngine, flow: Flow, step: FlowRefStep, message: Message,
                    path: str) -> None:
    depth = _flow_ref_depth.get()
    if depth >= MAX_FLOW_REF_DEPTH:
        raise FlowExecutionError(f"flow-ref nested deeper than {MAX_FLOW_REF_DEPTH} (a cycle?)",
                                 error_type="FLOW:RECURSION")
    target = engine.flow(step.flow)
    token = _flow_ref_depth.set(depth + 1)
    try:
        inner = message.copy()
        await engine.run_steps(target, target.steps, inner, f"flow/{target.name}/steps")
    finally:
        _flow_ref_depth.reset(token)
    message.vars = inner.vars  # variables set by the called flow are visible afterwards, as in Mule
    _store(step, message, inner.payload)


_RUNNERS: dict[type[Step], Callable[..., Awaitable[None]]] = {
    OperationStep: _operation,
    TransformStep: _transform,
    ChoiceStep: _choice,
    ForeachStep: _foreach,
    SetVariableStep: _set_variable,
    LogStep: _log,
    FlowRefStep: _flow_ref,
}


async def execute(engine: FlowEngine, flow: Flow, step: Step, message: Message, path: str) -> None:
    """Run one step (no retries, no span: the engine adds those)."""
    await _RUNNERS[type(step)](engine, flow, step, message, path)
