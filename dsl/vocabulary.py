"""What the flow language may say: step kinds, the plugins' operations, sources and connections.

``dsl`` checks flows against this protocol and never imports the runtime; ``runtime.registry``
satisfies it from the installed plugins. Every schema is a JSON Schema object (``type: object``,
``properties``, ``required``, ``additionalProperties: false``); a property marked ``x-secret: true``
holds a secret and ``x-dynamic: false`` forbids ``#[ ... ]`` in it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from dsl.kinds import SourceCheck, StepKind
from dsl.steps import LANGUAGE_STEPS

__all__ = ["EmptyVocabulary", "Vocabulary"]


class Vocabulary(Protocol):
    """Read-only view of the installed step kinds, triggers and connection types.

    Step kinds (``transform``, ``foreach``...) and sources all come from here, the language's own
    ones included: the runtime registers them as plugins, so nothing in ``dsl`` lists them.
    """

    def step_kind_names(self) -> Iterable[str]:
        """Step keys with their own structure (``transform``, ``foreach``...), not operations."""
        ...

    def step_kind(self, name: str) -> StepKind | None:
        """The step kind written ``name:``, or ``None`` (then it may be an operation)."""
        ...

    def operation_names(self) -> Iterable[str]:
        """Qualified operation names, e.g. ``salesforce.query``."""
        ...

    def operation_schema(self, name: str) -> Mapping[str, Any] | None:
        """Parameter schema of an operation, or ``None`` if no plugin provides it."""
        ...

    def source_names(self) -> Iterable[str]:
        """Qualified trigger names contributed by plugins, e.g. ``salesforce.changes``."""
        ...

    def source_schema(self, name: str) -> Mapping[str, Any] | None:
        """Parameter schema of a trigger, or ``None``."""
        ...

    def source_check(self, name: str) -> SourceCheck | None:
        """The trigger's own rules beyond its schema (see :data:`dsl.kinds.SourceCheck`), if any."""
        ...

    def source_routes(self, name: str, params: Mapping[str, Any]) -> Iterable[tuple[str, frozenset[str]]]:
        """The HTTP routes (path template, methods; ``*`` for every method) a trigger with these
        parameters registers; none for a trigger that is not called over HTTP."""
        ...

    def connector_names(self) -> Iterable[str]:
        """Connector names a ``connections:`` entry may use."""
        ...

    def connection_schema(self, connector: str) -> Mapping[str, Any] | None:
        """Settings schema of a connector's connection, or ``None`` if it needs none."""
        ...

    def jsonata_functions(self) -> Mapping[str, Callable[..., Any]]:
        """Custom JSONata functions (name without ``$``) that expressions may call."""
        ...


class EmptyVocabulary:
    """A vocabulary with no plugins: only the language's own step kinds are valid, and no trigger."""

    def step_kind_names(self) -> Iterable[str]:
        return [kind.name for kind in LANGUAGE_STEPS]

    def step_kind(self, name: str) -> StepKind | None:
        return next((kind for kind in LANGUAGE_STEPS if kind.name == name), None)

    def operation_names(self) -> Iterable[str]:
        return ()

    def operation_schema(self, name: str) -> Mapping[str, Any] | None:
        return None

    def source_names(self) -> Iterable[str]:
        return ()

    def source_schema(self, name: str) -> Mapping[str, Any] | None:
        return None

    def source_check(self, name: str) -> SourceCheck | None:
        return None

    def source_routes(self, name: str, params: Mapping[str, Any]) -> Iterable[tuple[str, frozenset[str]]]:
        return ()

    def connector_names(self) -> Iterable[str]:
        return ()

    def connection_schema(self, connector: str) -> Mapping[str, Any] | None:
        return None

    def jsonata_functions(self) -> Mapping[str, Callable[..., Any]]:
        return {}
