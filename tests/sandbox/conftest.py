"""Fixtures of the sandbox tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.sandbox import FIXTURE


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the fixture project: salesforce and quickbooks connections without credentials."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURE, root)
    return root
