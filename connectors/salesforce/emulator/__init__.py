"""An emulator of the Salesforce REST, Bulk 2.0, OAuth and Streaming (CometD) APIs.

A test double for the sandbox, tests and benchmarks; never on the product path. Start it alone with
``splice sandbox salesforce --port N`` or mount ``create_app()`` in process with
``httpx.ASGITransport``.
"""

from __future__ import annotations

from connectors.salesforce.emulator.app import create_app
from connectors.salesforce.emulator.faults import Faults
from connectors.salesforce.emulator.state import Emulator, EmulatorOptions

__all__ = ["Emulator", "EmulatorOptions", "Faults", "create_app"]
