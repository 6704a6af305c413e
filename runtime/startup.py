"""Start-up checks: flows that run once, before any trigger, and must complete for the start to go on.

A project names them in ``settings.startup-checks`` (a list of flow names). A check flow reads what
its configuration depends on (a name in a property against a list of the target system, a field
that must exist) and fails, with a message that says what is wrong, when it does not hold:
``$error('...')`` in a transform is the usual way. The runtime knows nothing of what a check
checks; it runs them in order, and the first that fails stops the start:

- ``splice serve`` does not start serving: it exits non-zero with the check's message (an
  operator sees the mistake at once, instead of a server whose executions all fail later);
- ``splice run`` runs the checks first too, and says the same.

Checks run with the connections of the runtime, as any flow does; a check that cannot reach its
system fails the start too, since the runtime could not have done its work either.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from runtime.errors import SpliceError
from runtime.message import Event

if TYPE_CHECKING:
    from dsl.model import Project
    from runtime.service import SpliceRuntime

__all__ = ["SETTING", "StartupCheckError", "run_startup_checks", "startup_checks"]

logger = logging.getLogger("splice.startup")

#: The project setting that lists the check flows.
SETTING = "startup-checks"


class StartupCheckError(SpliceError):
    """A start-up check flow failed (or a listed check is no flow): the runtime must not start."""

    default_type = "STARTUP:CHECK_FAILED"


def startup_checks(project: Project) -> list[str]:
    """The check flows ``settings.startup-checks`` lists, in order (each one a flow of the project)."""
    listed: Any = project.settings.extra.get(SETTING) or []
    if isinstance(listed, str):
        listed = [listed]
    if not isinstance(listed, Sequence) or not all(isinstance(n, str) for n in listed):
        raise StartupCheckError(f"settings.{SETTING} must be a list of flow names")
    unknown = [name for name in listed if name not in project.flows]
    if unknown:
        raise StartupCheckError(f"settings.{SETTING} names no flow {', '.join(map(repr, unknown))} "
                                f"(flows: {', '.join(sorted(project.flows)) or 'none'})")
    return list(listed)


async def run_startup_checks(runtime: SpliceRuntime, checks: Sequence[str] | None = None) -> None:
    """Run each check flow once; raise :class:`StartupCheckError` with the first failure's message."""
    for name in startup_checks(runtime.project) if checks is None else checks:
        outcome = await runtime.engine.run(name, Event(payload=None))
        if outcome.status != "completed":
            reason = outcome.error.message if outcome.error is not None else outcome.status
            raise StartupCheckError(f"start-up check {name} failed: {reason}",
                                    details={"flow": name})
        logger.info("start-up check %s passed", name)
