"""Read YAML into a tree of :class:`Node` that keeps a source position on every key and value.

PyYAML's constructor throws the marks away, so this module composes the node graph with the safe
loader and converts it itself. Everything that can go wrong with the file as text is turned into a
:class:`~dsl.errors.FlowSyntaxError` here, never a traceback: bytes that are not UTF-8 text, YAML
syntax, tab indentation, empty files, several documents in one file, duplicate keys, and the most
common slip of all, an unquoted ``key: #[ expr ]`` that YAML reads as a comment.

Anchors and aliases are resolved (an alias is a copy of its anchor, positioned at the anchor), and
``<<: *base`` merge keys work as in YAML 1.1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from yaml.constructor import SafeConstructor

from dsl.errors import FlowError, FlowSyntaxError
from dsl.nesting import MAX_NESTING, too_deep_yaml, yaml_nesting_bound
from dsl.source import SourceSpan

__all__ = ["Node", "load_yaml", "read_text"]

NodeKind = Literal["map", "seq", "scalar"]

_TAG = "tag:yaml.org,2002:"
_CONSTRUCTED_TAGS = {_TAG + "int", _TAG + "float", _TAG + "bool", _TAG + "null"}
_COMMENT_TRAP = re.compile(r"\s*#\[")
#: Aliases are copied; a file that expands beyond this many values is refused (an alias bomb).
MAX_VALUES = 200_000


class _TooLarge(Exception):
    pass


@dataclass(slots=True)
class Node:
    """A YAML value with its position.

    ``value`` is a ``dict[str, Node]`` for a mapping, a ``list[Node]`` for a sequence, and a plain
    Python scalar (str, int, float, bool, None) for a scalar; later stages may replace a scalar's
    value by its resolved form (a :class:`~dsl.model.Template`). ``keys`` holds each mapping key's
    position. ``style`` is the scalar style (``None`` plain, ``'"'``, ``"'"``, ``"|"``, ``">"``);
    ``content`` is where the scalar's text starts, for positions inside it.
    """

    kind: NodeKind
    value: Any
    span: SourceSpan
    keys: dict[str, SourceSpan] = field(default_factory=dict)
    style: str | None = None
    content: SourceSpan | None = None

    def position(self, offset: int) -> SourceSpan:
        """The file position ``offset`` characters into this scalar's text (approximate when quoted)."""
        start = self.content or self.span
        text = self.value if isinstance(self.value, str) else ""
        if self.style in ("|", ">"):
            before = text[: max(0, offset)]
            newlines = before.count("\n")
            col_in_line = offset - before.rfind("\n") - 1 if newlines else offset
            return SourceSpan(start.file, start.line + newlines, start.col + col_in_line)
        return start.shifted(text, offset)

    def plain(self) -> Any:
        """The value as plain Python data (dicts, lists, scalars), positions dropped."""
        if self.kind == "map":
            return {k: v.plain() for k, v in self.value.items()}
        if self.kind == "seq":
            return [v.plain() for v in self.value]
        return self.value


def read_text(data: bytes, file: str) -> str:
    """Decode a file's bytes as UTF-8 text, or raise a positioned error saying why it is not text."""
    if b"\x00" in data:
        pos = data.index(b"\x00")
        raise FlowSyntaxError(_byte_span(data, pos, file), "not a text file (it contains NUL bytes)",
                              "a UTF-8 YAML file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FlowSyntaxError(_byte_span(data, exc.start, file),
                              f"not a text file: invalid UTF-8 byte 0x{data[exc.start]:02x} at byte {exc.start}",
                              "a UTF-8 YAML file") from None
    return text


def _byte_span(data: bytes, pos: int, file: str) -> SourceSpan:
    before = data[:pos]
    line = before.count(b"\n") + 1
    col = pos - (before.rfind(b"\n") + 1) + 1
    return SourceSpan(file, line, col)


