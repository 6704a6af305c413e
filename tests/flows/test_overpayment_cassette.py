"""The overpayment happy path replayed from a cassette: no emulator, no network.

Recorded from the emulators (``--record-mode=rewrite``), replayed by default, as
``test_cassettes.py`` does for the other shipped flows: a won opportunity is invoiced, its customer
pays more than the invoice in QuickBooks, and the payment's event writes the invoice paid and the
money beyond it as the unapplied amount, on the opportunity and on the account. Its cassette and
seeded ids live in their own directory (``cassettes/test_overpayment_cassette``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from tests.flows.test_cassettes import payment, run
from tests.flows.test_cassettes import seeded as cassette_seed
from tests.support.flows import Integration

pytestmark = [pytest.mark.anyio, pytest.mark.vcr, pytest.mark.block_network]

CASSETTES = Path(__file__).parent / "cassettes" / "test_overpayment_cassette"


@pytest.fixture
def splice_emulators(record_mode: str) -> bool:
    """The emulators answer while recording; the cassette answers when replaying."""
    return record_mode != "none"


def seeded(record_mode: str, name: str, seed: Callable[[], dict[str, str]]) -> dict[str, str]:
    """Seed the emulators when recording (and keep the ids here); read them when replaying."""
    return cassette_seed(record_mode, name, seed, CASSETTES)


async def test_overpayment(integration: Integration, record_mode: str) -> None:
    it = integration

    def seed_deal() -> dict[str, str]:
        account = it.account("Cassette Overpayer", BillingCity="Tromsø", Billing_Email__c="ap@overpay.example")
        service = it.product("Cassette Overpaid Service", 480, Family="Services")
        opp = it.opportunity(account, [{"product": service, "Quantity": 1}])
        return {"account": account, "opportunity": opp}

    ids = seeded(record_mode, "overpayment_seed", seed_deal)
    invoice = (await run(it, "opportunity-to-invoice", {"Id": ids["opportunity"]})).payload
    assert Decimal(str(invoice["TotalAmt"])) == Decimal("480")

    paid = seeded(record_mode, "overpayment",
                  lambda: {"payment": payment(it, invoice, "480.00", "530.00", "2026-04-03")["Id"]})
    message = await run(it, "payment-to-salesforce", {}, {"entity": "Payment", "entityId": paid["payment"],
                                                          "operation": "Create"})
    [status] = message.vars["updated"]
    assert status == {"Amount_Paid__c": 480, "Balance_Due__c": 0, "Payment_Status__c": "Paid",
                      "Last_Payment_Date__c": "2026-04-03", "Amount_Credited__c": 0, "Unapplied_Amount__c": 50}
    assert message.vars["unapplied"] == 50
    assert message.vars["account"]["Id"] == ids["account"]
    if record_mode != "none":
        assert it.record("Opportunity", ids["opportunity"])["Unapplied_Amount__c"] == 50
        assert it.record("Account", ids["account"])["Unapplied_Amount__c"] == 50


def test_the_overpayment_cassette_holds_no_secrets() -> None:
    """No token, secret or company id was written into this cassette."""
    from connectors.quickbooks.sandbox import sandbox_settings as quickbooks_settings
    from connectors.salesforce.sandbox import sandbox_settings as salesforce_settings
    from tests.support.flows import ENVIRON, REALM

    secrets = [str(settings[key]) for settings in (quickbooks_settings("http://q"), salesforce_settings("http://s"))
               for key in ("client-secret", "refresh-token") if settings.get(key)]
    assert secrets
    texts: list[str] = [p.read_text() for p in CASSETTES.glob("*.yaml")]
    assert texts, "no cassette recorded"
    for text in texts:
        assert REALM not in text and "Bearer " not in text
        for name in ("SALESFORCE_CLIENT_SECRET", "QUICKBOOKS_CLIENT_SECRET", "QUICKBOOKS_REFRESH_TOKEN"):
            assert ENVIRON[name] not in text
        for secret in secrets:
            assert secret not in text


