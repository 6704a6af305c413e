"""``cache:`` on a step: only reading operations, never streamed, a duration."""

from __future__ import annotations

from typing import Any

import pytest

from dsl import FlowErrors, load_flow_text


@pytest.fixture
def reading(vocabulary: Any) -> Any:
    """The fake vocabulary with demo.query declared read-only (as salesforce.query is)."""
    vocabulary.operations["demo.query"] = {**vocabulary.operations["demo.query"], "x-read-only": True}
    return vocabulary


def _errors(text: str, vocabulary: Any) -> list[str]:
    with pytest.raises(FlowErrors) as info:
        load_flow_text(text, vocabulary=vocabulary, environ={})
    return [str(e) for e in info.value.errors]


def test_a_reading_operation_keeps_its_result_for_the_duration(reading: Any) -> None:
    flow = load_flow_text("flow: a\nsteps:\n  - demo.query: { query: x }\n    cache: 10m\n"
                          "  - demo.query: { query: y }\n",
                          vocabulary=reading, environ={})
    assert [step.cache for step in flow.steps] == [600.0, None]
    assert "cache" not in flow.steps[0].params


def test_an_operation_that_writes_cannot_be_cached(reading: Any) -> None:
    errors = _errors("flow: a\nsteps:\n  - demo.echo: { message: hi }\n    cache: 1m\n", reading)
    assert len(errors) == 1
    assert ":4:5: 'demo.echo' changes data, so its result cannot be cached" in errors[0]


def test_built_in_steps_and_streams_cannot_be_cached(reading: Any) -> None:
    reading.operations["demo.query"]["properties"] = {
        **reading.operations["demo.query"]["properties"], "stream": {"type": "boolean"}}
    errors = _errors("flow: a\nsteps:\n  - transform: payload\n    cache: 1m\n"
                     "  - demo.query: { query: x, stream: true }\n    cache: 1m\n", reading)
    assert [e.split(": ", 1)[1] for e in errors] == [
        "'transform' cannot be cached, expected 'cache' on a connector operation that only reads, "
        "such as a query",
        "a streamed result cannot be cached, expected 'stream: false', or no 'cache'"]
    assert ":4:5:" in errors[0] and ":6:5:" in errors[1]


def test_the_duration_is_checked(reading: Any) -> None:
    errors = _errors("flow: a\nsteps:\n  - demo.query: { query: x }\n    cache: soon\n", reading)
    assert len(errors) == 1 and ":4:12:" in errors[0]
    assert errors[0].endswith("invalid value 'soon' for 'cache', expected a duration: 250ms, 30s, "
                              "5m, 1h, 1d, or a number of seconds")


def test_the_editor_schema_offers_cache_only_where_it_is_allowed(reading: Any) -> None:
    from dsl import flow_json_schema

    entries = flow_json_schema(reading)["$defs"]["step"]["oneOf"]
    keys = {name: set(e["properties"]) for e in entries for name in e["required"]}
    assert "cache" in keys["demo.query"]
    assert "cache" not in keys["demo.echo"] and "cache" not in keys["transform"]


def test_every_duration_reads_the_same_way(reading: Any) -> None:
    """One duration schema: a step's cache, a retry delay and a duration parameter all accept
    spaces around the number and unit, and all reject a non-duration with the same words."""
    from dsl.builtins import DURATION

    reading.operations["demo.query"]["properties"]["wait"] = {**DURATION, "description": "How long"}
    flow = load_flow_text("flow: a\nsteps:\n  - demo.query: { query: x, wait: ' 5 s ' }\n    cache: ' 10 m '\n"
                          "on-error:\n  - retry: { initial-delay: ' 250ms ' }\n",
                          vocabulary=reading, environ={})
    assert flow.steps[0].cache == 600.0 and flow.steps[0].params["wait"] == " 5 s "
    assert flow.on_error[0].retry is not None and flow.on_error[0].retry.initial_delay == 0.25
    errors = _errors("flow: a\nsteps:\n  - demo.query: { query: x, wait: 5 parsecs }\n    cache: 1 eon\n"
                     "on-error:\n  - retry: { initial-delay: 2 fortnights }\n", reading)
    expected = "expected a duration: 250ms, 30s, 5m, 1h, 1d, or a number of seconds"
    assert len(errors) == 3 and all(e.endswith(expected) for e in errors), errors
