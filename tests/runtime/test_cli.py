"""The ``splice`` command as a user runs it: clear lines and exit codes, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

GOOD = """\
flow: hello
trigger:
  http.listener: { path: /hello }
steps:
  - transform: '{"greeting": "Hello, " & name & "!"}'
"""

BROKEN = """\
flow: broken
steps:
  - transform: '{"a": }'
  - http.reqest: { path: /x }
  - log: { message: "x", level: loud }
"""

FAILING = """\
flow: failing
steps:
  - set-variable: { name: seen, value: "#[payload.n]" }
  - choice:
      - when: "#[payload.n = 2]"
        steps: [ { transform: '$error("two is not allowed")' } ]
on-error:
  - when: ANY
    then: dead-letter
"""


def splice(*args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "flows"
    root.mkdir()
    (root / "hello.yaml").write_text(GOOD)
    return root


def test_validate_reports_every_problem_with_positions(project: Path) -> None:
    (project / "broken.yaml").write_text(BROKEN)
    (project / "garbage.yaml").write_bytes(b"\x00\xff\xfe binary")
    (project / "dup.yaml").write_text(GOOD)
    result = splice("validate", "flows", cwd=project.parent)
    out = result.stdout
    assert result.returncode == 1
    assert "Traceback" not in out + result.stderr
    lines = out.splitlines()
    assert any(":3:" in line and "JSONata" in line for line in lines if "broken.yaml" in line)
    assert any("broken.yaml:4:5: unknown step 'http.reqest'" in line and "http.request" in line
               for line in lines)
    assert any("broken.yaml:5:" in line and "level" in line for line in lines)
    assert any("garbage.yaml" in line for line in lines)
    assert any("dup.yaml:1:7" in line and "duplicate flow name 'hello'" in line for line in lines)


def test_validate_ok(project: Path) -> None:
    result = splice("validate", "flows", cwd=project.parent)
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("ok:")


def test_run_prints_the_result(project: Path) -> None:
    (project.parent / "in.json").write_text(json.dumps({"name": "Zoë"}))
    result = splice("run", "hello", "--input", "in.json", cwd=project.parent)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"greeting": "Hello, Zoë!"}


def test_run_with_bad_input_names_the_position(project: Path) -> None:
    (project.parent / "in.json").write_text('{"name": "x",\n "oops": }')
    result = splice("run", "hello", "--input", "in.json", cwd=project.parent)
    assert result.returncode == 1
    assert "in.json:2:10: input is not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_flow_lists_the_known_ones(project: Path) -> None:
    result = splice("run", "nope", cwd=project.parent)
    assert result.returncode == 1
    assert "no flow named 'nope' (flows: hello)" in result.stderr


def test_dead_letters_list_show_and_replay(project: Path) -> None:
    (project / "failing.yaml").write_text(FAILING)
    cwd = project.parent
    failed = splice("run", "failing", "--input", "-", cwd=cwd, stdin='{"n": 2}')
    assert failed.returncode == 1
    letter_id = json.loads(failed.stdout)["deadLetterId"]

    listed = splice("dlq", "list", cwd=cwd)
    assert letter_id in listed.stdout and "TRANSFORM:EVALUATION" in listed.stdout
    shown = json.loads(splice("dlq", "show", letter_id, cwd=cwd).stdout)
    assert shown["message"]["payload"] == {"n": 2}
    assert shown["error"]["message"].endswith("two is not allowed")
    assert shown["flow"] == "failing"

    # Still failing: the letter is kept (under a new id) and the command says so.
    again = splice("dlq", "replay", letter_id, cwd=cwd)
    assert again.returncode == 1 and "replay failed again" in again.stdout

    # Fix the flow, replay everything: the dead letter goes away.
    (project / "failing.yaml").write_text(FAILING.replace("payload.n = 2", "payload.n = 3"))
    fixed = splice("dlq", "replay", "--all", cwd=cwd)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "replayed, completed" in fixed.stdout
    assert "no dead letters" in splice("dlq", "list", cwd=cwd).stdout


def test_secure_property_round_trip(project: Path) -> None:
    key = "correct horse battery staple"
    encrypted = splice("encrypt", "p@ss-w0rd-value", cwd=project.parent,
                       env={"SPLICE_SECURE_KEY": key})
    assert encrypted.returncode == 0, encrypted.stderr
    token = encrypted.stdout.strip()
    assert token.startswith("![") and "p@ss" not in token
    (project / "config").mkdir()
    (project / "config" / "dev.yaml").write_text(f"api:\n  password: \"{token}\"\n")
    (project / "secret.yaml").write_text(textwrap.dedent("""\
        flow: secret
        steps:
          - transform: '{"length": $length("${secure::api.password}")}'
        """))
    ok = splice("run", "secret", cwd=project.parent, env={"SPLICE_SECURE_KEY": key})
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"length": len("p@ss-w0rd-value")}
    wrong = splice("validate", "flows", cwd=project.parent, env={"SPLICE_SECURE_KEY": "wrong"})
    assert wrong.returncode == 1
    assert "secret.yaml:3:" in wrong.stdout and "cannot decrypt" in wrong.stdout
    assert "p@ss" not in wrong.stdout + wrong.stderr and token not in wrong.stdout


def test_flows_and_schema(project: Path) -> None:
    listed = splice("flows", cwd=project.parent)
    assert listed.returncode == 0
    assert "hello" in listed.stdout and "http.listener path=/hello" in listed.stdout
    schema = json.loads(splice("schema", cwd=project.parent).stdout)
    assert "http.request" in json.dumps(schema)


NIGHTLY = """\
flow: nightly
trigger:
  schedule: { cron: "0 2 * * *" }
