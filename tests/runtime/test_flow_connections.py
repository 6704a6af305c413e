"""Which connections running a flow can use: what ``splice run FLOW`` opens."""

from __future__ import annotations

import shutil
from pathlib import Path

from runtime.flow_connections import connections_used
from runtime.service import load_project
from tests.support.sandbox import FIXTURE

FLOWS = {
    "plain": """\
flow: plain
steps:
  - transform: '{"a": 1}'
""",
    "nested": """\
flow: nested
steps:
  - choice:
      - when: "#[payload.a = 1]"
        steps:
          - foreach:
              collection: "#[payload.items]"
              steps:
                - quickbooks.query: { query: "select * from Customer" }
      - otherwise:
          - log: nothing
on-error:
  - when: ANY
    then: continue
    steps:
      - flow-ref: reads-salesforce
""",
    "reads-salesforce": """\
flow: reads-salesforce
steps:
  - salesforce.query: { connection: salesforce, query: "SELECT Id FROM Account" }
  - flow-ref: loops-back
""",
    "loops-back": """\
flow: loops-back
steps:
  - choice:
      - when: "#[false]"
        steps: [ { flow-ref: reads-salesforce } ]
""",
}


def test_connections_of_a_flow_and_what_it_reaches(tmp_path: Path) -> None:
    """Operations in nested steps and error handlers count, with their named connection or their
    connector's only one, and so do flows reached by flow-ref (cycles included); a flow without
    operations uses none."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURE, root)
    for name, text in FLOWS.items():
        (root / "flows" / f"{name}.yaml").write_text(text)
    project, _ = load_project(root)
    assert connections_used(project, ["plain"]) == set()
    assert connections_used(project, ["reads-salesforce"]) == {"salesforce"}
    assert connections_used(project, ["loops-back"]) == {"salesforce"}
    assert connections_used(project, ["nested"]) == {"quickbooks", "salesforce"}
    assert connections_used(project, ["opportunity-to-invoice"]) == {"quickbooks", "salesforce"}
    assert connections_used(project, ["plain", "no-such-flow"]) == set()
