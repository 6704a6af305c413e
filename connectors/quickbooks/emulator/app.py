"""The QuickBooks Online emulator as a Starlette app: ``create_app(**options)``.

Real paths and shapes (``/v3/company/{realmId}/{entity}``, ``query``, ``cdc``, ``batch``, the OAuth
token endpoint and consent page, Intuit's discovery document), real fault envelopes, ``requestid``
replay, per-realm rate limits with the real 429 body, webhooks, and fault switches. It is a test
double for the connector's tests, the sandbox (``splice sandbox quickbooks``) and benchmarks; no
client gets special treatment. The control API lives under ``/_emulator/``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from connectors.quickbooks.emulator.batch import metered_items, run_batch
from connectors.quickbooks.emulator.cdc import changes
from connectors.quickbooks.emulator.currency import enable_multicurrency, exchange_rate
from connectors.quickbooks.emulator.demo import seed_company, seed_demo_company
from connectors.quickbooks.emulator.demo_currency import seed_multicurrency_demo
from connectors.quickbooks.emulator.entities import ENTITIES, Company
from connectors.quickbooks.emulator.faults import DroppedConnection, Fault, FaultSwitches
from connectors.quickbooks.emulator.headers import send_invoice, with_invoice_links
from connectors.quickbooks.emulator.limits import THROTTLE_BODY, RealmThrottle
from connectors.quickbooks.emulator.oauth import OAuthAuthority, TokenError
from connectors.quickbooks.emulator.query import run_query
from connectors.quickbooks.emulator.salestax import set_sales_tax
from connectors.quickbooks.emulator.webhooks import WebhookSender
from connectors.quickbooks.money import dumps, loads

__all__ = ["DEFAULT_REALM", "SANDBOX_REFRESH_TOKEN", "Emulator", "create_app"]

DEFAULT_REALM = "9130357766900000"
#: The refresh token a sandbox emulator accepts first (it rotates on use like Intuit's).
SANDBOX_REFRESH_TOKEN = "emulator-refresh-token"
_ENV_OPTIONS = {
    "refresh_token": "QUICKBOOKS_EMULATOR_REFRESH_TOKEN",
    "webhook_url": "QUICKBOOKS_EMULATOR_WEBHOOK_URL",
    "webhook_format": "QUICKBOOKS_EMULATOR_WEBHOOK_FORMAT",
    "webhook_verifier_token": "QUICKBOOKS_EMULATOR_WEBHOOK_VERIFIER_TOKEN",
    "client_id": "QUICKBOOKS_EMULATOR_CLIENT_ID",
    "client_secret": "QUICKBOOKS_EMULATOR_CLIENT_SECRET",
}


class Emulator:
    """All state of one emulator instance (``app.state.emulator``)."""

    def __init__(self, *, realms: tuple[str, ...] = (DEFAULT_REALM,), seed: bool = True,
                 demo: bool = False,
                 client_id: str = "emulator-client", client_secret: str = "emulator-secret",
                 refresh_token: str | None = None, access_token_ttl: float = 3600.0,
                 rotation: str = "always", rate_limits: bool = True, requests_per_minute: int = 500,
                 max_concurrent: int = 10, batch_per_minute: int = 40, rate_window: float = 60.0,
                 webhook_url: str | None = None, webhook_verifier_token: str = "emulator-verifier",
                 webhook_format: str = "legacy", webhook_interval: float = 1.0,
                 webhook_transport: httpx.AsyncBaseTransport | None = None,
                 faults: dict[str, Any] | None = None,
                 sales_tax: Decimal | str | None = None,
                 multicurrency: dict[str, Decimal | str] | None = None) -> None:
        self.realms = realms
        #: Multi-currency on in every company with these exchange rates (None: home currency only).
        self.multicurrency = multicurrency
        #: Automated sales tax at this rate (percent) in every company; None: no sales tax.
        self.sales_tax = sales_tax
        self.seed = seed
        self.demo = demo
        self.time_offset = 0.0
        self.faults = FaultSwitches()
        self.faults.update(faults or {})
        self.authority = OAuthAuthority(client_id=client_id, client_secret=client_secret,
                                        access_token_ttl=access_token_ttl, rotation=rotation,
                                        clock=lambda: datetime.now(UTC).timestamp() + self.time_offset)
        self.throttle = RealmThrottle(enabled=rate_limits, per_minute=requests_per_minute,
                                      max_concurrent=max_concurrent,
                                      batch_per_minute=batch_per_minute, window=rate_window)
        self.webhooks = WebhookSender(webhook_url, webhook_verifier_token, fmt=webhook_format,
                                      transport=webhook_transport, faults=self.faults)
        self.webhook_interval = webhook_interval
        self.companies: dict[str, Company] = {}
        self.requests_in_flight: dict[tuple[str, str], anyio.Event] = {}
        self.reset()
        for realm in realms:
            if refresh_token:
                self.authority.refresh[refresh_token] = realm
                break

    def now(self) -> datetime:
        """The emulator's clock (moved by ``/_emulator/clock``)."""
        return datetime.now(UTC) + timedelta(seconds=self.time_offset)

    def reset(self) -> None:
        """Fresh companies (seeded with demo data when asked), no queued webhooks."""
        self.companies = {}
        for realm in self.realms:
            company = Company(realm, clock=self.now)
            if self.seed or self.demo:
                seed_company(company)
            if self.sales_tax is not None:
                set_sales_tax(company, self.sales_tax)
            if self.demo:
                seed_demo_company(company)
            if self.multicurrency is not None:
                enable_multicurrency(company, self.multicurrency)
                if self.demo:
                    seed_multicurrency_demo(company)
            company.on_change = self.webhooks.notify
            self.companies[realm] = company
        self.webhooks.pending.clear()

    def write(self, company: Company, entity: str, operation: str, body: dict[str, Any],
              options: dict[str, str]) -> dict[str, Any]:
        """Create, update, delete or void one entity (shared by single calls and batch items)."""
        if operation == "create":
            return company.create(entity, body, options)
        if operation == "update":
            target = company.tables[entity].get(str(body.get("Id")))
            if target is not None and self.faults.take("stale_updates"):
                # Somebody else edits the record first: a field we do not own, and the SyncToken.
                field = "PrivateNote" if entity in ("Invoice", "Payment") else "Notes"
                target[field] = "edited in QuickBooks"
                company.touch(entity, target)
            return company.update(entity, body, options)
        if operation == "delete":
            return company.delete(entity, body)
        if operation == "void":
            return company.void(entity, body)
        raise Fault("500", "Unsupported Operation", f"Operation {operation} is not supported")


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # Every QuickBooks answer names its transaction for support requests.
    headers = {"intuit_tid": f"1-{uuid.uuid4().hex[:8]}-{uuid.uuid4().hex[:24]}", **(headers or {})}
    return Response(dumps(body), status_code=status, media_type="application/json",
                    headers=headers)


