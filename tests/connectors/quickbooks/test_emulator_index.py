"""The emulator's query indexes and paged selections answer exactly as a scan of every row does."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from connectors.quickbooks.emulator import query as engine
from connectors.quickbooks.emulator.app import Emulator
from connectors.quickbooks.emulator.entities import Company
from connectors.quickbooks.emulator.faults import Fault
from connectors.quickbooks.emulator.query import run_query
from connectors.quickbooks.emulator.table import Table

QUERIES = [
    "select * from Invoice where DocNumber = 'SF-A'",
    "select * from Invoice where DocNumber = 'sf-a'",
    "select * from Invoice where DocNumber in ('SF-A', 'SF-B', 'nobody', 'SF-RENAMED')",
    "select * from Invoice where DocNumber in ('SF-A', 'SF-B') STARTPOSITION 2 MAXRESULTS 1",
    "select * from Invoice where DocNumber in ('SF-A', 'SF-B', 'SF-C') ORDER BY TxnDate DESC",
    "select count(*) from Invoice where DocNumber in ('SF-A', 'SF-B', 'SF-C', 'SF-RENAMED')",
    "select * from Invoice where DocNumber = 'SF-B' and TxnDate >= '2026-03-02'",
    "select * from Invoice where DocNumber = 'SF-DUP'",
    "select * from Invoice where DocNumber = '1001'",
    "select * from Invoice where DocNumber = 1001",
    "select * from Invoice where DocNumber in (1001, 'SF-A')",
    "select * from Invoice where DocNumber = 'SF-RENAMED'",
    "select * from Invoice where DocNumber != 'SF-A'",
    "select * from Invoice where Id in ('14', '15', '16', '900') ORDER BY Id DESC",
    "select * from Invoice where CustomerRef = '12' ORDER BY DocNumber",
    "select * from Invoice where TxnDate >= '2026-03-01' ORDER BY TotalAmt, DocNumber DESC",
    "select * from Invoice where TxnDate >= '2026-03-01' STARTPOSITION 3 MAXRESULTS 2",
    "select * from Customer where DisplayName = 'cool cars'",
    r"select * from Customer where DisplayName in ('Cool Cars', 'Amy\'s Bird Sanctuary')",
    "select * from Customer where DisplayName = 'Cool Cars' and Active = false",
    "select * from TaxCode",
]


def scanned(company: Company, text: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The answer of the plain engine: every row scanned, sorted by the general comparison."""
    tables = company.tables
    with monkeypatch.context() as patched:
        patched.setattr(engine, "_sort_by_id", lambda rows, order: False)
        company.tables = {name: dict(table) for name, table in tables.items()}  # type: ignore[misc]
        try:
            return _answer(company, text)
        finally:
            company.tables = tables


def _answer(company: Company, text: str) -> dict[str, Any]:
    try:
        return run_query(company, text)
    except Fault as fault:
        return {"fault": fault.code}
    except ArithmeticError as exc:
        return {"error": type(exc).__name__}


def assert_same(company: Company, monkeypatch: pytest.MonkeyPatch) -> None:
    for text in QUERIES:
        assert _answer(company, text) == scanned(company, text, monkeypatch), text


@pytest.fixture
def company() -> Company:
    """The seeded company with five invoices (one DocNumber used twice), made through the API."""
    company = Emulator().companies["9130357766900000"]
    customers = [c["Id"] for c in company.tables["Customer"].values()]
    for number, customer, day, amount in (("SF-A", 0, 1, "75"), ("SF-B", 1, 2, "150"),
                                          ("SF-C", 2, 3, "75"), ("SF-DUP", 0, 4, "150"),
                                          ("SF-DUP", 1, 5, "75"), (None, 2, 6, "150")):
        body = {"CustomerRef": {"value": customers[customer]}, "TxnDate": f"2026-03-0{day}",
                "Line": [{"DetailType": "SalesItemLineDetail", "Amount": Decimal(amount),
                          "SalesItemLineDetail": {}}]}
        if number:
            body["DocNumber"] = number
        company.create("Invoice", body, {"include": "allowduplicatedocnum"})
    return company


def invoice(company: Company, number: str) -> dict[str, Any]:
    return next(i for i in company.tables["Invoice"].values() if i.get("DocNumber") == number)


