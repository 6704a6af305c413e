"""The emulator's ``/services/oauth2/token``: client credentials, JWT bearer and refresh token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.requests import Request
from starlette.responses import JSONResponse

from connectors.salesforce.emulator.state import Emulator

__all__ = ["token_endpoint"]

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _fail(error: str = "invalid_grant", description: str = "authentication failure",
          status: int = 400) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _check_jwt(emu: Emulator, assertion: str) -> str | None:
    """The problem with a JWT bearer assertion, or ``None`` when it is acceptable."""
    try:
        header_b64, claims_b64, signature_b64 = assertion.split(".")
        header, claims = json.loads(_b64decode(header_b64)), json.loads(_b64decode(claims_b64))
    except (ValueError, json.JSONDecodeError):
        return "invalid assertion"
    if header.get("alg") != "RS256":
        return "invalid assertion"
    if not claims.get("sub") or not claims.get("iss") or not claims.get("aud"):
        return "invalid assertion"
    if int(claims.get("exp", 0)) < time.time():
        return "expired authorization code"
    keys = emu.options.jwt_public_keys
    if keys is not None:
        pem = keys.get(str(claims["iss"]))
        if pem is None:
            return "invalid client credentials"
        key = serialization.load_pem_public_key(pem.encode())
        assert isinstance(key, rsa.RSAPublicKey)
        try:
            key.verify(_b64decode(signature_b64), f"{header_b64}.{claims_b64}".encode(),
                       padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return "invalid assertion"
    return None


async def token_endpoint(request: Request) -> JSONResponse:
    """``POST /services/oauth2/token`` answering like Salesforce (400 ``invalid_grant`` on failure)."""
    emu: Emulator = request.app.state.emulator
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode(), keep_blank_values=True).items()}
    grant = str(form.get("grant_type") or "")
    client_id = str(form.get("client_id") or "")
    secret = str(form.get("client_secret") or "")
    basic = request.headers.get("authorization", "")
    if basic.lower().startswith("basic "):
        client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
    if emu.faults.take_token_failure():
        return _fail()
    extra: dict[str, Any] = {}
    if grant == "client_credentials":
        clients = emu.options.clients
        if not client_id or not secret or (clients is not None and clients.get(client_id) != secret):
            return _fail("invalid_client", "invalid client credentials")
    elif grant == JWT_GRANT:
        problem = _check_jwt(emu, str(form.get("assertion") or ""))
        if problem:
            return _fail("invalid_grant", problem)
    elif grant == "refresh_token":
        refresh = str(form.get("refresh_token") or "")
        known = emu.refresh_tokens
        if not refresh or not client_id or (emu.options.rotate_refresh_tokens and known
                                            and refresh not in known):
            return _fail("invalid_grant", "expired access/refresh token")
        if emu.options.rotate_refresh_tokens:
            known.discard(refresh)
            new = "5Aep" + secrets.token_urlsafe(40)
            known.add(new)
            extra["refresh_token"] = new
    else:
        return _fail("unsupported_grant_type", "grant type not supported")
    token = emu.issue_token()
    issued_at = str(int(time.time() * 1000))
    identity = f"https://login.salesforce.com/id/{emu.org.org_id}/{emu.org.user_id}"
    signature = base64.b64encode(hmac.new((secret or "emulator").encode(), (identity + issued_at).encode(),
                                          hashlib.sha256).digest()).decode()
    instance = emu.options.instance_url or str(request.base_url).rstrip("/")
    return JSONResponse({"access_token": token, "signature": signature, "scope": "api",
                         "instance_url": instance, "id": identity, "token_type": "Bearer",
                         "issued_at": issued_at, **extra})
