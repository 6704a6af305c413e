"""When ``splice serve`` runs in sandbox mode, and what the sandboxed connections are given."""

from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest

from runtime import sandbox as sb
from runtime.errors import SpliceError
from runtime.registry import load_registry
from runtime.server import ServeOptions, Serving, serve
from runtime.server.app import create_app
from runtime.service import load_project, open_runtime
from runtime.store import open_store

REAL = {"SALESFORCE_CLIENT_ID": "3MVG9real", "SALESFORCE_CLIENT_SECRET": "real-sf-secret",
        "SALESFORCE_LOGIN_URL": "https://acme.my.salesforce.com",
        "QUICKBOOKS_CLIENT_ID": "ABreal", "QUICKBOOKS_CLIENT_SECRET": "real-qb-secret",
        "QUICKBOOKS_REALM_ID": "4620816365000000"}


def _load(project: Path, environ: dict[str, str] | None = None) -> tuple[object, object]:
    return load_project(project, environ=environ or {}, registry=load_registry())


def test_missing_credentials_choose_sandbox_mode(project: Path) -> None:
    """Without credentials both connections go to emulators; with them in the environment none
    does; --sandbox and --no-sandbox decide alone; a connection with credentials stays real."""
    loaded, registry = _load(project)
    assert sb.sandbox_candidates(loaded, registry, mode=None) == ["quickbooks", "salesforce"]
    assert sb.sandbox_candidates(loaded, registry, mode=False) == []
    real, registry = _load(project, REAL)
    assert sb.sandbox_candidates(real, registry, mode=None) == []
    assert sb.sandbox_candidates(real, registry, mode=True) == ["quickbooks", "salesforce"]
    half = {k: v for k, v in REAL.items() if k.startswith("SALESFORCE")}
    mixed, registry = _load(project, half)
    assert sb.sandbox_candidates(mixed, registry, mode=None) == ["quickbooks"]


def test_sandbox_flag_without_emulated_connections_is_a_clear_error(tmp_path: Path) -> None:
    """--sandbox on a project whose connectors have no emulator says so in one line."""
    (tmp_path / "splice.yaml").write_text("connections:\n  api: { connector: http, "
                                          "base-url: 'http://x' }\n")
    (tmp_path / "a.yaml").write_text("flow: a\nsteps:\n  - log: hi\n")
    loaded, registry = _load(tmp_path)
    with pytest.raises(SpliceError, match="no connection of this project has a connector with an "
                                          "emulator"):
        sb.sandbox_candidates(loaded, registry, mode=True)


def test_prepare_points_connections_at_emulators(project: Path) -> None:
    """Each sandboxed connection gets its own port and demo credentials; QuickBooks webhooks go to
    the webhook trigger's route on serve, signed with the connection's verifier token."""
    loaded, registry = _load(project)
    server = "http://127.0.0.1:18999"
    prepared = sb.prepare(loaded, registry, ["quickbooks", "salesforce"], host="127.0.0.1",
                          server_url=server)
    try:
        by_name = {p.name: p for p in prepared}
        assert len({p.base_url for p in prepared}) == 2
        quickbooks, salesforce = by_name["quickbooks"], by_name["salesforce"]
        assert quickbooks.overrides["base-url"] == quickbooks.base_url
        assert quickbooks.overrides["token-url"] == quickbooks.base_url + "/oauth2/v1/tokens/bearer"
        assert salesforce.overrides["login-url"] == salesforce.base_url
        assert quickbooks.options["webhook_url"] == server + "/webhooks/quickbooks"
        assert (quickbooks.options["webhook_verifier_token"]
                == quickbooks.overrides["webhook-verifier-token"])
        info = sb.describe(prepared, server)
        assert info["emulators"]["salesforce"]["baseUrl"] == salesforce.base_url
        assert info["emulators"]["salesforce"]["settings"]["client-id"] == "splice-sandbox"
        assert info["emulators"]["quickbooks"]["settings"]["realm-id"] == "9130357766900000"
        assert "instance-url" not in info["emulators"]["salesforce"]["settings"]
        assert info["emulators"]["quickbooks"]["webhookUrl"] == server + "/webhooks/quickbooks"
    finally:
        for item in prepared:
            item.sock.close()