def _time(em: Emulator) -> str:
    return em.now().astimezone(datetime.now().astimezone().tzinfo).isoformat(timespec="milliseconds")


def _fault(em: Emulator, fault: Fault) -> Response:
    return _json(fault.envelope(_time(em)), fault.status)


def _unauthorized(em: Emulator, reason: str) -> Response:
    if reason == "malformed":
        body: dict[str, Any] = {"warnings": None, "intuitObject": None, "fault": {"error": [{
            "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
            "detail": "Malformed bearer token: too short or too long", "code": "3200",
            "element": None}], "type": "AUTHENTICATION"}, "report": None, "queryResponse": None,
            "batchItemResponse": [], "attachableResponse": [], "syncErrorResponse": None,
            "requestId": None, "time": int(em.now().timestamp() * 1000), "status": None,
            "cdcresponse": []}
        return _json(body, 401)
    fault = Fault("3200", "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                  f"Token {'expired' if reason == 'expired' else 'invalid'}", status=401,
                  fault_type="AUTHENTICATION")
    return _fault(em, fault)


def _failure(em: Emulator) -> Response:
    status = em.faults.fail_status
    if status == 503:
        return Response("<html><body><h1>503 Service Unavailable</h1></body></html>", 503,
                        media_type="text/html")
    fault = Fault("10000", "An application error has occurred while processing your request",
                  "System Failure Error: An unexpected error occurred while accessing or saving "
                  "your data. Please wait a few minutes and try again.", status=status,
                  fault_type="SystemFault")
    return _fault(em, fault)


def _operation(query: dict[str, str], body: dict[str, Any]) -> str:
    """What a ``POST /{entity}`` does: the ``operation`` asked for, else update when it has an Id."""
    operation = query.get("operation")
    if operation is None:
        has_id = str(body.get("Id") or "").isdigit() and int(body["Id"]) > 0
        operation = "update" if has_id else "create"
    if operation == "update" and query.get("include") == "void":
        operation = "void"
    return operation


