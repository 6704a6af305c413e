"""Splice's pytest plugin: test a project's flows the way MUnit tests Mule flows.

Installed with Splice (the ``pytest11`` entry point ``splice``), it loads in every pytest run, so it
stays light: nothing of Splice is imported and nothing runs until a test asks for one of its
fixtures (none is autouse), and its options are all ``--splice-...``.

``splice_project`` is the project loaded as ``splice serve`` would load it; ``splice_run(flow,
payload)`` runs one flow and returns a :class:`FlowRun` (``status``, ``payload``, ``error``,
``calls``). Connector calls are served by the connectors' emulators (their sandbox specs, as in
``splice serve`` sandbox mode), replayed from a cassette (``@pytest.mark.vcr`` with pytest-recording;
secrets are scrubbed from what is recorded) or stubbed per step label (``stubs=`` or ``mock_step``).
An async test (``@pytest.mark.anyio``) asks for ``splice_runtime`` instead: the runtime opens in the
test's own event loop, so the test can serve the project, run its triggers or read its store while
``await splice_project.arun(flow, payload)`` runs flows. See docs/testing-flows.md.
"""

from __future__ import annotations

import copy
import inspect
import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from dsl.model import Flow, Project, Step
    from runtime.message import Outcome
    from runtime.registry import Registry
    from runtime.service import SpliceRuntime
    from runtime.spec import OperationSpec
    from runtime.store import ObjectStore

__all__ = ["Call", "FlowRun", "SpliceProject"]

#: Request headers never written to a cassette of a Splice test.
_SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "x-api-key", "api-key")
#: Form fields of token requests and JSON fields of token answers kept out of cassettes.
_SECRET_FORM = ("client_secret", "client_id", "refresh_token", "code", "assertion", "password",
                "access_token")
_SECRET_JSON = ("access_token", "refresh_token", "client_secret", "id_token", "password",
                "signature")
_SECRET_QUERY = ("access_token", "client_secret", "refresh_token", "code", "api_key", "apikey")

_CURRENT_ITEM = pytest.StashKey["pytest.Item"]()
_SECRETS = pytest.StashKey[set[str]]()
_REPLACEMENTS = pytest.StashKey[dict[str, str]]()


# -- what a run gives back ------------------------------------------------------------------------


@dataclass(slots=True)
class Call:
    """One connector operation a flow called: its step label, operation, the parameters as the
    handler got them (expressions evaluated, defaults filled in) and its result."""

    operation: str
    label: str | None
    flow: str
    params: dict[str, Any]
    result: Any = None
    stubbed: bool = False

    def __repr__(self) -> str:
        name = f"{self.label!r} ({self.operation})" if self.label else self.operation
        return f"<call {name}{' stubbed' if self.stubbed else ''} params={self.params!r}>"


