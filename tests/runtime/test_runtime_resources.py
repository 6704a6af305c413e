"""Two runtimes in one process share nothing: not their secrets, not their connectors' shared state.

Each runtime runs in its own task, as two services embedded in one process would; both are open at
the same time. A ``probe`` connector reports, from inside each runtime, what that runtime masks and
which shared object its connections got.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

import dsl
from runtime.context import ConnectionContext, OperationContext
from runtime.hookspecs import hookimpl
from runtime.message import Event
from runtime.redaction import (
    RedactingFilter,
    Secrets,
    current_secrets,
    redact,
    register_secret,
    secret_values,
)
from runtime.registry import Registry, load_registry
from runtime.resources import RuntimeResources
from runtime.service import open_runtime
from runtime.spec import ConnectionSpec, Connector, OperationSpec, Param
from runtime.store import open_store

pytestmark = pytest.mark.anyio

ALPHA = "alpha-token-1111"
BRAVO = "bravo-token-2222"


class Budget:
    """Stands for per-realm state a connector shares between the connections of one runtime."""


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.addFilter(RedactingFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@asynccontextmanager
async def _open_probe(settings: dict[str, Any], ctx: ConnectionContext) -> AsyncIterator[dict[str, Any]]:
    budget = ctx.shared(("probe.budget", settings["realm"]), Budget)
    yield {"budget": budget, "resources": ctx.resources}


class _ProbePlugin:
    """The ``probe`` connector; each ``probe.look`` adds what it saw to :attr:`seen`."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    @hookimpl
    def splice_connectors(self) -> list[Connector]:
        async def look(ctx: OperationContext, params: dict[str, Any]) -> Any:
            text = str(params["text"])
            logging.getLogger("splice.test.resources").info("saw %s", text)
            self.seen.append({"redacted": redact(text), "known": sorted(secret_values()),
                              "budget": ctx.connection["budget"],
                              "resources": ctx.connection["resources"]})
            return redact(text)

        return [Connector(
            name="probe", summary="Reports what its runtime masks and shares",
            connection=ConnectionSpec(params=(Param("token", secret=True, dynamic=False),
                                              Param("realm", dynamic=False)), open=_open_probe),
            operations=(OperationSpec("look", look, params=(Param("text", required=True),)),),
        )]


def _project(root: Path, token: str, registry: Registry) -> Any:
    root.mkdir()
    (root / "splice.yaml").write_text(
        "connections:\n"
        f"  one: {{ connector: probe, token: {token}, realm: r1 }}\n"
        f"  two: {{ connector: probe, token: {token}, realm: r1 }}\n", encoding="utf-8")
    (root / "look.yaml").write_text(
        "flow: look\n"
        "steps:\n"
        "  - probe.look: { connection: one, text: '#[payload]' }\n"
        "    target: first\n"
        "  - probe.look: { connection: two, text: '#[payload]' }\n", encoding="utf-8")
    return dsl.load_project(root, vocabulary=registry, environ={})


@pytest.fixture
def probe() -> _ProbePlugin:
    return _ProbePlugin()


@pytest.fixture
def registry(probe: _ProbePlugin) -> Registry:
    return load_registry([probe], load_entry_points=False)


