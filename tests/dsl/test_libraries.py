"""JSONata libraries: ``lib/<name>.jsonata`` files whose functions transforms call as ``$name.f()``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from dsl import check_file, check_project, load_project
from dsl.model import SetVariableStep, Template, TransformStep

STATUS = """/* The payment status rule. */
{
  'status': function($balance, $total) {
    $balance <= 0 and $total > 0 ? 'Paid' : $balance < $total ? 'Partially Paid' : 'Unpaid'
  },
  'cents': function($x) { $round($number($x) * 100) }
}
"""

FLOWS = {
    "flows/a.yaml": "flow: a\nsteps:\n  - transform: ../transforms/status.jsonata\n",
    "flows/b.yaml": ("flow: b\nsteps:\n"
                     "  - transform: \"{ 'status': $payments.status($payload.Balance, $payload.Total) }\"\n"),
    "transforms/status.jsonata": ("(\n  $inv := $;\n  { 'status': $payments.status($inv.Balance, $inv.Total),\n"
                                  "    'cents': $payments.cents($inv.Total) }\n)\n"),
    "lib/payments.jsonata": STATUS,
}


def _transform(project: Any, flow: str) -> TransformStep:
    step = project.flows[flow].steps[0]
    assert isinstance(step, TransformStep)
    return step


@pytest.mark.parametrize("engine", ["jsonata-python", "jsonatapy"])
def test_one_library_serves_two_transforms(write, vocabulary, engine: str) -> None:
    """A file transform and an inline one call the same library function, alike in both engines."""
    for path, text in FLOWS.items():
        write(path, text)
    project = load_project(".", vocabulary=vocabulary, environ={}, engine=engine)
    answers = {}
    for flow in ("a", "b"):
        expression = _transform(project, flow).expression
        answers[flow] = [expression.evaluate(payload, {"payload": payload})["status"]
                         for payload in ({"Balance": 0, "Total": 10}, {"Balance": 4, "Total": 10},
                                         {"Balance": 10, "Total": 10})]
    assert answers == {"a": ["Paid", "Partially Paid", "Unpaid"], "b": ["Paid", "Partially Paid", "Unpaid"]}
    assert _transform(project, "a").expression.evaluate({"Balance": 1, "Total": 12.345})["cents"] == 1234


def test_syntax_error_in_a_library_is_reported_once_at_its_position(write, vocabulary) -> None:
    """The library's own file:line:col, once, however many transforms use it."""
    write("lib/payments.jsonata", "{\n  'status': function($b) { $b > 0 ? 'Paid' : }\n}\n")
    for path, text in FLOWS.items():
        if not path.startswith("lib/"):
            write(path, text)
    problems = [e.format() for e in check_project(".", vocabulary=vocabulary, environ={})]
    assert len(problems) == 1, problems
    assert problems[0].startswith("lib/payments.jsonata:2:"), problems
    assert "invalid JSONata" in problems[0]


def test_unknown_library_is_reported_in_the_transform(write, vocabulary) -> None:
    """``$paymnts.status()`` names no library: the transform's file:line:col, with the known names."""
    write("lib/payments.jsonata", STATUS)
    write("t.jsonata", "(\n  $x := 1;\n  $paymnts.status($x, 2)\n)\n")
    write("f.yaml", "flow: a\nsteps:\n  - transform: t.jsonata\n")
    problems = [e.format() for e in check_project(".", vocabulary=vocabulary, environ={})]
    assert problems == ["t.jsonata:3:3: unknown JSONata library '$paymnts' (did you mean 'payments'?) "
                        "(libraries of this project: payments), expected a library of the project's lib/ "
                        "folder, or a variable the transform binds"]


def test_own_variables_are_not_libraries(write, vocabulary) -> None:
    """A transform calling a function held by its own variable or parameter is not an unknown library."""
    write("f.yaml", "flow: a\nsteps:\n  - transform: t.jsonata\n")
    write("t.jsonata", "(\n  $o := { 'f': function($x) { $x } };\n  $g := function($p) { $p.f(1) };\n"
                       "  $o.f(2)\n)\n")
    assert [e.format() for e in check_project(".", vocabulary=vocabulary, environ={})] == []


def test_syntax_error_in_a_transform_using_a_library_points_into_the_transform(write, vocabulary) -> None:
    """Binding the library around the transform does not move the transform's error positions."""
    write("lib/payments.jsonata", STATUS)
    write("t.jsonata", "(\n  $s := $payments.status(1, 2);\n  $s &\n)\n")
    write("f.yaml", "flow: a\nsteps:\n  - transform: t.jsonata\n")
    problems = [e.format() for e in check_project(".", vocabulary=vocabulary, environ={})]
    assert len(problems) == 1 and problems[0].startswith("t.jsonata:4:1: invalid JSONata"), problems


def test_a_library_name_must_be_a_variable_name(write, vocabulary) -> None:
    """``lib/my-rules.jsonata`` could never be called as ``$my-rules``: an error at the file."""
    write("lib/my-rules.jsonata", STATUS)
    problems = [e.format() for e in check_project(".", vocabulary=vocabulary, environ={})]
    assert len(problems) == 1 and problems[0].startswith("lib/my-rules.jsonata:1:1: 'my-rules' cannot name"), \
        problems


