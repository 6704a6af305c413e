"""The emulator's error answer: Salesforce's JSON array ``[{"message", "errorCode", "fields"}]``."""

from __future__ import annotations

from typing import Any

__all__ = ["ApiError"]


class ApiError(Exception):
    """Raised anywhere in the emulator; the app turns it into the real error envelope."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields

    def body(self) -> list[dict[str, Any]]:
        """REST form (``errorCode``)."""
        item: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields is not None:
            item["fields"] = self.fields
        return [item]

    def result_error(self) -> dict[str, Any]:
        """Collections form (``statusCode``)."""
        return {"statusCode": self.code, "message": self.message, "fields": self.fields or []}
