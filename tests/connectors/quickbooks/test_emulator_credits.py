"""Credit memos, refund receipts, unapplied payments and voids in the emulator, over its HTTP API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from connectors.quickbooks.money import dumps, loads
from tests.support.quickbooks import CLIENT_ID, CLIENT_SECRET, REALM, SEED_REFRESH_TOKEN

pytestmark = pytest.mark.anyio
API = f"/v3/company/{REALM}"


@pytest.fixture
async def http(emulator: Any, anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """A raw client with a valid access token."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator),
                                 base_url="http://qb.test") as client:
        token = await client.post("/oauth2/v1/tokens/bearer", auth=(CLIENT_ID, CLIENT_SECRET),
                                  data={"grant_type": "refresh_token", "refresh_token": SEED_REFRESH_TOKEN})
        client.headers.update({"Authorization": f"Bearer {token.json()['access_token']}",
                               "Accept": "application/json", "Content-Type": "application/json"})
        yield client


async def post(http: httpx.AsyncClient, resource: str, body: dict[str, Any],
               **params: str) -> tuple[int, dict[str, Any]]:
    response = await http.post(f"{API}/{resource}", content=dumps(body),
                               params={"minorversion": "75", **params})
    return response.status_code, loads(response.content)


async def read(http: httpx.AsyncClient, entity: str, entity_id: str) -> dict[str, Any]:
    response = await http.get(f"{API}/{entity.lower()}/{entity_id}")
    assert response.status_code == 200, response.text
    return dict(loads(response.content)[entity])


async def query(http: httpx.AsyncClient, text: str) -> dict[str, Any]:
    response = await http.get(f"{API}/query", params={"query": text})
    assert response.status_code == 200, response.text
    return dict(loads(response.content)["QueryResponse"])


def code(body: dict[str, Any]) -> str:
    return str(body["Fault"]["Error"][0]["code"])


async def ids(http: httpx.AsyncClient) -> tuple[str, str, str]:
    """A customer, an item of 100.00 and a bank account."""
    customer = (await query(http, "select * from Customer where DisplayName = 'Cool Cars'"))["Customer"][0]
    item = (await query(http, "select * from Item where Name = 'Hours'"))["Item"][0]
    status, bank = await post(http, "account", {"Name": "Checking", "AccountType": "Bank"})
    assert status == 200
    return customer["Id"], item["Id"], bank["Account"]["Id"]


def lines(item: str, amount: str) -> list[dict[str, Any]]:
    return [{"DetailType": "SalesItemLineDetail", "Amount": Decimal(amount),
             "SalesItemLineDetail": {"ItemRef": {"value": item}}}]


