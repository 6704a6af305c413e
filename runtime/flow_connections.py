"""Which connections running a flow can touch, so a command that runs one flow opens only those.

``splice run FLOW`` used to open every connection of the project, so a flow that calls no system
failed when some other connection had no credentials. The answer is read from the loaded model:
every connector operation in the flow's steps (nested steps of any step kind included, a plugin's
too, and the steps of its error handlers), with its named connection or its connector's only one,
and the same for every flow it reaches through ``flow-ref``. Triggers are left out: running a flow
once does not start its trigger.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from dsl.model import FlowRefStep, OperationStep, Project, Step, Template

__all__ = ["connections_used"]


def connections_used(project: Project, flows: Iterable[str]) -> set[str]:
    """The names of the project's connections that running ``flows`` may use."""
    by_connector: dict[str, list[str]] = {}
    for name, config in project.connections.items():
        by_connector.setdefault(config.connector, []).append(name)
    only = {connector: names[0] for connector, names in by_connector.items() if len(names) == 1}
    used: set[str] = set()
    seen: set[str] = set()
    pending = list(flows)
    while pending:
        name = pending.pop()
        flow = project.flows.get(name)
        if flow is None or name in seen:
            continue
        seen.add(name)
        for step in _steps((flow.steps, flow.on_error)):
            if isinstance(step, OperationStep):
                connection = step.connection or only.get(step.connector)
                if connection is not None and connection in project.connections:
                    used.add(connection)
            elif isinstance(step, FlowRefStep):
                pending.append(step.flow)
    return used


def _steps(node: object) -> Iterable[Step]:
    """Every step in ``node``, however deep: steps, tuples of them, and whatever holds them
    (choice branches, error handlers, a plugin's own step kinds). Values and expressions hold none."""
    if isinstance(node, Template | str | bytes | int | float | bool) or node is None:
        return
    if isinstance(node, Step):
        yield node
        if isinstance(node, OperationStep | FlowRefStep):
            return  # leaves: their parameters are values
    if isinstance(node, tuple | list):
        for item in node:
            yield from _steps(item)
    elif isinstance(node, Mapping):
        for item in node.values():
            yield from _steps(item)
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        for field in dataclasses.fields(node):
            if field.name != "span":
                yield from _steps(getattr(node, field.name))
