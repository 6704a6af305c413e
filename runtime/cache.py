"""Results of reading operations kept for a while: a step's ``cache: 10m``.

A flow that looks up the same reference data for every message (an income account, a payment
term, a tax code) spends a call of its API budget on each. With ``cache:`` on the step, the result
for the same connection, operation and parameters is reused until it is older than the duration.
Concurrent messages that miss at once make one call between them (the others wait for it); a
failed call is not remembered. The cache lives in the process and is bounded, oldest out first.
"""

from __future__ import annotations

import copy
import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import anyio

__all__ = ["ResultCache", "cache_key"]


def cache_key(connection: str | None, operation: str, params: dict[str, Any]) -> Hashable:
    """What identifies a result: the connection, the operation and its rendered parameters."""
    return (connection, operation, json.dumps(params, sort_keys=True, default=str))


class ResultCache:
    """At most ``max_entries`` results, each reused until its own time to live has passed."""

    def __init__(self, max_entries: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._loading: dict[Hashable, anyio.Event] = {}
        self.hits = 0
        self.misses = 0

    async def get(self, key: Hashable, ttl: float, load: Callable[[], Awaitable[Any]]) -> Any:
        """The cached result for ``key``, or ``load()``'s (remembered for ``ttl`` seconds).

        Each caller gets its own copy, so a step that changes its result cannot change another
        message's.
        """
        while True:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > self._clock():
                self.hits += 1
                return copy.deepcopy(entry[1])
            loading = self._loading.get(key)
            if loading is None:
                break
            await loading.wait()  # another message is loading it; then look again
        self.misses += 1
        done = self._loading[key] = anyio.Event()
        try:
            value = await load()
            self._entries[key] = (self._clock() + ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            return copy.deepcopy(value)
        finally:
            del self._loading[key]
            done.set()
