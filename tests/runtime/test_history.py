"""The engine records every execution: outcome, business ids, step timeline, redacted data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

import dsl
from runtime.history import HistorySettings, capture
from runtime.message import Event
from runtime.registry import Registry
from runtime.service import open_runtime
from runtime.store import DeadLetterQueue, open_store
from runtime.store.executions import ExecutionFilter, ExecutionHistory

pytestmark = pytest.mark.anyio

SAVED = """
flow: save
record-ids: ["#[vars.trigger.Id]", "#[vars.saved]", "#[vars.missing.Id]"]
steps:
  - test.echo: { value: "INV-#[payload.Id]" }
    label: create invoice
    target: saved
  - set-variable: { name: done, value: true }
"""

FLAKY = """
flow: flaky
record-ids: ["#[vars.trigger.Id]"]
steps:
  - set-variable: { name: seen, value: "#[payload.Id]" }
  - test.fail: { type: "DEMO:BUSY", times: 1, retryable: true, key: f, message: "busy" }
  - test.fail: { type: "DEMO:VALIDATION", key: g, message: "bad s3cr3t-token-value here" }
on-error:
  - when: ANY
    retry: { attempts: 2, initial-delay: 1ms }
    then: dead-letter
"""


async def flushed(runtime: Any) -> ExecutionHistory:
    await runtime.engine.history.flush()
    return ExecutionHistory(runtime.store)


async def test_completed_execution_is_recorded_with_ids_and_timeline(start: Any) -> None:
    async with start({"save.yaml": SAVED}) as h:
        outcome = await h.runtime.engine.run("save", Event(payload={"Id": "006A"}, id="evt-1"))
        history = await flushed(h.runtime)
        records = await history.list(ExecutionFilter(flow="save"))
        by_id = await history.list(ExecutionFilter(record_id="INV-006A"))
        by_correlation = await history.list(
            ExecutionFilter(correlation_id=outcome.message.correlation_id))
    assert len(records) == 1 and by_id == records and by_correlation == records
    record = records[0]
    assert record["outcome"] == "completed" and record["trigger"] == "manual"
    assert record["recordIds"] == ["006A", "INV-006A"]
    assert record["eventId"] == "evt-1"
    assert record["startedAt"] <= record["endedAt"] and record["durationMs"] >= 0
    assert [(s["path"], s["kind"], s["outcome"]) for s in record["steps"]] == [
        ("flow/save/steps/0", "test.echo", "completed"),
        ("flow/save/steps/1", "set-variable", "completed")]
    assert record["steps"][0]["label"] == "create invoice"
    assert record["connectorCalls"] == 1 and record["retries"] == 0
    assert "input" not in record and "output" not in record  # successes keep no data by default
    assert "error" not in record


async def test_dead_lettered_execution_keeps_error_retries_and_redacted_data(start: Any) -> None:
    async with start({"flaky.yaml": FLAKY}) as h:
        outcome = await h.runtime.engine.run(
            "flaky", Event(payload={"Id": "006B", "password": "hunter22", "note": "s3cr3t-token-value"}))
        history = await flushed(h.runtime)
        (record,) = await history.list(ExecutionFilter(record_id="006B"))
    assert outcome.status == "dead-lettered"
    assert record["outcome"] == "dead-lettered" and record["deadLetterId"] == outcome.dead_letter_id
    assert record["error"]["type"] == "DEMO:VALIDATION"
    assert "s3cr3t-token-value" not in record["error"]["message"]
    assert record["error"]["step"] == "flow/flaky/steps/2"
    assert [s["outcome"] for s in record["steps"]] == ["completed", "retried", "completed", "failed"]
    assert record["retries"] == 1 and record["connectorCalls"] == 3
    assert record["input"] == {"Id": "006B", "password": "***", "note": "***"}


async def test_replaying_a_dead_letter_marks_the_failed_execution_retried(start: Any) -> None:
    async with start({"flaky.yaml": FLAKY}) as h:
        outcome = await h.runtime.engine.run("flaky", Event(payload={"Id": "006C"}))
        letter = await DeadLetterQueue(h.runtime.store).get(str(outcome.dead_letter_id))
        assert letter is not None
        from runtime.message import Message
        await h.runtime.engine.run("flaky", Message.from_dict(letter.message), replay_of=letter.id)
        history = await flushed(h.runtime)
        newest, first = await history.list(ExecutionFilter(record_id="006C"))
    assert newest["replayOf"] == letter.id
    assert first["outcome"] == "retried" and first["retriedBy"] == newest["id"]


def test_capture_caps_size_and_settings_parse() -> None:
    assert capture({"a": "x" * 100}, 1000) == {"a": "x" * 100}
    big = capture({"a": "x" * 100}, 20)
    assert big["$truncated"] is True and big["bytes"] > 20 and len(big["preview"]) == 20
    settings = HistorySettings.from_settings({"keep-data": "all", "retention": "2h", "max-per-flow": 5})
    assert (settings.keep_data, settings.retention, settings.max_per_flow) == ("all", 7200.0, 5)
    assert HistorySettings.from_settings(None).retention == 7 * 86400.0


async def open_project(registry: Registry, root: Path, history: str, flows: dict[str, str]) -> Any:
    (root / "splice.yaml").write_text(
        "connections:\n  t: { connector: test, token: s3cr3t-token-value }\n"
        f"settings:\n  history: {history}\n")
    for name, text in flows.items():
        (root / name).write_text(text)
    return dsl.load_project(root, vocabulary=registry, environ={})


async def test_keep_data_all_and_a_clean_stop_writes_everything(registry: Registry,
                                                                  tmp_path: Path) -> None:
    """Nothing is lost when the runtime closes before the writer ran; successes keep data on demand."""
    project = await open_project(registry, tmp_path, "{ keep-data: all, max-data-bytes: 40 }",
                                 {"save.yaml": SAVED})
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    try:
        async with open_runtime(project, registry, store=store) as runtime:
            for n in range(30):
                await runtime.engine.run("save", Event(payload={"Id": f"{n:04d}", "pad": "y" * n}))
            assert runtime.engine.history is not None and runtime.engine.history.pending == 30
        history = ExecutionHistory(store)
        records = await history.list(limit=100)
    finally:
        await store.aclose()
    assert len(records) == 30
    assert records[-1]["input"] == records[-1]["output"] == {"Id": "0000", "pad": ""}
    assert records[0]["input"]["$truncated"] is True


async def test_history_off_records_nothing(registry: Registry, tmp_path: Path) -> None:
    project = await open_project(registry, tmp_path, "{ enabled: false }", {"save.yaml": SAVED})
    store = open_store("memory://")
    try:
        async with open_runtime(project, registry, store=store) as runtime:
            assert runtime.engine.history is None
            await runtime.engine.run("save", Event(payload={"Id": "1"}))
        assert await ExecutionHistory(store).count() == 0
    finally:
        await store.aclose()


async def test_the_writer_runs_with_the_triggers(registry: Registry, tmp_path: Path) -> None:
    """While triggers run, records reach the store without waiting for the runtime to close."""
    project = await open_project(registry, tmp_path, "{ retention: 1d }", {"save.yaml": SAVED})
    store = open_store("memory://")
    try:
        async with open_runtime(project, registry, store=store) as runtime, \
                anyio.create_task_group() as tg:
            await tg.start(runtime.run_triggers)
            await runtime.engine.run("save", Event(payload={"Id": "live"}))
            history = ExecutionHistory(store)
            found: list[Any] = []
            for _ in range(500):  # polled, with a deadline of 10 s
                found = await history.list(ExecutionFilter(record_id="live"))
                if found:
                    break
                await anyio.sleep(0.02)
            runtime.request_stop()
        assert [r["outcome"] for r in found] == ["completed"]
    finally:
        await store.aclose()


async def test_record_ids_must_be_a_list_of_strings(registry: Registry, tmp_path: Path) -> None:
    bad = SAVED.replace('record-ids: ["#[vars.trigger.Id]", "#[vars.saved]", "#[vars.missing.Id]"]',
                        "record-ids: 5")
    with pytest.raises(dsl.FlowErrors, match="record-ids"):
        await open_project(registry, tmp_path, "{}", {"save.yaml": bad})
    good = await open_project(registry, tmp_path, "{}", {"save.yaml": SAVED})
    assert len(good.flows["save"].record_ids) == 3


async def test_records_list_as_executions_started_when_their_lines_are_logged(start: Any) -> None:
    """A line logged inside an execution carries its id before the record is written; records
    still list newest first, in the order the executions started, under the ids the lines carry."""
    import logging

    from runtime.logformat import ExecutionFilter as LineFilter
    from runtime.logformat import execution_of

    lines: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record)

    handler = Keep(level=logging.WARNING)
    handler.addFilter(LineFilter())
    engine_logger = logging.getLogger("splice.engine")
    engine_logger.addHandler(handler)
    try:
        async with start({"flaky.yaml": FLAKY, "save.yaml": SAVED}) as h:
            await h.runtime.engine.run("save", Event(payload={"Id": "S1"}))
            await h.runtime.engine.run("flaky", Event(payload={"Id": "F1"}))  # logs its retries
            await h.runtime.engine.run("save", Event(payload={"Id": "S2"}))
            history = await flushed(h.runtime)
            records = await history.list()
    finally:
        engine_logger.removeHandler(handler)
    assert [r["recordIds"][0] for r in records] == ["S2", "F1", "S1"]
    logged = {execution["executionId"] for execution in map(execution_of, lines) if execution}
    assert logged == {records[1]["id"]}


async def test_records_that_meet_a_store_blip_are_written_at_the_next_flush(
        registry: Registry, tmp_path: Path) -> None:
    """The store locked by another process while the writer flushes: the records stay queued and
    the next flush writes them (before, they were logged as lost)."""
    import sqlite3

    project = await open_project(registry, tmp_path, "{ keep-data: all }", {"save.yaml": SAVED})
    path = tmp_path / "store.db"
    store = open_store(f"sqlite:///{path}", busy_timeout=0.05)
    try:
        async with open_runtime(project, registry, store=store) as runtime:
            recorder = runtime.engine.history
            assert recorder is not None
            await store.put("warm", "up", True)
            for n in range(3):
                await runtime.engine.run("save", Event(payload={"Id": f"{n:04d}"}))
            other = sqlite3.connect(path, isolation_level=None)
            other.execute("BEGIN EXCLUSIVE")
            try:
                await recorder.flush()
            finally:
                other.execute("ROLLBACK")
                other.close()
            assert recorder.pending == 3 and recorder.written == 0
            await recorder.flush()
            assert recorder.pending == 0 and recorder.written == 3
        assert await ExecutionHistory(store).count() == 3
    finally:
        await store.aclose()
