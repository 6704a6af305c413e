"""The editor schema and ``splice validate`` agree: one truth for what a project file may say.

The schema (:func:`dsl.flow_json_schema`) is run by a JSON Schema validator over every shipped file,
which it must accept, and over the malformed cases of the validate tests (``test_validate.py``),
split into one case per step, handler, trigger, connection and settings block so that each mistake
is judged on its own: the schema must reject a case exactly when validate reports a problem a schema
can express. The problems it cannot express are listed in :data:`NOT_EXPRESSIBLE`, with why.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from dsl import check_project, flow_json_schema
from runtime.cli import main
from runtime.registry import load_registry
from tests.dsl.conftest import FakeVocabulary
from tests.dsl.test_validate import (
    BAD_CONNECTION_SETTING,
    BAD_PROJECT,
    BAD_SCHEDULES,
    EXPRESSION_AT_LOAD,
    ONE_FILE,
    SCHEDULE_FLOW,
)

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "flows"
SCHEMA_FILE = FLOWS / "splice.schema.json"

#: Problems validate reports that a JSON Schema cannot express, by a part of their message.
NOT_EXPRESSIBLE = {
    "unknown property": "property files and the environment are not part of the schema",
    "invalid JSONata": "a pattern cannot parse JSONata",
    "unknown flow": "a flow-ref names a flow of another file",
    "unknown connection": "connections are defined in config files, not in the flow file",
    "needs 'connection'": "how many connections a connector has is known from the config files only",
    "needs a connection": "how many connections a connector has is known from the config files only",
    "duplicate flow name": "flow names are unique across files",
    "'otherwise' must be the last branch": "a schema cannot say which item of a list comes last",
    "a schedule needs exactly one of": "a trigger's own check is code the vocabulary hands over, not schema",
    "invalid cron expression": "a pattern cannot tell which cron expressions ever fire",
    "unknown timezone": "the time zone database is the system's, not the schema's",
}

#: Valid files that exercise placeholders and expressions where a literal of another type is wanted.
ACCEPTED = {
    "placeholders": "flow: '${name:a}'\nmax-concurrency: ${conc:4}\nsteps:\n"
                    "  - demo.echo:\n      message: hi\n      count: ${n:2}\n      mode: ${mode:loud}\n"
                    "  - log:\n      message: m\n      level: ${level:info}\n"
                    "on-error:\n  - when: ${kind:ANY}\n    then: ${then:propagate}\n"
                    "    retry:\n      attempts: ${attempts:2}\n      initial-delay: ${delay:1s}\n"
                    "      backoff: ${backoff:fixed}\n"
                    "trigger:\n  schedule:\n    every: ${every:5m}\n    catch-up: ${catch-up:false}\n",
    "expressions": "flow: a\nsteps:\n  - demo.echo: { message: '#[ payload.m ]', count: '#[ payload.n ]' }\n"
                   "  - transform: { expression: '#[ payload ]' }\n"
                   "  - set-variable: { name: v, value: '#[ payload ]' }\n"
                   "  - foreach: { collection: '#[ payload ]', steps: [ { log: '#[ item ]' } ] }\n"
                   "on-error:\n  - then: continue\n    payload: '#[ { \"failed\": true } ]'\n",
    "config": "connections:\n  c1: { connector: demo, url: '${demo.url:http://a}' }\n"
              "  c2: { connector: '${conn:demo}', url: http://b }\n"
              "settings:\n  jsonata-engine: ${engine:auto}\n  telemetry: { exporter: '${exporter:none}' }\n",
}

#: Further cases, each right or wrong in one way; the schema must say what validate says.
EDGE_CASES = {
    "flow-ref expression": "flow: a\nsteps:\n  - flow-ref: '#[ x ]'\n",
    "flow-ref placeholder": "flow: a\nsteps:\n  - flow-ref: ${target:a}\n",
    "label expression": "flow: a\nsteps:\n  - log: x\n    label: '#[ x ]'\n",
    "target placeholder": "flow: a\nsteps:\n  - log: x\n    target: ${t:v}\n",
    "transform file expression": "flow: a\nsteps:\n  - transform: { file: '#[ x ]' }\n",
    "transform neither": "flow: a\nsteps:\n  - transform: { target: v }\n",
    "choice empty": "flow: a\nsteps:\n  - choice: []\n",
    "choice branch without steps": "flow: a\nsteps:\n  - choice:\n      - when: x\n",
    "choice only otherwise": "flow: a\nsteps:\n  - choice:\n      - otherwise: [ { log: x } ]\n",
    "choice boolean condition": "flow: a\nsteps:\n  - choice:\n      - when: true\n        steps: [ { log: x } ]\n",
    "foreach expression": "flow: a\nsteps:\n  - foreach: '#[ x ]'\n",
    "foreach fixed option expression": "flow: a\nsteps:\n  - foreach: { collection: x, concurrency: '#[ 2 ]', "
                                       "steps: [ { log: x } ] }\n",
    "log without value": "flow: a\nsteps:\n  - log:\n",
    "operation without value": "flow: a\nsteps:\n  - demo.echo:\n",
    "trigger without value": "flow: a\ntrigger:\n  demo.ticks:\nsteps:\n  - log: x\n",
    "listener path expression": "flow: a\ntrigger:\n  http.listener: { path: '#[ x ]' }\nsteps:\n  - log: x\n",
    "listener path placeholder": "flow: a\ntrigger:\n  http.listener: { path: '${p:/x}' }\nsteps:\n  - log: x\n",
    "integer with text around a placeholder": "flow: a\nsteps:\n  - demo.echo: { message: x, count: '${n:3}0' }\n",
    "escaped expression in a fixed value": "flow: a\nsteps:\n  - log: x\n    label: '\\#[ x ]'\n",
    "setting expression": "settings:\n  custom: '#[ x ]'\n",
    "server setting expression": "settings:\n  server: { port: '#[ x ]' }\n",
    "connection secret expression": "connections:\n  c1: { connector: demo, url: http://a, password: '#[ x ]' }\n",
    "connection placeholder": "connections:\n  c1:\n    connector: demo\n    url: ${u:http://a}\n",
}

#: Where the two must disagree: YAML's quoting is not in the data a JSON Schema validator sees.
#: An unquoted ``${n:3}`` takes the property's type (an integer here); a quoted one is a string.
QUOTED_PLACEHOLDER = "flow: a\nsteps:\n  - demo.echo: { message: x, count: '${n:3}' }\n"

#: One demo connection, so a case's steps need not name it.
_CONTEXT = "connections:\n  c1: { connector: demo, url: http://a }\n"
_A_STEP = [{"log": "x"}]


def _parts(text: str) -> Iterator[tuple[str, Any]]:
    """A file's document, then one smaller document per step, handler, trigger and config block."""
    data = yaml.safe_load(text)
    yield "whole", data
    if not isinstance(data, dict):
        return
    if "flow" in data:
        head = {k: v for k, v in data.items() if k not in ("steps", "trigger", "on-error")}
        yield "head", {**head, "steps": _A_STEP}
        for index, step in enumerate(data.get("steps") or []):
            yield f"steps[{index}]", {"flow": "a", "steps": [step]}
        for index, handler in enumerate(data.get("on-error") or []):
            yield f"on-error[{index}]", {"flow": "a", "steps": _A_STEP, "on-error": [handler]}
        if "trigger" in data:
            yield "trigger", {"flow": "a", "steps": _A_STEP, "trigger": data["trigger"]}
    elif "connections" in data or "settings" in data:
        for name, connection in (data.get("connections") or {}).items():
            yield f"connections.{name}", {"connections": {name: connection}}
        if "settings" in data:
            yield "settings", {"settings": data["settings"]}


