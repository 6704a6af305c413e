"""Whatever a client sends, ``splice serve`` answers 2xx or 4xx with a JSON body, never a 500.

One real server (``splice serve --sandbox``: the QuickBooks emulator behind the webhook's
connection) takes a corpus of malformed bodies on the QuickBooks webhook (validly signed, so they
get past the signature to the parser), an ``http.listener`` and the admin API; a body that never
arrives is answered 408 after ``settings.server.body-timeout``, one too large 413.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connectors.quickbooks.emulator import DEFAULT_REALM
from connectors.quickbooks.sandbox import SANDBOX_VERIFIER_TOKEN
from tests.support.sandbox import clean_env, serving

pytestmark = pytest.mark.slow

ADMIN_KEY = "malformed-requests-admin-key"
MAX_BODY = 100_000

PROJECT = {
    "splice.yaml": f"""\
connections:
  quickbooks:
    connector: quickbooks
    client-id: ${{quickbooks.client-id:}}
    client-secret: ${{quickbooks.client-secret:}}
    realm-id: "${{quickbooks.realm-id:}}"
    refresh-token: ${{quickbooks.refresh-token:}}
    base-url: ${{quickbooks.base-url:}}
    webhook-verifier-token: ${{quickbooks.webhook-verifier-token:}}
settings:
  server:
    admin-key: {ADMIN_KEY}
    body-timeout: 1s
    max-body-size: {MAX_BODY}
""",
    "payments.yaml": """\
flow: payments
trigger:
  quickbooks.webhook: { poll-interval: 100ms }
steps:
  - log: "payment #[attributes.entityId]"
""",
    "echo.yaml": """\
flow: echo
trigger:
  http.listener: { path: /echo }
steps:
  - log: "echo #[$type(payload)]"
""",
}


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=20) as http:
        yield http


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("malformed") / "project"
    root.mkdir()
    for name, text in PROJECT.items():
        (root / name).write_text(text)
    store = root.parent / "sandbox.db"
    with serving(root, "--sandbox", "--sandbox-store", str(store), env=clean_env()) as (base, _, _):
        yield base


def _signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(SANDBOX_VERIFIER_TOKEN.encode(), body, hashlib.sha256).digest()
    return {"intuit-signature": base64.b64encode(digest).decode(), "content-type": "application/json"}


#: Any JSON value, small.
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)


def _or_anything(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The right shape at this level, or any other JSON value in its place."""
    return st.one_of(strategy, VALUES)


_ENTITY = _or_anything(st.fixed_dictionaries({
    "name": _or_anything(st.sampled_from(["Payment", "Invoice", ""])),
    "id": _or_anything(st.text(min_size=1, max_size=4)),
    "operation": _or_anything(st.sampled_from(["Create", "Update", "Delete"])),
    "lastUpdated": _or_anything(st.just("2026-04-30T10:00:00.000Z")),
}))
_NOTE = _or_anything(st.fixed_dictionaries({
    "realmId": _or_anything(st.just(DEFAULT_REALM)),
    "dataChangeEvent": _or_anything(st.fixed_dictionaries({
        "entities": _or_anything(st.lists(_ENTITY, max_size=3))})),
}))
_CLASSIC = st.fixed_dictionaries({"eventNotifications": _or_anything(st.lists(_NOTE, max_size=3))})
_CLOUD_EVENTS = st.lists(_or_anything(st.fixed_dictionaries({
    "specversion": st.just("1.0"),
    "id": _or_anything(st.text(min_size=1, max_size=6)),
    "type": _or_anything(st.sampled_from(["qbo.payment.created.v1", "qbo..v1", "qbo.x", "other.a.b"])),
    "intuitaccountid": _or_anything(st.just(DEFAULT_REALM)),
    "intuitentityid": _or_anything(st.text(min_size=1, max_size=4)),
    "time": _or_anything(st.just("2025-09-10T21:31:25Z")),
})), max_size=3)

BODIES = st.one_of(
    st.one_of(_CLASSIC, _CLOUD_EVENTS, VALUES).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    st.integers(min_value=100, max_value=5000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(min_value=100, max_value=5000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
)


def _answered_properly(response: httpx.Response, *, text_payload: bool = False) -> None:
    """A 2xx or 4xx in JSON (``text_payload``: a 2xx may also be the text a flow answered with)."""
    assert 200 <= response.status_code < 300 or 400 <= response.status_code < 500, (
        response.status_code, response.text[:300])
    if text_payload and response.status_code < 300 \
            and response.headers["content-type"].startswith("text/plain"):
        return
    assert response.headers["content-type"].startswith("application/json"), response.headers
    response.json()


def _text_payload(body: bytes) -> bool:
    """Whether the listener's flow gets a string payload (its answer is then text): a JSON string."""
    try:
        return isinstance(json.loads(body), str)
    except (ValueError, RecursionError):
        return False


@settings(max_examples=60, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(body=BODIES)
@example(body=b'{"eventNotifications": [1]}')
@example(body=b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [1]}}]}')
@example(body=b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": []}]}')
@example(body=b"[1, 2]")
@example(body=b'""')
@example(body=b"\xff\xfe not json")
@example(body=b"x" * (MAX_BODY + 1))
def test_every_malformed_body_gets_a_json_2xx_or_4xx(client: httpx.Client, body: bytes) -> None:
    _answered_properly(client.post("/webhooks/quickbooks", content=body, headers=_signed(body)))
    _answered_properly(client.post("/echo", content=body, headers={"content-type": "application/json"}),
                       text_payload=_text_payload(body))
    _answered_properly(client.post("/admin/dead-letters/replay", content=body, headers={
        "authorization": f"Bearer {ADMIN_KEY}", "content-type": "application/json"}))


def test_a_signed_delivery_of_the_wrong_shape_is_a_400(server: str) -> None:
    body = b'{"eventNotifications": [1]}'
    response = httpx.post(f"{server}/webhooks/quickbooks", content=body, headers=_signed(body))
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "QUICKBOOKS_WEBHOOK:BAD_REQUEST"


def test_a_body_that_never_arrives_is_a_408(server: str) -> None:
    """Headers announce a body, none comes: after the body timeout (1 s here) the answer is a 408
    in JSON and the connection is closed."""
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as raw:
        raw.sendall(b"POST /echo HTTP/1.1\r\nHost: splice\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 100\r\n\r\n")  # the headers only
        received = b""
        while chunk := raw.recv(4096):  # the server closes the connection after its answer
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), received
    assert json.loads(body)["error"]["type"] == "SERVER:REQUEST_TIMEOUT"


def test_a_body_larger_than_the_limit_is_a_413(server: str) -> None:
    response = httpx.post(f"{server}/echo", content=b"[" + b"1," * MAX_BODY + b"1]",
                          headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "SERVER:BODY_TOO_LARGE"


def test_server_body_limits_are_checked_when_the_app_is_built() -> None:
    from runtime.errors import ConfigurationError
    from runtime.server.app import body_limits

    assert body_limits({}) == (30.0, 10 * 1024 * 1024)
    assert body_limits({"body-timeout": "2s", "max-body-size": 5}) == (2.0, 5)
    for bad in ({"body-timeout": "soon"}, {"body-timeout": 0}, {"max-body-size": "1MB"},
                {"max-body-size": 0}):
        with pytest.raises(ConfigurationError):
            body_limits(bad)


def test_the_project_file_is_the_one_served(server: str) -> None:
    """The fixture is what the tests above think it is: both routes and the admin API answer."""
    assert httpx.post(f"{server}/echo", json={"a": 1}).json() == {"a": 1}
    assert httpx.get(f"{server}/admin/status", headers={
        "authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200
