"""Resolving a file's node tree into flow values: placeholders, templates, durations.

:class:`FileContext` carries what resolving one file needs (its properties, the JSONata engine, the
vocabulary) and collects that file's problems, so the builders can go on after an error and report
everything at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsl.errors import FlowError, FlowValidationError
from dsl.expressions import JsonataEngine
from dsl.libraries import JsonataLibrary
from dsl.loader import Node
from dsl.properties import Properties
from dsl.source import SourceSpan
from dsl.templates import DynamicDict, DynamicList, is_static, resolve_string

if TYPE_CHECKING:
    from dsl.vocabulary import Vocabulary

__all__ = ["FileContext", "parse_duration", "to_value"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: str | float) -> float:
    """Seconds in a duration: ``250ms``, ``30s``, ``5m``, ``1h``, ``1d`` or a number of seconds.

    Raises:
        ValueError: for anything else, or a negative number.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"negative duration: {value!r}")
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def to_value(node: Node) -> Any:
    """A resolved node as a parameter value: plain data, with dynamic containers marked for rendering."""
    if node.kind == "map":
        items = {key: to_value(child) for key, child in node.value.items()}
        return DynamicDict(items) if any(not is_static(v) for v in items.values()) else items
    if node.kind == "seq":
        seq = [to_value(child) for child in node.value]
        return DynamicList(seq) if any(not is_static(v) for v in seq) else seq
    return node.value


@dataclass
class FileContext:
    """One file being built: where it is, how to resolve its strings, and its problems so far."""

    file: str
    properties: Properties
    engine: JsonataEngine
    vocabulary: Vocabulary
    functions: Mapping[str, Callable[..., Any]]
    base_dir: Path | None = None
    root: Path | None = None
    #: The JSONata libraries (``lib/<name>.jsonata``) the file sees, by name; its expressions may use them.
    libraries: Mapping[str, JsonataLibrary] = field(default_factory=dict)
    errors: list[FlowError] = field(default_factory=list)
    #: ``flow-ref`` targets, checked once every flow is known.
    flow_refs: list[tuple[str, SourceSpan]] = field(default_factory=list)
    #: ``(connector, connection or None, span, step or trigger name)`` to check against the config.
    connection_refs: list[tuple[str, str | None, SourceSpan, str]] = field(default_factory=list)

    def error(self, span: SourceSpan, message: str, expected: str | None = None) -> None:
        """Record a validation problem."""
        self.errors.append(FlowValidationError(span, message, expected))

    def resolve(self, node: Node) -> Node:
        """A copy of ``node`` with every string resolved (placeholders, ``#[ ]`` compiled)."""
        if node.kind == "map":
            return Node("map", {k: self.resolve(v) for k, v in node.value.items()}, node.span,
                        keys=node.keys)
        if node.kind == "seq":
            return Node("seq", [self.resolve(v) for v in node.value], node.span)
        if not isinstance(node.value, str):
            return node
        value = resolve_string(node.value, node.position, properties=self.properties, engine=self.engine,
                               functions=self.functions, errors=self.errors, typed=node.style is None,
                               libraries=self.libraries)
        return Node("scalar", value, node.span, style=node.style, content=node.content)

    def value(self, node: Node) -> Any:
        """Resolve ``node`` and return it as a parameter value."""
        return to_value(self.resolve(node))

    def display(self, path: Path) -> str:
        """How a file is named in messages: as reached from the project root the user gave."""
        return Path(os.path.normpath(path)).as_posix()
