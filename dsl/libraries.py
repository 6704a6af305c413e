"""Reusable JSONata libraries: the project's ``lib/<name>.jsonata`` files, callable from transforms.

A library is a ``.jsonata`` file whose value is an object of functions::

    { 'paymentStatus': function($balance, $total) { ... }, 'cents': function($x) { ... } }

and a transform that names it as ``$<name>`` (``$payments.paymentStatus($b, $t)``) gets it bound
under that name. Libraries are read and checked once when the project loads, so a syntax error in
one is reported once, at its own ``file:line:col``, not in every transform using it. A transform
that calls ``$x.f(...)`` on a name that is neither a library nor one of its own variables is an
error too (an unknown library).

Both engines must run a library alike, and a compiled expression of one engine cannot be handed to
the other, so a transform is compiled together with the text of the libraries it uses: as
``($name := <library>; <transform>)``. Its error positions are mapped back to the transform's own
text by :func:`compose`'s offset.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dsl.errors import FlowError, FlowValidationError
from dsl.expressions import JsonataEngine, compile_expression
from dsl.loader import read_text
from dsl.source import SourceSpan
from dsl.validate import did_you_mean

__all__ = ["LIBRARY_DIR", "JsonataLibrary", "compose", "load_libraries", "unknown_library_calls"]

#: Where a project keeps its libraries, relative to the project root.
LIBRARY_DIR = "lib"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: ``$name.function(``: a call through an object bound to ``$name``.
_CALL = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)\s*\.\s*[A-Za-z_][A-Za-z0-9_]*\s*\(")
#: Names a transform binds itself: ``$name :=`` and function parameters.
_ASSIGNED = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)\s*:=")
_PARAMS = re.compile(r"function\s*\(([^)]*)\)")
_CONTEXT_NAMES = frozenset({"payload", "vars", "attributes"})


@dataclass(frozen=True, slots=True)
class JsonataLibrary:
    """One library: the name it is bound under (without ``$``), its text and where it is written."""

    name: str
    source: str
    span: SourceSpan
    #: False when the library has errors (reported once); transforms naming it are not checked again.
    valid: bool = True

    def uses(self, source: str) -> bool:
        """Whether ``source`` refers to this library (as ``$name``, not ``$names``)."""
        return re.search(rf"\${re.escape(self.name)}(?![A-Za-z0-9_])", source) is not None


def load_libraries(
    root: Path,
    display: Callable[[Path], str],
    engine: JsonataEngine,
    functions: Mapping[str, Callable[..., Any]],
    errors: list[FlowError],
) -> dict[str, JsonataLibrary]:
    """The libraries in ``root/lib``, each checked once with ``engine``; problems go to ``errors``."""
    directory = root / LIBRARY_DIR
    libraries: dict[str, JsonataLibrary] = {}
    if not directory.is_dir():
        return libraries
    for path in sorted(directory.glob("*.jsonata")):
        shown = display(path)
        start = SourceSpan(shown, 1, 1)
        if not _NAME.match(path.stem) or path.stem in _CONTEXT_NAMES or path.stem in functions:
            errors.append(FlowValidationError(start, f"'{path.stem}' cannot name a JSONata library",
                                              "a file name usable as a $variable, not one of payload, "
                                              "vars, attributes or a JSONata function of the project"))
            continue
        text = ""
        try:
            text = read_text(path.read_bytes(), shown)
            compile_expression(text, start, engine=engine, functions=functions)
        except FlowError as exc:
            errors.append(exc)
            libraries[path.stem] = JsonataLibrary(path.stem, text, start, valid=False)
            continue
        libraries[path.stem] = JsonataLibrary(path.stem, text, start)
    return libraries


def compose(source: str, libraries: Iterable[JsonataLibrary]) -> tuple[str, int]:
    """``source`` with ``libraries`` bound around it, and the offset at which ``source`` starts."""
    prefix = "".join(f"${lib.name} := (\n{lib.source}\n);\n" for lib in libraries if lib.valid)
    if not prefix:
        return source, 0
    prefix = "(\n" + prefix
    return f"{prefix}{source}\n)", len(prefix)


def unknown_library_calls(source: str, libraries: Mapping[str, JsonataLibrary]) -> list[tuple[int, str]]:
    """``(offset, message)`` for each ``$x.f(...)`` where ``$x`` is neither a library nor bound by
    ``source`` itself (an assignment or a function parameter)."""
    own = set(_ASSIGNED.findall(source)) | _CONTEXT_NAMES
    for params in _PARAMS.findall(source):
        own.update(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", params))
    problems = []
    for match in _CALL.finditer(source):
        name = match.group(1)
        if name not in libraries and name not in own:
            known = ", ".join(sorted(libraries)) or f"none: add {LIBRARY_DIR}/{name}.jsonata"
            problems.append((match.start(), f"unknown JSONata library '${name}'{did_you_mean(name, libraries)}"
                                            f" (libraries of this project: {known})"))
    return problems
