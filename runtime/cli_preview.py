"""What ``splice run FLOW --dry-run`` prints: the writes not made, in order, then the result.

Text for people (each write on a line of its own, its payload as indented JSON below it), or with
``--output json`` one JSON document ``{"dryRun": true, "status", "writes", "result" | "error"}``
for scripts. Both say the same: a person reviewing a run and a script checking one see one truth.
"""

from __future__ import annotations

import textwrap
from typing import Any

from runtime.jsonutil import dumps
from runtime.message import Outcome
from runtime.preview import PlannedWrite

__all__ = ["render_dry_run"]


def _text(flow: str, outcome: Outcome, result: Any, writes: list[PlannedWrite]) -> str:
    lines = [f"Dry run of {flow}: {len(writes)} write(s) not made; nothing was changed.", ""]
    for number, write in enumerate(writes, 1):
        lines.append(f"{number}. {write.describe()}")
        lines.append(f"   from {write.flow} at {write.step}")
        lines.append(textwrap.indent(dumps(write.payload, indent=2), "   "))
        lines.append("")
    if outcome.status == "completed":
        lines += ["Result:", dumps(result, indent=2)]
    else:
        assert outcome.error is not None
        lines += [f"The dry run failed: {outcome.error.error_type}: {outcome.error}",
                  dumps({"error": outcome.error.to_dict()}, indent=2)]
    return "\n".join(lines)


def render_dry_run(flow: str, outcome: Outcome, result: Any, writes: list[PlannedWrite],
                   output: str) -> str:
    """The report of a dry run of ``flow``, as ``text`` or ``json``."""
    if output != "json":
        return _text(flow, outcome, result, writes)
    body: dict[str, Any] = {"dryRun": True, "flow": flow, "status": outcome.status,
                            "writes": [write.to_dict() for write in writes]}
    if outcome.status == "completed":
        body["result"] = result
    else:
        assert outcome.error is not None
        body["error"] = outcome.error.to_dict()
    return dumps(body, indent=2)