steps:
  - transform: '{"ran": true}'
"""


def test_run_of_a_scheduled_flow_refuses_to_overlap_its_running_schedule(project: Path) -> None:
    """While the scheduled run holds the flow's lock (here: held by hand in the same store), a
    manual run says so and changes nothing; once it is free the manual run goes ahead."""
    import anyio

    from runtime.scheduler import schedule_lock
    from runtime.store import open_store

    (project / "nightly.yaml").write_text(NIGHTLY)
    (project.parent / ".splice").mkdir()
    store_url = f"sqlite:///{project.parent / '.splice' / 'store.db'}"

    async def while_locked() -> subprocess.CompletedProcess[str]:
        async with open_store(store_url) as store, store.lock(schedule_lock("nightly"), timeout=0.0):
            return await anyio.to_thread.run_sync(
                lambda: splice("run", "nightly", "-p", "flows", cwd=project.parent))

    refused = anyio.run(while_locked)
    assert refused.returncode == 1
    assert "nightly is running already" in refused.stderr and "Traceback" not in refused.stderr
    assert refused.stdout == ""
    done = splice("run", "nightly", "-p", "flows", cwd=project.parent)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"ran": True}


def test_validate_finds_two_flows_on_one_route(project: Path) -> None:
    """Same method and path, or templates the router cannot tell apart: file:line:col of the later
    flow's trigger, naming both flows; another method on the same path is no conflict."""
    listener = "flow: {name}\ntrigger:\n  http.listener: {{ path: \"{path}\", method: {method} }}\nsteps:\n  - log: x\n"
    (project / "orders.yaml").write_text(listener.format(name="orders", path="/orders/{id}", method="GET"))
    (project / "orders2.yaml").write_text(listener.format(name="orders2", path="/orders/{orderId}/", method="GET"))
    (project / "create.yaml").write_text(listener.format(name="create", path="/orders/{id}", method="POST"))
    (project / "hello2.yaml").write_text(listener.format(name="hello2", path="/hello", method="POST"))
    result = splice("validate", "flows", cwd=project.parent)
    assert result.returncode == 1
    assert result.stdout.splitlines()[:2] == [
        "flows/hello2.yaml:3:3: POST /hello is claimed by both flow 'hello' (trigger at flows/hello.yaml:3:3) "
        "and flow 'hello2', expected one flow per method and path",
        "flows/orders2.yaml:3:3: GET /orders/{orderId}/ (the same route as /orders/{id}) is claimed by both flow "
        "'orders' (trigger at flows/orders.yaml:3:3) and flow 'orders2', expected one flow per method and path",
    ], result.stdout


def test_validate_finds_unknown_library_functions(project: Path) -> None:
    """``$billing.nosuch()`` and ``$nolib.f()``, in a transform file and in ``#[ ]``."""
    (project / "lib").mkdir()
    (project / "lib" / "billing.jsonata").write_text("{ 'amount': function($x) { $round($x, 2) } }\n")
    (project / "t.jsonata").write_text("{\n  'a': $billing.nosuch($payload.x)\n}\n")
    (project / "uses.yaml").write_text("flow: uses\nsteps:\n  - transform: t.jsonata\n"
                                       "  - log: \"#[$nolib.f()] #[$billing.amount(1)]\"\n")
    result = splice("validate", "flows", cwd=project.parent)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("flows/t.jsonata:2:17: JSONata library '$billing' has no function 'nosuch'")
               for line in lines), lines
    assert any(line.startswith("flows/uses.yaml:4:13: unknown JSONata library '$nolib'") for line in lines), lines


def test_serve_refuses_to_start_with_a_bad_cron_from_the_environment(project: Path) -> None:
    """A cron expression that comes from the environment is checked when ``splice serve`` loads the
    project: it does not start (no trigger restarting for ever), and says where and which property."""
    (project / "nightly.yaml").write_text(
        "flow: nightly\ntrigger:\n  schedule: { cron: \"${nightly.schedule}\" }\nsteps:\n  - log: x\n")
    (project / "config").mkdir()
    (project / "config" / "dev.yaml").write_text("nightly:\n  schedule: '0 2 * * *'\n")
    assert splice("validate", "flows", cwd=project.parent).returncode == 0
    env = {"NIGHTLY_SCHEDULE": "0 2 * *"}
    checked = splice("validate", "flows", cwd=project.parent, env=env)
    served = splice("serve", "--project", "flows", "--port", "0", cwd=project.parent, env=env)
    for result in (checked, served):
        output = result.stdout + result.stderr
        assert result.returncode == 1, output
        assert "nightly.yaml:3:21: invalid cron expression '0 2 * *'" in output
        assert "(from ${nightly.schedule})" in output
        assert "Traceback" not in output
