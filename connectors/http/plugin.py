"""The http connector plugin: ``http.request`` and the ``http.listener`` trigger."""

from __future__ import annotations

from connectors.http.operations import CONNECTION, REQUEST
from connectors.http.sources import LISTENER
from runtime import Connector, hookimpl

HTTP = Connector(
    name="http",
    summary="Call HTTP APIs and receive HTTP requests",
    connection=CONNECTION,
    operations=(REQUEST,),
    sources=(LISTENER,),
)


@hookimpl
def splice_connectors() -> list[Connector]:
    """The http connector."""
    return [HTTP]
