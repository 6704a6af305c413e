"""The editor JSON Schema is generated from the vocabulary."""

from __future__ import annotations

import json

import jsonschema

from dsl import flow_json_schema


def _by_name(entries: list[dict], name: str) -> dict:
    return next(e for e in entries if name in e["properties"])


def test_operation_steps_come_from_the_vocabulary(vocabulary) -> None:
    """Each operation is a oneOf entry with its parameters, types, descriptions, label and target."""
    schema = json.loads(json.dumps(flow_json_schema(vocabulary)))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    echo = _by_name(schema["$defs"]["step"]["oneOf"], "demo.echo")
    assert echo["required"] == ["demo.echo"] and echo["additionalProperties"] is False
    params = echo["properties"]["demo.echo"]
    assert params["properties"]["message"] == {"type": "string", "description": "What to echo"}
    count = params["properties"]["count"]
    assert count["description"] == "How many times"
    assert count["anyOf"][0] == {"type": "integer"}
    accepts = jsonschema.Draft202012Validator({**schema, **count}).is_valid
    assert accepts("${n}") and accepts("#[ payload.n ]") and not accepts("many")  # resolved / run later
    assert params["required"] == ["message"]
    assert set(echo["properties"]) == {"demo.echo", "label", "target"}
    assert "x-dynamic" not in json.dumps(schema)


def test_builtin_steps_triggers_and_nested_steps(vocabulary) -> None:
    """Built-ins are there, and nested step lists point back at the step definition."""
    schema = flow_json_schema(vocabulary)
    steps = schema["$defs"]["step"]["oneOf"]
    for name in ("transform", "set-variable", "log", "choice", "foreach", "flow-ref"):
        assert _by_name(steps, name)
    foreach = _by_name(steps, "foreach")["properties"]["foreach"]
    assert foreach["properties"]["steps"]["items"] == {"$ref": "#/$defs/step"}
    triggers = schema["$defs"]["trigger"]["oneOf"]
    interval = _by_name(triggers, "demo.ticks")["properties"]["demo.ticks"]["properties"]["interval"]
    assert interval["anyOf"][0] == {"type": "integer"}
    assert _by_name(triggers, "http.listener")["properties"]["http.listener"]["required"] == ["path"]
    schedule = _by_name(triggers, "schedule")["properties"]["schedule"]["properties"]
    assert schedule["catch-up"]["anyOf"][0] == {"type": "boolean"} and schedule["catch-up"]["default"] is False
    assert "missed" in schedule["catch-up"]["description"]
    flow_file = schema["$defs"]["flowFile"]
    assert flow_file["required"] == ["flow", "steps"]
    assert flow_file["properties"]["steps"]["items"] == {"$ref": "#/$defs/step"}


def test_connections_are_keyed_by_connector(vocabulary) -> None:
    """A connection entry fixes its connector and lists that connector's settings."""
    schema = flow_json_schema(vocabulary)
    assert schema["anyOf"] == [{"$ref": "#/$defs/flowFile"}, {"$ref": "#/$defs/configFile"}]
    connection = schema["$defs"]["connection"]["oneOf"][0]
    assert connection["properties"]["connector"] == {"const": "demo", "description": "The demo connector"}
    assert connection["required"] == ["connector", "url"]
    password = connection["properties"]["password"]
    assert password["type"] == "string" and password["not"] == {"$ref": "#/$defs/expression"}  # fixed at load
    settings = schema["$defs"]["configFile"]["properties"]["settings"]
    assert settings["properties"]["jsonata-engine"]["anyOf"][0]["enum"] == ["auto", "jsonata-python", "jsonatapy"]
