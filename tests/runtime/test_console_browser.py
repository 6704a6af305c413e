"""The console in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

A real ``splice serve`` (uvicorn on a free port) runs a listener flow whose step fails while a
switch is on, so an order is dead-lettered. The browser logs in with the admin key, sees the failed
execution, opens it and its dead letter, replays the letter once the switch is off, sees the replay
complete, and discards a second letter from the list. A screenshot of every page is written to
``test-artifacts/console/`` (or ``$SPLICE_TEST_ARTIFACTS/console``), and the folder is printed.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import connectors.http.plugin as http_plugin
from runtime.context import OperationContext
from runtime.errors import SpliceError
from runtime.hookspecs import hookimpl
from runtime.registry import Registry, load_registry
from runtime.server import ServeOptions, Serving, serve
from runtime.service import load_project
from runtime.spec import Connector, OperationSpec

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
KEY = "browser-test-admin-key"
ROOT = Path(__file__).resolve().parents[2]

ORDERS = """
flow: orders
description: Take an order; the warehouse step fails while the switch is on.
record-ids: ["#[vars.trigger.Id]"]
trigger:
  http.listener: { path: /orders, method: POST }
steps:
  - warehouse.reserve: {}
on-error:
  - when: ANY
    then: dead-letter
"""


@dataclass
class Switch:
    """``warehouse.reserve``: fails with WAREHOUSE:DOWN while :attr:`broken` is set."""

    broken: bool = True

    @hookimpl
    def splice_connectors(self) -> list[Connector]:
        async def reserve(ctx: OperationContext, params: dict[str, Any]) -> Any:
            if self.broken:
                raise SpliceError("the warehouse is down", error_type="WAREHOUSE:DOWN")
            return {"reserved": True}

        return [Connector(name="warehouse", operations=(
            OperationSpec("reserve", reserve, needs_connection=False),))]


def artifacts() -> Path:
    base = Path(os.environ.get("SPLICE_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    folder = base / "console"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


@asynccontextmanager
async def serving(tmp_path: Path, registry: Registry) -> AsyncIterator[Serving]:
    root = tmp_path / "project"
    root.mkdir()
    (root / "splice.yaml").write_text(
        f"settings:\n  store: 'memory://'\n  server: {{ admin-key: {KEY} }}\n")
    (root / "orders.yaml").write_text(ORDERS)
    project, _ = load_project(root, registry=registry, environ={})
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        started: Serving = await tg.start(serve, project, registry,
                                          ServeOptions(port=0, sandbox=False, drain_timeout=5), stop)
        try:
            yield started
        finally:
            stop.set()


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; the test is skipped, saying why, only when it is not installed."""
    if not CHROMIUM.exists():
        reason = (f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium; "
                  ".ci/run does) to run the console's browser test")
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
def shots() -> Path:
    """The folder the screenshots go to, emptied of an earlier run's."""
    return artifacts()


async def test_log_in_see_the_failure_replay_it_and_see_it_succeed(tmp_path: Path, chromium: Path,
                                                                   shots: Path) -> None:
    from playwright.async_api import Page, async_playwright

    print(f"console screenshots: {shots}")
    switch = Switch()
    registry = load_registry([http_plugin, switch], load_entry_points=False)
    count = 0

    async def shot(page: Page, name: str) -> None:
        nonlocal count
        count += 1
        await page.screenshot(path=str(shots / f"{count:02d}-{name}.png"), full_page=True)

    async with serving(tmp_path, registry) as started, httpx.AsyncClient() as http:
        for order in ("A-100", "A-101"):
            await http.post(f"{started.url}/orders", json={"Id": order})
        await started.runtime.engine.history.flush()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(chromium), headless=True,
                                               args=["--no-sandbox", "--disable-dev-shm-usage"])
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 800})
                page.set_default_timeout(15_000)

                # Not logged in: the login form, then the overview.
                await page.goto(f"{started.url}/console")
                assert await page.title() == "Log in · Splice"
                await shot(page, "login")
                await page.fill("input[name=password]", "wrong")
                await page.click("button[type=submit]")
                assert "Wrong user name or password" in await page.inner_text("main")
                await page.fill("input[name=password]", KEY)
                await page.click("button[type=submit]")
                await page.wait_for_selector("h1:text('Overview')")
                assert await page.inner_text("#dead-letter-count") == "2"
                assert "WAREHOUSE:DOWN" in await page.inner_text("#flows")
                await shot(page, "overview")

                # The failed executions, one of them opened.
                await page.click("nav >> text=Executions")
                await page.wait_for_selector("#executions")
                await page.select_option("select[name=outcome]", "dead-lettered")
                await page.fill("input[name=id]", "A-100")
                await page.click("form.filters button[type=submit]")
                await page.wait_for_url("**/console/executions?*id=A-100*")
                rows = page.locator("#executions tbody tr")
                assert await rows.count() == 1
                assert "dead-lettered" in await rows.first.inner_text()
                await shot(page, "executions-failed")
                await rows.first.locator("a").first.click()
                await page.wait_for_selector("#outcome")
                assert await page.inner_text("#outcome") == "dead-lettered"
                assert "the warehouse is down" in await page.inner_text("main")
                assert '"A-100"' in await page.inner_text("main")
                await shot(page, "execution")

                # Its dead letter, replayed once the warehouse is back.
                await page.click("#dead-letter-link")
                await page.wait_for_selector("h1:text('Dead letter of orders')")
                await shot(page, "dead-letter")
                switch.broken = False
                await page.click("#replay")
                await page.wait_for_selector("#results")
                assert "completed" in await page.inner_text("#results")
                await shot(page, "replay-result")

                # The replay's execution is in the history (written in the background: poll).
                deadline = time.monotonic() + 10
                while True:
                    await page.goto(f"{started.url}/console/executions?outcome=completed&id=A-100")
                    if await page.locator("#executions tbody tr").count() == 1:
                        break
                    assert time.monotonic() < deadline, "the replay's execution never showed"
                    await anyio.sleep(0.2)
                await shot(page, "executions-after-replay")
                await page.goto(f"{started.url}/console/executions?id=A-100")
                assert "retried" in await page.inner_text("#executions")

                # The other letter, discarded from the list with its checkbox.
                await page.click("nav >> text=Dead letters")
                await page.wait_for_selector("#dead-letters")
                assert await page.locator("#dead-letters tbody tr").count() == 1
                await shot(page, "dead-letters")
                await page.check("#dead-letters input[type=checkbox]")
                await page.click("#discard")
                await page.wait_for_selector("#results")
                assert "discarded" in await page.inner_text("#results")
                await shot(page, "discard-result")

                await page.click("nav >> text=Overview")
                await page.wait_for_selector("#dead-letter-count")
                assert await page.inner_text("#dead-letter-count") == "0"
                await page.click("nav >> text=Reconciliation")
                await page.wait_for_selector("h1:text('Reconciliation')")
                await shot(page, "reconciliation")
            finally:
                await browser.close()
    written = sorted([p.name async for p in anyio.Path(shots).glob("*.png")])
    print("\n".join(f"  {shots / name}" for name in written))
    assert len(written) == count == 10
