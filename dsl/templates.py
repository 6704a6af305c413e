"""Strings with ``${...}`` placeholders and ``#[ ... ]`` expressions: parsed at load, rendered per message.

``template.lark`` is the grammar; :func:`parse_template` turns a string into literal, placeholder
and expression parts, and :func:`resolve_string` resolves the placeholders and compiles the
expressions, giving the plain value (no ``#[``) or a :class:`~dsl.model.Template`.

Parameter trees keep their static parts as plain ``dict``/``list``/scalars; a container holding a
template somewhere below it is a :class:`DynamicDict` / :class:`DynamicList`, so :func:`render`
copies only the dynamic paths and returns static subtrees as they are (treat them as read-only).
Trees built by hand must go through :func:`prepare_value` first.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from dsl.errors import FlowError, FlowSyntaxError
from dsl.expressions import JsonataEngine, get_engine
from dsl.libraries import JsonataLibrary, compile_with_libraries
from dsl.model import Template
from dsl.nesting import MAX_NESTING, too_deep_expression
from dsl.properties import Properties, substitute_placeholders, to_text
from dsl.source import SourceSpan

__all__ = [
    "DynamicDict",
    "DynamicList",
    "ExpressionPart",
    "PlaceholderPart",
    "UNRESOLVED",
    "TemplateSyntaxError",
    "format_value",
    "is_static",
    "parse_template",
    "prepare_value",
    "render",
    "render_template",
    "resolve_string",
]

_MARKERS = ("#[", "${", "\\#[", "$${")


class _Unresolved:
    """Stands for a string whose placeholder or expression failed (already reported): checks skip it."""

    def __repr__(self) -> str:
        return "<unresolved>"


#: The value of a string that could not be resolved; never part of a successfully loaded model.
UNRESOLVED: Any = _Unresolved()


@dataclass(frozen=True, slots=True)
class PlaceholderPart:
    """``${body}`` at character ``offset`` of the string."""

    body: str
    offset: int


@dataclass(frozen=True, slots=True)
class ExpressionPart:
    """``#[ source ]``; ``offset`` is where ``source`` starts in the string."""

    source: str
    offset: int


class TemplateSyntaxError(Exception):
    """A string's ``${`` / ``#[`` structure is broken at character ``offset``."""

    def __init__(self, offset: int, message: str, expected: str | None = None) -> None:
        self.offset = offset
        self.message = message
        self.expected = expected
        super().__init__(message)


