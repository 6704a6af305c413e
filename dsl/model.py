"""The flow model: what a flow file means once it is loaded, resolved and checked.

Everything here is frozen. ``${...}`` placeholders are already resolved; ``#[ ... ]`` expressions are
already compiled (:class:`Expression`), so nothing is parsed per message. Parameter values are JSON-like
trees (dicts, lists, scalars) whose dynamic strings are :class:`Template` leaves; the runtime renders
them per message with :func:`dsl.templates.render`.

The YAML each node comes from is described in ``docs/flow-language.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from dsl.source import SourceSpan

__all__ = [
    "BatchPolicy",
    "ChoiceBranch",
    "ChoiceStep",
    "ConnectionConfig",
    "DryRunStep",
    "ErrorAction",
    "ErrorHandler",
    "Expression",
    "Flow",
    "FlowRefStep",
    "ForeachStep",
    "LogStep",
    "OperationStep",
    "Project",
    "RetryPolicy",
    "SetVariableStep",
    "Settings",
    "Step",
    "Template",
    "TransformStep",
    "Trigger",
    "Value",
]

#: A parameter value: JSON-like data whose dynamic strings are :class:`Template` objects.
Value = Any


class Expression(Protocol):
    """A JSONata expression compiled once at load time (see :mod:`dsl.expressions`)."""

    source: str
    span: SourceSpan

    def evaluate(self, data: Any, bindings: Mapping[str, Any] | None = None) -> Any:
        """Evaluate against ``data``; raises ``runtime``-agnostic ``ExpressionEvaluationError``."""
        ...


@dataclass(frozen=True, slots=True)
class Template:
    """A string with ``#[ ... ]`` expressions in it, e.g. ``"Invoice #[payload.DocNumber]"``.

    ``parts`` alternates literal text and compiled expressions. A template that is exactly one
    expression renders to that expression's value with its JSON type (a number stays a number); any
    other template renders to a string.
    """

    parts: tuple[str | Expression, ...]
    span: SourceSpan
    text: str

    @property
    def single_expression(self) -> Expression | None:
        """The expression when the whole string is one ``#[ ... ]``, else ``None``."""
        if len(self.parts) == 1 and not isinstance(self.parts[0], str):
            return self.parts[0]
        return None


