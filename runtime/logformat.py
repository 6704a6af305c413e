"""How log lines look: text for a terminal, or JSON lines for a log pipeline.

``--log-format json`` (or ``SPLICE_LOG_FORMAT=json``) makes every line one JSON object with
``time``, ``level``, ``logger`` and ``message``, and, for a line written inside an execution, its
``executionId``, ``flow``, ``correlationId`` and ``recordIds`` (the business ids the flow declares,
as far as the execution got). The text format appends the same execution facts in brackets.

:class:`ExecutionFilter` captures those facts when the record is made, in the logging call's own
context (where :data:`runtime.logcontext.CURRENT_EXECUTION` is set), so a handler that formats
later or elsewhere still has them. Secrets are masked before formatting by
:class:`runtime.redaction.RedactingFilter`; the JSON formatter masks the traceback too.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from typing import Any

from runtime.logcontext import CURRENT_EXECUTION
from runtime.redaction import redact

__all__ = ["FORMATS", "ExecutionFilter", "JsonFormatter", "TextFormatter", "make_formatter"]

#: The values ``--log-format`` and ``SPLICE_LOG_FORMAT`` accept.
FORMATS = ("text", "json")

#: The record attribute :class:`ExecutionFilter` sets (``None`` outside an execution).
_ATTRIBUTE = "splice_execution"

_rendering = threading.local()


class ExecutionFilter(logging.Filter):
    """Puts the current execution's id, flow, correlation id and business ids on each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, _ATTRIBUTE):  # a second handler of the same record
            return True
        scope = CURRENT_EXECUTION.get()
        if scope is None or getattr(_rendering, "active", False):
            setattr(record, _ATTRIBUTE, None)
            return True
        _rendering.active = True  # rendering a business id must not log its way back in here
        try:
            ids = scope.record_ids()
        finally:
            _rendering.active = False
        setattr(record, _ATTRIBUTE, {
            "executionId": scope.id,
            "flow": scope.flow.name,
            "correlationId": scope.message.correlation_id,
            "recordIds": ids,
        })
        return True


def execution_of(record: logging.LogRecord) -> dict[str, Any] | None:
    """The execution facts :class:`ExecutionFilter` put on ``record`` (``None``: none)."""
    value = getattr(record, _ATTRIBUTE, None)
    return value if isinstance(value, dict) else None


class TextFormatter(logging.Formatter):
    """``12:00:00 WARNING splice.engine: message [execution ID flow F records A, B]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        line = super().formatMessage(record)
        execution = execution_of(record)
        if execution is None:
            return line
        suffix = f" [execution {execution['executionId']} flow {execution['flow']}"
        if execution["recordIds"]:
            suffix += " records " + ", ".join(execution["recordIds"])
        return line + suffix + "]"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the execution's facts."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        execution = execution_of(record)
        if execution is not None:
            entry.update(execution)
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        return json.dumps(entry, ensure_ascii=False, default=str)


def make_formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``text`` or ``json`` (``ValueError`` for anything else)."""
    if log_format == "json":
        return JsonFormatter()
    if log_format == "text":
        return TextFormatter()
    raise ValueError(f"unknown log format '{log_format}', expected one of {', '.join(FORMATS)}")