@dataclass(slots=True)
class FlowRun:
    """How one run of a flow ended, with the connector calls it made, in order."""

    flow: str
    outcome: Outcome
    calls: list[Call] = field(default_factory=list)

    @property
    def status(self) -> str:
        """``completed``, ``failed`` or ``dead-lettered``."""
        return self.outcome.status

    @property
    def payload(self) -> Any:
        """The payload the flow ended with."""
        return self.outcome.message.payload

    @property
    def vars(self) -> dict[str, Any]:
        """The flow's variables as it ended."""
        return self.outcome.message.vars

    @property
    def attributes(self) -> dict[str, Any]:
        return self.outcome.message.attributes

    @property
    def dead_letter_id(self) -> str | None:
        """The dead letter's id when the run was dead-lettered (see ``splice dlq show``)."""
        return self.outcome.dead_letter_id

    @property
    def message(self) -> Any:
        """The :class:`runtime.message.Message` the flow ended with (payload, vars, attributes)."""
        return self.outcome.message

    @property
    def error(self) -> Any:
        """The :class:`runtime.errors.SpliceError` the flow failed with (``None`` when it completed)."""
        return self.outcome.error

    def assert_completed(self) -> FlowRun:
        """Fail the test with the flow's error (type, step, message) unless it completed."""
        __tracebackhide__ = True
        if self.status != "completed":
            raise AssertionError(f"flow '{self.flow}' {self.status} {self._error_text()}")
        return self

    def assert_failed(self, error_type: str | None = None) -> FlowRun:
        """Fail the test unless the flow failed (or was dead-lettered), with ``error_type`` if given."""
        __tracebackhide__ = True
        if self.status == "completed":
            raise AssertionError(f"flow '{self.flow}' completed (payload {self.payload!r}), "
                                 "a failure was expected")
        actual = getattr(self.error, "error_type", None)
        if error_type is not None and actual != error_type:
            raise AssertionError(f"flow '{self.flow}' failed {self._error_text()}, "
                                 f"expected {error_type}")
        return self

    def calls_to(self, label_or_operation: str) -> list[Call]:
        """The calls of the steps with this label, or of this operation (``http.request``)."""
        return [c for c in self.calls if label_or_operation in (c.label, c.operation)]

    def call(self, label_or_operation: str) -> Call:
        """The one call of this step label (or operation); fails the test, listing the calls made,
        when there is none or more than one."""
        __tracebackhide__ = True
        found = self.calls_to(label_or_operation)
        if len(found) != 1:
            raise AssertionError(f"flow '{self.flow}' called {label_or_operation!r} {len(found)} "
                                 f"times, expected once; its calls: {self.calls!r}")
        return found[0]

    def _error_text(self) -> str:
        error = self.error
        if error is None:
            return "no error"
        step = error.details.get("step") if getattr(error, "details", None) else None
        text = str(error)
        if not text.startswith(f"{error.error_type}:"):
            text = f"{error.error_type}: {text}"
        return f"{f'at {step}: ' if step else ''}{text}"

    def __repr__(self) -> str:
        error = f", error={self._error_text()!r}" if self.error is not None else ""
        return (f"FlowRun(flow={self.flow!r}, status={self.status!r}, payload={self.payload!r}"
                f"{error}, calls={self.calls!r})")


# -- stubs and call recording ---------------------------------------------------------------------


