"""How deeply a flow file and its expressions may nest, found without recursion.

The parsers that read flows (PyYAML's composer, lark's tree transformer, the JSONata parser) and
the checks after them recurse once or more per level, so a file nested a few hundred levels deep
would end in Python's ``RecursionError`` instead of an error at a position. No real flow nests
anywhere near :data:`MAX_NESTING` levels; deeper is reported where the limit is crossed.
"""

from __future__ import annotations

import re

import yaml

__all__ = ["MAX_NESTING", "too_deep_expression", "too_deep_yaml", "yaml_nesting_bound"]

#: The deepest nesting accepted, in YAML collections or in an expression's brackets.
MAX_NESTING = 100

_OPEN = "([{"
_CLOSE = ")]}"
_YAML_OPEN = (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken,
              yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)
_YAML_CLOSE = (yaml.BlockEndToken, yaml.FlowMappingEndToken, yaml.FlowSequenceEndToken)


def too_deep_expression(source: str, start: int = 0) -> int | None:
    """The offset in ``source`` of the bracket that opens level ``MAX_NESTING + 1``, or ``None``.

    Brackets inside '...' / "..." strings (with backslash escapes), `quoted names` and
    /* comments */ do not count.
    """
    depth = 0
    index = start
    length = len(source)
    while index < length:
        char = source[index]
        if char in "\"'`":
            index = _after_quoted(source, index, char)
            continue
        if char == "/" and source.startswith("/*", index):
            end = source.find("*/", index + 2)
            index = length if end < 0 else end + 2
            continue
        if char in _OPEN:
            depth += 1
            if depth > MAX_NESTING:
                return index
        elif char in _CLOSE:
            depth = max(0, depth - 1)
        index += 1
    return None


def _after_quoted(source: str, index: int, quote: str) -> int:
    index += 1
    while index < len(source):
        char = source[index]
        if char == "\\" and quote != "`":
            index += 2
            continue
        if char == quote:
            return index + 1
        index += 1
    return index


#: What can open a YAML collection: a block entry '-', a ':' indicator, '[' or '{'.
_YAML_OPENERS = re.compile(r"(?:^|\s)-(?=\s)|:(?=\s)|[\[{]", re.M)


def yaml_nesting_bound(text: str) -> int:
    """An upper bound of the YAML text's nesting, counted at C speed.

    PyYAML's scanner slows down with the square of the open flow collections, so a text that could
    nest thousands of levels is checked with :func:`too_deep_yaml` (which stops at the limit)
    before it is parsed at all.
    """
    return len(_YAML_OPENERS.findall(text)) + 1


def too_deep_yaml(text: str) -> tuple[int, int] | None:
    """``(line, column)`` (from 1) of the collection that opens level ``MAX_NESTING + 1``, or ``None``.

    Reads the YAML tokens (PyYAML's scanner does not recurse); text that does not scan is left to
    the parser, which reports the syntax error.
    """
    depth = 0
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, _YAML_OPEN):
                depth += 1
                if depth > MAX_NESTING:
                    return token.start_mark.line + 1, token.start_mark.column + 1
            elif isinstance(token, _YAML_CLOSE):
                depth -= 1
    except yaml.YAMLError:
        return None
    return None
