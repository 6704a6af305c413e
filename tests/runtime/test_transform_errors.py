"""A JSONata error at run time says where: the transform file's line and column when known."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dsl.expressions import ExpressionEvaluationError
from dsl.source import SourceSpan
from runtime.cli import main
from runtime.steps.expressions import translate

FLOW = """\
flow: t
trigger:
  http.listener: { path: /t }
steps:
  - transform: transforms/t.jsonata
"""

TRANSFORM = '{\n  "a": name,\n  "b": $number(code) + 1,\n  "c": $substring(name, "x")\n}\n'


def _run(project: Path, payload: object, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    (project / "in.json").write_text(json.dumps(payload))
    assert main(["run", "t", "--project", ".", "-i", "in.json"]) == 1
    error = json.loads(capsys.readouterr().out)["error"]
    assert isinstance(error, dict)
    return error


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # positions are printed relative to the working directory
    (tmp_path / "transforms").mkdir()
    (tmp_path / "t.yaml").write_text(FLOW)
    (tmp_path / "transforms" / "t.jsonata").write_text(TRANSFORM)
    return tmp_path


def test_the_failing_line_and_column_of_the_file(project: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """jsonata-python says where the call failed: line 4, at `$substring(`."""
    (project / "config.yaml").write_text("settings:\n  jsonata-engine: jsonata-python\n")
    error = _run(project, {"name": "x", "code": "5"}, capsys)
    assert error["type"] == "TRANSFORM:EVALUATION"
    assert str(error["message"]).startswith("transforms/t.jsonata:4:18: ")
    assert error["details"] == {"code": "T0410", "at": "transforms/t.jsonata:4:18",
                                "step": "flow/t/steps/0"}


def test_without_a_position_from_the_engine_the_file_is_named(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    error = _run(project, {"name": "x", "code": "abc"}, capsys)
    assert str(error["message"]).startswith("transforms/t.jsonata:")
    assert "Cannot convert 'abc' to number" in str(error["message"])
    assert str(error["details"]["at"]).startswith("transforms/t.jsonata:")  # type: ignore[index]


def test_an_offset_in_the_expression_becomes_the_line_and_column() -> None:
    error = ExpressionEvaluationError("boom", "T2001", SourceSpan("transforms/x.jsonata", 1, 1))
    error.position = 20  # type: ignore[attr-defined]  # what engines report: just past `x`
    translated = translate(error, '{\n  "a": 1,\n  "b": x + 1\n}')
    assert translated.details["at"] == "transforms/x.jsonata:3:8"
    assert translated.message == "transforms/x.jsonata:3:8: boom"


def test_an_inline_expression_keeps_its_message_and_gets_its_flow_position() -> None:
    error = ExpressionEvaluationError("boom", "T2001", SourceSpan("flows/a.yaml", 5, 16))
    translated = translate(error, "x + 1")
    assert translated.message == "boom"
    assert translated.details == {"code": "T2001", "at": "flows/a.yaml:5:16"}


def test_a_flow_raised_error_keeps_its_own_words() -> None:
    error = ExpressionEvaluationError("RECONCILIATION:REPAIRS_FAILED: 2 failed", "D3137",
                                      SourceSpan("transforms/r.jsonata", 1, 1))
    translated = translate(error, '$error("RECONCILIATION:REPAIRS_FAILED: 2 failed")')
    assert translated.error_type == "RECONCILIATION:REPAIRS_FAILED"
    assert translated.message == "2 failed"


def test_a_transform_using_a_library_still_points_into_its_own_file(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Library code is bound around such a transform; the position is still the transform's own."""
    (project / "config.yaml").write_text("settings:\n  jsonata-engine: jsonata-python\n")
    (project / "lib").mkdir()
    (project / "lib" / "names.jsonata").write_text("{\n  'upper': function($s) { $uppercase($s) }\n}\n")
    (project / "transforms" / "t.jsonata").write_text(
        '{\n  "a": $names.upper($string(name)),\n  "c": $substring(name, "x")\n}\n')
    error = _run(project, {"name": "x"}, capsys)
    assert str(error["message"]).startswith("transforms/t.jsonata:3:18: ")


def test_a_failure_inside_a_library_function_points_at_its_call(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The library's object is bound once (jsonata-python): a failure inside one of its functions is
    reported at the call in the transform's own file, not at a place of the library's text."""
    (project / "config.yaml").write_text("settings:\n  jsonata-engine: jsonata-python\n")
    (project / "lib").mkdir()
    (project / "lib" / "nums.jsonata").write_text("{\n  'plus': function($x) { $x + 1 }\n}\n")
    (project / "transforms" / "t.jsonata").write_text('(\n  $n := name;\n  { "a": $nums.plus($n) }\n)\n')
    error = _run(project, {"name": "x"}, capsys)
    assert str(error["message"]).startswith("transforms/t.jsonata:3:20: ")  # the call's argument
