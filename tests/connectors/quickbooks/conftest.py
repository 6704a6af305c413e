"""Fixtures of the quickbooks connector tests: the emulator in process, a store, a connection.

Cassettes (``cassettes/``) are recorded from the emulator and replayed with pytest-recording; the
``vcr_config`` below keeps tokens, secrets, authorization codes and realm ids out of them.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.emulator import create_app
from runtime.store import ObjectStore
from runtime.testing import cassette_scrubbers
from tests.support.quickbooks import REALM, RECORDED_REALM, SEED_REFRESH_TOKEN, connect
from tests.support.servers import serve_in_thread


@pytest.fixture
def emulator() -> Any:
    """A fresh emulator with demo data and one known refresh token."""
    return create_app(refresh_token=SEED_REFRESH_TOKEN)


@pytest.fixture
async def qb(emulator: Any, store: ObjectStore) -> AsyncIterator[QuickBooksClient]:
    """A connection to the emulator."""
    async with connect(emulator, store) as client:
        yield client


# ----------------------------------------------------------------- a real server (python-quickbooks)


@pytest.fixture
def served_emulator() -> Iterator[tuple[str, Any]]:
    """The emulator under uvicorn on a free local port (for clients that need a real socket)."""
    app = create_app(refresh_token=SEED_REFRESH_TOKEN)
    with serve_in_thread(app, lifespan="off") as base:
        yield base, app


# ----------------------------------------------------------------- cassettes

#: Secret fields of token requests (form bodies) and token answers (JSON).
_SECRET_FIELDS = ("access_token", "refresh_token", "client_secret", "code")
_SECRET_JSON_FIELDS = ("access_token", "refresh_token", "client_secret", "id_token")


def _realms() -> list[str]:
    """Company ids to hide: the emulator's, and a sandbox company's when recording against one."""
    return [r for r in (REALM, os.environ.get("QUICKBOOKS_REALM_ID")) if r]


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    """Replay only; nothing secret or company-identifying is written into a cassette."""
    return {
        "filter_headers": ["authorization", "cookie", "set-cookie", "intuit_tid"],
        "filter_query_parameters": ["code", "client_secret", "refresh_token", "access_token"],
        "filter_post_data_parameters": ["client_secret", "refresh_token", "code", "access_token"],
        **cassette_scrubbers(replace=dict.fromkeys(_realms(), RECORDED_REALM),
                             form_fields=_SECRET_FIELDS, json_fields=_SECRET_JSON_FIELDS,
                             drop_headers=("set-cookie", "intuit_tid")),
        "match_on": ["method", "path", "query"],
        "decode_compressed_response": True,
    }