def test_indexed_queries_answer_as_a_scan(company: Company, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(company.tables["Invoice"], Table)
    assert_same(company, monkeypatch)
    found = run_query(company, "select * from Invoice where DocNumber in ('sf-a', 'SF-DUP', 'x')")
    assert [i["DocNumber"] for i in found["Invoice"]] == ["SF-A", "SF-DUP", "SF-DUP"]
    assert run_query(company, "select * from Invoice where DocNumber = 'SF-Z'") == {}


def test_the_index_follows_updates_voids_and_deletes(company: Company,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert_same(company, monkeypatch)  # the indexes exist from here on
    renamed = invoice(company, "SF-C")
    body = {**copy.deepcopy(renamed), "DocNumber": "SF-RENAMED"}
    company.update("Invoice", body, {})
    assert run_query(company, "select * from Invoice where DocNumber = 'SF-C'") == {}
    assert run_query(company, "select * from Invoice where DocNumber = 'sf-renamed'"
                     )["Invoice"][0]["Id"] == renamed["Id"]
    assert_same(company, monkeypatch)

    sparse = invoice(company, "SF-B")
    company.update("Invoice", {"Id": sparse["Id"], "SyncToken": sparse["SyncToken"],
                               "sparse": True, "DocNumber": "SF-C"}, {})
    assert run_query(company, "select * from Invoice where DocNumber = 'SF-B'") == {}
    assert run_query(company, "select * from Invoice where DocNumber = 'SF-C'"
                     )["Invoice"][0]["Id"] == sparse["Id"]
    assert_same(company, monkeypatch)

    voided = invoice(company, "SF-A")
    company.void("Invoice", {"Id": voided["Id"], "SyncToken": voided["SyncToken"]})
    assert run_query(company, "select * from Invoice where DocNumber = 'SF-A'"
                     )["Invoice"][0]["TotalAmt"] == 0
    assert_same(company, monkeypatch)

    deleted = invoice(company, "SF-RENAMED")
    company.delete("Invoice", {"Id": deleted["Id"], "SyncToken": deleted["SyncToken"]})
    assert run_query(company, "select * from Invoice where DocNumber = 'SF-RENAMED'") == {}
    assert run_query(company, "select count(*) from Invoice where DocNumber = 'SF-RENAMED'"
                     ) == {"totalCount": 0}
    assert_same(company, monkeypatch)


def test_duplicate_doc_numbers_are_found_through_the_index(company: Company) -> None:
    """6140 for a number in use, also once an update gave it to another invoice; a freed number
    can be used again."""
    line = invoice(company, "SF-A")["Line"][:1]
    customer = invoice(company, "SF-A")["CustomerRef"]
    with pytest.raises(Fault) as info:
        company.create("Invoice", {"CustomerRef": customer, "DocNumber": "SF-A", "Line": line}, {})
    assert info.value.code == "6140"
    moved = invoice(company, "SF-B")
    company.update("Invoice", {"Id": moved["Id"], "SyncToken": moved["SyncToken"], "sparse": True,
                               "DocNumber": "SF-NEW"}, {})
    company.create("Invoice", {"CustomerRef": customer, "DocNumber": "SF-B", "Line": line}, {})
    with pytest.raises(Fault) as info:
        company.create("Invoice", {"CustomerRef": customer, "DocNumber": "SF-NEW", "Line": line}, {})
    assert info.value.code == "6140"


def test_rows_written_straight_into_the_table_are_indexed(company: Company,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """As the benchmark seeds: rows set, replaced, popped and deleted as a dict's."""
    table = company.tables["Invoice"]
    assert_same(company, monkeypatch)
    template = copy.deepcopy(invoice(company, "SF-A"))
    table["900"] = {**template, "Id": "900", "DocNumber": "SF-B"}
    table.setdefault("901", {**template, "Id": "901", "DocNumber": "SF-RENAMED"})
    assert [i["Id"] for i in run_query(
        company, "select * from Invoice where DocNumber in ('SF-B', 'SF-RENAMED')")["Invoice"]
    ] == [invoice(company, "SF-B")["Id"], "900", "901"]
    assert_same(company, monkeypatch)
    table["900"] = {**template, "Id": "900", "DocNumber": "SF-C"}
    del table["901"]
    table.pop(invoice(company, "SF-A")["Id"])
    assert run_query(company, "select * from Invoice where DocNumber = 'SF-A'") == {}
    assert_same(company, monkeypatch)
    table.update({"902": {**template, "Id": "902", "DocNumber": "SF-A"}})
    assert run_query(company, "select * from Invoice where DocNumber = 'SF-A'"
                     )["Invoice"][0]["Id"] == "902"
    assert_same(company, monkeypatch)
    table.clear()
    assert run_query(company, "select * from Invoice where DocNumber = 'SF-C'") == {}
    table["903"] = {**template, "Id": "903", "DocNumber": "SF-C"}
    assert run_query(company, "select * from Invoice where DocNumber = 'SF-C'"
                     )["Invoice"][0]["Id"] == "903"
    assert copy.deepcopy(table) == table and isinstance(copy.deepcopy(table), Table)


def test_later_pages_see_changes_made_between_pages(company: Company,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A later page reuses the earlier page's selection only while the table is unchanged."""
    paged = "select * from Invoice where TxnDate >= '2026-03-01' STARTPOSITION {} MAXRESULTS 2"
    first = run_query(company, paged.format(1))
    assert first == scanned(company, paged.format(1), monkeypatch)
    for start in (3, 5, 7):
        assert run_query(company, paged.format(start)) == scanned(company, paged.format(start),
                                                                   monkeypatch)
    moved = first["Invoice"][0]
    company.update("Invoice", {"Id": moved["Id"], "SyncToken": moved["SyncToken"], "sparse": True,
                               "TxnDate": "2026-02-01"}, {})
    for start in (3, 5):
        assert run_query(company, paged.format(start)) == scanned(company, paged.format(start),
                                                                   monkeypatch)
    first = run_query(company, paged.format(1))
    del company.tables["Invoice"][first["Invoice"][1]["Id"]]
    assert run_query(company, paged.format(3)) == scanned(company, paged.format(3), monkeypatch)


def test_tax_codes_with_text_ids_are_listed_in_id_order(company: Company) -> None:
    """QuickBooks US tax codes have the Ids TAX and NON: ordering by Id must not need numbers."""
    company.tables["TaxCode"]["TAX"] = {"Id": "TAX", "Name": "Taxable", "Active": True}
    company.tables["TaxCode"]["NON"] = {"Id": "NON", "Name": "Non-Taxable", "Active": True}
    ids = [row["Id"] for row in run_query(company, "select * from TaxCode")["TaxCode"]]
    assert ids == sorted(company.tables["TaxCode"], key=str.lower)
    assert {"TAX", "NON"} <= set(ids)
