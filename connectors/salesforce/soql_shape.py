"""Which SOQL queries of many executions can be answered by one: ``Field = :bind`` -> ``Field IN``.

A query qualifies when, at its top level, it is ``SELECT <fields and child subqueries> FROM
<Object> WHERE <conditions joined by AND>`` and one of those conditions (or several: each is a way
to merge) is exactly ``Field = :name`` on a plain field, with ``:name`` used nowhere else. Then the rows of the query with
``Field IN (v1, v2, ...)`` are the union of the rows of the queries with each ``Field = vN``, and
each row belongs to the queries whose value its ``Field`` holds. Anything that would change that
(``OR`` at the top level, ``LIMIT``, ``OFFSET``, ``ORDER BY``, ``GROUP BY``, ``HAVING``, ``FOR``,
``WITH``, ``USING SCOPE``, functions or aggregates among the selected fields, ``TYPEOF``) keeps the
query out. Clauses inside a child subquery (``(SELECT ... FROM OpportunityLineItems ORDER BY
SortOrder)``) and inside parentheses are left as they are.

The reading is lexical (string literals, parentheses, ``:name`` binds as :func:`.soql.bind` sees
them), not a full SOQL grammar: Salesforce still judges the query; this only decides whether
merging it is sound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["InShape", "in_shapes"]

_WORD = re.compile(r"[A-Za-z0-9_.$]+(?:[-:+][0-9][A-Za-z0-9_.]*)*")
_BIND = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)")
_OPERATOR = re.compile(r"[=!<>]+")
_PLAIN_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Top-level words after WHERE that make the rows of a merged query differ from the union.
_BLOCKING = frozenset({"OR", "LIMIT", "OFFSET", "ORDER", "GROUP", "HAVING", "FOR", "WITH"})


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # word, string, bind, op, open, close, comma, other
    text: str
    start: int
    end: int
    depth: int


@dataclass(frozen=True, slots=True)
class InShape:
    """Where a qualifying query is rewritten: its ``Field = :bind`` condition and select list."""

    #: The bind that varies between the merged queries.
    bind: str
    #: The field it is compared with, as written in the query.
    field: str
    #: Whether the field is among the selected ones (else it is added, and taken off the rows).
    selected: bool
    #: ``[start, end)`` of ``Field = :bind`` in the query text.
    condition: tuple[int, int]
    #: Where a field is added to the select list (just after its last item).
    select_end: int

    def rewrite(self, query: str) -> str:
        """``query`` with ``Field IN :bind`` (and the field selected): bind it with a list."""
        start, end = self.condition
        added = "" if self.selected else f", {self.field}"
        return (query[:self.select_end] + added + query[self.select_end:start]
                + f"{self.field} IN :{self.bind}" + query[end:])


def _tokens(query: str) -> list[_Token] | None:
    """The query's tokens with their parenthesis depth; ``None`` if quotes or parentheses do not close."""
    out: list[_Token] = []
    depth, i, n = 0, 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "'":
            j = i + 1
            while j < n and query[j] != "'":
                j += 2 if query[j] == "\\" else 1
            if j >= n:
                return None
            out.append(_Token("string", query[i:j + 1], i, j + 1, depth))
            i = j + 1
            continue
        if ch in "(),":
            kind = {"(": "open", ")": "close", ",": "comma"}[ch]
            if ch == ")":
                depth -= 1
                if depth < 0:
                    return None
            out.append(_Token(kind, ch, i, i + 1, depth))
            depth += ch == "("
            i += 1
            continue
        for kind, pattern in (("bind", _BIND), ("word", _WORD), ("op", _OPERATOR)):
            match = pattern.match(query, i)
            if match:
                out.append(_Token(kind, match.group(0), i, match.end(), depth))
                i = match.end()
                break
        else:
            out.append(_Token("other", ch, i, i + 1, depth))
            i += 1
    return out if depth == 0 else None


def _keyword(token: _Token, word: str) -> bool:
    return token.kind == "word" and token.depth == 0 and token.text.upper() == word


def _split(tokens: list[_Token], separator: str) -> list[list[_Token]]:
    """``tokens`` cut at top-level separators (``comma``, or a keyword such as ``AND``)."""
    parts: list[list[_Token]] = [[]]
    for token in tokens:
        if token.depth == 0 and (token.kind == separator or _keyword(token, separator)):
            parts.append([])
        else:
            parts[-1].append(token)
    return parts


def _selected(items: list[list[_Token]]) -> set[str] | None:
    """The plain selected fields (case-folded); ``None`` when an item is not a field or subquery."""
    fields: set[str] = set()
    for item in items:
        if len(item) == 1 and item[0].kind == "word" and item[0].text.upper() != "TYPEOF":
            fields.add(item[0].text.casefold())
        elif not (len(item) >= 2 and item[0].kind == "open" and item[1].text.upper() == "SELECT"
                  and item[-1].kind == "close"):
            return None
    return fields


@lru_cache(maxsize=256)
def in_shapes(query: str) -> tuple[InShape, ...]:
    """Each way ``query`` merges with queries that differ from it in one bind (one per top-level
    ``Field = :bind``); empty when it cannot."""
    tokens = _tokens(query)
    if not tokens or not _keyword(tokens[0], "SELECT"):
        return ()
    top = [i for i, t in enumerate(tokens) if t.depth == 0 and t.kind == "word"]
    from_at = next((i for i in top if tokens[i].text.upper() == "FROM"), None)
    where_at = next((i for i in top if tokens[i].text.upper() == "WHERE"), None)
    if from_at is None or where_at is None or where_at != from_at + 2 or tokens[from_at + 1].kind != "word":
        return ()
    fields = _selected(_split(tokens[1:from_at], "comma"))
    condition_tokens = tokens[where_at + 1:]
    if fields is None or not condition_tokens or any(
            t.depth == 0 and t.kind == "word" and t.text.upper() in _BLOCKING for t in condition_tokens):
        return ()
    uses: dict[str, int] = {}
    for token in tokens:
        if token.kind == "bind":
            uses[token.text[1:]] = uses.get(token.text[1:], 0) + 1
    shapes = []
    for part in _split(condition_tokens, "AND"):
        if (len(part) == 3 and part[0].kind == "word" and _PLAIN_FIELD.match(part[0].text)
                and part[1].text == "=" and part[2].kind == "bind" and uses[part[2].text[1:]] == 1):
            field = part[0].text
            shapes.append(InShape(bind=part[2].text[1:], field=field, selected=field.casefold() in fields,
                                  condition=(part[0].start, part[2].end), select_end=tokens[from_at - 1].end))
    return tuple(shapes)
