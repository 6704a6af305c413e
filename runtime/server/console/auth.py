"""Who may use the console: configured users or the admin key, signed session cookies, CSRF tokens.

A person logs in with a name and password from ``settings.server.console-users`` (name -> a hash
made by ``python -m runtime.server.console``), or as ``admin`` with the admin key
(``settings.server.admin-key`` / ``$SPLICE_ADMIN_KEY``). A sandbox serve on this machine without a
key and without users is open to local clients, and every page says so; anywhere else a console
with neither is closed.

The session is a cookie signed with HMAC-SHA256 (``settings.server.console-secret`` /
``$SPLICE_CONSOLE_SECRET``, else a secret made for this process, so that sessions end with it):
``HttpOnly``, ``SameSite=Strict``, path ``/console``. Every visitor gets one, logged in or not: its
random nonce is what the per-session CSRF token is derived from, so the login form is protected
like every other POST. Nothing is kept server-side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runtime.admin_access import ADMIN_KEY_ENV, admin_key
from runtime.errors import ConfigurationError
from runtime.redaction import register_secret

__all__ = ["ADMIN_USER", "COOKIE", "LOCAL_USER", "SECRET_ENV", "ConsoleAuth", "Session", "hash_password",
           "verify_password"]

COOKIE = "splice_console"
SECRET_ENV = "SPLICE_CONSOLE_SECRET"
#: The user name that logs in with the admin key.
ADMIN_USER = "admin"
#: Who a visitor of an open sandbox console is: no configured user may have this name, so that such
#: a session (from an earlier, open run with the same console-secret) never passes for a login.
LOCAL_USER = "local"
#: How long a session lasts after logging in.
SESSION_SECONDS = 12 * 3600
_HASH_SCHEME = "pbkdf2-sha256"
_ITERATIONS = 200_000


def hash_password(password: str, *, iterations: int = _ITERATIONS) -> str:
    """A salted PBKDF2-SHA256 hash of ``password``, as ``settings.server.console-users`` takes it."""
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{_HASH_SCHEME}${iterations}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a hash made by :func:`hash_password` (False for a malformed one)."""
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != _HASH_SCHEME:
            return False
        computed = hashlib.pbkdf2_hmac("sha256", password.encode(), _unb64(salt), int(iterations))
        return hmac.compare_digest(computed, _unb64(digest))
    except (ValueError, TypeError):
        return False


@dataclass(frozen=True, slots=True)
class Session:
    """A visitor's session: ``user`` is ``None`` until they log in; ``nonce`` keys the CSRF token."""

    user: str | None
    nonce: str
    expires: float


class ConsoleAuth:
    """The console's login rules for one serve, and the signing of its cookies."""

    def __init__(self, server_settings: Mapping[str, Any], *, sandbox: bool,
                 environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.key = admin_key(server_settings, environ)
        users = server_settings.get("console-users") or {}
        if not isinstance(users, Mapping):
            raise ConfigurationError("settings.server.console-users must map user names to password hashes "
                             "(python -m runtime.server.console makes one)")
        self.users: dict[str, str] = {str(name): str(value) for name, value in users.items()}
        if LOCAL_USER in self.users:
            raise ConfigurationError(f"settings.server.console-users: '{LOCAL_USER}' is reserved for "
                                     "the visitors of an open sandbox console; choose another name")
        configured = server_settings.get("console-secret") or environ.get(SECRET_ENV)
        if configured:
            register_secret(str(configured))
            self._secret = hashlib.sha256(str(configured).encode()).digest()
        else:
            self._secret = secrets.token_bytes(32)
        #: No key and no users: a sandbox serve is open to local clients, any other serve is closed.
        self.open_locally = self.key is None and not self.users and sandbox
        self.closed = self.key is None and not self.users and not sandbox

    def describe(self) -> str:
        """How a person gets in, in one line (the sandbox banner, the login page)."""
        if self.key is not None and self.users:
            return f"log in as a console user, or as '{ADMIN_USER}' with the admin key"
        if self.key is not None:
            return f"log in as '{ADMIN_USER}' with the admin key ({ADMIN_KEY_ENV})"
        if self.users:
            return "log in as a user of settings.server.console-users"
        if self.open_locally:
            return f"open on this machine (sandbox without an admin key; set {ADMIN_KEY_ENV} to close it)"
        return f"closed: set {ADMIN_KEY_ENV} or settings.server.console-users"

    def check_login(self, user: str, password: str) -> bool:
        """Whether ``user`` may log in with ``password`` (both compared in constant time)."""
        stored = self.users.get(user)
        if stored is not None:
            return verify_password(password, stored)
        if user == ADMIN_USER and self.key is not None:
            return hmac.compare_digest(password.encode(), self.key.encode())
        verify_password(password, hash_password("", iterations=_ITERATIONS))  # same time either way
        return False

    # -- sessions --------------------------------------------------------------------------------

    def new_session(self, user: str | None) -> Session:
        """A fresh session (a new nonce, so logging in also renews the CSRF token)."""
        return Session(user, secrets.token_urlsafe(16), time.time() + SESSION_SECONDS)

    def read(self, cookie_header: str | None) -> Session | None:
        """The session of a request's ``Cookie`` header, or ``None`` (absent, forged, expired)."""
        value = _cookie(cookie_header or "", COOKIE)
        if not value or "." not in value:
            return None
        payload, signature = value.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
            session = Session(data["u"], str(data["n"]), float(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.user is not None and not isinstance(session.user, str):
            return None
        return session if session.expires > time.time() else None

    def cookie(self, session: Session, *, secure: bool) -> str:
        """The ``Set-Cookie`` value carrying ``session``."""
        payload = _b64(json.dumps({"u": session.user, "n": session.nonce, "e": session.expires},
                                  separators=(",", ":")).encode())
        flags = "; Secure" if secure else ""
        return (f"{COOKIE}={payload}.{self._sign(payload)}; Path=/console; HttpOnly; "
                f"SameSite=Strict; Max-Age={SESSION_SECONDS}{flags}")

    def csrf_token(self, session: Session) -> str:
        """The token every form of ``session`` carries in its hidden ``csrf`` field."""
        return hmac.new(self._secret, b"csrf:" + session.nonce.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, session: Session | None, token: str | None) -> bool:
        """Whether a POST's ``csrf`` field is its session's token."""
        if session is None or not token:
            return False
        return hmac.compare_digest(token.encode(), self.csrf_token(session).encode())

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest())


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
