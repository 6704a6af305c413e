"""JSONata compiled once, evaluated safely: errors, clocks, custom functions, threads."""

from __future__ import annotations

import gc
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dsl import FlowErrors, FlowSyntaxError, check_project, get_engine, load_flow_text
from dsl.expressions import ExpressionEvaluationError, compile_expression
from dsl.source import SourceSpan

ENGINES = ["jsonata-python", pytest.param("jsonatapy", marks=pytest.mark.skipif(
    not __import__("importlib").util.find_spec("jsonatapy"), reason="jsonatapy not installed"))]
SPAN = SourceSpan("f.yaml", 3, 10)


def test_engine_names() -> None:
    """Known names work; an unknown one lists the choices."""
    assert get_engine("jsonata-python").name == "jsonata-python"
    with pytest.raises(ValueError, match="auto, jsonata-python, jsonatapy"):
        get_engine("jq")


@pytest.mark.parametrize("engine", ENGINES)
def test_syntax_error_is_positioned(engine: str) -> None:
    """A JSONata syntax error names the line and column of the offending token."""
    with pytest.raises(FlowSyntaxError) as info:
        compile_expression("payload.a ]", SPAN, engine=engine)
    assert info.value.format() == "f.yaml:3:20: invalid JSONata: Syntax error: ] (S0201)"


def test_syntax_error_in_a_flow_file_points_into_the_expression(vocabulary) -> None:
    """Inside a quoted YAML scalar the column lands on the bad token."""
    text = 'flow: a\nsteps:\n  - demo.echo: { message: "#[ $sum(payload.x ]" }\n'
    with pytest.raises(FlowErrors) as info:
        load_flow_text(text, file="a.yaml", vocabulary=vocabulary, environ={})
    assert re.match(r"a\.yaml:3:\d+: invalid JSONata: ", str(info.value))
    assert int(str(info.value).split(":")[2]) >= 37


def test_syntax_error_in_a_jsonata_file(write, tmp_path, vocabulary) -> None:
    """Errors inside a .jsonata file are reported in that file, at its own line and column."""
    write("flows/t/fix.jsonata", "{\n  'a': payload.x,\n  'b': ]\n}\n")
    write("flows/a.yaml", "flow: a\nsteps:\n  - transform: t/fix.jsonata\n  - transform: t/none.jsonata\n")
    problems = [e.format() for e in check_project(".", vocabulary=vocabulary, environ={})]
    assert problems[0] == "flows/a.yaml:4:16: file not found: 't/none.jsonata', expected a .jsonata file, " \
                          "relative to the flow file"
    assert problems[1].startswith("flows/t/fix.jsonata:3:8: invalid JSONata")


def test_transform_file_is_loaded(write, tmp_path, vocabulary) -> None:
    """A transform file compiles once and transforms the payload; $payload and $vars are bound."""
    write("t.jsonata", "{ 'name': Name, 'again': $payload.Name, 'v': $vars.x }")
    flow = load_flow_text("flow: a\nsteps:\n  - transform: t.jsonata\n", vocabulary=vocabulary,
                          base_dir=tmp_path, environ={})
    step = flow.steps[0]
    assert step.file == tmp_path / "t.jsonata"
    assert step.expression.evaluate({"Name": "n"}, {"payload": {"Name": "n"}, "vars": {"x": 1}}) == \
        {"name": "n", "again": "n", "v": 1}


@pytest.mark.parametrize("engine", ENGINES)
def test_evaluation_errors_are_one_kind(engine: str) -> None:
    """Type errors carry the JSONata code; the span is the expression's."""
    expression = compile_expression("a + 1", SPAN, engine=engine)
    with pytest.raises(ExpressionEvaluationError) as info:
        expression.evaluate({"a": "x"})
    assert info.value.code == "T2001" and info.value.span == SPAN


@pytest.mark.parametrize("engine", ENGINES)
def test_python_errors_inside_functions_are_wrapped(engine: str) -> None:
    """A custom function that raises becomes an ExpressionEvaluationError, not a stray exception."""

    def boom(value: object) -> object:
        raise KeyError("nope")

    expression = compile_expression("$boom(1)", SPAN, engine=engine, functions={"boom": boom})
    with pytest.raises(ExpressionEvaluationError) as info:
        expression.evaluate({})
    assert info.value.span == SPAN


@pytest.mark.parametrize("engine", ENGINES)
def test_custom_functions_are_callable(engine: str) -> None:
    """Vocabulary functions are available as $name in both engines."""
    expression = compile_expression("$double(payload.n) + 1", SPAN, engine=engine,
                                    functions={"double": lambda x: x * 2})
    assert expression.evaluate({"payload": {"n": 4}}) == 9


@pytest.mark.parametrize("engine", ENGINES)
def test_now_is_read_per_evaluation(engine: str) -> None:
    """``$now()`` and ``$millis()`` move between evaluations, and agree within one."""
    expression = compile_expression("[$now(), $millis(), $now() = $now()]", SPAN, engine=engine)
    first = expression.evaluate({})
    time.sleep(0.02)
    second = expression.evaluate({})
    assert first[0] != second[0] and second[1] - first[1] >= 15
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first[0])
    assert first[2] is True


@pytest.mark.parametrize("engine", ENGINES)
def test_now_with_a_picture(engine: str) -> None:
    """A picture string formats the evaluation's clock."""
    expression = compile_expression("$now('[Y0001]')", SPAN, engine=engine)
    assert expression.evaluate({}) == time.strftime("%Y", time.gmtime())


@pytest.mark.parametrize("engine", ENGINES)
def test_concurrent_evaluations_get_their_own_results(engine: str) -> None:
    """50 threads evaluating one compiled expression each see their own input and bindings."""
    expression = compile_expression(
        "($map([1..50], function($i) { $i * payload.n }) ~> $sum()) & '-' & $vars.id", SPAN, engine=engine)
    barrier = threading.Barrier(50)

    def run(n: int) -> str:
        barrier.wait()
        return expression.evaluate({"payload": {"n": n}}, {"vars": {"id": n}})

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(run, range(50)))
    assert results == [f"{1275 * n}-{n}" for n in range(50)]


@pytest.mark.parametrize("engine", ENGINES)
def test_expressions_move_between_threads(engine: str) -> None:
    """Compiled on one thread, evaluated on others, dropped anywhere: no cross-thread failure."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        expression = pool.submit(compile_expression, "payload.n + 1", SPAN, engine=engine).result()
        assert expression.evaluate({"payload": {"n": 1}}) == 2
        assert pool.submit(expression.evaluate, {"payload": {"n": 2}}).result() == 3
        del expression
        gc.collect()
        again = compile_expression("payload.n + 1", SPAN, engine=engine)
        assert pool.submit(again.evaluate, {"payload": {"n": 3}}).result() == 4
