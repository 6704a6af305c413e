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
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SlowHandler(http.server.BaseHTTPRequestHandler):
    """A downstream API that takes its time."""

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        time.sleep(1.0)
        data = json.dumps({"stored": body}).encode()
        self.send_response(201)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slow_api() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_sigterm_drains_in_flight_requests(tmp_path: Path, slow_api: str) -> None:
    project = tmp_path / "flows"
    project.mkdir()
    (project / "splice.yaml").write_text(f"connections:\n  api: {{ connector: http, base-url: '{slow_api}' }}\n")
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
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.1)

        result: dict[str, httpx.Response] = {}

        def call() -> None:
            result["response"] = httpx.post(f"{base}/relay", json={"n": 1}, timeout=20)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.4)  # the request is now waiting on the slow API
        proc.send_signal(signal.SIGTERM)
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
