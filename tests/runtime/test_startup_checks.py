"""``settings.startup-checks``: flows that must complete before serve or run starts anything."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

import connectors.http.plugin as http_plugin
import dsl
from runtime.registry import Registry, load_registry
from runtime.server import ServeOptions, serve
from runtime.service import load_project
from runtime.startup import StartupCheckError

pytestmark = pytest.mark.anyio

LISTENER = """
flow: hello
trigger:
  http.listener: { path: /hello, method: GET }
steps:
  - transform: "{ 'hello': 'world' }"
"""

CHECK = """
flow: check-region
steps:
  - transform: >-
      '${region}' in ['eu', 'us'] ? { 'region': '${region}' }
                                  : $error('region is "${region}"; it takes eu or us')
"""


def write(root: Path, region: str, checks: str = "[check-region]") -> Path:
    root.mkdir(exist_ok=True)
    (root / "splice.yaml").write_text(f"settings:\n  store: 'memory://'\n  startup-checks: {checks}\n")
    (root / "config").mkdir(exist_ok=True)
    (root / "config" / "dev.yaml").write_text(f"region: {region}\n")
    (root / "hello.yaml").write_text(LISTENER)
    (root / "check-region.yaml").write_text(CHECK)
    return root


@pytest.fixture
def registry() -> Registry:
    return load_registry([http_plugin], load_entry_points=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_failed_check_stops_serve_before_it_listens(tmp_path: Path, registry: Registry) -> None:
    project, _ = load_project(write(tmp_path / "p", "mars"), registry=registry, environ={})
    port = _free_port()
    with pytest.raises(StartupCheckError) as failed:
        await serve(project, registry, ServeOptions(port=port), anyio.Event())
    assert str(failed.value) == ('STARTUP:CHECK_FAILED: start-up check check-region failed: '
                                 'region is "mars"; it takes eu or us')
    with socket.socket() as again:  # nothing listens: the port is free again
        again.bind(("127.0.0.1", port))


async def test_a_passing_check_lets_serve_start(tmp_path: Path, registry: Registry) -> None:
    project, _ = load_project(write(tmp_path / "p", "eu"), registry=registry, environ={})
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        started = await tg.start(serve, project, registry, ServeOptions(port=0), stop)
        assert started.url.startswith("http://127.0.0.1:")
        stop.set()


def test_a_check_that_is_no_flow_is_a_load_error(tmp_path: Path, registry: Registry) -> None:
    root = write(tmp_path / "p", "eu", checks="[check-regoin]")
    with pytest.raises(dsl.FlowErrors) as failed:
        load_project(root, registry=registry, environ={})
    [error] = failed.value.errors
    text = error.format()
    assert "splice.yaml:3:" in text and "unknown flow 'check-regoin' in settings.startup-checks" in text
    assert "check-region" in text  # did you mean


def test_splice_run_fails_with_the_checks_message(tmp_path: Path) -> None:
    root = write(tmp_path / "p", "mars")
    done = subprocess.run([sys.executable, "-m", "runtime.cli", "run", "hello", "--project", str(root)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert 'start-up check check-region failed: region is "mars"; it takes eu or us' in done.stderr
    assert '"hello"' not in done.stdout
