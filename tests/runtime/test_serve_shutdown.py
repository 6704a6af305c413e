"""``splice serve`` on a real server: ready when up, and SIGTERM lets in-flight work finish."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
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
