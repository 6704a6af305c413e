"""Malformed files are reported as ``file:line:col: message``, never as a traceback."""

from __future__ import annotations

import pytest

from dsl import EmptyVocabulary, FlowErrors, check_project, load_flow_text
from dsl.loader import load_yaml, read_text


def _problems(write, tmp_path, name: str, content: str | bytes) -> list[str]:
    write(name, content)
    return [e.format() for e in check_project(".", vocabulary=EmptyVocabulary(), environ={})]


def test_yaml_syntax_error_names_line_and_column(write, tmp_path) -> None:
    """An unclosed flow sequence points at where the parser gave up."""
    problems = _problems(write, tmp_path, "a.yaml", "flow: a\nsteps: [ { log: x }\n")
    assert len(problems) == 1
    assert problems[0].startswith("a.yaml:3:1: invalid YAML: expected ',' or ']'")


def test_unquoted_placeholder_in_flow_mapping(write, tmp_path) -> None:
    """``{ url: ${x} }`` is a YAML error; the message says to quote the placeholder."""
    problems = _problems(write, tmp_path, "a.yaml", "flow: a\nsteps:\n  - demo.echo: { url: ${x} }\n")
    assert problems == ['a.yaml:3:23: a ${...} placeholder inside { } or [ ] must be quoted, '
                        'expected a quoted value: "${...}"']


def test_tab_indentation_is_named(write, tmp_path) -> None:
    """A tab used for indentation gets its own message at the tab."""
    problems = _problems(write, tmp_path, "a.yaml", "flow: a\nsteps:\n\t- log: x\n")
    assert problems == ["a.yaml:3:1: tab character in indentation, expected spaces"]


def test_duplicate_key_points_at_the_second(write, tmp_path) -> None:
    """The second key is reported with the line of the first."""
    problems = _problems(write, tmp_path, "a.yaml", "flow: a\nsteps:\n  - log: x\nflow: b\n")
    assert problems == ["a.yaml:4:1: duplicate key 'flow' (first at line 1), expected each key once per mapping"]


def test_non_mapping_root(write, tmp_path) -> None:
    """A list at the root is neither a flow nor a config file."""
    problems = _problems(write, tmp_path, "a.yaml", "- log: x\n")
    assert problems == ["a.yaml:1:1: not a flow or config file, expected a flow file (a mapping with 'flow:') "
                        "or a config file ('connections:' / 'settings:')"]


def test_empty_file(write, tmp_path) -> None:
    """A file with only a comment is empty."""
    problems = _problems(write, tmp_path, "a.yaml", "# nothing yet\n")
    assert problems == ["a.yaml:1:1: empty file, expected a flow"]


def test_binary_garbage_with_nul(write, tmp_path) -> None:
    """NUL bytes mean it is not a text file; the position is the first NUL."""
    problems = _problems(write, tmp_path, "a.yaml", b"flow: a\n\x89PNG\x00\x01\x02")
    assert problems == ["a.yaml:2:5: not a text file (it contains NUL bytes), expected a UTF-8 YAML file"]


def test_invalid_utf8(write, tmp_path) -> None:
    """A Latin-1 byte is reported with its byte offset."""
    problems = _problems(write, tmp_path, "a.yaml", "flow: a\nsteps: [caf\xe9]\n".encode("latin-1"))
    assert problems == ["a.yaml:2:12: not a text file: invalid UTF-8 byte 0xe9 at byte 19, "
                        "expected a UTF-8 YAML file"]


def test_control_characters(write, tmp_path) -> None:
    """Control characters YAML refuses are reported at their position."""
    problems = _problems(write, tmp_path, "a.yaml", "flow: a\nsteps: \x07\n")
    assert problems == ["a.yaml:2:8: not a text file: unacceptable character #x0007, expected a UTF-8 YAML file"]


def test_several_documents(write, tmp_path) -> None:
    """A second document is an error at its start."""
    problems = _problems(write, tmp_path, "a.yaml", "flow: a\nsteps: [{log: x}]\n---\nflow: b\n")
    assert problems == ["a.yaml:4:1: several YAML documents in one file, "
                        "expected one document per file (remove the '---' separator)"]


def test_unquoted_expression_read_as_comment(write, tmp_path) -> None:
    """``log: #[ ... ]`` is a YAML comment; the loader says to quote it."""
    problems = _problems(write, tmp_path, "a.yaml", "flow: a\nsteps:\n  - log: #[ payload.x ]\n")
    assert problems[0] == 'a.yaml:3:10: expression was read as a YAML comment, quote it: "#[ ... ]"'


def test_comment_trap_in_a_list_item(write, tmp_path) -> None:
    """The same slip as a list item."""
    node, errors = load_yaml("items:\n  - #[ x ]\n", "f.yaml")
    assert node is not None
    assert [e.format() for e in errors] == ['f.yaml:2:5: expression was read as a YAML comment, quote it: "#[ ... ]"']


def test_real_comments_are_fine() -> None:
    """A comment that is not an expression is left alone."""
    node, errors = load_yaml("a: 1  # the answer\nb:   # nothing\n", "f.yaml")
    assert errors == []
    assert node is not None and node.plain() == {"a": 1, "b": None}


def test_every_problem_of_every_file_is_reported(write, tmp_path) -> None:
    """Three broken files give three errors in one call, sorted by file."""
    write("a.yaml", "flow: a\nsteps: [\n")
    write("b.yaml", "")
    write("sub/c.yaml", "flow: c\nflow: d\nsteps: [{log: x}]\n")
    problems = [e.format() for e in check_project(".", vocabulary=EmptyVocabulary(), environ={})]
    assert [p.split(":")[0] for p in problems] == ["a.yaml", "b.yaml", "sub/c.yaml"]


def test_anchors_and_merge_keys_are_resolved() -> None:
    """Aliases copy their anchor and ``<<`` merges mappings."""
    node, errors = load_yaml("base: &b {level: info, message: hi}\nlog:\n  <<: *b\n  level: debug\n", "f.yaml")
    assert errors == []
    assert node is not None and node.plain()["log"] == {"level": "debug", "message": "hi"}


def test_recursive_aliases_and_alias_bombs_are_refused() -> None:
    """A value containing itself, or aliases expanding exponentially, are errors, not hangs."""
    _, errors = load_yaml("a: &x [ 1, *x ]\n", "f.yaml")
    assert [e.format() for e in errors] == ["f.yaml:1:4: recursive YAML alias, expected a value that does not "
                                            "contain itself"]
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    node, errors = load_yaml("\n".join(lines) + "\n", "f.yaml")
    assert node is None and "expands to more than 200000 values" in errors[0].message


def test_spans_keep_positions_of_keys_and_values() -> None:
    """Every key and value knows its 1-based line and column."""
    node, _ = load_yaml("a:\n  b: [1, 'two']\n", "f.yaml")
    assert node is not None
    inner = node.value["a"]
    assert str(inner.keys["b"]) == "f.yaml:2:3"
    assert str(inner.value["b"].value[1].span) == "f.yaml:2:10"


def test_read_text_strips_bom() -> None:
    """A UTF-8 byte order mark is not part of the text."""
    assert read_text("\ufeffflow: a".encode(), "f.yaml") == "flow: a"


def test_load_flow_text_raises_flow_errors() -> None:
    """The single-file loader raises FlowErrors with the positions, too."""
    with pytest.raises(FlowErrors) as info:
        load_flow_text("flow: a\nsteps:\n\t- log: x\n", file="x.yaml", vocabulary=EmptyVocabulary(), environ={})
    assert str(info.value) == "x.yaml:3:1: tab character in indentation, expected spaces"
