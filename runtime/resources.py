"""What one runtime's connections share: connector state, secrets and the meter.

A connector that keeps state beyond one connection (QuickBooks' per-realm request budget, which every
connection to that company spends together; Salesforce's API usage gauges) keeps it here, through
:meth:`runtime.context.ConnectionContext.shared`, never in a module global: two runtimes in one
process (or two tests) then never see each other's state, and nothing needs resetting between them.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import metrics

from runtime.redaction import Secrets

if TYPE_CHECKING:
    from runtime.metrics import RuntimeMetrics

__all__ = ["RuntimeResources"]

T = TypeVar("T")


class RuntimeResources:
    """Created once per runtime (:func:`runtime.service.open_runtime`) and handed to each connection.

    ``secrets`` is the runtime's own :class:`~runtime.redaction.Secrets`, current while the runtime
    runs. ``meter`` is an OpenTelemetry meter of this runtime alone (its instrumentation scope
    carries a ``splice.runtime`` id), so instruments two runtimes both create never clash.
    ``metrics`` are the runtime's Prometheus metrics (``GET /metrics``), in a registry of its own.
    """

    def __init__(self, *, secrets: Secrets | None = None,
                 meter_provider: metrics.MeterProvider | None = None) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.secrets = secrets if secrets is not None else Secrets()
        self._meter_provider = meter_provider
        self._meter: metrics.Meter | None = None
        self._metrics: RuntimeMetrics | None = None
        self._shared: dict[Hashable, Any] = {}
        self._lock = threading.RLock()

    @property
    def meter(self) -> metrics.Meter:
        """The runtime's meter (from ``meter_provider``, else the process's global provider)."""
        with self._lock:
            if self._meter is None:
                self._meter = metrics.get_meter("splice", meter_provider=self._meter_provider,
                                                attributes={"splice.runtime": self.id})
            return self._meter

    @property
    def metrics(self) -> RuntimeMetrics:
        """The runtime's Prometheus metrics (made at first use: commands that never serve or call
        an API do not import prometheus-client)."""
        with self._lock:
            if self._metrics is None:
                from runtime.metrics import RuntimeMetrics

                self._metrics = RuntimeMetrics()
            return self._metrics

    def get_or_create(self, key: Hashable, factory: Callable[[], T]) -> T:
        """The object kept under ``key``, made by ``factory()`` the first time it is asked for.

        Keys are shared by every connector of the runtime: start them with the connector's name
        (``("quickbooks.realm", base_url, realm_id)``).
        """
        with self._lock:  # re-entrant: a factory may use the meter or other shared objects
            if key not in self._shared:
                self._shared[key] = factory()
            found: T = self._shared[key]
            return found