async def test_sandboxed_runtime_talks_to_the_emulators(project: Path, tmp_path: Path) -> None:
    """Served emulators plus replaced settings: the connections log in and read the demo data;
    /sandbox answers with the emulators, and stops answering when the emulators stop."""
    loaded, registry = _load(project)
    prepared = sb.prepare(loaded, registry, ["quickbooks", "salesforce"], host="127.0.0.1",
                          server_url="http://127.0.0.1:9")
    store = open_store(f"sqlite:///{tmp_path / 'sandbox.db'}")
    stop = anyio.Event()
    info = sb.describe(prepared, "http://127.0.0.1:9")
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(sb.serve_emulators, prepared, stop)
            try:
                async with open_runtime(loaded, registry, store=store, connection_settings={
                        p.name: p.overrides for p in prepared}) as runtime:
                    status = await runtime.status()
                    client = runtime.engine.connections["quickbooks"]
                    assert status["quickbooks"]["baseUrl"] == info["emulators"]["quickbooks"]["baseUrl"]
                    query = "select * from Invoice where Id = '23'"
                    rows = [r async for r in client.query(query)]
                    assert rows[0]["CustomerRef"]["name"] == "Globex"
                    app = create_app(runtime, sandbox=info)
                    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                 base_url="http://serve") as http:
                        body = (await http.get("/sandbox")).json()
                        assert body["emulators"]["salesforce"]["connector"] == "salesforce"
                        sf = body["emulators"]["salesforce"]
                        async with httpx.AsyncClient() as raw:
                            token = await raw.post(f"{sf['baseUrl']}/services/oauth2/token", data={
                                "grant_type": "client_credentials",
                                "client_id": sf["settings"]["client-id"],
                                "client_secret": sf["settings"]["client-secret"]})
                            assert token.status_code == 200
                    plain = create_app(runtime)
                    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=plain),
                                                 base_url="http://serve") as http:
                        assert (await http.get("/sandbox")).status_code == 404
            finally:
                stop.set()
        async with httpx.AsyncClient() as raw:
            with pytest.raises(httpx.TransportError):
                await raw.get(f"{prepared[0].base_url}/_emulator/state", timeout=2)
    finally:
        await store.aclose()


async def test_serve_in_sandbox_mode_in_process(project: Path, tmp_path: Path) -> None:
    """``serve`` itself, in process: started with the emulators' description and the banner,
    /sandbox answers it, the sandbox store is the given file, and stopping stops the emulators."""
    loaded, registry = _load(project)
    options = ServeOptions(port=0, drain_timeout=5, sandbox_store=tmp_path / "s" / "sandbox.db")
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        started: Serving = await tg.start(serve, loaded, registry, options, stop)
        try:
            assert started.sandbox is not None and started.banner is not None
            emulators = started.sandbox["emulators"]
            assert set(emulators) == {"quickbooks", "salesforce"}
            assert "SANDBOX MODE" in started.banner and started.url in started.banner
            assert emulators["salesforce"]["baseUrl"] in started.banner
            async with httpx.AsyncClient(base_url=started.url, timeout=10) as http:
                assert (await http.get("/sandbox")).json() == started.sandbox
                sf = emulators["salesforce"]["baseUrl"]
                assert (await http.get(f"{sf}/services/data/")).status_code == 200
            assert (tmp_path / "s" / "sandbox.db").exists()
        finally:
            stop.set()
    async with httpx.AsyncClient() as raw:
        with pytest.raises(httpx.TransportError):
            await raw.get(f"{emulators['salesforce']['baseUrl']}/services/data/", timeout=2)
    assert started.runtime.triggers_done.is_set()


pytestmark = pytest.mark.anyio
