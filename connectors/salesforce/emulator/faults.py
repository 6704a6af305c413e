"""Every switchable fault of the emulator, in one place.

Counters (``unavailable: 3``) hit the next N matching calls and count down; rates
(``lock_rate: 0.2``) hit calls at random from a seeded generator, so a test run is repeatable.
Tests and sandbox tooling flip them through ``POST /_emulator/faults``.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["Faults"]


@dataclass(slots=True)
class Faults:
    """Faults applied by the emulator's request pipeline."""

    #: Seconds added to every API call (before it is answered).
    latency: float = 0.0
    #: The next N API calls answer 503 SERVER_UNAVAILABLE (nothing is processed).
    unavailable: int = 0
    #: Probability of a 503 on any API call.
    unavailable_rate: float = 0.0
    #: The next N record writes fail with UNABLE_TO_LOCK_ROW (per record in collections).
    lock: int = 0
    #: Probability of UNABLE_TO_LOCK_ROW on a record write.
    lock_rate: float = 0.0
    #: Seconds an access token lives (None: until expired by the control API, like real sessions).
    token_lifetime: float | None = None
    #: Expire every issued access token after each N-th API call (0: never).
    token_expiry_every: int = 0
    #: Daily API request allocation; calls beyond it answer 403 REQUEST_LIMIT_EXCEEDED.
    daily_limit: int = 15_000
    #: Requests used in the current 24 h window (set it near daily_limit to exhaust the quota).
    api_used: int = 0
    #: The CometD endpoint answers 503 (clients should fall back to polling).
    streaming_unavailable: bool = False
    #: The next N token requests fail with 400 invalid_grant.
    token_failures: int = 0
    seed: int = 7
    #: How many times each fault was served (read-only bookkeeping for tests and benchmarks).
    served: dict[str, int] = field(default_factory=dict)
    _rng: random.Random = field(default_factory=lambda: random.Random(7), repr=False)

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a partial update (unknown names raise ``KeyError``)."""
        names = {f.name for f in fields(self) if not f.name.startswith("_")}
        for key, value in changes.items():
            name = key.replace("-", "_")
            if name not in names:
                raise KeyError(key)
            setattr(self, name, value)
            if name == "seed":
                self._rng = random.Random(value)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``GET /_emulator/faults``."""
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    def _take(self, counter: str, rate: float) -> bool:
        if getattr(self, counter) > 0:
            setattr(self, counter, getattr(self, counter) - 1)
            hit = True
        else:
            hit = rate > 0 and self._rng.random() < rate
        if hit:
            self.served[counter] = self.served.get(counter, 0) + 1
        return hit

    def take_unavailable(self) -> bool:
        """Whether this API call should answer 503."""
        return self._take("unavailable", self.unavailable_rate)

    def take_lock(self) -> bool:
        """Whether this record write should fail with UNABLE_TO_LOCK_ROW."""
        return self._take("lock", self.lock_rate)

    def take_token_failure(self) -> bool:
        """Whether this token request should be refused."""
        return self._take("token_failures", 0.0)
