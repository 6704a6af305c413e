"""What the admin API and the CLI that calls it share: the admin key, and the project's fingerprint.

Kept out of :mod:`runtime.server` so that the CLI's commands can use it without importing the
server (the runtime depends on its server in one place only: ``splice serve``).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime.redaction import register_secret

__all__ = ["ADMIN_KEY_ENV", "admin_key", "is_loopback", "project_fingerprint"]

ADMIN_KEY_ENV = "SPLICE_ADMIN_KEY"

_PROJECT_SUFFIXES = (".yaml", ".yml", ".jsonata", ".json", ".properties")


def admin_key(settings: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> str | None:
    """The configured admin key: ``settings.server.admin-key``, else ``$SPLICE_ADMIN_KEY``."""
    environ = os.environ if environ is None else environ
    key = settings.get("admin-key") or environ.get(ADMIN_KEY_ENV) or None
    if key is not None:
        register_secret(str(key))
    return None if key is None else str(key)


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address or ``localhost``) is this machine: what a sandbox serve without
    an admin key lets in (both the client's and the server's address must be)."""
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def project_fingerprint(root: str | Path) -> str:
    """A digest of the project's files (flows, transforms, config) as they are on disk now.

    The serve reports the one it started with; ``splice dlq replay`` compares it with the files it
    sees, so that a replay after a fix to the flows runs the fixed flows (in the CLI) rather than
    what the serve loaded before the fix. Hidden directories (``.splice``, ``.venv``, ``.git``) and
    ``node_modules`` are skipped, and at most 5000 files are read.
    """
    import hashlib

    base = Path(root).resolve()
    files: list[Path] = []
    for folder, dirs, names in os.walk(base):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "node_modules")
        files += [Path(folder) / name for name in sorted(names) if name.endswith(_PROJECT_SUFFIXES)]
        if len(files) >= 5000:
            break
    digest = hashlib.sha256()
    for path in files[:5000]:
        digest.update(str(path.relative_to(base)).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            continue
        digest.update(b"\0")
    return digest.hexdigest()
