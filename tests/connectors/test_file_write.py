"""``file.write``: whole files appear at once; appends add lines; errors are typed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import dsl
from runtime.message import Event
from runtime.registry import load_registry
from runtime.service import open_runtime

pytestmark = pytest.mark.anyio

FLOW = """
flow: report
steps:
  - file.write: { path: "#[ payload.dir & '/r.json' ]", content: "#[ payload.report ]" }
    target: whole
  - file.write: { path: "#[ payload.dir & '/r.jsonl' ]", format: jsonl, append: true, content: "#[ payload.rows ]" }
    target: lines
  - file.write: { path: "#[ payload.dir & '/r.txt' ]", format: text, append: true, content: "#[ payload.rows.name ]" }
  - transform: "$vars.whole"
"""


async def test_write_replace_and_append(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "report.yaml").write_text(textwrap.dedent(FLOW))
    registry = load_registry()
    project = dsl.load_project(tmp_path / "project", vocabulary=registry, environ={})
    out = tmp_path / "out" / "nested"
    payload = {"dir": str(out), "report": {"total": 2, "name": "Zoë"}, "rows": [{"name": "a"}, {"name": "b"}]}
    async with open_runtime(project, registry) as runtime:
        for _ in range(2):
            outcome = await runtime.engine.run("report", Event(payload=payload))
            assert outcome.status == "completed", outcome.error
        (tmp_path / "blocked").write_text("a file where a folder should be")
        failed = await runtime.engine.run("report", Event(payload={**payload, "dir": str(tmp_path / "blocked")}))
    assert json.loads((out / "r.json").read_text()) == {"total": 2, "name": "Zoë"}
    assert outcome.message.payload["path"] == str((out / "r.json").resolve())
    assert [json.loads(line)["name"] for line in (out / "r.jsonl").read_text().splitlines()] == ["a", "b", "a", "b"]
    assert (out / "r.txt").read_text() == "a\nb\na\nb\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.error_type == "FILE:IO"
