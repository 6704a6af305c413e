"""The admin API of ``splice serve``: executions, dead letters and status as JSON, authenticated.

    GET  /admin/status                    connections, triggers, dead letters, history writer
    GET  /admin/executions                ?flow= &outcome= &since= &until= &id= &correlation-id=
                                          &limit= (1-500, default 50) &after= (the previous page's
                                          ``next``); newest first, without steps and data
    GET  /admin/executions/{id}           one execution: timeline, error, kept data
    GET  /admin/dead-letters              ?flow= &limit= &after=; oldest first
    GET  /admin/dead-letters/{id}
    POST /admin/dead-letters/replay       {"ids": [...]} or {"all": true, "flow": "..."}
    POST /admin/dead-letters/discard      {"ids": [...]}; both answer one result per letter

Every request carries the admin key (``Authorization: Bearer KEY`` or ``X-Admin-Key: KEY``), set by
``settings.server.admin-key`` or ``$SPLICE_ADMIN_KEY``. Without a configured key the API is open
only to a sandbox serve's local clients (and ``/sandbox`` says so); elsewhere it answers 401 and
names the setting. Errors are JSON (``{"error": {"type", "message"}}``), never a traceback.

The CLI (``splice executions``, ``splice dlq``, ``splice status``) calls this API when a server
runs, so that it never reads the store behind the server's back.
"""

from __future__ import annotations

import hmac
import logging
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime.admin_access import ADMIN_KEY_ENV, admin_key, is_loopback, project_fingerprint
from runtime.context import HttpRequest, HttpResponse
from runtime.deadletter_actions import discard_letters, replay_letters
from runtime.sandbox import BANNER_WIDTH
from runtime.service import SpliceRuntime
from runtime.store.deadletters import DeadLetter, DeadLetterQueue
from runtime.store.executions import OUTCOMES, ExecutionFilter, ExecutionHistory, normalize_time

__all__ = ["ADMIN_KEY_ENV", "ADMIN_PREFIX", "AdminApi", "AdminError", "admin_key", "describe_access",
           "project_fingerprint", "with_admin_line"]

logger = logging.getLogger("splice.server.admin")

ADMIN_PREFIX = "/admin/"
#: At most this many letters per replay or discard request.
MAX_BATCH = 1000
#: Fields left out of execution lists (``GET /admin/executions/{id}`` has them).
_DETAIL_FIELDS = ("steps", "input", "output")


def describe_access(key: str | None, *, sandbox: bool, host: str) -> str:
    """How the admin API is protected, in words (for ``/sandbox`` and the sandbox banner)."""
    if key is not None:
        return "admin key required (settings.server.admin-key / SPLICE_ADMIN_KEY)"
    if sandbox and is_loopback(host):
        return f"open to local clients (sandbox without an admin key; set {ADMIN_KEY_ENV} to close it)"
    return f"closed: set settings.server.admin-key or {ADMIN_KEY_ENV}"


def with_admin_line(banner: str, server_url: str, access: str) -> str:
    """The sandbox banner with lines on the admin API above its closing rule, as wide as the rest."""
    lines = banner.rstrip("\n").split("\n")
    added = textwrap.wrap(f"{server_url}/admin/status: {access}", BANNER_WIDTH,
                          initial_indent="  admin API  ", subsequent_indent=" " * 13)
    lines[len(lines) - 1:len(lines) - 1] = added
    return "\n".join(lines) + "\n"