async def test_two_runtimes_in_one_process_share_no_secrets_and_no_connector_state(
        tmp_path: Path, registry: Registry, probe: _ProbePlugin) -> None:
    """A token registered in one runtime is neither masked nor known in the other; connections of
    one runtime share one budget, and the other runtime has its own; log lines are masked by the
    runtime they are written in; nothing leaks out to the context that opened them."""
    handler = _Lines()
    logger = logging.getLogger("splice.test.resources")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    projects = {ALPHA: _project(tmp_path / "a", ALPHA, registry),
                BRAVO: _project(tmp_path / "b", BRAVO, registry)}
    opened = {ALPHA: anyio.Event(), BRAVO: anyio.Event()}
    finished = {ALPHA: anyio.Event(), BRAVO: anyio.Event()}

    async def serve(token: str, other: str) -> None:
        store = open_store("memory://")
        try:
            async with open_runtime(projects[token], registry, store=store) as runtime:
                opened[token].set()
                await opened[other].wait()  # the other runtime is open too while this one runs
                outcome = await runtime.engine.run("look", Event(payload=f"{ALPHA} and {BRAVO}"))
                assert outcome.status == "completed", outcome.error
                finished[token].set()
                await finished[other].wait()
        finally:
            await store.aclose()

    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(serve, ALPHA, BRAVO)
                tg.start_soon(serve, BRAVO, ALPHA)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)

    alpha = [seen for seen in probe.seen if seen["known"] == [ALPHA]]
    bravo = [seen for seen in probe.seen if seen["known"] == [BRAVO]]
    assert len(alpha) == len(bravo) == 2 and len(probe.seen) == 4
    assert {seen["redacted"] for seen in alpha} == {f"*** and {BRAVO}"}
    assert {seen["redacted"] for seen in bravo} == {f"{ALPHA} and ***"}
    # Both connections of a runtime share its budget; the runtimes do not share one.
    assert alpha[0]["budget"] is alpha[1]["budget"] and bravo[0]["budget"] is bravo[1]["budget"]
    assert alpha[0]["budget"] is not bravo[0]["budget"]
    assert alpha[0]["resources"] is not bravo[0]["resources"]
    assert sorted(handler.lines) == sorted([f"saw *** and {BRAVO}"] * 2 + [f"saw {ALPHA} and ***"] * 2)
    # The test's own context learned neither token.
    assert ALPHA not in secret_values() and BRAVO not in secret_values()
    assert redact(ALPHA) == ALPHA


async def test_a_runtime_masks_what_its_opener_knows_and_keeps_its_own(
        tmp_path: Path, registry: Registry, probe: _ProbePlugin) -> None:
    """A secret known where the runtime was opened (a decrypted secure property) is masked inside
    it; the runtime's own secrets stay inside, and a runtime opened afterwards never knew them."""
    register_secret("command-secret-5555")
    store = open_store("memory://")
    try:
        async with open_runtime(_project(tmp_path / "a", ALPHA, registry), registry,
                                store=store) as runtime:
            inside = await runtime.engine.run("look", Event(payload="command-secret-5555 " + ALPHA))
        assert inside.message.payload == "*** ***"
        assert secret_values() == ("command-secret-5555",)
        async with open_runtime(_project(tmp_path / "b", BRAVO, registry), registry,
                                store=store) as later:
            again = await later.engine.run("look", Event(payload=ALPHA))
        assert again.message.payload == ALPHA
        assert sorted(probe.seen[-1]["known"]) == [BRAVO, "command-secret-5555"]
    finally:
        await store.aclose()


def test_a_set_masks_its_parents_values_longest_first() -> None:
    """A secret that contains another one, learned by a child set, is still masked whole."""
    parent = Secrets()
    parent.add("abcd")
    child = parent.child()
    child.add("xxabcdyy")
    parent.add("zzzz-later")
    assert child.redact("xxabcdyy abcd zzzz-later") == "*** *** ***"
    assert parent.redact("xxabcdyy") == "xx***yy"
    assert set(child.values()) == {"abcd", "xxabcdyy", "zzzz-later"}


def test_hand_built_connection_contexts_have_resources_of_their_own() -> None:
    """Contexts built without resources (a connector's own tests) share nothing; given one
    ``RuntimeResources`` they are connections of one runtime."""
    from opentelemetry import trace

    def context(resources: RuntimeResources | None = None) -> ConnectionContext:
        kwargs = {"resources": resources} if resources is not None else {}
        return ConnectionContext(name="c", connector="probe", store=None,  # type: ignore[arg-type]
                                 logger=logging.getLogger("t"), tracer=trace.get_tracer("t"),
                                 **kwargs)

    key = ("probe.budget", "r1")
    assert context().shared(key, Budget) is not context().shared(key, Budget)
    runtime = RuntimeResources()
    assert context(runtime).shared(key, Budget) is context(runtime).shared(key, Budget)


def test_each_test_starts_with_secrets_of_its_own(secrets: Secrets) -> None:
    """Whatever earlier tests registered outside a runtime (``command-secret-5555`` above), this
    test's context knows none of it: nothing shared is reset between tests, each has its own."""
    assert current_secrets() is secrets
    assert secret_values() == ()
    register_secret("only-this-test-7777")
    assert redact("only-this-test-7777") == "***"
