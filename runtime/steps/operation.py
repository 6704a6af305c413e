"""Running a connector operation step: parameters, connection, result cache, typed errors."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from dsl.model import Flow, OperationStep
from runtime.batching import ATTR_BATCH_SIZE, BatchRequest
from runtime.cache import cache_key
from runtime.context import OperationContext
from runtime.errors import FlowExecutionError, SpliceError
from runtime.logcontext import CURRENT_EXECUTION, CURRENT_OPERATION
from runtime.message import Message
from runtime.preview import DRY_RUN_ID, current_plan
from runtime.redaction import redact
from runtime.spec import BatchCall, OperationSpec, materialize
from runtime.steps.execution import StepExecution, store_result
from runtime.steps.expressions import render_value

__all__ = ["operation_params", "run_operation"]


async def _told_write(ctx: OperationContext, params: dict[str, Any]) -> Any:
    """The dry run of a writing operation that has no ``preview``: its parameters are the write."""
    ctx.would_write(ctx.operation.rpartition(".")[2], {}, params)
    return {"id": DRY_RUN_ID, "dryRun": True}


def operation_params(spec: OperationSpec, step: OperationStep, message: Message) -> dict[str, Any]:
    """The parameters an operation's handler receives for ``message``: the step's own values with
    their ``#[ ]`` expressions evaluated, then typed and defaulted by the operation's ``Param`` list."""
    return spec.coerce(render_value(step.params, message))


async def run_operation(execution: StepExecution, flow: Flow, step: OperationStep, message: Message,
                        path: str) -> None:
    """Call the operation's handler; an unexpected exception becomes ``<CONNECTOR>:UNEXPECTED``."""
    spec = execution.operations.get(step.name)
    if spec is None:
        raise FlowExecutionError(f"operation '{step.name}' is not installed",
                                 error_type="FLOW:UNKNOWN_OPERATION")
    params = operation_params(spec, step, message)
    connection_name, connection = (None, None)
    if spec.needs_connection:
        connection_name, connection = execution.connection_for(step.connector, step.connection)
    ctx = OperationContext(
        flow=flow.name, path=path, message=message, store=execution.store,
        logger=execution.logger.getChild(step.connector), tracer=execution.tracer,
        connection=connection, connection_name=connection_name, label=step.label,
        operation=step.name,
    )
    operation = CURRENT_OPERATION.set(step.name)  # the label of its requests' metrics
    try:
        if current_plan() is not None and spec.writes_with(params):
            result = await materialize(await (spec.preview or _told_write)(ctx, params))
        elif step.batch is not None and spec.batch is not None and step.cache is None:
            result = await _batched(execution, flow, step, spec, ctx, params)
            if step.target:
                result = await materialize(result)
        elif step.cache is None:
            result = await spec.handler(ctx, params)
            if step.target:  # a variable holds values; only the payload may stay a stream
                result = await materialize(result)
        else:
            async def load() -> Any:
                return await materialize(await spec.handler(ctx, params))

            result = await execution.results.get(cache_key(connection_name, step.name, params),
                                                 step.cache, load)
    except SpliceError:
        raise
    except Exception as exc:  # a connector bug must still become a typed, dead-letterable error
        raise SpliceError(f"{step.name} failed unexpectedly: {type(exc).__name__}: {redact(str(exc))}",
                          error_type=f"{step.connector.upper()}:UNEXPECTED") from exc
    finally:
        CURRENT_OPERATION.reset(operation)
    store_result(step, message, result)


async def _batched(execution: StepExecution, flow: Flow, step: OperationStep, spec: OperationSpec,
                   ctx: OperationContext, params: dict[str, Any]) -> Any:
    """The call's own result, sent with the concurrent calls of this step (``batch:``)."""
    assert step.batch is not None and spec.batch is not None
    request = BatchRequest(
        flow=flow.name, operation=step.name, step=(flow.name, step.span),
        connection=ctx.connection_name, form=spec.batch,
        size=max(1, min(step.batch.size, spec.batch.max_size)), within=step.batch.within)
    result, size = await execution.batches.call(request, BatchCall(ctx, params))
    trace.get_current_span().set_attribute(ATTR_BATCH_SIZE, size)
    scope = CURRENT_EXECUTION.get()
    if scope is not None:  # the execution's timeline shows the call went in a batch of ``size``
        scope.note(ctx.path, batchSize=size)
    ctx.logger.debug("%s: sent in a batch of %d", ctx.path, size)
    return result
