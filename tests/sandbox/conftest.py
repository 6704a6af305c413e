"""Fixtures of the sandbox tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from sandbox_support import FIXTURE  # noqa: E402


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the fixture project: salesforce and quickbooks connections without credentials."""
    root = tmp_path / "project"
    shutil.copytree(FIXTURE, root)
    return root
