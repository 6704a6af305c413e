"""The other commands in a project without credentials: ``splice run``, ``status`` and ``dlq`` use
the sandbox as ``splice serve`` does (its store, its emulators), or say exactly what to do."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.sandbox import clean_env, serving, splice

pytestmark = pytest.mark.slow

#: Nothing listens there: no splice serve to find.
NOBODY = "http://127.0.0.1:9"

HELLO = """\
flow: hello
trigger:
  http.listener: { path: /hello, method: POST }
steps:
  - transform: '{"greeting": "Hello, " & name & "!"}'
"""

FAILING = """\
flow: failing
steps:
  - transform: '$error("nothing works here")'
on-error:
  - when: ANY
    then: dead-letter
"""

#: Reads Salesforce, then fails when asked to (and dead-letters); ``accounts`` flow-refs it.
CHECK = """\
flow: check-accounts
trigger:
  http.listener: { path: /check, method: POST }
steps:
  - set-variable: { name: fail, value: "#[payload.fail]" }
  - salesforce.query: { query: "SELECT Name FROM Account ORDER BY Name" }
  - choice:
      - when: "#[vars.fail = true]"
        steps: [ { transform: '$error("asked to fail")' } ]
on-error:
  - when: ANY
    then: dead-letter
"""

ACCOUNTS = """\
flow: accounts
steps:
  - flow-ref: check-accounts
"""


def _project(project: Path) -> Path:
    for name, text in (("hello", HELLO), ("failing", FAILING), ("check-accounts", CHECK),
                       ("accounts", ACCOUNTS)):
        (project / "flows" / f"{name}.yaml").write_text(text)
    return project


def test_without_a_serve_the_commands_use_the_sandbox_store_or_say_what_to_do(project: Path) -> None:
    """`splice run hello` needs no connection and runs (it used to fail on the Salesforce
    connection's missing client id); its dead letters go to the sandbox's store, where `dlq list`
    and `status` read them; a flow that needs an emulated connection, directly or through a
    flow-ref, says what to start or set, and `status` reports such connections instead of failing."""
    _project(project)
    cwd, env = project.parent, clean_env(SPLICE_URL=NOBODY)
    (cwd / "payload.json").write_text('{"name": "Ada"}')
    hello = splice("run", "hello", "-p", str(project), "--input", "payload.json", env=env, cwd=cwd)
    assert hello.returncode == 0, hello.stderr
    assert json.loads(hello.stdout) == {"greeting": "Hello, Ada!"}
    assert "client-id" not in hello.stderr

    failed = splice("run", "failing", "-p", str(project), env=env, cwd=cwd)
    assert failed.returncode == 1, failed.stderr
    letter = json.loads(failed.stdout)["deadLetterId"]
    assert (cwd / ".splice" / "sandbox.db").exists() and not (cwd / ".splice" / "store.db").exists()
    listed = splice("dlq", "list", "-p", str(project), env=env, cwd=cwd)
    assert listed.returncode == 0 and letter in listed.stdout, listed.stdout + listed.stderr
    shown = splice("dlq", "show", letter, "-p", str(project), env=env, cwd=cwd)
    assert json.loads(shown.stdout)["flow"] == "failing"

    for flow in ("check-accounts", "accounts"):
        refused = splice("run", flow, "-p", str(project), env=env, cwd=cwd)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr.startswith(
            "splice: connection 'salesforce' has no credentials, so it runs against the salesforce "
            f"emulator of the sandbox, and no splice serve in sandbox mode answers at {NOBODY}: "
            "start `splice serve`"), refused.stderr
        assert "client-secret" in refused.stderr and "Traceback" not in refused.stderr

    status = splice("status", "-p", str(project), env=env, cwd=cwd)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["deadLetters"] == 1 and report["sandbox"]["serve"] is None
    assert report["sandbox"]["store"].endswith(".splice/sandbox.db")
    assert report["connections"]["salesforce"]["open"] is False
    assert "no splice serve in sandbox mode" in report["connections"]["quickbooks"]["reason"]

    # --no-sandbox: the project's own store and the connector's own message, as before.
    real = splice("run", "accounts", "-p", str(project), "--no-sandbox", env=env, cwd=cwd)
    assert real.returncode != 0 and "client-id is required" in real.stderr
    assert "no dead letters" in splice("dlq", "list", "-p", str(project), "--no-sandbox",
                                       env=env, cwd=cwd).stdout


def test_with_a_serve_in_sandbox_mode_the_commands_use_its_store_and_emulators(project: Path) -> None:
    """What serve dead-lettered is what `splice dlq list` shows; `status` reports serve's
    emulated connections; after a fix `dlq replay` runs the letter against serve's Salesforce
    emulator and completes; `splice run` of a flow that reads Salesforce works."""
    _project(project)
    cwd = project.parent
    with serving(project) as (base, _proc, log):
        env = clean_env(SPLICE_URL=base)
        failed = httpx.post(f"{base}/check", json={"fail": True}, timeout=30)
        assert failed.status_code >= 400, failed.text

        listed = splice("dlq", "list", "-p", str(project), env=env, cwd=cwd)
        assert listed.returncode == 0, listed.stderr
        rows = [line for line in listed.stdout.splitlines() if "check-accounts" in line]
        assert len(rows) == 1 and "asked to fail" in rows[0], listed.stdout
        letter = rows[0].split()[0]

        status = splice("status", "-p", str(project), env=env, cwd=cwd)
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["deadLetters"] == 1 and report["sandbox"]["serve"] == base
        assert set(report["connections"]) == {"salesforce", "quickbooks"}
        assert all(c.get("open") is not False for c in report["connections"].values()), report

        (project / "flows" / "check-accounts.yaml").write_text(CHECK.replace("vars.fail = true",
                                                                             "vars.fail = 'never'"))
        replayed = splice("dlq", "replay", letter, "-p", str(project), env=env, cwd=cwd)
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert f"{letter}: replayed, completed" in replayed.stdout
        assert "no dead letters" in splice("dlq", "list", "-p", str(project), env=env, cwd=cwd).stdout

        ran = splice("run", "accounts", "-p", str(project), env=env, cwd=cwd)
        assert ran.returncode == 0, ran.stderr
        names = [account["Name"] for account in json.loads(ran.stdout)]
        assert "O'Brien Logistics" in names and len(names) >= 6  # the demo org's accounts
    assert "Traceback" not in log.read_text()
