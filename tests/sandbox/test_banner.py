"""The sandbox banner of the shipped project: 100 columns, the actions, and the API to call."""

from __future__ import annotations

from pathlib import Path

from runtime import sandbox as sb
from runtime.registry import load_registry
from runtime.server.admin import describe_access, with_admin_line
from runtime.server.serving import api_key_guard
from runtime.service import load_project

SHIPPED = Path(__file__).resolve().parents[2] / "flows" / "salesforce-quickbooks"
SERVER = "http://127.0.0.1:8080"


def test_banner_fits_100_columns_and_shows_how_to_call_customer_360() -> None:
    registry = load_registry()
    project, _ = load_project(SHIPPED, environ={}, registry=registry)
    prepared = sb.prepare(project, registry, ["quickbooks", "salesforce"], host="127.0.0.1",
                          server_url=SERVER)
    try:
        banner = sb.render_banner(project, prepared, SERVER, "sqlite:///.splice/sandbox.db", [],
                                  guard=api_key_guard(project))
        salesforce = next(p for p in prepared if p.name == "salesforce")
        accounts = salesforce.app.state.emulator.org.records["Account"]
    finally:
        for item in prepared:
            item.sock.close()
    lines = banner.splitlines()
    assert max(len(line) for line in lines) <= sb.BANNER_WIDTH == 100
    assert "    splice sandbox close-opportunity <Id|Name>" in banner
    assert "    splice sandbox pay <Invoice Id|DocNumber> <amount>" in banner
    assert "in a checkout, splice is .venv/bin/splice" in banner
    # customer-360: the dev key of config/dev.yaml, and a demo account linked to QuickBooks
    at = lines.index("    customer-360 (GET /api/customers/{accountId}):")
    assert lines[at + 1] == "      curl -s -H 'x-api-key: dev-customer-360-key' \\"
    url = lines[at + 2].strip()
    assert url.startswith(f"{SERVER}/api/customers/")
    account = accounts[url.rsplit("/", 1)[1]]
    assert account["Name"] == "Acme Corp" and account["QB_Customer_Id__c"]


def test_the_admin_api_lines_serve_adds_fit_the_banner_too() -> None:
    """serve adds how its admin API is protected; those lines keep to the banner's width."""
    banner = "=" * 100 + "\n  server      " + SERVER + "\n" + "=" * 100 + "\n"
    access = describe_access(None, sandbox=True, host="127.0.0.1")
    lines = with_admin_line(banner, SERVER, access).splitlines()
    assert max(len(line) for line in lines) <= sb.BANNER_WIDTH
    assert lines[-1] == "=" * 100 and lines[2].startswith(f"  admin API  {SERVER}/admin/status: ")
    assert "SPLICE_ADMIN_KEY" in " ".join(lines[2:-1])


def test_the_console_lines_serve_adds_fit_the_banner_and_say_how_to_log_in() -> None:
    """serve adds the console's URL and how to get in; those lines keep to the banner's width."""
    from runtime.server.console import ConsoleAuth, with_console_line

    banner = "=" * 100 + "\n  server      " + SERVER + "\n" + "=" * 100 + "\n"
    open_access = ConsoleAuth({}, sandbox=True, environ={}).describe()
    keyed = ConsoleAuth({"admin-key": "k" * 40}, sandbox=True, environ={}).describe()
    for access in (open_access, keyed):
        lines = with_console_line(banner, SERVER, access, sb.BANNER_WIDTH).splitlines()
        assert max(len(line) for line in lines) <= sb.BANNER_WIDTH
        assert lines[-1] == "=" * 100 and lines[2].startswith(f"  console    {SERVER}/console: ")
    assert "open on this machine" in open_access and "SPLICE_ADMIN_KEY" in open_access
    assert "log in as 'admin' with the admin key" in keyed
