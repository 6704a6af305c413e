"""The http connector plugin: ``http.request`` and the ``http.listener`` trigger."""

from __future__ import annotations

from runtime.hookspecs import hookimpl
from runtime.spec import Connector


@hookimpl
def splice_connectors() -> list[Connector]:
    """The http connector."""
    return []
