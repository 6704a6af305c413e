"""Fixed-window request counters for the rate-limit policy: in this process, or in the store.

A window is a whole period counted from the epoch (``floor(now / period)``), so every replica
agrees on where it starts and ends. :class:`StoreWindows` counts in the object store with
compare-and-set, so replicas sharing a PostgreSQL store together admit the limit once; the count
expires with its window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Protocol

from runtime.store.base import ObjectStore

__all__ = ["LocalWindows", "StoreWindows", "Windows"]

NAMESPACE = "rate-limit-windows"
#: Compare-and-set attempts per request before a busy window is treated as full.
MAX_RACES = 50


class Windows(Protocol):
    """Counts requests per key and window."""

    async def take(self, key: str, limit: int, period: float) -> float | None:
        """Count one request; ``None`` when it is within ``limit``, else seconds until the window
        ends (the request is not counted)."""


def _window(now: float, period: float) -> tuple[int, float]:
    index = math.floor(now / period)
    return index, (index + 1) * period - now


class LocalWindows:
    """Windows in this process's memory (one replica, or an embedded store)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._counts: dict[str, tuple[int, int]] = {}

    async def take(self, key: str, limit: int, period: float) -> float | None:
        index, left = _window(self.clock(), period)
        current, used = self._counts.get(key, (index, 0))
        if current != index:
            used = 0
        if used >= limit:
            return left
        self._counts[key] = (index, used + 1)
        if len(self._counts) > 10_000:  # forget keys of windows long gone
            self._counts = {k: v for k, v in self._counts.items() if v[0] == index}
        return None


class StoreWindows:
    """Windows in the object store, shared by every replica using it."""

    def __init__(self, store: ObjectStore, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    async def take(self, key: str, limit: int, period: float) -> float | None:
        index, left = _window(self.clock(), period)
        slot = f"{key}:{index}"
        for _ in range(MAX_RACES):
            used = await self.store.get(NAMESPACE, slot)
            if used is not None and int(used) >= limit:
                return left
            if await self.store.compare_and_set(NAMESPACE, slot, used, int(used or 0) + 1,
                                                ttl=left + period):
                return None
        return left
