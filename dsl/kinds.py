"""What a step kind or a trigger adds to the language beyond its JSON Schema.

A step kind (``transform``, ``foreach``, or one a plugin contributes) is a name, the schema of the
value under its key, and a *build* function that turns that value into a typed
:class:`~dsl.model.Step`. A trigger may declare a *check* for the rules its schema cannot say
("exactly one of ``every`` and ``cron``"). Both are plain data handed over by the
:class:`~dsl.vocabulary.Vocabulary`, so ``dsl`` checks flows against them without knowing who
declared them or importing the runtime.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dsl.loader import Node
    from dsl.model import Expression, Step
    from dsl.source import SourceSpan
    from dsl.values import FileContext

__all__ = ["ParamProblem", "SourceCheck", "StepBuild", "StepBuilder", "StepKind"]


class StepBuilder(Protocol):
    """What a step kind's build function may use of the flow being built."""

    @property
    def ctx(self) -> FileContext:
        """The file being built: resolving strings, recording problems, its directory."""
        ...

    def steps(self, node: Node) -> tuple[Step, ...]:
        """Build a nested list of steps (``steps:`` of a ``foreach``), reporting its problems."""
        ...

    def expression(self, node: Node, name: str) -> Expression | None:
        """A node that must be one JSONata expression: ``#[ ... ]``, or bare JSONata text."""
        ...


#: ``build(builder, value node, key span, base)`` -> the step, or ``None`` after recording problems.
#: ``base`` holds the keyword arguments every step takes (``span``, ``label``, ``target``).
StepBuild = Callable[["StepBuilder", "Node", "SourceSpan", dict[str, Any]], "Step | None"]


@dataclass(frozen=True, slots=True)
class StepKind:
    """A step key the language accepts, with the schema of its value and how to build it."""

    name: str
    schema: Mapping[str, Any]
    build: StepBuild


@dataclass(frozen=True, slots=True)
class ParamProblem:
    """A problem a trigger's check found: at ``param``'s value, or at the trigger's key if ``None``."""

    message: str
    expected: str | None = None
    param: str | None = None


#: ``check(params)`` -> problems; runs after the schema check passed and may complete ``params`` in
#: place with what the trigger's runner relies on (a default, a duration as seconds).
SourceCheck = Callable[[dict[str, Any]], Iterable[ParamProblem]]
