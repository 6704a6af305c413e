"""find-or-create for Customer and Item: lookups first, race-safe creates."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from connectors.quickbooks.client import QuickBooksClient
from runtime.store import ObjectStore
from tests.support.quickbooks import REALM, connect, run_op

pytestmark = pytest.mark.anyio


def _customers(emulator: Any, name: str) -> list[dict[str, Any]]:
    table = emulator.state.emulator.companies[REALM].tables["Customer"]
    return [c for c in table.values() if c["DisplayName"] == name]


async def test_existing_customer_is_found_not_created(emulator: Any, qb: QuickBooksClient,
                                                      store: ObjectStore) -> None:
    """Matching by DisplayName, apostrophes included."""
    found = await run_op("find-or-create", qb, store, record={"DisplayName": "Amy's Bird Sanctuary"})
    assert found["Id"] == "11"
    assert len(_customers(emulator, "Amy's Bird Sanctuary")) == 1


async def test_inactive_match_is_reactivated(qb: QuickBooksClient, store: ObjectStore) -> None:
    """An inactive customer still holds its name: it is reused and made active."""
    await run_op("delete", qb, store, entity="Customer", id="13")
    found = await run_op("find-or-create", qb, store, record={"DisplayName": "Cool Cars"})
    assert found["Id"] == "13" and found["Active"] is True


async def test_parallel_flows_end_with_one_customer(emulator: Any, store: ObjectStore) -> None:
    """Eight flows find-or-create one new name at once: one customer, all get its Id."""
    ids: list[str] = []

    async def flow() -> None:
        async with connect(emulator, store) as qb:
            ids.append((await run_op("find-or-create", qb, store,
                                     record={"DisplayName": "Race Condition Inc"}))["Id"])

    async with anyio.create_task_group() as tg:
        for _ in range(8):
            tg.start_soon(flow)
    assert len(_customers(emulator, "Race Condition Inc")) == 1
    assert len(set(ids)) == 1 and len(ids) == 8


async def test_duplicate_name_from_a_concurrent_create_resolves_to_the_winner(
        emulator: Any, qb: QuickBooksClient, store: ObjectStore) -> None:
    """Created elsewhere between our lookup and our create (6240): the winner is returned."""
    company = emulator.state.emulator.companies[REALM]
    real_create = company.create

    def create_behind_our_back(entity: str, body: dict[str, Any], options: dict[str, str]) -> Any:
        company.create = real_create
        real_create("Customer", {"DisplayName": "Sneaky Ltd"}, {})
        return real_create(entity, body, options)

    company.create = create_behind_our_back
    found = await run_op("find-or-create", qb, store, record={"DisplayName": "Sneaky Ltd"},
                         idempotency_key="acct-sneaky")
    assert len(_customers(emulator, "Sneaky Ltd")) == 1
    assert found["Id"] == _customers(emulator, "Sneaky Ltd")[0]["Id"]


async def test_external_key_is_remembered(emulator: Any, qb: QuickBooksClient, store: ObjectStore) -> None:
    """After a rename in QuickBooks, the external key still finds the record."""
    first = await run_op("find-or-create", qb, store, record={"DisplayName": "Key Corp"},
                         external_key="001SF000001")
    await run_op("update", qb, store, entity="Customer", record={"Id": first["Id"],
                                                                 "DisplayName": "Key Corp (renamed)"})
    again = await run_op("find-or-create", qb, store, record={"DisplayName": "Key Corp"},
                         external_key="001SF000001")
    assert again["Id"] == first["Id"]
    assert _customers(emulator, "Key Corp") == []


async def test_item_by_sku_then_by_name(qb: QuickBooksClient, store: ObjectStore) -> None:
    """Items match on Sku when asked, and are created with the record otherwise."""
    hours = await run_op("find-or-create", qb, store, entity="Item", match_by="Sku",
                         record={"Name": "Whatever", "Sku": "HRS-1"})
    assert hours["Name"] == "Hours"
    created = await run_op("find-or-create", qb, store, entity="Item", record={
        "Name": "Training", "Type": "Service", "IncomeAccountRef": {"value": "1"}})
    assert created["Name"] == "Training" and created["Id"]
