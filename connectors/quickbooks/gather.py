"""What every QuickBooks batch form shares: one outcome per call, and a meeting point for calls
whose effects go to QuickBooks together.

A batch handler gets the calls of many executions. Each keeps its own exactly-once bookkeeping (its
ledger entry, taken and completed by :func:`connectors.quickbooks.writes.once` exactly as its
single form does), so the handler runs every call in its own task; the calls whose ledger lets
them through *join* a :class:`Meeting` with their item instead of calling QuickBooks, and once every
call has joined or gone (answered from the ledger, refused as in progress), the items are sent
together and each joined call is woken with its own result or error.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio

from connectors.quickbooks.errors import quickbooks_error
from runtime import BatchCall, OperationContext, SpliceError

__all__ = ["Flights", "Meeting", "Seat", "canonical", "chunks", "own_error", "previewed", "run_each",
           "settle"]

T = TypeVar("T")


def own_error(exc: SpliceError) -> SpliceError:
    """A copy of ``exc`` for one call: every call of a batch gets its own error instance."""
    twin = copy.copy(exc)
    twin.details = copy.deepcopy(exc.details)
    return twin


def canonical(value: Any) -> str:
    """A stable text form of parameters, to tell calls that ask the same thing."""
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


@dataclass(eq=False)
class Seat(Generic[T]):
    """One joined call: its item, and the outcome the sender gives it."""

    item: T
    done: anyio.Event = field(default_factory=anyio.Event)
    result: Any = None
    error: BaseException | None = None

    def answer(self, result: Any) -> None:
        """The call's result; wakes it."""
        if not self.done.is_set():
            self.result = result
            self.done.set()

    def fail(self, error: BaseException) -> None:
        """The call's error (its own instance for a SpliceError); wakes it."""
        if not self.done.is_set():
            self.error = own_error(error) if isinstance(error, SpliceError) else error
            self.done.set()

    async def outcome(self) -> Any:
        await self.done.wait()
        if self.error is not None:
            raise self.error
        return self.result


class Meeting(Generic[T]):
    """Where ``expected`` calls meet: each call (by its index) either :meth:`join` s with an item or
    :meth:`leave` s; :meth:`gathered` returns the seats once every call has."""

    def __init__(self, expected: int) -> None:
        self.waiting = set(range(expected))
        self.seats: list[Seat[T]] = []
        self._all_here = anyio.Event()
        if expected == 0:
            self._all_here.set()

    def _arrived(self, index: int) -> bool:
        if index not in self.waiting:
            return False
        self.waiting.discard(index)
        if not self.waiting:
            self._all_here.set()
        return True

    async def join(self, index: int, item: T) -> Any:
        """Call ``index`` takes a seat with ``item`` and waits for its outcome."""
        seat: Seat[T] = Seat(item)
        self.seats.append(seat)
        if not self._arrived(index):
            raise RuntimeError(f"call {index} joined a batch twice")
        return await seat.outcome()

    def leave(self, index: int) -> None:
        """Call ``index`` needs nothing sent (answered otherwise, or failed before its effect);
        a call that joined already is not affected."""
        self._arrived(index)

    async def gathered(self) -> list[Seat[T]]:
        await self._all_here.wait()
        return self.seats


class Flights:
    """Calls of one batch that share a key share one flight: the first does the work, the others
    get its result (a copy) or its error (their own instance), as if they had found its ledger
    entry done. A follower leaves the meeting first, so the batch does not wait for it."""

    def __init__(self) -> None:
        self._first: dict[str, Seat[None]] = {}

    async def run(self, key: str | None, index: int, call: Callable[[], Awaitable[T]],
                  meeting: Meeting[Any] | None = None) -> T:
        if not key:
            return await call()
        seat = self._first.get(key)
        if seat is None:
            seat = self._first[key] = Seat(None)
            try:
                result = await call()
            except BaseException as exc:
                seat.fail(exc)
                raise
            seat.answer(result)
            return result
        if meeting is not None:
            meeting.leave(index)
        try:
            shared: T = copy.deepcopy(await seat.outcome())
        except SpliceError as exc:
            raise own_error(exc) from None
        return shared


async def settle(seats: Sequence[Seat[T]],
                 work: Callable[[Sequence[Seat[T]]], Awaitable[None]]) -> None:
    """``work(seats)``; when it fails, the seats it left unanswered get its error (each its own
    copy): one piece of a batch failing (a lookup query refused) fails only that piece's calls."""
    try:
        await work(seats)
    except Exception as exc:  # noqa: BLE001 - given to the calls, which raise it
        for seat in seats:
            seat.fail(exc)


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """``items`` in consecutive pieces of at most ``size``."""
    return [items[i:i + size] for i in range(0, len(items), size)]


async def previewed(calls: Sequence[BatchCall],
                    preview: Callable[[OperationContext, dict[str, Any]], Awaitable[Any]]) -> list[Any]:
    """A dry run's batch: every call told by its operation's preview, as its single form is."""
    return await run_each(calls, lambda _index, call: preview(call.ctx, call.params))


async def run_each(calls: Sequence[BatchCall],
                   run: Callable[[int, BatchCall], Awaitable[Any]],
                   meeting: Meeting[Any] | None = None,
                   send: Callable[[list[Seat[Any]]], Awaitable[None]] | None = None) -> list[Any]:
    """Run ``run(index, call)`` for every call concurrently; each call's result, or its
    :class:`SpliceError`, in the calls' order.

    With a ``meeting``, a ``run`` may join it (``meeting.join(index, item)``); ``send`` gets the
    seats once every call has joined or finished, and must answer or fail each: a seat it leaves
    unanswered fails, and its own failure fails the seats left. Errors other than
    :class:`SpliceError` fail the whole batch (raised).
    """
    results: list[Any] = [None] * len(calls)
    crashed: list[BaseException] = []

    async def one(index: int, call: BatchCall) -> None:
        try:
            results[index] = await run(index, call)
        except SpliceError as exc:
            results[index] = exc
        except Exception as exc:  # noqa: BLE001 - re-raised below, outside the task group
            crashed.append(exc)
        finally:
            if meeting is not None:
                meeting.leave(index)

    async def sender() -> None:
        assert meeting is not None and send is not None
        seats = await meeting.gathered()
        try:
            if seats:
                await send(seats)
        except Exception as exc:  # noqa: BLE001 - every waiting call gets it
            for seat in seats:
                seat.fail(exc)
        finally:
            for seat in seats:
                seat.fail(quickbooks_error("SERVER_ERROR", "the batch gave this call no answer",
                                           retryable=True))

    async with anyio.create_task_group() as tg:
        if meeting is not None:
            tg.start_soon(sender)
        for index, call in enumerate(calls):
            tg.start_soon(one, index, call)
    if crashed:
        raise crashed[0]
    return results
