"""``${...}`` property placeholders: values that differ per environment, resolved at load time.

A placeholder is one of::

    ${name}                 environment variable NAME (upper-cased, '.'/'-' -> '_') if set,
                            else the property files, else an error
    ${name:default}         ... else the default (may be empty)
    ${env:VAR}              the environment variable VAR, else an error
    ${env:VAR:default}      ... else the default
    ${secure::name}         a property that must be stored encrypted (``![...]``), decrypted here

``$${`` is a literal ``${``. Property files (``config/<env>.yaml``) are nested mappings flattened to
dotted names. Encrypted values are Fernet tokens; the key comes from ``SPLICE_SECURE_KEY``, either a
Fernet key as is or any passphrase stretched with PBKDF2-HMAC-SHA256 (salt ``SECURE_SALT``,
200 000 iterations). Decrypted values are handed to an ``on_secret`` callback (the runtime redacts
them from logs) and never appear in an error message.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import functools
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from dsl.errors import FlowError, FlowSyntaxError, FlowValidationError
from dsl.loader import Node
from dsl.source import SourceSpan

__all__ = [
    "SECURE_KEY_VAR",
    "SECURE_SALT",
    "Properties",
    "PropertyValue",
    "SecureValueError",
    "decrypt_value",
    "encrypt_value",
    "env_var_name",
    "flatten_properties",
    "substitute_placeholders",
]

SECURE_KEY_VAR = "SPLICE_SECURE_KEY"
#: Fixed salt for passphrase keys: the same passphrase must give the same key on every machine.
SECURE_SALT = b"splice.secure-properties.v1"
_ITERATIONS = 200_000
_ENCRYPTED = re.compile(r"^!\[(?P<token>[^\]]*)\]$")
_PLACEHOLDER = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")


class SecureValueError(ValueError):
    """An encrypted value could not be decrypted: no key, a wrong key, or a damaged token."""


@functools.lru_cache(maxsize=8)
def _fernet(key: str) -> Fernet:
    try:
        raw = base64.urlsafe_b64decode(key.encode("ascii"))
        if len(raw) == 32 and len(key.strip()) == 44:
            return Fernet(key.strip().encode("ascii"))
    except (binascii.Error, UnicodeEncodeError, ValueError):
        pass
    derived = hashlib.pbkdf2_hmac("sha256", key.encode("utf-8"), SECURE_SALT, _ITERATIONS, dklen=32)
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_value(plaintext: str, key: str) -> str:
    """Encrypt a secret for a property file; the result is written as is (``![...]``)."""
    return "![" + _fernet(key).encrypt(plaintext.encode("utf-8")).decode("ascii") + "]"


def decrypt_value(text: str, key: str | None) -> str:
    """Decrypt an ``![...]`` value (the brackets are optional).

    Raises:
        SecureValueError: when ``key`` is empty or is not the key the value was encrypted with.
    """
    if not key:
        raise SecureValueError(f"{SECURE_KEY_VAR} is not set")
    match = _ENCRYPTED.match(text.strip())
    token = match.group("token") if match else text.strip()
    try:
        return _fernet(key).decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError, ValueError):
        raise SecureValueError(f"{SECURE_KEY_VAR} does not match (or the value is damaged)") from None


def env_var_name(name: str) -> str:
    """The environment variable that overrides property ``name``: ``a.client-id`` -> ``A_CLIENT_ID``."""
    return re.sub(r"[.\-]", "_", name).upper()


@dataclass(frozen=True, slots=True)
class PropertyValue:
    """A property as read from a property file, with where it was defined."""

    value: Any
    span: SourceSpan

    @property
    def encrypted(self) -> bool:
        return isinstance(self.value, str) and _ENCRYPTED.match(self.value.strip()) is not None


def flatten_properties(node: Node, prefix: str = "") -> dict[str, PropertyValue]:
    """Flatten a property file's nested mappings into dotted names (lists stay values)."""
    out: dict[str, PropertyValue] = {}
    if node.kind != "map":
        return out
    for key, child in node.value.items():
        name = f"{prefix}{key}"
        if child.kind == "map" and child.value:
            out.update(flatten_properties(child, name + "."))
        else:
            out[name] = PropertyValue(child.plain(), child.span)
    return out


