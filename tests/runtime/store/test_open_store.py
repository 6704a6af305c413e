"""Store URLs and the SQLite specifics: where the file goes, memory stores, several writers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

import runtime.store
from runtime.store import DEFAULT_PATH, PostgresStore, SQLiteStore, open_store

pytestmark = pytest.mark.anyio


def test_sqlite_urls_name_relative_and_absolute_files() -> None:
    """Three slashes: relative to the working directory; four: absolute; none: the default."""
    relative = open_store("sqlite:///state/splice.db")
    absolute = open_store("sqlite:////var/lib/splice/store.db")
    default = open_store("sqlite://")
    assert isinstance(relative, SQLiteStore) and relative.path == Path("state/splice.db")
    assert isinstance(absolute, SQLiteStore) and absolute.path == Path("/var/lib/splice/store.db")
    assert isinstance(default, SQLiteStore) and default.path == DEFAULT_PATH


def test_postgres_urls_keep_the_dsn_and_take_the_schema() -> None:
    """postgres:// and postgresql:// both work; ?schema= is ours, other parameters are the driver's."""
    store = open_store("postgres://splice@db:5432/prod?schema=replica_set&sslmode=require")
    assert isinstance(store, PostgresStore)
    assert store.schema == "replica_set"
    assert store.dsn == "postgres://splice@db:5432/prod?sslmode=require"
    assert open_store("postgresql://db/prod").schema == "splice"  # type: ignore[attr-defined]


@pytest.mark.parametrize("url", ["redis://localhost", "store.db", "sqlite:relative.db",
                                 "memory://somewhere"])
def test_unknown_urls_are_refused_with_the_accepted_forms(url: str) -> None:
    """A typo in the store setting fails at start-up, saying what would have worked."""
    with pytest.raises(ValueError, match="sqlite:///relative/path.db") as caught:
        open_store(url)
    assert "postgresql://" in str(caught.value)


def test_bad_schema_name_is_refused() -> None:
    """The schema is spliced into SQL, so only plain identifiers are accepted."""
    with pytest.raises(ValueError, match="schema"):
        PostgresStore("postgresql://db/x", schema='x"; DROP TABLE kv; --')


def test_public_names_are_exported() -> None:
    """Everything in __all__ exists, and the documented entry points are there."""
    for name in runtime.store.__all__:
        assert hasattr(runtime.store, name), name
    assert {"ObjectStore", "open_store", "SQLiteStore", "LockTimeoutError", "IdempotencyLedger",
            "DeadLetterQueue", "Inbox", "JobState", "SourceStateStore"} <= set(runtime.store.__all__)


async def test_sqlite_file_and_parent_directories_are_created(tmp_path: Path) -> None:
    """Zero set-up: the first write creates the directories and the database file."""
    path = tmp_path / "deep" / "er" / "store.db"
    async with open_store(f"sqlite:///{path}") as store:
        await store.put("n", "k", 1)
    assert path.is_file()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_memory_stores_are_private_and_empty() -> None:
    """Each memory:// store is its own throw-away database."""
    async with open_store("memory://") as first, open_store("memory://") as second:
        await first.put("n", "k", 1)
        assert await second.get("n", "k") is None
        assert await first.get("n", "k") == 1
        async with first.lock("x", timeout=0):
            pass


async def test_many_writers_on_one_file(tmp_path: Path) -> None:
    """Several store instances (as several processes) writing one file at once all succeed."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    stores = [open_store(url) for _ in range(4)]
    try:
        async with anyio.create_task_group() as tg:
            for n in range(400):
                tg.start_soon(stores[n % 4].put, "shared", f"k{n:03d}", n)
        assert await stores[0].count("shared") == 400
        assert [v async for _, v in stores[3].items("shared", limit=3)] == [0, 1, 2]
    finally:
        for store in stores:
            await store.aclose()


async def test_reads_go_on_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    """A writer elsewhere holding the file's write lock delays our writes, never our reads."""
    path = tmp_path / "busy.db"
    async with open_store(f"sqlite:///{path}") as store:
        await store.put("n", "k", "old")
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("UPDATE kv SET value = '\"other\"' WHERE key = 'k'")
            async with anyio.create_task_group() as tg:
                tg.start_soon(store.put, "n", "queued", "new")
                await anyio.wait_all_tasks_blocked()  # the put is now waiting for the file
                assert await store.get("n", "k") == "old"
                assert await store.count("n") == 1
                other.execute("COMMIT")
        finally:
            other.close()
        assert await store.get("n", "k") == "other"
        assert await store.get("n", "queued") == "new"
