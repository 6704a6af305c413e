"""Fixtures of the shipped Salesforce <-> QuickBooks flow tests.

The real project directory ``flows/salesforce-quickbooks`` is loaded (environment ``dev``) with its
connection settings pointed, through the documented environment overrides, at both emulators
mounted in process. Cassette tests replay what these emulators answered (see ``test_cassettes.py``).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from flows_support import Integration, open_integration  # noqa: E402

from connectors.quickbooks.client import reset_realm_limits  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_realm_limits() -> Iterator[None]:
    """QuickBooks rate-limit objects bind to an event loop; every test runs on its own."""
    reset_realm_limits()
    yield
    reset_realm_limits()


@pytest.fixture
async def integration(anyio_backend: str) -> AsyncIterator[Integration]:
    """The project opened against fresh emulators (no demo opportunities)."""
    async with open_integration() as it:
        yield it

