"""The typed registry: every installed step kind, connector, operation, source and JSONata function.

Built once. Hooks are called here and nowhere else; the engine then looks runners and operations up
in plain dicts, so no pluggy dispatch happens per message. The registry is also the
:class:`dsl.vocabulary.Vocabulary` that flows are validated against and the editor schema is
generated from: the language's own step kinds and the ``schedule`` trigger come in through the
runtime's built-in plugin (:mod:`runtime.builtins`), as a third party's would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import pluggy

from dsl.kinds import SourceCheck, StepKind
from dsl.model import Step
from runtime.plugins import PluginLoadError, create_plugin_manager
from runtime.spec import Connector, OperationSpec, SourceSpec, StepSpec
from runtime.steps.execution import StepRunner

__all__ = ["Registry", "load_registry"]


@dataclass(slots=True)
class Registry:
    """Step kinds by step key, connectors by name, operations and sources by qualified name
    (``salesforce.query``; a source not tied to a connector, such as ``schedule``, by its own)."""

    steps: dict[str, StepSpec] = field(default_factory=dict)
    #: Each step model class's runner: what the engine calls for every step of that class.
    runners: dict[type[Step], StepRunner] = field(default_factory=dict)
    connectors: dict[str, Connector] = field(default_factory=dict)
    operations: dict[str, OperationSpec] = field(default_factory=dict)
    sources: dict[str, SourceSpec] = field(default_factory=dict)
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)
    #: Which distribution (or plugin name) contributed each connector: for error messages and docs.
    origins: dict[str, str] = field(default_factory=dict)
    #: The plugin manager it was built from, for hooks called later (``splice_cli``).
    plugin_manager: pluggy.PluginManager | None = None

    def add_connector(self, connector: Connector, origin: str) -> None:
        """Add one connector; a second connector of the same name names both origins."""
        if connector.name in self.connectors:
            raise PluginLoadError(
                f"connector '{connector.name}' is provided twice: by {self.origins[connector.name]} "
                f"and by {origin}")
        self.connectors[connector.name] = connector
        self.origins[connector.name] = origin
        for op in connector.operations:
            self.operations[f"{connector.name}.{op.name}"] = op
        for src in connector.sources:
            self.sources[f"{connector.name}.{src.name}"] = src
        self.add_functions(connector.functions, origin)

    def add_step(self, spec: StepSpec, origin: str) -> None:
        """Add one step kind; a step key or model class taken twice is an error."""
        if spec.node in self.runners:
            raise PluginLoadError(f"steps of type {spec.node.__name__} get a runner twice ({origin})")
        if spec.kind is not None:
            if spec.kind.name in self.steps or spec.kind.name in self.operations:
                raise PluginLoadError(f"step '{spec.kind.name}' is provided twice ({origin})")
            self.steps[spec.kind.name] = spec
        self.runners[spec.node] = spec.run

    def add_source(self, spec: SourceSpec, origin: str) -> None:
        """Add a trigger not tied to a connector, under its own name (``schedule``)."""
        if spec.name in self.sources:
            raise PluginLoadError(f"trigger '{spec.name}' is provided twice ({origin})")
        self.sources[spec.name] = spec

    def add_functions(self, functions: Mapping[str, Callable[..., Any]], origin: str) -> None:
        """Add JSONata functions; a name taken twice is an error."""
        for name, fn in functions.items():
            if name in self.functions:
                raise PluginLoadError(f"JSONata function '${name}' is provided twice ({origin})")
            self.functions[name] = fn

    # -- dsl.vocabulary.Vocabulary -------------------------------------------------------------

    def step_kind_names(self) -> Iterable[str]:
        return list(self.steps)

    def step_kind(self, name: str) -> StepKind | None:
        spec = self.steps.get(name)
        return spec.kind if spec is not None else None

    def operation_names(self) -> Iterable[str]:
        return sorted(self.operations)

    def operation_schema(self, name: str) -> Mapping[str, Any] | None:
        op = self.operations.get(name)
        return op.schema() if op else None

    def source_names(self) -> Iterable[str]:
        return sorted(self.sources)

    def source_schema(self, name: str) -> Mapping[str, Any] | None:
        src = self.sources.get(name)
        return src.schema() if src else None

    def source_check(self, name: str) -> SourceCheck | None:
        src = self.sources.get(name)
        return src.check if src else None

    def source_routes(self, name: str, params: Mapping[str, Any]) -> list[tuple[str, frozenset[str]]]:
        src = self.sources.get(name)
        return src.claimed_routes(params) if src else []

    def connector_names(self) -> Iterable[str]:
        return sorted(name for name, c in self.connectors.items() if c.connection is not None)

    def connection_schema(self, connector: str) -> Mapping[str, Any] | None:
        c = self.connectors.get(connector)
        return c.connection.schema() if c and c.connection else None

    def jsonata_functions(self) -> Mapping[str, Callable[..., Any]]:
        return self.functions


def _origin(pm: pluggy.PluginManager, plugin: object) -> str:
    for plug, dist in pm.list_plugin_distinfo():
        if plug is plugin:
            return f"distribution '{dist.project_name}' {dist.version}"
    return f"plugin '{pm.get_name(plugin)}'"


def load_registry(extra_plugins: Iterable[object] = (), *,
                  load_entry_points: bool = True) -> Registry:
    """Build the registry from the installed plugins (plus ``extra_plugins``)."""
    pm = create_plugin_manager(extra_plugins, load_entry_points=load_entry_points)
    registry = Registry(plugin_manager=pm)
    for impl in pm.hook.splice_steps.get_hookimpls():
        origin = _origin(pm, impl.plugin)
        for step in cast(Iterable[StepSpec], impl.function() or ()):
            registry.add_step(step, origin)
    for impl in pm.hook.splice_sources.get_hookimpls():
        origin = _origin(pm, impl.plugin)
        for source in cast(Iterable[SourceSpec], impl.function() or ()):
            registry.add_source(source, origin)
    for impl in pm.hook.splice_connectors.get_hookimpls():
        origin = _origin(pm, impl.plugin)
        connectors = cast(Iterable[Connector], impl.function() or ())
        for connector in connectors:
            registry.add_connector(connector, origin)
    for impl in pm.hook.splice_jsonata_functions.get_hookimpls():
        functions = cast(Mapping[str, Callable[..., Any]], impl.function() or {})
        registry.add_functions(functions, _origin(pm, impl.plugin))
    return registry