def _malformed() -> Iterator[Any]:
    files = {**BAD_PROJECT, "one-file.yaml": ONE_FILE, "expression-at-load.yaml": EXPRESSION_AT_LOAD,
             "bad-connection-setting.yaml": BAD_CONNECTION_SETTING,
             **{f"schedule-{i}.yaml": SCHEDULE_FLOW.format(params=params)
                for i, (params, _) in enumerate(BAD_SCHEDULES)}}
    for file, text in files.items():
        for part, document in _parts(text):
            yield pytest.param(document, id=f"{file}:{part}")


def _problems(tmp_path: Path, document: Any, vocabulary: FakeVocabulary) -> list[str]:
    """What validate says about ``document`` as the one file of a project with one demo connection."""
    if not (isinstance(document, dict) and "connections" in document):
        (tmp_path / "context.yaml").write_text(_CONTEXT, encoding="utf-8")
    (tmp_path / "case.yaml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return [p.format() for p in check_project(tmp_path, vocabulary=vocabulary, environ={})]


def _schema_errors(schema: dict[str, Any], document: Any) -> list[str]:
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(document)]


@pytest.mark.parametrize("document", list(_malformed()))
def test_schema_rejects_what_validate_rejects(document: Any, tmp_path: Path, vocabulary: FakeVocabulary) -> None:
    """Each malformed case: rejected by the schema exactly when validate finds an expressible problem."""
    problems = _problems(tmp_path, document, vocabulary)
    expressible = [p for p in problems if not any(part in p for part in NOT_EXPRESSIBLE)]
    errors = _schema_errors(flow_json_schema(vocabulary), document)
    assert bool(errors) == bool(expressible), (problems, errors)


