"""Shared fixtures: the anyio backend, a fresh in-memory object store and secrets scope per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from runtime.redaction import Secrets, use_secrets
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


@pytest.fixture(autouse=True)
def secrets() -> Iterator[Secrets]:
    """The test's own secrets, as each ``splice`` command has its own: what a test registers outside
    a runtime (a connection opened by hand, a loaded project) is never known to another test.
    Runtimes the test opens keep theirs apart and mask these too."""
    with use_secrets(Secrets()) as scope:
        yield scope
