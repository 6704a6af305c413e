"""Errors of loading and checking flows: each names ``file:line:col``, what is wrong, what was expected.

The tree::

    FlowError                  one problem at one position
    ├── FlowSyntaxError        the text cannot be read: YAML syntax, a template, a JSONata expression
    └── FlowValidationError    the text reads, but does not fit the vocabulary (unknown step, missing or
                               extra parameter, wrong type, unknown placeholder, duplicate flow name)
    FlowErrors                 several FlowError at once: loading reports every problem, not the first
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from dsl.source import SourceSpan

__all__ = ["FlowError", "FlowErrors", "FlowSyntaxError", "FlowValidationError", "did_you_mean"]


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when a known name is close to ``name``, else ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class FlowError(Exception):
    """One problem in a flow file, with its position."""

    def __init__(self, span: SourceSpan, message: str, expected: str | None = None) -> None:
        self.span = span
        self.message = message
        self.expected = expected
        super().__init__(self.format())

    def format(self) -> str:
        """``file:line:col: what is wrong, expected what`` (one line)."""
        text = f"{self.span}: {self.message}"
        if self.expected:
            text += f", expected {self.expected}"
        return text


class FlowSyntaxError(FlowError):
    """The text could not be parsed (YAML, template, JSONata)."""


class FlowValidationError(FlowError):
    """The text parsed but does not fit the installed vocabulary or the flow language."""


class FlowErrors(Exception):
    """All problems found while loading; raised once, after everything was checked."""

    def __init__(self, errors: Iterable[FlowError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.span.file, e.span.line, e.span.col))
        super().__init__("\n".join(e.format() for e in self.errors))
