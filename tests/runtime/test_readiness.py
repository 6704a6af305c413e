"""``GET /ready`` of a real deployment: connections that cannot authenticate, stores that read but
cannot be written (read-only, locked), each a 503 whose JSON says why, and 200 again once fixed."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import dsl
from connectors.quickbooks.emulator import create_app as quickbooks_emulator
from connectors.quickbooks.sandbox import sandbox_settings
from runtime.registry import Registry, load_registry
from runtime.server.app import SpliceApp, create_app
from runtime.service import open_runtime
from runtime.store import open_store
from runtime.testing import wait_until
from tests.support.servers import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.anyio

NOTHING = "flow: nothing\nsteps:\n  - transform: '{}'\n"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry()


class EmulatorServer:
    """An emulator app under uvicorn on a fixed port, that can be stopped and started again: the
    app (its company, its tokens) outlives the server, as a QuickBooks outage does."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        import uvicorn

        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                                     log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_for(lambda: self._server.started, timeout=10, what="the emulator to start",
                 interval=0.02)

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()


@contextmanager
def quickbooks() -> Iterator[EmulatorServer]:
    server = EmulatorServer(quickbooks_emulator(demo=True, client_id="emulator-client",
                                                client_secret="emulator-secret"))
    server.start()
    try:
        yield server
    finally:
        if server._thread is not None and server._thread.is_alive():
            server.stop()


def write_project(root: Path, connections: str = "", store: str = "memory://") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "splice.yaml").write_text(f"settings:\n  store: '{store}'\n{connections}")
    (root / "nothing.yaml").write_text(NOTHING)
    return root


@asynccontextmanager
async def ready_client(root: Path, registry: Registry, store_url: str
                       ) -> AsyncIterator[tuple[httpx.AsyncClient, SpliceApp]]:
    project = dsl.load_project(root, vocabulary=registry, environ={})
    store = open_store(store_url)
    try:
        async with open_runtime(project, registry, store=store) as runtime:
            app = create_app(runtime, drain_timeout=5)
            app.readiness.probe_ttl = 0.2
            async with app.lifespan():
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://splice") as client:
                    yield client, app
    finally:
        await store.aclose()


async def test_ready_turns_503_naming_quickbooks_while_its_api_is_down(
        tmp_path: Path, registry: Registry) -> None:
    with quickbooks() as emulator:
        settings = dict(sandbox_settings(emulator.url))
        settings.pop("environment")
        lines = "".join(f"    {key}: '{value}'\n" for key, value in settings.items())
        root = write_project(tmp_path / "p", "connections:\n  books:\n    connector: quickbooks\n"
                             + lines)
        async with ready_client(root, registry, "memory://") as (client, _app):
            first = await client.get("/ready")
            assert first.status_code == 200, first.json()
            assert first.json()["connections"]["books"]["ok"] is True
            assert first.json()["connections"]["books"]["connector"] == "quickbooks"

            emulator.stop()

            async def not_ready() -> bool:
                return (await client.get("/ready")).status_code == 503

            await wait_until(not_ready, within=30, what="/ready to say QuickBooks is down")
            body = (await client.get("/ready")).json()
            assert body["status"] == "not ready"
            assert body["connections"]["books"]["ok"] is False
            (reason,) = body["reasons"]
            # Refused connections are retried by the client, so the probe's deadline ends it.
            assert reason == "connection 'books' (quickbooks) cannot authenticate: no answer within 2 s"

            emulator.start()

            async def ready() -> bool:
                return (await client.get("/ready")).status_code == 200

            await wait_until(ready, within=30, what="/ready once QuickBooks answers again")
            assert "reasons" not in (await client.get("/ready")).json()


