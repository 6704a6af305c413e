"""An emulator of the QuickBooks Online Accounting API v3 (an ASGI app), for tests and the sandbox."""

from __future__ import annotations

from connectors.quickbooks.emulator.app import (
    DEFAULT_REALM,
    SANDBOX_REFRESH_TOKEN,
    Emulator,
    create_app,
)

__all__ = ["DEFAULT_REALM", "SANDBOX_REFRESH_TOKEN", "Emulator", "create_app"]
