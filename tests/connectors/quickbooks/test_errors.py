"""Fault envelopes of every shape become typed QUICKBOOKS errors with the right disposition."""

from __future__ import annotations

import json

import httpx

from connectors.quickbooks.errors import error_from_faults, error_from_response, faults_in
from runtime.redaction import register_secret

XML_429 = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<IntuitResponse time="2026-01-01T10:00:00.000-08:00" '
    'xmlns="http://schema.intuit.com/finance/v3"><Fault type="SERVICE"><Error code="3001">'
    "<Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>"
    "<Detail>The request limit was reached.  Try again later</Detail></Error></Fault></IntuitResponse>"
)


def _response(status: int, body: str | bytes, content_type: str = "application/json",
              **headers: str) -> httpx.Response:
    return httpx.Response(status, content=body if isinstance(body, bytes) else body.encode(),
                          headers={"content-type": content_type, **headers})


def _fault(code: str, message: str, detail: str = "", element: str = "") -> str:
    return json.dumps({"Fault": {"Error": [{"Message": message, "Detail": detail, "code": code,
                                            "element": element}], "type": "ValidationFault"},
                       "time": "2017-09-29T09:17:31.892-07:00"})


def test_upper_case_fault_keeps_code_detail_element_and_tid() -> None:
    """The standard envelope: kind from the code table, details kept for dead letters."""
    err = error_from_response(_response(400, _fault(
        "6240", "Duplicate Name Exists Error", "The name supplied already exists.", "DisplayName"),
        intuit_tid="1-abc"))
    assert err.error_type == "QUICKBOOKS:DUPLICATE_NAME"
    assert not err.retryable
    assert err.status == 400
    assert err.details["code"] == "6240"
    assert err.details["element"] == "DisplayName"
    assert err.details["detail"] == "The name supplied already exists."
    assert err.details["intuit_tid"] == "1-abc"


def test_each_documented_code_has_its_kind_and_retry_flag() -> None:
    """5010 may be retried after a re-read; 6140, 610 and validation faults may not."""
    cases = {"5010": ("STALE_OBJECT", True), "6140": ("DUPLICATE_DOC_NUMBER", False),
             "610": ("NOT_FOUND", False), "6070": ("VALIDATION", False),
             "4000": ("INVALID_QUERY", False), "3200": ("AUTHENTICATION", False),
             "2500": ("INVALID_REFERENCE", False), "10000": ("SERVER_ERROR", True)}
    for code, (kind, retryable) in cases.items():
        err = error_from_response(_response(400 if code != "10000" else 500, _fault(code, "m")))
        assert (err.error_type, err.retryable) == (f"QUICKBOOKS:{kind}", retryable), code


def test_lower_case_gateway_fault() -> None:
    """The gateway's ``fault``/``error``/``message`` envelope on 401."""
    body = json.dumps({"warnings": None, "fault": {"error": [{
        "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
        "detail": "Malformed bearer token: too short or too long", "code": "3200",
        "element": None}], "type": "AUTHENTICATION"}, "time": 1633520295688})
    err = error_from_response(_response(401, body))
    assert err.error_type == "QUICKBOOKS:AUTHENTICATION"
    assert err.details["code"] == "3200"
    assert "Malformed bearer token" in err.message


def test_xml_throttle_body_even_when_json_was_asked_for() -> None:
    """429 bodies are XML; the error is retryable after a minute."""
    err = error_from_response(_response(429, XML_429, "application/json"))
    assert err.error_type == "QUICKBOOKS:THROTTLED"
    assert err.retryable
    assert err.retry_after == 60.0
    assert err.details["code"] == "3001"


def test_html_outage_page_is_a_retryable_server_error() -> None:
    """A load balancer's HTML 503 has no fault at all."""
    err = error_from_response(_response(503, "<html><body>503</body></html>", "text/html"))
    assert err.error_type == "QUICKBOOKS:SERVER_ERROR"
    assert err.retryable


def test_3100_during_an_outage_is_retryable_but_not_as_403() -> None:
    """The same code means 'no access' on 403 and 'outage' on 500."""
    assert not error_from_response(_response(403, _fault("3100", "AuthorizationFailed"))).retryable
    assert error_from_response(_response(500, _fault("3100", "InternalServerError"))).retryable


def test_batch_item_fault_without_status() -> None:
    """Batch items carry faults inside a 200 answer."""
    item = json.loads(_fault("5010", "Stale Object Error", "Stale Object Error : ..."))
    err = error_from_faults(faults_in(item))
    assert err.error_type == "QUICKBOOKS:STALE_OBJECT"
    assert err.status is None


def test_secrets_never_reach_messages_or_details() -> None:
    """A token echoed by the server in a fault detail is masked."""
    register_secret("eyJsecret-access-token-123")
    err = error_from_response(_response(401, _fault("3200", "AuthenticationFailed",
                                                    "Token eyJsecret-access-token-123 expired")))
    assert "eyJsecret-access-token-123" not in str(err)
    assert "eyJsecret-access-token-123" not in json.dumps(err.to_dict())
