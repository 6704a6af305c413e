"""``foreach`` with ``batch-size``: chunks of consecutive items, cut from a stream as it arrives."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import dsl
from runtime.message import Event
from runtime.registry import load_registry
from runtime.service import open_runtime
from runtime.steps.language import in_chunks

pytestmark = pytest.mark.anyio

FLOW = """
flow: chunks
steps:
  - foreach:
      collection: "#[payload]"
      batch-size: 3
      steps:
        - transform: "{ 'index': $vars.index, 'size': $count($), 'sum': $sum($) }"
"""


async def test_foreach_hands_out_chunks(tmp_path: Path) -> None:
    (tmp_path / "chunks.yaml").write_text(textwrap.dedent(FLOW))
    registry = load_registry()
    project = dsl.load_project(tmp_path, vocabulary=registry, environ={})
    async with open_runtime(project, registry) as runtime:
        listed = await runtime.engine.run("chunks", Event(payload=[1, 2, 3, 4, 5, 6, 7]))
        short = await runtime.engine.run("chunks", Event(payload=[1, 2]))
    assert listed.status == "completed", listed.error
    assert listed.message.payload == [{"index": 0, "size": 3, "sum": 6}, {"index": 1, "size": 3, "sum": 15},
                                      {"index": 2, "size": 1, "sum": 7}]
    assert short.message.payload == [{"index": 0, "size": 2, "sum": 3}]


async def test_chunks_are_cut_from_a_stream_as_it_arrives() -> None:
    """A chunk is handed on before the stream's later items are read (memory stays one chunk)."""
    read: list[int] = []

    async def numbers() -> AsyncIterator[Any]:
        for n in range(1, 8):
            read.append(n)
            yield n

    chunks = []
    async for chunk in in_chunks(numbers(), 3):
        chunks.append((chunk, len(read)))
    assert chunks == [([1, 2, 3], 3), ([4, 5, 6], 6), ([7], 7)]
