"""Fixtures of the quickbooks connector tests: the emulator in process, a store, a connection.

Cassettes (``cassettes/``) are recorded from the emulator and replayed with pytest-recording; the
``vcr_config`` below keeps tokens, secrets, authorization codes and realm ids out of them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

# The tests import their shared helpers as a plain module (pytest runs in importlib mode).
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from quickbooks_support import (  # noqa: E402
    REALM,
    RECORDED_REALM,
    SEED_REFRESH_TOKEN,
    connect,
    serve_in_thread,
)

from connectors.quickbooks.client import QuickBooksClient  # noqa: E402
from connectors.quickbooks.emulator import create_app  # noqa: E402
from runtime.store import ObjectStore  # noqa: E402
from runtime.testing import cassette_scrubbers  # noqa: E402


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
