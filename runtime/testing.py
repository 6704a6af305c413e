"""Helpers for testing connector plugins without running flows.

:class:`RecordingSourceContext` is what a source's ``run`` receives, minus the engine: the events
it hands over are recorded (and each gets the outcome the test chooses), its stored state lives in
memory, its routes are kept for the test to call, and ``stop()`` begins shutdown. Subclass it to
drive time differently (stop after N sleeps, move a fake clock); see ``docs/writing-a-connector.md``.

:func:`typed_call` calls an operation's handler or a source's ``run`` the way the runtime does:
with the parameters defaulted and typed by the spec's :class:`~runtime.spec.Param` list.

:func:`cassette_scrubbers` gives the ``before_record_request`` / ``before_record_response`` hooks of
a recorded-HTTP cassette (vcrpy, pytest-recording) that keep secrets and account ids out of it.

:func:`wait_until` waits for what a background task (a running source, a server) should bring
about, with a deadline, instead of sleeping a fixed time and hoping it was long enough.
"""

from __future__ import annotations

import copy
import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

import anyio
from opentelemetry import trace

from runtime.context import HttpEndpoint, SourceContext
from runtime.message import Event, Message, Outcome, OutcomeStatus
from runtime.params import compile_params
from runtime.spec import OperationSpec, SourceSpec
from runtime.store.base import ObjectStore

__all__ = ["RecordingSourceContext", "cassette_scrubbers", "typed_call", "wait_until"]


class RecordingSourceContext(SourceContext):
    """A source context that records events, routes and saved state instead of running a flow.

    ``outcome(event)`` decides each event's fate (default: ``completed``); only completed events
    are recorded in :attr:`events`. Every saved state is kept in :attr:`saved` (as a copy, so a
    source that goes on changing its dict cannot rewrite history); ``state`` is the stored state
    the source starts from.
    """

    def __init__(self, store: ObjectStore, *, connection: Any = None,
                 connection_name: str | None = None, flow: str = "test-flow", state: Any = None,
                 outcome: Callable[[Event], OutcomeStatus] | None = None) -> None:
        self.flow = flow
        self.connection = connection
        self.connection_name = connection_name
        self.store = store
        self.logger = logging.getLogger(f"splice.test.{flow}")
        self.tracer = trace.get_tracer("splice.test")
        self.events: list[Event] = []
        self.routes: dict[str, HttpEndpoint] = {}
        self.state = state
        self.saved: list[Any] = []
        self._outcome = outcome
        self._stop = anyio.Event()

    async def handle(self, event: Event, *, dead_letter_failures: bool = True) -> Outcome:
        status = self._outcome(event) if self._outcome is not None else "completed"
        if status == "completed":
            self.events.append(event)
        return Outcome(status, Message(payload=event.payload, attributes=event.attributes))

    async def handle_many(self, events: Iterable[Event]) -> list[Outcome]:
        return [await self.handle(event) for event in events]

    async def load_state(self) -> Any:
        return self.state

    async def save_state(self, state: Any) -> None:
        self.state = copy.deepcopy(state)
        self.saved.append(self.state)

    def add_route(self, path: str, methods: Iterable[str], endpoint: HttpEndpoint) -> None:
        self.routes[path] = endpoint

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def sleep(self, seconds: float) -> bool:
        with anyio.move_on_after(seconds):
            await self._stop.wait()
        return not self._stop.is_set()

    def stop(self) -> None:
        """Begin shutdown: ``stopping`` turns true and every ``sleep`` returns ``False``."""
        self._stop.set()


async def wait_until(condition: Callable[[], object], *, within: float = 10.0,
                     interval: float = 0.01, what: str = "the condition") -> None:
    """Return as soon as ``condition()`` (a function, or a coroutine function) gives a true value.

    It is checked at once, then every ``interval`` seconds; after ``within`` seconds (of real time)
    an :class:`AssertionError` says what was awaited (``what``).
    """
    deadline = time.monotonic() + within
    while True:
        reached = condition()
        if inspect.isawaitable(reached):
            reached = await reached
        if reached:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        await anyio.sleep(interval)


def cassette_scrubbers(*, replace: Mapping[str, str], form_fields: Iterable[str],
                       json_fields: Iterable[str], drop_headers: Iterable[str] = ()
                       ) -> dict[str, Callable[[Any], Any]]:
    """Hooks that scrub what a cassette records.

    Every text in ``replace`` (an account or company id) becomes its replacement, in URIs and
    bodies; the ``form_fields`` of an OAuth token request (``grant_type=...``) and the string
    values of ``json_fields`` in any body become ``<FIELD>``; ``drop_headers`` leave the answers.
    """
    forms = frozenset(form_fields)
    fields = tuple(json_fields)
    dropped = frozenset(h.lower() for h in drop_headers)

    def replaced(text: str) -> str:
        for found, replacement in replace.items():
            text = text.replace(found, replacement)
        return text

    def hidden(text: str) -> str:
        text = replaced(text)
        for name in fields:
            text = re.sub(rf'("{name}"\s*:\s*")[^"]*(")', rf"\1<{name.upper()}>\2", text)
        return text

    def request(request: Any) -> Any:
        request.uri = replaced(request.uri)
        body = request.body
        if body:
            text = body.decode() if isinstance(body, bytes) else str(body)
            if "grant_type=" in text:
                text = urlencode([(k, f"<{k.upper()}>" if k in forms else v)
                                  for k, v in parse_qsl(text, keep_blank_values=True)])
            else:
                text = hidden(text)
            request.body = text.encode()
        return request

    def response(response: dict[str, Any]) -> dict[str, Any]:
        body = response.get("body", {}).get("string")
        if body:
            text = body.decode() if isinstance(body, bytes) else body
            response["body"]["string"] = hidden(text).encode()
        for name in list(response.get("headers", {})):
            if name.lower() in dropped:
                response["headers"].pop(name)
        return response

    return {"before_record_request": request, "before_record_response": response}


def typed_call(spec: OperationSpec | SourceSpec) -> Callable[[Any, Mapping[str, Any]], Awaitable[Any]]:
    """``spec``'s handler (an operation) or ``run`` (a source), given raw parameters as a flow
    writes them (``"30s"``, ``"5"``) and handing them on defaulted and typed, as the runtime does.
    """
    coerce = compile_params(spec.params, owner=spec.name)
    target: Callable[[Any, dict[str, Any]], Awaitable[Any]] = (
        spec.handler if isinstance(spec, OperationSpec) else spec.run)

    async def call(ctx: Any, params: Mapping[str, Any]) -> Any:
        return await target(ctx, coerce(params))

    return call
