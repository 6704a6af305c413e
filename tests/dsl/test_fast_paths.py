"""Shortcuts around the engines give exactly what the engines give, and skip needless work."""

from __future__ import annotations

from typing import Any

import pytest

from dsl.expressions import compile_expression, get_engine
from dsl.model import Template
from dsl.source import SourceSpan
from dsl.templates import render, render_template

SPAN = SourceSpan("f.yaml", 1, 1)
CONTEXT: dict[str, Any] = {
    "payload": {"Id": "006", "Account": {"Name": "O'Brien"}, "lines": [{"n": 1}, {"n": 2}],
                "tags": ["a"], "none": None, "empty": []},
    "attributes": {"method": "POST"},
    "vars": {"trigger": {"Id": "006"}, "total": 12.5},
}
PATHS = ["payload", "payload.Id", "payload.Account.Name", "payload.Account.Missing",
         "payload.lines", "payload.lines.n", "payload.tags", "payload.none", "payload.empty",
         "payload.none.deeper", "vars.trigger.Id", "vars.total", "attributes.method", "true",
         "null", "nothing.at.all", " payload . Id "]


@pytest.mark.parametrize("engine", ["jsonata-python", "jsonatapy"])
@pytest.mark.parametrize("source", PATHS)
def test_plain_paths_match_the_engine(engine: str, source: str) -> None:
    fast = compile_expression(source, SPAN, engine=engine).evaluate(CONTEXT, CONTEXT)
    slow = get_engine(engine).compile(source).evaluate(CONTEXT, dict(CONTEXT))
    assert fast == slow


class Unconvertible:
    """No engine can turn this into a JSON value: handing it over would fail."""


@pytest.mark.parametrize("engine", ["jsonata-python", "jsonatapy"])
def test_unreferenced_context_is_not_handed_to_the_engine(engine: str) -> None:
    expression = compile_expression("payload.a & '-' & $string(payload.b)", SPAN, engine=engine)
    context = {"payload": {"a": "x", "b": 2}, "attributes": {}, "vars": {"big": Unconvertible()}}
    assert expression.context_fields == frozenset({"payload"})
    rendered = render_template(Template((expression,), SPAN, "#[...]"), context)
    assert rendered == "x-2"


@pytest.mark.parametrize("engine", ["jsonata-python", "jsonatapy"])
def test_referenced_bindings_still_arrive(engine: str) -> None:
    expression = compile_expression("$vars.total * 2", SPAN, engine=engine)
    assert expression.evaluate({"x": 1}, {"vars": {"total": 4}, "payload": Unconvertible()}) == 8


def test_whole_input_readers_see_everything() -> None:
    expression = compile_expression("$keys($)", SPAN, engine="jsonata-python")
    assert expression.context_fields is None
    assert sorted(render_template_single(expression)) == ["attributes", "payload", "vars"]


def render_template_single(expression: Any) -> Any:
    return render(Template((expression,), SPAN, "#[$keys($)]"), payload=1, attributes={}, vars={})
