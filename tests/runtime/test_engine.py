"""The engine runs steps in order, routes, iterates, and handles errors as the flow says."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.message import Event
from runtime.store import DeadLetterQueue

pytestmark = pytest.mark.anyio


async def test_transform_then_operation_with_target(start: Any, recorder: Any) -> None:
    """A transform reshapes the payload; a step with target stores its result in vars."""
    flow = """
    flow: shape
    steps:
      - transform: '{"name": $uppercase(name), "total": $sum(lines.(qty * price))}'
      - test.echo: { value: "#[payload.name & ' owes ' & $string(payload.total)]" }
        target: note
      - set-variable: { name: copy, value: "#[vars.note]" }
    """
    async with start({"shape.yaml": flow}) as h:
        outcome = await h.runtime.engine.run("shape", Event(payload={
            "name": "acme", "lines": [{"qty": 2, "price": 1.5}, {"qty": 1, "price": 10}]}))
    assert outcome.status == "completed"
    assert outcome.message.payload == {"name": "ACME", "total": 13}
    assert outcome.message.vars["note"] == "ACME owes 13"
    assert outcome.message.vars["copy"] == "ACME owes 13"


async def test_a_streamed_result_stored_with_target_holds_its_records(start: Any) -> None:
    """A variable holds values: a streaming operation's records stored under ``target`` are a list
    that later steps can count and read, as they are when the stream becomes the payload."""
    flow = """
    flow: keep
    steps:
      - test.stream: { count: 3 }
        target: records
      - transform: '{"count": $count($vars.records), "last": $vars.records[-1].n}'
    """
    async with start({"keep.yaml": flow}) as h:
        outcome = await h.runtime.engine.run("keep", Event(payload={}))
    assert outcome.status == "completed", outcome.error
    assert outcome.message.vars["records"] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert outcome.message.payload == {"count": 3, "last": 2}


async def test_choice_takes_first_matching_branch_then_otherwise(start: Any) -> None:
    flow = """
    flow: route
    steps:
      - choice:
          - when: "#[payload.amount > 100]"
            steps: [ { set-variable: { name: lane, value: big } } ]
          - when: "#[payload.amount > 10]"
            steps: [ { set-variable: { name: lane, value: medium } } ]
          - otherwise:
              - set-variable: { name: lane, value: small }
    """
    async with start({"route.yaml": flow}) as h:
        lanes = [(await h.runtime.engine.run("route", Event(payload={"amount": a}))).message.vars["lane"]
                 for a in (500, 50, 5)]
    assert lanes == ["big", "medium", "small"]


async def test_foreach_bounded_concurrency_keeps_order(start: Any, recorder: Any) -> None:
    flow = """
    flow: fan
    steps:
      - foreach:
          collection: "#[payload.items]"
          concurrency: 3
          steps:
            - test.slow: { seconds: 0.02 }
            - transform: "$ * 10"
    """
    async with start({"fan.yaml": flow}) as h:
        outcome = await h.runtime.engine.run("fan", Event(payload={"items": list(range(10))}))
    assert outcome.message.payload == [i * 10 for i in range(10)]
    assert recorder.max_running == 3


async def test_foreach_captures_item_errors_and_goes_on(start: Any) -> None:
    flow = """
    flow: fan
    steps:
      - foreach:
          collection: "#[payload]"
          on-item-error: continue
          steps:
            - choice:
                - when: "#[payload = 2]"
                  steps: [ { test.fail: { type: "DEMO:BAD_ITEM" } } ]
            - transform: "$ + 100"
    """
    async with start({"fan.yaml": flow}) as h:
        outcome = await h.runtime.engine.run("fan", Event(payload=[1, 2, 3]))
    assert outcome.status == "completed"
    assert outcome.message.payload == [101, None, 103]
    [captured] = outcome.message.vars["foreachErrors"]
    assert captured["index"] == 1 and captured["item"] == 2
    assert captured["error"]["type"] == "DEMO:BAD_ITEM"


async def test_foreach_over_a_stream_without_collecting(start: Any, recorder: Any) -> None:
    flow = """
    flow: drain
    steps:
      - test.stream: { count: 25 }
      - foreach:
          collection: "#[payload]"
          collect: false
          concurrency: 4
          steps: [ { test.echo: {} } ]
    """
    async with start({"drain.yaml": flow}) as h:
        outcome = await h.runtime.engine.run("drain", Event(payload=None))
    assert outcome.message.payload == {"count": 25, "failed": 0}
    assert len(recorder.of("echo")) == 25


async def test_flow_ref_runs_the_other_flow_and_shares_vars(start: Any) -> None:
    files = {
        "main.yaml": """
        flow: main
        steps:
          - set-variable: { name: who, value: world }
          - flow-ref: greet
          - set-variable: { name: after, value: "#[vars.greeting]" }
        """,
        "greet.yaml": """
        flow: greet
        steps:
          - set-variable: { name: greeting, value: "hello #[vars.who]" }
          - transform: '"done"'
        """,
    }
    async with start(files) as h:
        outcome = await h.runtime.engine.run("main", Event(payload={}))
    assert outcome.message.payload == "done"
    assert outcome.message.vars["after"] == "hello world"


async def test_retry_retryable_errors_then_succeed(start: Any, recorder: Any) -> None:
    flow = """
    flow: flaky
    steps:
      - test.fail: { type: "DEMO:BUSY", times: 2, retryable: true, key: a }
    on-error:
      - when: DEMO:*
        retry: { attempts: 3, initial-delay: 10ms, max-delay: 20ms }
        then: dead-letter
    """
    async with start({"flaky.yaml": flow}) as h:
        outcome = await h.runtime.engine.run("flaky", Event(payload={}))
    assert outcome.status == "completed"
    assert outcome.message.payload == {"succeededAfter": 3}
    assert recorder.attempts["a"] == 3


async def test_a_retried_inner_step_is_not_retried_again_by_its_enclosing_steps(
        start: Any, recorder: Any) -> None:
    """The step inside a foreach inside a flow-ref is retried once; the foreach and the flow-ref
    that fail with it are not retried again, and the error says how many attempts there were."""
    flows = {"outer.yaml": """
    flow: outer
    steps:
      - flow-ref: inner
    on-error:
      - when: DEMO:*
        retry: { attempts: 2, initial-delay: 1ms, max-delay: 1ms, jitter: 0 }
    """, "inner.yaml": """
    flow: inner
    steps:
      - foreach:
          collection: "#[payload]"
          steps:
            - test.fail: { type: "DEMO:BUSY", retryable: true, key: nested }
    """}
    async with start(flows) as h:
        outcome = await h.runtime.engine.run("outer", Event(payload=[1]))
    assert outcome.status == "failed" and outcome.error is not None
    assert recorder.attempts["nested"] == 3
    assert outcome.error.details["attempts"] == 3


async def test_non_retryable_errors_are_not_retried_and_dead_lettered(start: Any, recorder: Any
                                                                       ) -> None:
    flow = """
    flow: strict
    steps:
      - test.fail: { type: "DEMO:VALIDATION", key: v, message: "Amount is wrong" }
    on-error:
      - when: ANY
        retry: { attempts: 5, initial-delay: 10ms }
        then: dead-letter
    """
    async with start({"strict.yaml": flow}) as h:
        outcome = await h.runtime.engine.run("strict", Event(payload={"id": 7}, id="evt-7"))
        letters = await DeadLetterQueue(h.runtime.store).list()
    assert recorder.attempts["v"] == 1
    assert outcome.status == "dead-lettered"
    [letter] = letters
    assert letter.id == outcome.dead_letter_id
    assert letter.flow == "strict"
    assert letter.message["payload"] == {"id": 7}
    assert letter.error["type"] == "DEMO:VALIDATION"
    assert letter.error["message"] == "Amount is wrong"
    assert letter.step.endswith("/steps/0")


async def test_exhausted_retries_record_attempts_and_honour_retry_after(start: Any, recorder: Any
                                                                        ) -> None:
    flow = """
    flow: throttled
    steps:
      - test.fail: { type: "DEMO:THROTTLED", retryable: true, retry-after: 0.05, key: t }
    on-error:
      - when: DEMO:THROTTLED
        retry: { attempts: 2, initial-delay: 1ms, max-delay: 1ms, jitter: 0 }
        then: dead-letter
    """
    import time

    async with start({"t.yaml": flow}) as h:
        began = time.monotonic()
        outcome = await h.runtime.engine.run("throttled", Event(payload={}))
        elapsed = time.monotonic() - began
        [letter] = await DeadLetterQueue(h.runtime.store).list()
    assert recorder.attempts["t"] == 3
    assert letter.attempts == 3
    assert outcome.status == "dead-lettered"
    assert elapsed >= 0.1  # two waits of at least the server's retry-after


async def test_continue_with_fallback_payload_and_handler_steps(start: Any) -> None:
    flow = """
    flow: soft
    steps:
      - test.fail: { type: "DEMO:NOPE" }
    on-error:
      - when: [OTHER:THING, DEMO:NOPE]
        steps:
          - set-variable: { name: seen, value: "#[vars.error.type]" }
        then: continue
        payload: { ok: false, reason: "#[vars.error.message]" }
    """
    async with start({"soft.yaml": flow}) as h:
        outcome = await h.runtime.engine.run("soft", Event(payload={}))
    assert outcome.status == "completed"
    assert outcome.message.payload == {"ok": False, "reason": "boom"}
    assert outcome.message.vars["seen"] == "DEMO:NOPE"


async def test_propagate_is_failed_unless_the_caller_wants_dead_letters(start: Any) -> None:
    flow = """
    flow: loud
    steps:
      - test.fail: { type: "DEMO:NOPE" }
    """
    async with start({"loud.yaml": flow}) as h:
        first = await h.runtime.engine.run("loud", Event(payload=1))
        second = await h.runtime.engine.run("loud", Event(payload=2), dead_letter_failures=True)
        count = await DeadLetterQueue(h.runtime.store).count()
    assert first.status == "failed" and first.error is not None
    assert first.error.error_type == "DEMO:NOPE"
    assert second.status == "dead-lettered"
    assert count == 1


async def test_transform_runtime_error_is_typed(start: Any) -> None:
    flow = """
    flow: bad
    steps:
      - transform: '$number("not a number") + $undefinedFunction()'
    """
    async with start({"bad.yaml": flow}) as h:
        outcome = await h.runtime.engine.run("bad", Event(payload={}))
    assert outcome.status == "failed"
    assert outcome.error is not None
    assert outcome.error.error_type == "TRANSFORM:EVALUATION"
    assert "bad.yaml" in outcome.error.details.get("at", "")


async def test_unexpected_connector_exception_becomes_typed_error(start: Any, registry: Any) -> None:
    from runtime.spec import OperationSpec

    async def broken(ctx: Any, params: dict[str, Any]) -> Any:
        raise KeyError("oops")

    test = registry.connectors["test"]
    registry.operations["test.echo"] = OperationSpec("echo", broken, params=test.operations[0].params)
    flow = """
    flow: b
    steps: [ { test.echo: {} } ]
    """
    async with start({"b.yaml": flow}) as h:
        outcome = await h.runtime.engine.run("b", Event(payload={}))
    assert outcome.error is not None
    assert outcome.error.error_type == "TEST:UNEXPECTED"
    assert "KeyError" in outcome.error.message


async def test_max_concurrency_bounds_parallel_executions(start: Any, recorder: Any) -> None:
    import anyio

    flow = """
    flow: bounded
    max-concurrency: 2
    steps: [ { test.slow: { seconds: 0.03 } } ]
    """
    async with start({"bounded.yaml": flow}) as h:
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(h.runtime.engine.run, "bounded", Event(payload=i))
    assert recorder.max_running == 2
    assert len(recorder.of("slow")) == 8


async def test_slow_transforms_move_off_the_event_loop(registry: Any, write_project: Any) -> None:
    """A transform that proved slow runs in a worker thread, so other executions keep going."""
    import threading
    import time

    import dsl
    from runtime.service import open_runtime
    from runtime.store import open_store

    threads: list[int] = []

    def slowly(value: Any) -> Any:
        threads.append(threading.get_ident())
        time.sleep(0.005)  # a CPU-heavy transform, as far as the event loop can tell
        return value

    registry.add_functions({"slowly": slowly}, "test")
    root = write_project({"slow.yaml": """
    flow: slow
    steps:
      - transform: '$slowly($)'
    """})
    project = dsl.load_project(root, vocabulary=registry, environ={})
    store = open_store("memory://")
    async with open_runtime(project, registry, store=store) as runtime:
        loop_thread = threading.get_ident()
        results = [await runtime.engine.run("slow", Event(payload=i)) for i in range(4)]
    await store.aclose()
    assert [r.error for r in results] == [None] * 4
    assert [r.message.payload for r in results] == [0, 1, 2, 3]
    assert threads[0] == loop_thread  # unknown cost: tried inline once
    assert all(t != loop_thread for t in threads[1:])  # then kept off the loop


def test_a_measured_cost_goes_with_its_expression() -> None:
    """Costs are kept per expression object, not per id(): a new expression that reuses a dead
    one's id must not inherit its 'slow' verdict (and costs of dropped flows do not pile up)."""
    import gc

    from dsl.expressions import compile_expression
    from dsl.source import SourceSpan
    from runtime.steps import ExpressionCosts

    costs = ExpressionCosts()
    expression = compile_expression("$ + 1", SourceSpan("x.yaml", 1, 1))
    before = len(costs)
    assert costs.evaluate(expression, 1, {}) == 2
    assert costs.cost(expression) > 0 and len(costs) == before + 1
    del expression
    gc.collect()
    assert len(costs) == before


