"""The HTTP layers: retries that are safe, Retry-After, rate limits, OAuth refresh once on 401."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

from runtime.errors import map_http_errors
from runtime.limits import RateLimit
from runtime.oauth import AccessToken, OAuth2Auth, StoredTokenSource
from runtime.store import open_store
from runtime.testing import wait_until
from runtime.transports import IDEMPOTENT_EXTENSION, RetryOptions, create_http_client

pytestmark = pytest.mark.anyio

FAST = RetryOptions(attempts=3, initial_delay=0.001, max_delay=0.002, jitter=0)


def scripted(statuses: list[int], seen: list[httpx.Request],
             headers: dict[str, str] | None = None) -> httpx.MockTransport:
    """Answers with the given statuses in turn (then 200)."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = statuses.pop(0) if statuses else 200
        return httpx.Response(status, json={"n": len(seen)}, headers=headers or {})

    return httpx.MockTransport(handler)


async def test_get_is_retried_after_503_and_500() -> None:
    seen: list[httpx.Request] = []
    async with create_http_client("t", transport=scripted([503, 500], seen), retry=FAST) as client:
        response = await client.get("http://api/x")
    assert response.status_code == 200
    assert len(seen) == 3


async def test_post_is_not_retried_after_500_unless_idempotent() -> None:
    seen: list[httpx.Request] = []
    async with create_http_client("t", transport=scripted([500], seen), retry=FAST) as client:
        plain = await client.post("http://api/x", json={})
    assert plain.status_code == 500 and len(seen) == 1

    seen.clear()
    async with create_http_client("t", transport=scripted([500], seen), retry=FAST) as client:
        request = client.build_request("POST", "http://api/x", json={},
                                       extensions={IDEMPOTENT_EXTENSION: True})
        keyed = await client.send(request)
    assert keyed.status_code == 200 and len(seen) == 2


async def test_429_waits_for_retry_after() -> None:
    seen: list[httpx.Request] = []
    transport = scripted([429], seen, headers={"Retry-After": "0.2"})
    async with create_http_client("t", transport=transport, retry=FAST) as client:
        started = time.monotonic()
        response = await client.post("http://api/x", json={})
        waited = time.monotonic() - started
    assert response.status_code == 200
    assert len(seen) == 2
    assert waited >= 0.2


async def test_retry_after_longer_than_allowed_is_returned_to_caller() -> None:
    seen: list[httpx.Request] = []
    transport = scripted([429], seen, headers={"Retry-After": "3600"})
    async with create_http_client("t", transport=transport, retry=FAST) as client:
        response = await client.get("http://api/x")
    assert response.status_code == 429 and len(seen) == 1


async def test_connect_errors_map_to_typed_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with create_http_client("t", transport=httpx.MockTransport(refuse), retry=None) as client:
        with pytest.raises(Exception) as caught, map_http_errors("DEMO"):
            await client.get("http://api/x?token=abc")
    assert caught.value.error_type == "DEMO:CONNECTIVITY"
    assert caught.value.retryable is True
    assert "abc" not in str(caught.value)


async def test_rate_limit_bounds_concurrency() -> None:
    running = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01)
        running -= 1
        return httpx.Response(200)

    limit = RateLimit(1000, 1.0, max_concurrent=3)
    async with create_http_client("t", transport=httpx.MockTransport(handler), rate_limit=limit,
                                  retry=None) as client:
        async with anyio.create_task_group() as tg:
            for _ in range(12):
                tg.start_soon(client.get, "http://api/x")
    assert peak == 3


async def test_token_bucket_spaces_requests() -> None:
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(time.monotonic())
        return httpx.Response(200)

    limit = RateLimit(10, 1.0, burst=1)  # 10 per second, no burst: 100 ms apart
    async with create_http_client("t", transport=httpx.MockTransport(handler), rate_limit=limit,
                                  retry=None) as client:
        for _ in range(4):
            await client.get("http://api/x")
    assert calls[-1] - calls[0] >= 0.29


