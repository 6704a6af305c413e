"""JSONata expressions, compiled once at load time, evaluated per message by one of two engines.

``jsonata-python`` (module ``jsonata``) is the reference and always installed; ``jsonatapy`` (Rust,
the ``fast`` extra) is several times faster. ``get_engine("auto")`` picks ``jsonatapy`` when it is
importable. Both are wrapped so that they behave alike where it matters to a flow:

* every evaluation gets a fresh bindings mapping (jsonata-python shares evaluation state between
  concurrent callers otherwise);
* ``$now()`` and ``$millis()`` read one clock per evaluation (jsonata-python would return the time
  the expression was compiled);
* custom functions from the vocabulary are callable as ``$name(...)`` in both;
* syntax errors always carry a position: the source is parsed by jsonata-python too, which reports
  a character offset, turned into ``file:line:col`` by the caller;
* every failure while evaluating, whatever the engine raised, becomes one
  :class:`ExpressionEvaluationError` with the JSONata error code when there is one.
"""

from __future__ import annotations

import datetime as _dt
import importlib.util
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jsonata as _jsonata_python

from dsl.errors import FlowSyntaxError
from dsl.nesting import MAX_NESTING, too_deep_expression
from dsl.source import SourceSpan

__all__ = [
    "ENGINE_NAMES",
    "CompiledExpression",
    "CompiledJsonata",
    "ExpressionEvaluationError",
    "JsonataEngine",
    "JsonataSyntaxError",
    "compile_expression",
    "get_engine",
]

ENGINE_NAMES = ("auto", "jsonata-python", "jsonatapy")
_CODE = re.compile(r"^(?:Parse error:\s*)?(?P<code>[SDTU]\d{4})\s*:?\s*(?P<message>.*)$", re.S)


class ExpressionEvaluationError(Exception):
    """Evaluating an expression failed; ``code`` is the JSONata code (``T2001``...) when known.

    The runtime turns it into a ``TRANSFORM:*`` error; ``span`` is where the expression is written.
    """

    def __init__(self, message: str, code: str | None = None, span: SourceSpan | None = None) -> None:
        self.message = message
        self.code = code
        self.span = span
        text = f"{code}: {message}" if code else message
        super().__init__(f"{span}: {text}" if span else text)


class JsonataSyntaxError(Exception):
    """An engine rejected an expression's source; ``offset`` is the character position when known."""

    def __init__(self, message: str, offset: int | None = None, code: str | None = None) -> None:
        self.message = message
        self.offset = offset
        self.code = code
        super().__init__(message)


class CompiledJsonata(Protocol):
    """One engine's compiled form of an expression."""

    def evaluate(self, data: Any, bindings: dict[str, Any]) -> Any:
        """Evaluate with a fresh ``bindings`` dict owned by this call."""
        ...


class JsonataEngine(Protocol):
    """A JSONata implementation."""

    name: str

    def compile(self, source: str, functions: Mapping[str, Callable[..., Any]] | None = None) -> CompiledJsonata:
        """Compile ``source`` with ``functions`` callable as ``$name``; raises :class:`JsonataSyntaxError`."""
        ...


# --------------------------------------------------------------------------------------------------
# The clock: one timestamp per evaluation, the same in both engines
# --------------------------------------------------------------------------------------------------

_clock = threading.local()


def _current_millis() -> int:
    millis = getattr(_clock, "millis", None)
    return millis if millis is not None else int(time.time() * 1000)


