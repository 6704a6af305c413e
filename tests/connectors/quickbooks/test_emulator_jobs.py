"""Sub-customers and jobs in the emulator, over its HTTP API, as QuickBooks keeps them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.support.quickbooks import CLIENT_ID, CLIENT_SECRET, REALM, SEED_REFRESH_TOKEN

pytestmark = pytest.mark.anyio
API = f"/v3/company/{REALM}"


@pytest.fixture
async def http(emulator: Any, anyio_backend: str) -> AsyncIterator[httpx.AsyncClient]:
    """A raw client with a valid access token."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator),
                                 base_url="http://qb.test") as client:
        token = await client.post("/oauth2/v1/tokens/bearer", auth=(CLIENT_ID, CLIENT_SECRET), data={
            "grant_type": "refresh_token", "refresh_token": SEED_REFRESH_TOKEN})
        client.headers.update({"Authorization": f"Bearer {token.json()['access_token']}",
                               "Accept": "application/json"})
        yield client


async def _customer(http: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
    return await http.post(f"{API}/customer", json=body)


async def _made(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = await _customer(http, body)
    assert answer.status_code == 200, answer.text
    made: dict[str, Any] = answer.json()["Customer"]
    return made


def _fault(answer: httpx.Response) -> tuple[str, str]:
    assert answer.status_code == 400, answer.text
    error = answer.json()["Fault"]["Error"][0]
    return str(error["code"]), str(error.get("element", ""))


async def _query(http: httpx.AsyncClient, sql: str) -> list[dict[str, Any]]:
    answer = await http.post(f"{API}/query", content=sql, headers={"Content-Type": "application/text"})
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()["QueryResponse"].get("Customer", [])
    return rows


async def test_a_job_nests_under_its_parent(http: httpx.AsyncClient) -> None:
    """Job, ParentRef, Level and FullyQualifiedName ("Parent:Child") as QuickBooks answers them."""
    parent = await _made(http, {"DisplayName": "Harbor Consulting"})
    assert (parent["Job"], parent["Level"], parent["FullyQualifiedName"]) == (False, 0, "Harbor Consulting")
    job = await _made(http, {"DisplayName": "Website Redesign", "Job": True, "BillWithParent": True,
                             "ParentRef": {"value": parent["Id"]}})
    assert job["Job"] is True and job["BillWithParent"] is True and job["IsProject"] is False
    assert job["ParentRef"]["value"] == parent["Id"]
    assert (job["Level"], job["FullyQualifiedName"]) == (1, "Harbor Consulting:Website Redesign")
    phase = await _made(http, {"DisplayName": "Phase 1", "Job": True, "ParentRef": {"value": job["Id"]}})
    assert (phase["Level"], phase["FullyQualifiedName"]) == (2, "Harbor Consulting:Website Redesign:Phase 1")
    # Found by its full name, by its parent, and among the jobs.
    by_name = await _query(http, "select * from Customer where FullyQualifiedName = "
                                 "'Harbor Consulting:Website Redesign'")
    assert [c["Id"] for c in by_name] == [job["Id"]]
    assert [c["Id"] for c in await _query(http, f"select * from Customer where ParentRef = '{parent['Id']}'")] \
        == [job["Id"]]
    jobs = await _query(http, "select * from Customer where Job = true")
    assert {c["Id"] for c in jobs} == {job["Id"], phase["Id"]}
    below = await _query(http, "select * from Customer where FullyQualifiedName like 'Harbor Consulting:%'")
    assert {c["Id"] for c in below} == {job["Id"], phase["Id"]}


async def test_what_quickbooks_refuses_of_a_sub_customer(http: httpx.AsyncClient) -> None:
    """A missing or inactive parent (2500), a job without a parent (2020), a ':' in its name
    (2050), a name any customer holds (6240), nesting beyond four levels or in a circle (6000)."""
    parent = await _made(http, {"DisplayName": "Quarry Partners"})
    assert _fault(await _customer(http, {"DisplayName": "Orphan", "Job": True,
                                         "ParentRef": {"value": "9999"}})) == ("2500", "ParentRef")
    assert _fault(await _customer(http, {"DisplayName": "Orphan", "Job": True})) == ("2020", "ParentRef")
    assert _fault(await _customer(http, {"DisplayName": "Quarry Partners:Dig", "Job": True,
                                         "ParentRef": {"value": parent["Id"]}}))[0] == "2050"
    # DisplayName is unique across all customers, jobs too: a job cannot take a customer's name,
    # nor the name of another parent's job.
    assert _fault(await _customer(http, {"DisplayName": "Cool Cars", "Job": True,
                                         "ParentRef": {"value": parent["Id"]}}))[0] == "6240"
    other = await _made(http, {"DisplayName": "Ridge Partners"})
    await _made(http, {"DisplayName": "Survey", "Job": True, "ParentRef": {"value": other["Id"]}})
    assert _fault(await _customer(http, {"DisplayName": "Survey", "Job": True,
                                         "ParentRef": {"value": parent["Id"]}}))[0] == "6240"
    level = parent
    for depth in range(1, 5):
        level = await _made(http, {"DisplayName": f"Level {depth}", "Job": True,
                                   "ParentRef": {"value": level["Id"]}})
    assert level["Level"] == 4
    assert _fault(await _customer(http, {"DisplayName": "Level 5", "Job": True,
                                         "ParentRef": {"value": level["Id"]}})) == ("6000", "ParentRef")
    circle = {"Id": parent["Id"], "SyncToken": parent["SyncToken"], "sparse": True,
              "Job": True, "ParentRef": {"value": level["Id"]}}
    assert _fault(await http.post(f"{API}/customer", json=circle)) == ("6000", "ParentRef")
    sleepy = await _made(http, {"DisplayName": "Dormant Ltd"})
    inactive = await http.post(f"{API}/customer", json={"Id": sleepy["Id"], "SyncToken": sleepy["SyncToken"],
                                                        "sparse": True, "Active": False})
    assert inactive.status_code == 200
    assert _fault(await _customer(http, {"DisplayName": "Revival", "Job": True,
                                         "ParentRef": {"value": sleepy["Id"]}})) == ("2500", "ParentRef")


async def test_renaming_a_parent_renames_its_jobs_full_names(http: httpx.AsyncClient) -> None:
    parent = await _made(http, {"DisplayName": "Old Name Co"})
    job = await _made(http, {"DisplayName": "Audit", "Job": True, "ParentRef": {"value": parent["Id"]}})
    renamed = await http.post(f"{API}/customer", json={"Id": parent["Id"], "SyncToken": parent["SyncToken"],
                                                       "sparse": True, "DisplayName": "New Name Co"})
    assert renamed.status_code == 200, renamed.text
    read = (await http.get(f"{API}/customer/{job['Id']}")).json()["Customer"]
    assert read["FullyQualifiedName"] == "New Name Co:Audit"


async def test_an_invoice_on_a_job_counts_in_the_parents_balance_with_jobs(http: httpx.AsyncClient) -> None:
    """The job's Balance is its open invoices; the parent's BalanceWithJobs adds it, and both
    follow a payment."""
    parent = await _made(http, {"DisplayName": "Balance Parent"})
    job = await _made(http, {"DisplayName": "Balance Job", "Job": True, "ParentRef": {"value": parent["Id"]}})
    hours = (await http.post(f"{API}/query", content="select * from Item where Name = 'Hours'",
                             headers={"Content-Type": "application/text"})).json()["QueryResponse"]["Item"][0]
    made = await http.post(f"{API}/invoice", json={
        "CustomerRef": {"value": job["Id"]},
        "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 300,
                  "SalesItemLineDetail": {"ItemRef": {"value": hours["Id"]}, "Qty": 4, "UnitPrice": 75}}]})
    assert made.status_code == 200, made.text
    invoice = made.json()["Invoice"]
    assert invoice["CustomerRef"] == {"value": job["Id"], "name": "Balance Job"}

    async def balances() -> tuple[Any, ...]:
        j = (await http.get(f"{API}/customer/{job['Id']}")).json()["Customer"]
        p = (await http.get(f"{API}/customer/{parent['Id']}")).json()["Customer"]
        return (Decimal(str(j["Balance"])), Decimal(str(p["Balance"])), Decimal(str(p["BalanceWithJobs"])))

    assert await balances() == (Decimal("300"), Decimal("0"), Decimal("300"))
    paid = await http.post(f"{API}/payment", json={
        "CustomerRef": {"value": job["Id"]}, "TotalAmt": 120,
        "Line": [{"Amount": 120, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]})
    assert paid.status_code == 200, paid.text
    assert await balances() == (Decimal("180"), Decimal("0"), Decimal("180"))


async def test_a_job_moved_to_another_parent_takes_its_balance_along(http: httpx.AsyncClient) -> None:
    first = await _made(http, {"DisplayName": "First Parent"})
    second = await _made(http, {"DisplayName": "Second Parent"})
    job = await _made(http, {"DisplayName": "Moving Job", "Job": True, "ParentRef": {"value": first["Id"]}})
    hours = (await http.post(f"{API}/query", content="select * from Item where Name = 'Hours'",
                             headers={"Content-Type": "application/text"})).json()["QueryResponse"]["Item"][0]
    made = await http.post(f"{API}/invoice", json={
        "CustomerRef": {"value": job["Id"]},
        "Line": [{"DetailType": "SalesItemLineDetail", "Amount": 75,
                  "SalesItemLineDetail": {"ItemRef": {"value": hours["Id"]}, "Qty": 1, "UnitPrice": 75}}]})
    assert made.status_code == 200, made.text
    job = (await http.get(f"{API}/customer/{job['Id']}")).json()["Customer"]
    moved = await http.post(f"{API}/customer", json={"Id": job["Id"], "SyncToken": job["SyncToken"],
                                                     "sparse": True, "ParentRef": {"value": second["Id"]}})
    assert moved.status_code == 200, moved.text
    assert moved.json()["Customer"]["FullyQualifiedName"] == "Second Parent:Moving Job"

    async def with_jobs(customer_id: str) -> Decimal:
        return Decimal(str((await http.get(f"{API}/customer/{customer_id}")).json()["Customer"]["BalanceWithJobs"]))

    assert (await with_jobs(first["Id"]), await with_jobs(second["Id"])) == (Decimal("0"), Decimal("75"))
