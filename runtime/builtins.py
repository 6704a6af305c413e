"""The runtime's own plugin: the language's step kinds, the ``schedule`` trigger, JSONata functions.

Registered by :func:`runtime.plugins.create_plugin_manager` exactly as a third-party plugin would be
(as pytest registers its own plugins), so the flow language's whole vocabulary has one source, the
registry. Each step kind pairs its builder and schema from :mod:`dsl.steps` with its runner from
:mod:`runtime.steps`; connector operations' steps get their runner here too.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from dsl import steps as language
from dsl.model import (
    ChoiceStep,
    DryRunStep,
    FlowRefStep,
    ForeachStep,
    LogStep,
    OperationStep,
    SetVariableStep,
    TransformStep,
)
from runtime.hookspecs import hookimpl
from runtime.scheduler import SCHEDULE
from runtime.spec import SourceSpec, StepSpec
from runtime.steps import language as runners
from runtime.steps.operation import run_operation

__all__ = ["splice_jsonata_functions", "splice_sources", "splice_steps"]


@hookimpl
def splice_steps() -> Sequence[StepSpec]:
    """The language's step kinds, and the runner of every connector operation's step."""
    return (
        StepSpec(TransformStep, runners.run_transform, language.TRANSFORM),
        StepSpec(SetVariableStep, runners.run_set_variable, language.SET_VARIABLE),
        StepSpec(LogStep, runners.run_log, language.LOG),
        StepSpec(FlowRefStep, runners.run_flow_ref, language.FLOW_REF),
        StepSpec(ChoiceStep, runners.run_choice, language.CHOICE),
        StepSpec(ForeachStep, runners.run_foreach, language.FOREACH),
        StepSpec(DryRunStep, runners.run_dry_run, language.DRY_RUN),
        StepSpec(OperationStep, run_operation),
    )


@hookimpl
def splice_sources() -> Sequence[SourceSpec]:
    """``schedule``: every <duration> or on a cron expression."""
    return (SCHEDULE,)


def _uuid() -> str:
    """A random UUID (``$uuid()``)."""
    return str(uuid.uuid4())


def _sha256(text: Any) -> str:
    """Hex SHA-256 of a string (``$sha256(s)``): stable keys from long values."""
    return hashlib.sha256(str(text).encode("utf-8")).hexdigest()


def _money(value: Any, places: Any = 2) -> float | None:
    """Round half up to ``places`` decimals (``$money(x)``), as accountants do.

    JSONata's ``$round`` rounds half to even; invoices need half up.
    """
    if value is None:
        return None
    try:
        quantum = Decimal(1).scaleb(-int(places))
        exact = Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError, TypeError):
        return None
    return float(exact)


@hookimpl
def splice_jsonata_functions() -> Mapping[str, Callable[..., Any]]:
    """``$uuid()``, ``$sha256(s)`` and ``$money(x[, places])``."""
    return {"uuid": _uuid, "sha256": _sha256, "money": _money}
