"""Typed parameter values: what a connector reads is what its :class:`~runtime.spec.Param` declares.

Flows give parameters as YAML scalars, ``${property}`` strings or the results of ``#[ ... ]``
expressions, so a duration may arrive as ``"30s"`` or ``30`` and an integer as ``"5"``. The runtime
turns every value into its declared type once, before connector code sees it: durations become
seconds (``float``), integers ``int``, numbers ``float``, booleans ``bool``; enums are checked and
secrets registered for redaction. Defaults are filled in (already coerced).

:func:`compile_params` builds the function for one parameter list once (per spec), so a message
pays only for the parameters it actually gives whose type needs a conversion.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from dsl.values import parse_duration
from runtime.errors import SpliceError
from runtime.redaction import register_secret

if TYPE_CHECKING:
    from runtime.spec import Param

__all__ = ["INVALID_PARAMETER", "ParamCoercer", "compile_params"]

#: The error type of a value that does not fit its parameter's type (never retryable).
INVALID_PARAMETER = "FLOW:INVALID_PARAMETER"

#: ``coerce(values) -> dict``: defaults filled in, every given value of its declared type.
ParamCoercer = Callable[[Mapping[str, Any]], dict[str, Any]]

_Convert = Callable[[Any], Any]
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def _duration(value: Any) -> float:
    return parse_duration(value)


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    return int(str(value).strip())


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        return float(value)
    return float(str(value).strip())


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(value)


_CONVERTERS: dict[str, tuple[_Convert, str]] = {
    "duration": (_duration, "a duration: 250ms, 30s, 5m, 1h, 1d, or a number of seconds"),
    "integer": (_integer, "an integer"),
    "number": (_number, "a number"),
    "boolean": (_boolean, "true or false"),
}


def _converter(param: Param, owner: str, error_type: str) -> _Convert | None:
    """The conversion of one parameter's given value, or ``None`` when it is taken as it is.

    Each case gets its own small function, so the common ones (a checked enum, a typed value)
    cost one call and one test per message.
    """
    typed = _CONVERTERS.get(param.type) if param.schema is None else None
    enum = tuple(param.enum) if param.enum is not None else None
    secret = param.secret
    if typed is None and enum is None and not secret:
        return None
    where = f"{owner}: parameter '{param.name}'" if owner else f"parameter '{param.name}'"

    def invalid(value: Any, expected: str) -> SpliceError:
        shown = "a secret value" if secret else repr(value)
        return SpliceError(f"{where} expects {expected}, got {shown}", error_type=error_type,
                           details={"parameter": param.name, "expected": expected})

    if typed is not None and enum is None and not secret:
        to_type, expected = typed

        def convert_typed(value: Any) -> Any:
            try:
                return to_type(value)
            except (TypeError, ValueError):
                raise invalid(value, expected) from None

        return convert_typed
    if typed is None and enum is not None and not secret:
        allowed = enum
        one_of = "one of " + ", ".join(str(e) for e in enum)

        def check_enum(value: Any) -> Any:
            if value in allowed:
                return value
            raise invalid(value, one_of)

        return check_enum

    def convert(value: Any) -> Any:
        if typed is not None:
            try:
                value = typed[0](value)
            except (TypeError, ValueError):
                raise invalid(value, typed[1]) from None
        if enum is not None and value not in enum:
            raise invalid(value, "one of " + ", ".join(str(e) for e in enum))
        if secret and isinstance(value, str):
            register_secret(value)
        return value

    return convert


def compile_params(params: tuple[Param, ...], *, owner: str = "",
                   error_type: str = INVALID_PARAMETER) -> ParamCoercer:
    """The coercion of one parameter list, built once: defaults plus typed given values.

    ``owner`` (an operation, source or connection name) starts error messages. A value that does
    not fit raises a non-retryable :class:`SpliceError` of ``error_type`` naming the parameter and
    what it expects. A ``None`` value counts as not given; names the spec does not declare pass unchanged.

    Raises:
        SpliceError: at compile time already, for a default that does not fit its own type.
    """
    converters = {p.name: c for p in params
                  if (c := _converter(p, owner, error_type)) is not None}
    defaults = {p.name: converters[p.name](p.default) if p.name in converters else p.default
                for p in params if p.default is not None}
    # Only parameters with a conversion or a default are looked at per message.
    watched = tuple((p.name, converters.get(p.name), defaults.get(p.name)) for p in params
                    if p.name in converters or p.name in defaults)

    def coerce(values: Mapping[str, Any]) -> dict[str, Any]:
        out = {**defaults, **values}
        get = values.get
        for name, convert, default in watched:
            value = get(name)
            if value is None:
                if default is not None and name in values:  # given as null: the default applies
                    out[name] = default
            elif convert is not None:
                out[name] = convert(value)
        return out

    return coerce