def load_yaml(text: str, file: str) -> tuple[Node | None, list[FlowError]]:
    """Compose one YAML document into a :class:`Node` tree, collecting every problem found.

    Returns ``(None, errors)`` when the text cannot be read at all (syntax, several documents, empty).
    Duplicate keys and comment slips are reported but the tree is still returned, so the rest of the
    file can be checked too.
    """
    lines = text.splitlines()
    if yaml_nesting_bound(text) > _SCAN_FIRST_ABOVE:
        deep = too_deep_yaml(text)
        if deep is not None:
            return None, [_nesting_error(SourceSpan(file, *deep))]
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except RecursionError:  # PyYAML's composer recurses per level
        return None, [_too_deep(text, file)]
    except yaml.MarkedYAMLError as exc:
        return None, [_syntax_error(exc, lines, file)]
    except yaml.reader.ReaderError as exc:
        span = SourceSpan(file, 1, 1).shifted(text, exc.position)
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        return None, [FlowSyntaxError(span, f"not a text file: unacceptable character {char}",
                                      "a UTF-8 YAML file")]
    except yaml.YAMLError as exc:  # pragma: no cover - PyYAML raises the two above in practice
        return None, [FlowSyntaxError(SourceSpan(file, 1, 1), f"invalid YAML: {exc}")]
    documents = [d for d in documents if d is not None]
    if not documents:
        return None, [FlowSyntaxError(SourceSpan(file, 1, 1), "empty file", "a flow")]
    if len(documents) > 1:
        second = documents[1].start_mark
        return None, [FlowSyntaxError(SourceSpan(file, second.line + 1, second.column + 1),
                                      "several YAML documents in one file",
                                      "one document per file (remove the '---' separator)")]
    converter = _Converter(file, lines)
    try:
        node = converter.convert(documents[0])
    except _TooLarge:
        return None, [FlowSyntaxError(SourceSpan(file, 1, 1), f"the file expands to more than {MAX_VALUES} values "
                                      "through aliases", "a flow without nested alias expansion")]
    except RecursionError:
        return None, [_too_deep(text, file)]
    deepest = _deeper_than_allowed(node)
    if deepest is not None:
        return None, [_nesting_error(deepest)]
    return node, converter.errors


#: Texts that could nest deeper than this are checked for depth before PyYAML reads them (which
#: would take minutes over thousands of levels, then fail with a RecursionError); flow files stay
#: far below it, so they are read once.
_SCAN_FIRST_ABOVE = 800


def _nesting_error(span: SourceSpan) -> FlowError:
    return FlowSyntaxError(span, f"nested deeper than {MAX_NESTING} levels",
                           "a flatter structure (split it up, or move data into a file)")


def _too_deep(text: str, file: str) -> FlowError:
    """The error for a text too deep to compose, at the collection that crosses the limit."""
    at = too_deep_yaml(text) or (1, 1)
    return _nesting_error(SourceSpan(file, *at))


def _deeper_than_allowed(root: Node) -> SourceSpan | None:
    """Where the first collection deeper than :data:`MAX_NESTING` starts (walked without recursion:
    the checks after loading do recurse)."""
    pending = [(root, 1)]
    while pending:
        node, depth = pending.pop()
        if node.kind not in ("map", "seq"):
            continue
        if depth > MAX_NESTING:
            return node.span
        children = node.value.values() if node.kind == "map" else node.value
        pending.extend((child, depth + 1) for child in children)
    return None


def _syntax_error(exc: yaml.MarkedYAMLError, lines: list[str], file: str) -> FlowError:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else 1
    col = mark.column + 1 if mark else 1
    # A tab in the indentation shows up as a confusing token error; name it instead.
    for number in range(min(line, len(lines)), 0, -1):
        indent = re.match(r"[ \t]*", lines[number - 1]).group(0)  # type: ignore[union-attr]
        if "\t" in indent:
            return FlowSyntaxError(SourceSpan(file, number, indent.index("\t") + 1),
                                   "tab character in indentation", "spaces")
        if number < line - 1:
            break
    problem = exc.problem or exc.context or "invalid YAML"
    # `{ url: ${x} }`: YAML takes the '{' of an unquoted placeholder for a nested mapping.
    source_line = lines[line - 1] if 0 < line <= len(lines) else ""
    if "but got '{'" in problem and "${" in source_line:
        start = source_line.find("${", max(0, col - 2))
        at = SourceSpan(file, line, (start if start >= 0 else col - 1) + 1)
        return FlowSyntaxError(at, "a ${...} placeholder inside { } or [ ] must be quoted",
                               "a quoted value: \"${...}\"")
    return FlowSyntaxError(SourceSpan(file, line, col), f"invalid YAML: {problem}")