async def _dispatch(em: Emulator, company: Company, request: Request, resource: str) -> Response:
    query = dict(request.query_params)
    raw = await request.body()
    if resource == "preferences" and request.method == "GET":
        return _json({"Preferences": company.get("Preferences", "1"), "time": _time(em)})
    if resource == "exchangerate" and request.method == "GET":
        rate = exchange_rate(company, query, em.now().date())
        return _json({"ExchangeRate": rate, "time": _time(em)})
    if resource == "query":
        text = query.get("query") if request.method == "GET" else raw.decode("utf-8")
        found = run_query(company, text or "")
        if "Invoice" in found:
            found["Invoice"] = with_invoice_links(company, "Invoice", found["Invoice"],
                                                  query.get("include"))
        return _json({"QueryResponse": found, "time": _time(em)})
    if resource == "cdc":
        cdc = changes(company, query.get("entities", ""), query.get("changedSince", ""))
        return _json({"CDCResponse": [{"QueryResponse": cdc}], "time": _time(em)})
    try:
        body = loads(raw) if raw else {}
    except ValueError:
        raise Fault("2010", "Request has invalid or unsupported property",
                    "Request body is not valid JSON") from None
    if resource == "batch":
        items = run_batch(company, body, em.write)
        return _json({"BatchItemResponse": items, "time": _time(em)})
    entity = ENTITIES.get(resource)
    if entity is None or not isinstance(body, dict):
        raise Fault("500", "Unsupported Operation", f"Unsupported resource {resource}")
    include = query.get("include")
    operation = _operation(query, body)
    result = em.write(company, entity, operation, body, {"include": include or ""})
    return _json({entity: with_invoice_links(company, entity, result, include), "time": _time(em)})


def _lost_answer(em: Emulator) -> Response:
    """What the client gets when the answer of a committed create is lost on the way."""
    how = em.faults.lost_answer
    if how == "reset":
        async def drop() -> AsyncIterator[bytes]:
            raise DroppedConnection("Server disconnected without sending a complete response.")
            yield b""  # pragma: no cover - makes this a generator

        return StreamingResponse(drop(), 200, media_type="application/json")
    status = int(how)
    title = "502 Bad Gateway" if status == 502 else "504 Gateway Time-out"
    return Response(f"<html><body><h1>{title}</h1></body></html>", status, media_type="text/html")


def _batch_created(response: Response, wanted: str) -> bool:
    """Whether a batch answer holds a created record of ``wanted`` (any entity when empty)."""
    answer = loads(bytes(response.body))
    names = {wanted} if wanted else set(ENTITIES.values())
    return any(name in item for item in answer.get("BatchItemResponse") or [] for name in names)


async def _loses_answer(em: Emulator, request: Request, resource: str, response: Response) -> bool:
    """Whether this answer is one ``lose_answers`` takes: a create that worked, of the entity, or
    a batch that created one (its whole answer is lost)."""
    if response.status_code != 200 or (ENTITIES.get(resource) is None and resource != "batch"):
        return False
    wanted = em.faults.lose_answers_entity
    body = loads(await request.body())
    if resource == "batch":
        creates = {next((k for k in item if k in ENTITIES.values()), "")
                   for item in body.get("BatchItemRequest") or []
                   if str(item.get("operation") or "create") == "create"}
        entity = ENTITIES.get(wanted.lower(), "") if wanted else ""
        if not (creates - {""}) or (entity and entity not in creates):
            return False
        if not _batch_created(response, entity):
            return False
        return em.faults.take("lose_answers")
    if wanted and wanted.lower() != resource:
        return False
    if _operation(dict(request.query_params), body) != "create":
        return False
    return em.faults.take("lose_answers")


async def _answer(em: Emulator, company: Company, request: Request, resource: str,
                  request_id: str | None) -> Response:
    """Do the call; remember a write's answer under its requestid (unless told to forget)."""
    try:
        if "/" in resource:
            entity_name, _, entity_id = resource.partition("/")
            entity = ENTITIES.get(entity_name)
            entity_id, _, action = entity_id.partition("/")
            include = request.query_params.get("include")
            if entity == "Invoice" and action == "send" and request.method == "POST":
                sent = send_invoice(company, entity_id, request.query_params.get("sendTo"))
                response = _json({entity: with_invoice_links(company, entity, sent, include),
                                  "time": _time(em)})
            elif entity is None or action or request.method != "GET":
                raise Fault("500", "Unsupported Operation", f"Unsupported resource {resource}")
            else:
                record = with_invoice_links(company, entity, company.get(entity, entity_id), include)
                response = _json({entity: record, "time": _time(em)})
        else:
            response = await _dispatch(em, company, request, resource)
    except Fault as fault:
        return _fault(em, fault)
    if request.method == "POST" and resource != "query":
        if request_id and not em.faults.forget_request_ids:
            company.requests[request_id] = (response.status_code, bytes(response.body))
        if em.faults.take("fail_after_commit"):
            return _failure(em)
        if await _loses_answer(em, request, resource, response):
            return _lost_answer(em)
    return response


