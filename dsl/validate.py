"""A positioned JSON Schema subset checker for flow values, reporting every problem at once.

Plugins describe parameters with JSON Schema objects (``runtime.spec.params_schema``). This checker
walks the span-carrying :class:`~dsl.loader.Node` tree (placeholders already resolved) and knows the
keywords those schemas use: ``type`` (one or a list), ``properties``, ``required``,
``additionalProperties: false``, ``enum``, ``items``, ``pattern``, ``minimum``/``maximum``, and
``x-dynamic: false``. A ``#[ ]`` expression is accepted for any type, since it is typed only when it
runs, except where ``x-dynamic`` is false.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from dsl.errors import FlowError, FlowValidationError, did_you_mean
from dsl.loader import Node
from dsl.model import Template
from dsl.source import SourceSpan
from dsl.templates import UNRESOLVED

__all__ = ["check_value", "did_you_mean", "node_type", "type_phrase"]

_ARTICLE = {"integer": "an integer", "object": "an object", "array": "an array"}


def node_type(node: Node) -> str:
    """The JSON type of a node's value (``expression`` for a template)."""
    if node.kind == "map":
        return "object"
    if node.kind == "seq":
        return "array"
    value = node.value
    if isinstance(value, Template):
        return "expression"
    if value is UNRESOLVED:
        return "unresolved"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def type_phrase(types: Iterable[str]) -> str:
    """``a string``, ``an integer or a string``..."""
    return " or ".join(_ARTICLE.get(t, f"a {t}") for t in types)


def _matches(actual: str, wanted: str) -> bool:
    return actual == wanted or (wanted == "number" and actual == "integer")


def check_value(
    node: Node,
    schema: Mapping[str, Any] | None,
    name: str,
    errors: list[FlowError],
    *,
    owner: str | None = None,
    key_span: SourceSpan | None = None,
) -> bool:
    """Check ``node`` (the value of ``name``) against ``schema``; append problems to ``errors``.

    ``owner`` (``salesforce.query``) words the messages of a step's parameters; ``key_span`` is where
    missing keys are reported (the key that holds this mapping). Returns whether the value fit.
    """
    if not schema:
        return True
    before = len(errors)
    actual = node_type(node)
    if actual == "unresolved":
        # Its placeholder's problem is already reported; the value did not fit, so the caller
        # builds nothing from it (a step made of one failed placeholder has no shape to read).
        return False
    if actual == "expression":
        if schema.get("x-dynamic") is False:
            errors.append(FlowValidationError(node.span, f"'{name}' cannot hold a #[ ] expression",
                                              "a fixed value (it is needed before any message exists)"))
        return len(errors) == before
    wanted = schema.get("type")
    types = [wanted] if isinstance(wanted, str) else list(wanted or [])
    if types and not any(_matches(actual, t) for t in types):
        errors.append(FlowValidationError(node.span, f"'{name}' must be {type_phrase(types)}, got {actual}"))
        return False
    if "enum" in schema and node.kind == "scalar" and node.value not in schema["enum"]:
        choices = ", ".join(str(c) for c in schema["enum"])
        errors.append(FlowValidationError(node.span, f"'{name}' must be one of {choices}, got {node.value!r}"))
    if actual == "string" and "pattern" in schema and not re.search(schema["pattern"], node.value):
        expected = (schema.get("x-expected") or schema.get("description")
                    or f"a value matching {schema['pattern']}")
        errors.append(FlowValidationError(node.span, f"invalid value {node.value!r} for '{name}'",
                                          _lower_first(expected)))
    if actual in ("integer", "number"):
        if "minimum" in schema and node.value < schema["minimum"]:
            errors.append(FlowValidationError(node.span, f"'{name}' must be at least {schema['minimum']}, "
                                                         f"got {node.value}"))
        if "maximum" in schema and node.value > schema["maximum"]:
            errors.append(FlowValidationError(node.span, f"'{name}' must be at most {schema['maximum']}, "
                                                         f"got {node.value}"))
    fits = True
    if actual == "object":
        fits = _check_object(node, schema, name, errors, owner=owner, key_span=key_span or node.span)
    if actual == "array" and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(node.value):
            fits = check_value(item, schema["items"], f"{name}[{index}]", errors) and fits
    return fits and len(errors) == before


def _lower_first(text: str) -> str:
    """``Base URL`` stays, ``A duration`` becomes ``a duration`` (it follows ``expected``)."""
    first = text.split(" ", 1)[0]
    return text if len(first) > 1 and first.isupper() else text[0].lower() + text[1:]


def _check_object(node: Node, schema: Mapping[str, Any], name: str, errors: list[FlowError], *,
                  owner: str | None, key_span: SourceSpan) -> bool:
    """Whether every key of ``node`` fits (an unresolved value inside does not, see above)."""
    fits = True
    properties: Mapping[str, Any] = schema.get("properties") or {}
    what = f"parameter '{{}}' of {owner}" if owner else f"key '{{}}' in '{name}'"
    for required in schema.get("required") or ():
        if required not in node.value:
            errors.append(FlowValidationError(key_span, "missing " + what.format(required)))
    for key, child in node.value.items():
        if key in properties:
            fits = check_value(child, properties[key], key, errors) and fits
        elif schema.get("additionalProperties") is False:
            hint = did_you_mean(key, properties)
            known = ", ".join(properties) or "none"
            errors.append(FlowValidationError(node.keys[key], "unknown " + what.format(key) + hint,
                                              None if hint else f"one of: {known}"))
        elif isinstance(schema.get("additionalProperties"), Mapping):
            fits = check_value(child, schema["additionalProperties"], key, errors) and fits
    return fits