def test_shipped_invoice_rules_are_written_once() -> None:
    """The shipped project's payment status, voided-invoice and money rounding rules live only in
    its library: no transform rounds a QuickBooks amount (or what was paid) itself, and customer-360
    shows no money the library did not round."""
    project = Path(__file__).resolve().parents[2] / "flows" / "salesforce-quickbooks"
    library = (project / "lib" / "billing.jsonata").read_text(encoding="utf-8")
    assert "'Partially Paid'" in library and "/^Voided/" in library
    assert "$money($number($x))" in library
    for transform in (project / "transforms").glob("*.jsonata"):
        text = transform.read_text(encoding="utf-8")
        assert "'Partially Paid'" not in text and "/^Voided/" not in text, transform.name
        assert not re.search(r"\$money\(\$number\([^()]*\)\)", text), transform.name  # to cents
    assert "$money(" not in (project / "transforms" / "customer-360.jsonata").read_text(encoding="utf-8")


def test_one_file_checked_alone_sees_its_project_libraries(write, vocabulary) -> None:
    """``splice validate flows/a.yaml`` finds ``lib/`` above the file, and its unknown names."""
    for path, text in FLOWS.items():
        write(path, text)
    write("flows/c.yaml", "flow: c\nsteps:\n  - transform: \"$paymnts.status(1, 2)\"\n")
    assert [e.format() for e in check_file("flows/a.yaml", vocabulary=vocabulary, environ={})] == []
    assert [e.format() for e in check_file("flows/b.yaml", vocabulary=vocabulary, environ={})] == []
    problems = [e.format() for e in check_file("flows/c.yaml", vocabulary=vocabulary, environ={})]
    assert len(problems) == 1 and problems[0].startswith("flows/c.yaml:3:17: unknown JSONata library '$paymnts'"), \
        problems


def test_a_folder_of_projects_gives_each_its_own_libraries(write, vocabulary) -> None:
    """Loaded from the folder above them (``splice validate flows/``, ``splice serve`` on ``flows/``),
    each project's transforms see the libraries of their own ``lib/``, and another project's none."""
    for path, text in FLOWS.items():
        write(f"billing/{path}", text)
    write("other/flows/c.yaml", "flow: c\nsteps:\n  - transform: \"$payments.cents(5)\"\n")
    problems = [e.format() for e in check_project(".", vocabulary=vocabulary, environ={})]
    assert len(problems) == 1 and problems[0].startswith("other/flows/c.yaml:3:")
    assert "unknown JSONata library '$payments'" in problems[0]
    write("other/flows/c.yaml", "flow: c\nsteps:\n  - log: x\n")
    project = load_project(".", vocabulary=vocabulary, environ={})
    assert _transform(project, "a").expression.evaluate({"Balance": 0, "Total": 3})["status"] == "Paid"


@pytest.mark.parametrize("engine", ["jsonata-python", "jsonatapy"])
def test_a_flow_expression_calls_a_library_too(write, vocabulary, engine: str) -> None:
    """``#[ ]`` in a flow file sees the nearest ``lib/`` as transforms do, alike in both engines."""
    write("lib/payments.jsonata", STATUS)
    write("flows/a.yaml", "flow: a\nsteps:\n"
                          "  - set-variable:\n      name: status\n"
                          "      value: \"#[$payments.status($payload.Balance, $payload.Total)]\"\n")
    project = load_project(".", vocabulary=vocabulary, environ={}, engine=engine)
    step = project.flows["a"].steps[0]
    assert isinstance(step, SetVariableStep) and isinstance(step.value, Template)
    expression = step.value.single_expression
    assert expression is not None
    data = {"payload": {"Balance": 4, "Total": 10}}
    assert expression.evaluate(data, data) == "Partially Paid"


def test_libraries_are_compiled_once_per_project(write, vocabulary, monkeypatch) -> None:
    """However many transforms and expressions use a library, its text is compiled once."""
    from dsl import expressions

    for path, text in FLOWS.items():
        write(path, text)
    write("flows/c.yaml", "flow: c\nsteps:\n  - log: \"#[$payments.cents(3)]\"\n"
                          "  - transform: ../transforms/status.jsonata\n")
    compiled: list[str] = []
    original = expressions.JsonataPythonEngine.compile

    def counting(self: Any, source: str, functions: Any = None) -> Any:
        compiled.append(source)
        return original(self, source, functions)

    monkeypatch.setattr(expressions.JsonataPythonEngine, "compile", counting)
    project = load_project(".", vocabulary=vocabulary, environ={}, engine="jsonata-python")
    assert sum("'Partially Paid'" in source for source in compiled) == 1
    before = len(compiled)
    for _ in range(3):
        assert _transform(project, "a").expression.evaluate({"Balance": 0, "Total": 1})["status"] == "Paid"
    assert len(compiled) == before


def test_unknown_functions_and_libraries_are_reported_where_they_are_called(write, vocabulary) -> None:
    """``$payments.nosuch()`` and ``$nolib.f()``, in a transform and in ``#[ ]``: file:line:col each."""
    write("lib/payments.jsonata", STATUS)
    write("t.jsonata", "(\n  /* $nolib.f() in a comment is no call */\n  $payments.stats(1, 2)\n)\n")
    write("f.yaml", "flow: a\nsteps:\n  - transform: t.jsonata\n"
                    "  - log: \"#[$payments.nosuch(1)] and #[$nolib.f()]\"\n")
    problems = [e.format() for e in check_project(".", vocabulary=vocabulary, environ={})]
    assert problems == [
        "f.yaml:4:23: JSONata library '$payments' has no function 'nosuch' (its functions: cents, status), "
        "expected a library of the project's lib/ folder, or a variable the expression binds",
        "f.yaml:4:40: unknown JSONata library '$nolib' (libraries of this project: payments), expected a "
        "library of the project's lib/ folder, or a variable the expression binds",
        "t.jsonata:3:13: JSONata library '$payments' has no function 'stats' (did you mean 'status'?) "
        "(its functions: cents, status), expected a library of the project's lib/ folder, or a variable "
        "the transform binds",
    ], problems
