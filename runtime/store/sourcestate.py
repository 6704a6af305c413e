"""Where sources keep their position (watermarks, offsets, replay ids) between runs.

A source reads its state when it starts and saves it only after the events before it were processed
or dead-lettered (at least once). The key format lives here and nowhere else: namespace
``source-state``, key ``<flow>:<source>`` (``opportunity-to-invoice:salesforce.changes``).
"""

from __future__ import annotations

from typing import Any

from runtime.store.base import ObjectStore

__all__ = ["SOURCE_STATE_NAMESPACE", "SourceStateStore"]

SOURCE_STATE_NAMESPACE = "source-state"


class SourceStateStore:
    """Load and save the state of each flow's source."""

    def __init__(self, store: ObjectStore, namespace: str = SOURCE_STATE_NAMESPACE) -> None:
        self.store = store
        self.namespace = namespace

    @staticmethod
    def key(flow: str, source: str) -> str:
        """The store key of one flow's source."""
        return f"{flow}:{source}"

    async def load(self, flow: str, source: str) -> dict[str, Any] | None:
        """The saved state, or ``None`` on the very first run (the source starts from its default)."""
        return await self.store.get(self.namespace, self.key(flow, source))

    async def save(self, flow: str, source: str, state: dict[str, Any]) -> None:
        """Replace the saved state (call only after the events before it are handled)."""
        await self.store.put(self.namespace, self.key(flow, source), state)

    async def reset(self, flow: str, source: str) -> bool:
        """Forget the state, so the source starts over from its default position."""
        return await self.store.delete(self.namespace, self.key(flow, source))
