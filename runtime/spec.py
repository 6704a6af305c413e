"""What a connector plugin declares: its connection, operations, sources and JSONata functions.

A spec is the single source of truth for a component. From the same :class:`Param` list the runtime
derives flow validation, the editor JSON Schema (``splice schema``), the reference (``splice docs``)
and which values to redact (``secret=True``). A plugin answers the ``splice_connectors`` hook with
:class:`Connector` objects; nothing else about it is looked up by name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from dsl.builtins import DURATION
from dsl.kinds import ParamProblem, SourceCheck, StepKind
from runtime.errors import ConnectionConfigError
from runtime.params import ParamCoercer, compile_params

if TYPE_CHECKING:
    from dsl.model import Step
    from runtime.context import ConnectionContext, OperationContext, SourceContext
    from runtime.steps.execution import StepRunner

__all__ = [
    "BatchCall",
    "BatchForm",
    "BatchHandler",
    "ConnectionSpec",
    "Connector",
    "OperationHandler",
    "OperationSpec",
    "Param",
    "ParamProblem",
    "SandboxAction",
    "SandboxSpec",
    "SandboxTarget",
    "SourceRunner",
    "SourceSpec",
    "StepSpec",
    "WritesTest",
    "aiter_records",
    "materialize",
    "param_defaults",
    "params_schema",
]

ParamType = Literal["string", "integer", "number", "boolean", "object", "array", "any", "duration"]

#: ``async def handler(ctx, params) -> new payload``; may return an async iterator to stream records.
OperationHandler = Callable[["OperationContext", dict[str, Any]], Awaitable[Any]]

#: ``writes(params) -> bool``: whether a call with these rendered parameters writes (an operation that
#: writes only for some, such as ``http.request`` with POST but not GET). Its docstring's first line
#: says when, in the reference ("With methods other than GET and HEAD").
WritesTest = Callable[[Mapping[str, Any]], bool]

#: ``async def run(ctx, params)``: produce events with ``ctx.handle`` until cancelled.
SourceRunner = Callable[["SourceContext", dict[str, Any]], Awaitable[None]]

#: ``open(settings, ctx)`` -> async context manager yielding the connection's client object.
ConnectionOpener = Callable[[dict[str, Any], "ConnectionContext"], AbstractAsyncContextManager[Any]]

Stability = Literal["stable", "beta", "experimental", "deprecated"]


@dataclass(frozen=True, slots=True)
class BatchCall:
    """One execution's call of an operation, gathered into a batch: its context and rendered
    parameters, as the operation's single ``handler`` would have received them."""

    ctx: OperationContext
    params: dict[str, Any]


#: ``async def run(calls) -> results``: one result per call, in the calls' order. A result is the
#: call's new payload, or a :class:`~runtime.errors.SpliceError` instance for a call that failed on
#: its own (that execution alone gets the error); raising fails every call of the batch.
BatchHandler = Callable[[Sequence[BatchCall]], Awaitable[Sequence[Any]]]


@dataclass(frozen=True, slots=True)
class BatchForm:
    """The batch form of an operation: how calls of many executions go to the API together.

    The runtime gathers calls of a step that a flow batches (by size and time) and hands them to
    ``handler`` together; calls go into one batch only when they use the same connection and
    ``key(params)`` is equal (for example the same entity). ``max_size`` is the most the API takes
    in one call (QuickBooks ``/batch``: 30 items; Salesforce sObject Collections: 200 records).
    Every call keeps its own outcome and its own idempotency: the handler must give each call
    exactly the effect its single form would have had.
    """

    handler: BatchHandler
    max_size: int = 30
    key: Callable[[Mapping[str, Any]], Hashable] | None = None


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a connection, operation or source.

    The runtime hands connector code every value in its declared ``type`` (see
    :mod:`runtime.params`): ``duration`` as seconds (``float``), ``integer`` as ``int``, ``number``
    as ``float``, ``boolean`` as ``bool``; ``enum`` values are checked, defaults filled in.
    ``schema`` replaces the derived JSON Schema for shapes a type name cannot say (a list of records,
    a mapping of field names). ``dynamic=False`` forbids ``#[ ... ]`` (for values needed before any
    message exists). ``secret=True`` values are redacted in logs, spans, errors and cassettes.
    """

    name: str
    type: ParamType = "string"
    required: bool = False
    default: Any = None
    summary: str = ""
    enum: tuple[Any, ...] | None = None
    secret: bool = False
    dynamic: bool = True
    examples: tuple[Any, ...] = ()
    schema: Mapping[str, Any] | None = None

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of this parameter's value, with ``x-`` keys for the runtime's flags."""
        if self.schema is not None:
            out = dict(self.schema)
        elif self.type == "any":
            out = {}
        elif self.type == "duration":
            out = dict(DURATION)
        else:
            out = {"type": self.type}
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.summary:
            out.setdefault("description", self.summary)
        if self.default is not None:
            out.setdefault("default", self.default)
        if self.examples:
            out.setdefault("examples", list(self.examples))
        if self.secret:
            out["x-secret"] = True
        if not self.dynamic:
            out["x-dynamic"] = False
        return out


