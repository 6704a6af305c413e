"""``splice executions``, ``dlq`` and ``status`` go through a running serve's admin API, and read
the store directly when no serve runs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from runtime.cli import main
from runtime.registry import load_registry
from runtime.server import ServeOptions, Serving, serve
from runtime.service import load_project

pytestmark = pytest.mark.anyio

KEY = "cli-admin-key-1234"

FAILING = """\
flow: failing
record-ids: ["#[ 'order-' & $string(vars.trigger.n) ]"]
trigger:
  http.listener: { path: /orders, method: POST }
steps:
  - choice:
      - when: "#[payload.n = 2]"
        steps: [ { transform: '$error("two is not allowed")' } ]
on-error:
  - when: ANY
    then: dead-letter
"""


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    root = tmp_path / "flows"
    root.mkdir()
    (root / "splice.yaml").write_text(
        # jsonata-python: the CLI runs in a worker thread here, and jsonatapy's compiled
        # expressions must be dropped on the thread that made them.
        f"settings:\n  store: 'sqlite:///{tmp_path / 'store.db'}'\n  jsonata-engine: jsonata-python\n"
        f"  server: {{ admin-key: {KEY} }}\n")
    (root / "failing.yaml").write_text(FAILING)
    return root


@asynccontextmanager
async def serving(project_dir: Path) -> AsyncIterator[Serving]:
    registry = load_registry()
    project, _ = load_project(project_dir, registry=registry, environ={})
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        started: Serving = await tg.start(serve, project, registry, ServeOptions(port=0), stop)
        try:
            yield started
        finally:
            stop.set()


async def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``splice ARGS`` in a worker thread (it runs an event loop of its own)."""
    capsys.readouterr()
    code = await anyio.to_thread.run_sync(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def test_the_cli_goes_through_the_running_server(project_dir: Path,
                                                      capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPLICE_ADMIN_KEY", raising=False)
    common = ("--project", str(project_dir))
    async with serving(project_dir) as started:
        url = ("--url", started.url)
        async with httpx.AsyncClient(base_url=started.url) as http:
            assert (await http.post("/orders", json={"n": 1})).status_code == 200
            assert (await http.post("/orders", json={"n": 2})).status_code >= 400
            # The writer flushes within its interval: wait for both records through the API.
            for _ in range(200):
                page = (await http.get("/admin/executions",
                                       headers={"Authorization": f"Bearer {KEY}"})).json()
                if len(page["executions"]) == 2:
                    break
                await anyio.sleep(0.05)
        code, out, _ = await cli(capsys, "executions", "list", *common, *url)
        assert code == 0 and "order-2" in out and "order-1" in out and "dead-lettered" in out
        code, out, _ = await cli(capsys, "executions", "list", "--id", "order-2", *common, *url)
        [line] = out.strip().splitlines()
        execution_id = line.split()[0]
        code, out, _ = await cli(capsys, "executions", "show", execution_id, *common, *url)
        shown = json.loads(out)
        assert shown["error"]["message"].endswith("two is not allowed")
        assert shown["input"] == {"n": 2}

        code, out, _ = await cli(capsys, "dlq", "list", *common, *url)
        assert code == 0 and "TRANSFORM:EVALUATION" in out
        letter_id = out.split()[0]
        code, out, _ = await cli(capsys, "dlq", "show", letter_id, *common, *url)
        assert json.loads(out)["message"]["payload"] == {"n": 2}
        code, out, _ = await cli(capsys, "status", *common, *url)
        status = json.loads(out)
        assert status["server"] == started.url and status["deadLetters"] == 1
        assert status["history"]["executions"] >= 2

        code, out, _ = await cli(capsys, "dlq", "replay", letter_id, *common, *url)
        assert code == 1 and "replay failed again" in out and ", now " in out
        new_letter = out.strip().rsplit(" ", 1)[-1]
        code, out, _ = await cli(capsys, "dlq", "discard", new_letter, "nope", *common, *url)
        assert code == 1 and f"{new_letter}: discarded" in out and "nope: no such dead letter" in out
        code, out, _ = await cli(capsys, "dlq", "list", *common, *url)
        assert "no dead letters" in out

        # A fix on disk after the serve started: the replay runs here, with the fixed flow.
        async with httpx.AsyncClient(base_url=started.url) as http:
            assert (await http.post("/orders", json={"n": 2})).status_code >= 400
        code, out, _ = await cli(capsys, "dlq", "list", *common, *url)
        letter_id = out.split()[0]
        (project_dir / "failing.yaml").write_text(FAILING.replace("payload.n = 2", "payload.n = 3"))
        code, out, err = await cli(capsys, "dlq", "replay", letter_id, *common, *url)
        assert code == 0 and f"{letter_id}: replayed, completed" in out
        assert "changed since the splice serve" in err

        monkeypatch.setenv("SPLICE_ADMIN_KEY", "wrong")
        code, _, err = await cli(capsys, "dlq", "list", *common, *url)
        assert code == 2 and "refuses the admin key" in err and "--direct" in err
        code, out, _ = await cli(capsys, "executions", "list", "--direct", *common, *url)
        assert code == 0 and "order-2" in out  # the store directly, on request
        monkeypatch.delenv("SPLICE_ADMIN_KEY")

    # No server any more: the same commands read the store.
    code, out, _ = await cli(capsys, "executions", "list", "--outcome", "retried", *common, *url)
    assert code == 0 and "order-2" in out
    code, out, _ = await cli(capsys, "dlq", "list", *common, *url)
    assert code == 0 and "no dead letters" in out
    code, out, err = await cli(capsys, "executions", "show", "20260101T000000.000000Z-00000000",
                               *common, *url)
    assert code == 1 and "no execution" in err
    code, out, err = await cli(capsys, "executions", "list", "--since", "soon", *common, *url)
    assert code == 2 and "--since" in err


async def test_run_where_there_is_no_project_the_cli_uses_the_server_it_is_pointed_at(
        project_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``splice executions list --url ...`` from a folder without flows asks that server; from a
    folder with a project of its own, a server of another project is not asked."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("SPLICE_PROJECT", raising=False)
    monkeypatch.setenv("SPLICE_ADMIN_KEY", KEY)
    async with serving(project_dir) as started:
        async with httpx.AsyncClient(base_url=started.url) as http:
            assert (await http.post("/orders", json={"n": 1})).status_code == 200
            for _ in range(200):
                page = (await http.get("/admin/executions",
                                       headers={"Authorization": f"Bearer {KEY}"})).json()
                if page["executions"]:
                    break
                await anyio.sleep(0.05)
        code, out, _ = await cli(capsys, "executions", "list", "--url", started.url)
        assert code == 0 and "order-1" in out
        (elsewhere / "other.yaml").write_text("flow: other\nsteps:\n  - log: x\n")
        code, out, err = await cli(capsys, "executions", "list", "--url", started.url)
        assert code == 0 and "serves another project" in err and "order-1" not in out
