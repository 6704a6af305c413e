"""Both emulators in a process of their own, QuickBooks with its real limits in scaled time and
every metered request it sees timed, for tests that check what several replicas send together.

    python -m tests.support.metered_emulators --salesforce-port P --quickbooks-port Q --scale 10

QuickBooks allows 500 requests and 40 batch calls per ``60 / scale`` seconds and 10 in flight per
realm, and answers each call in ``0.3 / scale`` seconds (as benchmarks/sync.py runs it).
``GET /_test/metered`` on the QuickBooks port answers the metered requests seen so far: each as
``[seconds since start, weight]``, where a ``/batch`` call weighs as many requests as it carries
items, and the batch calls' times apart.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import anyio


class MeteredApp:
    """Times each request of an ASGI app whose path holds ``/v3/company/`` (the metered API)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.started = time.monotonic()
        self.requests: list[tuple[float, int]] = []
        self.batches: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/_test/metered":
            body = json.dumps({"requests": self.requests, "batches": self.batches}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] == "http" and "/v3/company/" in scope["path"]:
            at = time.monotonic() - self.started
            if scope["path"].rstrip("/").endswith("/batch"):
                receive = await self._count_batch(at, receive)
            else:
                self.requests.append((at, 1))
        await self.app(scope, receive, send)

    async def _count_batch(self, at: float, receive: Any) -> Any:
        """Read the body to count its items; the app then reads the same messages."""
        messages = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
        try:
            items = len(json.loads(body or b"{}").get("BatchItemRequest") or [])
        except (ValueError, AttributeError):
            items = 1
        self.requests.append((at, max(items, 1)))
        self.batches.append(at)
        replay = iter(messages)

        async def replayed() -> Any:
            return next(replay, None) or await receive()

        return replayed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--salesforce-port", type=int, required=True)
    parser.add_argument("--quickbooks-port", type=int, required=True)
    parser.add_argument("--scale", type=float, default=10.0)
    args = parser.parse_args()

    from runtime import sandbox as sb
    from runtime.registry import load_registry

    connectors = load_registry().connectors
    salesforce, quickbooks = (sb.load_sandbox(connectors[name])
                              for name in ("salesforce", "quickbooks"))
    assert salesforce is not None and quickbooks is not None
    sockets = [sb.bind_socket("127.0.0.1", port)
               for port in (args.salesforce_port, args.quickbooks_port)]
    sf_base, qb_base = (f"http://127.0.0.1:{port}"
                        for port in (args.salesforce_port, args.quickbooks_port))
    scale = args.scale
    sf_app = salesforce.emulator(demo=True, long_poll_timeout=5.0)
    qb_app = quickbooks.emulator(demo=True, rate_limits=True, requests_per_minute=500,
                                 batch_per_minute=40, max_concurrent=10, rate_window=60.0 / scale,
                                 faults={"latency": 0.3 / scale})
    emulators = [
        sb.SandboxedConnection("salesforce", "salesforce", sf_base, salesforce.settings(sf_base),
                               sf_app, sockets[0]),
        sb.SandboxedConnection("quickbooks", "quickbooks", qb_base, quickbooks.settings(qb_base),
                               MeteredApp(qb_app), sockets[1]),
    ]
    anyio.run(sb.serve_emulators, emulators, anyio.Event())


if __name__ == "__main__":
    main()