def param_defaults(params: tuple[Param, ...]) -> dict[str, Any]:
    """The default of every parameter that has one, as a new dict the caller may fill in."""
    return {p.name: p.default for p in params if p.default is not None}


def params_schema(params: tuple[Param, ...], *, description: str = "") -> dict[str, Any]:
    """The object schema for a parameter list: unknown keys are errors, required keys must be there."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {p.name: p.json_schema() for p in params},
        "additionalProperties": False,
    }
    required = [p.name for p in params if p.required]
    if required:
        schema["required"] = required
    if description:
        schema["description"] = description
    return schema


@dataclass(frozen=True, slots=True)
class ConnectionSpec:
    """How to open a connection of this connector from a ``connections:`` entry."""

    params: tuple[Param, ...]
    open: ConnectionOpener
    summary: str = ""
    #: Settings as ``open`` gets them: defaults filled in, typed, secrets registered for redaction.
    coerce: ParamCoercer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "coerce", compile_params(
            self.params, owner="connection", error_type=ConnectionConfigError.default_type))

    def connect(self, settings: Mapping[str, Any],
                ctx: ConnectionContext) -> AbstractAsyncContextManager[Any]:
        """Open a connection from raw ``connections:`` settings, the way the runtime does."""
        return self.open(self.coerce(settings), ctx)

    def schema(self) -> dict[str, Any]:
        """The settings schema (``connector`` itself is not part of it)."""
        return params_schema(self.params, description=self.summary)


@dataclass(frozen=True, slots=True)
class OperationSpec:
    """A step kind a flow can call: ``<connector>.<name>``.

    ``handler`` receives the rendered parameters (defaults filled in, values typed by their
    :class:`Param`) and returns the new payload.
    ``needs_connection=False`` for operations that work without a configured connection.
    ``read_only=True`` for operations that change nothing anywhere: only their results may be
    reused by a step's ``cache:``; a read-only operation never writes.

    ``writes`` says whether a call changes anything outside the flow (a record in a system, a file):
    ``True`` (the default, so that an operation that says nothing is never run by a dry run),
    ``False``, or a :data:`WritesTest` for an operation that writes only for some parameters. In a
    dry run (``splice run --dry-run``, the ``dry-run`` step) a call that writes is not made:
    ``preview`` is called instead, with the same context and parameters. It may read (a lookup
    before a create), must not write, tells each write it would make with
    :meth:`~runtime.context.OperationContext.would_write`, and returns a stand-in for the result,
    so that later steps, and their writes, run too. Without a ``preview`` the runtime records the
    call's parameters as the write, and later steps get ``{"id": "(dry-run)", "dryRun": true}``.
    """

    name: str
    handler: OperationHandler
    params: tuple[Param, ...] = ()
    summary: str = ""
    output: str = ""
    needs_connection: bool = True
    read_only: bool = False
    writes: bool | WritesTest = True
    preview: OperationHandler | None = None
    #: How calls of many executions go to the API together, when a flow batches this step.
    batch: BatchForm | None = None
    stability: Stability = "stable"
    since: str = "0.1"
    #: Rendered parameters as ``handler`` gets them: defaults filled in, values typed.
    coerce: ParamCoercer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "coerce", compile_params(self.params, owner=self.name))
        if self.read_only:
            object.__setattr__(self, "writes", False)

    def writes_with(self, params: Mapping[str, Any]) -> bool:
        """Whether a call with these rendered parameters writes."""
        return self.writes(params) if callable(self.writes) else bool(self.writes)

    @property
    def writes_summary(self) -> str:
        """When the operation writes, in words: ``yes``, ``no``, or its test's first docstring line."""
        if callable(self.writes):
            doc = (self.writes.__doc__ or "").strip().splitlines()
            return doc[0].rstrip(".") if doc else "for some parameters"
        return "yes" if self.writes else "no"

    def schema(self) -> dict[str, Any]:
        """Parameter schema including the generic ``connection`` parameter when one is needed."""
        params = self.params
        if self.needs_connection:
            params = (Param("connection", summary="Name of the connection to use", dynamic=False),
                      *params)
        schema = params_schema(params, description=self.summary)
        if self.read_only:
            schema["x-read-only"] = True
        if self.batch is not None:  # flows may batch its calls, this many at most in one batch
            schema["x-batch"] = self.batch.max_size
        schema["x-writes"] = self.writes_summary if callable(self.writes) else bool(self.writes)
        return schema


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """A trigger a flow can start from: ``<connector>.<name>``.

    ``run`` runs for the lifetime of the flow. It hands events to ``ctx.handle`` (or
    ``ctx.handle_many``), which returns once each event was processed or dead-lettered; only then
    may the source move its watermark (``ctx.state``), so no event is lost across restarts.

    ``exclusive=True`` for sources that fetch from a system (polling, streaming) rather than
    being called (HTTP): when several ``serve`` replicas share a store, one replica runs it and
    the others stand by, so each change is handled once, not once per replica.
    """

    name: str
    run: SourceRunner
    params: tuple[Param, ...] = ()
    summary: str = ""
    needs_connection: bool = True
    exclusive: bool = False
    stability: Stability = "stable"
    since: str = "0.1"
    # -- rules beyond the parameter list, and manual runs ------------------------------------------
    #: The trigger's own rules its schema cannot say, checked when a flow is loaded (see
    #: :data:`dsl.kinds.SourceCheck`; it may also complete the parameters, e.g. a default).
    check: SourceCheck | None = None
    #: ``run_lock(flow)`` -> the store lock each of the trigger's runs holds, when runs of the flow
    #: must never overlap: ``splice run`` of the flow holds it too (e.g. ``schedule``).
    run_lock: Callable[[str], str] | None = None
    #: ``routes(params)`` -> the ``(path, methods)`` the trigger registers with ``ctx.add_route``,
    #: from its load-time parameters, so ``splice validate`` finds two flows on one route before
    #: ``serve`` does. Without it, a trigger with a ``path`` parameter claims that path, for its
    #: ``method`` parameter's method, or every method (``*``) when it has none.
    routes: Callable[[Mapping[str, Any]], Iterable[tuple[str, Iterable[str]]]] | None = None

    def schema(self) -> dict[str, Any]:
        """Parameter schema including ``connection`` when one is needed."""
        params = self.params
        if self.needs_connection:
            params = (Param("connection", summary="Name of the connection to use", dynamic=False),
                      *params)
        return params_schema(params, description=self.summary)

    def claimed_routes(self, params: Mapping[str, Any]) -> list[tuple[str, frozenset[str]]]:
        """The routes a trigger with these (load-time) parameters registers (see ``routes``)."""
        if self.routes is not None:
            return [(path, frozenset(m.upper() for m in methods)) for path, methods in self.routes(params)]
        path = params.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            return []
        names = {param.name for param in self.params}
        method = params.get("method")
        if "method" in names:
            return [(path, frozenset({method.upper()}))] if isinstance(method, str) else []
        return [(path, frozenset({"*"}))]


