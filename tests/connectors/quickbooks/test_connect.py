"""``splice quickbooks-connect``: consent URL, code exchange, tokens in the store."""

from __future__ import annotations

import argparse
from typing import Any

import anyio
import httpx
import pytest

from connectors.quickbooks.config import token_key
from connectors.quickbooks.connect import add_parser
from runtime.oauth import TOKENS_NAMESPACE
from runtime.store import open_store
from tests.support.quickbooks import CLIENT_ID, CLIENT_SECRET, REALM, connect

pytestmark = pytest.mark.slow
REDIRECT = "http://localhost:8765/callback"


def _args(base: str, store_url: str, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="splice")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args([
        "quickbooks-connect", "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET,
        "--redirect-uri", REDIRECT, "--authorize-url", f"{base}/connect/oauth2",
        "--token-url", f"{base}/oauth2/v1/tokens/bearer", "--store", store_url, *extra])


def _consent(url: str) -> str:
    """What the browser does: open the consent URL and land on the redirect."""
    return httpx.get(url).headers["location"]


def test_connect_with_the_redirect_url_stores_usable_tokens(
        served_emulator: tuple[str, Any], tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """The stored tokens are what the connection reads: no refresh-token setting needed."""
    base, app = served_emulator
    store_url = f"sqlite:///{tmp_path}/store.db"
    landed = _consent(f"{base}/connect/oauth2?client_id={CLIENT_ID}&redirect_uri={REDIRECT}"
                      "&state=st-1&response_type=code")
    args = _args(base, store_url, "--state", "st-1", "--redirect-url", landed)
    assert args.func(args) == 0
    out = capsys.readouterr()
    assert REALM in out.out and out.err == ""

    async def use_it() -> str:
        store = open_store(store_url)
        async with store:
            stored = await store.get(TOKENS_NAMESPACE, token_key(REALM))
            assert stored["extra"]["refresh_token"] not in out.out
            async with connect(app, store, **{"refresh-token": None}) as qb:
                return (await qb.read("Customer", "11"))["DisplayName"]

    assert anyio.run(use_it) == "Amy's Bird Sanctuary"


def test_connect_prompts_with_the_consent_url(served_emulator: tuple[str, Any], tmp_path: Any,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Without a redirect URL the command prints the consent URL and reads the answer."""
    base, _app = served_emulator
    printed: list[str] = []

    def browser(prompt: str) -> str:
        url = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(base))
        printed.append(url)
        return _consent(url)

    monkeypatch.setattr("builtins.input", browser)
    args = _args(base, f"sqlite:///{tmp_path}/store.db")
    assert args.func(args) == 0
    consent = httpx.URL(printed[0])
    assert consent.params["client_id"] == CLIENT_ID
    assert consent.params["scope"] == "com.intuit.quickbooks.accounting"
    assert consent.params["redirect_uri"] == REDIRECT and consent.params["state"]


def test_connect_errors_are_one_line_without_secrets(served_emulator: tuple[str, Any], tmp_path: Any,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A state mismatch and a reused code each give exit code 1 and one clear line."""
    base, _app = served_emulator
    store_url = f"sqlite:///{tmp_path}/store.db"
    landed = _consent(f"{base}/connect/oauth2?client_id={CLIENT_ID}&redirect_uri={REDIRECT}"
                      "&state=mine&response_type=code")
    wrong_state = _args(base, store_url, "--state", "other", "--redirect-url", landed)
    assert wrong_state.func(wrong_state) == 1
    ok = _args(base, store_url, "--state", "mine", "--redirect-url", landed)
    assert ok.func(ok) == 0
    reused = _args(base, store_url, "--state", "mine", "--redirect-url", landed)
    assert reused.func(reused) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2
    assert "state does not match" in err[0]
    assert "authorization code was refused" in err[1]
    assert CLIENT_SECRET not in "".join(err) and "Traceback" not in "".join(err)
