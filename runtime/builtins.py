"""The runtime's own plugin: JSONata functions every flow can use.

Registered by :func:`runtime.plugins.create_plugin_manager` exactly as a third-party plugin would be.
The built-in *steps* (transform, choice, foreach, set-variable, log, flow-ref) are part of the flow
language itself and are executed by :mod:`runtime.steps`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from runtime.hookspecs import hookimpl

__all__ = ["splice_jsonata_functions"]


def _uuid() -> str:
    """A random UUID (``$uuid()``)."""
    return str(uuid.uuid4())


def _sha256(text: Any) -> str:
    """Hex SHA-256 of a string (``$sha256(s)``): stable keys from long values."""
    return hashlib.sha256(str(text).encode("utf-8")).hexdigest()


def _money(value: Any, places: Any = 2) -> float | None:
    """Round half up to ``places`` decimals (``$money(x)``), as accountants do.

    JSONata's ``$round`` rounds half to even; invoices need half up.
    """
    if value is None:
        return None
    try:
        quantum = Decimal(1).scaleb(-int(places))
        exact = Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError, TypeError):
        return None
    return float(exact)


@hookimpl
def splice_jsonata_functions() -> Mapping[str, Callable[..., Any]]:
    """``$uuid()``, ``$sha256(s)`` and ``$money(x[, places])``."""
    return {"uuid": _uuid, "sha256": _sha256, "money": _money}
