"""Sandbox mode for the commands besides ``splice serve``: ``run``, ``status`` and ``dlq``.

``splice serve`` runs a project whose connections have no credentials against its connectors'
emulators, with a store of its own (:mod:`runtime.sandbox` decides which connections, with
:func:`runtime.sandbox.sandbox_candidates`). The other commands take the same decision, with the
same function and the same ``--sandbox`` / ``--no-sandbox``, so that they act on that sandbox:

- the store is the sandbox's: the running serve's (its ``GET /sandbox`` names it), else the
  sandbox store file (``--sandbox-store``, by default the one serve writes), never the project's
  store, which the sandbox does not use;
- a connection served by an emulator goes to the running serve's emulator (``/sandbox`` gives its
  base URL, the connector's ``SandboxSpec`` the settings, as serve applied them), whose records and
  tokens are the ones that store refers to. Without a serve in sandbox mode no emulator has them:
  a command that needs such a connection says what to do instead, and one that needs none runs.

A command opens only the connections it needs (``splice run FLOW``: those of the flow and the flows
it references, see :mod:`runtime.flow_connections`).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsl.model import Project
from runtime.cli_support import CliError
from runtime.errors import ConnectionConfigError
from runtime.plugins import PluginLoadError
from runtime.registry import Registry

if TYPE_CHECKING:  # the runtime and the stores load when a command opens them, not for --help
    from runtime.service import SpliceRuntime
    from runtime.store.base import ObjectStore

__all__ = ["CliPlan", "add_sandbox_arguments", "open_cli_runtime", "open_cli_store", "plan_command"]

logger = logging.getLogger("splice.cli")


def add_sandbox_arguments(parser: argparse.ArgumentParser, default_url: str) -> None:
    """``--sandbox`` / ``--no-sandbox``, ``--sandbox-store`` and ``--url`` of a command."""
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--sandbox", action="store_true",
                        help="use the sandbox for every connection that has an emulator "
                             "(default: for connections without credentials, as serve does)")
    choice.add_argument("--no-sandbox", action="store_true",
                        help="never use the sandbox (connections without credentials then fail)")
    parser.add_argument("--sandbox-store", metavar="PATH",
                        help="the sandbox's SQLite file when no splice serve in sandbox mode "
                             "answers (default: .splice/sandbox.db, the one serve writes)")
    parser.add_argument("--url", default=default_url,
                        help="a running splice serve in sandbox mode, whose emulators and store "
                             "the command uses (default: $SPLICE_URL or http://127.0.0.1:8080)")


@dataclass(frozen=True, slots=True)
class CliPlan:
    """What a command opens: the project cut to the connections it needs, the store, and the
    settings that point sandboxed connections at the running serve's emulators."""

    project: Project
    #: ``None``: the project's own store.
    store_url: str | None = None
    connection_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Connections left closed, with why (only with ``skip_unreachable``).
    unreachable: Mapping[str, str] = field(default_factory=dict)
    #: The sandbox's description by the running serve (``GET /sandbox``), if one answered.
    served: Mapping[str, Any] | None = None

    @property
    def sandbox(self) -> bool:
        """True when the command runs in sandbox mode."""
        return self.store_url is not None


def _mode(args: argparse.Namespace) -> bool | None:
    if getattr(args, "sandbox", False):
        return True
    if getattr(args, "no_sandbox", False):
        return False
    return None


def _served_sandbox(url: str, project: Project) -> Mapping[str, Any] | None:
    """The ``GET /sandbox`` of a splice serve of this project at ``url``, or None."""
    import httpx

    try:
        response = httpx.get(f"{url.rstrip('/')}/sandbox", timeout=3.0)
        body = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    if not isinstance(body, dict) or body.get("mode") != "sandbox":
        return None
    served_project = body.get("project")
    if served_project and Path(served_project) != Path(project.root).resolve():
        logger.warning("the splice serve at %s serves another project (%s); not using its sandbox",
                       url, served_project)
        return None
    return body


