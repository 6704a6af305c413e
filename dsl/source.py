"""Source positions, so every problem in a flow file can be reported as ``file:line:col``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SourceSpan"]


@dataclass(frozen=True, slots=True)
class SourceSpan:
    """A 1-based position in a file: what editors and ``splice validate`` print."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    def shifted(self, text: str, offset: int) -> SourceSpan:
        """The position ``offset`` characters into ``text``, where ``text`` starts at this span.

        Used to turn a character offset inside a scalar (a JSONata syntax error, a bad
        placeholder) into the line and column of the YAML file.
        """
        before = text[: max(0, offset)]
        newlines = before.count("\n")
        if newlines:
            return SourceSpan(self.file, self.line + newlines, offset - before.rfind("\n"))
        return SourceSpan(self.file, self.line, self.col + offset)
