"""payment-to-salesforce through ``splice serve``: a signed QuickBooks webhook moves the opportunity."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from decimal import Decimal

import httpx
import pytest

from runtime.server.app import create_app
from runtime.testing import wait_until
from tests.support.flows import ENVIRON, REALM, Integration

pytestmark = pytest.mark.anyio


def signed(body: bytes) -> dict[str, str]:
    key = ENVIRON["QUICKBOOKS_WEBHOOK_VERIFIER_TOKEN"].encode()
    return {"intuit-signature": base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode(),
            "content-type": "application/json"}


async def test_signed_payment_webhook_updates_the_opportunity(integration: Integration) -> None:
    it = integration
    account = it.account("Webhook Payer SA")
    product = it.product("Webhook service", 250)
    opp = it.opportunity(account, [{"product": product, "Quantity": 1}])
    assert (await it.run("opportunity-to-invoice", it.record("Opportunity", opp))).status == "completed"
    invoice = it.company.tables["Invoice"][it.record("Opportunity", opp)["QuickBooks_Invoice_Id__c"]]
    payment = it.company.create("Payment", {
        "CustomerRef": invoice["CustomerRef"], "TotalAmt": Decimal("250.00"), "TxnDate": "2026-04-30",
        "Line": [{"Amount": Decimal("250.00"), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]}, {})
    body = json.dumps({"eventNotifications": [{"realmId": REALM, "dataChangeEvent": {"entities": [
        {"name": "Payment", "id": payment["Id"], "operation": "Create",
         "lastUpdated": "2026-04-30T10:00:00.000Z"}]}}]}).encode()
    app = create_app(it.runtime, drain_timeout=5)
    async with app.lifespan():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://splice") as client:
            forged = await client.post("/webhooks/quickbooks", content=body,
                                       headers={**signed(body), "intuit-signature": "Zm9yZ2Vk"})
            answer = await client.post("/webhooks/quickbooks", content=body, headers=signed(body))
            # the inbox is handled shortly after the 200 answer
            await wait_until(lambda: it.record("Opportunity", opp)["Payment_Status__c"] == "Paid",
                             within=20, interval=0.1, what="the opportunity to be paid")
    assert forged.status_code == 401 and answer.status_code == 200
    record = it.record("Opportunity", opp)
    assert (record["Amount_Paid__c"], record["Balance_Due__c"], record["Last_Payment_Date__c"]) == (250, 0, "2026-04-30")
