"""The console's pages: routing, authentication and forms over the admin API.

    GET  /console                          overview: flows, connections, triggers, alerts, dead letters
    GET  /console/executions               ?flow= &outcome= &since= &until= &id= &correlation-id= &after=
    GET  /console/executions/{id}          timeline, error, kept data
    GET  /console/dead-letters             ?flow= &after=; checkboxes to replay or discard
    GET  /console/dead-letters/{id}
    POST /console/dead-letters/action      action=replay|discard, ids=...; shows one result per letter
    GET  /console/reconciliation           the latest reports and runs of the reconciliation flow
    GET  /console/reconciliation/{name}    one report's findings
    GET  /console/login, POST /console/login, POST /console/logout

Every figure comes from the same :class:`~runtime.server.admin.AdminApi` methods the JSON API
answers with (its validation too: a bad filter is the same 400, as a page). GETs change nothing;
every POST carries the session's CSRF token. Pages are rendered by Jinja2 with autoescaping, and
whatever data they show is masked like logs first, so no token, key or secure property reaches a page.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape

from runtime.admin_access import is_loopback
from runtime.context import HttpRequest, HttpResponse
from runtime.history import capture
from runtime.jsonutil import dumps
from runtime.redaction import redact
from runtime.server.admin import AdminApi, AdminError
from runtime.server.console.auth import ADMIN_USER, LOCAL_USER, ConsoleAuth, Session
from runtime.server.console.overview import gather_overview
from runtime.server.console.reconciliation import (
    ReportNotFound,
    is_reconciliation_flow,
    list_reports,
    read_report,
    report_dir,
    run_of,
)
from runtime.store.executions import OUTCOMES
from runtime.store.ids import utc_iso

__all__ = ["CONSOLE_PREFIX", "Console"]

logger = logging.getLogger("splice.console")

CONSOLE_PREFIX = "/console"
#: Executions and dead letters per page.
PAGE_SIZE = 50
#: Bytes of a dead letter's or an execution's data shown (the rest is cut, as history does).
MAX_DATA_BYTES = 64 * 1024
_EXECUTION_FILTERS = ("flow", "outcome", "since", "until", "id", "correlation-id", "after")
_SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
    "x-frame-options": "DENY",
}


class ConsoleError(Exception):
    """A request the console refuses: a page with ``status`` and ``message``."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


