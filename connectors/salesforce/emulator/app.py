"""The emulator's ASGI app: routes, the per-call pipeline (latency, session, faults, daily limit,
``Sforce-Limit-Info``) and the ``/_emulator`` control API used by tests and sandbox tooling."""

from __future__ import annotations

import re
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.salesforce.emulator.bulk import BULK_ROUTES
from connectors.salesforce.emulator.cometd import cometd_endpoint
from connectors.salesforce.emulator.composite import COMPOSITE_ROUTE
from connectors.salesforce.emulator.demo_currency import seed_multicurrency_demo
from connectors.salesforce.emulator.errors import ApiError
from connectors.salesforce.emulator.ids import parse_any_datetime
from connectors.salesforce.emulator.ingest import INGEST_ROUTES
from connectors.salesforce.emulator.multicurrency import enable_multicurrency
from connectors.salesforce.emulator.oauth import token_endpoint
from connectors.salesforce.emulator.rest import ROUTES, _row, versions
from connectors.salesforce.emulator.state import Emulator, EmulatorOptions

__all__ = ["create_app"]

_ALL = ["GET", "POST", "PATCH", "PUT", "DELETE"]
_ROUTES = ROUTES + [COMPOSITE_ROUTE] + [
    (methods, re.compile(rf"^v(?P<v>\d+\.\d)/{pattern}$"), handler)
    for methods, pattern, handler in BULK_ROUTES + INGEST_ROUTES]


async def _dispatch(request: Request) -> Response:
    emu: Emulator = request.app.state.emulator
    path = request.path_params.get("path", "")
    if path in ("", "/"):
        return await versions(request, emu)
    try:
        if emu.faults.latency:
            await anyio.sleep(emu.faults.latency)
        emu.check_token(request.headers.get("authorization"))
        if emu.faults.take_unavailable():
            raise ApiError(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable, please try again")
        emu.count_request()
        for methods, pattern, handler in _ROUTES:
            match = pattern.match(path)
            if match is None:
                continue
            if request.method not in methods:
                continue
            version = match.group("v")
            if float(version) < 31.0:
                raise ApiError(410, "UNSUPPORTED_API_VERSION", f"API version {version} is retired")
            if float(version) > float(emu.org.api_version):
                # A version the org does not know yet (v99.0) is no resource at all, as in Salesforce.
                raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
            response = await handler(request, emu, **match.groupdict())
            break
        else:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
    except ApiError as error:
        response = JSONResponse(error.body(), status_code=error.status)
    response.headers["Sforce-Limit-Info"] = emu.limit_info()
    return response


# -- control API ---------------------------------------------------------------------------------

async def _faults(request: Request) -> Response:
    emu: Emulator = request.app.state.emulator
    if request.method == "POST":
        try:
            emu.faults.update(await request.json())
        except KeyError as exc:
            return JSONResponse({"error": f"unknown fault {exc}"}, status_code=400)
    return JSONResponse(emu.faults.to_dict())


async def _reset(request: Request) -> Response:
    emu: Emulator = request.app.state.emulator
    emu.reset()
    return JSONResponse({"reset": True})


async def _expire(request: Request) -> Response:
    emu: Emulator = request.app.state.emulator
    return JSONResponse({"expired": emu.expire_tokens()})


async def _stats(request: Request) -> Response:
    emu: Emulator = request.app.state.emulator
    return JSONResponse({"requests": emu.request_count, "api_used": emu.faults.api_used,
                         "events": len(emu.org.events), "tokens": len(emu.tokens),
                         "long_polls": emu.org.waiting,
                         "records": {k: len(v) for k, v in emu.org.records.items()}})


async def _records(request: Request) -> Response:
    """List, create, update or delete records directly: writes may carry ``systemModstamp`` (a
    back-dated commit, as a long transaction produces) and ``origin`` (the writer's client name)."""
    emu: Emulator = request.app.state.emulator
    obj, rid = request.path_params["obj"], request.path_params.get("rid")
    try:
        if request.method == "GET":
            return JSONResponse([_row(emu, obj, r) for r in emu.org.records[emu.org.schema(obj).name].values()])
        if request.method == "DELETE":
            emu.org.delete(obj, str(rid))
            return Response(status_code=204)
        body: dict[str, Any] = await request.json()
        stamp = parse_any_datetime(body["systemModstamp"]) if body.get("systemModstamp") else None
        if rid:
            record = emu.org.update(obj, rid, body.get("record", {}), origin=body.get("origin"), stamp=stamp)
        else:
            record = emu.org.create(obj, body.get("record", {}), origin=body.get("origin"), stamp=stamp)
        return JSONResponse(_row(emu, obj, record), status_code=201 if not rid else 200)
    except ApiError as error:
        return JSONResponse(error.body(), status_code=error.status)


async def _multicurrency(request: Request) -> Response:
    """Turn multi-currency on (``{"currencies": ["USD", "EUR"], "demo": true}``), as an admin does;
    ``demo`` adds the euro account and its won deal, with their change events."""
    emu: Emulator = request.app.state.emulator
    body: dict[str, Any] = await request.json() if await request.body() else {}
    currencies = tuple(str(c).upper() for c in body.get("currencies") or ("USD", "EUR"))
    if not currencies or any(len(c) != 3 or not c.isalpha() for c in currencies):
        return JSONResponse([{"message": f"not ISO currency codes: {list(currencies)}",
                              "errorCode": "INVALID_INPUT"}], status_code=400)
    if not emu.org.currencies:
        enable_multicurrency(emu.org, currencies)
    answer: dict[str, Any] = {"currencies": list(emu.org.currencies)}
    if body.get("demo"):
        answer["opportunity"] = seed_multicurrency_demo(emu.org, linked=False, events=True)
    return JSONResponse(answer)


def create_app(**options: Any) -> Starlette:
    """A fresh Salesforce emulator; ``options`` are :class:`EmulatorOptions` fields.

    ``create_app(demo=True)`` seeds demo data; ``page_size=5`` forces paging; ``faults={...}``
    switches faults on from the start (see :class:`~connectors.salesforce.emulator.faults.Faults`).
    """
    emulator = Emulator(EmulatorOptions(**options))
    app = Starlette(routes=[
        Route("/services/oauth2/token", token_endpoint, methods=["POST"]),
        Route("/services/data/{path:path}", _dispatch, methods=_ALL),
        Route("/services/data", _dispatch, methods=["GET"]),
        Route("/cometd/{version}", cometd_endpoint, methods=["POST"]),
        Route("/cometd/{version}/", cometd_endpoint, methods=["POST"]),
        Route("/_emulator/faults", _faults, methods=["GET", "POST"]),
        Route("/_emulator/reset", _reset, methods=["POST"]),
        Route("/_emulator/expire-tokens", _expire, methods=["POST"]),
        Route("/_emulator/stats", _stats, methods=["GET"]),
        Route("/_emulator/multicurrency", _multicurrency, methods=["POST"]),
        Route("/_emulator/records/{obj}", _records, methods=["GET", "POST"]),
        Route("/_emulator/records/{obj}/{rid}", _records, methods=["PATCH", "DELETE"]),
    ])
    app.state.emulator = emulator
    return app