@dataclass(frozen=True, slots=True)
class Connector:
    """Everything one connector contributes; answered by a plugin's ``splice_connectors`` hook."""

    name: str
    summary: str = ""
    connection: ConnectionSpec | None = None
    operations: tuple[OperationSpec, ...] = ()
    sources: tuple[SourceSpec, ...] = ()
    #: JSONata functions, name without ``$`` -> Python callable (arguments already evaluated).
    functions: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    #: The connector's sandbox (API emulator, demo settings, ``splice sandbox`` actions): a
    #: :class:`SandboxSpec`, or a ``"module:attribute"`` reference to one that is imported only when a
    #: sandbox starts, so that no other command loads the emulator. Never used on the product path.
    sandbox: SandboxSpec | str | None = None
    version: str = "0.1"


@dataclass(frozen=True, slots=True)
class SandboxAction:
    """Something a person does by hand in the emulated system, to watch the flows react.

    ``run(emulator, args)`` gets the ``GET /sandbox`` entry of one emulator of this connector
    (``baseUrl``, ``settings`` with the demo credentials) and the words after the action name; it
    returns the text to print. It raises ``ValueError`` for bad arguments (printed as one line).
    Actions named ``list`` are run for every connector by ``splice sandbox list``.
    """

    name: str
    run: Callable[[Mapping[str, Any], list[str]], Awaitable[str]]
    usage: str = ""
    summary: str = ""


