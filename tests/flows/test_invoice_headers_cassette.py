"""The invoice-headers happy path replayed from a cassette: no emulator, no network.

Recorded from the emulators (``--record-mode=rewrite``), replayed by default, as
``test_cassettes.py`` does for the other shipped flows: every header property on, an opportunity
with class, location, PO number, a custom field, a memo and a shipping address is invoiced,
e-mailed once through QuickBooks, and its customer-facing link is written back.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.flows.test_cassettes import run, seeded
from tests.flows.test_invoice_headers import HEADERS, prepare_company, seed
from tests.support.flows import Integration

pytestmark = [pytest.mark.anyio, pytest.mark.vcr, pytest.mark.block_network]


@pytest.fixture
def splice_emulators(record_mode: str) -> bool:
    """The emulators answer while recording; the cassette answers when replaying."""
    return record_mode != "none"


@pytest.mark.splice(environ=HEADERS)
async def test_invoice_headers(integration: Integration, record_mode: str) -> None:
    it = integration

    def seed_all() -> dict[str, Any]:
        ids = prepare_company(it)
        account, opp = seed(it)
        return {**ids, "account": account, "opportunity": opp}

    ids = seeded(record_mode, "invoice_headers", seed_all)
    invoice = (await run(it, "opportunity-to-invoice", {"Id": ids["opportunity"]})).payload
    assert invoice["ClassRef"]["value"] == ids["class"]
    assert invoice["DepartmentRef"]["value"] == ids["department"]
    assert {(f["Name"], f["StringValue"]) for f in invoice["CustomField"]} == {
        ("P.O. Number", "PO-7781"), ("Region", "New England")}
    assert invoice["CustomerMemo"] == {"value": "Thank you for your business."}
    assert invoice["ShipAddr"]["City"] == "Quincy"
    assert invoice["EmailStatus"] == "EmailSent"
    assert invoice["InvoiceLink"].startswith("https://developer.intuit.com/comingSoonview/scs-v1-")
