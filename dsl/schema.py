"""The JSON Schema editors use for completion and checks, generated from the installed vocabulary.

One schema covers both kinds of project file (``anyOf`` a flow file and a config file). Every
step kind, operation step, trigger and connection comes from the vocabulary (the language's own step
kinds and the ``schedule`` trigger are registered there like any plugin's), so installing
a connector extends editor completion without any change here. The runtime's ``x-`` flags are
dropped: they mean nothing to an editor. A value that is not a string in the schema may still be
written as a ``${property}`` or (where ``x-dynamic`` allows) a ``#[ expression ]`` string, so
such values are accepted too and editors do not flag them.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from dsl.builtins import FLOW_KEYS, ON_ERROR_SCHEMA, SETTINGS_SCHEMA, STEP_COMMON_KEYS
from dsl.vocabulary import Vocabulary

__all__ = ["flow_json_schema"]

_DRAFT = "https://json-schema.org/draft/2020-12/schema"


_EXPRESSION = {"type": "string", "pattern": r"^\s*(\$\{|#\[)"}
_PLACEHOLDER = {"type": "string", "pattern": r"^\s*\$\{[^}]*\}\s*$"}
#: Keys of the language's own structure: never a placeholder or an expression.
_STRUCTURAL = frozenset({"steps", "otherwise", "on-error", "trigger", "retry", "telemetry", "server"})


def _clean(schema: Any) -> Any:
    """A copy without ``x-`` keys, where non-string values also accept ``${}`` / ``#[ ]`` strings."""
    if isinstance(schema, Mapping):
        out = {}
        for key, value in schema.items():
            if str(key).startswith("x-"):
                continue
            if key == "properties" and isinstance(value, Mapping):
                out[key] = {name: _clean(sub) if name in _STRUCTURAL else _value(sub)
                            for name, sub in value.items()}
            elif key == "items" and isinstance(value, Mapping):
                out[key] = _value(value)
            else:
                out[key] = _clean(value)
        return out
    if isinstance(schema, list | tuple):
        return [_clean(v) for v in schema]
    return copy.copy(schema)


def _value(schema: Mapping[str, Any]) -> Any:
    """A parameter's schema as an editor should check it."""
    cleaned = _clean(schema)
    wanted = schema.get("type")
    types = [wanted] if isinstance(wanted, str) else list(wanted or [])
    if not types or "string" in types:
        return cleaned
    description = cleaned.pop("description", None)
    out: dict[str, Any] = {"anyOf": [cleaned, _PLACEHOLDER if schema.get("x-dynamic") is False else _EXPRESSION]}
    if description:
        out["description"] = description
    return out


def _step_entry(name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": "object",
        "properties": {name: _clean(schema),
                       **_clean({k: v for k, v in STEP_COMMON_KEYS.items()
                                 if k != "cache" or schema.get("x-read-only")})},
        "required": [name],
        "additionalProperties": False,
    }
    if schema.get("description"):
        entry["description"] = schema["description"]
    return entry


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


def flow_json_schema(vocabulary: Vocabulary) -> dict[str, Any]:
    """A draft 2020-12 JSON Schema for flow files and config files of this vocabulary."""
    steps: list[dict[str, Any]] = []
    for name in vocabulary.step_kind_names():
        kind = vocabulary.step_kind(name)
        if kind is not None:
            steps.append(_step_entry(name, _steps_with_refs(_clean(kind.schema))))
    for name in sorted(vocabulary.operation_names()):
        schema = vocabulary.operation_schema(name)
        if schema is not None:
            steps.append(_step_entry(name, schema))
    triggers: list[dict[str, Any]] = []
    for name in sorted(vocabulary.source_names()):
        schema = vocabulary.source_schema(name)
        if schema is not None:
            triggers.append({"type": "object", "properties": {name: _clean(schema)}, "required": [name],
                             "additionalProperties": False, "description": schema.get("description", "")})
    connections = []
    for connector in sorted(vocabulary.connector_names()):
        schema = _clean(vocabulary.connection_schema(connector) or {"type": "object", "properties": {}})
        properties = {"connector": {"const": connector, "description": f"The {connector} connector"},
                      **(schema.get("properties") or {})}
        entry: dict[str, Any] = {"type": "object", "properties": properties, "required":
                                 ["connector", *(schema.get("required") or [])], "additionalProperties": False}
        if schema.get("description"):
            entry["description"] = schema["description"]
        connections.append(entry)

    flow_keys = {k: _clean(v) if k in _STRUCTURAL else _value(v) for k, v in FLOW_KEYS.items()}
    flow_keys["trigger"] = {"$ref": "#/$defs/trigger"}
    flow_keys["steps"] = {**flow_keys["steps"], "minItems": 1, "items": {"$ref": "#/$defs/step"}}
    flow_keys["on-error"] = {**flow_keys["on-error"], "items": _steps_with_refs(_clean(ON_ERROR_SCHEMA))}
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
                    "settings": _clean(SETTINGS_SCHEMA),
                },
                "anyOf": [{"required": ["connections"]}, {"required": ["settings"]}],
                "additionalProperties": False,
            },
            "step": {"oneOf": steps},
            "trigger": {"oneOf": triggers} if triggers else {"type": "object"},
            "connection": {"oneOf": connections} if connections else {"type": "object"},
        },
    }
