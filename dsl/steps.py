"""The language's own step kinds: transform, set-variable, log, flow-ref, choice, foreach, dry-run.

Each is a :class:`~dsl.kinds.StepKind`: the schema of its value (from :mod:`dsl.builtins`) and the
function that builds its model node. They reach a flow's builder only through the vocabulary: the
runtime registers each one together with the code that runs it, like any plugin's step kind, and
:class:`~dsl.vocabulary.EmptyVocabulary` offers them when no runtime is around.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dsl.builtins import BUILTIN_STEPS
from dsl.errors import FlowError
from dsl.expressions import CompiledExpression
from dsl.kinds import StepBuilder, StepKind
from dsl.libraries import compile_with_libraries
from dsl.loader import Node, read_text
from dsl.model import (
    ChoiceBranch,
    ChoiceStep,
    DryRunStep,
    FlowRefStep,
    ForeachStep,
    LogStep,
    SetVariableStep,
    Step,
    Template,
    TransformStep,
)
from dsl.properties import substitute_placeholders
from dsl.source import SourceSpan
from dsl.templates import UNRESOLVED
from dsl.validate import check_value
from dsl.values import FileContext, to_value

__all__ = [
    "CHOICE",
    "DRY_RUN",
    "FLOW_REF",
    "FOREACH",
    "LANGUAGE_STEPS",
    "LOG",
    "SET_VARIABLE",
    "TRANSFORM",
    "node_kind",
]


def node_kind(node: Node) -> str:
    """How a node is named in messages: ``a mapping``, ``a list``, ``int 42``..."""
    if node.kind == "map":
        return "a mapping"
    if node.kind == "seq":
        return "a list"
    return "null" if node.value is None else f"{type(node.value).__name__} {node.value!r}"


def _str(node: Node | None) -> str | None:
    return node.value if node is not None and isinstance(node.value, str) else None


def build_transform(builder: StepBuilder, node: Node, key_span: SourceSpan,
                    base: dict[str, Any]) -> Step | None:
    ctx = builder.ctx
    if not check_value(node, BUILTIN_STEPS["transform"], "transform", ctx.errors, key_span=key_span):
        return None
    if node.kind == "map":
        inner = ctx.resolve(Node("map", {k: v for k, v in node.value.items() if k == "target"},
                                 node.span, keys=node.keys))
        if "target" in inner.value:
            if base["target"] is not None:
                ctx.error(node.keys["target"], "'target' given twice", "it once")
            base["target"] = base["target"] or _str(inner.value["target"])
        sources = [k for k in ("expression", "file") if k in node.value]
        if len(sources) != 1:
            ctx.error(key_span, "a transform needs exactly one of 'expression' and 'file'")
            return None
        source_node = node.value[sources[0]]
        if not isinstance(source_node.value, str):
            return None
        if sources[0] == "file":
            return _transform_file(ctx, source_node, base)
    else:
        source_node = node
    if source_node.value.strip().endswith(".jsonata") and "\n" not in source_node.value.strip():
        return _transform_file(ctx, source_node, base)
    if source_node.value.strip().startswith("#["):
        expression = builder.expression(source_node, "transform")
        return TransformStep(expression=expression, **base) if expression is not None else None
    source = substitute_placeholders(source_node.value, ctx.properties, source_node.position, ctx.errors)
    compiled = _compile_transform(ctx, source, source_node.position(0), source_node.position)
    return TransformStep(expression=compiled, **base) if compiled is not None else None


def _compile_transform(ctx: FileContext, source: str, span: SourceSpan,
                       position: Callable[[int], SourceSpan]) -> CompiledExpression | None:
    """Compile a transform's JSONata with the project libraries it names bound."""
    try:
        return compile_with_libraries(source, span, position, engine=ctx.engine, functions=ctx.functions,
                                      libraries=ctx.libraries, errors=ctx.errors, what="transform")
    except FlowError as exc:
        ctx.errors.append(exc)
        return None


def _transform_file(ctx: FileContext, node: Node, base: dict[str, Any]) -> Step | None:
    relative = ctx.resolve(node).value
    if isinstance(relative, Template):
        ctx.error(node.span, "a transform file cannot be a #[ ] expression", "a path, fixed at load time")
    if not isinstance(relative, str):
        return None
    path = (ctx.base_dir or Path.cwd()) / relative.strip()
    if not path.is_file():
        ctx.error(node.span, f"file not found: '{relative.strip()}'",
                  "a .jsonata file, relative to the flow file")
        return None
    display = ctx.display(path)
    start = SourceSpan(display, 1, 1)
    try:
        text = read_text(path.read_bytes(), display)
    except FlowError as exc:
        ctx.errors.append(exc)
        return None
    source = substitute_placeholders(text, ctx.properties, lambda o: start.shifted(text, o), ctx.errors)
    expression = _compile_transform(ctx, source, start, lambda o: start.shifted(source, o))
    if expression is None:
        return None
    return TransformStep(expression=expression, file=path, **base)


def build_set_variable(builder: StepBuilder, node: Node, key_span: SourceSpan,
                    base: dict[str, Any]) -> Step | None:
    resolved = builder.ctx.resolve(node)
    if not check_value(resolved, BUILTIN_STEPS["set-variable"], "set-variable", builder.ctx.errors,
                       key_span=key_span):
        return None
    return SetVariableStep(name=resolved.value["name"].value, value=to_value(resolved.value["value"]), **base)


def build_log(builder: StepBuilder, node: Node, key_span: SourceSpan,
                    base: dict[str, Any]) -> Step | None:
    resolved = builder.ctx.resolve(node)
    if not check_value(resolved, BUILTIN_STEPS["log"], "log", builder.ctx.errors, key_span=key_span):
        return None
    if resolved.kind != "map":
        return LogStep(message=to_value(resolved), **base)
    level = resolved.value.get("level")
    return LogStep(message=to_value(resolved.value["message"]),
                   level=level.value if level is not None else "info", **base)


