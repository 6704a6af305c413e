"""A plugin adds a step kind to the language: validated, listed for editors and run like a built-in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

import dsl
from dsl.kinds import StepBuilder, StepKind
from dsl.loader import Node
from dsl.model import Flow, Step
from dsl.source import SourceSpan
from dsl.validate import check_value
from runtime import Message, StepExecution, StepSpec, hookimpl
from runtime.message import Event
from runtime.plugins import PluginLoadError
from runtime.registry import Registry, load_registry
from runtime.service import open_runtime
from runtime.store import open_store

pytestmark = pytest.mark.anyio


@dataclass(frozen=True, slots=True, kw_only=True)
class UppercaseStep(Step):
    """``uppercase: { field: name, steps: [...] }``: upper-cases one field, then runs ``steps``."""

    field: str
    steps: tuple[Step, ...] = ()

    @property
    def kind(self) -> str:
        return "uppercase"


SCHEMA = {
    "type": "object",
    "description": "Upper-case a field of the payload, then run steps",
    "properties": {"field": {"type": "string", "x-dynamic": False},
                   "steps": {"type": "array", "items": {"type": "object"}}},
    "required": ["field"],
    "additionalProperties": False,
}


def build_uppercase(builder: StepBuilder, node: Node, key_span: SourceSpan,
                    base: dict[str, Any]) -> Step | None:
    ctx = builder.ctx
    options = ctx.resolve(Node("map", {k: v for k, v in node.value.items() if k != "steps"},
                               node.span, keys=node.keys)) if node.kind == "map" else node
    if not check_value(options, SCHEMA, "uppercase", ctx.errors, key_span=key_span):
        return None
    steps = builder.steps(node.value["steps"]) if "steps" in node.value else ()
    return UppercaseStep(field=options.value["field"].value, steps=steps, **base)


async def run_uppercase(execution: StepExecution, flow: Flow, step: UppercaseStep,
                        message: Message, path: str) -> None:
    message.payload = {**message.payload, step.field: str(message.payload[step.field]).upper()}
    await execution.run_steps(flow, step.steps, message, f"{path}/steps")


class UppercasePlugin:
    """A third-party plugin contributing one step kind."""

    @hookimpl
    def splice_steps(self) -> Sequence[StepSpec]:
        return (StepSpec(UppercaseStep, run_uppercase, StepKind("uppercase", SCHEMA, build_uppercase)),)


@pytest.fixture
def registry() -> Registry:
    return load_registry([UppercasePlugin()], load_entry_points=False)


FLOW = """\
flow: shout
steps:
  - uppercase:
      field: name
      steps:
        - set-variable: { name: seen, value: "#[payload.name]" }
"""


async def test_a_plugin_step_kind_loads_and_runs(registry: Registry, tmp_path: Any) -> None:
    (tmp_path / "shout.yaml").write_text(FLOW)
    project = dsl.load_project(tmp_path, vocabulary=registry, environ={})
    store = open_store("memory://")
    async with open_runtime(project, registry, store=store) as runtime:
        outcome = await runtime.engine.run("shout", Event(payload={"name": "Ada"}))
    await store.aclose()
    assert outcome.status == "completed", outcome.error
    assert outcome.message.payload == {"name": "ADA"}
    assert outcome.message.vars["seen"] == "ADA"


def test_a_plugin_step_kind_is_checked_and_listed(registry: Registry) -> None:
    assert list(registry.step_kind_names())[-1] == "uppercase"
    with pytest.raises(dsl.FlowErrors) as info:
        dsl.load_flow_text("flow: a\nsteps:\n  - upercase: { field: x }\n", file="f.yaml",
                           vocabulary=registry, environ={})
    assert str(info.value) == ("f.yaml:3:5: unknown step 'upercase', expected one of the known steps "
                               "(did you mean 'uppercase'?)")
    with pytest.raises(dsl.FlowErrors) as info:
        dsl.load_flow_text("flow: a\nsteps:\n  - uppercase: { feld: x }\n", file="f.yaml",
                           vocabulary=registry, environ={})
    assert "f.yaml:3:18: unknown key 'feld' in 'uppercase' (did you mean 'field'?)" in str(info.value)
    steps = dsl.flow_json_schema(registry)["$defs"]["step"]["oneOf"]
    [entry] = [e for e in steps if "uppercase" in e["properties"]]
    assert entry["properties"]["uppercase"]["properties"]["steps"]["items"] == {"$ref": "#/$defs/step"}


def test_a_step_kind_provided_twice_names_the_plugin() -> None:
    class Again:
        @hookimpl
        def splice_steps(self) -> Sequence[StepSpec]:
            return (StepSpec(UppercaseStep, run_uppercase,
                             StepKind("transform", SCHEMA, build_uppercase)),)

    with pytest.raises(PluginLoadError, match="step 'transform' is provided twice"):
        load_registry([Again()], load_entry_points=False)
