"""A test connector and a helper that loads a project from YAML texts and opens its runtime."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import connectors.http.plugin as http_plugin
import dsl
from runtime.context import OperationContext, SourceContext
from runtime.errors import SpliceError
from runtime.hookspecs import hookimpl
from runtime.registry import Registry, load_registry
from runtime.service import SpliceRuntime, open_runtime
from runtime.spec import ConnectionSpec, Connector, OperationSpec, Param, SourceSpec
from runtime.store import open_store


@dataclass
class Recorder:
    """What the test connector saw: calls per operation, attempts per key, concurrency."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    running: int = 0
    max_running: int = 0

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]


def make_test_connector(recorder: Recorder) -> Connector:
    """``test.echo``, ``test.fail``, ``test.slow``, ``test.lookup`` (read-only), ``test.stream``,
    the exclusive trigger ``test.ticks`` and a connection with a secret."""

    async def echo(ctx: OperationContext, params: dict[str, Any]) -> Any:
        recorder.calls.append(("echo", params))
        return params.get("value", ctx.message.payload)

    async def fail(ctx: OperationContext, params: dict[str, Any]) -> Any:
        recorder.calls.append(("fail", params))
        key = str(params.get("key", "default"))
        recorder.attempts[key] = recorder.attempts.get(key, 0) + 1
        times = int(params.get("times", -1))
        if times < 0 or recorder.attempts[key] <= times:
            raise SpliceError(str(params.get("message", "boom")), error_type=params["type"],
                              retryable=bool(params.get("retryable", False)),
                              retry_after=params.get("retry-after"))
        return {"succeededAfter": recorder.attempts[key]}

    async def slow(ctx: OperationContext, params: dict[str, Any]) -> Any:
        recorder.calls.append(("slow", params))
        recorder.running += 1
        recorder.max_running = max(recorder.max_running, recorder.running)
        try:
            await anyio.sleep(float(params.get("seconds", 0.05)))
        finally:
            recorder.running -= 1
        return ctx.message.payload

    async def lookup(ctx: OperationContext, params: dict[str, Any]) -> Any:
        recorder.calls.append(("lookup", params))
        await anyio.sleep(0.01)  # long enough for concurrent messages to miss together
        return {"key": params["key"], "call": len(recorder.of("lookup"))}

    async def stream(ctx: OperationContext, params: dict[str, Any]) -> Any:
        async def gen() -> AsyncIterator[dict[str, int]]:
            for i in range(int(params["count"])):
                yield {"n": i}
        return gen()

    async def ticks(ctx: SourceContext, params: dict[str, Any]) -> None:
        recorder.calls.append(("ticks", {"flow": ctx.flow, "store": ctx.store}))
        recorder.running += 1
        recorder.max_running = max(recorder.max_running, recorder.running)
        try:
            while await ctx.sleep(0.01):
                pass
        finally:
            recorder.running -= 1

    @asynccontextmanager
    async def open_connection(settings: dict[str, Any], ctx: Any) -> AsyncIterator[dict[str, Any]]:
        yield {"settings": settings, "closed": False}

    return Connector(
        name="test",
        summary="Operations for runtime tests",
        connection=ConnectionSpec(params=(Param("token", secret=True, dynamic=False),),
                                  open=open_connection),
        operations=(
            OperationSpec("echo", echo, params=(Param("value", type="any"),)),
            OperationSpec("fail", fail, params=(
                Param("type", required=True), Param("key"), Param("times", type="integer"),
                Param("retryable", type="boolean"), Param("retry-after", type="number"),
                Param("message"))),
            OperationSpec("slow", slow, params=(Param("seconds", type="number"),)),
            OperationSpec("lookup", lookup, params=(Param("key", required=True),), read_only=True),
            OperationSpec("stream", stream, params=(Param("count", type="integer", required=True),)),
        ),
        sources=(SourceSpec("ticks", ticks, needs_connection=False, exclusive=True),),
    )


class TestPlugin:
    """Registers the test connector (as a third-party plugin would)."""

    __test__ = False

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    @hookimpl
    def splice_connectors(self) -> list[Connector]:
        return [make_test_connector(self.recorder)]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def registry(recorder: Recorder) -> Registry:
    """Built-ins, the http connector and the test connector (no other installed plugins)."""
    return load_registry([http_plugin, TestPlugin(recorder)], load_entry_points=False)


CONNECTIONS = """
connections:
  t: { connector: test, token: s3cr3t-token-value }
"""


@pytest.fixture
def write_project(tmp_path: Path) -> Callable[..., Path]:
    """Write YAML texts (file name -> text) into a fresh project directory."""

    def write(files: dict[str, str], *, connections: str = CONNECTIONS) -> Path:
        root = tmp_path / "project"
        root.mkdir(exist_ok=True)
        (root / "splice.yaml").write_text(textwrap.dedent(connections), encoding="utf-8")
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        return root

    return write


@dataclass
class Harness:
    runtime: SpliceRuntime
    spans: InMemorySpanExporter


@pytest.fixture
def start(registry: Registry, write_project: Callable[..., Path]) -> Callable[..., Any]:
    """``async with start({"a.yaml": text}) as h:`` a runtime on an in-memory store."""

    @asynccontextmanager
    async def run(files: dict[str, str], *, connections: str = CONNECTIONS,
                  transports: dict[str, httpx.AsyncBaseTransport] | None = None,
                  environ: dict[str, str] | None = None) -> AsyncIterator[Harness]:
        root = write_project(files, connections=connections)
        project = dsl.load_project(root, vocabulary=registry, environ=environ or {})
        exporter = InMemorySpanExporter()
        store = open_store("memory://")
        try:
            async with open_runtime(project, registry, store=store, transports=transports,
                                    span_exporter=exporter) as runtime:
                yield Harness(runtime, exporter)
        finally:
            await store.aclose()

    return run
