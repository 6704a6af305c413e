"""Build the frozen flow model from a flow file's node tree, checking it against the vocabulary.

Every builder records its problems in the :class:`~dsl.values.FileContext` and goes on with the
next item, so one pass reports everything wrong in a file. Cross-file checks (``flow-ref`` targets,
connections) are left to :mod:`dsl.project`, which knows the whole project.

Nothing here lists step kinds or triggers: each step key is looked up in the vocabulary (a step
kind builds its own node, handed this builder as its :class:`~dsl.kinds.StepBuilder`; any other
key must be an operation), and each trigger brings its schema and its own check from there.
"""

from __future__ import annotations

import re
from typing import Any, cast

from dsl.builtins import (
    BATCH_SCHEMA,
    ERROR_TYPE_PATTERN,
    FLOW_KEYS,
    ON_ERROR_SCHEMA,
    STEP_COMMON_KEYS,
    parameters_schema,
)
from dsl.errors import FlowError
from dsl.kinds import SourceCheck
from dsl.libraries import compile_with_libraries
from dsl.loader import Node
from dsl.model import (
    BatchPolicy,
    ErrorAction,
    ErrorHandler,
    Expression,
    Flow,
    OperationStep,
    RetryPolicy,
    Step,
    Template,
    Trigger,
)
from dsl.properties import substitute_placeholders
from dsl.source import SourceSpan
from dsl.steps import node_kind as _kind
from dsl.templates import UNRESOLVED
from dsl.validate import check_value, did_you_mean
from dsl.values import FileContext, parse_duration, to_value

__all__ = ["build_flow"]

#: The flow mapping's own keys; nested parts (steps, trigger, on-error) are checked by their builders.
_FLOW_SCHEMA = {
    "type": "object",
    "properties": {**FLOW_KEYS, "trigger": {"type": "object"}, "on-error": {"type": "array"}},
    "required": ["flow", "steps"],
    "additionalProperties": False,
}


def build_flow(root: Node, ctx: FileContext) -> Flow | None:
    """The :class:`~dsl.model.Flow` of a flow file, or ``None`` when it is too broken to build."""
    return _FlowBuilder(ctx).flow(root)


