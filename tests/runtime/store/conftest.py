"""Store fixtures: every contract test runs on SQLite (a file) and on PostgreSQL.

PostgreSQL tests use the local server (``SPLICE_TEST_POSTGRES``, default
``postgresql://postgres@127.0.0.1:5432/test``) and a fresh schema per test, dropped afterwards, so
runs never see each other's data. When the server cannot be reached they are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from runtime.store import ObjectStore, open_store

POSTGRES_URL = os.environ.get("SPLICE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


class FakeClock:
    """Epoch seconds that move only when a test says so (starts at the real time)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Backend:
    """One store backend for a test: open as many stores on the same data as the test needs."""

    name: str
    url: str
    clock: FakeClock
    opened: list[ObjectStore] = field(default_factory=list)

    def open(self, **options: Any) -> ObjectStore:
        """A new store instance (own connections) on this backend's data."""
        options.setdefault("clock", self.clock)
        store = open_store(self.url, **options)
        self.opened.append(store)
        return store


async def _postgres_reachable() -> str | None:
    import asyncpg

    try:
        with anyio.fail_after(5):
            conn = await asyncpg.connect(POSTGRES_URL)
        await conn.close()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _start_postgres() -> None:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or shutil.which("pg_ctlcluster") is None:
        return
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
                   capture_output=True, timeout=60, check=False)


def _check_postgres() -> str | None:
    # Fixtures may be set up while an event loop runs in this thread: check from a thread of its own.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, _postgres_reachable).result()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server's URL; skips PostgreSQL tests when it cannot be reached."""
    problem = _check_postgres()
    if problem is not None:
        _start_postgres()
        problem = _check_postgres()
    if problem is not None:
        reason = f"PostgreSQL at {POSTGRES_URL} is not reachable ({problem})"
        print(reason)
        pytest.skip(reason)
    return POSTGRES_URL


async def _drop_schema(url: str, schema: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
async def pg_schema(postgres_url: str) -> AsyncIterator[str]:
    """A schema of its own in the test server (its name), dropped afterwards."""
    schema = f"splice_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    try:
        yield schema
    finally:
        await _drop_schema(postgres_url, schema)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """SQLite on a file in ``tmp_path``, or PostgreSQL in a schema of its own."""
    clock = FakeClock()
    schema = None
    if request.param == "sqlite":
        found = Backend("sqlite", f"sqlite:///{tmp_path / 'state' / 'store.db'}", clock)
    else:
        base = request.getfixturevalue("postgres_url")
        schema = f"splice_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        found = Backend("postgres", f"{base}?schema={schema}", clock)
    try:
        yield found
    finally:
        for store in found.opened:
            await store.aclose()
        if schema is not None:
            await _drop_schema(POSTGRES_URL, schema)


@pytest.fixture
async def store(backend: Backend) -> ObjectStore:
    """A store on the test's backend, closed after the test."""
    return backend.open()


@pytest.fixture
def clock(backend: Backend) -> FakeClock:
    """The clock of the test's stores."""
    return backend.clock
