"""The flow language's own words: its step kinds, ``on-error``, config files, as JSON Schema.

Plugins contribute operations and sources through the :class:`~dsl.vocabulary.Vocabulary`; the
shapes here belong to the language itself. The same schemas drive the checks in :mod:`dsl.build`
and the editor schema of :mod:`dsl.schema`, so the two never disagree. The step schemas reach both
through the vocabulary, as :class:`~dsl.kinds.StepKind` values (see :mod:`dsl.steps`).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BUILTIN_STEPS",
    "CONNECTION_KEYS",
    "DURATION",
    "DURATION_DESCRIPTION",
    "ERROR_TYPE_PATTERN",
    "FLOW_KEYS",
    "FLOW_NAME_PATTERN",
    "ON_ERROR_SCHEMA",
    "RETRY_SCHEMA",
    "SETTINGS_SCHEMA",
    "STEP_COMMON_KEYS",
    "VARIABLE_PATTERN",
]

FLOW_NAME_PATTERN = r"^[a-z0-9][a-z0-9\-_.]*$"
VARIABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
ERROR_TYPE_PATTERN = r"^(ANY|[A-Z][A-Z0-9_]*:(\*|[A-Z][A-Z0-9_]*))$"

DURATION_DESCRIPTION = "A duration: 250ms, 30s, 5m, 1h, 1d, or a number of seconds"
#: The value schema of every duration: ``250ms``, ``30s``, ``5m``, ``1h``, ``1d`` or a number of
#: seconds, spaces around the number and unit allowed (what :func:`dsl.values.parse_duration` reads).
#: It has no description, so each use keeps its own (a parameter's summary, a step's ``cache``); a
#: bad value says a duration is expected.
DURATION: dict[str, Any] = {
    "type": ["string", "number"],
    "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$",
    "x-expected": "a duration: 250ms, 30s, 5m, 1h, 1d, or a number of seconds",
}

_VARIABLE = {"type": "string", "pattern": VARIABLE_PATTERN, "x-dynamic": False}

#: Keys every step may have beside its step key.
STEP_COMMON_KEYS: dict[str, dict[str, Any]] = {
    "label": {"type": "string", "description": "A name for the step in logs, traces and errors",
              "x-dynamic": False},
    "target": {**_VARIABLE, "description": "Store the step's result in vars.<target>; the payload is unchanged"},
    "cache": {**DURATION, "x-dynamic": False,
              "description": "Reuse the result of this reading operation for the same parameters "
                             "for this long (e.g. 10m)"},
}

_STEPS_REF = {"type": "array", "description": "Steps, in order", "items": {"type": "object"}}

#: The language's step kinds: the schema of the value under the step key.
BUILTIN_STEPS: dict[str, dict[str, Any]] = {
    "transform": {
        "description": "Replace the payload by a JSONata transform: inline, or a .jsonata file path",
        "type": ["string", "object"],
        "properties": {
            "expression": {"type": "string", "description": "Inline JSONata", "x-dynamic": False},
            "file": {"type": "string", "description": "A .jsonata file, relative to the flow file",
                     "x-dynamic": False},
            "target": STEP_COMMON_KEYS["target"],
        },
        "additionalProperties": False,
    },
    "set-variable": {
        "description": "Store a value in vars.<name>; the payload is unchanged",
        "type": "object",
        "properties": {"name": {**_VARIABLE, "description": "Variable name"},
                       "value": {"description": "The value (may hold #[ ] expressions)"}},
        "required": ["name", "value"],
        "additionalProperties": False,
    },
    "log": {
        "description": "Write a message to the log; the payload is unchanged",
        "type": ["string", "object"],
        "properties": {"message": {"description": "The message (may hold #[ ] expressions)"},
                       "level": {"type": "string", "enum": ["debug", "info", "warning", "error"],
                                 "default": "info", "x-dynamic": False}},
        "required": ["message"],
        "additionalProperties": False,
    },
    "flow-ref": {"description": "Run another flow's steps with the current message", "type": "string",
                 "x-dynamic": False},
    "choice": {
        "description": "Run the steps of the first 'when' whose condition holds, else 'otherwise'",
        "type": "array",
        "items": {"type": "object",
                  "properties": {"when": {"type": ["string", "boolean"],
                                          "description": "A condition: #[ JSONata ]"},
                                 "steps": _STEPS_REF, "otherwise": _STEPS_REF},
                  "additionalProperties": False},
    },
    "foreach": {
        "description": "Run steps once per item of a collection",
        "type": "object",
        "properties": {
            "collection": {"description": "The items: #[ JSONata ]"},
            "concurrency": {"type": "integer", "minimum": 1, "default": 1, "x-dynamic": False,
                            "description": "How many items run at once"},
            "item-var": {**_VARIABLE, "default": "item", "description": "Variable holding the item"},
            "index-var": {**_VARIABLE, "default": "index", "description": "Variable holding the index"},
            "errors-var": {**_VARIABLE, "default": "foreachErrors",
                           "description": "Variable collecting failed items (with on-item-error: continue)"},
            "on-item-error": {"type": "string", "enum": ["fail", "continue"], "default": "fail",
                              "x-dynamic": False},
            "collect": {"type": "boolean", "default": True, "x-dynamic": False,
                        "description": "Return the list of item results (false: only counts)"},
            "batch-size": {"type": "integer", "minimum": 1, "default": 1, "x-dynamic": False,
                           "description": "Hand the steps lists of up to this many consecutive items "
                                          "(1: one item at a time)"},
            "steps": _STEPS_REF,
        },
        "required": ["collection", "steps"],
        "additionalProperties": False,
    },
}


def _fixed(properties: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mark properties as needed at load time: no ``#[ ]`` in them."""
    return {name: {**schema, "x-dynamic": False} for name, schema in properties.items()}


RETRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Try the failed step again before acting",
    "properties": _fixed({
        "attempts": {"type": "integer", "minimum": 0, "default": 3, "description": "Retries after the first try"},
        "backoff": {"type": "string", "enum": ["exponential", "fixed"], "default": "exponential"},
        "initial-delay": {**DURATION, "description": DURATION_DESCRIPTION, "default": "1s"},
        "max-delay": {**DURATION, "description": DURATION_DESCRIPTION, "default": "60s"},
        "multiplier": {"type": "number", "minimum": 1, "default": 2},
        "jitter": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.2},
    }),
    "additionalProperties": False,
}

ON_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "when": {"type": ["string", "array"], "items": {"type": "string", "x-dynamic": False}, "default": "ANY",
                 "description": "Error types: NS:KIND, NS:* or ANY (or a list of them)", "x-dynamic": False},
        "then": {"type": "string", "enum": ["continue", "propagate", "dead-letter"], "default": "propagate",
                 "x-dynamic": False},
        "retry": RETRY_SCHEMA,
        "steps": _STEPS_REF,
        "payload": {"description": "With then: continue, the payload the flow ends with"},
    },
    "additionalProperties": False,
}

FLOW_KEYS: dict[str, dict[str, Any]] = {
    **_fixed({
        "flow": {"type": "string", "pattern": FLOW_NAME_PATTERN,
                 "description": "The flow's name, unique in the project"},
        "description": {"type": "string"},
        "max-concurrency": {"type": "integer", "minimum": 1, "default": 8,
                            "description": "Events processed at once"},
    }),
    "trigger": {"type": "object", "description": "What starts the flow"},
    "steps": {"type": "array", "description": "Steps, in order"},
    "on-error": {"type": "array", "items": ON_ERROR_SCHEMA, "description": "Error handlers, first match wins"},
    "record-ids": {"type": "array", "items": {"type": "string"}, "maxItems": 16,
                   "description": "Business ids an execution touched, kept in its history record and "
                                  "searchable, e.g. ['#[vars.trigger.Id]', '#[vars.invoice.Id]']"},
}

CONNECTION_KEYS = ("connector",)

SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "jsonata-engine": {"type": "string", "enum": ["auto", "jsonata-python", "jsonatapy"], "default": "auto"},
        "telemetry": {
            "type": "object",
            "properties": {"exporter": {"type": "string", "enum": ["none", "console", "otlp"], "default": "none"},
                           "endpoint": {"type": "string", "description": "OTLP endpoint URL"}},
            "additionalProperties": False,
        },
        "store": {"type": "string", "description": "sqlite:///path or postgresql://...",
                  "default": "sqlite:///.splice/store.db"},
        "server": {"type": "object", "description": "Settings of 'splice serve'"},
        "history": {
            "type": "object",
            "description": "Execution history kept in the store",
            "properties": {
                "enabled": {"type": "boolean", "default": True},
                "keep-data": {"type": "string", "enum": ["failures", "all", "none"], "default": "failures",
                              "description": "Whose inputs and outputs are kept (size-capped, redacted)"},
                "max-data-bytes": {"type": "integer", "minimum": 0, "default": 16384},
                "retention": {"type": "string", "default": "7d",
                              "description": "How long records are kept (a duration: 7d, 12h...)"},
                "max-per-flow": {"type": "integer", "minimum": 1, "default": 10000},
            },
            "additionalProperties": False,
        },
    },
}
