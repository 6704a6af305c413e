"""``splice validate`` never crashes: mutated shipped flows get file:line:col problems, not an
internal error, and so does nesting far deeper than any flow needs.

The mutations are hypothesis-driven but derandomized (the same examples on every run), bounded to
a few seconds: values replaced by other values (of any type, expressions, placeholders), keys
dropped or renamed, values wrapped in lists, and lines of the text deleted, duplicated or shifted.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsl import check_file
from dsl.errors import FlowError
from dsl.nesting import MAX_NESTING
from runtime.cli import main
from runtime.registry import Registry, load_registry

SHIPPED = Path(__file__).resolve().parents[2] / "flows" / "salesforce-quickbooks"
FLOW_FILES = sorted(p.name for p in SHIPPED.glob("*.yaml") if p.name != "connections.yaml")
ORIGINALS = {name: (SHIPPED / name).read_text(encoding="utf-8") for name in FLOW_FILES}

#: Values a mutation puts in place of another: every YAML type, and strings the DSL reads.
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
    | st.sampled_from(["#[payload]", "#[", "#[ payload.", "${x}", "${", "${env:NOPE}", "$${x}",
                       "0 2 * *", "5m", "-1s", "", "quickbooks", "ANY", "QUICKBOOKS:*", "#[ $x( ]",
                       "transforms/none.jsonata", "/path", "#[ payload ] and ${reconciliation.days}"])
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["when", "then", "steps", "flow", "connection", "x", "retry", "entity"]),
        inner, max_size=3),
    max_leaves=6)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("fuzz") / "project"
    shutil.copytree(SHIPPED, root)
    yield root


def _paths(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*at, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*at, index))
    return found


def _mutate(tree: Any, path: tuple[Any, ...], how: str, value: Any) -> Any:
    if not path:
        return value if how == "replace" else [tree]
    parent = tree
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    if how == "replace":
        parent[last] = value
    elif how == "wrap":
        parent[last] = [parent[last]]
    elif how == "drop":
        del parent[last]
    elif how == "rename" and isinstance(parent, dict):
        parent[f"{last}x" if isinstance(last, str) else "x"] = parent.pop(last)
    return tree


def _mutate_lines(text: str, how: str, index: int) -> str:
    lines = text.splitlines()
    if not lines:
        return text
    line = index % len(lines)
    if how == "delete":
        del lines[line]
    elif how == "duplicate":
        lines.insert(line, lines[line])
    elif how == "indent":
        lines[line] = "  " + lines[line]
    elif how == "dedent":
        lines[line] = lines[line].lstrip()
    return "\n".join(lines) + "\n"


def _problems(project: Path, name: str, text: str, registry: Registry) -> list[FlowError]:
    path = project / name
    path.write_text(text, encoding="utf-8")
    return check_file(path, vocabulary=registry, environ={})


def _assert_positioned(problems: list[FlowError], name: str) -> None:
    for problem in problems:
        line = problem.format()
        assert problem.span.file.endswith(name) and problem.span.line >= 1 and problem.span.col >= 1, line
        assert "Traceback" not in line and "internal error" not in line, line


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_shipped_flows_get_positioned_problems(project: Path, registry: Registry,
                                                       data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(FLOW_FILES), label="file")
    if data.draw(st.booleans(), label="structural"):
        tree = yaml.safe_load(ORIGINALS[name])
        for _ in range(data.draw(st.integers(1, 3), label="mutations")):
            path = data.draw(st.sampled_from(_paths(tree)), label="path")
            how = data.draw(st.sampled_from(["replace", "replace", "wrap", "drop", "rename"]))
            value = copy.deepcopy(data.draw(VALUES, label="value")) if how == "replace" else None
            tree = _mutate(tree, path, how, value)
        text = yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)
    else:
        text = ORIGINALS[name]
        for _ in range(data.draw(st.integers(1, 3), label="mutations")):
            how = data.draw(st.sampled_from(["delete", "duplicate", "indent", "dedent"]))
            text = _mutate_lines(text, how, data.draw(st.integers(0, 10_000), label="line"))
    _assert_positioned(_problems(project, name, text, registry), name)


def test_the_shipped_flows_have_no_problems(project: Path, registry: Registry) -> None:
    """The fuzz starts from valid files: a problem above comes from its mutation."""
    for name in FLOW_FILES:
        assert _problems(project, name, ORIGINALS[name], registry) == []


DEPTH = 6000


@pytest.mark.parametrize(("label", "text", "where"), [
    ("yaml flow sequences", "flow: f\nsteps:\n  - log: " + "[" * DEPTH + "]" * DEPTH + "\n", "3:"),
    ("yaml flow mappings", "flow: f\nsteps:\n  - log: " + "{a: " * DEPTH + "1" + "}" * DEPTH + "\n", "3:"),
    ("yaml block sequences", "flow: f\nsteps:\n  - log:\n      " + "- " * DEPTH + "1\n", "4:"),
    ("yaml block mappings", "flow: f\nsteps:\n  - log:\n" + "".join(
        " " * (i + 6) + "a:\n" for i in range(DEPTH // 10)) + " " * (DEPTH // 10 + 6) + "b: 1\n", ""),
    ("expression brackets", "flow: f\nsteps:\n  - transform: \"#[ " + "[" * DEPTH + "1" + "]" * DEPTH
     + " ]\"\n", "3:"),
    ("expression parentheses", "flow: f\nsteps:\n  - transform: \"" + "(" * DEPTH + "1" + ")" * DEPTH
     + "\"\n", "3:"),
])
def test_nesting_beyond_the_limit_is_a_positioned_problem(project: Path, registry: Registry,
                                                          label: str, text: str, where: str) -> None:
    problems = _problems(project, "deep.yaml", text, registry)
    assert len(problems) == 1, label
    assert f"nested deeper than {MAX_NESTING} levels" in problems[0].message
    assert f"deep.yaml:{where}" in problems[0].format(), problems[0].format()


def test_an_operation_written_as_an_expression_is_a_problem(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """``- quickbooks.query: "#[payload]"`` once crashed validate (``'Template' object has no
    attribute 'pop'``); it is a problem at the expression."""
    (tmp_path / "f.yaml").write_text('flow: f\nsteps:\n  - quickbooks.query: "#[payload]"\n')
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        code = main(["validate", "f.yaml"])
    finally:
        os.chdir(cwd)
    out, err = capsys.readouterr()
    assert code == 1, out + err
    assert out.splitlines() == ["f.yaml:3:23: 'quickbooks.query' cannot hold a #[ ] expression, "
                                "expected a fixed value (it is needed before any message exists)"]
    assert "internal error" not in err


def test_a_step_made_of_one_unknown_placeholder_is_a_problem(project: Path, registry: Registry) -> None:
    """Found by mutating the shipped flows: a step whose whole value is a placeholder that does
    not resolve crashed validate while building the step from it."""
    text = ('flow: f\nsteps:\n  - set-variable: "${x}"\n  - http.request: "${y}"\n'
            '  - quickbooks.query: "${z}"\non-error:\n  - when: ANY\n    retry: "${w}"\n')
    problems = _problems(project, "placeholders.yaml", text, registry)
    assert [p.format().split(": ", 1)[1] for p in problems] == [
        f"unknown property '{name}', expected it in a property file, or environment variable "
        f"{name.upper()}" for name in "xyzw"]
    assert [(p.span.line, p.span.col) for p in problems] == [(3, 20), (4, 20), (5, 24), (8, 13)]
