"""``--log-format json``: a run that retries then dead-letters, read back line by line.

Every line ``splice`` writes to stderr is one JSON object; the lines written inside the execution
(the flow's own log step, the engine's retry and dead-letter lines) carry its id, flow and the
business id the flow declares, and that id is the one its history record has. Secrets stay masked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import serve_in_thread

pytestmark = pytest.mark.slow

SECURE_KEY = "correct horse battery staple"
API_KEY = "k3y-of-the-billing-api"

FLOW = """\
flow: invoice
record-ids: ["#[vars.trigger.Id]"]
steps:
  - log: { message: "sending the invoice with key ${secure::billing.key}" }
  - http.request: { connection: billing, method: GET, path: /invoices }
on-error:
  - when: HTTP:SERVICE_UNAVAILABLE
    retry: { attempts: 2, backoff: fixed, initial-delay: 10ms, jitter: 0 }
    then: dead-letter
"""


async def unavailable(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A billing API that is down: 503 to everything."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"error": "down for maintenance"}'})


@pytest.fixture
def billing() -> Iterator[str]:
    with serve_in_thread(unavailable, lifespan="off") as url:
        yield url


def splice(*args: str, cwd: Path, stdin: str | None = None,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SPLICE_SECURE_KEY": SECURE_KEY, **(env or {})})


@pytest.fixture
def project(tmp_path: Path, billing: str) -> Path:
    token = splice("encrypt", API_KEY, cwd=tmp_path).stdout.strip()
    assert token.startswith("![")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "dev.yaml").write_text(f'billing:\n  key: "{token}"\n')
    (tmp_path / "splice.yaml").write_text(textwrap.dedent(f"""\
        connections:
          billing: {{ connector: http, base-url: "{billing}", retry-attempts: 0 }}
        """))
    (tmp_path / "invoice.yaml").write_text(FLOW)
    return tmp_path


def test_every_line_is_json_and_lines_of_the_execution_name_it(project: Path) -> None:
    result = splice("run", "invoice", "--log-format", "json", "--input", "-", cwd=project,
                    stdin='{"Id": "006A1"}')
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["deadLetterId"]
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
        assert line["time"].endswith("Z")

    inside = [line for line in lines if "executionId" in line]
    retries = [line for line in inside if "retry" in line["message"]]
    dead = [line for line in inside if "dead-lettered" in line["message"]]
    said = [line for line in inside if "sending the invoice" in line["message"]]
    assert [line["message"].split(", retry ")[1].split(" in ")[0] for line in retries] == ["1/2", "2/2"]
    assert len(dead) == 1 and len(said) == 1
    execution_ids = {line["executionId"] for line in retries + dead + said}
    assert len(execution_ids) == 1
    for line in retries + dead + said:
        assert line["flow"] == "invoice"
        assert line["recordIds"] == ["006A1"]
        assert line["correlationId"]
    assert retries[0]["level"] == "WARNING" and dead[0]["level"] == "ERROR"
    assert "HTTP:SERVICE_UNAVAILABLE" in dead[0]["message"]

    # The secret is masked on the line that logged it, and nowhere in the output.
    assert "***" in said[0]["message"]
    assert API_KEY not in result.stderr + result.stdout

    # The id on the lines is the execution's id in the history.
    (execution_id,) = execution_ids
    shown = splice("executions", "show", execution_id, "--direct", cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert execution_id in shown.stdout and "dead-lettered" in shown.stdout


def test_text_lines_carry_the_execution_and_json_comes_from_the_environment(project: Path) -> None:
    text = splice("run", "invoice", "--input", "-", cwd=project, stdin='{"Id": "006B2"}')
    retry = next(line for line in text.stderr.splitlines() if "retry 1/2" in line)
    assert "[execution " in retry and "flow invoice records 006B2]" in retry

    by_env = splice("run", "invoice", "--input", "-", cwd=project, stdin='{"Id": "006C3"}',
                    env={"SPLICE_LOG_FORMAT": "json"})
    lines = [json.loads(line) for line in by_env.stderr.splitlines() if line.strip()]
    assert any(line.get("recordIds") == ["006C3"] for line in lines)

    wrong = splice("run", "invoice", cwd=project, env={"SPLICE_LOG_FORMAT": "yaml"})
    assert wrong.returncode == 2
    assert "SPLICE_LOG_FORMAT must be one of text, json, not 'yaml'" in wrong.stderr