async def test_credit_memo_applied_by_a_payment_settles_the_invoice(http: httpx.AsyncClient) -> None:
    """A credit memo has RemainingCredit; a $0 payment linking it and an invoice lowers both."""
    customer, item, _ = await ids(http)
    _, invoice = await post(http, "invoice", {"CustomerRef": {"value": customer}, "Line": lines(item, "1000")})
    invoice = invoice["Invoice"]
    status, memo = await post(http, "creditmemo", {"CustomerRef": {"value": customer},
                                                   "DocNumber": "CM-1", "Line": lines(item, "600")})
    assert status == 200, memo
    memo = memo["CreditMemo"]
    assert memo["TotalAmt"] == Decimal("600") and memo["RemainingCredit"] == Decimal("600")
    assert memo["Balance"] == Decimal("600") and memo["CustomerRef"]["name"] == "Cool Cars"

    too_much = {"CustomerRef": {"value": customer}, "TotalAmt": 0, "Line": [
        {"Amount": Decimal("700"), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]},
        {"Amount": Decimal("700"), "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]}]}
    status, refused = await post(http, "payment", too_much)
    assert status == 400 and code(refused) == "6000"

    status, applied = await post(http, "payment", {"CustomerRef": {"value": customer}, "TotalAmt": 0, "Line": [
        {"Amount": Decimal("600"), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]},
        {"Amount": Decimal("600"), "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]}]})
    assert status == 200, applied
    assert applied["Payment"]["UnappliedAmt"] == 0
    assert (await read(http, "Invoice", invoice["Id"]))["Balance"] == Decimal("400")
    used = await read(http, "CreditMemo", memo["Id"])
    assert used["RemainingCredit"] == 0
    assert used["LinkedTxn"] == [{"TxnId": applied["Payment"]["Id"], "TxnType": "Payment"}]

    # A used credit memo is not deleted; deleting the payment gives the credit back.
    status, refused = await post(http, "creditmemo", {"Id": memo["Id"], "SyncToken": used["SyncToken"]},
                                 operation="delete")
    assert status == 400 and code(refused) == "6000"
    payment = applied["Payment"]
    status, _ = await post(http, "payment", {"Id": payment["Id"], "SyncToken": payment["SyncToken"]},
                           operation="delete")
    assert status == 200
    assert (await read(http, "CreditMemo", memo["Id"]))["RemainingCredit"] == Decimal("600")
    assert (await read(http, "Invoice", invoice["Id"]))["Balance"] == Decimal("1000")
    found = await query(http, f"select * from CreditMemo where CustomerRef = '{customer}'")
    assert [m["Id"] for m in found["CreditMemo"]] == [memo["Id"]]


async def test_refund_receipt_pays_out_a_credit(http: httpx.AsyncClient) -> None:
    """A RefundReceipt needs DepositToAccountRef of a bank-like account; linked to a credit memo it
    uses that credit (at most what is left); a PaymentMethodRef must exist."""
    customer, item, bank = await ids(http)
    _, memo = await post(http, "creditmemo", {"CustomerRef": {"value": customer}, "Line": lines(item, "250")})
    memo = memo["CreditMemo"]
    body: dict[str, Any] = {"CustomerRef": {"value": customer}, "Line": lines(item, "250"),
                            "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]}
    status, refused = await post(http, "refundreceipt", body)
    assert status == 400 and code(refused) == "2020"
    income = (await query(http, "select * from Account where Name = 'Services'"))["Account"][0]
    status, refused = await post(http, "refundreceipt", {**body, "DepositToAccountRef": {"value": income["Id"]}})
    assert status == 400 and code(refused) == "6000"
    status, refused = await post(http, "refundreceipt", {**body, "DepositToAccountRef": {"value": bank},
                                                         "PaymentMethodRef": {"value": "999"}})
    assert status == 400 and code(refused) == "2500"
    # A company starts with its payment methods (Cash, Check, the cards).
    method = (await query(http, "select * from PaymentMethod where Name = 'Check'"))["PaymentMethod"][0]
    status, refund = await post(http, "refundreceipt", {**body, "DepositToAccountRef": {"value": bank},
                                                        "PaymentMethodRef": {"value": method["Id"]}})
    assert status == 200, refund
    refund = refund["RefundReceipt"]
    assert refund["TotalAmt"] == Decimal("250") and refund["Balance"] == 0
    assert refund["DepositToAccountRef"] == {"value": bank, "name": "Checking"}
    assert refund["PaymentMethodRef"]["name"] == "Check"
    assert (await read(http, "CreditMemo", memo["Id"]))["RemainingCredit"] == 0
    status, refused = await post(http, "refundreceipt", {**body, "DepositToAccountRef": {"value": bank}})
    assert status == 400 and code(refused) == "6000"


async def test_overpayment_keeps_its_unapplied_amount(http: httpx.AsyncClient) -> None:
    """A payment larger than the invoice lines it links keeps the rest as UnappliedAmt."""
    customer, item, _ = await ids(http)
    _, invoice = await post(http, "invoice", {"CustomerRef": {"value": customer}, "Line": lines(item, "100")})
    status, payment = await post(http, "payment", {"CustomerRef": {"value": customer}, "TotalAmt": Decimal("130"),
                                                   "Line": [{"Amount": Decimal("100"), "LinkedTxn": [
                                                       {"TxnId": invoice["Invoice"]["Id"], "TxnType": "Invoice"}]}]})
    assert status == 200
    assert payment["Payment"]["UnappliedAmt"] == Decimal("30")


async def test_an_invoice_with_payments_is_not_voided(http: httpx.AsyncClient) -> None:
    """QuickBooks refuses to void a paid or partly paid invoice (6000); without payments it voids."""
    customer, item, _ = await ids(http)
    _, invoice = await post(http, "invoice", {"CustomerRef": {"value": customer}, "Line": lines(item, "100")})
    invoice = invoice["Invoice"]
    _, payment = await post(http, "payment", {"CustomerRef": {"value": customer}, "TotalAmt": Decimal("40"),
                                              "Line": [{"Amount": Decimal("40"), "LinkedTxn": [
                                                  {"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]})
    current = await read(http, "Invoice", invoice["Id"])
    status, refused = await post(http, "invoice", {"Id": invoice["Id"], "SyncToken": current["SyncToken"]},
                                 operation="void")
    assert status == 400 and code(refused) == "6000"
    paid = payment["Payment"]
    await post(http, "payment", {"Id": paid["Id"], "SyncToken": paid["SyncToken"], "sparse": True},
               operation="update", include="void")
    current = await read(http, "Invoice", invoice["Id"])
    status, voided = await post(http, "invoice", {"Id": invoice["Id"], "SyncToken": current["SyncToken"]},
                                operation="void")
    assert status == 200 and voided["Invoice"]["PrivateNote"].startswith("Voided")


async def test_credit_memos_and_refunds_are_in_change_data_capture(emulator: Any, http: httpx.AsyncClient) -> None:
    """CDC lists CreditMemo and RefundReceipt changes like any other transaction (30 days back at most)."""
    customer, item, bank = await ids(http)
    _, memo = await post(http, "creditmemo", {"CustomerRef": {"value": customer}, "Line": lines(item, "10")})
    _, refund = await post(http, "refundreceipt", {"CustomerRef": {"value": customer}, "Line": lines(item, "10"),
                                                   "DepositToAccountRef": {"value": bank}})
    too_old = await http.get(f"{API}/cdc", params={"entities": "CreditMemo", "changedSince": "2020-01-01T00:00:00-07:00"})
    assert too_old.status_code == 400
    since = (emulator.state.emulator.now() - timedelta(hours=1)).isoformat()
    response = await http.get(f"{API}/cdc", params={"entities": "CreditMemo,RefundReceipt", "changedSince": since})
    entries = loads(response.content)["CDCResponse"][0]["QueryResponse"]
    found = {name: [row["Id"] for row in entry[name]] for entry in entries for name in entry
             if name in ("CreditMemo", "RefundReceipt")}
    assert found == {"CreditMemo": [memo["CreditMemo"]["Id"]], "RefundReceipt": [refund["RefundReceipt"]["Id"]]}


async def test_each_refusal_of_credits_voids_and_sending_is_typed_as_a_permanent_error(
        http: httpx.AsyncClient) -> None:
    """Every refusal of this area answers HTTP 400 with a ValidationFault of a numeric code, the
    QuickBooks Message and a Detail; the connector types each one and none is retried (sending
    again changes nothing until a person or the flow changes the request)."""
    from connectors.quickbooks.errors import error_from_response

    customer, item, bank = await ids(http)
    _, invoice = await post(http, "invoice", {"CustomerRef": {"value": customer}, "Line": lines(item, "100")})
    invoice = invoice["Invoice"]
    _, payment = await post(http, "payment", {"CustomerRef": {"value": customer}, "TotalAmt": Decimal("40"),
                                              "Line": [{"Amount": Decimal("40"), "LinkedTxn": [
                                                  {"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]})
    _, memo = await post(http, "creditmemo", {"CustomerRef": {"value": customer}, "Line": lines(item, "50")})
    memo = memo["CreditMemo"]
    current = await read(http, "Invoice", invoice["Id"])
    income = (await query(http, "select * from Account where Name = 'Services'"))["Account"][0]
    refund: dict[str, Any] = {"CustomerRef": {"value": customer}, "Line": lines(item, "80"),
                              "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]}
    business = "A business validation error has occurred while processing your request"
    cases: list[tuple[str, dict[str, Any], dict[str, str], str, str, str]] = [
        # resource, body, query, code, error type, start of the Message
        ("invoice", {"Id": invoice["Id"], "SyncToken": current["SyncToken"]}, {"operation": "void"},
         "6000", "QUICKBOOKS:VALIDATION", business),
        ("creditmemo", {"Id": memo["Id"], "SyncToken": memo["SyncToken"]}, {"operation": "void"},
         "500", "QUICKBOOKS:UNSUPPORTED_OPERATION", "Unsupported Operation"),
        ("payment", {"CustomerRef": {"value": customer}, "TotalAmt": 0, "Line": [
            {"Amount": Decimal("60"), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]},
            {"Amount": Decimal("60"), "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]}]}, {},
         "6000", "QUICKBOOKS:VALIDATION", business),
        ("payment", {"CustomerRef": {"value": customer}, "TotalAmt": Decimal("90"), "Line": [
            {"Amount": Decimal("90"), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]}, {},
         "6000", "QUICKBOOKS:VALIDATION", business),
        ("refundreceipt", refund, {}, "2020", "QUICKBOOKS:VALIDATION", "Required param missing"),
        ("refundreceipt", {**refund, "DepositToAccountRef": {"value": income["Id"]}}, {},
         "6000", "QUICKBOOKS:VALIDATION", business),
        ("refundreceipt", {**refund, "DepositToAccountRef": {"value": bank}}, {},
         "6000", "QUICKBOOKS:VALIDATION", business),
        ("refundreceipt", {**refund, "DepositToAccountRef": {"value": bank},
                           "LinkedTxn": [{"TxnId": "999", "TxnType": "CreditMemo"}]}, {},
         "2500", "QUICKBOOKS:INVALID_REFERENCE", "Invalid Reference Id"),
        ("creditmemo", {"CustomerRef": {"value": customer}, "Line": []}, {},
         "2020", "QUICKBOOKS:VALIDATION", "Required param missing"),
    ]
    for resource, body, params, fault_code, error_type, message in cases:
        response = await http.post(f"{API}/{resource}", content=dumps(body),
                                   params={"minorversion": "75", **params})
        fault = loads(response.content)["Fault"]
        assert response.status_code == 400 and fault["type"] == "ValidationFault", (resource, fault)
        [error] = fault["Error"]
        assert error["code"] == fault_code and error["Message"].startswith(message), (resource, error)
        assert error["Detail"], (resource, error)
        typed = error_from_response(response)
        assert (typed.error_type, typed.retryable) == (error_type, False), (resource, typed)
        assert typed.details["code"] == fault_code and typed.details["detail"] == error["Detail"]
    assert payment["Payment"]["Id"]

    nowhere = await http.post(f"{API}/invoice/{invoice['Id']}/send",
                              headers={"Content-Type": "application/octet-stream"})
    [error] = loads(nowhere.content)["Fault"]["Error"]
    assert (error["code"], error["Message"], error["element"]) == ("6000", business, "BillEmail")
    assert error["Detail"] == ("Business Validation Error: You must enter the email address for this "
                               "customer in order to email statements.")
    typed = error_from_response(nowhere)
    assert (typed.error_type, typed.retryable) == ("QUICKBOOKS:VALIDATION", False)
