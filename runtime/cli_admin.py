"""The CLI's side of the admin API: find the running ``splice serve`` of the project, and call it.

``splice executions``, ``splice dlq`` and ``splice status`` ask the server at ``--url`` (default
``$SPLICE_URL`` or http://127.0.0.1:8080) first, with the admin key of ``$SPLICE_ADMIN_KEY`` or the
project's ``settings.server.admin-key``: while a server runs, the CLI never reads or writes the
store behind its back (a replay runs in the server, with its connections). When nothing answers
there, or what answers serves another project than the one the command runs in, the command uses
the store directly; run where there is no project at all (no flows), it uses that server. A server of
this project that refuses the key is an error that says what to set (``--direct`` skips the server).
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsl.model import Project
from runtime.cli_support import CliError

__all__ = ["AdminClient", "add_server_arguments", "find_server"]

logger = logging.getLogger("splice.cli")


@dataclass(frozen=True, slots=True)
class AdminClient:
    """Calls to one server's admin API; every failure is a :class:`CliError` with its message."""

    url: str
    key: str | None
    #: What ``GET /admin/status`` answered when the server was found.
    status: Mapping[str, Any]

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``/admin/<path>`` and the JSON it answered."""
        return self._call("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        """POST JSON to ``/admin/<path>`` and the JSON it answered."""
        return self._call("POST", path, json=body)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            response = httpx.request(method, f"{self.url}/admin/{path}", headers=_headers(self.key),
                                     timeout=300.0, **kwargs)
        except httpx.HTTPError as exc:
            raise CliError(f"the splice serve at {self.url} did not answer: {exc}", code=1) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            raise CliError(str(error.get("message") or f"HTTP {response.status_code}"),
                           code=1 if response.status_code == 404 else 2)
        return body


def _headers(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """``--direct``: act on the store even when a server answers."""
    parser.add_argument("--direct", action="store_true",
                        help="read and write the store directly, without asking a running "
                             "splice serve (by default the command goes through the serve at "
                             "--url when one answers)")


def find_server(args: argparse.Namespace, project: Project) -> AdminClient | None:
    """The admin API of this project's running serve at ``args.url``, or ``None`` to use the store."""
    import httpx

    from runtime.admin_access import ADMIN_KEY_ENV, admin_key

    if getattr(args, "direct", False):
        return None
    url = str(getattr(args, "url", "") or "http://127.0.0.1:8080").rstrip("/")
    # The caller's own key first (it may differ from what this checkout's settings hold).
    key = os.environ.get(ADMIN_KEY_ENV) or admin_key(project.settings.server, environ={})
    try:
        response = httpx.get(f"{url}/admin/status", headers=_headers(key), timeout=5.0)
    except httpx.HTTPError:
        logger.debug("no splice serve answers at %s: using the store", url)
        return None
    if response.status_code == 401:
        raise CliError(f"the splice serve at {url} refuses the admin key: set {ADMIN_KEY_ENV} to "
                       "the server's key (settings.server.admin-key), or pass --direct to use the "
                       "store instead", code=2)
    try:
        status = response.json() if response.status_code == 200 else None
    except ValueError:
        status = None
    if not isinstance(status, dict):
        logger.debug("what answers at %s is no splice serve: using the store", url)
        return None
    served = status.get("project")
    # Run where there is no project (no flows at all), the server's project is the only one meant.
    if served and project.flows and Path(str(served)).resolve() != Path(project.root).resolve():
        logger.warning("the splice serve at %s serves another project (%s); using the store",
                       url, served)
        return None
    logger.info("using the splice serve at %s", url)
    return AdminClient(url=url, key=key, status=status)
