"""``splice serve`` on a real server: ready when up, and SIGTERM lets in-flight work finish."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.sandbox import wait_ready
from tests.support.servers import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


@dataclass
class SlowApi:
    """A downstream API that answers only when the test says so."""

    url: str
    arrived: threading.Event  # a request is waiting for its answer
    release: threading.Event  # answer it now


@pytest.fixture
def slow_api() -> Iterator[SlowApi]:
    arrived, release = threading.Event(), threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
            length = int(self.headers.get("content-length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            arrived.set()
            release.wait(timeout=60)
            data = json.dumps({"stored": body}).encode()
            self.send_response(201)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield SlowApi(f"http://127.0.0.1:{server.server_address[1]}", arrived, release)
    release.set()
    server.shutdown()
    server.server_close()


def refuses_connections(port: int) -> bool:
    """Nothing listens on ``port`` any more (a server shutting down closes its socket first)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_drains_in_flight_requests(tmp_path: Path, slow_api: SlowApi) -> None:
    project = tmp_path / "flows"
    project.mkdir()
    (project / "splice.yaml").write_text(f"connections:\n  api: {{ connector: http, base-url: '{slow_api.url}' }}\n")
    (project / "relay.yaml").write_text(
        "flow: relay\n"
        "trigger:\n  http.listener: { path: /relay }\n"
        "steps:\n  - http.request: { method: POST, path: /store, body: '#[payload]' }\n")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "serve", "--port", str(port), "--drain-timeout", "10"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc)

        result: dict[str, httpx.Response] = {}

        def call() -> None:
            result["response"] = httpx.post(f"{base}/relay", json={"n": 1}, timeout=20)

        caller = threading.Thread(target=call)
        caller.start()
        assert slow_api.arrived.wait(timeout=30), "the request did not reach the API"
        proc.send_signal(signal.SIGTERM)
        # The server is shutting down while the request still waits on the API; then it answers.
        wait_for(lambda: refuses_connections(port), timeout=30, interval=0.05,
                 what="splice serve to stop accepting connections")
        slow_api.release.set()
        caller.join(timeout=20)
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read() if proc.stdout else ""
    if proc.stdout:
        proc.stdout.close()
    assert result["response"].status_code == 200
    assert result["response"].json() == {"stored": {"n": 1}}
    assert code == 0, output
    assert "Traceback" not in output


def _relay_project(root: Path, api_url: str, *, store: str | None = None) -> None:
    """A project whose /relay listener waits on ``api_url`` and whose /quick listener answers."""
    root.mkdir()
    settings = f"settings:\n  store: '{store}'\n" if store else ""
    (root / "splice.yaml").write_text(
        f"connections:\n  api: {{ connector: http, base-url: '{api_url}', timeout: 60s }}\n{settings}")
    (root / "relay.yaml").write_text(
        "flow: relay\n"
        "trigger:\n  http.listener: { path: /relay }\n"
        "steps:\n  - http.request: { method: POST, path: /store, body: '#[payload]' }\n")
    (root / "quick.yaml").write_text(
        "flow: quick\ntrigger:\n  http.listener: { path: /quick }\nsteps:\n  - log: quick\n")


def _stop_at_deadline(tmp_path: Path, slow_api: SlowApi, *, lock: Path | None = None
                      ) -> tuple[httpx.Response, float, int, str]:
    """Serve with --drain-timeout 3, leave a /relay request waiting on the API, SIGTERM: the
    request's answer, the seconds from SIGTERM to the exit, the exit code and the output. With
    ``lock``, that SQLite file is locked by this process for writing before the request."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "serve", "--port", str(port), "--drain-timeout", "3"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    holder: sqlite3.Connection | None = None
    try:
        wait_ready(base, proc)
        if lock is not None:
            holder = sqlite3.connect(lock, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")  # another process writing, for as long as it likes
            # An execution ends while the store is locked: its record waits to be written.
            assert httpx.post(f"{base}/quick", json={}, timeout=10).status_code == 200
        result: dict[str, httpx.Response] = {}

        def call() -> None:
            result["response"] = httpx.post(f"{base}/relay", json={"n": 1}, timeout=60)

        caller = threading.Thread(target=call)
        caller.start()
        assert slow_api.arrived.wait(timeout=30), "the request did not reach the API"
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
        took = time.monotonic() - stopped
        caller.join(timeout=10)
    finally:
        if holder is not None:
            holder.close()
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read() if proc.stdout else ""
    if proc.stdout:
        proc.stdout.close()
    return result["response"], took, code, output


def test_a_request_in_flight_at_the_drain_deadline_gets_a_json_503(tmp_path: Path,
                                                                   slow_api: SlowApi) -> None:
    """With --drain-timeout 3, a listener request still waiting at the deadline is stopped and
    answered 503 in JSON (not uvicorn's plain 500 after a CancelledError), and serve exits."""
    _relay_project(tmp_path / "flows", slow_api.url)
    response, took, code, output = _stop_at_deadline(tmp_path, slow_api)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["type"] == "SERVER:SHUTTING_DOWN"
    assert response.headers["retry-after"]
    assert code == 0, output
    assert took < 3 + 10, f"serve took {took:.1f} s to stop with a 3 s drain timeout"
    assert "Traceback" not in output and "CancelledError" not in output


def test_the_drain_deadline_holds_with_a_locked_sqlite_store(tmp_path: Path,
                                                            slow_api: SlowApi) -> None:
    """Another process holds the SQLite store's write lock during the shutdown: the execution
    records waiting to be written, the store's close and the request in flight all end within the
    deadline and a few seconds more (SQLite's busy timeout is 30 s)."""
    _relay_project(tmp_path / "flows", slow_api.url, store="sqlite:///store.db")
    response, took, code, output = _stop_at_deadline(tmp_path, slow_api, lock=tmp_path / "store.db")
    assert response.status_code == 503, response.text
    assert response.json()["error"]["type"] == "SERVER:SHUTTING_DOWN"
    assert took < 3 + 10, f"serve took {took:.1f} s to stop with a 3 s drain timeout\n{output}"
    assert "Traceback" not in output and "CancelledError" not in output