class _CallRecorder:
    """Wraps every operation's handler: records the call, and answers with a stub when the
    step's label has one (the real handler is then not called at all)."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.stubs: dict[str, Any] = {}

    def wrap(self, qualified: str, spec: OperationSpec) -> OperationSpec:
        recorder = self  # the handler outlives this call; the recorder's stubs change per run

        async def handler(ctx: Any, params: dict[str, Any]) -> Any:
            call = Call(operation=qualified, label=ctx.label, flow=ctx.flow,
                        params=copy.deepcopy(params))
            recorder.calls.append(call)
            if ctx.label is not None and ctx.label in recorder.stubs:
                call.stubbed = True
                call.result = await _answer(recorder.stubs[ctx.label], params)
                return copy.deepcopy(call.result)
            result = await spec.handler(ctx, params)
            if not hasattr(result, "__aiter__"):  # a stream is read by the flow, not here
                call.result = result
            return result

        return replace(spec, handler=handler)


async def _answer(stub: Any, params: dict[str, Any]) -> Any:
    if isinstance(stub, BaseException):
        raise stub
    if callable(stub):
        answer = stub(params)
        return await answer if inspect.isawaitable(answer) else answer
    return copy.deepcopy(stub)


def _steps(steps: tuple[Step, ...]) -> Iterator[Step]:
    from dsl.model import ChoiceStep, DryRunStep, ForeachStep

    for step in steps:
        yield step
        if isinstance(step, ChoiceStep):
            for branch in step.branches:
                yield from _steps(branch.steps)
            yield from _steps(step.otherwise)
        elif isinstance(step, ForeachStep | DryRunStep):
            yield from _steps(step.steps)


def _labels(flows: Mapping[str, Flow]) -> set[str]:
    labels: set[str] = set()
    for flow in flows.values():
        handler_steps = tuple(s for handler in flow.on_error for s in handler.steps)
        labels.update(s.label for s in _steps(flow.steps + handler_steps) if s.label)
    return labels


# -- the project under test -----------------------------------------------------------------------


class SpliceProject:
    """A loaded project and, once a flow runs, its runtime (opened once per test, closed after it).

    ``emulators`` maps each connection served by its connector's emulator to the emulator's ASGI
    app (seed it, or look at what the flows did: ``app.state.emulator``). ``store`` is the object
    store the runtime uses (a fresh in-memory one unless given).

    The runtime opens either in a thread of its own at the first :meth:`run` (sync tests), or in
    the caller's event loop with :meth:`opened` (async tests, which then :meth:`arun`).
    """

    def __init__(self, root: Path, *, env: str, environ: Mapping[str, str],
                 emulators: bool | list[str], emulator_options: Mapping[str, Mapping[str, Any]],
                 registry: Registry, secrets: set[str], store: ObjectStore | None = None) -> None:
        import dsl
        from runtime.redaction import register_secret

        def secret(value: str) -> None:
            secrets.add(value)
            register_secret(value)

        self.root = root
        self.registry = registry
        self.project: Project = dsl.load_project(root, env=env, vocabulary=registry,
                                                 environ=environ, on_secret=secret)
        self._recorder = _CallRecorder()
        self._labels = _labels(self.project.flows)
        self._stubs: dict[str, Any] = {}
        self._stack = ExitStack()
        self._runtime: SpliceRuntime | None = None
        self._portal: Any = None
        self._in_caller_loop = False
        self._given_store = store
        secrets.update(self._secret_settings())
        self.emulators: dict[str, Any] = {}
        self._emulator_settings: dict[str, Mapping[str, Any]] = {}
        self._build_emulators(emulators, emulator_options)

    def _secret_settings(self) -> set[str]:
        found = set()
        for config in self.project.connections.values():
            connector = self.registry.connectors.get(config.connector)
            if connector is None or connector.connection is None:
                continue
            for param in connector.connection.params:
                value = config.params.get(param.name)
                if param.secret and isinstance(value, str) and len(value) >= 4:
                    found.add(value)
        return found

    def _build_emulators(self, wanted: bool | list[str],
                         options: Mapping[str, Mapping[str, Any]]) -> None:
        from runtime.sandbox import connection_triggers, load_sandbox, supports_sandbox
        from runtime.spec import SandboxTarget, param_defaults

        for name, config in sorted(self.project.connections.items()):
            connector = self.registry.connectors.get(config.connector)
            chosen = wanted if isinstance(wanted, bool) else name in wanted
            if not chosen or not supports_sandbox(connector):
                continue
            assert connector is not None and connector.connection is not None
            sandbox = load_sandbox(connector)
            assert sandbox is not None
            demo = dict(sandbox.settings(f"http://{name}.emulator.test"))
            settings = {**param_defaults(connector.connection.params), **config.params, **demo}
            target = SandboxTarget(connection=name, server_url="http://splice.test",
                                   settings={k: v for k, v in settings.items() if v is not None},
                                   triggers=connection_triggers(self.project, self.registry, name))
            given = options.get(name)
            chosen_options = (dict(given) if given is not None else
                              dict(sandbox.emulator_options(target)) if sandbox.emulator_options
                              else {})
            self.emulators[name] = sandbox.emulator(**chosen_options)
            self._emulator_settings[name] = demo

    def stub(self, label: str, answer: Any) -> None:
        """From now on, steps labelled ``label`` answer ``answer`` instead of calling their
        operation: a value, a function of the rendered parameters, or an exception to raise."""
        self._check_label(label)
        self._stubs[label] = answer

    def _check_label(self, label: str) -> None:
        if label not in self._labels:
            known = ", ".join(sorted(self._labels)) or "none"
            raise LookupError(f"no step is labelled {label!r} in {self.root} (labels: {known})")

    @property
    def runtime(self) -> SpliceRuntime:
        """The open runtime (its engine, triggers, store): after the first :meth:`run`, or inside
        :meth:`opened`."""
        if self._runtime is None:
            raise RuntimeError("the project's runtime is not open: run a flow first, or use the "
                               "splice_runtime fixture in an async test")
        return self._runtime

    @property
    def store(self) -> ObjectStore:
        """The object store the runtime uses (execution history, dead letters, trigger state)."""
        return self.runtime.store

    def run(self, flow: str, payload: Any = None, *, attributes: Mapping[str, Any] | None = None,
            stubs: Mapping[str, Any] | None = None) -> FlowRun:
        """Run ``flow`` once for ``payload``; ``stubs`` (label -> answer) apply to this run only."""
        if self._in_caller_loop:
            raise RuntimeError("the runtime is open in the test's event loop (splice_runtime): "
                               "use 'await splice_project.arun(...)'")
        self._prepare(flow, stubs)
        outcome = self._call(self._run, flow, payload, dict(attributes or {}))
        return FlowRun(flow=flow, outcome=outcome, calls=list(self._recorder.calls))

    async def arun(self, flow: str, payload: Any = None, *, attributes: Mapping[str, Any] | None = None,
                   stubs: Mapping[str, Any] | None = None) -> FlowRun:
        """:meth:`run` for an async test, in its own event loop (inside :meth:`opened`)."""
        if not self._in_caller_loop:
            raise RuntimeError("arun needs the runtime open in this event loop: use the splice_runtime "
                               "fixture (or 'async with splice_project.opened()')")
        self._prepare(flow, stubs)
        outcome = await self._run(flow, payload, dict(attributes or {}))
        return FlowRun(flow=flow, outcome=outcome, calls=list(self._recorder.calls))

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[SpliceRuntime]:
        """Open the runtime in the calling event loop for the block (connections, store, no
        triggers: start them with ``runtime.run_triggers``, or serve the runtime's app)."""
        if self._runtime is not None:
            raise RuntimeError("the project's runtime is already open")
        async with self._opened() as runtime:
            self._runtime, self._in_caller_loop = runtime, True
            try:
                yield runtime
            finally:
                self._runtime, self._in_caller_loop = None, False

    def _prepare(self, flow: str, stubs: Mapping[str, Any] | None) -> None:
        if flow not in self.project.flows:
            known = ", ".join(sorted(self.project.flows)) or "none"
            raise LookupError(f"no flow named {flow!r} in {self.root} (flows: {known})")
        for label in stubs or {}:
            self._check_label(label)
        self._recorder.stubs = {**self._stubs, **(stubs or {})}
        self._recorder.calls = []

    async def _run(self, flow: str, payload: Any, attributes: dict[str, Any]) -> Outcome:
        from runtime.message import Event
        from runtime.spec import materialize

        assert self._runtime is not None
        outcome = await self._runtime.engine.run(flow, Event(payload=payload, attributes=attributes))
        outcome.message.payload = await materialize(outcome.message.payload)
        return outcome

    def _call(self, func: Callable[..., Any], *args: Any) -> Any:
        """Call ``func`` in the test's event loop (a thread of its own), opening it and the
        runtime at the first call; both stay open until :meth:`close`."""
        if self._portal is None:
            from anyio.from_thread import start_blocking_portal

            self._portal = self._stack.enter_context(start_blocking_portal())
        if self._runtime is None:  # opened and closed by one task of the portal, as anyio wants
            self._runtime = self._stack.enter_context(
                self._portal.wrap_async_context_manager(self._opened()))
        return self._portal.call(func, *args)

    @asynccontextmanager
    async def _opened(self) -> AsyncIterator[SpliceRuntime]:
        import httpx

        from runtime.service import open_runtime
        from runtime.store import open_store

        # The engine finds operations in the registry: a copy whose handlers record (and stub).
        registry = replace(self.registry, operations={
            name: self._recorder.wrap(name, spec) for name, spec in self.registry.operations.items()})
        transports = {name: httpx.ASGITransport(app=app) for name, app in self.emulators.items()}
        store = self._given_store or open_store("memory://")
        try:
            async with open_runtime(self.project, registry, store=store, transports=transports,
                                    connection_settings=self._emulator_settings) as runtime:
                yield runtime
        finally:
            if self._given_store is None:
                await store.aclose()

    def close(self) -> None:
        """Close the runtime (connections, store) and the event loop the flows ran in."""
        self._runtime = None
        self._stack.close()


# -- pytest hooks and fixtures --------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("splice", "Splice flow tests")
    group.addoption("--splice-project", metavar="DIR", default=None,
                    help="the Splice project the splice_* fixtures load (default: ini splice_project, "
                         "else <rootdir>/flows, else the working directory)")
    group.addoption("--splice-env", metavar="ENV", default=None,
                    help="environment of the project (config/<ENV>.yaml; default: ini splice_env, "
                         "$SPLICE_ENV or dev)")
    parser.addini("splice_project", "the Splice project the splice_* fixtures load (relative to "
                  "the rootdir)", default=None)
    parser.addini("splice_env", "environment the splice_* fixtures load the project for",
                  default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "splice(project=None, env=None, environ=None, emulators=True, "
        "emulator_options=None): how splice_project loads and connects the project under test")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.config.stash[_CURRENT_ITEM] = item
    item.config.stash[_SECRETS] = set()
    item.config.stash[_REPLACEMENTS] = {}


@pytest.hookimpl(optionalhook=True)  # pytest-recording's hook: absent without it
def pytest_recording_configure(config: pytest.Config, vcr: Any) -> None:
    """Cassettes of tests that use Splice's fixtures keep no credentials: auth headers, token
    requests and answers, and every secret setting of the project are scrubbed. A ``vcr_config``
    with its own ``before_record_*`` hooks or ``filter_*`` lists replaces these."""
    item = config.stash.get(_CURRENT_ITEM, None)
    if item is None or "splice_project" not in getattr(item, "fixturenames", ()):
        return
    from runtime.testing import cassette_scrubbers

    secrets = config.stash.setdefault(_SECRETS, set())
    replacements = config.stash.setdefault(_REPLACEMENTS, {})

    hooks = cassette_scrubbers(replace=_SecretValues(secrets, replacements), form_fields=_SECRET_FORM,
                               json_fields=_SECRET_JSON, drop_headers=("set-cookie",))
    vcr.filter_headers = list(_SECRET_HEADERS)
    vcr.filter_query_parameters = list(_SECRET_QUERY)
    vcr.before_record_request = hooks["before_record_request"]
    vcr.before_record_response = hooks["before_record_response"]


class _SecretValues(Mapping[str, str]):
    """Each secret value of the project -> ``<SECRET>``, and each value of ``splice_cassette_replace``
    -> its replacement, read when a request is recorded (the project is loaded after the cassette is
    set up); longest first, so no value is half-replaced."""

    def __init__(self, secrets: set[str], replacements: dict[str, str]) -> None:
        self._secrets = secrets
        self._replacements = replacements

    def __getitem__(self, key: str) -> str:
        if key in self._secrets:
            return "<SECRET>"
        return self._replacements[key]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._secrets | set(self._replacements), key=len, reverse=True))

    def __len__(self) -> int:
        return len(self._secrets | set(self._replacements))


