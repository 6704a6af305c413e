"""Fixtures of the shipped Salesforce <-> QuickBooks flow tests.

The real project directory ``flows/salesforce-quickbooks`` is loaded (environment ``dev``) with its
connection settings pointed, through the documented environment overrides, at both emulators
mounted in process. Cassette tests replay what these emulators answered (see ``test_cassettes.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from runtime.testing import cassette_scrubbers
from tests.support.flows import REALM, RECORDED_REALM, Integration, open_integration


@pytest.fixture
async def integration(anyio_backend: str) -> AsyncIterator[Integration]:
    """The project opened against fresh emulators (no demo opportunities)."""
    async with open_integration() as it:
        yield it


# ----------------------------------------------------------------- cassettes

#: Form fields of token requests and JSON fields of token answers (and signatures) never written.
_SECRET_FORM = ("client_secret", "client_id", "refresh_token", "code", "assertion", "password", "access_token")
_SECRET_JSON = ("access_token", "refresh_token", "client_secret", "id_token", "signature")


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    """The connector tests' rules together: no token, secret, cookie or company id is written."""
    return {
        "filter_headers": ["authorization", "cookie", "set-cookie", "intuit_tid", "x-sfdc-session"],
        "filter_query_parameters": ["code", "client_secret", "refresh_token", "access_token"],
        "filter_post_data_parameters": list(_SECRET_FORM),
        **cassette_scrubbers(replace={REALM: RECORDED_REALM}, form_fields=_SECRET_FORM,
                             json_fields=_SECRET_JSON, drop_headers=("set-cookie", "intuit_tid")),
        "match_on": ["method", "path", "query"],
        "decode_compressed_response": True,
    }
