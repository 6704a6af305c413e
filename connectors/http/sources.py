"""``http.listener``: a flow triggered by HTTP requests to ``splice serve``.

The request waits for the flow; the final payload is the response body. A failed execution answers
with its error as JSON and an HTTP status derived from the error, and is not dead-lettered: the
caller was told and can send again.
"""

from __future__ import annotations

from typing import Any

from runtime import (
    Event,
    HttpRequest,
    HttpResponse,
    Outcome,
    Param,
    ParamProblem,
    SourceContext,
    SourceSpec,
    SpliceError,
    json_loads,
    materialize,
    redact_mapping,
)

__all__ = ["LISTENER", "check_listener", "error_status"]


def error_status(error: SpliceError) -> int:
    """The HTTP status a listener answers for a failed execution.

    A flow failure is never the caller's fault, so it is a 5xx: 504 for timeouts, 503 when trying
    again may help (the body's ``retryable`` says so too), 502 when an upstream API refused, else 500.
    """
    if error.kind == "TIMEOUT":
        return 504
    if error.retryable:
        return 503
    if error.status is not None and 400 <= error.status < 500:
        return 502
    return 500


def _parse_body(request: HttpRequest) -> Any:
    content_type = request.headers.get("content-type", "")
    if not request.body:
        return None
    if "json" in content_type:
        return json_loads(request.body)
    return request.body.decode("utf-8", errors="replace")


#: The variable a flow sets to answer with another status than ``response-status`` (e.g. a 404).
STATUS_VAR = "httpStatus"


def _chosen_status(outcome: Outcome, default: int) -> int:
    """``vars.httpStatus`` when the flow set a valid status, else the listener's own.

    An experience API answers "not found" for an unknown id: that is a completed lookup, not a
    failure (a failure would be dead-lettered or answered as a 5xx).
    """
    chosen = outcome.message.vars.get(STATUS_VAR)
    if isinstance(chosen, int | float) and not isinstance(chosen, bool) and 100 <= chosen <= 599 \
            and int(chosen) == chosen:
        return int(chosen)
    return default


def _response(outcome: Outcome, status: int) -> HttpResponse:
    if outcome.status == "completed":
        return HttpResponse(status=_chosen_status(outcome, status), body=outcome.message.payload)
    error = outcome.error
    assert error is not None
    body: dict[str, Any] = {"error": error.to_dict(), "correlationId": outcome.message.correlation_id}
    if outcome.dead_letter_id:
        body["deadLetterId"] = outcome.dead_letter_id
    return HttpResponse(status=error_status(error), body=body)


async def run_listener(ctx: SourceContext, params: dict[str, Any]) -> None:
    """Register the route, then wait for shutdown (requests arrive through the server)."""
    status: int = params["response-status"]

    async def endpoint(request: HttpRequest) -> HttpResponse:
        try:
            payload = _parse_body(request)
        except (ValueError, UnicodeDecodeError) as exc:
            return HttpResponse(400, {"error": {"type": "HTTP_LISTENER:BAD_REQUEST",
                                                "message": f"request body is not valid JSON: {exc}"}})
        event = Event(payload=payload, attributes={
            "method": request.method, "path": request.path, "query": dict(request.query),
            "pathParams": dict(request.path_params),
            "headers": redact_mapping(dict(request.headers)), "remoteAddress": request.client,
        })
        outcome = await ctx.handle(event, dead_letter_failures=False)
        outcome.message.payload = await materialize(outcome.message.payload)
        return _response(outcome, status)

    ctx.add_route(str(params["path"]), [str(params["method"]).upper()], endpoint)
    while await ctx.sleep(3600):
        pass


def check_listener(params: dict[str, Any]) -> list[ParamProblem]:
    """The path must start with '/'; the method is fixed at load time (``POST`` unless given)."""
    params.setdefault("method", "POST")
    path = params.get("path")
    if isinstance(path, str) and not path.startswith("/"):
        return [ParamProblem(f"invalid value {path!r} for 'path'", "a URL path starting with '/'",
                             param="path")]
    return []


LISTENER = SourceSpec(
    name="listener",
    run=run_listener,
    needs_connection=False,
    summary="Start the flow for each HTTP request to splice serve; the final payload is the response",
    params=(
        Param("path", required=True, dynamic=False, summary="Path, e.g. /orders or /orders/{id}"),
        Param("method", default="POST", enum=("GET", "POST", "PUT", "PATCH", "DELETE"),
              dynamic=False, summary="HTTP method"),
        Param("response-status", type="integer", default=200, dynamic=False,
              summary="Status of a successful response (a flow may set vars.httpStatus instead)"),
    ),
    check=check_listener,
)
