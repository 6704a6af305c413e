"""Helpers of the sandbox and end-to-end tests: the small sync project, free ports, a served
runtime."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.servers import free_port
from tests.support.waiting import wait_for

FIXTURE = Path(__file__).parents[1] / "sandbox" / "fixtures" / "sync-project"
#: Every credential of the fixture project, as the environment would carry them.
CREDENTIAL_VARIABLES = ("SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET", "SALESFORCE_LOGIN_URL",
                        "QUICKBOOKS_CLIENT_ID", "QUICKBOOKS_CLIENT_SECRET", "QUICKBOOKS_REALM_ID",
                        "QUICKBOOKS_REFRESH_TOKEN", "QUICKBOOKS_BASE_URL", "QUICKBOOKS_TOKEN_URL",
                        "QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN", "SPLICE_STORE")


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any credential of the fixture project."""
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
    env.update({"PYTHONUNBUFFERED": "1", **extra})
    return env


def splice(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the splice command to completion."""
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], capture_output=True,
                          text=True, env=env or clean_env(), cwd=cwd, timeout=timeout)


def wait_ready(base: str, proc: subprocess.Popen[str], timeout: float = 30, *,
               path: str = "/ready") -> None:
    """Until ``splice serve`` at ``base`` answers 200 on ``/ready`` (or ``path``: ``/health`` for
    a server that is up but whose triggers may not run); fails at once if it exits."""

    def ready() -> bool:
        try:
            if httpx.get(f"{base}{path}", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"splice serve exited with {proc.returncode}")
        return False

    wait_for(ready, timeout=timeout, what="splice serve to become ready")


@contextmanager
def serving(project: Path, *args: str, env: dict[str, str] | None = None, until: str = "/ready"
            ) -> Iterator[tuple[str, subprocess.Popen[str], Path]]:
    """``splice serve`` on a free port in the project's parent directory; SIGTERM at the end.

    Yields the base URL, the process and the file its output goes to, once ``until`` answers 200.
    """
    port = free_port()
    log = project.parent / f"serve-{port}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "serve", "-p", str(project), "--port", str(port),
             *args], cwd=project.parent, stdout=out, stderr=subprocess.STDOUT, text=True,
            env=env or clean_env())
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, path=until)
        yield base, proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
