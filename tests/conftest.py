"""Shared fixtures: the anyio backend and a fresh in-memory object store per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from runtime.store import ObjectStore, open_store


@pytest.fixture
def anyio_backend() -> str:
    """Splice runs on asyncio; tests marked ``@pytest.mark.anyio`` use it too."""
    return "asyncio"


@pytest.fixture
async def store(anyio_backend: str) -> AsyncIterator[ObjectStore]:
    """A private in-memory object store, closed after the test (store tests use their backends)."""
    opened = open_store("memory://")
    try:
        yield opened
    finally:
        await opened.aclose()
