"""``splice run FLOW --dry-run``: the writes are printed in order with their payloads, as text or
JSON, the flow goes on with stand-in results, and nothing is written, dead-lettered or recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.runtime.test_cli import splice

pytestmark = pytest.mark.slow

REPORT = """\
flow: report
steps:
  - set-variable: { name: total, value: "#[ payload.a + payload.b ]" }
  - file.write:
      path: out/report.json
      content: "#[ { 'total': vars.total } ]"
    target: written
  - file.write:
      path: out/log.txt
      format: text
      append: true
      content: "#[ 'wrote ' & $string(vars.written.bytes) & ' bytes' ]"
  - transform: "{ 'total': $vars.total }"
"""

FAILING = """\
flow: failing
steps:
  - file.write: { path: out/kept.json, content: "#[ payload ]" }
  - transform: "$error('DEMO:REFUSED: refused after the write')"
on-error:
  - when: ANY
    then: dead-letter
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "flows"
    root.mkdir()
    (root / "report.yaml").write_text(REPORT)
    (root / "failing.yaml").write_text(FAILING)
    return tmp_path


def test_dry_run_prints_each_write_and_writes_nothing(project: Path) -> None:
    run = splice("run", "report", "--dry-run", "--input", "-", cwd=project, stdin='{"a": 2, "b": 3}')
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert out.startswith("Dry run of report: 2 write(s) not made; nothing was changed.")
    first, second = out.index("1. file.write: write "), out.index("2. file.write: append ")
    assert first < second
    assert str(project / "out" / "report.json") in out and '"total": 5' in out
    assert '"wrote 17 bytes\\n"' in out  # the second write saw the first one's stand-in result
    assert out.rstrip().endswith('"total": 5\n}')
    assert not (project / "out").exists()

    run = splice("run", "report", "--dry-run", "--output", "json", "--input", "-", cwd=project,
                 stdin='{"a": 2, "b": 3}')
    assert run.returncode == 0, run.stderr
    body = json.loads(run.stdout)
    assert body["dryRun"] is True and body["status"] == "completed" and body["result"] == {"total": 5}
    assert [(w["operation"], w["action"]) for w in body["writes"]] == [
        ("file.write", "write"), ("file.write", "append")]
    assert body["writes"][0]["target"] == {"path": str(project / "out" / "report.json")}
    assert body["writes"][0]["payload"] == '{\n  "total": 5\n}\n'
    assert not (project / "out").exists()

    real = splice("run", "report", "--input", "-", cwd=project, stdin='{"a": 2, "b": 3}')
    assert real.returncode == 0 and json.loads(real.stdout) == {"total": 5}
    assert json.loads((project / "out" / "report.json").read_text()) == {"total": 5}


def test_a_failed_dry_run_exits_1_and_keeps_no_dead_letter(project: Path) -> None:
    run = splice("run", "failing", "--dry-run", "--output", "json", "--input", "-", cwd=project,
                 stdin='{"n": 1}')
    assert run.returncode == 1, run.stderr
    body = json.loads(run.stdout)
    assert body["status"] == "failed" and body["error"]["type"] == "DEMO:REFUSED"
    assert [w["operation"] for w in body["writes"]] == ["file.write"]
    assert "no dead letters" in splice("dlq", "list", cwd=project).stdout
    assert not (project / "out").exists()

    real = splice("run", "failing", "--input", "-", cwd=project, stdin='{"n": 1}')
    assert real.returncode == 1 and json.loads(real.stdout)["status"] == "dead-lettered"
    assert "DEMO:REFUSED" in splice("dlq", "list", cwd=project).stdout