def build_flow_ref(builder: StepBuilder, node: Node, key_span: SourceSpan,
                    base: dict[str, Any]) -> Step | None:
    resolved = builder.ctx.resolve(node)
    if not check_value(resolved, BUILTIN_STEPS["flow-ref"], "flow-ref", builder.ctx.errors):
        return None
    builder.ctx.flow_refs.append((resolved.value, resolved.span))
    return FlowRefStep(flow=resolved.value, **base)


def build_choice(builder: StepBuilder, node: Node, key_span: SourceSpan,
                    base: dict[str, Any]) -> Step | None:
    ctx = builder.ctx
    if node.kind != "seq" or not node.value:
        ctx.error(node.span, "'choice' must be a non-empty list of branches",
                  "'- when: \"#[ ... ]\"' items with 'steps:', and an optional '- otherwise:' last")
        return None
    branches: list[ChoiceBranch] = []
    otherwise: tuple[Step, ...] = ()
    for index, item in enumerate(node.value):
        if item.kind != "map":
            ctx.error(item.span, f"a choice branch must be a mapping, got {node_kind(item)}")
            continue
        check_value(item, BUILTIN_STEPS["choice"]["items"], "choice", ctx.errors)
        if "otherwise" in item.value:
            if index != len(node.value) - 1 or "when" in item.value:
                ctx.error(item.keys["otherwise"], "'otherwise' must be the last branch, on its own")
            otherwise = builder.steps(item.value["otherwise"])
            continue
        if "when" not in item.value:
            ctx.error(item.span, "a choice branch needs 'when'", "'when: \"#[ ... ]\"' and 'steps:'")
            continue
        when = builder.expression(item.value["when"], "when")
        steps = builder.steps(item.value["steps"]) if "steps" in item.value else ()
        if "steps" not in item.value:
            ctx.error(item.keys["when"], "a choice branch needs 'steps'")
        if when is not None:
            branches.append(ChoiceBranch(when=when, steps=steps, span=item.keys["when"]))
    if not any("when" in item.value for item in node.value if item.kind == "map"):
        ctx.error(key_span, "a choice needs at least one 'when' branch")
    return ChoiceStep(branches=tuple(branches), otherwise=otherwise, **base)


def build_foreach(builder: StepBuilder, node: Node, key_span: SourceSpan,
                    base: dict[str, Any]) -> Step | None:
    ctx = builder.ctx
    if node.kind != "map":
        check_value(node, BUILTIN_STEPS["foreach"], "foreach", ctx.errors)
        return None
    options = ctx.resolve(Node("map", {k: v for k, v in node.value.items() if k != "steps"}, node.span,
                               keys=node.keys))
    options.value["steps"] = node.value.get("steps", Node("seq", [], node.span))
    if "steps" not in node.value:
        del options.value["steps"]
    ok = check_value(options, BUILTIN_STEPS["foreach"], "foreach", ctx.errors, key_span=key_span)
    steps = builder.steps(node.value["steps"]) if "steps" in node.value else ()
    if not ok or "collection" not in node.value:
        return None
    collection = options.value["collection"].value
    if collection is UNRESOLVED:
        return None
    if not isinstance(collection, Template):
        expression = builder.expression(node.value["collection"], "collection")
        if expression is None:
            return None
        collection = Template((expression,), node.value["collection"].span, str(node.value["collection"].value))
    opts = {k.replace("-", "_"): v.value for k, v in options.value.items() if k not in ("collection", "steps")}
    return ForeachStep(collection=collection, steps=steps, **opts, **base)


def build_dry_run(builder: StepBuilder, node: Node, key_span: SourceSpan,
                  base: dict[str, Any]) -> Step | None:
    ctx = builder.ctx
    if node.kind != "map":
        check_value(node, BUILTIN_STEPS["dry-run"], "dry-run", ctx.errors)
        return None
    options = ctx.resolve(Node("map", {k: v for k, v in node.value.items()
                                       if k not in ("steps", "when")}, node.span, keys=node.keys))
    for key in ("steps", "when"):
        if key in node.value:
            options.value[key] = node.value[key]
    ok = check_value(options, BUILTIN_STEPS["dry-run"], "dry-run", ctx.errors, key_span=key_span)
    steps = builder.steps(node.value["steps"]) if "steps" in node.value else ()
    when = builder.expression(node.value["when"], "when") if "when" in node.value else None
    if not ok or ("when" in node.value and when is None):
        return None
    writes_var = options.value.get("writes-var")
    return DryRunStep(steps=steps, when=when,
                      writes_var=writes_var.value if writes_var is not None else "writes", **base)


TRANSFORM = StepKind("transform", BUILTIN_STEPS["transform"], build_transform)
SET_VARIABLE = StepKind("set-variable", BUILTIN_STEPS["set-variable"], build_set_variable)
LOG = StepKind("log", BUILTIN_STEPS["log"], build_log)
FLOW_REF = StepKind("flow-ref", BUILTIN_STEPS["flow-ref"], build_flow_ref)
CHOICE = StepKind("choice", BUILTIN_STEPS["choice"], build_choice)
FOREACH = StepKind("foreach", BUILTIN_STEPS["foreach"], build_foreach)
DRY_RUN = StepKind("dry-run", BUILTIN_STEPS["dry-run"], build_dry_run)

#: Every step kind of the language itself, in the order editors list them.
LANGUAGE_STEPS: tuple[StepKind, ...] = (TRANSFORM, SET_VARIABLE, LOG, FLOW_REF, CHOICE, FOREACH,
                                        DRY_RUN)
