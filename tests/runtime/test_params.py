"""Typed parameters: connector code gets every value in the type its Param declares."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import dsl
from runtime import (
    ConnectionSpec,
    Connector,
    OperationContext,
    OperationSpec,
    Param,
    SourceContext,
    SourceSpec,
    SpliceError,
    hookimpl,
    redact,
)
from runtime.message import Event
from runtime.params import INVALID_PARAMETER, compile_params
from runtime.registry import load_registry
from runtime.service import open_runtime
from runtime.store import open_store

PARAMS = (
    Param("wait", type="duration", default="2m"),
    Param("count", type="integer", default=3),
    Param("rate", type="number"),
    Param("on", type="boolean", default=False),
    Param("mode", enum=("fast", "safe"), default="safe"),
    Param("token", secret=True),
    Param("name"),
    Param("shape", type="integer", schema={"type": "integer", "minimum": 1}),
)


def test_values_arrive_in_their_declared_types() -> None:
    """Durations as seconds, integers, numbers, booleans; strings and schema params untouched."""
    coerce = compile_params(PARAMS)
    assert coerce({"wait": "250ms", "count": "7", "rate": "2.5", "on": "true", "name": 5,
                   "shape": "9"}) == {
        "wait": 0.25, "count": 7, "rate": 2.5, "on": True, "mode": "safe", "name": 5,
        "shape": "9"}
    assert coerce({"wait": 30, "count": 4.0, "rate": 3, "on": False}) == {
        "wait": 30.0, "count": 4, "rate": 3.0, "on": False, "mode": "safe"}
    assert isinstance(coerce({"rate": 3})["rate"], float)


def test_defaults_are_filled_in_typed_and_null_means_not_given() -> None:
    """A default is coerced once, like a given value; a null value falls back to the default."""
    coerce = compile_params(PARAMS)
    assert coerce({}) == {"wait": 120.0, "count": 3, "on": False, "mode": "safe"}
    assert coerce({"wait": None, "rate": None, "extra": "kept"}) == {
        "wait": 120.0, "count": 3, "rate": None, "on": False, "mode": "safe", "extra": "kept"}


@pytest.mark.parametrize(("values", "parameter", "expected"), [
    ({"wait": "soon"}, "wait", "a duration"),
    ({"wait": -1}, "wait", "a duration"),
    ({"count": "many"}, "count", "an integer"),
    ({"count": 2.5}, "count", "an integer"),
    ({"count": True}, "count", "an integer"),
    ({"rate": "fast"}, "rate", "a number"),
    ({"on": "perhaps"}, "on", "true or false"),
    ({"mode": "reckless"}, "mode", "one of fast, safe"),
])
def test_a_value_that_does_not_fit_is_a_typed_error_naming_the_parameter(
        values: dict[str, Any], parameter: str, expected: str) -> None:
    """Not retryable: the same value would fail again."""
    with pytest.raises(SpliceError) as info:
        compile_params(PARAMS, owner="test.op")(values)
    error = info.value
    assert error.error_type == INVALID_PARAMETER == "FLOW:INVALID_PARAMETER"
    assert not error.retryable
    assert f"test.op: parameter '{parameter}' expects {expected}" in error.message
    assert error.details["parameter"] == parameter
    assert error.details["expected"].startswith(expected)


def test_secrets_are_registered_for_redaction_and_never_shown_in_errors() -> None:
    """A secret value given at run time is masked from then on, even in a type error."""
    coerce = compile_params((*PARAMS, Param("pin", type="integer", secret=True)))
    coerce({"token": "tok-5f1c9a7e-secret"})
    assert "tok-5f1c9a7e-secret" not in redact("sent tok-5f1c9a7e-secret")
    with pytest.raises(SpliceError) as info:
        coerce({"pin": "not-a-pin-83620"})
    assert "not-a-pin-83620" not in info.value.message
    assert "a secret value" in info.value.message


def test_connection_settings_fail_as_configuration_errors() -> None:
    """A connection's settings are configuration: their type errors are CONNECTION:CONFIG."""
    spec = ConnectionSpec(params=(Param("timeout", type="duration", default="30s"),),
                          open=_open)
    assert spec.coerce({}) == {"timeout": 30.0}
    with pytest.raises(SpliceError) as info:
        spec.coerce({"timeout": "later"})
    assert info.value.error_type == "CONNECTION:CONFIG"


