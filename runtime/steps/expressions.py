"""Evaluating a flow's expressions per message: ``#[ ]`` parameters and JSONata transforms.

An expression that proved slow runs in a worker thread, so one heavy transform cannot stall every
other execution on the event loop. Which ones are slow is measured per engine
(:class:`ExpressionCosts`), so two runtimes in one process never share a verdict.
"""

from __future__ import annotations

import re
import time
import weakref
from typing import Any

import anyio

from dsl.expressions import ExpressionEvaluationError
from dsl.model import Expression
from dsl.source import SourceSpan
from dsl.templates import render
from runtime.errors import TransformError
from runtime.message import Message
from runtime.redaction import redact

__all__ = ["OFFLOAD_AFTER_SECONDS", "ExpressionCosts", "evaluate_expression",
           "render_value"]

#: A transform whose evaluations took longer than this (moving average) runs in a worker thread.
#: Cheaper ones run inline: a thread hop costs more than they do.
OFFLOAD_AFTER_SECONDS = 0.0005


class ExpressionCosts:
    """Measured cost per expression (a moving average), kept by one engine.

    Weak keys: a compiled expression that is gone takes its cost along instead of leaving it to a
    new one that happens to reuse its id.
    """

    __slots__ = ("_costs",)

    def __init__(self) -> None:
        self._costs: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()

    def __len__(self) -> int:
        return len(self._costs)

    def cost(self, expression: Expression) -> float:
        """Seconds one evaluation took lately (0.0 when not measured yet)."""
        try:
            return self._costs.get(expression, 0.0)
        except TypeError:  # an expression type that cannot be weakly referenced: not measured
            return 0.0

    def evaluate(self, expression: Expression, data: Any, bindings: dict[str, Any]) -> Any:
        """Evaluate ``expression`` and fold how long it took into its cost."""
        started = time.perf_counter()
        try:
            return expression.evaluate(data, bindings)
        finally:
            elapsed = time.perf_counter() - started
            try:
                known = self._costs.get(expression)
                self._costs[expression] = elapsed if known is None else 0.8 * known + 0.2 * elapsed
            except TypeError:
                pass


#: The suffix of transform files: their errors name the file's line and column in the message.
JSONATA_FILE_SUFFIX = ".jsonata"
#: JSONata's code for ``$error(message)``: a flow failing on purpose.
_RAISED_BY_FLOW = "D3137"
#: ``$error('NAMESPACE:KIND: text')`` raises an error of that type, which on-error handlers can match.
_TYPED_MESSAGE = re.compile(r"^(?P<type>[A-Z][A-Z0-9_]*:[A-Z][A-Z0-9_]*): (?P<text>.+)$", re.DOTALL)


def _offset_in_expression(error: BaseException) -> int | None:
    """Where in the expression's source the evaluation failed (a character offset), when the
    engine said so: the error's own ``position``, else the engine's exception behind it
    (jsonata-python's ``JException.location``, which the error was raised from). The Rust engine
    reports no run-time position; the expression's own start is all that is known then."""
    seen: BaseException | None = error
    for _ in range(4):  # the error, the engine adapter's, the engine's: a short chain
        if seen is None:
            break
        for name in ("position", "location"):
            value = getattr(seen, name, None)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
        seen = seen.__context__
    return None


def _where(error: ExpressionEvaluationError, source: str | None, own_start: int = 0) -> SourceSpan | None:
    """The file position of the failure: the expression's span, moved to the failing part of the
    expression when the engine told where that is (counted from ``own_start``, where the author's
    text starts after any library code bound around it; a failure inside a library keeps the span)."""
    span = error.span
    if span is None:
        return None
    offset = _offset_in_expression(error)
    if source is None or offset is None or offset > len(source) or offset <= own_start:
        return span
    # JSONata positions point just past the token that failed; step back onto it.
    return span.shifted(source[own_start:], offset - own_start - 1)


def translate(error: ExpressionEvaluationError, source: str | None = None,
              own_start: int = 0) -> TransformError:
    """The typed, redacted error of a failed evaluation.

    A flow raises an error of its own type with ``$error('RECONCILIATION:REPAIRS_FAILED: ...')``
    (what Mule's raise-error does); any other failure is a ``TRANSFORM:EVALUATION``. ``details.at``
    is where it failed (``source``, the expression's text, turns the engine's offset into a line and
    column, counted from ``own_start``); an expression of a ``.jsonata`` file also names that ``file:line:col`` in the message,
    since the flow's step alone does not say which line of the transform failed.
    """
    code = getattr(error, "code", None)
    where = _where(error, source, own_start)
    details: dict[str, Any] = {}
    if code:
        details["code"] = code
    if where is not None:
        details["at"] = str(where)
    text = str(getattr(error, "message", error))
    typed = _TYPED_MESSAGE.match(text) if code == _RAISED_BY_FLOW else None
    if typed:
        return TransformError(redact(typed.group("text")), error_type=typed.group("type"),
                              details=details)
    if where is not None and where.file.endswith(JSONATA_FILE_SUFFIX):
        text = f"{where}: {text}"
    return TransformError(redact(text), error_type="TRANSFORM:EVALUATION", details=details)


def render_value(value: Any, message: Message) -> Any:
    """A parameter tree with its ``#[ ]`` expressions evaluated against ``message``."""
    try:
        return render(value, payload=message.payload, attributes=message.attributes,
                      vars=message.vars)
    except ExpressionEvaluationError as error:
        raise translate(error) from None


async def evaluate_expression(expression: Expression, data: Any, message: Message,
                              costs: ExpressionCosts,
                              threads: anyio.CapacityLimiter | None = None) -> Any:
    """Evaluate a compiled expression, in a worker thread when it has proven to be slow.

    ``threads`` bounds the worker threads (the engine keeps one: offloaded transforms hold the GIL
    while they run, so more threads would only take more turns away from the event loop).
    """
    bindings = {"payload": message.payload, "vars": message.vars, "attributes": message.attributes}
    try:
        if costs.cost(expression) > OFFLOAD_AFTER_SECONDS:
            return await anyio.to_thread.run_sync(costs.evaluate, expression, data, bindings,
                                                  limiter=threads)
        return costs.evaluate(expression, data, bindings)
    except ExpressionEvaluationError as error:
        raise translate(error, getattr(expression, "source", None),
                        getattr(expression, "own_start", 0)) from None