class Console:
    """Answers ``/console...`` requests of one serve, over its admin API."""

    def __init__(self, admin: AdminApi, server_settings: Mapping[str, Any], *, sandbox: bool) -> None:
        self.admin = admin
        self.auth = ConsoleAuth(server_settings, sandbox=sandbox)
        self.sandbox = sandbox
        self.templates = Environment(
            loader=PackageLoader("runtime.server.console", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True, lstrip_blocks=True)
        self.templates.filters["json"] = _pretty
        self.templates.filters["ms"] = _ms
        self.templates.filters["seconds"] = _seconds
        self.templates.filters["status_value"] = _status_value
        self.css = resources.files("runtime.server.console").joinpath("static/console.css").read_bytes()

    async def handle(self, request: HttpRequest, *, server_host: str | None) -> HttpResponse:
        """Authenticate, route and answer with a page; never a traceback."""
        session = self.auth.read(request.headers.get("cookie"))
        fresh = session is None
        if session is None:
            session = self.auth.new_session(None)
        local = is_loopback(request.client) and is_loopback(server_host)
        if session.user == LOCAL_USER and not (self.auth.open_locally and local):
            session, fresh = self.auth.new_session(None), True  # "local" is no login elsewhere
        if self.auth.open_locally and session.user is None and local:
            session, fresh = self.auth.new_session(LOCAL_USER), True
        try:
            response = await self._route(request, session)
        except ConsoleError as error:
            response = self._page("error.html", session, status=error.status, title=error.title,
                                  message=error.message)
        except AdminError as error:
            response = self._page("error.html", session, status=error.status,
                                  title=_STATUS_TITLES.get(error.status, "Refused"),
                                  message=error.message)
        except Exception as exc:  # never a traceback to the browser
            logger.exception("console request %s %s failed", request.method, request.path)
            response = self._page("error.html", session, status=500, title="Internal error",
                                  message=f"The console failed ({type(exc).__name__}); the server log "
                                          "has the details.")
        if fresh and "set-cookie" not in response.headers:
            response.headers["set-cookie"] = self.auth.cookie(session, secure=_secure(request))
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    # -- routing ----------------------------------------------------------------------------------

    async def _route(self, request: HttpRequest, session: Session) -> HttpResponse:
        path = request.path.rstrip("/") or CONSOLE_PREFIX
        parts = [p for p in path[len(CONSOLE_PREFIX):].split("/") if p]
        method = "GET" if request.method == "HEAD" else request.method
        if parts == ["static", "console.css"]:
            _allow(method, "GET")
            return HttpResponse(200, self.css, headers={"content-type": "text/css; charset=utf-8",
                                                        "cache-control": "max-age=3600"})
        if parts == ["login"]:
            if method == "POST":
                return self._login(request, session)
            _allow(method, "GET")
            return self._login_page(session, request.query.get("next", CONSOLE_PREFIX))
        if self.auth.closed:
            raise ConsoleError(401, "Console closed",
                               "The console needs a login: set settings.server.admin-key (or "
                               "SPLICE_ADMIN_KEY) or settings.server.console-users, and restart.")
        if session.user is None:
            return self._login_page(session, _next_of(request), status=401)
        if parts == ["logout"]:
            _allow(method, "POST")
            self._check_csrf(request, session)
            return self._redirect(f"{CONSOLE_PREFIX}/login", session=self.auth.new_session(None),
                                  request=request)
        if not parts:
            _allow(method, "GET")
            overview = await gather_overview(self.admin)
            overview["connections"] = _shown(overview["connections"])
            return self._page("overview.html", session, **overview)
        if parts == ["executions"]:
            _allow(method, "GET")
            return await self._executions(request, session)
        if len(parts) == 2 and parts[0] == "executions":
            _allow(method, "GET")
            return await self._execution(parts[1], session)
        if parts == ["dead-letters"]:
            _allow(method, "GET")
            return await self._letters(request, session)
        if parts == ["dead-letters", "action"]:
            _allow(method, "POST")
            return await self._act(request, session)
        if len(parts) == 2 and parts[0] == "dead-letters":
            _allow(method, "GET")
            letter = (await self.admin.letter(parts[1])).to_dict()
            return self._page("dead_letter.html", session, letter=_shown(letter))
        if parts == ["reconciliation"]:
            _allow(method, "GET")
            return await self._reconciliation(session)
        if len(parts) == 2 and parts[0] == "reconciliation":
            _allow(method, "GET")
            return await self._report(parts[1], session)
        raise ConsoleError(404, "Not found", f"No console page {request.path}.")

    # -- pages ------------------------------------------------------------------------------------

    async def _executions(self, request: HttpRequest, session: Session) -> HttpResponse:
        query = {k: v.strip() for k, v in request.query.items() if v.strip()}
        unknown = sorted(set(query) - set(_EXECUTION_FILTERS))
        if unknown:
            raise ConsoleError(400, "Bad filter", f"Unknown filter {', '.join(unknown)}; known: "
                               f"{', '.join(_EXECUTION_FILTERS)}.")
        page = await self.admin.executions({**query, "limit": str(PAGE_SIZE)})
        following = ({**query, "after": page["next"]} if page["next"] else None)
        return self._page("executions.html", session, executions=page["executions"], filters=query,
                          flows=sorted(self.admin.runtime.project.flows), outcomes=OUTCOMES,
                          next_url=_url("executions", following) if following else None,
                          first_url=(_url("executions", {k: v for k, v in query.items()
                                                         if k != "after"})
                                     if "after" in query else None))

    async def _execution(self, execution_id: str, session: Session) -> HttpResponse:
        record = _shown(await self.admin.execution(execution_id))
        letter = record.get("deadLetterId")
        letter_kept = bool(letter) and await self.admin.dead_letters.get(str(letter)) is not None
        steps = record.get("steps") or []
        total = max([s.get("startMs", 0) + s.get("durationMs", 0) for s in steps] + [0.001])
        return self._page("execution.html", session, execution=record, letter_kept=letter_kept,
                          total_ms=total)

    async def _letters(self, request: HttpRequest, session: Session) -> HttpResponse:
        query = {k: v.strip() for k, v in request.query.items() if v.strip()}
        page = await self.admin.letters({**query, "limit": str(PAGE_SIZE)})
        following = {**query, "after": page["next"]} if page["next"] else None
        return self._page("dead_letters.html", session, letters=[_shown(x) for x in page["deadLetters"]],
                          filters=query, flows=sorted(self.admin.runtime.project.flows),
                          next_url=_url("dead-letters", following) if following else None)

    async def _act(self, request: HttpRequest, session: Session) -> HttpResponse:
        form = _form(request)
        self._check_csrf(request, session, form)
        action = (form.get("action") or [""])[0]
        if action not in ("replay", "discard"):
            raise ConsoleError(400, "Bad request", "Choose replay or discard.")
        ids = [i for i in form.get("ids", []) if i]
        if not ids:
            raise ConsoleError(400, "Nothing selected", "Tick at least one dead letter first.")
        logger.info("console: %s %s %d dead letter(s)", session.user, action, len(ids))
        answer = await self.admin.act(action, {"ids": ids})
        return self._page("action_result.html", session, action=action,
                          results=[_shown(r) for r in answer["results"]])

    async def _reconciliation(self, session: Session) -> HttpResponse:
        flows = [f for f in sorted(self.admin.runtime.project.flows) if is_reconciliation_flow(f)]
        runs = await self._runs(flows)
        reports = list_reports(self._report_dir())
        for report in reports:
            report["run"] = run_of(report, runs)
        return self._page("reconciliation.html", session, flows=flows, runs=runs[:20],
                          reports=[_shown(r) for r in reports],
                          directory=self._report_dir())

    async def _report(self, name: str, session: Session) -> HttpResponse:
        try:
            report = read_report(self._report_dir(), name)
        except ReportNotFound:
            raise ConsoleError(404, "Not found", f"No reconciliation report '{name}'.") from None
        flows = [f for f in self.admin.runtime.project.flows if is_reconciliation_flow(f)]
        report["run"] = run_of(report, await self._runs(flows))
        return self._page("report.html", session, report=_shown(report))

    def _report_dir(self) -> Path:
        project = self.admin.runtime.project
        return report_dir(project.properties, project.settings.server)

    async def _runs(self, flows: list[str]) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = []
        for flow in flows:
            runs += (await self.admin.executions({"flow": flow, "limit": "100"}))["executions"]
        return sorted(runs, key=lambda r: str(r.get("startedAt", "")), reverse=True)

    # -- login ------------------------------------------------------------------------------------

    def _login_page(self, session: Session, next_url: str, *, status: int = 200,
                    error: str | None = None) -> HttpResponse:
        if session.user is not None and status == 200 and error is None:
            return self._redirect(_safe_next(next_url), session=None, request=None)
        return self._page("login.html", session, status=status, next_url=_safe_next(next_url),
                          error=error, how=self.auth.describe(), closed=self.auth.closed,
                          admin_user=ADMIN_USER)

    def _login(self, request: HttpRequest, session: Session) -> HttpResponse:
        form = _form(request)
        self._check_csrf(request, session, form)
        user = (form.get("user") or [""])[0].strip()
        password = (form.get("password") or [""])[0]
        next_url = _safe_next((form.get("next") or [CONSOLE_PREFIX])[0])
        if self.auth.closed or not user or not self.auth.check_login(user, password):
            logger.warning("console: failed login as %r from %s", user[:64], request.client)
            return self._login_page(session, next_url, status=401,
                                    error="Wrong user name or password.")
        logger.info("console: %s logged in from %s", user, request.client)
        return self._redirect(next_url, session=self.auth.new_session(user), request=request)

    def _check_csrf(self, request: HttpRequest, session: Session,
                    form: dict[str, list[str]] | None = None) -> None:
        form = _form(request) if form is None else form
        if not self.auth.check_csrf(session, (form.get("csrf") or [""])[0]):
            raise ConsoleError(403, "Refused", "The form's CSRF token is missing or stale: reload "
                               "the page and try again.")

    # -- rendering --------------------------------------------------------------------------------

    def _page(self, template: str, session: Session, *, status: int = 200,
              **values: Any) -> HttpResponse:
        html = self.templates.get_template(template).render(
            user=session.user, csrf=self.auth.csrf_token(session), prefix=CONSOLE_PREFIX,
            open_locally=self.auth.open_locally and session.user == LOCAL_USER, **values)
        return HttpResponse(status, html.encode("utf-8"),
                            headers={"content-type": "text/html; charset=utf-8"})

    def _redirect(self, location: str, *, session: Session | None,
                  request: HttpRequest | None) -> HttpResponse:
        headers = {"location": location, "content-type": "text/plain; charset=utf-8"}
        if session is not None and request is not None:
            headers["set-cookie"] = self.auth.cookie(session, secure=_secure(request))
        return HttpResponse(303, b"", headers=headers)


_STATUS_TITLES = {400: "Bad request", 401: "Log in", 403: "Refused", 404: "Not found",
                  405: "Method not allowed"}


def _allow(method: str, allowed: str) -> None:
    if method != allowed:
        raise ConsoleError(405, "Method not allowed", f"Use {allowed} here.")


def _form(request: HttpRequest) -> dict[str, list[str]]:
    """A urlencoded form body, each name with its values in order."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return {}  # not one of the console's forms: no CSRF token either, so it is refused
    try:
        pairs = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True,
                          max_num_fields=2000, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise ConsoleError(400, "Bad request", "The form could not be read.") from None
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return form


def _shown(value: Any) -> Any:
    """``value`` as a page may show it: secrets masked as in logs, size-capped."""
    return capture(value, MAX_DATA_BYTES)


def _pretty(value: Any) -> str:
    return redact(dumps(value, indent=2))


def _ms(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:.0f} ms" if value < 10_000 else f"{value / 1000:.1f} s"


def _seconds(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.0f} min" if value < 7200 else f"{value / 3600:.1f} h"


def _status_value(value: Any, key: str) -> str:
    """A connection status value as a person reads it: epoch times (``...At``) as UTC times with
    how far off they are, small mappings (an API budget) as ``name value`` pairs."""
    if isinstance(value, int | float) and not isinstance(value, bool) and key.endswith("At") \
            and value > 1e9:
        delta = value - time.time()
        when = f"in {_seconds(delta)}" if delta >= 0 else f"{_seconds(-delta)} ago"
        return f"{utc_iso(value)[:19]}Z ({when})"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def _url(page: str, query: Mapping[str, str] | None) -> str:
    return f"{CONSOLE_PREFIX}/{page}" + (f"?{urlencode(query)}" if query else "")


def _next_of(request: HttpRequest) -> str:
    if request.method not in ("GET", "HEAD"):
        return CONSOLE_PREFIX
    return request.path + (f"?{urlencode(request.query)}" if request.query else "")


def _safe_next(target: str) -> str:
    """Only a console path: never another site (``//evil``) after logging in."""
    if target.startswith(CONSOLE_PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return CONSOLE_PREFIX


def _secure(request: HttpRequest) -> bool:
    return request.headers.get("x-forwarded-proto", "").lower() == "https"