@asynccontextmanager
async def _open(settings: dict[str, Any], ctx: Any) -> AsyncIterator[dict[str, Any]]:
    yield settings


class _Plugin:
    """``typed.show``: returns the parameters it got; a connection that returns its settings;
    the trigger ``typed.every`` keeps the parameters it was started with."""

    def __init__(self) -> None:
        self.trigger_params: list[dict[str, Any]] = []
        self.triggered = anyio.Event()

    @hookimpl
    def splice_connectors(self) -> list[Connector]:
        async def show(ctx: OperationContext, params: dict[str, Any]) -> Any:
            return {"params": params, "settings": ctx.connection}

        async def every(ctx: SourceContext, params: dict[str, Any]) -> None:
            self.trigger_params.append(params)
            self.triggered.set()
            while await ctx.sleep(params["interval"]):
                pass

        return [Connector(
            name="typed",
            connection=ConnectionSpec(params=(Param("timeout", type="duration", default="30s"),
                                              Param("retries", type="integer", default=2)),
                                      open=_open),
            operations=(OperationSpec("show", show, params=(
                Param("wait", type="duration", default="1m"), Param("count", type="integer"))),),
            sources=(SourceSpec("every", every, needs_connection=False, params=(
                Param("interval", type="duration", default="1h", dynamic=False),
                Param("burst", type="integer", default=1, dynamic=False))),),
        )]


@pytest.mark.anyio
async def test_the_engine_hands_operations_and_connections_typed_values(tmp_path: Path) -> None:
    """A dynamic value is coerced per message; one that does not fit fails the step, typed."""
    (tmp_path / "splice.yaml").write_text(textwrap.dedent("""
        connections:
          c: { connector: typed, timeout: 5s }
        """), encoding="utf-8")
    (tmp_path / "show.yaml").write_text(textwrap.dedent("""
        flow: show
        steps:
          - typed.show: { connection: c, wait: "#[ payload.wait ]", count: "#[ payload.count ]" }
        """), encoding="utf-8")
    registry = load_registry([_Plugin()], load_entry_points=False)
    project = dsl.load_project(tmp_path, vocabulary=registry, environ={})
    store = open_store("memory://")
    try:
        async with open_runtime(project, registry, store=store) as runtime:
            done = await runtime.engine.run("show", Event(payload={"wait": "2s", "count": "4"}))
            assert done.status == "completed"
            assert done.message.payload == {"params": {"wait": 2.0, "count": 4},
                                            "settings": {"timeout": 5.0, "retries": 2}}
            defaulted = await runtime.engine.run("show", Event(payload={}))
            assert defaulted.message.payload["params"] == {"wait": 60.0, "count": None}
            bad = await runtime.engine.run("show", Event(payload={"wait": "soon"}))
            assert bad.status == "failed"
            assert bad.error is not None
            assert bad.error.error_type == "FLOW:INVALID_PARAMETER"
            assert "'wait' expects a duration" in bad.error.message
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_a_trigger_is_started_with_typed_parameters(tmp_path: Path) -> None:
    """The source's run gets seconds and integers, defaults filled in, like an operation."""
    (tmp_path / "splice.yaml").write_text("connections: {}\n", encoding="utf-8")
    (tmp_path / "tick.yaml").write_text(textwrap.dedent("""
        flow: tick
        trigger: { typed.every: { interval: 5m } }
        steps:
          - log: { message: tick }
        """), encoding="utf-8")
    plugin = _Plugin()
    registry = load_registry([plugin], load_entry_points=False)
    project = dsl.load_project(tmp_path, vocabulary=registry, environ={})
    store = open_store("memory://")
    try:
        async with open_runtime(project, registry, store=store) as runtime, \
                anyio.create_task_group() as tg:
            await tg.start(runtime.run_triggers)
            with anyio.fail_after(10):
                await plugin.triggered.wait()
            runtime.request_stop()
    finally:
        await store.aclose()
    assert plugin.trigger_params == [{"interval": 300.0, "burst": 1}]
