"""match-or-create: the stored link, then the rules in order; never a record linked elsewhere;
ambiguity and names QuickBooks refuses (6240) resolved by the template, or held; every decision
says which rule and which candidates."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.quickbooks.client import QuickBooksClient
from connectors.quickbooks.matching import NameSlots
from runtime.errors import SpliceError
from runtime.store import ObjectStore
from tests.support.quickbooks import REALM, run_op

pytestmark = pytest.mark.anyio

RULES = "PrimaryEmailAddr.Address, DisplayName+BillAddr.PostalCode, DisplayName"


def company(emulator: Any) -> Any:
    return emulator.state.emulator.companies[REALM]


def acme(city: str, postal: str, email: str) -> dict[str, Any]:
    return {"DisplayName": "Acme", "BillAddr": {"City": city, "PostalCode": postal},
            "PrimaryEmailAddr": {"Address": email}}


async def test_rules_are_tried_in_order_and_say_which_decided(
        emulator: Any, qb: QuickBooksClient, store: ObjectStore) -> None:
    """An e-mail match wins over the name; a record lacking a rule's field skips that rule."""
    company(emulator).create("Customer", acme("Boston", "02110", "ap@acme.example"), {})
    by_mail = await run_op("match-or-create", qb, store, match_rules=RULES,
                           record={"DisplayName": "Acme Holdings",
                                   "PrimaryEmailAddr": {"Address": "AP@acme.example"}})
    assert by_mail["action"] == "linked" and by_mail["rule"] == "e-mail"
    assert by_mail["record"]["DisplayName"] == "Acme"
    assert by_mail["candidates"] == [{"Id": by_mail["record"]["Id"], "name": "Acme",
                                      "rule": "e-mail", "status": "free"}]
    by_postal = await run_op("match-or-create", qb, store, match_rules=RULES,
                             record={"DisplayName": "acme", "BillAddr": {"PostalCode": "02110"}})
    assert by_postal["rule"] == "name + billing postal code"
    assert by_postal["note"].startswith(f"QuickBooks customer {by_postal['record']['Id']} matched by")


async def test_a_customer_linked_elsewhere_is_never_matched(
        emulator: Any, qb: QuickBooksClient, store: ObjectStore) -> None:
    """Linked to another account (named by the caller, or remembered here): a distinct customer
    under the template's name, and the linked one is left as it was."""
    boston = company(emulator).create("Customer", acme("Boston", "02110", "ap@acme.example"), {})
    denver = await run_op("match-or-create", qb, store, match_rules=RULES,
                          record=acme("Denver", "80202", "ap@denver.example"),
                          linked_elsewhere=[boston["Id"]], external_key="001DENVER",
                          template_values={"Name": "Acme", "BillingCity": "Denver"},
                          idempotency_key="acct-001DENVER")
    assert denver["action"] == "created" and denver["rule"] == "disambiguation"
    assert denver["name"] == denver["record"]["DisplayName"] == "Acme (Denver)"
    assert denver["candidates"] == [{"Id": boston["Id"], "name": "Acme", "rule": "name",
                                     "status": "linked to another record"}]
    assert company(emulator).tables["Customer"][boston["Id"]]["SyncToken"] == boston["SyncToken"]

    # A third account of that name: the Denver customer is remembered as 001DENVER's.
    third = await run_op("match-or-create", qb, store, match_rules="DisplayName",
                         record={"DisplayName": "Acme (Denver)"}, external_key="001OTHER",
                         template_values={"Name": "Acme (Denver)"})
    assert third["record"]["Id"] != denver["record"]["Id"]
    assert third["record"]["DisplayName"] == "Acme (Denver) (2)"
    again = await run_op("match-or-create", qb, store, match_rules=RULES,
                         record=acme("Denver", "80202", "ap@denver.example"), external_key="001DENVER")
    assert (again["rule"], again["record"]["Id"]) == ("stored link", denver["record"]["Id"])
    assert again["name"] == "Acme (Denver)"


async def test_hold_creates_nothing_and_says_why(
        emulator: Any, qb: QuickBooksClient, store: ObjectStore) -> None:
    boston = company(emulator).create("Customer", acme("Boston", "02110", "ap@acme.example"), {})
    before = len(company(emulator).tables["Customer"])
    held = await run_op("match-or-create", qb, store, match_rules=RULES, on_ambiguous="hold",
                        record=acme("Denver", "80202", "ap@denver.example"),
                        linked_elsewhere=[boston["Id"]])
    assert held["action"] == "held" and held["record"] is None
    assert held["note"] == (f"Held for review: name matches customer {boston['Id']} 'Acme' "
                            "(linked to another record); nothing created")
    assert len(company(emulator).tables["Customer"]) == before