def plan_command(args: argparse.Namespace, project: Project, registry: Registry, *,
                 needed: Collection[str] | None = None, skip_unreachable: bool = False) -> CliPlan:
    """Decide, as ``splice serve`` would, whether the command runs in sandbox mode, and what it
    opens: the connections ``needed`` (default: all), pointed at the running serve's emulators
    when sandboxed. A sandboxed connection with no serve to reach is an error saying what to do,
    or with ``skip_unreachable`` is left closed (listed in :attr:`CliPlan.unreachable`)."""
    from runtime import sandbox as sb  # not for --help or validate: only commands that open a project
    wanted = set(project.connections if needed is None else needed)
    cut = replace(project, connections={n: c for n, c in project.connections.items() if n in wanted})
    try:
        emulated = sb.sandbox_candidates(project, registry, mode=_mode(args))
    except ConnectionConfigError as exc:
        raise CliError(str(exc)) from None
    if not emulated:
        return CliPlan(project=cut)
    url = str(getattr(args, "url", "") or "http://127.0.0.1:8080")
    served = _served_sandbox(url, project)
    if served is not None and served.get("store"):
        store = str(served["store"])
    else:
        path = Path(getattr(args, "sandbox_store", None) or sb.DEFAULT_STORE)
        sb.make_store_directory(path)
        store = sb.store_url(path)
    emulators = (served or {}).get("emulators") or {}
    settings: dict[str, Mapping[str, Any]] = {}
    unreachable: dict[str, str] = {}
    for name in sorted(n for n in emulated if n in wanted):
        config = project.connections[name]
        emulator = emulators.get(name)
        if emulator is None or emulator.get("connector") != config.connector:
            unreachable[name] = _what_to_do(name, config.connector, registry, url, served is not None)
            continue
        try:
            spec = sb.load_sandbox(registry.connectors[config.connector])
        except PluginLoadError as exc:
            raise CliError(f"plugin error: {exc}") from None
        assert spec is not None
        settings[name] = dict(spec.settings(str(emulator["baseUrl"])))
    if unreachable and not skip_unreachable:
        raise CliError(next(iter(unreachable.values())))
    logger.info("sandbox mode (no credentials for %s): store %s%s", ", ".join(emulated), store,
                f"; emulators of the splice serve at {url}" if settings else "")
    cut = replace(cut, connections={n: c for n, c in cut.connections.items() if n not in unreachable})
    return CliPlan(project=cut, store_url=store, connection_settings=settings,
                   unreachable=unreachable, served=served)


def _what_to_do(name: str, connector: str, registry: Registry, url: str, answered: bool) -> str:
    spec = registry.connectors[connector].connection
    secrets = ", ".join(p.name for p in spec.params if p.secret) if spec is not None else ""
    where = (f"the splice serve at {url} does not emulate it" if answered
             else f"no splice serve in sandbox mode answers at {url}")
    return (f"connection '{name}' has no credentials, so it runs against the {connector} emulator "
            f"of the sandbox, and {where}: start `splice serve` (it starts the sandbox) and run "
            "this again (give serve's address with --url or $SPLICE_URL), or set the "
            f"connection's credentials ({secrets}; README: 'Running against real Salesforce and "
            "QuickBooks')")


def open_cli_store(plan: CliPlan) -> ObjectStore:
    """The store the command reads: the sandbox's in sandbox mode, else the project's."""
    from runtime.store import open_store

    return open_store(plan.store_url or plan.project.settings.store_url)


@asynccontextmanager
async def open_cli_runtime(plan: CliPlan, registry: Registry) -> AsyncIterator[SpliceRuntime]:
    """The runtime of a command: the planned connections and store."""
    from runtime.service import open_runtime

    if not plan.sandbox:
        async with open_runtime(plan.project, registry) as runtime:
            yield runtime
        return
    store = open_cli_store(plan)
    try:
        async with open_runtime(plan.project, registry, store=store,
                                connection_settings=plan.connection_settings) as runtime:
            yield runtime
    finally:
        await store.aclose()
