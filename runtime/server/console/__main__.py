"""``python -m runtime.server.console``: read a password and print the hash that
``settings.server.console-users`` takes for it (the password itself is never stored)."""

from __future__ import annotations

import getpass
import sys

from runtime.server.console.auth import hash_password


def main() -> None:
    """Read a password (twice on a terminal, once from a pipe) and print its hash."""
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            sys.exit("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if not password:
        sys.exit("empty password")
    print(hash_password(password))


if __name__ == "__main__":
    main()