class _Parts(Transformer[Token, list[Any]]):
    """Tree -> list of ``str`` / :class:`PlaceholderPart` / :class:`ExpressionPart`."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def start(self, children: list[Any]) -> list[Any]:
        parts: list[Any] = []
        for child in children:
            if isinstance(child, str) and parts and isinstance(parts[-1], str):
                parts[-1] += child
            else:
                parts.append(child)
        return parts

    def text(self, children: list[Token]) -> str:
        return str(children[0])

    def escaped(self, children: list[Token]) -> str:
        return "#[" if children[0].type == "ESC_EXPR" else "${"

    def placeholder(self, children: list[Token]) -> PlaceholderPart:
        body = children[1] if len(children) == 3 else ""
        return PlaceholderPart(str(body), children[0].start_pos or 0)

    def expression(self, children: list[Any]) -> ExpressionPart:
        start = children[0].end_pos or 0
        end = children[-1].start_pos or 0
        return ExpressionPart(self._text[start:end], start)

    def bracket(self, children: list[Any]) -> None:
        return None


@cache
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "template.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True)


def parse_template(text: str) -> list[str | PlaceholderPart | ExpressionPart]:
    """Split ``text`` into literal strings, placeholders and expressions.

    Raises:
        TemplateSyntaxError: an unterminated ``#[``/``${``, string or comment, with its position.
    """
    opened = text.find("#[")
    deep = too_deep_expression(text, opened) if opened >= 0 else None
    if deep is not None:  # the tree below would be too deep to transform
        raise TemplateSyntaxError(deep, f"expression nested deeper than {MAX_NESTING} levels",
                                  "a flatter expression (or a transform file with $functions)")
    try:
        tree = _parser().parse(text)
    except UnexpectedToken as exc:
        raise _unclosed(exc, text) from None
    except UnexpectedCharacters as exc:
        pos = exc.pos_in_stream or 0
        char = text[pos] if pos < len(text) else ""
        what = {"\"": "string", "'": "string", "`": "quoted name", "/": "comment"}.get(char, "text")
        closer = {"/": "'*/'"}.get(char, f"a closing {char}" if what != "text" else "']'")
        raise TemplateSyntaxError(pos, f"unterminated {what} in expression", closer) from None
    except UnexpectedInput as exc:  # pragma: no cover - the contextual LALR parser raises the above
        raise TemplateSyntaxError(getattr(exc, "pos_in_stream", 0) or 0, "invalid template") from None
    return _Parts(text).transform(tree)


def _unclosed(exc: UnexpectedToken, text: str) -> TemplateSyntaxError:
    """Find the ``#[`` or ``${`` that is still open when the parser gave up."""
    stack = exc.interactive_parser.parser_state.value_stack if exc.interactive_parser else []
    for item in stack:
        if isinstance(item, Token) and item.type == "EXPR_OPEN":
            return TemplateSyntaxError(item.start_pos or 0, "unterminated expression", "']' to close '#['")
    for item in reversed(stack):
        if isinstance(item, Token) and item.type == "PH_OPEN":
            return TemplateSyntaxError(item.start_pos or 0, "unterminated placeholder", "'}' to close '${'")
    return TemplateSyntaxError(exc.token.start_pos or 0, f"unexpected {exc.token!r}")


def resolve_string(
    text: str,
    position: Callable[[int], SourceSpan],
    *,
    properties: Properties,
    engine: JsonataEngine | str,
    functions: Mapping[str, Callable[..., Any]] | None,
    errors: list[FlowError],
    typed: bool = True,
    libraries: Mapping[str, JsonataLibrary] | None = None,
) -> Any:
    """Resolve the placeholders of a YAML string and compile its expressions.

    Returns the string itself when there is nothing to do, the property's value with its type when
    the string is exactly one placeholder and ``typed`` (an unquoted YAML scalar: quoting asks for
    a string), a :class:`~dsl.model.Template` when there is an expression, else the interpolated
    string. Problems go to ``errors``.
    """
    if not any(marker in text for marker in _MARKERS):
        return text
    try:
        parts = parse_template(text)
    except TemplateSyntaxError as exc:
        errors.append(FlowSyntaxError(position(exc.offset), exc.message, exc.expected))
        return UNRESOLVED
    if typed and len(parts) == 1 and isinstance(parts[0], PlaceholderPart):
        return _placeholder(parts[0], properties, position, errors, typed=True)
    failed = False
    out: list[Any] = []
    for part in parts:
        if isinstance(part, PlaceholderPart):
            resolved = _placeholder(part, properties, position, errors, typed=False)
            failed = failed or resolved is UNRESOLVED
            value: Any = "" if resolved is UNRESOLVED else to_text(resolved)
        elif isinstance(part, ExpressionPart):
            inner = _shifted(position, part.offset)
            source = substitute_placeholders(part.source, properties, inner, errors)
            try:
                value = compile_with_libraries(source, position(part.offset), inner,
                                               engine=get_engine(engine) if isinstance(engine, str) else engine,
                                               functions=functions or {}, libraries=libraries or {},
                                               errors=errors)
            except FlowError as exc:
                errors.append(exc)
                failed = True
                value = ""
        else:
            value = part
        if isinstance(value, str) and out and isinstance(out[-1], str):
            out[-1] += value
        else:
            out.append(value)
    if failed:
        return UNRESOLVED
    if all(isinstance(part, str) for part in out):
        return "".join(out)
    return Template(tuple(part for part in out if part != ""), position(0), text)