@dataclass(frozen=True, slots=True)
class SandboxTarget:
    """What a connector needs to know to set up its emulator for one sandboxed connection.

    The runtime builds it without knowing the connector: the connection's settings after the
    sandbox ones were applied, the URL ``splice serve`` answers on, and the triggers of the flows
    that use the connection (source name without the connector prefix, and its parameters).
    """

    connection: str
    server_url: str
    settings: Mapping[str, Any]
    triggers: tuple[tuple[str, Mapping[str, Any]], ...] = ()


@dataclass(frozen=True, slots=True)
class SandboxSpec:
    """A connector's sandbox: its API emulator and how a sandboxed connection is pointed at it.

    ``emulator(**options)`` builds an ASGI app imitating the connector's API (for ``splice sandbox
    <name>``, tests and benchmarks). ``settings(base_url)`` gives the connection settings that point
    a connection at the emulator served at ``base_url``, with the emulator's demo credentials
    (a ``None`` value drops that setting); ``splice serve`` uses it in sandbox mode, never with real
    credentials. ``emulator_options(target)`` gives the ``emulator(**options)`` of sandbox mode: demo
    data, and where the emulator calls ``splice serve`` back (webhooks); default: no options.
    ``actions`` are what ``splice sandbox <action> ARGS`` does against a running sandbox.
    ``examples(app)`` gives example values of the emulator built for sandbox mode, by name (e.g.
    ``accountId``: a demo record's id): the sandbox banner fills the ``{name}`` parameters of the
    project's listener paths with them, so a person can call the project's API right away.
    """

    emulator: Callable[..., Any]
    settings: Callable[[str], Mapping[str, Any]]
    emulator_options: Callable[[SandboxTarget], Mapping[str, Any]] | None = None
    actions: tuple[SandboxAction, ...] = ()
    examples: Callable[[Any], Mapping[str, str]] | None = None


async def aiter_records(value: Any) -> AsyncIterator[Any]:
    """Iterate a payload that may be a list, a single value or an async stream of records."""
    if hasattr(value, "__aiter__"):
        async for item in value:
            yield item
    elif isinstance(value, list | tuple):
        for item in value:
            yield item
    elif value is not None:
        yield value


async def materialize(value: Any) -> Any:
    """A streamed payload (async iterator) as a list; anything else as it is."""
    if hasattr(value, "__aiter__"):
        return [item async for item in value]
    return value


# --------------------------------------------------------------------------------------------------
# Step kinds
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepSpec:
    """A kind of step and how it runs; answered by a plugin's ``splice_steps`` hook.

    ``kind`` is the language side (step key, value schema, the builder of the model node, see
    :class:`dsl.kinds.StepKind`); ``node`` is the model class that builder makes, and ``run``
    (``async def run(execution, flow, step, message, path)``) runs each such step. The runtime's
    own steps (``transform``, ``foreach``...) are registered this way too. ``kind`` is ``None``
    only for a node the language builds by itself: a connector operation's step.
    """

    node: type[Step]
    run: StepRunner
    kind: StepKind | None = None

    @property
    def name(self) -> str:
        """The step key (``transform``), or the node's class name for a step without one."""
        return self.kind.name if self.kind is not None else self.node.__name__
