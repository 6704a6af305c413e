"""A user's project outside this repository, tested with ``splice test`` and Splice's pytest plugin.

The plugin comes with the installed package (its ``pytest11`` entry point), so a project with no
conftest of its own gets ``splice_run`` and ``mock_step``: stubbed steps, emulated connections and
cassettes recorded then replayed with their secrets scrubbed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.cli_test import pytest_command

pytestmark = pytest.mark.slow

FLOW = """\
flow: greet
steps:
  - transform: '{"name": name, "greeting": "Hello, " & name & "!"}'
  - http.request:
      path: "/customers/#[payload.name]"
    label: lookup-customer
    target: customer
  - transform: '$merge([$, {"tier": $vars.customer.tier}])'
"""

CONNECTIONS = """\
connections:
  crm:
    connector: http
    base-url: https://crm.example.com/api
    bearer-token: ${crm.token:}
"""

TESTS = """\
import pytest
from runtime.errors import SpliceError


def test_greets_with_the_customers_tier(splice_run):
    run = splice_run("greet", {"name": "Zoë"}, stubs={"lookup-customer": {"tier": "gold"}})
    run.assert_completed()
    assert run.payload == {"name": "Zoë", "greeting": "Hello, Zoë!", "tier": "gold"}
    assert run.call("lookup-customer").params["path"] == "/customers/Zoë"
    assert run.call("lookup-customer").stubbed


def test_a_stub_for_the_whole_test(splice_run, mock_step):
    mock_step("lookup-customer", lambda params: {"tier": params["path"].rsplit("/", 1)[1]})
    assert splice_run("greet", {"name": "Bob"}).payload["tier"] == "Bob"
    assert splice_run("greet", {"name": "Ann"}).payload["tier"] == "Ann"


def test_a_failing_call(splice_run):
    failure = SpliceError("CRM is down", error_type="HTTP:SERVICE_UNAVAILABLE")
    run = splice_run("greet", {"name": "Bob"}, stubs={"lookup-customer": failure})
    run.assert_failed("HTTP:SERVICE_UNAVAILABLE")
"""

WRONG = """\
from runtime.errors import SpliceError


def test_expects_the_wrong_tier(splice_run):
    run = splice_run("greet", {"name": "Zoë"}, stubs={"lookup-customer": {"tier": "gold"}})
    assert run.payload["tier"] == "silver"


def test_expects_success_of_a_failing_flow(splice_run):
    down = SpliceError("CRM is down", error_type="HTTP:SERVICE_UNAVAILABLE")
    splice_run("greet", {"name": "Bob"}, stubs={"lookup-customer": down}).assert_completed()
"""

SALESFORCE = """\
connections:
  sf:
    connector: salesforce
    auth: client-credentials
    login-url: https://acme.my.salesforce.com
    client-id: ${sf.client-id:}
    client-secret: ${sf.client-secret:}
"""

ACCOUNTS = """\
flow: account-names
steps:
  - salesforce.query: { query: "SELECT Id, Name FROM Account ORDER BY Name" }
    label: accounts
  - transform: '[$.Name]'
"""

CASSETTE_TEST = """\
import pytest


@pytest.mark.vcr
def test_account_names(splice_run):
    run = splice_run("account-names").assert_completed()
    assert "Initech" in run.payload  # the emulator's demo org
    print("names:", run.payload)
    assert run.call("accounts").params["query"].startswith("SELECT")
"""

ASYNC_TESTS = """\
import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def splice_emulator_options():
    return {"sf": {}}  # an empty org, not the demo one


@pytest.mark.anyio
async def test_the_runtime_opens_in_the_tests_own_loop(splice_project, splice_runtime):
    splice_project.emulators["sf"].state.emulator.org.create("Account", {"Name": "Only One"})
    run = await splice_project.arun("account-names")
    run.assert_completed()
    assert run.payload == ["Only One"] and run.message.payload == ["Only One"]
    assert splice_project.runtime is splice_runtime and splice_project.store is splice_runtime.store


@pytest.mark.anyio
async def test_the_thread_runner_is_refused_there(splice_project, splice_runtime):
    with pytest.raises(RuntimeError, match="await splice_project.arun"):
        splice_project.run("account-names")


@pytest.mark.splice(emulators=False)
def test_the_marker_wins_over_the_fixture(splice_project):
    assert splice_project.emulators == {}
"""


def splice_test(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``splice test ARGS`` in ``cwd``, as a user types it (the venv's ``splice`` command)."""
    command = Path(sys.executable).with_name("splice")
    argv = [str(command)] if command.exists() else [sys.executable, "-m", "runtime.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([*argv, "test", "-q", "-p", "no:cacheprovider", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=180, env=env)


@pytest.fixture
def user_project(tmp_path: Path) -> Path:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "greet.yaml").write_text(FLOW)
    (tmp_path / "flows" / "connections.yaml").write_text(CONNECTIONS)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_greet.py").write_text(TESTS)
    return tmp_path