def _shifted(position: Callable[[int], SourceSpan], base: int) -> Callable[[int], SourceSpan]:
    """Positions inside an expression body that starts ``base`` characters into the string."""
    return lambda offset: position(base + offset)


def _placeholder(part: PlaceholderPart, properties: Properties, position: Callable[[int], SourceSpan],
                 errors: list[FlowError], *, typed: bool) -> Any:
    try:
        return properties.resolve(part.body, position(part.offset), typed=typed)
    except FlowError as exc:
        errors.append(exc)
        return UNRESOLVED


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


class DynamicDict(dict[str, Any]):
    """A mapping with a :class:`~dsl.model.Template` somewhere below it (rendered per message)."""


class DynamicList(list[Any]):
    """A list with a :class:`~dsl.model.Template` somewhere below it (rendered per message)."""


def prepare_value(value: Any) -> Any:
    """Mark the containers of a hand-built tree that hold templates, so :func:`render` finds them."""
    if isinstance(value, Mapping) and not isinstance(value, DynamicDict):
        items = {k: prepare_value(v) for k, v in value.items()}
        return DynamicDict(items) if any(not is_static(v) for v in items.values()) else value
    if isinstance(value, list | tuple) and not isinstance(value, DynamicList):
        seq = [prepare_value(v) for v in value]
        return DynamicList(seq) if any(not is_static(v) for v in seq) else value
    return value


def is_static(value: Any) -> bool:
    """True when rendering ``value`` would return it unchanged (no template in it)."""
    return not isinstance(value, Template | DynamicDict | DynamicList)


def render(value: Any, *, payload: Any = None, attributes: Any = None, vars: Any = None) -> Any:  # noqa: A002
    """Render a parameter tree for one message.

    Expressions see ``{"payload", "attributes", "vars"}`` as input and as ``$payload`` etc.

    Raises:
        ExpressionEvaluationError: an expression failed.
    """
    if is_static(value):
        return value
    context = {"payload": payload, "attributes": attributes if attributes is not None else {},
               "vars": vars if vars is not None else {}}
    return _render(value, context)


def _render(value: Any, context: dict[str, Any]) -> Any:
    kind = type(value)
    if kind is Template:
        return render_template(value, context)
    if kind is DynamicDict:
        return {k: _render(v, context) for k, v in value.items()}
    if kind is DynamicList:
        return [_render(v, context) for v in value]
    return value


def render_template(template: Template, context: dict[str, Any]) -> Any:
    """One template against ``{"payload", "attributes", "vars"}``."""
    single = template.single_expression
    if single is not None:
        return single.evaluate(_visible(single, context), context)
    pieces = []
    for part in template.parts:
        pieces.append(part if isinstance(part, str)
                      else format_value(part.evaluate(_visible(part, context), context)))
    return "".join(pieces)


def _visible(expression: Any, context: dict[str, Any]) -> dict[str, Any]:
    """The part of the input document the expression reads (the rest need not be converted)."""
    fields = getattr(expression, "context_fields", None)
    if fields is None or len(fields) == len(context):
        return context
    return {name: context[name] for name in fields if name in context}


def format_value(value: Any) -> str:
    """A value as it reads inside a string, like JSONata's ``$string`` (``None`` -> ``""``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _format_number(value)
    if isinstance(value, Decimal):
        return str(value)  # money as the API gave it: 1200.50, never "1200.50"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_number)


def _json_number(value: Any) -> Any:
    """Decimals inside lists and objects print as JSON numbers; anything else as its text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


def _format_number(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return "null"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = f"{value:.15g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = "-" if exponent.startswith("-") else "+"
        return f"{mantissa}e{sign}{int(exponent.lstrip('+-'))}"
    return text