def _marker(request: pytest.FixtureRequest) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for mark in reversed(list(request.node.iter_markers("splice"))):  # the closest wins
        found.update(mark.kwargs)
    return found


@pytest.fixture
def splice_project_dir(request: pytest.FixtureRequest) -> Path:
    """The project directory (override this fixture to choose it in code): the ``splice`` marker's
    ``project`` (relative to the test file), ``--splice-project``, the ini ``splice_project``, else
    ``<rootdir>/flows`` if it exists, else the working directory."""
    config = request.config
    marked = _marker(request).get("project")
    if marked is not None:
        return (Path(str(request.node.path)).parent / str(marked)).resolve()
    given: Any = config.getoption("--splice-project") or config.getini("splice_project")
    if given:
        return (config.rootpath / str(given)).resolve()
    flows = config.rootpath / "flows"
    return flows if flows.is_dir() else Path.cwd()


@pytest.fixture
def splice_environ() -> dict[str, str]:
    """Environment variables (property overrides) for the project on top of ``os.environ``:
    override this fixture, or use the ``splice`` marker's ``environ``."""
    return {}


@pytest.fixture
def splice_emulators(request: pytest.FixtureRequest) -> bool | list[str]:
    """Which connections the emulators serve: all that have one (``True``), none (``False``, e.g.
    when a cassette answers) or the connections named. Override this fixture to choose in code
    (``return record_mode != "none"``: emulators while recording, the cassette when replaying);
    the ``splice`` marker's ``emulators`` wins over it."""
    chosen: bool | list[str] = _marker(request).get("emulators", True)
    return chosen