def test_splice_test_runs_the_projects_tests_with_stubs(user_project: Path) -> None:
    result = splice_test(user_project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_a_wrong_expectation_fails_with_a_readable_message(user_project: Path) -> None:
    (user_project / "tests" / "test_wrong.py").write_text(WRONG)
    result = splice_test(user_project, "tests/test_wrong.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 failed" in result.stdout
    assert "AssertionError: assert 'gold' == 'silver'" in result.stdout
    # A flow that failed says how: its error type, the step and the message.
    assert ("flow 'greet' failed at flow/greet/steps/1: HTTP:SERVICE_UNAVAILABLE: CRM is down"
            in result.stdout)


def test_a_stub_for_a_label_no_step_has_is_refused(user_project: Path) -> None:
    (user_project / "tests" / "test_typo.py").write_text(
        "def test_typo(splice_run):\n"
        "    splice_run('greet', {'name': 'x'}, stubs={'lookup-customr': {}})\n")
    result = splice_test(user_project, "tests/test_typo.py")
    assert result.returncode == 1
    assert "no step is labelled 'lookup-customr'" in result.stdout
    assert "(labels: lookup-customer)" in result.stdout


def test_a_cassette_is_recorded_without_secrets_then_replayed(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "accounts.yaml").write_text(ACCOUNTS)
    (tmp_path / "flows" / "connections.yaml").write_text(SALESFORCE)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_accounts.py").write_text(CASSETTE_TEST)
    (tmp_path / "tests" / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture\ndef splice_cassette_replace():\n"
        "    return {'00DRx0000000001EAA': '00D000000000000AAA'}  # the org id\n")

    recorded = splice_test(tmp_path, "--record-mode=once")
    assert recorded.returncode == 0, recorded.stdout + recorded.stderr
    cassette = tmp_path / "tests" / "cassettes" / "test_accounts" / "test_account_names.yaml"
    text = cassette.read_text()
    assert "SELECT" in text  # the query went through the emulator and was recorded
    assert "authorization" not in text.lower()  # the bearer token of every API call
    assert '"access_token":"<ACCESS_TOKEN>"' in text and '"signature":"<SIGNATURE>"' in text
    assert "client_secret=%3CCLIENT_SECRET%3E" in text
    assert "00DRx0000000001EAA" not in text and "/id/00D000000000000AAA/" in text

    # The replay answers from the cassette, not from the emulator.
    cassette.write_text(text.replace("Globex", "Globex-Replayed"))
    replayed = splice_test(tmp_path, "--record-mode=none", "--block-network", "-s")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "'Globex-Replayed'" in replayed.stdout


def test_async_tests_open_the_runtime_in_their_own_event_loop(tmp_path: Path) -> None:
    """``splice_runtime`` and ``arun``, with the emulators' options chosen by a fixture override."""
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "accounts.yaml").write_text(ACCOUNTS)
    (tmp_path / "flows" / "connections.yaml").write_text(SALESFORCE)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_async.py").write_text(ASYNC_TESTS)
    result = splice_test(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_the_project_and_environment_come_from_the_ini_file_or_a_marker(tmp_path: Path) -> None:
    project = tmp_path / "integration"
    (project / "config").mkdir(parents=True)
    (project / "hello.yaml").write_text(
        "flow: hello\nsteps:\n  - transform: '{\"text\": \"${greeting.word}, \" & name}'\n")
    (project / "config" / "ci.yaml").write_text("greeting: { word: Hej }\n")
    (project / "config" / "dev.yaml").write_text("greeting: { word: Hello }\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\nsplice_project = integration\nsplice_env = ci\n")
    (tmp_path / "test_hello.py").write_text(
        "import pytest\n\n"
        "def test_ini(splice_run):\n"
        "    assert splice_run('hello', {'name': 'Zoë'}).payload == {'text': 'Hej, Zoë'}\n\n"
        "@pytest.mark.splice(env='dev')\n"
        "def test_env_marker(splice_run):\n"
        "    assert splice_run('hello', {'name': 'Zoë'}).payload == {'text': 'Hello, Zoë'}\n\n"
        "@pytest.mark.splice(environ={'GREETING_WORD': 'Hi'})\n"
        "def test_environ_marker(splice_run):\n"
        "    assert splice_run('hello', {'name': 'Zoë'}).payload == {'text': 'Hi, Zoë'}\n")
    result = splice_test(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_splice_test_hands_every_other_argument_to_pytest() -> None:
    command, directory = pytest_command(["--project", "my-flows", "-k", "greet", "-x"])
    assert command[1:] == ["-m", "pytest", "-k", "greet", "-x"] or "-p" in command
    assert command[-3:] == ["-k", "greet", "-x"] and directory == Path("my-flows")
    assert pytest_command(["--project=p", "--record-mode=none"])[1] == Path("p")


def test_splice_test_help_says_what_it_runs(tmp_path: Path) -> None:
    result = splice_test(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("splice test [--project DIR] [PYTEST ARGS]")
    assert "--splice-project=DIR" in result.stdout  # the plugin's options are in pytest's help
