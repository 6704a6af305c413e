"""The quickbooks connector: QuickBooks Online Accounting API v3, with an emulator of it."""

from __future__ import annotations

from connectors.quickbooks.client import QuickBooksClient, open_connection
from connectors.quickbooks.config import QuickBooksSettings

__all__ = ["QuickBooksClient", "QuickBooksSettings", "open_connection"]