@pytest.fixture
def splice_emulator_options() -> dict[str, dict[str, Any]]:
    """Connection name -> the options its emulator is built with, instead of sandbox mode's (demo
    data...): override this fixture, or use the ``splice`` marker's ``emulator_options`` (which
    wins for the connections it names)."""
    return {}


@pytest.fixture
def splice_cassette_replace() -> dict[str, str]:
    """Values cassettes must not show, on top of the project's secrets, -> what they show instead
    (``{"9341452797": "1234567890"}``: a company id). Override this fixture to name them."""
    return {}


@pytest.fixture(scope="session")
def splice_registry() -> Registry:
    """The installed plugins (connectors, steps, functions), loaded once per session."""
    from runtime.registry import load_registry

    return load_registry()


@pytest.fixture
def splice_project(request: pytest.FixtureRequest, splice_project_dir: Path,
                   splice_environ: dict[str, str], splice_registry: Registry,
                   splice_emulators: bool | list[str], splice_emulator_options: dict[str, dict[str, Any]],
                   splice_cassette_replace: dict[str, str]) -> Iterator[SpliceProject]:
    """The project under test, loaded and checked; connections whose connector has an emulator are
    served by it in process (``@pytest.mark.splice(emulators=False)`` or a list of connection names
    to choose, or the ``splice_emulators`` fixture)."""
    marker = _marker(request)
    config = request.config
    environ = {**os.environ, **splice_environ, **marker.get("environ", {})}
    env = (marker.get("env") or config.getoption("--splice-env") or config.getini("splice_env")
           or environ.get("SPLICE_ENV") or "dev")
    secrets = config.stash.setdefault(_SECRETS, set())
    config.stash.setdefault(_REPLACEMENTS, {}).update(splice_cassette_replace)
    from dsl import FlowErrors

    problems = ""
    try:
        project = SpliceProject(splice_project_dir, env=str(env), environ=environ,
                                emulators=splice_emulators,
                                emulator_options={**splice_emulator_options,
                                                  **marker.get("emulator_options", {})},
                                registry=splice_registry, secrets=secrets)
    except FlowErrors as exc:  # the project's own problems, as `splice validate` prints them
        problems = str(exc)
    if problems:
        pytest.fail(f"the project {splice_project_dir} does not load:\n{problems}", pytrace=False)
    try:
        yield project
    finally:
        project.close()


@pytest.fixture
async def splice_runtime(splice_project: SpliceProject, anyio_backend: Any) -> AsyncIterator[SpliceRuntime]:
    """For async tests (``@pytest.mark.anyio``, on asyncio): the project's runtime opened in the
    test's event loop, for the test; flows run with ``await splice_project.arun(flow, payload)``."""
    async with splice_project.opened() as runtime:
        yield runtime


@pytest.fixture
def splice_run(splice_project: SpliceProject) -> Callable[..., FlowRun]:
    """``splice_run(flow, payload, attributes=None, stubs=None)``: run a flow once -> :class:`FlowRun`."""
    return splice_project.run


@pytest.fixture
def mock_step(splice_project: SpliceProject) -> Callable[[str, Any], None]:
    """``mock_step(label, answer)``: steps with this label answer ``answer`` for the rest of the
    test instead of calling their operation (a value, a function of the parameters, an exception)."""
    return splice_project.stub