@pytest.mark.parametrize("text", list(EDGE_CASES.values()), ids=list(EDGE_CASES))
def test_schema_agrees_on_edge_cases(text: str, tmp_path: Path, vocabulary: FakeVocabulary) -> None:
    """Expressions where values are fixed, placeholders where they are typed, builder rules."""
    document = yaml.safe_load(text)
    problems = _problems(tmp_path, document, vocabulary)
    errors = _schema_errors(flow_json_schema(vocabulary), document)
    assert bool(errors) == bool(problems), (problems, errors)


def test_a_quoted_placeholder_is_left_to_validate(tmp_path: Path, vocabulary: FakeVocabulary) -> None:
    """The one known disagreement: the schema cannot see that a placeholder was quoted."""
    (tmp_path / "context.yaml").write_text(_CONTEXT, encoding="utf-8")
    (tmp_path / "case.yaml").write_text(QUOTED_PLACEHOLDER, encoding="utf-8")
    problems = [p.format() for p in check_project(tmp_path, vocabulary=vocabulary, environ={})]
    assert [p.split(": ", 1)[1] for p in problems] == ["'count' must be an integer, got string"]
    assert _schema_errors(flow_json_schema(vocabulary), yaml.safe_load(QUOTED_PLACEHOLDER)) == []


@pytest.mark.parametrize("text", list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_placeholders_and_expressions_are_accepted(text: str, tmp_path: Path, vocabulary: FakeVocabulary) -> None:
    """A placeholder stands for a number, boolean or enum value; an expression for any dynamic one."""
    document = yaml.safe_load(text)
    (tmp_path / "case.yaml").write_text(text, encoding="utf-8")
    if "connections" not in document:
        (tmp_path / "context.yaml").write_text(_CONTEXT, encoding="utf-8")
    assert [p.format() for p in check_project(tmp_path, vocabulary=vocabulary, environ={})] == []
    assert _schema_errors(flow_json_schema(vocabulary), document) == []


@pytest.mark.parametrize("when", ["ANY", "any", " quickbooks:validation ", "HTTP:*", "${kind:ANY}",
                                  ["HTTP:*", "demo:gone"], "BAD TYPE", "x:", ["BAD TYPE", "HTTP:*"], 5])
def test_error_types_agree(when: Any, tmp_path: Path, vocabulary: FakeVocabulary) -> None:
    """on-error 'when' follows the builder's rule: NS:KIND, NS:* or ANY, in either case."""
    document = {"flow": "a", "steps": _A_STEP, "on-error": [{"when": when}]}
    problems = _problems(tmp_path, document, vocabulary)
    errors = _schema_errors(flow_json_schema(vocabulary), document)
    assert bool(errors) == bool(problems), (problems, errors)


def _shipped() -> list[Path]:
    """Every flow and config file under flows/ (property files under config/ are free-form)."""
    return sorted(p for p in FLOWS.rglob("*.y*ml") if "config" not in p.relative_to(FLOWS).parts)


@pytest.fixture(scope="module")
def installed_schema() -> dict[str, Any]:
    return flow_json_schema(load_registry())


def test_shipped_projects_validate() -> None:
    """The files the next test runs the schema over are ones validate accepts."""
    registry = load_registry()
    for project in sorted(p for p in FLOWS.iterdir() if p.is_dir()):
        assert [p.format() for p in check_project(project, vocabulary=registry, environ={})] == []


@pytest.mark.parametrize("path", _shipped(), ids=lambda p: str(p.relative_to(FLOWS)))
def test_schema_accepts_every_shipped_file(path: Path, installed_schema: dict[str, Any]) -> None:
    """Every shipped and example flow and config file passes the installed plugins' schema."""
    assert _schema_errors(installed_schema, yaml.safe_load(path.read_text(encoding="utf-8"))) == []


def test_committed_schema_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    """flows/splice.schema.json is what `splice schema` prints for the installed plugins, so it
    cannot go stale (refresh it with `splice schema -o flows/splice.schema.json`)."""
    assert main(["schema"]) == 0
    assert SCHEMA_FILE.read_text(encoding="utf-8") == capsys.readouterr().out


@pytest.mark.parametrize("path", _shipped(), ids=lambda p: str(p.relative_to(FLOWS)))
def test_shipped_files_point_editors_at_the_schema(path: Path) -> None:
    """The YAML language server finds the schema from each file's first line."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    target = Path(os.path.relpath(SCHEMA_FILE, path.parent)).as_posix()
    assert first == f"# yaml-language-server: $schema={target}"