async def api(request: Request) -> Response:
    """Every ``/v3/company/{realm}/...`` call: auth, limits, faults, requestid, then the work."""
    em: Emulator = request.app.state.emulator
    realm = request.path_params["realm"]
    resource = request.path_params["resource"]
    company = em.companies.get(realm)
    if em.faults.take("expire_tokens"):
        em.authority.expire_all()
    reason = em.authority.check_access(request.headers.get("authorization"))
    if reason is not None:
        return _unauthorized(em, reason)
    if company is None:
        return _fault(em, Fault("3100", "message=ApplicationAuthorizationFailed; errorCode=003100; "
                                "statusCode=403", f"Unknown company {realm}", status=403,
                                fault_type="AuthorizationFault"))
    is_batch = resource == "batch"
    items = metered_items(await request.body()) if is_batch else 1
    if em.faults.take("throttle_next") or not em.throttle.admit(realm, batch=is_batch, items=items):
        return Response(THROTTLE_BODY.format(time=_time(em)), 429, media_type="application/xml")
    em.throttle.inflight[realm] = em.throttle.inflight.get(realm, 0) + 1
    try:
        if em.faults.latency:
            await anyio.sleep(em.faults.latency)
        if em.faults.take("fail_next"):
            return _failure(em)
        request_id = request.query_params.get("requestid")
        if not request_id:
            return await _answer(em, company, request, resource, None)
        key = (realm, request_id)
        while key in em.requests_in_flight:  # the same request again while the first still runs
            await em.requests_in_flight[key].wait()
        done = em.requests_in_flight[key] = anyio.Event()
        try:
            if request_id in company.requests and not em.faults.forget_request_ids:
                status, stored = company.requests[request_id]
                return Response(stored, status, media_type="application/json")
            return await _answer(em, company, request, resource, request_id)
        finally:
            del em.requests_in_flight[key]
            done.set()
    finally:
        em.throttle.inflight[realm] -= 1


async def token(request: Request) -> Response:
    """``POST /oauth2/v1/tokens/bearer``."""
    em: Emulator = request.app.state.emulator
    try:
        em.authority.check_client(request.headers.get("authorization"))
        form = dict(parse_qsl((await request.body()).decode()))
        body = em.authority.grant(form)
    except TokenError as exc:
        return JSONResponse(exc.body(), exc.status)
    body.pop("realmId", None)
    if request.headers.get("x-include-refresh-token-hard-expires-in", "").lower() == "true":
        body["x_refresh_token_hard_expires_in"] = int(em.authority.refresh_token_hard_ttl)
    return JSONResponse(body)


async def authorize(request: Request) -> Response:
    """``GET /connect/oauth2``: consent is given at once; redirect with code, state and realmId."""
    em: Emulator = request.app.state.emulator
    params = request.query_params
    realm = params.get("realm") or next(iter(em.companies))
    try:
        code = em.authority.authorize(params.get("client_id", ""), params.get("redirect_uri", ""),
                                      realm)
    except TokenError as exc:
        return JSONResponse(exc.body(), exc.status)
    query = urlencode({"code": code, "state": params.get("state", ""), "realmId": realm})
    return RedirectResponse(f"{params.get('redirect_uri', '')}?{query}", 302)


async def discovery(request: Request) -> Response:
    """Intuit's OpenID discovery document, pointing at this emulator."""
    base = str(request.base_url).rstrip("/")
    return JSONResponse({
        "issuer": "https://oauth.platform.intuit.com/op/v1",
        "authorization_endpoint": f"{base}/connect/oauth2",
        "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
        "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
        "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
        "jwks_uri": f"{base}/op/v1/jwks"})


