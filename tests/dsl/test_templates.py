"""The template grammar (``${}`` / ``#[ ]`` in strings) and rendering per message."""

from __future__ import annotations

from decimal import Decimal

import pytest

from dsl import EmptyVocabulary, FlowErrors, Template, is_static, load_flow_text, prepare_value, render
from dsl.expressions import ExpressionEvaluationError, compile_expression
from dsl.source import SourceSpan
from dsl.templates import ExpressionPart, PlaceholderPart, TemplateSyntaxError, format_value, parse_template


@pytest.mark.parametrize(("text", "sources"), [
    ("#[ a[0] ]", [" a[0] "]),
    ('#[ a[b["]"]] ]', [' a[b["]"]] ']),
    ("#[ 'x]' & \"y]\" ]", [" 'x]' & \"y]\" "]),
    ('#[ "a\\"]" ]', [' "a\\"]" ']),
    ("#[ `odd]name` ]", [" `odd]name` "]),
    ("#[ a /* ] */ ]", [" a /* ] */ "]),
    ("#[ {'k': [1, [2]]} ]", [" {'k': [1, [2]]} "]),
    ("#[a] and #[b]", ["a", "b"]),
])
def test_the_real_closing_bracket_is_found(text: str, sources: list[str]) -> None:
    """Brackets, quotes with escapes, quoted names and comments inside #[ ] do not end it."""
    parts = parse_template(text)
    assert [p.source for p in parts if isinstance(p, ExpressionPart)] == sources


def test_literal_text_and_escapes() -> None:
    r"""``\#[`` and ``$${`` are literal; lone ``#``, ``$`` and ``\`` are plain text."""
    assert parse_template("\\#[ not ] and $${x} cost $5 #1 a\\b") == ["#[ not ] and ${x} cost $5 #1 a\\b"]


def test_placeholders_are_parts() -> None:
    """A placeholder keeps its body and offset."""
    assert parse_template("x ${a.b:c} y") == ["x ", PlaceholderPart("a.b:c", 2), " y"]


@pytest.mark.parametrize(("text", "offset", "expected"), [
    ("ok #[ payload.x", 3, "']' to close '#['"),
    ("#[ a[1 ", 0, "']' to close '#['"),
    ("x ${abc", 2, "'}' to close '${'"),
])
def test_unterminated_constructs_point_at_their_opening(text: str, offset: int, expected: str) -> None:
    """The error is at the ``#[`` or ``${`` that was never closed."""
    with pytest.raises(TemplateSyntaxError) as info:
        parse_template(text)
    assert (info.value.offset, info.value.expected) == (offset, expected)


def test_unterminated_expression_in_a_flow_file() -> None:
    """Inside YAML the position is the file's line and column of the ``#[``."""
    text = "flow: a\nsteps:\n  - log: \"done #[ payload.x \"\n"
    with pytest.raises(FlowErrors) as info:
        load_flow_text(text, file="f.yaml", vocabulary=EmptyVocabulary(), environ={})
    assert str(info.value) == "f.yaml:3:16: unterminated expression, expected ']' to close '#['"


def test_error_in_block_scalar_is_on_the_right_line() -> None:
    """A JSONata error on the third line of a ``|`` block is reported on that line of the file."""
    text = "flow: a\nsteps:\n  - log: |\n      first\n      #[ payload.x +\n       ]\n"
    with pytest.raises(FlowErrors) as info:
        load_flow_text(text, file="f.yaml", vocabulary=EmptyVocabulary(), environ={})
    assert str(info.value).startswith("f.yaml:5:")
    assert "invalid JSONata" in str(info.value)


def _template(text: str) -> Template:
    flow = load_flow_text(f"flow: a\nsteps:\n  - set-variable: {{ name: v, value: {text!r} }}\n",
                          vocabulary=EmptyVocabulary(), environ={})
    value = flow.steps[0].value
    assert isinstance(value, Template)
    return value


def test_single_expression_keeps_its_json_type() -> None:
    """``#[ ... ]`` alone renders to the value itself: numbers, objects, null."""
    assert render(_template("#[ payload.n * 2 ]"), payload={"n": 21}) == 42
    assert render(_template("#[ payload.o ]"), payload={"o": {"a": [1]}}) == {"a": [1]}
    assert render(_template("#[ payload.missing ]"), payload={}) is None


def test_mixed_template_is_a_string() -> None:
    """Text around an expression makes a string; missing values read as empty, numbers as JSONata does."""
    template = _template("n=#[payload.n] s=#[payload.missing] f=#[0.1 + 0.2] b=#[true] o=#[payload.o]")
    assert render(template, payload={"n": 3, "o": {"a": 1}}) == 'n=3 s= f=0.3 b=true o={"a":1}'


def test_templates_see_payload_attributes_and_vars() -> None:
    """Both the input document and the ``$payload``/``$vars``/``$attributes`` bindings work."""
    template = _template("#[ payload.a & vars.trigger.Id & attributes.h & $payload.a & $vars.x & $attributes.h ]")
    assert render(template, payload={"a": "A"}, vars={"trigger": {"Id": "1"}, "x": "X"},
                  attributes={"h": "H"}) == "A1HAXH"


def test_render_walks_only_dynamic_containers() -> None:
    """Static subtrees are returned as they are; dynamic ones are rendered in new containers."""
    static = {"a": [1, 2], "b": {"c": "d"}}
    tree = prepare_value({"static": static, "dyn": [_template("#[ payload ]"), "x"]})
    assert is_static(static) and not is_static(tree)
    out = render(tree, payload=5)
    assert out == {"static": static, "dyn": [5, "x"]}
    assert out["static"] is static
    assert render(static, payload=1) is static


def test_evaluation_errors_carry_code_and_position() -> None:
    """A failing expression raises ExpressionEvaluationError with the JSONata code and the span."""
    template = _template("#[ payload.a + 1 ]")
    with pytest.raises(ExpressionEvaluationError) as info:
        render(template, payload={"a": "text"})
    assert info.value.code == "T2001"
    assert info.value.span is not None and info.value.span.line == 3


@pytest.mark.parametrize(("value", "text"), [(None, ""), (3, "3"), (3.0, "3"), (0.1 + 0.2, "0.3"),
                                             (1e21, "1e+21"), (True, "true"), ([1, "a"], '[1,"a"]'),
                                             (Decimal("1200.50"), "1200.50"),
                                             ({"TotalAmt": Decimal("99.95"), "n": Decimal("2")},
                                              '{"TotalAmt":99.95,"n":2}')])
def test_format_value_matches_jsonata_string(value: object, text: str) -> None:
    """Interpolated values read like JSONata's ``$string``."""
    assert format_value(value) == text


def test_expression_span_points_inside_the_scalar() -> None:
    """The compiled expression knows where its source starts."""
    expression = compile_expression("payload", SourceSpan("f.yaml", 4, 10), engine="jsonata-python")
    assert str(expression.span) == "f.yaml:4:10"
