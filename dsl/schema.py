"""The JSON Schema editors use for completion and checks, generated from the installed vocabulary.

One schema covers both kinds of project file (``anyOf`` a flow file and a config file). Every
step kind, operation step, trigger and connection comes from the vocabulary (the language's own step
kinds and the ``schedule`` trigger are registered there like any plugin's), so installing
a connector extends editor completion without any change here. The runtime's ``x-`` flags are
dropped: they mean nothing to an editor.

The schema accepts what ``splice validate`` accepts, as far as a schema can say it. Validation
resolves ``${...}`` placeholders at load time, before any check, so wherever a value is resolved
(every value except the structure of a flow: its ``steps``, ``trigger`` and ``on-error`` lists)
a placeholder stands for any value of a scalar type: a string holding one (``/api/${version}``)
for a string, a string that is exactly one (``${retries}``) for a number or a boolean, whose
value only the property files know. A ``#[ ]`` expression is typed only when it runs, so a string
holding one is accepted for any type, except where ``x-dynamic`` is false and in connections and
settings, which are needed before any message exists.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from dsl.builtins import (
    ERROR_TYPE_PATTERN,
    FLOW_KEYS,
    ON_ERROR_SCHEMA,
    SETTINGS_SCHEMA,
    STEP_COMMON_KEYS,
    parameters_schema,
)
from dsl.vocabulary import Vocabulary

__all__ = ["flow_json_schema"]

_DRAFT = "https://json-schema.org/draft/2020-12/schema"

#: A string holding a ``#[ ... ]`` expression (``\\#[`` is a literal ``#[``).
_EXPRESSION_PATTERN = r"(^|[^\\])#\[[\s\S]*\]"
#: A string holding a ``${...}`` placeholder (``$${`` is a literal ``${``).
_PLACEHOLDER_PATTERN = r"(^|[^$])\$\{\s*[^}\s][^}]*\}"
#: A string that is one placeholder and nothing else: it resolves to the property's own type.
_WHOLE_PLACEHOLDER_PATTERN = r"^\$\{\s*[^}\s][^}]*\}$"

_EXPRESSION = {"$ref": "#/$defs/expression"}
_PLACEHOLDER = {"$ref": "#/$defs/placeholder"}
_WHOLE_PLACEHOLDER = {"$ref": "#/$defs/wholePlaceholder"}
_FIXED_ANY = {"$ref": "#/$defs/fixedValue"}
_SCALARS = frozenset({"string", "integer", "number", "boolean", "null"})
#: Keywords that make a literal string schema refuse some strings (a placeholder may still fit).
_STRING_LIMITS = ("pattern", "enum", "const", "format", "minLength", "maxLength")
#: Keywords editors show or complete from, kept beside ``anyOf`` rather than inside one alternative.
_ANNOTATIONS = ("title", "description", "default", "examples", "deprecated")
#: Keys of the language's own structure: never resolved, so never a placeholder or an expression.
_STRUCTURAL = frozenset({"steps", "otherwise", "on-error", "trigger"})


def _clean(schema: Any) -> Any:
    """A copy without ``x-`` keys, as a plain JSON Schema (no placeholder or expression alternatives)."""
    if isinstance(schema, Mapping):
        return {key: _clean(value) for key, value in schema.items() if not str(key).startswith("x-")}
    if isinstance(schema, list | tuple):
        return [_clean(v) for v in schema]
    return copy.copy(schema)


def _types(schema: Mapping[str, Any]) -> list[str]:
    wanted = schema.get("type")
    return [wanted] if isinstance(wanted, str) else list(wanted or [])


def _value(schema: Mapping[str, Any], *, fixed: bool = False, containers: bool = True,
           root: bool = False) -> Any:
    """The schema of a value that validation resolves before checking it.

    ``fixed``: nothing in this value may be an expression (connections, settings). ``containers``:
    an object or list may be written as one expression (true for operations and triggers, whose
    parameters are resolved whole; a step kind's own builder may check its structure first).
    ``root``: the value under a step or trigger key, which must have its declared shape.
    """
    out: dict[str, Any] = {}
    for key, sub in schema.items():
        if str(key).startswith("x-"):
            continue
        if key == "properties" and isinstance(sub, Mapping):
            out[key] = {name: _clean(child) if name in _STRUCTURAL else
                        _value(child, fixed=fixed, containers=containers) for name, child in sub.items()}
        elif key in ("items", "additionalProperties") and isinstance(sub, Mapping):
            out[key] = _value(sub, fixed=fixed, containers=containers)
        else:
            out[key] = _clean(sub)
    types = _types(schema)
    if fixed:
        if (not types or "object" in types) and "additionalProperties" not in out:
            out["additionalProperties"] = _FIXED_ANY
        if (not types or "array" in types) and "items" not in out:
            out["items"] = _FIXED_ANY
    dynamic = not fixed and schema.get("x-dynamic") is not False
    strings = not types or "string" in types
    if root:
        if not dynamic and strings:
            out["not"] = _EXPRESSION
        return out
    alternatives: list[dict[str, Any]] = []
    if not strings or any(limit in schema for limit in _STRING_LIMITS):
        if strings:
            alternatives.append(_PLACEHOLDER)
        elif any(t in _SCALARS for t in types):
            alternatives.append(_WHOLE_PLACEHOLDER)
        if dynamic and (containers or strings or any(t in _SCALARS for t in types)):
            alternatives.append(_EXPRESSION)
    result: dict[str, Any] = out
    if alternatives:
        notes = {key: out.pop(key) for key in _ANNOTATIONS if key in out}
        result = {"anyOf": [out, *alternatives], **notes}
    if not dynamic and strings:
        result["not"] = _EXPRESSION
    return result


def _ignoring_case(pattern: str) -> str:
    """An anchored ``pattern`` of upper-case letters that also matches lower case and outer spaces.

    JSON Schema patterns have no flags; the on-error builder strips and upper-cases error types.
    """
    out, in_class = [], False
    for char in pattern.removeprefix("^").removesuffix("$"):
        if char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        out.append(f"[{char}{char.lower()}]" if char.isupper() and not in_class else char)
    return r"^\s*(?:" + "".join(out).replace("A-Z", "A-Za-z") + r")\s*$"


def _error_types(when: dict[str, Any]) -> dict[str, Any]:
    """``when`` of an on-error entry, with the error type rule the builder applies."""
    one = {"anyOf": [{"type": "string", "pattern": _ignoring_case(ERROR_TYPE_PATTERN)}, _PLACEHOLDER],
           "not": _EXPRESSION}
    return {**when, "anyOf": [one, {"type": "array", "items": one}]}


def _step_entry(name: str, params: Any, schema: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": "object",
        "properties": {name: params,
                       **{k: _value(v) for k, v in STEP_COMMON_KEYS.items()
                          if (k != "cache" or schema.get("x-read-only"))
                          and (k != "batch" or schema.get("x-batch") is not None)}},
        "required": [name],
        "additionalProperties": False,
    }
    if schema.get("description"):
        entry["description"] = schema["description"]
    return entry


def _parameters(schema: Mapping[str, Any]) -> Any:
    """An operation's or trigger's parameters: resolved whole; no value at all is no parameters."""
    params = _value(parameters_schema(schema), root=True)
    if not schema.get("required") and params.get("type") == "object":
        params["type"] = ["object", "null"]
    return params


def _steps_with_refs(schema: Any) -> Any:
    """Point every nested ``steps``/``otherwise`` list of a step kind at the step definitions."""
    if isinstance(schema, dict):
        out = {}
        for key, value in schema.items():
            if key in ("steps", "otherwise") and isinstance(value, dict) and value.get("type") == "array":
                out[key] = {**value, "items": {"$ref": "#/$defs/step"}}
            else:
                out[key] = _steps_with_refs(value)
        return out
    if isinstance(schema, list):
        return [_steps_with_refs(v) for v in schema]
    return schema


def _connections(vocabulary: Vocabulary) -> list[dict[str, Any]]:
    """One entry per connector; a connection's values are resolved and fixed at load time."""
    out = []
    for connector in sorted(vocabulary.connector_names()):
        schema = _value(vocabulary.connection_schema(connector) or
                        {"type": "object", "properties": {}, "additionalProperties": False},
                        fixed=True, root=True)
        properties = {"connector": {"const": connector, "description": f"The {connector} connector"},
                      **(schema.get("properties") or {})}
        entry: dict[str, Any] = {"type": "object", "properties": properties, "required":
                                 ["connector", *(schema.get("required") or [])],
                                 "additionalProperties": schema.get("additionalProperties", _FIXED_ANY)}
        if schema.get("description"):
            entry["description"] = schema["description"]
        out.append(entry)
    # A connector named by a placeholder is only known once the properties are: any fixed values.
    out.append({"type": "object", "description": "A connection whose connector is a ${...} placeholder",
                "properties": {"connector": {"type": "string", "pattern": _PLACEHOLDER_PATTERN}},
                "required": ["connector"], "additionalProperties": _FIXED_ANY})
    return out


def flow_json_schema(vocabulary: Vocabulary) -> dict[str, Any]:
    """A draft 2020-12 JSON Schema for flow files and config files of this vocabulary."""
    steps: list[dict[str, Any]] = []
    for name in vocabulary.step_kind_names():
        kind = vocabulary.step_kind(name)
        if kind is not None:
            params = _steps_with_refs(_value(kind.schema, containers=False, root=True))
            steps.append(_step_entry(name, params, kind.schema))
    for name in sorted(vocabulary.operation_names()):
        schema = vocabulary.operation_schema(name)
        if schema is not None:
            steps.append(_step_entry(name, _parameters(schema), schema))
    triggers: list[dict[str, Any]] = []
    for name in sorted(vocabulary.source_names()):
        schema = vocabulary.source_schema(name)
        if schema is not None:
            triggers.append({"type": "object", "properties": {name: _parameters(schema)}, "required": [name],
                             "additionalProperties": False, "description": schema.get("description", "")})

    flow_keys = {k: _clean(v) if k in _STRUCTURAL else _value(v) for k, v in FLOW_KEYS.items()}
    flow_keys["trigger"] = {"$ref": "#/$defs/trigger"}
    flow_keys["steps"] = {**flow_keys["steps"], "minItems": 1, "items": {"$ref": "#/$defs/step"}}
    handler = _steps_with_refs(_value(ON_ERROR_SCHEMA, root=True))
    handler["properties"]["when"] = _error_types(handler["properties"]["when"])
    # The builder's rule: a fallback payload only with 'then: continue'.
    handler["if"] = {"required": ["payload"]}
    handler["then"] = {"required": ["then"], "properties": {"then": {"anyOf": [{"const": "continue"}, _PLACEHOLDER]}}}
    flow_keys["on-error"] = {**flow_keys["on-error"], "items": handler}
    return {
        "$schema": _DRAFT,
        "$id": "https://splice.dev/schemas/flow.json",
        "title": "Splice flow or config file",
        "anyOf": [{"$ref": "#/$defs/flowFile"}, {"$ref": "#/$defs/configFile"}],
        "$defs": {
            "flowFile": {"type": "object", "description": "A flow: a trigger, steps and error handlers",
                         "properties": flow_keys, "required": ["flow", "steps"], "additionalProperties": False},
            "configFile": {
                "type": "object",
                "description": "Connections and settings of the project",
                "properties": {
                    "connections": {"type": "object", "description": "Named connections",
                                    "additionalProperties": {"$ref": "#/$defs/connection"}},
                    "settings": _value(SETTINGS_SCHEMA, fixed=True, root=True),
                },
                "anyOf": [{"required": ["connections"]}, {"required": ["settings"]}],
                "additionalProperties": False,
            },
            "step": {"oneOf": steps},
            "trigger": {"oneOf": triggers} if triggers else {"type": "object"},
            "connection": {"oneOf": _connections(vocabulary)},
            "expression": {"type": "string", "pattern": _EXPRESSION_PATTERN,
                           "description": "A #[ JSONata ] expression, evaluated for each message"},
            "placeholder": {"type": "string", "pattern": _PLACEHOLDER_PATTERN,
                            "description": "Text with a ${property} placeholder, resolved at load time"},
            "wholePlaceholder": {"type": "string", "pattern": _WHOLE_PLACEHOLDER_PATTERN,
                                 "description": "A ${property} placeholder, resolved at load time"},
            "fixedValue": {"not": _EXPRESSION, "items": _FIXED_ANY, "additionalProperties": _FIXED_ANY,
                           "description": "Any value fixed at load time: no #[ ] expression in it"},
        },
    }