async def control(request: Request) -> Response:
    """``/_emulator/{action}``: faults, reset, entities, tokens, sales-tax, multicurrency, clock,
    webhooks/flush, state."""
    em: Emulator = request.app.state.emulator
    action = request.path_params["action"]
    payload: dict[str, Any] = (json.loads(await request.body() or b"{}")
                               if request.method == "POST" else {})
    if action == "faults":
        try:
            em.faults.update(payload)
        except (KeyError, ValueError) as exc:
            return JSONResponse({"error": f"unknown or bad fault switch {exc}"}, 400)
        return JSONResponse(em.faults.to_dict())
    if action == "reset":
        em.reset()
        return JSONResponse({"reset": True})
    if action == "entities":
        realm = request.query_params.get("realm") or next(iter(em.companies))
        entity = ENTITIES.get((request.query_params.get("entity") or "customer").lower(), "")
        rows = list(em.companies[realm].tables.get(entity, {}).values())
        return _json({entity: rows})
    if action == "tokens":
        realm = payload.get("realm") or next(iter(em.companies))
        return JSONResponse({"refresh_token": em.authority.issue_refresh_token(realm),
                             "realmId": realm})
    if action == "sales-tax":
        try:
            rate = None if payload.get("rate") is None else Decimal(str(payload["rate"]))
        except ArithmeticError:
            return JSONResponse({"error": f"rate is not a number: {payload.get('rate')!r}"}, 400)
        for company in em.companies.values():
            set_sales_tax(company, rate)
        return JSONResponse({"rate": None if rate is None else str(rate)})
    if action == "multicurrency":
        try:
            rates = {str(k).upper(): Decimal(str(v)) for k, v in (payload.get("rates") or {}).items()}
        except ArithmeticError:
            return JSONResponse({"error": f"rates must be numbers: {payload.get('rates')!r}"}, 400)
        customers = {}
        for realm, company in em.companies.items():
            enable_multicurrency(company, rates)
            if payload.get("demo"):
                customers[realm] = seed_multicurrency_demo(company, expect_id=False)["Id"]
        answer: dict[str, Any] = {"enabled": True, "rates": {k: str(v) for k, v in rates.items()}}
        if customers:
            answer["demoCustomers"] = customers
        return JSONResponse(answer)
    if action == "clock":
        em.time_offset += float(payload.get("advance", 0))
        return JSONResponse({"now": em.now().isoformat()})
    if action == "webhooks":
        return JSONResponse({"delivered": await em.webhooks.flush()})
    if action == "state":
        return JSONResponse({"faults": em.faults.to_dict(), "throttled": em.throttle.throttled,
                             "metered": em.throttle.metered,
                             "peakInWindow": {realm: em.throttle.peak_in_window(realm)
                                              for realm in em.throttle.metered},
                             "refreshes": em.authority.refresh_counts,
                             "webhooks": {"pending": len(em.webhooks.pending),
                                          "delivered": em.webhooks.delivered,
                                          "dropped": em.webhooks.dropped}})
    return JSONResponse({"error": f"unknown control action {action}"}, 404)


def create_app(**options: Any) -> Starlette:
    """The emulator app; ``options`` are :class:`Emulator`'s keyword arguments.

    Options not given come from ``QUICKBOOKS_EMULATOR_*`` variables (``splice sandbox quickbooks``
    passes none): ``REFRESH_TOKEN`` (default :data:`SANDBOX_REFRESH_TOKEN`, valid until first
    used, as rotation goes), ``WEBHOOK_URL``, ``WEBHOOK_FORMAT``, ``WEBHOOK_VERIFIER_TOKEN``,
    ``CLIENT_ID`` and ``CLIENT_SECRET``.

    With ``webhook_url`` set and the app served with its lifespan (uvicorn), queued webhooks go out
    every ``webhook_interval`` seconds; in process, ``POST /_emulator/webhooks`` sends them.
    """
    for name, variable in _ENV_OPTIONS.items():
        if name not in options and os.environ.get(variable):
            options[name] = os.environ[variable]
    options.setdefault("refresh_token", SANDBOX_REFRESH_TOKEN)
    emulator = Emulator(**options)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tg:
            if emulator.webhooks.url:
                tg.start_soon(_deliver_forever, emulator)
            yield
            tg.cancel_scope.cancel()

    routes = [
        Route("/oauth2/v1/tokens/bearer", token, methods=["POST"]),
        Route("/connect/oauth2", authorize, methods=["GET"]),
        Route("/.well-known/openid_configuration", discovery, methods=["GET"]),
        Route("/_emulator/{action:path}", control, methods=["GET", "POST"]),
        Route("/v3/company/{realm}/{resource:path}", api, methods=["GET", "POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.emulator = emulator
    return app


async def _deliver_forever(emulator: Emulator, sleep: Callable[[float], Any] = anyio.sleep) -> None:
    while True:
        await sleep(emulator.webhook_interval)
        await emulator.webhooks.flush()
