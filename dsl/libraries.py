"""Reusable JSONata libraries: the project's ``lib/<name>.jsonata`` files, callable from transforms
and from the ``#[ ]`` expressions of flow files.

A library is a ``.jsonata`` file whose value is an object of functions::

    { 'paymentStatus': function($balance, $total) { ... }, 'cents': function($x) { ... } }

and an expression that names it as ``$<name>`` (``$payments.paymentStatus($b, $t)``) gets it bound
under that name. Each flow sees the libraries of the nearest ``lib/`` folder above it. Libraries
are read, compiled and evaluated once per project when it loads, so a syntax error in one is
reported once, at its own ``file:line:col``, not in every expression using it. Calling
``$x.f(...)`` on a name that is neither a library nor one of the expression's own variables is an
error (an unknown library), and so is naming a function the library does not define.

jsonata-python takes the library's object (its functions included) as a binding: it is built once
and bound into each evaluation. jsonatapy cannot take a function from the host (its bindings are
JSON values only), so for it an expression is compiled together with the text of the libraries it
uses, as ``($name := <library>; <expression>)``, and its error positions are mapped back to the
expression's own text by :func:`compose`'s offset.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsl.errors import FlowError, FlowValidationError, did_you_mean
from dsl.expressions import CompiledExpression, ExpressionEvaluationError, JsonataEngine, compile_expression
from dsl.loader import read_text
from dsl.source import SourceSpan

__all__ = ["LIBRARY_DIR", "JsonataLibrary", "compile_with_libraries", "compose", "library_problems",
           "load_libraries"]

#: Where a project keeps its libraries, relative to the project root.
LIBRARY_DIR = "lib"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: ``$name.member``, and ``(`` after it when it is a call.
_MEMBER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)(\s*\()?")
#: Comments and string literals: what is written in them is not a call.
_NOT_CODE = re.compile(r"/\*.*?\*/|\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'", re.S)
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
    #: The names its object defines (its functions); ``None`` when not known (nothing is checked).
    members: frozenset[str] | None = None
    #: The object itself, built once by jsonata-python and bound as ``$<name>`` in evaluations.
    value: Any = field(default=None, compare=False, repr=False)

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
            value = _library_value(text, start, functions)
            if engine.name != "jsonata-python":  # the chosen engine must accept it too
                compile_expression(text, start, engine=engine, functions=functions)
        except FlowError as exc:
            errors.append(exc)
            libraries[path.stem] = JsonataLibrary(path.stem, text, start, valid=False)
            continue
        libraries[path.stem] = JsonataLibrary(path.stem, text, start, members=frozenset(value), value=value)
    return libraries


def _library_value(text: str, start: SourceSpan, functions: Mapping[str, Callable[..., Any]]) -> dict[str, Any]:
    """The library's object, built by jsonata-python (compiled and evaluated this once). A run-time
    error inside one of its functions is reported by jsonata-python at the call in the expression
    that called it, so positions stay in the caller's file."""
    compiled = compile_expression(text, start, engine="jsonata-python", functions=functions)
    try:
        value = compiled.evaluate(None)
    except ExpressionEvaluationError as exc:
        raise FlowValidationError(start, f"the library fails to evaluate: {exc.message}",
                                  "an object of functions") from None
    if not isinstance(value, dict):
        raise FlowValidationError(start, "a JSONata library must be an object of functions",
                                  "{ 'name': function($x) { ... } }")
    return value


def compile_with_libraries(
    source: str,
    span: SourceSpan,
    position: Callable[[int], SourceSpan],
    *,
    engine: JsonataEngine,
    functions: Mapping[str, Callable[..., Any]],
    libraries: Mapping[str, JsonataLibrary],
    errors: list[FlowError],
    what: str = "expression",
) -> CompiledExpression:
    """Compile ``source`` (a transform or a ``#[ ]`` body) with the libraries it uses bound.

    Unknown libraries and functions go to ``errors`` at their position in ``source``.

    Raises:
        FlowSyntaxError: the JSONata itself does not compile.
    """
    for offset, message in library_problems(source, libraries):
        errors.append(FlowValidationError(position(offset), message,
                                          f"a library of the project's lib/ folder, or a variable the {what} "
                                          "binds"))
    used = [library for library in libraries.values() if library.valid and library.uses(source)]
    if engine.name == "jsonata-python":
        return compile_expression(source, span, engine=engine, functions=functions, position=position,
                                  constants={library.name: library.value for library in used})
    composed, start = compose(source, used)
    return compile_expression(composed, span, engine=engine, functions=functions,
                              position=lambda offset: position(max(0, offset - start)), own_start=start)


def compose(source: str, libraries: Iterable[JsonataLibrary]) -> tuple[str, int]:
    """``source`` with ``libraries`` bound around it, and the offset at which ``source`` starts."""
    prefix = "".join(f"${lib.name} := (\n{lib.source}\n);\n" for lib in libraries if lib.valid)
    if not prefix:
        return source, 0
    prefix = "(\n" + prefix
    return f"{prefix}{source}\n)", len(prefix)


def library_problems(source: str, libraries: Mapping[str, JsonataLibrary]) -> list[tuple[int, str]]:
    """``(offset, message)`` for each ``$x.f(...)`` where ``$x`` is neither a library nor bound by
    ``source`` itself (an assignment or a function parameter), and for each ``$lib.f`` naming a
    function library ``lib`` does not define. Comments and string literals are not looked at."""
    code = _NOT_CODE.sub(lambda m: " " * len(m.group(0)), source)
    own = set(_ASSIGNED.findall(code)) | _CONTEXT_NAMES
    for params in _PARAMS.findall(code):
        own.update(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", params))
    problems = []
    for match in _MEMBER.finditer(code):
        name, member, call = match.groups()
        if name in own:
            continue
        library = libraries.get(name)
        if library is None and call:
            known = ", ".join(sorted(libraries)) or f"none: add {LIBRARY_DIR}/{name}.jsonata"
            problems.append((match.start(), f"unknown JSONata library '${name}'{did_you_mean(name, libraries)}"
                                            f" (libraries of this project: {known})"))
        elif library is not None and library.members is not None and member not in library.members:
            known = ", ".join(sorted(library.members)) or "none"
            problems.append((match.start(2), f"JSONata library '${name}' has no function '{member}'"
                                             f"{did_you_mean(member, library.members)} (its functions: {known})"))
    return problems
