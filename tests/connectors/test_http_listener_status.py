"""``http.listener``: a completed flow may choose its answer's status through ``vars.httpStatus``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import pytest

import dsl
from runtime.registry import load_registry
from runtime.server.app import create_app
from runtime.service import open_runtime

pytestmark = pytest.mark.anyio

FLOW = """
flow: lookup
trigger:
  http.listener: { path: "/things/{id}", method: GET }
steps:
  - choice:
      - when: "#[ attributes.pathParams.id = 'known' ]"
        steps: [ { transform: "{ 'id': 'known' }" } ]
      - otherwise:
          - set-variable: { name: httpStatus, value: 404 }
          - transform: "{ 'error': 'no such thing' }"
"""


async def test_flow_answers_404_for_an_unknown_id(tmp_path: Path) -> None:
    (tmp_path / "lookup.yaml").write_text(textwrap.dedent(FLOW))
    registry = load_registry()
    project = dsl.load_project(tmp_path, vocabulary=registry, environ={})
    async with open_runtime(project, registry) as runtime:
        app = create_app(runtime, drain_timeout=5)
        async with app.lifespan():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                         base_url="http://splice") as client:
                known = await client.get("/things/known")
                unknown = await client.get("/things/other")
    assert (known.status_code, known.json()) == (200, {"id": "known"})
    assert (unknown.status_code, unknown.json()) == (404, {"error": "no such thing"})
