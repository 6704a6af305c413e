"""A TCP proxy that cuts connections on demand: a network blip or a database failover between
Splice and a server it uses (PostgreSQL), as the store sees it in production.

``cut()`` makes the proxy stall: bytes sent from then on reach nobody, and after ``after`` seconds
every connection through it is closed, so whatever was in flight fails mid-operation, as when a
failover drops sessions. New connections are served normally as soon as ``cut()`` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["BlipProxy", "blip_proxy", "terminate_lock_sessions"]


class BlipProxy:
    """Forwards ``127.0.0.1:<port>`` to ``host:port``; :meth:`cut` drops what is open."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.target_port = port
        self.port = 0
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter, asyncio.Event]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        for client, upstream, _ in list(self._open):
            client.close()
            upstream.close()

    async def cut(self, after: float = 0.2) -> int:
        """Stall every open connection, close them all ``after`` seconds later; how many."""
        victims = list(self._open)
        for _, _, stalled in victims:
            stalled.set()
        await asyncio.sleep(after)
        for client, upstream, _ in victims:
            with contextlib.suppress(Exception):
                client.transport.abort()
            with contextlib.suppress(Exception):
                upstream.transport.abort()
        self.cuts += 1
        return len(victims)

    async def _serve(self, reader: asyncio.StreamReader, client: asyncio.StreamWriter) -> None:
        try:
            up_reader, upstream = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            client.close()
            return
        stalled = asyncio.Event()
        entry = (client, upstream, stalled)
        self._open.add(entry)
        try:
            await asyncio.gather(self._pipe(reader, upstream, stalled),
                                 self._pipe(up_reader, client, stalled), return_exceptions=True)
        finally:
            self._open.discard(entry)
            client.close()
            upstream.close()

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter,
                    stalled: asyncio.Event) -> None:
        while True:
            data = await source.read(65536)
            if not data:
                sink.close()
                return
            if stalled.is_set():
                continue  # lost on the wire
            sink.write(data)
            await sink.drain()


@contextlib.asynccontextmanager
async def blip_proxy(host: str, port: int) -> AsyncIterator[BlipProxy]:
    """A started :class:`BlipProxy` to ``host:port``, closed afterwards."""
    proxy = BlipProxy(host, port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.aclose()


async def terminate_lock_sessions(postgres_url: str, schema: str) -> int:
    """Cut the database sessions holding the advisory locks of the store in ``schema``, as a
    failover or a network blip would; how many were cut."""
    import asyncpg

    conn = await asyncpg.connect(postgres_url)
    try:
        return len(await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND granted AND classid = hashtext($1)::oid", f"splice:{schema}"))
    finally:
        await conn.close()
