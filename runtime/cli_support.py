"""What every ``splice`` sub-command shares: one-line errors, the project directory, the plugins.

Kept apart from :mod:`runtime.cli` so the command modules (:mod:`runtime.cli_deadletters`) can use it
without importing the parser.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from dsl import FlowErrors
from runtime.plugins import PluginLoadError
from runtime.registry import Registry, load_registry

__all__ = ["CliError", "default_project_dir", "load_cli_project", "load_plugins", "registry"]


class CliError(Exception):
    """A problem to print as one line, with its exit code."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def default_project_dir() -> Path:
    """``$SPLICE_PROJECT``, else ``./flows`` when it exists, else the working directory."""
    if os.environ.get("SPLICE_PROJECT"):
        return Path(os.environ["SPLICE_PROJECT"])
    return Path("flows") if Path("flows").is_dir() else Path(".")


def load_plugins() -> Registry | CliError:
    """The installed plugins' registry, or the error to print when a command needs it.

    ``main`` loads it once per command (the parser needs the plugins' sub-commands too) and keeps
    it on the parsed arguments; a failure is kept rather than raised, since a command that needs no
    plugin (``splice --help``) must still run.
    """
    try:
        return load_registry()
    except PluginLoadError as exc:
        return CliError(f"plugin error: {exc}")


def registry(args: argparse.Namespace) -> Registry:
    """The plugins loaded for this command (loaded here when ``args`` did not come from ``main``)."""
    plugins = getattr(args, "plugins", None)
    if plugins is None:
        plugins = args.plugins = load_plugins()
    if isinstance(plugins, CliError):
        raise plugins
    assert isinstance(plugins, Registry)
    return plugins


def load_cli_project(args: argparse.Namespace, plugins: Registry | None = None) -> Any:
    from runtime.service import load_project

    root = Path(args.project) if args.project else default_project_dir()
    if not root.is_dir():
        raise CliError(f"project directory '{root}' does not exist")
    try:
        project, _ = load_project(root, env=args.env, registry=plugins or registry(args))
    except FlowErrors as errors:
        for error in errors.errors:
            print(error.format(), file=sys.stderr)
        raise CliError(f"{len(errors.errors)} problem(s) in {root}", code=1) from None
    return project
