"""The file connector plugin: ``file.write``."""

from __future__ import annotations

from connectors.file.operations import WRITE
from runtime import Connector, hookimpl

FILE = Connector(name="file", summary="Write local files (reports, exports)", operations=(WRITE,))


@hookimpl
def splice_connectors() -> list[Connector]:
    """The file connector."""
    return [FILE]
