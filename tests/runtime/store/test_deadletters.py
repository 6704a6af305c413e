"""Dead letters: kept whole, listed oldest first, survive restarts, removed after replay."""

from __future__ import annotations

import pytest

from runtime.store import DeadLetterQueue, ObjectStore

from .conftest import Backend, FakeClock

pytestmark = pytest.mark.anyio

MESSAGE = {"payload": {"Id": "006A", "Amount": "1200.00"}, "attributes": {"trigger": "changes"},
           "vars": {"trigger": {"Id": "006A"}}, "correlationId": "c-1"}
ERROR = {"type": "QUICKBOOKS:VALIDATION", "message": "Customer is required", "retryable": False}


async def test_add_and_get_keep_the_whole_event(store: ObjectStore, clock: FakeClock) -> None:
    """What was dead-lettered comes back field for field, with creation time and attempts."""
    queue = DeadLetterQueue(store, clock=clock)
    letter_id = await queue.add(flow="opportunity-to-invoice", step="steps/1", message=MESSAGE,
                                error=ERROR, attempts=5)
    letter = await queue.get(letter_id)
    assert letter is not None
    assert (letter.id, letter.flow, letter.step, letter.attempts) == (
        letter_id, "opportunity-to-invoice", "steps/1", 5)
    assert letter.message == MESSAGE and letter.error == ERROR
    assert letter.created_at.endswith("Z")
    assert letter.to_dict()["message"]["correlationId"] == "c-1"
    assert await queue.get("missing") is None


async def test_list_is_oldest_first_and_filters_by_flow(store: ObjectStore, clock: FakeClock) -> None:
    """Ids sort by time, so listing returns letters in the order they were added."""
    queue = DeadLetterQueue(store, clock=clock)
    ids = []
    for n in range(12):
        ids.append(await queue.add(flow="a" if n % 3 else "b", step="s", message={"n": n},
                                   error=ERROR))
    assert [letter.id for letter in await queue.list()] == ids
    assert [letter.message["n"] for letter in await queue.list(flow="b")] == [0, 3, 6, 9]
    assert [letter.id for letter in await queue.list(limit=5)] == ids[:5]
    assert [letter.id for letter in await queue.list(limit=5, after=ids[4])] == ids[5:10]
    assert await queue.count() == 12
    assert await queue.count("b") == 4


async def test_ids_stay_ordered_when_the_clock_stands_still(store: ObjectStore,
                                                           clock: FakeClock) -> None:
    """Several letters in the same instant still list in the order they were added."""
    queue = DeadLetterQueue(store, clock=clock)
    ids = [await queue.add(flow="f", step="s", message={"n": n}, error=ERROR) for n in range(20)]
    assert len(set(ids)) == 20
    assert [letter.message["n"] for letter in await queue.list()] == list(range(20))


async def test_delete_removes_one_letter(store: ObjectStore) -> None:
    """After a successful replay the letter is gone; deleting twice says so."""
    queue = DeadLetterQueue(store)
    keep = await queue.add(flow="f", step="s", message={}, error=ERROR)
    drop = await queue.add(flow="f", step="s", message={}, error=ERROR)
    assert await queue.delete(drop) is True
    assert await queue.delete(drop) is False
    assert [letter.id for letter in await queue.list()] == [keep]


async def test_dead_letters_survive_a_restart(backend: Backend) -> None:
    """Letters written before a restart are listed after it."""
    first = backend.open()
    letter_id = await DeadLetterQueue(first).add(flow="f", step="s", message=MESSAGE, error=ERROR)
    await first.aclose()
    letters = await DeadLetterQueue(backend.open()).list()
    assert [(letter.id, letter.message) for letter in letters] == [(letter_id, MESSAGE)]
