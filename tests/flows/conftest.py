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
from runtime.testing import cassette_scrubbers
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

#: Form fields of token requests and JSON fields of token answers (and signatures) never written.
_SECRET_FORM = ("client_secret", "client_id", "refresh_token", "code", "assertion", "password", "access_token")
_SECRET_JSON = ("access_token", "refresh_token", "client_secret", "id_token", "signature")


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    """The connector tests' rules together: no token, secret, cookie or company id is written."""
    return {
        "filter_headers": ["authorization", "cookie", "set-cookie", "intuit_tid", "x-sfdc-session"],
        "filter_query_parameters": ["code", "client_secret", "refresh_token", "access_token"],
        "filter_post_data_parameters": list(_SECRET_FORM),
        **cassette_scrubbers(replace={REALM: RECORDED_REALM}, form_fields=_SECRET_FORM,
                             json_fields=_SECRET_JSON, drop_headers=("set-cookie", "intuit_tid")),
        "match_on": ["method", "path", "query"],
        "decode_compressed_response": True,
    }