async def test_oauth_refreshes_on_401_a_bounded_number_of_times_and_never_loops() -> None:
    store = open_store("memory://")
    fetched: list[AccessToken | None] = []

    async def fetch(current: AccessToken | None) -> AccessToken:
        fetched.append(current)
        return AccessToken(f"token-{len(fetched)}", expires_at=time.time() + 3600)

    source = StoredTokenSource(store, "demo", fetch)
    seen: list[str] = []

    def always_401(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(401, json={"error": "expired"})

    async with create_http_client("t", transport=httpx.MockTransport(always_401),
                                  auth=OAuth2Auth(source, max_refreshes=3), retry=None) as client:
        response = await client.get("http://api/x")
    await store.aclose()
    assert response.status_code == 401
    assert seen == [f"Bearer token-{n}" for n in range(1, 5)]
    assert len(fetched) == 4


async def test_a_401_on_the_replay_refreshes_again_instead_of_failing() -> None:
    """The replay after a refresh is refused too (the server dropped that token as well): one more
    refresh and replay gets the request through, instead of handing a 401 to the flow (which would
    dead-letter the event)."""
    store = open_store("memory://")
    fetched: list[AccessToken | None] = []

    async def fetch(current: AccessToken | None) -> AccessToken:
        fetched.append(current)
        return AccessToken(f"token-{len(fetched)}", expires_at=time.time() + 3600)

    source = StoredTokenSource(store, "demo", fetch)
    seen: list[str] = []

    def accepts_the_third_token(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        if request.headers["Authorization"] != "Bearer token-3":
            return httpx.Response(401, json={"error": "invalid_token"})
        return httpx.Response(200, json={"ok": True})

    async with create_http_client("t", transport=httpx.MockTransport(accepts_the_third_token),
                                  auth=OAuth2Auth(source), retry=FAST) as client:
        response = await client.get("http://api/x")
    await store.aclose()
    assert response.status_code == 200
    assert seen == ["Bearer token-1", "Bearer token-2", "Bearer token-3"]


async def test_the_token_is_attached_after_the_rate_limit_wait() -> None:
    """A request that waits for a rate-limit slot goes out with the token current when it gets the
    slot, not the one current when it started waiting (which expired meanwhile): no 401, no
    second attempt."""
    store = open_store("memory://")
    fetched: list[AccessToken | None] = []

    async def fetch(current: AccessToken | None) -> AccessToken:
        fetched.append(current)
        return AccessToken(f"token-{len(fetched)}", expires_at=time.time() + 3600)

    source = StoredTokenSource(store, "demo", fetch)
    first = await source.token()
    limit = RateLimit(100, 1.0, max_concurrent=1)
    waiting, release = anyio.Event(), anyio.Event()
    seen: list[str] = []

    def pick(request: httpx.Request) -> RateLimit:
        waiting.set()
        return limit

    def accepts_the_current_token(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        if request.headers["Authorization"] != "Bearer token-2":
            return httpx.Response(401, json={"error": "expired"})
        return httpx.Response(200, json={"ok": True})

    async def hold_the_slot() -> None:
        async with limit.slot():
            await release.wait()

    responses: list[httpx.Response] = []
    async with create_http_client("t", transport=httpx.MockTransport(accepts_the_current_token),
                                  auth=OAuth2Auth(source), rate_limit=pick, retry=FAST) as client:

        async def call() -> None:
            responses.append(await client.get("http://api/x"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(hold_the_slot)
            await wait_until(lambda: limit.concurrency is not None and limit.concurrency.borrowed_tokens == 1,
                             what="the slot held")
            tg.start_soon(call)
            await waiting.wait()
            # While the request waits for its slot, its token expires and is replaced.
            await source.refresh(first)
            release.set()
    await store.aclose()
    assert [r.status_code for r in responses] == [200]
    assert seen == ["Bearer token-2"]


async def test_concurrent_refreshes_fetch_once_and_persist() -> None:
    store = open_store("memory://")
    fetches = 0

    async def fetch(current: AccessToken | None) -> AccessToken:
        nonlocal fetches
        fetches += 1
        await anyio.sleep(0.02)
        return AccessToken(f"t{fetches}", expires_at=time.time() + 3600,
                           extra={"refresh_token": f"r{fetches}-rotated"})

    source = StoredTokenSource(store, "realm-1", fetch)
    tokens: list[str] = []

    async def use() -> None:
        tokens.append((await source.token()).value)

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(use)
    other_process_view = await StoredTokenSource(store, "realm-1", fetch).stored()
    await store.aclose()
    assert fetches == 1
    assert set(tokens) == {"t1"}
    assert other_process_view is not None
    assert other_process_view.refresh_token == "r1-rotated"


async def test_expired_token_is_refreshed_before_use() -> None:
    store = open_store("memory://")
    values = iter(["old", "new"])

    async def fetch(current: AccessToken | None) -> AccessToken:
        value = next(values)
        lifetime = 30 if value == "old" else 3600  # "old" is inside the refresh leeway
        return AccessToken(value, expires_at=time.time() + lifetime)

    source = StoredTokenSource(store, "k", fetch, leeway=60)
    first = await source.token()
    second = await source.token()
    await store.aclose()
    assert (first.value, second.value) == ("old", "new")


def test_access_token_values_are_redacted_from_logs() -> None:
    import logging

    from runtime.redaction import RedactingFilter

    AccessToken("tok-abcdef-123456", extra={"refresh_token": "ref-abcdef-654321"})
    logger = logging.getLogger("splice.test.redaction")
    handler_filter = RedactingFilter()
    record = logger.makeRecord("x", logging.INFO, __file__, 1,
                               "calling with %s and %s", ("tok-abcdef-123456", "ref-abcdef-654321"),
                               None)
    handler_filter.filter(record)
    assert record.getMessage() == "calling with *** and ***"


async def test_network_transport_is_chosen_and_can_be_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    from runtime.transports import create_network_transport

    monkeypatch.setenv("SPLICE_HTTP_TRANSPORT", "httpx")
    forced = create_network_transport()
    assert isinstance(forced, httpx.AsyncHTTPTransport)
    await forced.aclose()
    monkeypatch.delenv("SPLICE_HTTP_TRANSPORT")
    default = create_network_transport()
    assert type(default).__name__ == "AiohttpTransport"  # the fast extra is part of the test set
    await default.aclose()