async def test_two_engines_measure_expression_costs_apart(registry: Any, write_project: Any) -> None:
    """The cost table belongs to one engine: what one runtime measured, another does not see."""
    import dsl
    from runtime.service import open_runtime
    from runtime.store import open_store

    root = write_project({"t.yaml": """
    flow: t
    steps:
      - transform: '$ + 1'
    """})
    project = dsl.load_project(root, vocabulary=registry, environ={})
    expression = project.flows["t"].steps[0].expression
    store = open_store("memory://")
    async with open_runtime(project, registry, store=store) as first, \
            open_runtime(project, registry, store=store) as second:
        assert (await first.engine.run("t", Event(payload=1))).message.payload == 2
        assert first.engine.execution.costs.cost(expression) > 0
        assert second.engine.execution.costs.cost(expression) == 0.0
        assert len(second.engine.execution.costs) == 0
    await store.aclose()


async def test_a_called_flow_applies_its_own_on_error_handler(start: Any, recorder: Any) -> None:
    """A flow run by flow-ref that fails is handled by its own on-error: its steps run, its
    dead letter keeps the message as it was handed over (so that replaying it runs that flow
    again), and the calling step fails with the letter's id: the caller keeps no second letter."""
    flows = {"outer.yaml": """
    flow: outer
    steps:
      - set-variable: { name: record, value: "#[payload.id]" }
      - foreach:
          collection: "#[payload.items]"
          on-item-error: continue
          collect: false
          steps: [ { flow-ref: repair } ]
        target: repairs
      - flow-ref: repair
    on-error:
      - when: ANY
        then: dead-letter
    """, "repair.yaml": """
    flow: repair
    steps:
      - test.fail: { type: "DEMO:REFUSED", key: "#[vars.record]", message: "no" }
    on-error:
      - when: DEMO:*
        steps: [ { set-variable: { name: handled, value: "#[vars.error.type]" } } ]
        then: dead-letter
    """}
    async with start(flows) as h:
        outcome = await h.runtime.engine.run("outer", Event(payload={"id": "r-1", "items": [1, 2]}))
        queue = DeadLetterQueue(h.runtime.store)
        letters = await queue.list()
    assert outcome.status == "dead-lettered" and outcome.error is not None
    assert outcome.message.vars["repairs"] == {"count": 2, "failed": 2}
    assert outcome.message.vars["foreachErrors"][0]["error"]["details"]["deadLetterId"]
    assert {letter.flow for letter in letters} == {"repair"} and len(letters) == 3
    assert outcome.dead_letter_id in {letter.id for letter in letters}
    assert all(letter.message["vars"]["record"] == "r-1" for letter in letters)
    assert recorder.attempts["r-1"] == 3


