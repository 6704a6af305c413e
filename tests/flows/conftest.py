"""Fixtures of the shipped Salesforce <-> QuickBooks flow tests.

The real project directory ``flows/salesforce-quickbooks`` is loaded (environment ``dev``) with its
connection settings pointed, through the documented environment overrides, at both emulators
mounted in process. Cassette tests replay what these emulators answered (see ``test_cassettes.py``).
"""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from flows_support import REALM, RECORDED_REALM, Integration, open_integration  # noqa: E402

from connectors.quickbooks.client import reset_realm_limits  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_realm_limits() -> Iterator[None]:
    """QuickBooks rate-limit objects bind to an event loop; every test runs on its own."""
    reset_realm_limits()
    yield
    reset_realm_limits()


@pytest.fixture
async def integration(anyio_backend: str) -> AsyncIterator[Integration]:
    """The project opened against fresh emulators (no demo opportunities)."""
    async with open_integration() as it:
        yield it



# ----------------------------------------------------------------- cassettes

#: Form fields of token requests that must never be written.
_SECRET_FORM = ("client_secret", "client_id", "refresh_token", "code", "assertion", "password", "access_token")
#: JSON fields of token answers (and signatures) that must never be written.
_SECRET_JSON = ("access_token", "refresh_token", "client_secret", "id_token", "signature")


def _hide(text: str) -> str:
    text = text.replace(REALM, RECORDED_REALM)
    for name in _SECRET_JSON:
        text = re.sub(rf'("{name}"\s*:\s*")[^"]*(")', rf"\1<{name.upper()}>\2", text)
    return text


def _scrub_request(request: Any) -> Any:
    request.uri = request.uri.replace(REALM, RECORDED_REALM)
    body = request.body
    if body:
        text = body.decode() if isinstance(body, bytes) else str(body)
        if "grant_type=" in text:
            text = urlencode([(k, f"<{k.upper()}>" if k in _SECRET_FORM else v)
                              for k, v in parse_qsl(text, keep_blank_values=True)])
        else:
            text = _hide(text)
        request.body = text.encode()
    return request


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    body = response.get("body", {}).get("string")
    if body:
        text = body.decode() if isinstance(body, bytes) else body
        response["body"]["string"] = _hide(text).encode()
    for name in list(response.get("headers", {})):
        if name.lower() in ("set-cookie", "intuit_tid"):
            response["headers"].pop(name)
    return response


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    """The connector tests' rules together: no token, secret, cookie or company id is written."""
    return {
        "filter_headers": ["authorization", "cookie", "set-cookie", "intuit_tid", "x-sfdc-session"],
        "filter_query_parameters": ["code", "client_secret", "refresh_token", "access_token"],
        "filter_post_data_parameters": list(_SECRET_FORM),
        "before_record_request": _scrub_request,
        "before_record_response": _scrub_response,
        "match_on": ["method", "path", "query"],
        "decode_compressed_response": True,
    }
