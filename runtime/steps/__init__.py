"""How steps run: the narrow execution value runners get, and the language's own runners.

The engine finds each step's runner in the registry (keyed by the step's model class), so the
language's own step kinds (:mod:`runtime.steps.language`), connector operations
(:mod:`runtime.steps.operation`) and a plugin's step kinds all run the same way; none of them sees
the engine, only a :class:`StepExecution`.
"""

from __future__ import annotations

from runtime.spec import materialize
from runtime.steps.execution import StepExecution, StepRunner, store_result
from runtime.steps.expressions import ExpressionCosts, evaluate_expression, render_value

__all__ = [
    "ExpressionCosts",
    "StepExecution",
    "StepRunner",
    "evaluate_expression",
    "materialize",
    "render_value",
    "store_result",
]
