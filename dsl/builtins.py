"""The flow language's own words: its step kinds, ``on-error``, config files, as JSON Schema.

Plugins contribute operations and sources through the :class:`~dsl.vocabulary.Vocabulary`; the
shapes here belong to the language itself. The same schemas drive the checks in :mod:`dsl.build`
and the editor schema of :mod:`dsl.schema`, so the two never disagree. The step schemas reach both
through the vocabulary, as :class:`~dsl.kinds.StepKind` values (see :mod:`dsl.steps`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "ALERTS_SCHEMA",
    "ALERT_CONDITIONS",
    "BATCH_SCHEMA",
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
    "parameters_schema",
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

#: ``batch:`` of a flow: its operation steps that have a batch form gather the concurrent calls of
#: many executions and send them together, when ``size`` calls wait or the oldest waited ``within``.
BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "x-dynamic": False,
    "description": "Send the calls of operations that have a batch form together: up to 'size' "
                   "calls, or what waited 'within' (e.g. {size: 30, within: 500ms})",
    "properties": {
        "size": {"type": "integer", "minimum": 1, "default": 30, "x-dynamic": False,
                 "description": "The most calls in one batch (the operation's own limit still applies)"},
        "within": {**DURATION, "default": "500ms", "x-dynamic": False,
                   "description": "How long the oldest call of a batch waits for others"},
    },
    "additionalProperties": False,
}

#: Keys every step may have beside its step key.
STEP_COMMON_KEYS: dict[str, dict[str, Any]] = {
    "label": {"type": "string", "description": "A name for the step in logs, traces and errors",
              "x-dynamic": False},
    "target": {**_VARIABLE, "description": "Store the step's result in vars.<target>; the payload is unchanged"},
    "cache": {**DURATION, "x-dynamic": False,
              "description": "Reuse the result of this reading operation for the same parameters "
                             "for this long (e.g. 10m)"},
    "batch": {**BATCH_SCHEMA, "type": ["object", "boolean"],
              "description": "Batch this operation's calls ({size, within}; missing keys come from "
                             "the flow's 'batch'), or not (false)"},
}

_STEPS_REF = {"type": "array", "description": "Steps, in order", "items": {"type": "object"}}

#: The language's step kinds: the schema of the value under the step key.
BUILTIN_STEPS: dict[str, dict[str, Any]] = {
    "transform": {
        "description": "Replace the payload by a JSONata transform: inline, or a .jsonata file path",
        "type": ["string", "object"],
        "properties": {
            # JSONata itself, read at load time; one #[ ] around it is allowed and unwrapped, so it
            # is not marked x-dynamic: false (which would refuse that form in the editor schema).
            "expression": {"type": "string", "description": "Inline JSONata"},
            "file": {"type": "string", "description": "A .jsonata file, relative to the flow file",
                     "x-dynamic": False},
            "target": STEP_COMMON_KEYS["target"],
        },
        "additionalProperties": False,
        # Exactly one of 'expression' and 'file' (the builder reports it; this says it to editors).
        "anyOf": [{"required": ["expression"]}, {"required": ["file"]}],
        "not": {"type": "object", "required": ["expression", "file"]},
    },
    "set-variable": {
        "description": "Store a value in vars.<name>; the payload is unchanged",
        "type": "object",
        "x-dynamic": False,
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
        "x-dynamic": False,
        "items": {"type": "object",
                  "properties": {"when": {"type": ["string", "boolean"],
                                          "description": "A condition: #[ JSONata ]"},
                                 "steps": _STEPS_REF, "otherwise": _STEPS_REF},
                  "additionalProperties": False,
                  # A branch is 'when' with 'steps', or 'otherwise' alone (the builder reports it).
                  "oneOf": [{"required": ["when", "steps"]}, {"required": ["otherwise"]}]},
        # At least one 'when' branch (the builder reports it; this says it to editors).
        "minItems": 1,
        "contains": {"type": "object", "required": ["when"]},
    },
    "dry-run": {
        "description": "Run steps with their reads made and their writes previewed instead of made "
                       "(the list of writes goes to a variable)",
        "type": "object",
        "x-dynamic": False,
        "properties": {
            "when": {"type": ["string", "boolean"],
                     "description": "Preview only when this holds: #[ JSONata ] (default: always); "
                                    "otherwise the steps write as usual"},
            "writes-var": {**_VARIABLE, "default": "writes",
                           "description": "Variable receiving the writes not made, in order: "
                                          "{operation, action, connection, target, payload, flow, step}"},
            "steps": _STEPS_REF,
        },
        "required": ["steps"],
        "additionalProperties": False,
    },
    "foreach": {
        "description": "Run steps once per item of a collection",
        "type": "object",
        "x-dynamic": False,
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
    "batch": BATCH_SCHEMA,
    "trigger": {"type": "object", "description": "What starts the flow"},
    "steps": {"type": "array", "description": "Steps, in order"},
    "on-error": {"type": "array", "items": ON_ERROR_SCHEMA, "description": "Error handlers, first match wins"},
    "record-ids": {"type": "array", "items": {"type": "string"}, "maxItems": 16,
                   "description": "Business ids an execution touched, kept in its history record and "
                                  "searchable, e.g. ['#[vars.trigger.Id]', '#[vars.invoice.Id]']"},
}

CONNECTION_KEYS = ("connector",)

#: The kinds of alert rule (see runtime.alerts.conditions).
ALERT_CONDITIONS = ("dead-letter", "failure-rate", "trigger-lag", "trigger-down", "authentication",
                    "api-budget", "reconciliation-findings")

ALERTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Alert rules and where their notifications go (one when a condition starts, "
                   "one when it resolves)",
    "properties": {
        "interval": {**DURATION, "description": "How often the rules are evaluated", "default": "5s"},
        "channels": {
            "type": "object",
            "description": "Notification channels by name",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["webhook", "email", "log"],
                             "description": "webhook: POST {\"text\": ...} (a Slack incoming webhook "
                                            "accepts it); email: over SMTP; log: the splice.alerts logger"},
                    "url": {"type": "string", "description": "webhook: the URL (a secret: it carries a token)"},
                    "host": {"type": "string", "description": "email: the SMTP server"},
                    "port": {"type": "integer", "minimum": 1, "default": 25},
                    "starttls": {"type": "boolean", "default": False},
                    "ssl": {"type": "boolean", "default": False, "description": "email: SMTP over TLS"},
                    "username": {"type": "string"},
                    "password": {"type": "string", "description": "email: a secret (use ${secure::...})"},
                    "from": {"type": "string", "description": "email: the sender address"},
                    "to": {"type": ["string", "array"], "items": {"type": "string"},
                           "description": "email: the recipients"},
                    "timeout": {**DURATION, "description": DURATION_DESCRIPTION, "default": "10s"},
                },
                "required": ["type"],
                "additionalProperties": False,
            },
        },
        "rules": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "pattern": FLOW_NAME_PATTERN,
                             "description": "The rule's name, unique among the rules"},
                    "when": {"type": "string", "enum": list(ALERT_CONDITIONS),
                             "description": "dead-letter: a flow has dead letters; failure-rate: over "
                                            "threshold % of a flow's executions failed in window; "
                                            "trigger-lag: the newest handled change was older than "
                                            "over; trigger-down: a trigger has not run for 'for'; "
                                            "authentication: a connection cannot authenticate; "
                                            "api-budget: requests waited for the rate limit at least "
                                            "'for' in window; reconciliation-findings: the latest "
                                            "report of flow (default nightly-reconciliation) has "
                                            "more than threshold findings"},
                    "flow": {"type": "string", "description": "Only this flow (default: every flow; "
                                                              "reconciliation-findings: "
                                                              "nightly-reconciliation)"},
                    "connection": {"type": "string",
                                   "description": "Only this connection (default: every connection)"},
                    "threshold": {"type": "number", "minimum": 0,
                                  "description": "failure-rate: the percentage of failed executions; "
                                                 "reconciliation-findings: the number of findings"},
                    "min-executions": {"type": "integer", "minimum": 1, "default": 1,
                                       "description": "failure-rate: fewer executions in the window "
                                                      "never fire"},
                    "window": {**DURATION, "description": DURATION_DESCRIPTION, "default": "15m"},
                    "over": {**DURATION, "description": DURATION_DESCRIPTION, "default": "15m"},
                    "for": {**DURATION, "description": DURATION_DESCRIPTION, "default": "1m"},
                    "severity": {"type": "string", "enum": ["critical", "warning", "info"],
                                 "default": "warning"},
                    "cooldown": {**DURATION, "default": "10m",
                                 "description": "A condition that starts again this soon after its "
                                                "last notification is not notified again"},
                    "channels": {"type": "array", "items": {"type": "string"},
                                 "description": "Channel names (default: every channel)"},
                },
                "required": ["name", "when"],
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}

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
        "startup-checks": {
            "type": "array", "items": {"type": "string"},
            "description": "Flows run once before any trigger starts (serve, run); the first that "
                           "fails stops the start with its message"},
        "alerts": ALERTS_SCHEMA,
        "history": {
            "type": "object",
            "description": "Execution history kept in the store",
            "properties": {
                "enabled": {"type": "boolean", "default": True},
                "keep-data": {"type": "string", "enum": ["failures", "all", "none"], "default": "failures",
                              "description": "Whose inputs and outputs are kept (size-capped, redacted)"},
                "max-data-bytes": {"type": "integer", "minimum": 0, "default": 16384},
                "retention": {**DURATION, "default": "7d",
                              "description": "How long records are kept (a duration: 7d, 12h...)"},
                "max-per-flow": {"type": "integer", "minimum": 1, "default": 10000},
            },
            "additionalProperties": False,
        },
    },
}


def parameters_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """An operation's or trigger's parameter schema as the language reads the mapping itself.

    The mapping is needed when the flow loads (which parameters, which connection), so it cannot be
    one ``#[ ]`` expression; each of its values can, unless the parameter says otherwise.
    """
    return {**schema, "x-dynamic": False}