async def test_a_called_flow_that_continues_ends_the_flow_ref_normally(start: Any) -> None:
    flows = {"outer.yaml": """
    flow: outer
    steps:
      - flow-ref: lenient
      - set-variable: { name: after, value: "#[payload]" }
    """, "lenient.yaml": """
    flow: lenient
    steps:
      - test.fail: { type: "DEMO:REFUSED" }
    on-error:
      - when: DEMO:REFUSED
        then: continue
        payload: fallback
    """}
    async with start(flows) as h:
        outcome = await h.runtime.engine.run("outer", Event(payload={}))
    assert outcome.status == "completed"
    assert outcome.message.vars["after"] == "fallback"


async def test_error_raises_an_error_of_the_type_the_flow_names(start: Any) -> None:
    """``$error('NS:KIND: text')`` fails the flow with that type, for on-error handlers to match."""
    flow = """
    flow: strict
    steps:
      - transform: "$error('DEMO:TOO_MANY: 3 of 5 failed')"
    on-error:
      - when: DEMO:TOO_MANY
        then: continue
        payload: "#[vars.error.message]"
    """
    async with start({"strict.yaml": flow}) as h:
        outcome = await h.runtime.engine.run("strict", Event(payload={}))
    assert outcome.status == "completed" and outcome.error is not None
    assert outcome.error.error_type == "DEMO:TOO_MANY"
    assert outcome.message.payload == "3 of 5 failed"
