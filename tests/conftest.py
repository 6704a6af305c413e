"""Shared fixtures: the anyio backend, a fresh object store per test, cassette filtering."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Splice runs on asyncio; tests marked ``@pytest.mark.anyio`` use it too."""
    return "asyncio"
