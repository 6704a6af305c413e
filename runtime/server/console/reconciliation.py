"""The reconciliation reports the console shows: the files the reconciliation flow writes.

The shipped ``nightly-reconciliation`` flow writes, per run, ``reconciliation-FROM-to-TO.json`` (the
totals), ``.jsonl`` (one finding per line) and ``.txt`` into the directory of the property
``reconciliation.report-dir`` (see :func:`report_dir`), relative to the serve's working directory
as ``file.write`` resolves it. Its runs are also in the execution history; a report is linked to
the run that wrote it by time (the report's ``startedAt`` falls within the execution). Repairs run inside that execution
(``flow-ref``), so a finding links to it, to the history of its business ids (opportunity, invoice)
and, for a failed repair, to the dead letters of the flow that kept it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["MAX_FINDINGS", "MAX_REPORTS", "ReportNotFound", "is_reconciliation_flow", "list_reports",
           "read_report", "report_dir"]

#: At most this many reports are listed, newest first.
MAX_REPORTS = 20
#: At most this many findings of one report are shown.
MAX_FINDINGS = 2000
_NAME = re.compile(r"^reconciliation-[0-9A-Za-z_.-]{1,100}$")
_DIR_PROPERTY = "reconciliation.report-dir"
DEFAULT_DIR = "reports"
#: The flows whose repairs leave dead letters (see ``nightly-reconciliation.yaml``).
REPAIR_FLOWS = {"invoice": "opportunity-to-invoice", "status": "repair-payment-status"}


class ReportNotFound(LookupError):
    """No report of that name in the report directory."""


def is_reconciliation_flow(name: str) -> bool:
    """The flows whose runs the reconciliation page lists."""
    return "reconciliation" in name


def report_dir(properties: Mapping[str, Any], server_settings: Mapping[str, Any]) -> Path:
    """Where the project's reconciliation writes its reports: ``settings.server.reconciliation-
    reports``, else the property ``reconciliation.report-dir`` (when the project's root defines
    it), else ``reports`` (the shipped flows' value; a folder of projects keeps the property in
    each project's own config), relative to the working directory as ``file.write`` resolves it."""
    value = (server_settings.get("reconciliation-reports") or properties.get(_DIR_PROPERTY)
             or DEFAULT_DIR)
    return Path(str(value)).expanduser().resolve()


def list_reports(directory: Path) -> list[dict[str, Any]]:
    """The newest reports' totals (the ``.json`` files), newest first."""
    if not directory.is_dir():
        return []
    files = sorted((p for p in directory.glob("reconciliation-*.json") if _NAME.match(p.stem)),
                   key=lambda p: p.stat().st_mtime, reverse=True)
    return [_summary(path) for path in files[:MAX_REPORTS]]


def read_report(directory: Path, name: str) -> dict[str, Any]:
    """One report's totals and findings; :class:`ReportNotFound` for a name not in the directory."""
    if not _NAME.match(name):
        raise ReportNotFound(name)
    path = directory / f"{name}.json"
    if not path.is_file():
        raise ReportNotFound(name)
    report = _summary(path)
    findings: list[dict[str, Any]] = []
    lines = directory / f"{name}.jsonl"
    total = 0
    if lines.is_file():
        with lines.open(encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                total += 1
                if len(findings) < MAX_FINDINGS:
                    try:
                        item = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(item, dict):
                        item["repairFlow"] = REPAIR_FLOWS.get(str(item.get("repair")))
                        findings.append(item)
    report["findings"] = findings
    report["findingsTotal"] = total
    return report


def _summary(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    data["name"] = path.stem
    return data


def run_of(report: Mapping[str, Any], runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The execution that wrote ``report``: the run whose time span holds its ``startedAt``."""
    started = _iso(report.get("startedAt"))
    if not started:
        return None
    for run in runs:
        begin, end = str(run.get("startedAt", "")), str(run.get("endedAt", ""))
        if begin[:19] <= started[:19] <= end[:19]:
            return run
    return None


def _iso(value: Any) -> str:
    """A JSONata ``$now()`` (``2026-12-01T02:00:00.123Z``) in the form records use, to the second."""
    return str(value or "").replace(" ", "T")