class AdminError(Exception):
    """A request the API refuses: answered with ``status`` and a JSON error."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message

    def response(self) -> HttpResponse:
        """The JSON answer."""
        return HttpResponse(self.status, {"error": {"type": self.kind, "message": self.message}})


class AdminApi:
    """Answers ``/admin/...`` requests for one open runtime."""

    def __init__(self, runtime: SpliceRuntime, *, key: str | None,
                 sandbox: Mapping[str, Any] | None) -> None:
        self.runtime = runtime
        self.key = key
        #: The sandbox's description (``GET /sandbox``) in sandbox mode.
        self.sandbox = sandbox
        #: No key and a sandbox serve: local clients need none.
        self.open_locally = key is None and sandbox is not None
        self.history = ExecutionHistory(runtime.store)
        self.dead_letters = DeadLetterQueue(runtime.store)
        #: The served project's directory (the CLI checks it is talking to its own project's serve).
        self.project_dir = str(Path(runtime.project.root).resolve())
        #: The project's files as this serve loaded them (see :func:`project_fingerprint`).
        self.fingerprint = project_fingerprint(runtime.project.root)

    async def handle(self, request: HttpRequest, *, server_host: str | None) -> HttpResponse:
        """Authenticate, route and answer; every refusal is JSON."""
        try:
            self._authenticate(request, server_host)
            return await self._route(request)
        except AdminError as error:
            return error.response()
        except Exception as exc:  # never a traceback to the caller
            logger.exception("admin request %s %s failed", request.method, request.path)
            return AdminError(500, "ADMIN:INTERNAL", f"internal error ({type(exc).__name__})").response()

    def _authenticate(self, request: HttpRequest, server_host: str | None) -> None:
        if self.key is None:
            if self.open_locally and is_loopback(request.client) and is_loopback(server_host):
                return
            raise AdminError(401, "ADMIN:UNAUTHORIZED",
                             f"the admin API needs a key: set settings.server.admin-key or "
                             f"{ADMIN_KEY_ENV} for the server, and send it as 'Authorization: "
                             "Bearer KEY'")
        sent = request.headers.get("x-admin-key")
        authorization = request.headers.get("authorization", "")
        if sent is None and authorization.lower().startswith("bearer "):
            sent = authorization[7:].strip()
        if not sent or not hmac.compare_digest(sent.encode(), self.key.encode()):
            raise AdminError(401, "ADMIN:UNAUTHORIZED",
                             "missing or wrong admin key ('Authorization: Bearer KEY')")

    async def _route(self, request: HttpRequest) -> HttpResponse:
        parts = [part for part in request.path[len(ADMIN_PREFIX):].split("/") if part]
        method = request.method
        if parts == ["status"]:
            self._method(method, "GET")
            return HttpResponse(200, await self.status())
        if parts == ["executions"]:
            self._method(method, "GET")
            return HttpResponse(200, await self.executions(request.query))
        if len(parts) == 2 and parts[0] == "executions":
            self._method(method, "GET")
            return HttpResponse(200, await self.execution(parts[1]))
        if parts == ["dead-letters"]:
            self._method(method, "GET")
            return HttpResponse(200, await self.letters(request.query))
        if len(parts) == 2 and parts[0] == "dead-letters" and parts[1] in ("replay", "discard"):
            self._method(method, "POST")
            return HttpResponse(200, await self.act(parts[1], _json_body(request)))
        if len(parts) == 2 and parts[0] == "dead-letters":
            self._method(method, "GET")
            return HttpResponse(200, (await self.letter(parts[1])).to_dict())
        raise AdminError(404, "ADMIN:NOT_FOUND", f"no admin resource {request.path}")

    @staticmethod
    def _method(method: str, allowed: str) -> None:
        if method != allowed and not (allowed == "GET" and method == "HEAD"):
            raise AdminError(405, "ADMIN:METHOD_NOT_ALLOWED", f"use {allowed}")

    # -- resources --------------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """Connections, triggers, dead letters per flow, and the history writer's counters."""
        runtime = self.runtime
        per_flow: dict[str, int] = {}
        async for letter in self.dead_letters.iter():
            per_flow[letter.flow] = per_flow.get(letter.flow, 0) + 1
        recorder = runtime.engine.history
        return {
            "project": self.project_dir,
            "projectFingerprint": self.fingerprint,
            "sandbox": None if self.sandbox is None else {"store": self.sandbox.get("store")},
            "flows": sorted(runtime.project.flows),
            "connections": await runtime.status(),
            "triggers": {flow: state.to_dict() for flow, state in runtime.triggers.all().items()},
            "deadLetters": {"total": sum(per_flow.values()), "byFlow": per_flow},
            "history": None if recorder is None else {
                "executions": await self.history.count(), "pending": recorder.pending,
                "written": recorder.written, "dropped": recorder.dropped,
                "keepData": recorder.settings.keep_data,
                "retentionSeconds": recorder.settings.retention,
                "maxPerFlow": recorder.settings.max_per_flow},
        }

    async def executions(self, query: Mapping[str, str]) -> dict[str, Any]:
        """A page of execution summaries, newest first, and the cursor of the next page."""
        _known(query, {"flow", "outcome", "since", "until", "id", "correlation-id", "limit", "after"})
        outcome = query.get("outcome")
        if outcome is not None and outcome not in OUTCOMES:
            raise AdminError(400, "ADMIN:BAD_REQUEST",
                             f"outcome must be one of {', '.join(OUTCOMES)}, not '{outcome}'")
        after = query.get("after")
        if after is not None and not _looks_like_id(after):
            raise AdminError(400, "ADMIN:BAD_REQUEST", f"after: not an execution id: '{after}'")
        limit = _limit(query)
        where = ExecutionFilter(flow=query.get("flow"), outcome=outcome, record_id=query.get("id"),
                                correlation_id=query.get("correlation-id"),
                                since=_time(query, "since"), until=_time(query, "until"))
        records = await self.history.list(where, limit=limit, after=after)
        return {
            "executions": [{k: v for k, v in r.items() if k not in _DETAIL_FIELDS} for r in records],
            "next": records[-1]["id"] if len(records) == limit else None,
        }

    async def execution(self, execution_id: str) -> dict[str, Any]:
        """One execution record (timeline, error, kept data); 404 when there is none."""
        record = await self.history.get(execution_id) if _looks_like_id(execution_id) else None
        if record is None:
            raise AdminError(404, "ADMIN:NOT_FOUND", f"no execution '{execution_id}'")
        return record

    async def letter(self, letter_id: str) -> DeadLetter:
        """One dead letter; 404 when there is none."""
        letter = await self.dead_letters.get(letter_id)
        if letter is None:
            raise AdminError(404, "ADMIN:NOT_FOUND", f"no dead letter '{letter_id}'")
        return letter

    async def letters(self, query: Mapping[str, str]) -> dict[str, Any]:
        """A page of dead letters, oldest first, and the cursor of the next page."""
        _known(query, {"flow", "limit", "after"})
        limit = _limit(query)
        letters = await self.dead_letters.list(flow=query.get("flow"), limit=limit,
                                               after=query.get("after"))
        return {"deadLetters": [letter.to_dict() for letter in letters],
                "next": letters[-1].id if len(letters) == limit else None}

    async def act(self, action: str, body: Any) -> dict[str, Any]:
        """Replay or discard the letters a request names; one result per letter."""
        if not isinstance(body, dict):
            raise AdminError(400, "ADMIN:BAD_REQUEST",
                             'the body must be a JSON object: {"ids": [...]}'
                             + (' or {"all": true, "flow": "..."}' if action == "replay" else ""))
        ids = body.get("ids")
        everything = body.get("all") is True and action == "replay"
        if not everything:
            if (not isinstance(ids, list) or not ids or len(ids) > MAX_BATCH
                    or not all(isinstance(i, str) and i for i in ids)):
                raise AdminError(400, "ADMIN:BAD_REQUEST",
                                 f'"ids" must be a list of 1 to {MAX_BATCH} dead letter ids')
        if action == "discard":
            return {"results": await discard_letters(self.dead_letters, ids or [])}
        flow = body.get("flow")
        if flow is not None and not isinstance(flow, str):
            raise AdminError(400, "ADMIN:BAD_REQUEST", '"flow" must be a flow name')
        letters: list[DeadLetter] = []
        missing: list[dict[str, Any]] = []
        if everything:
            letters = await self.dead_letters.list(flow=flow, limit=MAX_BATCH)
        else:
            for letter_id in ids or []:
                letter = await self.dead_letters.get(letter_id)
                if letter is None:
                    missing.append({"id": letter_id, "outcome": "not-found"})
                else:
                    letters.append(letter)
        results = await replay_letters(self.runtime.engine, self.dead_letters, letters)
        return {"results": results + missing}


