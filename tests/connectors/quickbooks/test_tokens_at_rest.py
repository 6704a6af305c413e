"""A QuickBooks connection's tokens are sealed in the store when the secure key is configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.errors import SpliceError
from runtime.store import open_store
from tests.support.quickbooks import REALM, connect

pytestmark = pytest.mark.anyio


def _store_files(directory: Path) -> bytes:
    """The SQLite store's bytes on disk: the database and its journal files."""
    return b"".join(p.read_bytes() for p in directory.iterdir() if p.name.startswith("store.db"))


async def test_the_rotated_tokens_never_reach_the_sqlite_file_in_plaintext(
        emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refreshed, stored sealed, read back after a restart without another refresh."""
    monkeypatch.setenv("SPLICE_SECURE_KEY", "the secure-properties passphrase")
    url = f"sqlite:///{tmp_path}/store.db"
    async with open_store(url) as store, connect(emulator, store) as qb:
        await qb.read("Customer", "11")
        token = await qb.tokens.token()
    assert token.refresh_token
    raw = _store_files(tmp_path)
    assert b"oauth-tokens" in raw
    assert token.value.encode() not in raw and token.refresh_token.encode() not in raw
    refreshes = emulator.state.emulator.authority.refresh_counts[REALM]
    async with open_store(url) as store, connect(emulator, store) as qb:
        assert (await qb.read("Customer", "11"))["Id"] == "11"
        assert (await qb.tokens.token()).value == token.value
    assert emulator.state.emulator.authority.refresh_counts[REALM] == refreshes


async def test_under_another_key_a_call_fails_with_a_clear_error(
        emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The step gets a typed error that says to authorise again; nothing is sent to QuickBooks."""
    url = f"sqlite:///{tmp_path}/store.db"
    monkeypatch.setenv("SPLICE_SECURE_KEY", "the first key")
    async with open_store(url) as store, connect(emulator, store) as qb:
        await qb.read("Customer", "11")
    monkeypatch.setenv("SPLICE_SECURE_KEY", "a different key")
    async with open_store(url) as store, connect(emulator, store) as qb:
        with pytest.raises(SpliceError) as info:
            await qb.read("Customer", "11")
    assert info.value.error_type == "OAUTH:TOKENS_UNREADABLE"
    assert "authorise the connection again" in info.value.message
