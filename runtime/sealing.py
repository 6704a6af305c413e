"""Secrets at rest: OAuth tokens sealed in the object store with a key derived from the secure key.

The secure-properties key (``SPLICE_SECURE_KEY``, a Fernet key or a passphrase: see
:mod:`dsl.properties`) also protects what the runtime itself writes that is secret: access and
refresh tokens. A token row is then ``{"sealed": "v1:<base64>"}``: AES-256-GCM over the token's
JSON, with a fresh 96-bit nonce each time, and the row's namespace and key as associated data, so a
sealed row copied under another account's key does not open. The AES key is not the properties'
Fernet key: it is derived from the same secret with HKDF-SHA256 and a label of its own (after
PBKDF2 for a passphrase, as for properties), so neither use can be turned against the other.

The ``v1:`` prefix names the scheme, so a later one can be added beside it and old rows still read.
A row written before a key was configured (plaintext) still reads, and the token source rewrites it
sealed. Without a key, tokens stay plaintext and a warning says so once per process.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dsl.properties import SECURE_KEY_VAR
from runtime.errors import SpliceError

__all__ = ["SEALED_FIELD", "SealedSecretError", "SecretSealer", "is_sealed", "sealer_from_environ",
           "warn_unsealed_once"]

#: The field of a sealed row.
SEALED_FIELD = "sealed"
_VERSION = "v1"
_PASSPHRASE_SALT = b"splice.stored-secrets.v1"
_ITERATIONS = 200_000
_HKDF_INFO = b"splice oauth tokens at rest v1"
_NONCE_BYTES = 12
logger = logging.getLogger("splice.oauth")
_warned: set[str] = set()


class SealedSecretError(SpliceError):
    """A sealed row that cannot be opened: no key, another key, or a damaged row."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error_type="OAUTH:TOKENS_UNREADABLE", retryable=False)


def _secret_bytes(key: str) -> bytes:
    """32 bytes of key material: a Fernet key's own bytes, or a passphrase stretched with PBKDF2."""
    text = key.strip()
    if len(text) == 44:
        try:
            raw = base64.urlsafe_b64decode(text.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raw = b""
        if len(raw) == 32:
            return raw
    return hashlib.pbkdf2_hmac("sha256", key.encode("utf-8"), _PASSPHRASE_SALT, _ITERATIONS, dklen=32)


class SecretSealer:
    """Seals and opens stored secrets with one AES-256-GCM key derived from the secure key."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("a sealer needs a key")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=_HKDF_INFO).derive(_secret_bytes(key))
        self._aead = AESGCM(derived)

    def seal(self, value: Mapping[str, Any], context: str) -> dict[str, str]:
        """``value`` (JSON data) as a sealed row bound to ``context`` (where the row is stored)."""
        nonce = os.urandom(_NONCE_BYTES)
        plain = json.dumps(value, separators=(",", ":")).encode("utf-8")
        sealed = self._aead.encrypt(nonce, plain, context.encode("utf-8"))
        return {SEALED_FIELD: f"{_VERSION}:" + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")}

    def open(self, row: Mapping[str, Any], context: str) -> dict[str, Any]:
        """The value of a sealed row; :class:`SealedSecretError` when it does not open."""
        version, _, body = str(row.get(SEALED_FIELD, "")).partition(":")
        if version != _VERSION:
            raise SealedSecretError(f"the stored secret of {context} is sealed with an unknown "
                                    f"scheme {version!r} (written by a newer Splice?)")
        try:
            raw = base64.urlsafe_b64decode(body.encode("ascii"))
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode("utf-8"))
            value = json.loads(plain)
        except (InvalidTag, binascii.Error, UnicodeError, ValueError):
            raise SealedSecretError(
                f"the stored OAuth tokens of {context} do not open with {SECURE_KEY_VAR}: it is not "
                "the key they were sealed with, or the row is damaged. Set the key they were sealed "
                "with, or authorise the connection again (its tokens are then stored anew)") from None
        if not isinstance(value, dict):
            raise SealedSecretError(f"the stored secret of {context} is not a token record")
        return value


def is_sealed(row: Mapping[str, Any]) -> bool:
    """Whether a stored row is sealed (else it is a plaintext row from before a key was set)."""
    return SEALED_FIELD in row


@functools.lru_cache(maxsize=4)
def _sealer(key: str) -> SecretSealer:
    return SecretSealer(key)


def sealer_from_environ(environ: Mapping[str, str] | None = None) -> SecretSealer | None:
    """The sealer of ``SPLICE_SECURE_KEY`` (process environment by default), ``None`` when unset."""
    key = (os.environ if environ is None else environ).get(SECURE_KEY_VAR, "")
    return _sealer(key) if key else None


def warn_unsealed_once(what: str) -> None:
    """Say once per process that ``what`` is stored in plaintext because no key is configured."""
    if what in _warned:
        return
    _warned.add(what)
    logger.warning("%s is not set: %s are stored in plaintext in the object store. Set it (the "
                   "secure-properties key) to have them encrypted at rest", SECURE_KEY_VAR, what)
