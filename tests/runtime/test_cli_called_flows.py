"""``splice run`` of a flow whose called flows fail one item at a time, as the nightly
reconciliation's repairs do: each failure is a dead letter of the called flow that a replay
finishes, and the run exits 1 once its own work is done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.runtime.test_cli import splice

pytestmark = pytest.mark.slow

BATCH = """\
flow: batch
steps:
  - foreach:
      collection: "#[ payload.ids ]"
      on-item-error: continue
      collect: false
      steps:
        - set-variable: { name: trigger, value: "#[ { 'Id': payload } ]" }
        - flow-ref: repair
    target: repairs
  - choice:
      - when: "#[ vars.repairs.failed > 0 ]"
        steps:
          - transform: "$error('BATCH:REPAIRS_FAILED: ' & $vars.repairs.failed & ' of ' & $vars.repairs.count & ' repairs failed')"
on-error:
  - when: BATCH:REPAIRS_FAILED
    then: propagate
"""

REPAIR = """\
flow: repair
steps:
  - choice:
      - when: "#[ vars.trigger.Id = 'bad' ]"
        steps: [ { transform: "$error('REPAIR:REFUSED: ' & $vars.trigger.Id & ' refused')" } ]
  - transform: "$vars.trigger.Id"
on-error:
  - when: ANY
    steps: [ { log: { message: "#[vars.trigger.Id] not repaired: #[vars.error.type]", level: error } } ]
    then: dead-letter
"""


def test_a_run_with_failed_called_flows_exits_1_and_each_failure_replays(tmp_path: Path) -> None:
    root = tmp_path / "flows"
    root.mkdir()
    (root / "batch.yaml").write_text(BATCH)
    (root / "repair.yaml").write_text(REPAIR)
    run = splice("run", "batch", "--input", "-", cwd=tmp_path, stdin='{"ids": ["a", "bad", "c"]}')
    assert run.returncode == 1, run.stdout + run.stderr
    body = json.loads(run.stdout)
    assert body["status"] == "failed" and body["error"]["type"] == "BATCH:REPAIRS_FAILED"
    assert body["error"]["message"] == "1 of 3 repairs failed"
    assert "bad not repaired: REPAIR:REFUSED" in run.stderr

    listed = splice("dlq", "list", cwd=tmp_path)
    assert "repair" in listed.stdout and "REPAIR:REFUSED" in listed.stdout
    assert listed.stdout.count("REPAIR:REFUSED") == 1 and "batch" not in listed.stdout

    (root / "repair.yaml").write_text(REPAIR.replace("= 'bad'", "= 'worse'"))
    replayed = splice("dlq", "replay", "--all", cwd=tmp_path)
    assert replayed.returncode == 0 and "replayed, completed" in replayed.stdout
