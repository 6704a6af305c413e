"""How the CLI writes: help that lists what is installed, closed pipes, configuration errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runtime.cli import main

HELLO = """\
flow: hello
trigger:
  http.listener: { path: /hello }
steps:
  - transform: '{"greeting": "Hello"}'
"""


def test_sandbox_help_lists_the_installed_emulators_and_actions(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["sandbox", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "quickbooks, salesforce" in out
    assert "  close-opportunity <Id|Name>\n      set an opportunity's stage to Closed Won" in out
    assert "  pay <Invoice Id|DocNumber> <amount>\n" in out
    assert "  list\n" in out


@pytest.mark.parametrize(("args", "status"), [(["docs", "-o", "-"], 141),
                                              (["sandbox", "--help"], 0)], ids=["command", "help"])
def test_a_closed_pipe_ends_the_command_quietly(args: list[str], status: int,
                                                tmp_path: Path) -> None:
    """`splice ... | head` closes the pipe early: no traceback, no "Exception ignored"; a command
    ends with status 141 as one ended by SIGPIPE does (argparse's help ignores the closed pipe)."""
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", *args], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()  # before the command writes anything: its first write meets a closed pipe
    _, stderr = proc.communicate(timeout=120)
    assert stderr.decode() == ""
    assert proc.returncode == status


def test_a_bad_store_url_is_a_configuration_error_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hello.yaml").write_text(HELLO)
    (tmp_path / "splice.yaml").write_text('settings:\n  store: "bogus://nowhere"\n')
    assert main(["dlq", "list", "--project", str(tmp_path), "--no-sandbox"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("splice: configuration error: unknown store URL scheme 'bogus'")
    assert "internal error" not in err
    assert err.count("\n") == 1


def test_a_bad_server_policy_is_a_configuration_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hello.yaml").write_text(HELLO)
    (tmp_path / "splice.yaml").write_text(
        "settings:\n  store: memory://\n  server: { policies: [ { bogus: {} } ] }\n")
    assert main(["serve", "--project", str(tmp_path), "--no-sandbox", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "splice: configuration error: policy #1: unknown policy 'bogus'" in err
    assert "internal error" not in err


def test_a_store_path_that_cannot_be_made_is_a_configuration_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hello.yaml").write_text(HELLO)
    (tmp_path / "a-file").write_text("not a directory")
    (tmp_path / "splice.yaml").write_text(
        f'settings:\n  store: "sqlite:///{tmp_path}/a-file/store.db"\n')
    assert main(["dlq", "list", "--project", str(tmp_path), "--no-sandbox"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("splice: configuration error: cannot open the SQLite store ")
    assert "internal error" not in err


def test_a_sandbox_store_that_cannot_be_made_is_a_configuration_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "splice.yaml").write_text(
        "connections:\n  salesforce: { connector: salesforce, auth: client-credentials, "
        "client-id: x }\n")
    (tmp_path / "a-file").write_text("not a directory")
    store = tmp_path / "a-file" / "sandbox.db"
    assert main(["dlq", "list", "--project", str(tmp_path), "--sandbox-store", str(store),
                 "--url", "http://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("splice: configuration error: cannot create the directory of the "
                          "sandbox store ")
    assert "internal error" not in err


def test_an_unreachable_postgresql_store_is_one_line_without_its_password(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hello.yaml").write_text(HELLO)
    (tmp_path / "splice.yaml").write_text(
        'settings:\n  store: "postgresql://splice:hunter2@127.0.0.1:1/splice"\n')
    assert main(["dlq", "list", "--project", str(tmp_path), "--no-sandbox"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("splice: configuration error: cannot open the PostgreSQL store "
                          "'splice@127.0.0.1:1/splice': ")
    assert "hunter2" not in err and err.count("\n") == 1