class _FlowBuilder:
    """Builds one file's flow; also the :class:`~dsl.kinds.StepBuilder` step kinds build with."""

    def __init__(self, ctx: FileContext) -> None:
        self.ctx = ctx
        #: The flow's ``batch:`` (``None``: none), which its operation steps with a batch form follow.
        self.flow_batch: BatchPolicy | None = None
        #: Where the flow's ``batch:`` is written, for the errors it causes.
        self.flow_batch_span: SourceSpan | None = None
        #: The flow's ``max-concurrency``: how many of its executions may wait in one batch.
        self.max_concurrency = 8
        #: Whether the flow's ``batch:`` was reported as unable to fill (it is reported once).
        self.unfillable_reported = False

    # ------------------------------------------------------------------------------ flow level

    def flow(self, root: Node) -> Flow | None:
        ctx = self.ctx
        shallow = {k: v for k, v in root.value.items()
                   if k in ("flow", "description", "max-concurrency", "batch")}
        header = ctx.resolve(Node("map", shallow, root.span, keys=root.keys))
        check_value(Node("map", {**root.value, **header.value}, root.span, keys=root.keys), _FLOW_SCHEMA,
                    "flow", ctx.errors, key_span=root.span)
        concurrency = header.value.get("max-concurrency")
        if concurrency is not None and type(concurrency.value) is int and concurrency.value >= 1:
            self.max_concurrency = concurrency.value
        batch_node = header.value.get("batch")
        if batch_node is not None and check_value(batch_node, BATCH_SCHEMA, "batch", []):
            # (its problems are reported with the flow's keys above)
            self.flow_batch = self.batch_policy(batch_node, BatchPolicy())
            self.flow_batch_span = root.keys["batch"]
        name_node = header.value.get("flow")
        name = name_node.value if name_node is not None and isinstance(name_node.value, str) else None
        steps_node = root.value.get("steps")
        steps: tuple[Step, ...] = ()
        if steps_node is not None and steps_node.kind == "seq":
            if not steps_node.value:
                ctx.error(steps_node.span, "a flow needs at least one step", "a non-empty list of steps")
            steps = self.steps(steps_node)
        trigger_node = root.value.get("trigger")
        trigger = self.trigger(trigger_node) if trigger_node is not None and trigger_node.kind == "map" else None
        handlers: tuple[ErrorHandler, ...] = ()
        on_error = root.value.get("on-error")
        if on_error is not None and on_error.kind == "seq":
            handlers = tuple(h for h in (self.handler(item) for item in on_error.value) if h is not None)
        description = header.value.get("description")
        record_ids = self.record_ids(root.value.get("record-ids"))
        if name is None:
            return None
        return Flow(
            name=name,
            span=name_node.span if name_node is not None else root.span,
            steps=steps,
            trigger=trigger,
            on_error=handlers,
            description=description.value if description is not None and isinstance(description.value, str)
            else "",
            max_concurrency=self.max_concurrency,
            record_ids=record_ids,
            batch=self.flow_batch,
        )

    def record_ids(self, node: Node | None) -> tuple[Any, ...]:
        """``record-ids:``: each item a template (``#[vars.trigger.Id]``) rendered at the end."""
        if node is None or node.kind != "seq":
            return ()
        values = to_value(self.ctx.resolve(node))
        return tuple(values) if isinstance(values, list) else ()

    def trigger(self, node: Node) -> Trigger | None:
        ctx = self.ctx
        if len(node.value) != 1:
            ctx.error(node.span, "a trigger must be a mapping with exactly one trigger",
                      "e.g. 'schedule: { every: 5m }'")
            return None
        (name, value), = node.value.items()
        key_span = node.keys[name]
        schema = ctx.vocabulary.source_schema(name)
        if schema is None:
            ctx.error(key_span, f"unknown trigger '{name}'",
                      "one of the known triggers" + did_you_mean(name, ctx.vocabulary.source_names()))
            return None
        params = ctx.resolve(value) if value.value is not None else Node("map", {}, value.span)
        if not check_value(params, parameters_schema(schema), name, ctx.errors, owner=name,
                           key_span=key_span):
            return None
        values: dict[str, Any] = to_value(params)  # keeps the DynamicDict marker
        check = ctx.vocabulary.source_check(name)
        if check is not None and not self.trigger_rules(check, values, params, value, key_span):
            return None
        connection = values.pop("connection", None)
        if "connection" in (schema.get("properties") or {}):
            ctx.connection_refs.append((name.split(".", 1)[0], connection, key_span, name))
        return Trigger(name=name, params=values, span=key_span, connection=connection)

    def trigger_rules(self, check: SourceCheck, values: dict[str, Any], params: Node, written: Node,
                      key_span: SourceSpan) -> bool:
        """Run a trigger's own check (rules its schema cannot say); report each problem where it is.

        A value that came from a ``${...}`` placeholder is named by it (``written`` is the trigger
        as written), since the wrong value itself is in a property file or the environment.
        """
        ok = True
        for problem in check(values):
            ok = False
            at = params.value.get(problem.param) if problem.param is not None and params.kind == "map" \
                else None
            source = written.value.get(problem.param) if at is not None and written.kind == "map" \
                else None
            message = problem.message
            if source is not None and isinstance(source.value, str) and "${" in source.value:
                message += f" (from {source.value.strip()})"
            self.ctx.error(at.span if at is not None else key_span, message, problem.expected)
        return ok

    # ------------------------------------------------------------------------------ steps

    def steps(self, node: Node) -> tuple[Step, ...]:
        if node.kind != "seq":
            self.ctx.error(node.span, f"steps must be a list, got {_kind(node)}", "a list of steps")
            return ()
        return tuple(s for s in (self.step(item) for item in node.value) if s is not None)

    def step(self, node: Node) -> Step | None:
        ctx = self.ctx
        if node.kind != "map":
            ctx.error(node.span, f"a step must be a mapping, got {_kind(node)}",
                      "one step key such as 'transform:' or 'log:'")
            return None
        kinds = [k for k in node.value if k not in STEP_COMMON_KEYS]
        if not kinds:
            ctx.error(node.span, "step has no step key", "one of the known steps")
            return None
        for extra in kinds[1:]:
            ctx.error(node.keys[extra], f"several step keys in one step ('{kinds[0]}' and '{extra}')",
                      "one step per list item (start a new item with '-')")
        kind = kinds[0]
        common = ctx.resolve(Node("map", {k: v for k, v in node.value.items() if k in STEP_COMMON_KEYS},
                                  node.span, keys=node.keys))
        for key, child in list(common.value.items()):
            if not check_value(child, STEP_COMMON_KEYS[key], key, ctx.errors) and key == "batch":
                del common.value["batch"]  # reported; the step is built as if it had none
        label = _str(common.value.get("label"))
        target = _str(common.value.get("target"))
        value, key_span = node.value[kind], node.keys[kind]
        base: dict[str, Any] = {"span": key_span, "label": label, "target": target}
        cache = common.value.get("cache")
        batch = common.value.get("batch")
        step_kind = ctx.vocabulary.step_kind(kind)
        if step_kind is not None:
            if cache is not None:
                ctx.error(node.keys["cache"], f"'{kind}' cannot be cached",
                          "'cache' on a connector operation that only reads, such as a query")
            if batch is not None:
                ctx.error(node.keys["batch"], f"'{kind}' cannot be batched",
                          "'batch' on a connector operation that has a batch form")
            return step_kind.build(self, value, key_span, base)
        schema = ctx.vocabulary.operation_schema(kind)
        if schema is None:
            known = [*ctx.vocabulary.step_kind_names(), *ctx.vocabulary.operation_names()]
            ctx.error(key_span, f"unknown step '{kind}'", "one of the known steps" + did_you_mean(kind, known))
            return None
        if cache is not None:
            base["cache"] = self.cache_seconds(kind, schema, cache, value, node.keys["cache"])
            if batch is not None and batch.value is not False:
                ctx.error(node.keys["batch"], "a cached step is not batched",
                          "'cache' or 'batch', not both")
        else:
            base["batch"] = self.step_batch(kind, schema, batch, node.keys.get("batch"))
        return self.operation(kind, schema, value, key_span, base)

    def batch_policy(self, node: Node, base: BatchPolicy) -> BatchPolicy:
        """A checked ``batch:`` mapping over ``base``: the keys it leaves out keep ``base``'s values."""
        size, within = base.size, base.within
        written = node.value.get("size")
        if written is not None and type(written.value) is int and written.value >= 1:
            size = written.value
        written = node.value.get("within")
        if written is not None:
            try:
                within = parse_duration(written.value)
            except ValueError:
                pass  # already reported against the schema's pattern
        return BatchPolicy(size=size, within=within)

    def step_batch(self, kind: str, schema: Any, batch: Node | None,
                   key_span: SourceSpan | None) -> BatchPolicy | None:
        """How an operation step batches: its own ``batch:`` (over the flow's), else the flow's when
        the operation has a batch form; ``None`` when its calls go one by one."""
        max_size = schema.get("x-batch")
        if batch is None or key_span is None:
            if self.flow_batch is None or max_size is None:
                return None
            policy, where = self.flow_batch, self.flow_batch_span
        elif batch.value is False:
            return None
        elif max_size is None:
            self.ctx.error(key_span, f"'{kind}' has no batch form, so its calls cannot be batched",
                           "no 'batch' on this step (only operations with a batch form batch)")
            return None
        elif batch.kind == "map":
            policy, where = self.batch_policy(batch, self.flow_batch or BatchPolicy()), key_span
        elif batch.value is True:
            policy, where = self.flow_batch or BatchPolicy(), key_span
        else:
            return None  # not a mapping or a boolean: already reported against the schema
        size = min(policy.size, int(max_size))
        if size > self.max_concurrency and where is not None:
            if where == self.flow_batch_span:
                if self.unfillable_reported:
                    return policy
                self.unfillable_reported = True
            self.ctx.error(where, f"batches of {size} calls of '{kind}' can never fill: max-concurrency "
                                  f"is {self.max_concurrency}, so at most {self.max_concurrency} "
                                  f"executions wait at once",
                           f"a batch 'size' of at most {self.max_concurrency}, or a max-concurrency of "
                           f"at least {size}")
        return policy

    def cache_seconds(self, kind: str, schema: Any, cache: Node, params: Node,
                      key_span: SourceSpan) -> float | None:
        """How long a ``cache:`` keeps results; an error unless the operation only reads."""
        ctx = self.ctx
        if not schema.get("x-read-only"):
            ctx.error(key_span, f"'{kind}' changes data, so its result cannot be cached",
                      "'cache' only on operations that only read, such as queries")
            return None
        stream = params.value.get("stream") if params.kind == "map" else None
        if stream is not None and stream.value is True:
            ctx.error(key_span, "a streamed result cannot be cached", "'stream: false', or no 'cache'")
            return None
        try:
            return parse_duration(cache.value)
        except ValueError:
            return None  # already reported against the schema's pattern

    def operation(self, name: str, schema: Any, node: Node, key_span: SourceSpan,
                  base: dict[str, Any]) -> Step | None:
        ctx = self.ctx
        params = ctx.resolve(node) if node.value is not None else Node("map", {}, node.span)
        if not check_value(params, parameters_schema(schema), name, ctx.errors, owner=name,
                           key_span=key_span):
            return None
        values = to_value(params)  # keeps the DynamicDict marker for render()
        connection = values.pop("connection", None)
        if "connection" in (schema.get("properties") or {}) and connection is not UNRESOLVED:
            ctx.connection_refs.append((name.split(".", 1)[0], connection, key_span, name))
        return OperationStep(name=name, params=values, connection=connection, **base)

    def expression(self, node: Node, name: str) -> Expression | None:
        """A node that must be one JSONata expression: ``#[ ... ]``, or bare JSONata text."""
        ctx = self.ctx
        value = node.value
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str):
            ctx.error(node.span, f"'{name}' must be a JSONata expression, got {_kind(node)}")
            return None
        stripped = value.strip()
        if stripped.startswith("#[") and stripped.endswith("]"):
            resolved = ctx.resolve(node).value
            if isinstance(resolved, Template) and resolved.single_expression is not None:
                return resolved.single_expression
            if isinstance(resolved, Template):
                ctx.error(node.span, f"'{name}' must be one #[ ] expression, without text around it")
            return None
        source = substitute_placeholders(value, ctx.properties, node.position, ctx.errors)
        try:
            return compile_with_libraries(source, node.position(0), node.position, engine=ctx.engine,
                                          functions=ctx.functions, libraries=ctx.libraries, errors=ctx.errors)
        except FlowError as exc:
            ctx.errors.append(exc)
            return None

    # ------------------------------------------------------------------------------ on-error

    def handler(self, node: Node) -> ErrorHandler | None:
        ctx = self.ctx
        if node.kind != "map":
            ctx.error(node.span, f"an on-error entry must be a mapping, got {_kind(node)}",
                      "'when:', 'then:', 'retry:', 'steps:'")
            return None
        resolved = ctx.resolve(Node("map", {k: v for k, v in node.value.items() if k != "steps"}, node.span,
                                    keys=node.keys))
        if "steps" in node.value:
            resolved.value["steps"] = node.value["steps"]
        ok = check_value(resolved, ON_ERROR_SCHEMA, "on-error", ctx.errors, key_span=node.span)
        when = resolved.value.get("when")
        items = [] if when is None else [when] if when.kind == "scalar" else list(when.value) \
            if when.kind == "seq" else []
        types = ["ANY"] if when is None else []
        for item in items:
            if not isinstance(item.value, str):
                continue  # a wrong type is already reported
            text = item.value.strip().upper()
            if not re.match(ERROR_TYPE_PATTERN, text):
                ctx.error(item.span, f"invalid error type {item.value!r}", "NAMESPACE:KIND, NAMESPACE:* or ANY")
            types.append(text)
        then = resolved.value.get("then")
        action = cast(ErrorAction, then.value if then is not None else "propagate")
        has_payload = "payload" in resolved.value
        if has_payload and action != "continue":
            ctx.error(node.keys["payload"], "'payload' is only used with 'then: continue'")
        steps = self.steps(node.value["steps"]) if "steps" in node.value else ()
        if not ok:
            return None
        retry = self.retry(resolved.value["retry"]) if "retry" in resolved.value else None
        return ErrorHandler(types=tuple(types), action=action, span=node.span, retry=retry,
                            payload=to_value(resolved.value["payload"]) if has_payload else None,
                            has_payload=has_payload, steps=steps)

    def retry(self, node: Node) -> RetryPolicy | None:
        values: dict[str, Any] = {}
        for key, child in node.value.items():
            field = key.replace("-", "_")
            if key in ("initial-delay", "max-delay"):
                try:
                    values[field] = parse_duration(child.value)
                except ValueError as exc:
                    self.ctx.error(child.span, str(exc), "a duration such as 500ms, 30s, 5m")
            else:
                values[field] = float(child.value) if key in ("multiplier", "jitter") else child.value
        return RetryPolicy(**values)


def _str(node: Node | None) -> str | None:
    return node.value if node is not None and isinstance(node.value, str) else None

