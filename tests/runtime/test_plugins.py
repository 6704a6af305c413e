"""Plugins: a separately installed connector package extends the flow language."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runtime.hookspecs import hookimpl
from runtime.plugins import PluginLoadError
from runtime.registry import load_registry

FIXTURE = Path(__file__).parents[1] / "fixtures" / "splice-greeter"

FLOW = """\
flow: greet
steps:
  - greeter.hello: { name: "#[payload.name]", polite: true }
  - transform: '{"text": $shout(greeting), "flow": flow}'
"""


@pytest.fixture(scope="module")
def greeter_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The greeter package installed with pip into a directory of its own."""
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / "splice-greeter"
    shutil.copytree(FIXTURE, source)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return target


def splice(args: list[str], site: Path, cwd: Path, stdin: str | None = None
           ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], cwd=cwd, env=env,
                          input=stdin, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_installed_plugin_operation_runs_in_a_flow(greeter_site: Path, tmp_path: Path) -> None:
    (tmp_path / "greet.yaml").write_text(FLOW)
    validated = splice(["validate", str(tmp_path)], greeter_site, tmp_path)
    ran = splice(["run", "greet", "--project", str(tmp_path), "--input", "-"], greeter_site,
                 tmp_path, stdin=json.dumps({"name": "Ada"}))
    docs = splice(["docs", "-o", "-"], greeter_site, tmp_path)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"text": "GOOD DAY, ADA!!", "flow": "greet"}
    assert "greeter.hello" in docs.stdout
    assert "splice-greeter" in docs.stdout


@pytest.mark.slow
def test_without_the_plugin_the_step_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "greet.yaml").write_text(FLOW)
    result = subprocess.run([sys.executable, "-m", "runtime.cli", "validate", str(tmp_path)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 1
    assert "greet.yaml:3:5: unknown step 'greeter.hello'" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


class Twin:
    """A plugin claiming a connector name that is already taken."""

    def __init__(self, label: str) -> None:
        self.label = label

    @hookimpl
    def splice_connectors(self) -> list[Any]:
        from runtime.spec import Connector

        return [Connector(name="twin", summary=self.label)]


def test_two_plugins_claiming_one_name_are_both_named() -> None:
    with pytest.raises(PluginLoadError, match="connector 'twin' is provided twice"):
        load_registry([Twin("a"), Twin("b")], load_entry_points=False)


class Misspelt:
    @hookimpl
    def splice_conectors(self) -> list[Any]:
        return []


def test_misspelt_hook_fails_at_start_up() -> None:
    with pytest.raises(PluginLoadError, match="splice_conectors"):
        load_registry([Misspelt()], load_entry_points=False)


def test_builtin_connectors_come_through_the_entry_point_group() -> None:
    registry = load_registry()
    assert registry.origins["http"].startswith("distribution 'splice'")
    assert "http.request" in registry.operations
    assert "http.listener" in registry.sources


def test_the_language_and_its_triggers_come_from_plugins() -> None:
    """The runtime's own plugin registers the step kinds and ``schedule``; the http connector
    declares ``http.listener`` with its rules; nothing else names them."""
    import dsl
    from runtime.scheduler import SCHEDULE, schedule_lock

    registry = load_registry()
    assert list(registry.step_kind_names()) == ["transform", "set-variable", "log", "flow-ref",
                                                "choice", "foreach", "dry-run"]
    assert registry.origins["http"].startswith("distribution 'splice'")
    assert registry.sources["schedule"] is SCHEDULE
    assert SCHEDULE.run_lock is schedule_lock and registry.sources["http.listener"].run_lock is None

    def trigger(text: str) -> Any:
        flow = dsl.load_flow_text(f"flow: a\ntrigger:\n  {text}\nsteps:\n  - log: x\n", file="f.yaml",
                                  vocabulary=registry, environ={})
        return dict(flow.trigger.params) if flow.trigger is not None else None

    assert trigger("http.listener: { path: /orders }") == {"path": "/orders", "method": "POST"}
    assert trigger("schedule: { every: 5m }") == {"every": 300.0}
    for text, problem in [
            ("http.listener: { path: orders }",
             "f.yaml:3:26: invalid value 'orders' for 'path', expected a URL path starting with '/'"),
            ('schedule: { every: 5m, cron: "* * * * *" }',
             "f.yaml:3:3: a schedule needs exactly one of 'every' and 'cron', expected 'every: 5m' or "
             "'cron: \"0 2 * * *\"'"),
            ("schedule: { every: -5 }",
             "f.yaml:3:22: negative duration: -5, expected a duration such as 30s, 5m, 1h"),
            ("schedul: { every: 5m }",
             "f.yaml:3:3: unknown trigger 'schedul', expected one of the known triggers "
             "(did you mean 'schedule'?)")]:
        with pytest.raises(dsl.FlowErrors) as info:
            trigger(text)
        assert str(info.value) == problem