def _format_millis(millis: int, picture: str | None = None, timezone: str | None = None) -> str:
    if picture is None and timezone is None:
        moment = _dt.datetime.fromtimestamp(millis / 1000, _dt.UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"
    return str(_jsonata_python.Functions.datetime_from_millis(millis, picture, timezone))


def _now(picture: str | None = None, timezone: str | None = None) -> str:
    return _format_millis(_current_millis(), picture, timezone)


def _millis() -> int:
    return _current_millis()


def _error_code(message: str) -> tuple[str | None, str]:
    match = _CODE.match(message.strip())
    if match:
        return match.group("code"), match.group("message").strip()
    return None, message


# --------------------------------------------------------------------------------------------------
# Engines
# --------------------------------------------------------------------------------------------------


class _PythonCompiled:
    __slots__ = ("_expr",)

    def __init__(self, expr: Any) -> None:
        self._expr = expr

    def evaluate(self, data: Any, bindings: dict[str, Any]) -> Any:
        bindings["now"] = _NOW_LAMBDA
        bindings["millis"] = _MILLIS_LAMBDA
        try:
            return self._expr.evaluate(data, bindings)
        except _jsonata_python.JException as exc:
            raise ExpressionEvaluationError(str(exc), exc.error) from None


_NOW_LAMBDA = _jsonata_python.Jsonata.JLambda(_now)
_MILLIS_LAMBDA = _jsonata_python.Jsonata.JLambda(_millis)


class JsonataPythonEngine:
    """The reference engine (``jsonata-python``)."""

    name = "jsonata-python"

    def compile(self, source: str, functions: Mapping[str, Callable[..., Any]] | None = None) -> _PythonCompiled:
        try:
            expr = _jsonata_python.Jsonata(source)
        except _jsonata_python.JException as exc:
            offset = exc.location if isinstance(exc.location, int) and exc.location >= 0 else None
            raise JsonataSyntaxError(str(exc), offset, exc.error) from None
        except Exception as exc:  # noqa: BLE001 - the parser can fail with plain Python errors too
            raise JsonataSyntaxError(f"{type(exc).__name__}: {exc}") from None
        for name, func in (functions or {}).items():
            expr.register_lambda(name, func)
        return _PythonCompiled(expr)


#: Per thread: (source, functions) -> jsonatapy expression. jsonatapy objects may be used and freed
#: only on the thread that created them, so each thread keeps its own, freed when the thread ends or
#: by this thread's own eviction, never by another thread's garbage collection.
_rust_cache = threading.local()
_RUST_CACHE_SIZE = 4096

_Functions = tuple[tuple[str, Callable[..., Any]], ...]


class _RustCompiled:
    """A jsonatapy expression, looked up in (or compiled into) the calling thread's cache."""

    __slots__ = ("_engine", "_key")

    def __init__(self, engine: JsonatapyEngine, key: tuple[str, _Functions]) -> None:
        self._engine = engine
        self._key = key

    def evaluate(self, data: Any, bindings: dict[str, Any]) -> Any:
        expr = self._engine.for_thread(self._key)
        try:
            return expr.evaluate(data, bindings or None)
        except ValueError as exc:
            code, message = _error_code(str(exc))
            raise ExpressionEvaluationError(message, code) from None


class JsonatapyEngine:
    """The Rust engine (``jsonatapy``), when installed."""

    name = "jsonatapy"

    def __init__(self) -> None:
        import jsonatapy

        self._module = jsonatapy

    def compile(self, source: str, functions: Mapping[str, Callable[..., Any]] | None = None) -> _RustCompiled:
        key = (source, tuple(sorted((functions or {}).items(), key=lambda item: item[0])))
        try:
            self.for_thread(key)
        except ValueError as exc:
            code, message = _error_code(str(exc))
            raise JsonataSyntaxError(message, None, code) from None
        return _RustCompiled(self, key)

    def for_thread(self, key: tuple[str, _Functions]) -> Any:
        """The calling thread's jsonatapy expression for ``(source, functions)``."""
        cache: OrderedDict[tuple[str, _Functions], Any] | None = getattr(_rust_cache, "exprs", None)
        if cache is None:
            cache = _rust_cache.exprs = OrderedDict()
        expr = cache.get(key)
        if expr is None:
            expr = self._build(*key)
            cache[key] = expr
            if len(cache) > _RUST_CACHE_SIZE:
                cache.popitem(last=False)
        else:
            cache.move_to_end(key)
        return expr

    def _build(self, source: str, functions: _Functions) -> Any:
        expr = self._module.compile(source)
        expr.register_override("now", _now)
        expr.register_override("millis", _millis)
        for name, func in functions:
            expr.register(name, func)
        return expr


_engines: dict[str, JsonataEngine] = {}


def get_engine(name: str = "auto") -> JsonataEngine:
    """The engine called ``name``: ``auto``, ``jsonata-python`` or ``jsonatapy``.

    Raises:
        ValueError: for an unknown name, or ``jsonatapy`` when it is not installed.
    """
    if name == "auto":
        name = "jsonatapy" if importlib.util.find_spec("jsonatapy") is not None else "jsonata-python"
    if name not in ENGINE_NAMES:
        raise ValueError(f"unknown JSONata engine {name!r}, expected one of: {', '.join(ENGINE_NAMES)}")
    if name not in _engines:
        if name == "jsonatapy":
            if importlib.util.find_spec("jsonatapy") is None:
                raise ValueError("JSONata engine 'jsonatapy' is not installed (pip install 'splice[fast]')")
            _engines[name] = JsonatapyEngine()
        else:
            _engines[name] = JsonataPythonEngine()
    return _engines[name]


# --------------------------------------------------------------------------------------------------
# Expressions as the flow model sees them
# --------------------------------------------------------------------------------------------------


_CONTEXT_NAMES = frozenset({"payload", "vars", "attributes"})
#: ``$`` not followed by a name (``$``, ``$$``, ``$.``), or a wildcard: the whole input is read.
_READS_WHOLE_INPUT = re.compile(r"\$(?![A-Za-z_])|\*")
#: ``payload.Id``, ``vars.trigger.Account.Name``: plain field paths, looked up without the engine.
_SIMPLE_PATH = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\s*$")
_NOT_SIMPLE = object()
_KEYWORDS = frozenset({"true", "false", "null", "and", "or", "in"})


def _walk(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    """A plain path through nested objects, as JSONata reads it; ``_NOT_SIMPLE`` when the path
    crosses an array or a scalar (JSONata's mapping rules apply then, so the engine must answer)."""
    value: Any = data
    for key in path:
        if value is None:
            return None
        if not isinstance(value, dict):
            return _NOT_SIMPLE
        value = value.get(key)
    return value


class CompiledExpression:
    """A compiled ``#[ ]`` or transform expression (the model's :class:`~dsl.model.Expression`)."""

    __slots__ = ("__weakref__", "_bound", "_compiled", "_constants", "_path", "context_fields", "engine",
                 "own_start", "source", "span")

    def __init__(self, source: str, span: SourceSpan, compiled: CompiledJsonata, engine: str,
                 own_start: int = 0, constants: Mapping[str, Any] | None = None) -> None:
        self.source = source
        self.span = span
        #: Where the author's own text starts in ``source`` (after library code bound around it):
        #: run-time error positions are counted from there.
        self.own_start = own_start
        self.engine = engine
        self._compiled = compiled
        #: Values bound in every evaluation, over the caller's (the libraries' objects, built once).
        self._constants = dict(constants or {})
        # What the expression can see decides what must be handed to the engine: converting a large
        # payload into the engine's values costs more than evaluating a typical transform, and the
        # payload is reachable three ways (input, $payload, $vars.trigger).
        self._bound = frozenset(n for n in _CONTEXT_NAMES if f"${n}" in source)
        #: Top-level fields of a template's input document the expression may read (None: all).
        self.context_fields: frozenset[str] | None = (
            None if _READS_WHOLE_INPUT.search(source)
            else frozenset(n for n in _CONTEXT_NAMES if re.search(rf"(?<![\w$.]){n}\b", source)))
        match = _SIMPLE_PATH.match(source)
        path = tuple(part.strip() for part in match.group(0).split(".")) if match else ()
        self._path = path if path and not _KEYWORDS.intersection(path) else None

    def __repr__(self) -> str:
        return f"CompiledExpression({self.source!r} at {self.span})"

    def evaluate(self, data: Any, bindings: Mapping[str, Any] | None = None) -> Any:
        """Evaluate against ``data`` with extra variables ``bindings`` (names without ``$``).

        Raises:
            ExpressionEvaluationError: whatever went wrong inside the engine.
        """
        if self._path is not None and isinstance(data, dict):
            found = _walk(data, self._path)
            if found is not _NOT_SIMPLE:
                return found
        fresh = ({k: v for k, v in bindings.items() if k in self._bound or k not in _CONTEXT_NAMES}
                 if bindings else {})
        if self._constants:
            fresh.update(self._constants)
        previous = getattr(_clock, "millis", None)
        _clock.millis = int(time.time() * 1000)
        try:
            return self._compiled.evaluate(data, fresh)
        except ExpressionEvaluationError as exc:
            raise ExpressionEvaluationError(exc.message, exc.code, self.span) from None
        except RecursionError:
            raise ExpressionEvaluationError("expression recursed too deeply", "D1011", self.span) from None
        except Exception as exc:  # noqa: BLE001 - engines leak plain Python errors; make them one kind
            raise ExpressionEvaluationError(f"{type(exc).__name__}: {exc}", None, self.span) from None
        except BaseException as exc:
            if type(exc).__name__ != "PanicException":  # a Rust panic inside jsonatapy
                raise
            raise ExpressionEvaluationError(f"engine failure: {exc}", None, self.span) from None
        finally:
            _clock.millis = previous


def compile_expression(
    source: str,
    span: SourceSpan,
    *,
    engine: JsonataEngine | str = "auto",
    functions: Mapping[str, Callable[..., Any]] | None = None,
    position: Callable[[int], SourceSpan] | None = None,
    own_start: int = 0,
    constants: Mapping[str, Any] | None = None,
) -> CompiledExpression:
    """Compile JSONata written at ``span`` (``position`` maps an offset in ``source`` to the file).

    ``own_start`` is where the author's text starts in ``source`` when code was bound around it;
    ``constants`` are values bound (as ``$name``) in every evaluation.

    Raises:
        FlowSyntaxError: ``invalid JSONata: <message>`` at the position of the problem.
    """
    if isinstance(engine, str):
        engine = get_engine(engine)
    where = position or (lambda offset: span.shifted(source, offset))
    if not source.strip():
        raise FlowSyntaxError(span, "empty expression", "a JSONata expression")
    deep = too_deep_expression(source)
    if deep is not None:  # the JSONata parsers recurse per level
        raise FlowSyntaxError(where(deep), f"expression nested deeper than {MAX_NESTING} levels",
                              "a flatter expression (split it with $functions or variables)")
    reference = get_engine("jsonata-python")
    try:
        compiled = reference.compile(source, functions)
        if engine.name != reference.name:
            compiled = engine.compile(source, functions)
    except JsonataSyntaxError as exc:
        at = where(_error_offset(source, exc.offset)) if exc.offset is not None else span
        code = f" ({exc.code})" if exc.code else ""
        raise FlowSyntaxError(at, f"invalid JSONata: {exc.message}{code}") from None
    return CompiledExpression(source, span, compiled, engine.name, own_start, constants)


def _error_offset(source: str, offset: int) -> int:
    """jsonata-python points just past the offending token; step back onto it."""
    offset = min(max(offset, 1), len(source)) - 1
    while offset > 0 and source[offset].isspace():
        offset -= 1
    return offset
