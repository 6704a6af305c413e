"""The console over HTTP (no browser): login, CSRF, filters, 4xx pages, actions, nothing secret shown."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.message import Event
from runtime.redaction import register_secret
from runtime.server.app import create_app
from runtime.server.console import hash_password

pytestmark = pytest.mark.anyio

KEY = "console-admin-key-for-tests"
CANARY = "canary-7f3a9c2e-secret"

FLOWS = {
    "orders.yaml": """
    flow: orders
    record-ids: ["#[vars.trigger.Id]"]
    steps:
      - test.fail: { type: "DEMO:DOWN", times: 1, key: "#[payload.Id]", message: "down" }
    on-error:
      - when: ANY
        then: dead-letter
    """,
    "hello.yaml": """
    flow: hello
    record-ids: ["#[payload.Id]"]
    steps:
      - set-variable: { name: x, value: 1 }
    """,
}


def connections(server: str = f"admin-key: {KEY}") -> str:
    return ("connections:\n  t: { connector: test, token: s3cr3t-token-value }\n"
            + (f"settings:\n  server: {{ {server} }}\n" if server else ""))


@asynccontextmanager
async def console(start: Any, *, server: str = f"admin-key: {KEY}", sandbox: bool = False,
                  client: str = "127.0.0.1", files: dict[str, str] | None = None,
                  ) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with start({**FLOWS, **(files or {})}, connections=connections(server)) as h:
        app = create_app(h.runtime, sandbox={"emulators": {}} if sandbox else None)
        transport = httpx.ASGITransport(app=app, client=(client, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
            yield h, http


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


async def log_in(http: httpx.AsyncClient, user: str = "admin", password: str = KEY) -> httpx.Response:
    form = await http.get("/console/login")
    return await http.post("/console/login", data={"csrf": csrf_of(form), "user": user,
                                                   "password": password, "next": "/console"})


async def fill(h: Any) -> None:
    """Two completed hello runs and one dead-lettered order (its letter replays fine)."""
    for n in range(2):
        await h.runtime.engine.run("hello", Event(payload={"Id": f"H{n}"}))
    await h.runtime.engine.run("orders", Event(payload={"Id": "O1"}))
    await h.runtime.engine.history.flush()


async def test_pages_need_a_login_and_a_wrong_password_is_a_401_page(start: Any) -> None:
    async with console(start) as (_, http):
        anonymous = await http.get("/console/executions")
        wrong = await log_in(http, password="not-the-key")
        unknown_user = await log_in(http, user="mallory", password=KEY)
        still_out = await http.get("/console")
        right = await log_in(http)
        inside = await http.get("/console")
        login_again = await http.get("/console/login")
        out = await http.post("/console/logout", data={"csrf": csrf_of(inside)})
        after_logout = await http.get("/console")
    assert anonymous.status_code == 401 and 'type="password"' in anonymous.text
    assert anonymous.headers["content-type"].startswith("text/html")
    assert 'name="next" value="/console/executions"' in anonymous.text
    assert wrong.status_code == unknown_user.status_code == 401
    assert "Wrong user name or password" in wrong.text
    assert still_out.status_code == 401
    assert right.status_code == 303 and right.headers["location"] == "/console"
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert KEY not in cookie
    assert inside.status_code == 200 and "<h1>Overview</h1>" in inside.text
    assert login_again.status_code == 303
    assert out.status_code == 303 and after_logout.status_code == 401


async def test_configured_users_log_in_with_their_password(start: Any) -> None:
    users = f"console-users: {{ ops: '{hash_password('correct horse')}' }}"
    async with console(start, server=users) as (_, http):
        wrong = await log_in(http, user="ops", password="wrong horse")
        admin = await log_in(http, user="admin", password="anything")
        right = await log_in(http, user="ops", password="correct horse")
        page = await http.get("/console/executions")
    assert wrong.status_code == admin.status_code == 401
    assert right.status_code == 303 and page.status_code == 200 and ">ops<" in page.text


async def test_a_forged_or_foreign_cookie_is_no_session(start: Any) -> None:
    async with console(start) as (_, http):
        await log_in(http)
        good = http.cookies["splice_console"]
        payload, signature = good.rsplit(".", 1)
        http.cookies.clear()
        http.cookies.set("splice_console", payload + "." + signature[::-1], path="/console")
        forged = await http.get("/console")
    async with console(start) as (_, other):
        other.cookies.set("splice_console", good, path="/console")  # another process's secret
        foreign = await other.get("/console")
    assert forged.status_code == foreign.status_code == 401


async def test_posts_without_the_sessions_csrf_token_are_refused(start: Any) -> None:
    async with console(start) as (h, http):
        await fill(h)
        no_token_login = await http.post("/console/login", data={"user": "admin", "password": KEY})
        await log_in(http)
        letters = await http.get("/console/dead-letters")
        letter_id = re.search(r'name="ids" value="([^"]+)"', letters.text)
        assert letter_id is not None
        missing = await http.post("/console/dead-letters/action",
                                  data={"action": "discard", "ids": letter_id.group(1)})
        wrong = await http.post("/console/dead-letters/action",
                                data={"action": "discard", "ids": letter_id.group(1), "csrf": "0" * 64})
        as_get = await http.get("/console/dead-letters/action",
                                params={"action": "discard", "ids": letter_id.group(1)})
        logout = await http.post("/console/logout", data={})
        still = await http.get("/console/dead-letters")
    assert no_token_login.status_code == 403
    assert missing.status_code == wrong.status_code == 403 and "CSRF" in missing.text
    assert as_get.status_code == 405  # GETs change nothing
    assert logout.status_code == 403
    assert letter_id.group(1) in still.text  # nothing was discarded


async def test_replay_and_discard_show_one_outcome_per_letter(start: Any) -> None:
    async with console(start) as (h, http):
        await h.runtime.engine.run("orders", Event(payload={"Id": "O1"}))
        await h.runtime.engine.run("orders", Event(payload={"Id": "O2"}))
        await h.runtime.engine.history.flush()
        await log_in(http)
        page = await http.get("/console/dead-letters")
        ids = re.findall(r'name="ids" value="([^"]+)"', page.text)
        replayed = await http.post("/console/dead-letters/action",
                                   data={"csrf": csrf_of(page), "action": "replay", "ids": ids[0]})
        discarded = await http.post("/console/dead-letters/action",
                                    data={"csrf": csrf_of(page), "action": "discard",
                                          "ids": [ids[1], "20260101T000000.000000Z-00000000"]})
        nothing = await http.post("/console/dead-letters/action",
                                  data={"csrf": csrf_of(page), "action": "replay"})
        bad_action = await http.post("/console/dead-letters/action",
                                     data={"csrf": csrf_of(page), "action": "burn", "ids": ids[0]})
        await h.runtime.engine.history.flush()
        after = await http.get("/console/dead-letters")
        done = await http.get("/console/executions", params={"outcome": "completed"})
    assert len(ids) == 2
    assert replayed.status_code == 200 and "state-completed" in replayed.text
    assert discarded.status_code == 200
    assert discarded.text.count("state-discarded") == 1 and "state-not-found" in discarded.text
    assert nothing.status_code == bad_action.status_code == 400
    assert "No dead letters" in after.text
    assert "O1" in done.text and "O2" not in done.text


async def test_filters_page_and_reject_bad_values_with_a_400_page(start: Any) -> None:
    async with console(start) as (h, http):
        await fill(h)
        await log_in(http)
        by_flow = await http.get("/console/executions", params={"flow": "hello", "outcome": ""})
        by_outcome = await http.get("/console/executions", params={"outcome": "dead-lettered"})
        by_id = await http.get("/console/executions", params={"id": "H1"})
        future = await http.get("/console/executions", params={"since": "2999-01-01"})
        bad = [await http.get("/console/executions", params=query)
               for query in ({"outcome": "exploded"}, {"since": "yesterday"}, {"colour": "red"},
                             {"after": "nope"})]
        bad_letters = await http.get("/console/dead-letters", params={"colour": "red"})
    rows = lambda page: re.findall(r'<tr class="outcome-([a-z-]+)">', page.text)  # noqa: E731
    assert rows(by_flow) == ["completed", "completed"] and "O1" not in by_flow.text
    assert rows(by_outcome) == ["dead-lettered"] and "DEMO:DOWN" in by_outcome.text
    assert rows(by_id) == ["completed"] and ">H1<" in by_id.text
    assert rows(future) == [] and "No execution matches" in future.text
    for page in [*bad, bad_letters]:
        assert page.status_code == 400, page.text
        assert page.headers["content-type"].startswith("text/html") and "Traceback" not in page.text
    assert "exploded" in bad[0].text and "ISO 8601" in bad[1].text


async def test_unknown_things_are_404_pages(start: Any) -> None:
    async with console(start) as (_, http):
        await log_in(http)
        answers = [await http.get(path) for path in (
            "/console/executions/20260101T000000.000000Z-00000000", "/console/executions/<script>",
            "/console/dead-letters/nope", "/console/reconciliation/..%2F..%2Fetc%2Fpasswd",
            "/console/reconciliation/reconciliation-none", "/console/nothing-here")]
        wrong_method = await http.delete("/console/executions")
    for answer in answers:
        assert answer.status_code == 404, answer.text
        assert "<script>" not in answer.text and "Traceback" not in answer.text
    assert wrong_method.status_code == 405


async def test_nothing_secret_is_rendered(start: Any) -> None:
    async with console(start) as (h, http):
        register_secret(CANARY)
        payload = {"Id": "O9", "note": f"token {CANARY}", "password": "pw-in-the-payload"}
        await h.runtime.engine.run("orders", Event(payload=payload))
        await h.runtime.engine.history.flush()
        await log_in(http)
        pages = [await http.get("/console"), await http.get("/console/executions")]
        execution = re.search(r'href="/console/executions/([^"]+)"', pages[1].text)
        assert execution is not None
        detail = await http.get(f"/console/executions/{execution.group(1)}")
        letters = await http.get("/console/dead-letters")
        letter = re.search(r'href="/console/dead-letters/([^"]+)"', detail.text)
        assert letter is not None
        pages += [detail, letters, await http.get(f"/console/dead-letters/{letter.group(1)}"),
                  await http.get("/console/reconciliation")]
        stored = await h.runtime.engine.dead_letters.get(letter.group(1))
    assert stored is not None and stored.message["payload"]["password"] == "pw-in-the-payload"
    assert "O9" in detail.text and "O9" in pages[-2].text  # the data is shown, masked
    for page in pages:
        assert page.status_code == 200, page.text
        for secret in (CANARY, "pw-in-the-payload", KEY, "s3cr3t-token-value"):
            assert secret not in page.text, (page.url, secret)


async def test_a_local_sandbox_without_a_key_is_open_and_says_so(start: Any) -> None:
    async with console(start, server="", sandbox=True) as (_, http):
        local = await http.get("/console")
    async with console(start, server="", sandbox=True, client="10.1.2.3") as (_, http):
        remote = await http.get("/console")
        attempt = await log_in(http, password="")
    async with console(start, server="", sandbox=False) as (_, http):
        closed = await http.get("/console")
    assert local.status_code == 200 and "Open console" in local.text and "SPLICE_ADMIN_KEY" in local.text
    assert remote.status_code == attempt.status_code == 401
    assert closed.status_code == 401 and "Console closed" in closed.text


async def test_the_overview_counts_per_flow_and_shows_the_last_error(start: Any) -> None:
    async with console(start) as (h, http):
        await fill(h)
        await log_in(http)
        page = await http.get("/console")
    flows = page.text[page.text.index('id="flows"'):page.text.index('id="triggers"') if 'id="triggers"'
                      in page.text else None]
    orders = flows[flows.index(">orders<"):]
    cells = re.findall(r'<td class="num[^"]*">([^<]*)</td>', orders)[:4]
    assert cells == ["1", "1", "1", "1"]  # last hour, failed, last day, failed
    assert "DEMO:DOWN" in orders.split("</tr>")[0]
    assert 'id="dead-letter-count">1<' in page.text


async def test_the_reconciliation_page_lists_reports_and_their_findings(start: Any,
                                                                        tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    run_flow = {"nightly-reconciliation.yaml": """
    flow: nightly-reconciliation
    steps:
      - set-variable: { name: at, value: "#[$now()]" }
      - transform: "{'startedAt': $vars.at}"
    """, "config/dev.yaml": f"reconciliation:\n  report-dir: {reports}\n"}
    async with console(start, files=run_flow) as (h, http):
        outcome = await h.runtime.engine.run("nightly-reconciliation", Event(payload={}))
        await h.runtime.engine.history.flush()
        name = "reconciliation-2026-11-30-to-2026-12-01"
        summary = {"period": {"from": "2026-11-30", "to": "2026-12-01"}, "repair": True,
                   "startedAt": outcome.message.payload["startedAt"], "checked": 12, "missing": 1,
                   "repairs": {"attempted": 2, "done": 1, "failed": 1}}
        (reports / f"{name}.json").write_text(json.dumps(summary))
        findings = [{"category": "missing", "opportunityId": "006A", "repair": "invoice",
                     "repairResult": "done"},
                    {"category": "status-mismatch", "opportunityId": "006B", "invoiceId": "145",
                     "invoiceNumber": "SF-006B", "repair": "status", "repairResult": "failed",
                     "repairError": "QUICKBOOKS:THROTTLED"}]
        (reports / f"{name}.jsonl").write_text("".join(json.dumps(f) + "\n" for f in findings))
        await log_in(http)
        listing = await http.get("/console/reconciliation")
        report = await http.get(f"/console/reconciliation/{name}")
    assert listing.status_code == report.status_code == 200
    assert f'href="/console/reconciliation/{name}"' in listing.text and ">12<" in listing.text
    run = re.search(r'href="/console/executions/([^"]+)">completed<', listing.text)
    assert run is not None
    assert 'href="/console/executions?id=006A"' in report.text
    assert 'href="/console/executions?id=145"' in report.text
    assert f'href="/console/executions/{run.group(1)}">the run<' in report.text
    assert 'href="/console/dead-letters?flow=repair-payment-status"' in report.text


def test_the_templates_and_styles_are_package_data() -> None:
    """A non-editable install has every file the console reads: pyproject declares them."""
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[2]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = declared["runtime.server.console"]
    package = root / "runtime" / "server" / "console"
    files = [p.relative_to(package).as_posix() for p in package.rglob("*")
             if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert {"templates/overview.html", "static/console.css"} <= set(files)
    assert all(any(fnmatch.fnmatch(f, pattern) for pattern in patterns) for f in files), files


def test_connection_states_read_as_times_and_budgets() -> None:
    """Token expiries (epoch seconds) show as UTC times with how far off; budgets as pairs."""
    import time

    from runtime.server.console.handler import _status_value

    soon = _status_value(time.time() + 5 * 3600, "refreshTokenExpiresAt")
    assert soon.endswith("(in 5.0 h)") and soon[:4].isdigit()
    assert _status_value(time.time() - 600, "accessTokenExpiresAt").endswith("(10 min ago)")
    assert _status_value({"used": 59, "max": 15000}, "api_usage") == "used 59, max 15000"
    assert _status_value(90, "requestsLastMinute") == "90"


async def test_an_open_sandbox_session_is_no_login_anywhere_else(start: Any) -> None:
    """The 'local' session of an open sandbox console passes neither from another machine nor on a
    console that needs a login (even one signing with the same console-secret)."""
    secret = "console-secret: same-secret-for-both"
    async with console(start, server=secret, sandbox=True) as (_, http):
        assert (await http.get("/console")).status_code == 200
        local = http.cookies["splice_console"]
    async with console(start, server=secret, sandbox=True, client="10.1.2.3") as (_, http):
        http.cookies.set("splice_console", local, path="/console")
        remote = await http.get("/console")
    async with console(start, server=f"{secret}, admin-key: {KEY}") as (_, http):
        http.cookies.set("splice_console", local, path="/console")
        keyed = await http.get("/console")
    assert remote.status_code == keyed.status_code == 401


async def test_a_console_user_may_not_be_called_local(start: Any) -> None:
    from runtime.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="'local' is reserved"):
        async with console(start, server=f"console-users: {{ local: '{hash_password('x')}' }}"):
            pass


async def test_the_overview_shows_the_alerts_firing_in_the_store(start: Any) -> None:
    from runtime.alerts import ALERTS_NAMESPACE

    async with console(start) as (h, http):
        store = h.runtime.store
        await store.put(ALERTS_NAMESPACE, "invoice-dead-letters:orders",
                        {"state": "firing", "since": 1_790_000_000.0, "summary": "2 dead letters of orders"})
        await store.put(ALERTS_NAMESPACE, "slow-trigger:hello",
                        {"state": "ok", "since": 1_790_000_000.0, "summary": "resolved long ago"})
        await log_in(http)
        page = await http.get("/console")
    alerts = page.text[page.text.index('id="alerts"'):]
    assert "invoice-dead-letters" in alerts and "2 dead letters of orders" in alerts
    assert "slow-trigger" not in page.text and "2026-09-21T" in alerts