def _known(query: Mapping[str, str], names: set[str]) -> None:
    unknown = sorted(set(query) - names)
    if unknown:
        raise AdminError(400, "ADMIN:BAD_REQUEST",
                         f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")


def _limit(query: Mapping[str, str]) -> int:
    text = query.get("limit", "50")
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 500:
        raise AdminError(400, "ADMIN:BAD_REQUEST", f"limit must be a number from 1 to 500, not '{text}'")
    return limit


def _time(query: Mapping[str, str], name: str) -> str | None:
    """An ISO 8601 time (date, or date and time; UTC unless it says otherwise) as records store it."""
    text = query.get(name)
    if text is None:
        return None
    try:
        return normalize_time(text.replace(" ", "+"))  # a query's '+' arrives as a space
    except ValueError:
        raise AdminError(400, "ADMIN:BAD_REQUEST",
                         f"{name} must be an ISO 8601 time such as 2026-12-01T09:30:00Z, "
                         f"not '{text}'") from None


def _looks_like_id(text: str) -> bool:
    moment, sep, rest = text.partition("-")
    return bool(sep and rest and len(moment) == 23 and moment[8] == "T" and moment.endswith("Z"))


def _json_body(request: HttpRequest) -> Any:
    try:
        return request.json()
    except ValueError:
        raise AdminError(400, "ADMIN:BAD_REQUEST", "the body is not JSON") from None
