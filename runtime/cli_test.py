"""``splice test [PYTEST ARGS]``: run a project's flow tests with pytest.

A thin wrapper: pytest runs in the project's directory (``--project DIR``, default the working
directory) with every other argument handed on as it is (``-k``, ``-x``, ``--record-mode=once``),
in the same Python as ``splice``, so Splice's pytest plugin (``splice_project``, ``splice_run``,
``mock_step``; see docs/testing-flows.md) is there. Its exit status is pytest's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from runtime.cli_support import CliError

__all__ = ["add_test_command", "cmd_test"]

_MISSING = ("splice test needs pytest and pytest-recording: pip install 'splice[testing]' "
            "(or pip install pytest pytest-recording)")


def add_test_command(sub: Any) -> None:
    """Register ``splice test`` on the ``splice`` sub-command parser."""
    p = sub.add_parser("test", help="run the project's flow tests (pytest; its options follow)",
                       description="splice test [--project DIR] [PYTEST ARGS]: run pytest in the "
                                   "project with Splice's fixtures; see docs/testing-flows.md",
                       add_help=False, prefix_chars="\0")  # every option is pytest's
    p.add_argument("pytest_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_test)


def pytest_command(args: list[str]) -> tuple[list[str], Path]:
    """The pytest command line for ``splice test ARGS`` and the directory it runs in."""
    directory = Path(".")
    rest: list[str] = []
    items = iter(args)
    for arg in items:
        if arg == "--project":
            directory = Path(next(items, "."))
        elif arg.startswith("--project="):
            directory = Path(arg.partition("=")[2])
        else:
            rest.append(arg)
    command = [sys.executable, "-m", "pytest"]
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):  # entry points off: name the plugin
        command += ["-p", "runtime.pytest_plugin"]
    return command + rest, directory


def cmd_test(args: argparse.Namespace) -> int:
    """Run pytest in the project; pytest's exit status is the command's."""
    if importlib.util.find_spec("pytest") is None:
        raise CliError(_MISSING, code=2)
    command, directory = pytest_command(list(args.pytest_args))
    if not directory.is_dir():
        raise CliError(f"--project {directory}: not a directory", code=2)
    if "--help" in command or "-h" in command:
        print("splice test [--project DIR] [PYTEST ARGS]: pytest with Splice's fixtures "
              "(splice_project, splice_run, mock_step); pytest's help follows.\n", flush=True)
    return subprocess.call(command, cwd=directory)
