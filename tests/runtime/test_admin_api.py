"""The admin API: authenticated JSON over executions, dead letters and status; 4xx JSON on bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from runtime.message import Event
from runtime.server.admin import describe_access, with_admin_line
from runtime.server.app import create_app

pytestmark = pytest.mark.anyio

KEY = "adm1n-key-for-tests"

FLOWS = {
    "orders.yaml": """
    flow: orders
    record-ids: ["#[payload.Id]"]
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


def connections(server: str = "") -> str:
    return ("connections:\n  t: { connector: test, token: s3cr3t-token-value }\n"
            + (f"settings:\n  server: {{ {server} }}\n" if server else ""))


@asynccontextmanager
async def admin(start: Any, *, server: str = f"admin-key: {KEY}", sandbox: bool = False,
                client: str = "127.0.0.1") -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with start(FLOWS, connections=connections(server)) as h:
        app = create_app(h.runtime, sandbox={"emulators": {}} if sandbox else None)
        transport = httpx.ASGITransport(app=app, client=(client, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as http:
            yield h, http


AUTH = {"Authorization": f"Bearer {KEY}"}


async def test_the_key_is_required_and_checked(start: Any) -> None:
    async with admin(start) as (_, http):
        missing = await http.get("/admin/status")
        wrong = await http.get("/admin/status", headers={"Authorization": "Bearer nope"})
        bearer = await http.get("/admin/status", headers=AUTH)
        header = await http.get("/admin/status", headers={"X-Admin-Key": KEY})
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"]["type"] == "ADMIN:UNAUTHORIZED"
    assert bearer.status_code == header.status_code == 200
    assert sorted(bearer.json()["flows"]) == ["hello", "orders"]


async def test_without_a_key_only_a_local_sandbox_is_open(start: Any) -> None:
    async with admin(start, server="", sandbox=False) as (_, http):
        closed = await http.get("/admin/status")
    assert closed.status_code == 401 and "SPLICE_ADMIN_KEY" in closed.json()["error"]["message"]
    async with admin(start, server="", sandbox=True) as (_, http):
        assert (await http.get("/admin/status")).status_code == 200
    async with admin(start, server="", sandbox=True, client="10.1.2.3") as (_, http):
        assert (await http.get("/admin/status")).status_code == 401
    assert describe_access(None, sandbox=True, host="127.0.0.1").startswith("open to local clients")
    assert describe_access(None, sandbox=True, host="0.0.0.0").startswith("closed")
    assert describe_access("k", sandbox=True, host="127.0.0.1").startswith("admin key required")
    banner = with_admin_line("\n====\n  a\n====\n", "http://h:1", "open")
    assert banner.splitlines()[-2] == "  admin API  http://h:1/admin/status: open"


async def test_executions_are_listed_filtered_paged_and_shown(start: Any) -> None:
    async with admin(start) as (h, http):
        for n in range(5):
            await h.runtime.engine.run("hello", Event(payload={"Id": f"H{n}"}))
        await h.runtime.engine.run("orders", Event(payload={"Id": "O1"}))
        await h.runtime.engine.history.flush()
        everything = (await http.get("/admin/executions", headers=AUTH)).json()
        hello = (await http.get("/admin/executions", params={"flow": "hello", "limit": "2"},
                                headers=AUTH)).json()
        page2 = (await http.get("/admin/executions", params={"flow": "hello", "limit": "2",
                                                             "after": hello["next"]}, headers=AUTH)).json()
        by_id = (await http.get("/admin/executions", params={"id": "H3"}, headers=AUTH)).json()
        failed = (await http.get("/admin/executions", params={"outcome": "dead-lettered"},
                                 headers=AUTH)).json()
        future = (await http.get("/admin/executions", params={"since": "2999-01-01"},
                                 headers=AUTH)).json()
        one = await http.get(f"/admin/executions/{failed['executions'][0]['id']}", headers=AUTH)
        unknown = await http.get("/admin/executions/20260101T000000.000000Z-00000000", headers=AUTH)
    assert [e["recordIds"] for e in everything["executions"]] == [["O1"], ["H4"], ["H3"], ["H2"],
                                                                   ["H1"], ["H0"]]
    assert everything["next"] is None and "steps" not in everything["executions"][0]
    assert [e["recordIds"][0] for e in hello["executions"] + page2["executions"]] == ["H4", "H3", "H2", "H1"]
    assert [e["recordIds"] for e in by_id["executions"]] == [["H3"]]
    assert [e["flow"] for e in failed["executions"]] == ["orders"]
    assert future["executions"] == []
    assert one.status_code == 200
    assert one.json()["error"]["type"] == "DEMO:DOWN" and one.json()["input"] == {"Id": "O1"}
    assert one.json()["steps"][0]["outcome"] == "failed"
    assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "ADMIN:NOT_FOUND"


@pytest.mark.parametrize("query", [{"outcome": "exploded"}, {"limit": "0"}, {"limit": "x"},
                                   {"since": "yesterday"}, {"colour": "red"}, {"after": "nope"}])
async def test_bad_queries_get_400_json(start: Any, query: dict[str, str]) -> None:
    async with admin(start) as (_, http):
        answer = await http.get("/admin/executions", params=query, headers=AUTH)
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "ADMIN:BAD_REQUEST"


async def test_unknown_paths_methods_and_bodies_get_4xx_json(start: Any) -> None:
    async with admin(start) as (_, http):
        answers = [
            (await http.get("/admin/nothing", headers=AUTH), 404),
            (await http.post("/admin/executions", headers=AUTH), 405),
            (await http.get("/admin/dead-letters/replay", headers=AUTH), 405),
            (await http.post("/admin/dead-letters/replay", content=b"{not json", headers=AUTH), 400),
            (await http.post("/admin/dead-letters/replay", json=[1], headers=AUTH), 400),
            (await http.post("/admin/dead-letters/discard", json={"ids": []}, headers=AUTH), 400),
            (await http.post("/admin/dead-letters/discard", json={"all": True}, headers=AUTH), 400),
            (await http.get("/admin/dead-letters/missing", headers=AUTH), 404),
        ]
    for answer, status in answers:
        assert answer.status_code == status, answer.text
        assert answer.json()["error"]["type"].startswith("ADMIN:")


async def test_dead_letters_are_listed_shown_replayed_and_discarded(start: Any) -> None:
    async with admin(start) as (h, http):
        kept = [(await h.runtime.engine.run("orders", Event(payload={"Id": f"O{n}"}))).dead_letter_id
                for n in range(3)]
        listed = (await http.get("/admin/dead-letters", headers=AUTH)).json()
        shown = (await http.get(f"/admin/dead-letters/{kept[0]}", headers=AUTH)).json()
        replayed = (await http.post("/admin/dead-letters/replay",
                                    json={"ids": [kept[0], kept[1], "missing"]}, headers=AUTH)).json()
        discarded = (await http.post("/admin/dead-letters/discard", json={"ids": [kept[2], kept[0]]},
                                     headers=AUTH)).json()
        status = (await http.get("/admin/status", headers=AUTH)).json()
        await h.runtime.engine.history.flush()
        retried = (await http.get("/admin/executions", params={"outcome": "retried"},
                                  headers=AUTH)).json()
    assert [letter["id"] for letter in listed["deadLetters"]] == kept
    assert shown["flow"] == "orders" and shown["error"]["type"] == "DEMO:DOWN"
    assert replayed["results"] == [
        {"id": kept[0], "flow": "orders", "outcome": "completed"},
        {"id": kept[1], "flow": "orders", "outcome": "completed"},
        {"id": "missing", "outcome": "not-found"}]
    assert discarded["results"] == [{"id": kept[2], "outcome": "discarded"},
                                    {"id": kept[0], "outcome": "not-found"}]
    assert status["deadLetters"] == {"total": 0, "byFlow": {}}
    assert sorted(e["recordIds"][0] for e in retried["executions"]) == ["O0", "O1"]


def test_the_project_fingerprint_follows_the_project_files_only(tmp_path: Any) -> None:
    from runtime.admin_access import project_fingerprint

    (tmp_path / "a.yaml").write_text("flow: a\n")
    (tmp_path / ".splice").mkdir()
    first = project_fingerprint(tmp_path)
    (tmp_path / ".splice" / "store.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("not part of the project")
    assert project_fingerprint(tmp_path) == first
    (tmp_path / "a.yaml").write_text("flow: a\ndescription: fixed\n")
    assert project_fingerprint(tmp_path) != first