async def test_ready_names_a_quickbooks_company_that_must_be_reconnected(
        tmp_path: Path, registry: Registry) -> None:
    with quickbooks() as emulator:
        settings = dict(sandbox_settings(emulator.url))
        settings.pop("environment")
        settings["refresh-token"] = "a-refresh-token-the-emulator-never-issued"
        lines = "".join(f"    {key}: '{value}'\n" for key, value in settings.items())
        root = write_project(tmp_path / "p", "connections:\n  books:\n    connector: quickbooks\n"
                             + lines)
        async with ready_client(root, registry, "memory://") as (client, _app):
            answer = await client.get("/ready")
            assert answer.status_code == 503
            (reason,) = answer.json()["reasons"]
            assert reason.startswith("connection 'books' (quickbooks) cannot authenticate: "), reason
            assert "a-refresh-token-the-emulator-never-issued" not in answer.text


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` made read-only: ``chmod a-w``, or for root, whom that does not stop, the immutable
    attribute (``chattr +i``)."""
    if os.geteuid() != 0:
        path.chmod(stat.S_IRUSR)
        try:
            yield
        finally:
            path.chmod(stat.S_IRUSR | stat.S_IWUSR)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root without chattr +i: no way to make a file read-only")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(path)], check=True)


async def test_a_read_only_sqlite_store_is_not_ready(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "store.db"
    root = write_project(tmp_path / "p")
    async with ready_client(root, registry, f"sqlite:///{path}") as (client, _app):
        assert (await client.get("/ready")).status_code == 200
        with read_only(path):
            async def not_ready() -> bool:
                return (await client.get("/ready")).status_code == 503

            await wait_until(not_ready, within=10, what="/ready to see the read-only store")
            reasons = (await client.get("/ready")).json()["reasons"]
            assert len(reasons) == 1
            assert reasons[0].startswith(f"the store: the SQLite file {path} is read-only ("), reasons

        async def ready() -> bool:
            return (await client.get("/ready")).status_code == 200

        await wait_until(ready, within=10, what="/ready once the store is writable again")


async def test_a_locked_sqlite_store_is_not_ready_until_the_lock_is_released(
        tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "store.db"
    root = write_project(tmp_path / "p")
    async with ready_client(root, registry, f"sqlite:///{path}") as (client, _app):
        assert (await client.get("/ready")).status_code == 200
        other = sqlite3.connect(str(path), isolation_level=None)  # another process's writer
        other.execute("BEGIN EXCLUSIVE")
        try:
            async def not_ready() -> bool:
                return (await client.get("/ready")).status_code == 503

            await wait_until(not_ready, within=15, what="/ready to see the locked store")
            body = (await client.get("/ready")).json()
            assert body["store"]["ok"] is False
            assert any(f"the SQLite file {path} is locked" in reason for reason in body["reasons"])
        finally:
            other.execute("ROLLBACK")
            other.close()

        async def ready() -> bool:
            return (await client.get("/ready")).status_code == 200

        await wait_until(ready, within=15, what="/ready once the lock is released")


async def test_a_corrupt_sqlite_store_is_not_ready(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "store.db"
    root = write_project(tmp_path / "p")
    # A store file whose pages were overwritten: SQLite opens it, quick_check finds the damage.
    seed = sqlite3.connect(str(path))
    seed.execute("CREATE TABLE filler (x TEXT)")
    seed.executemany("INSERT INTO filler VALUES (?)", [("x" * 500,) for _ in range(200)])
    seed.commit()
    seed.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[2 * page:4 * page] = b"\xff" * (2 * page)
    path.write_bytes(bytes(data))
    project = dsl.load_project(root, vocabulary=registry, environ={})
    store = open_store(f"sqlite:///{path}")
    try:
        async with open_runtime(project, registry, store=store) as runtime:
            app = create_app(runtime, drain_timeout=5)
            async with app.lifespan():
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://splice") as client:
                    answer = await client.get("/ready")
                    assert answer.status_code == 503
                    assert any("is corrupt" in reason for reason in answer.json()["reasons"]), \
                        answer.json()
    finally:
        await store.aclose()