class _Converter:
    """Turns composed PyYAML nodes into :class:`Node`, keeping marks and collecting errors."""

    def __init__(self, file: str, lines: list[str]) -> None:
        self.file = file
        self.lines = lines
        self.errors: list[FlowError] = []
        self._constructor = SafeConstructor()
        self._active: set[int] = set()
        self._count = 0

    def span(self, mark: yaml.Mark) -> SourceSpan:
        return SourceSpan(self.file, mark.line + 1, mark.column + 1)

    def convert(self, node: yaml.Node) -> Node:
        self._count += 1
        if self._count > MAX_VALUES:
            raise _TooLarge
        if id(node) in self._active:
            self.errors.append(FlowSyntaxError(self.span(node.start_mark), "recursive YAML alias",
                                               "a value that does not contain itself"))
            return Node("scalar", None, self.span(node.start_mark))
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node)
            if isinstance(node, yaml.SequenceNode):
                return Node("seq", [self.convert(item) for item in node.value], self.span(node.start_mark))
            return self._scalar(node)
        finally:
            self._active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode) -> Node:
        result = Node("map", {}, self.span(node.start_mark))
        merged: dict[str, tuple[Node, SourceSpan]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                for source in self._merge_sources(value_node):
                    for k, v in source.value.items():
                        merged.setdefault(k, (v, source.keys[k]))
                continue
            key_span = self.span(key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode):
                self.errors.append(FlowSyntaxError(key_span, "a mapping key must be a plain name",
                                                   "a string key"))
                continue
            key = str(key_node.value)
            if key in result.value:
                first = result.keys[key]
                self.errors.append(FlowSyntaxError(key_span, f"duplicate key '{key}' (first at line {first.line})",
                                                   "each key once per mapping"))
                continue
            result.value[key] = self.convert(value_node)
            result.keys[key] = key_span
        for key, (value, span) in merged.items():
            if key not in result.value:
                result.value[key] = value
                result.keys[key] = span
        return result

    def _merge_sources(self, node: yaml.Node) -> list[Node]:
        items = node.value if isinstance(node, yaml.SequenceNode) else [node]
        sources = []
        for item in items:
            converted = self.convert(item)
            if converted.kind != "map":
                self.errors.append(FlowSyntaxError(converted.span, "'<<' merges only mappings",
                                                   "an alias of a mapping"))
                continue
            sources.append(converted)
        return sources

    def _scalar(self, node: yaml.ScalarNode) -> Node:
        span = self.span(node.start_mark)
        value: Any = node.value
        if node.tag in _CONSTRUCTED_TAGS:
            value = self._constructor.construct_object(node)
        if node.tag == _TAG + "null" and node.value == "" and node.style is None:
            line = self.lines[node.start_mark.line] if node.start_mark.line < len(self.lines) else ""
            rest = line[node.start_mark.column:]
            if _COMMENT_TRAP.match(rest):
                at = SourceSpan(self.file, span.line, node.start_mark.column + 1 + rest.index("#"))
                self.errors.append(FlowSyntaxError(
                    at, "expression was read as a YAML comment, quote it: \"#[ ... ]\""))
                # Go on with the text the user meant, so only this slip is reported for the value.
                value = rest.strip()
        return Node("scalar", value, span, style=node.style, content=self._content_span(node, span))

    def _content_span(self, node: yaml.ScalarNode, span: SourceSpan) -> SourceSpan:
        if node.style in ('"', "'"):
            return SourceSpan(span.file, span.line, span.col + 1)
        if node.style in ("|", ">"):
            for index in range(node.start_mark.line + 1, min(node.end_mark.line + 1, len(self.lines))):
                line = self.lines[index]
                if line.strip():
                    return SourceSpan(span.file, index + 1, len(line) - len(line.lstrip(" ")) + 1)
            return SourceSpan(span.file, span.line + 1, span.col)
        return span
