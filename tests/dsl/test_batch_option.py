"""``batch:`` of a flow and of an operation step: where it applies, what it may say, positioned errors."""

from __future__ import annotations

from typing import Any

import pytest

from dsl import FlowErrors, load_flow_text
from dsl.model import BatchPolicy


@pytest.fixture
def batching(vocabulary: Any) -> Any:
    """The fake vocabulary with demo.echo given a batch form of at most 25 calls."""
    vocabulary.operations["demo.echo"] = {**vocabulary.operations["demo.echo"], "x-batch": 25}
    return vocabulary


def _errors(text: str, vocabulary: Any) -> list[str]:
    with pytest.raises(FlowErrors) as info:
        load_flow_text(text, vocabulary=vocabulary, environ={})
    return [str(e) for e in info.value.errors]


def test_the_flow_batch_applies_to_operations_with_a_batch_form(batching: Any) -> None:
    flow = load_flow_text(
        "flow: a\nmax-concurrency: 40\nbatch: { size: 20, within: 250ms }\nsteps:\n"
        "  - demo.echo: { message: hi }\n"
        "  - demo.query: { query: x }\n"
        "  - demo.echo: { message: hi }\n    batch: false\n"
        "  - demo.echo: { message: hi }\n    batch: { size: 10 }\n"
        "  - demo.echo: { message: hi }\n    batch: true\n",
        vocabulary=batching, environ={})
    assert flow.batch == BatchPolicy(size=20, within=0.25)
    assert [getattr(step, "batch", None) for step in flow.steps] == [
        BatchPolicy(20, 0.25), None, None, BatchPolicy(10, 0.25), BatchPolicy(20, 0.25)]
    assert all("batch" not in step.params for step in flow.steps)  # type: ignore[attr-defined]


def test_a_step_batches_on_its_own_with_the_defaults(batching: Any) -> None:
    flow = load_flow_text("flow: a\nmax-concurrency: 30\nsteps:\n  - demo.echo: { message: hi }\n"
                          "    batch: { within: 2s }\n  - demo.echo: { message: hi }\n",
                          vocabulary=batching, environ={})
    assert [getattr(step, "batch", None) for step in flow.steps] == [BatchPolicy(30, 2.0), None]


def test_nested_steps_follow_the_flow_batch(batching: Any) -> None:
    flow = load_flow_text("flow: a\nbatch: { size: 5 }\nsteps:\n  - foreach:\n      collection: '#[payload]'\n"
                          "      steps:\n        - demo.echo: { message: hi }\n",
                          vocabulary=batching, environ={})
    assert flow.steps[0].steps[0].batch == BatchPolicy(5, 0.5)  # type: ignore[attr-defined]


def test_size_and_within_are_checked_where_they_are_written(batching: Any) -> None:
    errors = _errors("flow: a\nbatch: { size: 0, within: soon }\nsteps:\n  - demo.echo: { message: hi }\n"
                     "    batch: { size: ten, wait: 1s }\n  - demo.echo: { message: hi }\n", batching)
    assert [e.split(": ", 1)[1] for e in errors] == [
        "'size' must be at least 1, got 0",
        "invalid value 'soon' for 'within', expected a duration: 250ms, 30s, 5m, 1h, 1d, or a number "
        "of seconds",
        "'size' must be an integer, got string",
        "unknown key 'wait' in 'batch' (did you mean 'within'?)",
    ]
    assert [e.split(": ", 1)[0].rsplit(":", 2)[1:] for e in errors] == [
        ["2", "16"], ["2", "27"], ["5", "20"], ["5", "25"]]


def test_a_step_without_a_batch_form_cannot_be_batched(batching: Any) -> None:
    errors = _errors("flow: a\nsteps:\n  - demo.query: { query: x }\n    batch: { size: 5 }\n"
                     "  - transform: payload\n    batch: false\n", batching)
    assert [e.split(": ", 1)[1] for e in errors] == [
        "'demo.query' has no batch form, so its calls cannot be batched, expected no 'batch' on this "
        "step (only operations with a batch form batch)",
        "'transform' cannot be batched, expected 'batch' on a connector operation that has a batch form",
    ]
    assert ":4:5:" in errors[0] and ":6:5:" in errors[1]


def test_a_batch_larger_than_max_concurrency_is_refused_once(batching: Any) -> None:
    errors = _errors("flow: a\nmax-concurrency: 8\nbatch: { size: 30 }\nsteps:\n"
                     "  - demo.echo: { message: hi }\n  - demo.echo: { message: again }\n"
                     "  - demo.echo: { message: hi }\n    batch: { size: 12 }\n", batching)
    assert [e.split(": ", 1)[1] for e in errors] == [
        "batches of 25 calls of 'demo.echo' can never fill: max-concurrency is 8, so at most 8 "
        "executions wait at once, expected a batch 'size' of at most 8, or a max-concurrency of at "
        "least 25",
        "batches of 12 calls of 'demo.echo' can never fill: max-concurrency is 8, so at most 8 "
        "executions wait at once, expected a batch 'size' of at most 8, or a max-concurrency of at "
        "least 12",
    ]
    assert ":3:1:" in errors[0] and ":8:5:" in errors[1]


def test_a_cached_step_is_not_batched(batching: Any) -> None:
    batching.operations["demo.query"] = {**batching.operations["demo.query"], "x-read-only": True,
                                         "x-batch": 10}
    flow = load_flow_text("flow: a\nbatch: { size: 5 }\nsteps:\n  - demo.query: { query: x }\n"
                          "    cache: 1m\n", vocabulary=batching, environ={})
    assert flow.steps[0].batch is None  # type: ignore[attr-defined]
    errors = _errors("flow: a\nsteps:\n  - demo.query: { query: x }\n    cache: 1m\n"
                     "    batch: { size: 5 }\n", batching)
    assert len(errors) == 1 and ":5:5: a cached step is not batched" in errors[0]


def test_the_editor_schema_offers_batch_only_where_it_is_allowed(batching: Any) -> None:
    from dsl import flow_json_schema

    schema = flow_json_schema(batching)
    entries = schema["$defs"]["step"]["oneOf"]
    keys = {name: set(e["properties"]) for e in entries for name in e["required"]}
    assert "batch" in keys["demo.echo"]
    assert "batch" not in keys["demo.query"] and "batch" not in keys["transform"]
    assert "batch" in schema["$defs"]["flowFile"]["properties"]
