"""Fixtures of the shipped Salesforce <-> QuickBooks flow tests: Splice's pytest plugin, set up.

The flow tests use the plugin a user's project uses (``splice_project``, ``splice_runtime``,
``mock_step``, cassettes): these overrides choose the project (``flows/salesforce-quickbooks``), the
environment it loads with, and emulators without sandbox demo data. A test module overrides any of
them again (``test_cassettes.py`` chooses ``splice_emulators`` by record mode), or marks a test
``@pytest.mark.splice(environ={...}, emulator_options={...})``. Cassette tests replay what these
emulators answered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.pytest_plugin import SpliceProject
from tests.support.flows import EMULATOR_OPTIONS, PROJECT, REALM, RECORDED_REALM, Integration, environ_for


@pytest.fixture
def splice_project_dir() -> Path:
    return PROJECT


@pytest.fixture
def reports_dir(tmp_path: Path) -> Path:
    """Where nightly-reconciliation writes its reports in a test (RECONCILIATION_REPORT_DIR)."""
    return tmp_path / "reports"


@pytest.fixture
def splice_environ(reports_dir: Path, splice_emulators: bool | list[str]) -> dict[str, str]:
    """The documented environment overrides (tests.support.flows.ENVIRON), reports in the test's
    own directory, and the recorded realm id when a cassette answers instead of the emulators."""
    return environ_for(reports=str(reports_dir), replaying=splice_emulators is False)


@pytest.fixture
def splice_emulator_options() -> dict[str, dict[str, Any]]:
    """Fresh emulators: an empty org, the QuickBooks company's base records, no demo data."""
    return {name: dict(options) for name, options in EMULATOR_OPTIONS.items()}


@pytest.fixture
async def integration(splice_project: SpliceProject, splice_runtime: Any) -> Integration:
    """The project opened in the test's event loop against fresh emulators, with the helpers
    that seed Salesforce and read QuickBooks."""
    return Integration(splice_project)


# ----------------------------------------------------------------- cassettes


@pytest.fixture
def splice_cassette_replace() -> dict[str, str]:
    """The QuickBooks company id never appears in a cassette: the realm the replay uses does. The
    plugin keeps out the rest (tokens, client secrets, every secret setting of the project)."""
    return {REALM: RECORDED_REALM}


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    """How recordings are matched and stored; what they must not hold is the plugin's rule."""
    return {"match_on": ["method", "path", "query"], "decode_compressed_response": True}
