"""The README's commands are written as they run: every `splice ...` of its shell blocks parses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from runtime.cli import build_parser
from runtime.registry import load_registry

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _splice_commands() -> list[str]:
    """Each `splice ...` (or `.venv/bin/splice ...`) of the README's sh blocks, without comments."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.splitlines():
            for part in line.split("&&"):
                for piece in part.split("|"):
                    words = shlex.split(piece, comments=True)
                    if words and words[0] in ("splice", ".venv/bin/splice"):
                        commands.append(shlex.join(words))
    return commands


def test_the_readme_has_splice_commands() -> None:
    assert len(_splice_commands()) >= 8


@pytest.mark.parametrize("command", _splice_commands())
def test_each_readme_command_parses(command: str) -> None:
    registry = load_registry()
    pm = registry.plugin_manager
    assert pm is not None
    parser = build_parser(lambda sub: pm.hook.splice_cli(subparsers=sub))
    args = parser.parse_args(shlex.split(command)[1:])
    assert getattr(args, "func", None) is not None


def test_the_readme_says_where_splice_is() -> None:
    """`splice` is in .venv/bin, which the README's install commands never activate."""
    assert "`splice` is `.venv/bin/splice`" in README
