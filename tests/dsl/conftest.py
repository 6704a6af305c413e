"""A small fake vocabulary and helpers to write project trees for the dsl tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from connectors.http.sources import check_listener
from dsl.kinds import SourceCheck, StepKind
from dsl.steps import LANGUAGE_STEPS
from runtime.scheduler import SCHEDULE

_CONNECTION = {"type": "string", "description": "Name of the connection to use", "x-dynamic": False}


#: An ``http.listener`` whose schema holds the path rule itself (the http connector's check adds the
#: POST default, and holds the path rule when a schema does not).
_LISTENER = {
    "description": "Start the flow for each HTTP request to a path of 'splice serve'",
    "type": "object",
    "properties": {
        "path": {"type": "string", "pattern": "^/", "description": "URL path, starting with '/'",
                 "x-dynamic": False},
        "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"],
                   "default": "POST", "x-dynamic": False},
        "response-status": {"type": "integer", "minimum": 100, "maximum": 599, "x-dynamic": False,
                            "description": "HTTP status of a successful response"},
    },
    "required": ["path"],
    "additionalProperties": False,
}


class FakeVocabulary:
    """The language's step kinds, the runtime's ``schedule``, an ``http.listener``, and one
    connector, ``demo``: an ``echo`` operation, a ``ticks`` source, a secret password."""

    def __init__(self) -> None:
        self.step_kinds: dict[str, StepKind] = {kind.name: kind for kind in LANGUAGE_STEPS}
        self.operations: dict[str, dict[str, Any]] = {
            "demo.echo": {
                "type": "object",
                "description": "Echo a message",
                "properties": {
                    "connection": _CONNECTION,
                    "message": {"type": "string", "description": "What to echo"},
                    "count": {"type": "integer", "description": "How many times"},
                    "mode": {"type": "string", "enum": ["loud", "quiet"], "x-dynamic": False},
                },
                "required": ["message"],
                "additionalProperties": False,
            },
            "demo.query": {
                "type": "object",
                "description": "Run a query",
                "properties": {"connection": _CONNECTION, "query": {"type": "string"}},
                "required": ["query"],
                "additionalProperties": False,
            },
        }
        self.sources: dict[str, dict[str, Any]] = {
            "demo.ticks": {
                "type": "object",
                "description": "Tick now and then",
                "properties": {"connection": _CONNECTION, "interval": {"type": "integer"}},
                "additionalProperties": False,
            },
            "schedule": SCHEDULE.schema(),
            "http.listener": _LISTENER,
        }
        self.checks: dict[str, SourceCheck] = {"http.listener": check_listener}
        if SCHEDULE.check is not None:
            self.checks["schedule"] = SCHEDULE.check
        self.connections: dict[str, dict[str, Any]] = {
            "demo": {
                "type": "object",
                "description": "The demo system",
                "properties": {"url": {"type": "string", "description": "Base URL"},
                               "password": {"type": "string", "x-secret": True}},
                "required": ["url"],
                "additionalProperties": False,
            },
        }
        self.functions: dict[str, Callable[..., Any]] = {"double": lambda x: x * 2}

    def step_kind_names(self) -> Iterable[str]:
        return list(self.step_kinds)

    def step_kind(self, name: str) -> StepKind | None:
        return self.step_kinds.get(name)

    def operation_names(self) -> Iterable[str]:
        return list(self.operations)

    def operation_schema(self, name: str) -> Mapping[str, Any] | None:
        return self.operations.get(name)

    def source_names(self) -> Iterable[str]:
        return list(self.sources)

    def source_schema(self, name: str) -> Mapping[str, Any] | None:
        return self.sources.get(name)

    def source_check(self, name: str) -> SourceCheck | None:
        return self.checks.get(name)

    def source_routes(self, name: str, params: Mapping[str, Any]) -> Iterable[tuple[str, frozenset[str]]]:
        path = params.get("path")
        return [(path, frozenset({str(params.get("method", "POST")).upper()}))] if isinstance(path, str) else []

    def connector_names(self) -> Iterable[str]:
        return list(self.connections)

    def connection_schema(self, connector: str) -> Mapping[str, Any] | None:
        return self.connections.get(connector)

    def jsonata_functions(self) -> Mapping[str, Callable[..., Any]]:
        return self.functions


@pytest.fixture
def vocabulary() -> FakeVocabulary:
    """A fresh fake vocabulary per test."""
    return FakeVocabulary()


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str | bytes], Path]:
    """``write("flows/a.yaml", text)`` creates a file in a temporary project, the current directory.

    Tests then load the project as ``"."``, so messages name files as a user sees them (``a.yaml:3:1``).
    """
    monkeypatch.chdir(tmp_path)

    def _write(relative: str, content: str | bytes) -> Path:
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write