# --------------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """What every step has: where it is written, an optional label, and an optional target.

    ``target`` names a variable (``vars.<target>``) that receives the step's result instead of the
    payload, as Mule's ``target`` does.
    """

    span: SourceSpan
    label: str | None = None
    target: str | None = None

    @property
    def kind(self) -> str:
        """The step's name as written in YAML (``transform``, ``salesforce.query``...)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """How an operation step batches: ``batch: {size: 30, within: 500ms}`` (``within`` in seconds).

    A batch is sent when ``size`` calls wait (or the operation's own ``max_size``, if smaller) or
    when its oldest call has waited ``within``, whichever comes first.
    """

    size: int = 30
    within: float = 0.5


@dataclass(frozen=True, slots=True, kw_only=True)
class OperationStep(Step):
    """A connector operation: ``salesforce.query``, ``http.request``...

    ``params`` excludes ``connection``, ``label``, ``target``, ``cache`` and ``batch``, which the
    runtime reads itself. ``connection`` is ``None`` when the connector has exactly one configured
    connection. ``cache`` is how many seconds a result may be reused (only for operations that only
    read). ``batch`` is set when the step's calls are gathered into batches: the step's own
    ``batch:``, or the flow's when the operation has a batch form (``None``: each call goes alone).
    """

    name: str
    params: Mapping[str, Value]
    connection: str | None = None
    cache: float | None = None
    batch: BatchPolicy | None = None

    @property
    def kind(self) -> str:
        return self.name

    @property
    def connector(self) -> str:
        """``salesforce`` for ``salesforce.query``."""
        return self.name.split(".", 1)[0]

    @property
    def operation(self) -> str:
        """``query`` for ``salesforce.query``."""
        return self.name.split(".", 1)[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class TransformStep(Step):
    """``transform:`` with inline JSONata, or the path of a ``.jsonata`` file (``file`` is then set).

    The expression's input is the payload; ``$payload``, ``$vars`` and ``$attributes`` are bound.
    """

    expression: Expression
    file: Path | None = None

    @property
    def kind(self) -> str:
        return "transform"


@dataclass(frozen=True, slots=True)
class ChoiceBranch:
    """One ``when:`` of a choice: the first branch whose condition is truthy runs."""

    when: Expression
    steps: tuple[Step, ...]
    span: SourceSpan


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiceStep(Step):
    """``choice:`` routing: ``when`` branches in order, then ``otherwise`` (may be empty)."""

    branches: tuple[ChoiceBranch, ...]
    otherwise: tuple[Step, ...] = ()

    @property
    def kind(self) -> str:
        return "choice"


@dataclass(frozen=True, slots=True, kw_only=True)
class ForeachStep(Step):
    """``foreach:`` runs ``steps`` once per item of ``collection`` with at most ``concurrency`` at once.

    Each item runs with the item as payload and ``vars.<item_var>`` / ``vars.<index_var>`` set.
    With ``on_item_error: continue`` a failed item is recorded in ``vars.<errors_var>`` (index, item,
    error) and the others go on; with ``fail`` (default) the first failure fails the step once the
    items already started have finished. The step's result is the list of item results, in input
    order, unless ``collect`` is false (streams of any length): then it is ``{"count", "failed"}``.
    With ``batch_size`` above 1 each "item" is a list of up to that many consecutive items (a stream
    is cut as it arrives), so bulk work can call batch APIs while holding one chunk at a time.
    """

    collection: Template
    steps: tuple[Step, ...]
    concurrency: int = 1
    item_var: str = "item"
    index_var: str = "index"
    errors_var: str = "foreachErrors"
    on_item_error: Literal["fail", "continue"] = "fail"
    collect: bool = True
    batch_size: int = 1

    @property
    def kind(self) -> str:
        return "foreach"


@dataclass(frozen=True, slots=True, kw_only=True)
class DryRunStep(Step):
    """``dry-run:`` runs ``steps`` with their reads made and their writes previewed, not made.

    Only while ``when`` holds (always without one); otherwise the steps write as usual. The writes
    not made, in order, go to ``vars.<writes_var>``; a dry run keeps no dead letters either.
    """

    steps: tuple[Step, ...]
    when: Expression | None = None
    writes_var: str = "writes"

    @property
    def kind(self) -> str:
        return "dry-run"


@dataclass(frozen=True, slots=True, kw_only=True)
class SetVariableStep(Step):
    """``set-variable:`` stores a rendered value in ``vars.<name>``; the payload is unchanged."""

    name: str
    value: Value

    @property
    def kind(self) -> str:
        return "set-variable"


@dataclass(frozen=True, slots=True, kw_only=True)
class LogStep(Step):
    """``log:`` writes a rendered message at a level; the payload is unchanged."""

    message: Value
    level: Literal["debug", "info", "warning", "error"] = "info"

    @property
    def kind(self) -> str:
        return "log"


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowRefStep(Step):
    """``flow-ref:`` runs another flow's steps with the current message; its errors propagate."""

    flow: str

    @property
    def kind(self) -> str:
        return "flow-ref"


# --------------------------------------------------------------------------------------------------
# Triggers and error handling
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Trigger:
    """What starts a flow: ``schedule``, ``http.listener`` or a plugin source (``salesforce.changes``).

    ``connection`` is split out of ``params`` as for operation steps.
    """

    name: str
    params: Mapping[str, Value]
    span: SourceSpan
    connection: str | None = None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed step is tried again: ``attempts`` counts the retries after the first try.

    Delay before retry ``n`` (1-based) is ``initial_delay * multiplier**(n-1)`` (or ``initial_delay``
    for ``fixed``), capped by ``max_delay``, spread by +-``jitter`` (a fraction), and never shorter
    than an error's ``retry_after`` hint.
    """

    attempts: int = 3
    backoff: Literal["exponential", "fixed"] = "exponential"
    initial_delay: float = 1.0
    max_delay: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.2


ErrorAction = Literal["continue", "propagate", "dead-letter"]


@dataclass(frozen=True, slots=True)
class ErrorHandler:
    """One ``on-error`` entry: matches error types, optionally retries, then acts.

    ``types`` holds ``NS:KIND``, ``NS:*`` or ``ANY``. When ``retry`` is set the failed step is tried
    again first; only when retries are exhausted do ``steps`` run (with ``vars.error`` set) and
    ``action`` apply. ``continue`` ends the flow successfully with ``payload`` (rendered) when given,
    else the current payload.
    """

    types: tuple[str, ...]
    action: ErrorAction
    span: SourceSpan
    retry: RetryPolicy | None = None
    payload: Value = None
    has_payload: bool = False
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True, slots=True)
class Flow:
    """One flow file's ``flow:`` document."""

    name: str
    span: SourceSpan
    steps: tuple[Step, ...]
    trigger: Trigger | None = None
    on_error: tuple[ErrorHandler, ...] = ()
    description: str = ""
    max_concurrency: int = 8
    #: ``record-ids:``: templates of the business ids an execution touched (for its history record).
    record_ids: tuple[Any, ...] = ()
    #: ``batch:``: how its operation steps that have a batch form batch, unless a step says otherwise.
    batch: BatchPolicy | None = None

    @property
    def file(self) -> str:
        """The file this flow was loaded from."""
        return self.span.file


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    """A named connection from a ``connections:`` file: which connector, and its settings."""

    name: str
    connector: str
    params: Mapping[str, Any]
    span: SourceSpan


@dataclass(frozen=True, slots=True)
class Settings:
    """Project-wide settings from ``settings:`` (all optional)."""

    jsonata_engine: str = "auto"
    telemetry_exporter: str = "none"
    otlp_endpoint: str | None = None
    store_url: str = "sqlite:///.splice/store.db"
    server: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Project:
    """Everything loaded from a project directory for one environment."""

    root: Path
    env: str
    flows: Mapping[str, Flow]
    connections: Mapping[str, ConnectionConfig]
    settings: Settings
    properties: Mapping[str, Any] = field(default_factory=dict)
    #: JSONata functions available to expressions (name without ``$`` -> callable).
    functions: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
