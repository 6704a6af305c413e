"""The monitoring console of ``splice serve`` at ``/console``: server-rendered pages over the admin API.

Overview, executions, dead letters (replay and discard) and reconciliation reports, behind a login
(:mod:`runtime.server.console.auth`). Templates and the style sheet are package data: nothing is built at
install time.
"""

from __future__ import annotations

from runtime.server.console.auth import ConsoleAuth, hash_password
from runtime.server.console.handler import CONSOLE_PREFIX, Console

__all__ = ["CONSOLE_PREFIX", "Console", "ConsoleAuth", "with_console_line", "hash_password"]


def with_console_line(banner: str, server_url: str, access: str, width: int) -> str:
    """The sandbox banner with lines on the console (its URL, how to get in) above its closing
    rule, at most ``width`` columns wide."""
    import textwrap

    lines = banner.rstrip("\n").split("\n")
    added = textwrap.wrap(f"{server_url}{CONSOLE_PREFIX}: {access}", width,
                          initial_indent="  console    ", subsequent_indent=" " * 13,
                          break_on_hyphens=False)
    lines[len(lines) - 1:len(lines) - 1] = added
    return "\n".join(lines) + "\n"
