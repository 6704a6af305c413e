"""The rate-limit policy of ``splice serve`` counts in the store when replicas share one, so N
replicas together admit the limit once."""

from __future__ import annotations

from typing import Any

import pytest

import dsl
from runtime.service import open_runtime
from runtime.store import open_store
from tests.runtime.test_server import ORDERS, RATED_BY_CLIENT, serving

pytestmark = pytest.mark.anyio


@pytest.mark.postgres
async def test_a_rate_limit_holds_across_replicas_sharing_a_postgresql_store(
        postgres_url: str, pg_schema: str, registry: Any, write_project: Any) -> None:
    """Two serve replicas on one PostgreSQL store admit the limit once between them."""
    root = write_project({"orders.yaml": ORDERS}, connections=RATED_BY_CLIENT)
    project = dsl.load_project(root, vocabulary=registry, environ={})
    url = f"{postgres_url}?schema={pg_schema}"
    async with open_store(url) as one, open_store(url) as other, \
            open_runtime(project, registry, store=one) as first, \
            open_runtime(project, registry, store=other) as second, \
            serving(first) as to_first, serving(second) as to_second:
        answers = []
        for i in range(6):
            replica = to_first if i % 2 == 0 else to_second
            answers.append(await replica.post("/orders", json={"id": i, "lines": []}))
    assert [a.status_code for a in answers] == [200, 200, 429, 429, 429, 429]
