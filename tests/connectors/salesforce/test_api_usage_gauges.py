"""The daily API usage gauges belong to one runtime: a second runtime in the process reports its own."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from connectors.salesforce.plugin import CONNECTOR
from runtime.resources import RuntimeResources

from .conftest import SETTINGS, connection_context, gauge_points

pytestmark = pytest.mark.anyio

USED = "splice.salesforce.api_requests.used"


async def test_each_runtime_reports_the_usage_of_its_own_connections(app: Any, store: Any) -> None:
    """Two runtimes on one meter provider: each runtime's gauge shows its connections only, and
    a connection stops being reported once it closed."""
    app.state.emulator.faults.update({"daily_limit": 1000, "api_used": 40})
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    first, second = (RuntimeResources(meter_provider=provider) for _ in range(2))
    assert CONNECTOR.connection is not None
    connect = CONNECTOR.connection.connect
    async with (connect(dict(SETTINGS), connection_context(app, store, "a", first)) as a,
                connect(dict(SETTINGS), connection_context(app, store, "b", second)) as b):
        await a.limits()
        await b.limits()
        points = gauge_points(reader, USED)
        assert a.api_usage is not None and b.api_usage is not None
        assert sorted(points) == sorted([(first.id, "a", a.api_usage[0]),
                                         (second.id, "b", b.api_usage[0])])
    assert gauge_points(reader, USED) == []