class Properties:
    """Resolves placeholders for one file: its property files, the environment and the secure key."""

    def __init__(
        self,
        values: Mapping[str, PropertyValue],
        environ: Mapping[str, str],
        on_secret: Callable[[str], None] | None = None,
    ) -> None:
        self.values = dict(values)
        self.environ = environ
        self.on_secret = on_secret

    def plain(self) -> dict[str, Any]:
        """The property files' values by name (encrypted values stay encrypted)."""
        return {name: prop.value for name, prop in self.values.items()}

    def resolve(self, body: str, span: SourceSpan, *, typed: bool = True) -> Any:
        """The value of the placeholder ``${body}`` written at ``span``.

        ``typed`` reads a default such as ``${port:8080}`` as a number; inside longer text the
        default is kept as written.

        Raises:
            FlowError: for an unknown property or variable, or a secure value that cannot be decrypted.
        """
        body = body.strip()
        if not body:
            raise FlowSyntaxError(span, "empty placeholder '${}'", "a property name")
        if body.startswith("secure::"):
            return self._secure(body[len("secure::"):].strip(), span)
        if body.startswith("env:"):
            var, sep, default = body[4:].partition(":")
            var = var.strip()
            if var in self.environ:
                return self.environ[var]
            if sep:
                return default
            raise FlowValidationError(span, f"environment variable '{var}' is not set",
                                      "it set, or a default: ${env:" + var + ":default}")
        name, sep, default = body.partition(":")
        name = name.strip()
        prop = self.values.get(name)
        override = self.environ.get(env_var_name(name))
        if override is not None:
            return _coerce_like(override, prop.value if prop else None)
        if prop is not None:
            if prop.encrypted:
                return self._decrypt(name, prop, span)
            return prop.value
        if sep:
            return _scalar(default) if typed else default
        hint = difflib.get_close_matches(name, list(self.values), n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        raise FlowValidationError(
            span, f"unknown property '{name}'{suggestion}",
            f"it in a property file, or environment variable {env_var_name(name)}")

    def _secure(self, name: str, span: SourceSpan) -> str:
        prop = self.values.get(name)
        if prop is None:
            hint = difflib.get_close_matches(name, list(self.values), n=1)
            suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
            raise FlowValidationError(span, f"unknown secure property '{name}'{suggestion}",
                                      "it in a property file, encrypted with 'splice encrypt'")
        if not prop.encrypted:
            raise FlowValidationError(span, f"secure property '{name}' is not encrypted",
                                      "a value written ![...] (use 'splice encrypt')")
        return self._decrypt(name, prop, span)

    def _decrypt(self, name: str, prop: PropertyValue, span: SourceSpan) -> str:
        try:
            plaintext = decrypt_value(prop.value, self.environ.get(SECURE_KEY_VAR))
        except SecureValueError as exc:
            raise FlowValidationError(span, f"cannot decrypt secure property '{name}': {exc}") from None
        if self.on_secret is not None:
            self.on_secret(plaintext)
        return plaintext


def _coerce_like(text: str, like: Any) -> Any:
    """An environment override keeps the type of the property it overrides (numbers stay numbers)."""
    try:
        if isinstance(like, bool):
            lowered = text.strip().lower()
            if lowered in ("true", "false"):
                return lowered == "true"
        elif isinstance(like, int):
            return int(text)
        elif isinstance(like, float):
            return float(text)
    except ValueError:
        pass
    return text


_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def _scalar(text: str) -> Any:
    """A default as YAML would read it when it is a number or boolean (``${port:8080}`` is 8080)."""
    stripped = text.strip()
    if stripped in ("true", "false"):
        return stripped == "true"
    if _NUMBER.match(stripped):
        return float(stripped) if any(c in stripped for c in ".eE") else int(stripped)
    return text


def to_text(value: Any) -> str:
    """How a property value reads inside a longer string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def substitute_placeholders(
    text: str,
    properties: Properties,
    position: Callable[[int], SourceSpan],
    errors: list[FlowError],
) -> str:
    """Replace every ``${...}`` in ``text`` by its value as text (``$${`` -> ``${``).

    Used inside JSONata (``#[ ]`` bodies and ``.jsonata`` files), where placeholders are plain text
    substitution. ``position(offset)`` maps an offset in ``text`` to a file position; problems are
    appended to ``errors`` and the placeholder is left empty.
    """
    if "${" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        body = match.group("body")
        if body is None:
            errors.append(FlowSyntaxError(position(match.start()), "unterminated placeholder",
                                          "'}' to close '${'"))
            return ""
        try:
            return to_text(properties.resolve(body, position(match.start()), typed=False))
        except FlowError as exc:
            errors.append(exc)
            return ""

    return _PLACEHOLDER.sub(replace, text)
