"""The Salesforce connector: REST, Bulk API 2.0 and change events, plus an emulator of them."""

from __future__ import annotations

from connectors.salesforce.client import QueryStream, SalesforceClient
from connectors.salesforce.config import SalesforceSettings
from connectors.salesforce.errors import SalesforceError
from connectors.salesforce.soql import bind, quote

__all__ = ["QueryStream", "SalesforceClient", "SalesforceError", "SalesforceSettings", "bind", "quote"]