async def test_a_name_held_by_a_vendor_or_employee_takes_the_template(
        emulator: Any, qb: QuickBooksClient, store: ObjectStore) -> None:
    """6240 from a Vendor: the template's name; an Employee and no template value: numbered."""
    vendor = company(emulator).create("Vendor", {"DisplayName": "Harbor Supply"}, {})
    made = await run_op("match-or-create", qb, store, record={"DisplayName": "Harbor Supply"},
                        template_values={"Name": "Harbor Supply", "BillingCity": "Tacoma"})
    assert made["record"]["DisplayName"] == "Harbor Supply (Tacoma)"
    assert made["reason"] == f"'Harbor Supply' is taken by a QuickBooks Vendor ({vendor['Id']})"
    company(emulator).create("Employee", {"DisplayName": "Ada Byron"}, {})
    numbered = await run_op("match-or-create", qb, store, record={"DisplayName": "Ada Byron"})
    assert numbered["record"]["DisplayName"] == "Ada Byron (2)" and "Employee" in numbered["reason"]


async def test_items_with_different_skus_are_never_one(
        emulator: Any, qb: QuickBooksClient, store: ObjectStore) -> None:
    """distinct-by Sku: the item "Hours" (HRS-1) is not a product "Hours" with another SKU; items
    are not exclusive, so two products of one SKU share its item."""
    other = await run_op("match-or-create", qb, store, entity="Item", match_rules="Sku, Name",
                         distinct_by="Sku", exclusive=False, name_template="{Name} ({ProductCode})",
                         template_values={"Name": "Hours", "ProductCode": "HRS-2"},
                         external_key="01tB", record={"Name": "Hours", "Sku": "HRS-2", "Type": "Service",
                                                      "IncomeAccountRef": {"value": "1"}})
    assert other["action"] == "created" and other["record"]["Name"] == "Hours (HRS-2)"
    assert other["candidates"][0]["status"] == "different SKU"
    for product in ("01tC", "01tD"):
        same = await run_op("match-or-create", qb, store, entity="Item", match_rules="Sku, Name",
                            distinct_by="Sku", exclusive=False, external_key=product,
                            record={"Name": "Hours", "Sku": "HRS-1"})
        assert same["action"] == "linked" and same["rule"] == "SKU"


async def test_no_free_name_is_a_clear_error(emulator: Any, qb: QuickBooksClient, store: ObjectStore) -> None:
    for taken in ["Full House", *(f"Full House ({n})" for n in range(2, 10))]:
        company(emulator).create("Vendor", {"DisplayName": taken}, {})
    with pytest.raises(SpliceError) as refused:
        await run_op("match-or-create", qb, store, record={"DisplayName": "Full House"})
    assert refused.value.error_type == "QUICKBOOKS:DUPLICATE_NAME"
    assert "no free name for 'Full House'" in refused.value.message


def test_names_follow_quickbooks_rules() -> None:
    """No ':' (it separates levels), at most 100 characters, a numbered suffix kept whole; a
    name the disambiguation made is recognised as the record's own."""
    slots = NameSlots("Acme", "{Name} ({BillingCity})", {"Name": "Acme", "BillingCity": "Denver: CO"})
    assert slots.alternatives(2) == ["Acme (Denver - CO)", "Acme (2)", "Acme (3)"]
    long = NameSlots("x" * 100, "{Name} ({BillingCity})", {"Name": "x" * 100, "BillingCity": "Y"})
    assert all(len(name) <= 100 for name in long.alternatives(2))
    assert long.alternatives(2)[0] == "x" * 96 + " (2)"  # the template's would be cut off
    assert slots.is_variant("Acme (Boston)") and slots.is_variant("Acme (7)")
    assert not slots.is_variant("Acme Holdings") and not slots.is_variant("Beta (Acme)")


async def test_the_emulator_filters_an_e_mail_by_its_address(qb: QuickBooksClient) -> None:
    """QuickBooks filters PrimaryEmailAddr (an object) by the address itself."""
    rows = (await qb.query_page("select * from Customer where PrimaryEmailAddr = "
                                "'cars@intuit.example'")).get("Customer")
    assert [r["DisplayName"] for r in rows or []] == ["Cool Cars"]


async def test_racing_accounts_of_one_name_or_e_mail_never_share_a_customer(
        emulator: Any, store: ObjectStore) -> None:
    """Six accounts sync at once, all named "Rush" with one e-mail: six customers, one each."""
    import anyio

    from tests.support.quickbooks import connect

    found: dict[str, str] = {}

    async def account(n: int) -> None:
        async with connect(emulator, store) as qb:
            decision = await run_op("match-or-create", qb, store, match_rules=RULES,
                                    record={"DisplayName": "Rush", "PrimaryEmailAddr": {"Address": "ap@rush.example"}},
                                    external_key=f"001RUSH{n}", idempotency_key=f"acct-001RUSH{n}",
                                    template_values={"Name": "Rush", "BillingCity": f"City {n}"})
            found[f"001RUSH{n}"] = decision["record"]["Id"]

    async with anyio.create_task_group() as tg:
        for n in range(6):
            tg.start_soon(account, n)
    assert len(set(found.values())) == 6, found
    rush = [c for c in company(emulator).tables["Customer"].values()
            if c["DisplayName"].startswith("Rush")]
    assert {c["Id"] for c in rush} >= set(found.values())
