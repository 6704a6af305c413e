"""A minimal HTTP sink for the benchmarks: answers every POST with 201 and a small JSON body.

Run as ``python benchmarks/sink.py PORT``; it is a raw ASGI app under uvicorn so that its own cost
stays small and equal for every system measured against it.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn

BODY = b'{"Invoice":{"Id":"130","SyncToken":"0"}}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 201,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
                access_log=False)
