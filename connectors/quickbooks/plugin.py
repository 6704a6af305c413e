"""The quickbooks connector plugin (its operations and sources are registered here)."""

from __future__ import annotations

from runtime.hookspecs import hookimpl
from runtime.spec import Connector


@hookimpl
def splice_connectors() -> list[Connector]:
    """The quickbooks connector."""
    return []
