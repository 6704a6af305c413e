"""Pieces shared by the backends' named locks.

Every backend takes a named lock in two stages. First an in-process :class:`anyio.Lock` per name, so
tasks of one process queue fairly and cheaply instead of all polling the database. Then the shared
lock in the database, polled with a small jittered backoff (:func:`poll`) until the caller's timeout
runs out. Only one task per process and name ever polls the database.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio

from runtime.store.base import Lease, LockLostError, LockTimeoutError

__all__ = ["LocalLocks", "beside", "poll", "unwrap_single", "watched"]

log = logging.getLogger("splice.store")

#: First and longest pause between two attempts at a lock held elsewhere (seconds).
FIRST_BACKOFF = 0.005
MAX_BACKOFF = 0.1


class LocalLocks:
    """One :class:`anyio.Lock` per lock name, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[anyio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, name: str, deadline: float) -> AsyncIterator[None]:
        """Hold the in-process lock for ``name``; :class:`LockTimeoutError` at ``deadline``.

        ``deadline`` is in :func:`anyio.current_time` units.
        """
        lock, users = self._locks.get(name, (None, 0))
        if lock is None:
            lock = anyio.Lock()
        self._locks[name] = (lock, users + 1)
        try:
            try:
                lock.acquire_nowait()
                acquired = True
            except anyio.WouldBlock:
                acquired = False
                with anyio.move_on_after(max(deadline - anyio.current_time(), 0.0)):
                    await lock.acquire()
                    acquired = True
            if not acquired:
                raise LockTimeoutError(f"lock {name!r} is held by another task of this process "
                                       "(timed out)")
            try:
                yield
            finally:
                lock.release()
        finally:
            lock, users = self._locks[name]
            if users <= 1:
                del self._locks[name]
            else:
                self._locks[name] = (lock, users - 1)


async def poll(name: str, attempt: Callable[[], Awaitable[bool]], deadline: float) -> None:
    """Call ``attempt`` until it returns ``True``, backing off between tries.

    ``deadline`` is in :func:`anyio.current_time` units. At least one attempt is always made, so a
    zero timeout means "take it if free".
    """
    delay = FIRST_BACKOFF
    while True:
        if await attempt():
            return
        remaining = deadline - anyio.current_time()
        if remaining <= 0:
            raise LockTimeoutError(f"lock {name!r} is held elsewhere (timed out)")
        await anyio.sleep(min(remaining, delay * random.uniform(0.5, 1.0)))
        delay = min(delay * 2, MAX_BACKOFF)


@asynccontextmanager
async def watched(lease: Lease, every: float) -> AsyncIterator[Lease]:
    """Run the body while :meth:`Lease.confirm` is asked every ``every`` seconds beside it.

    When the lease is found lost, the body is cancelled at once and :class:`LockLostError` raised
    in its place: a holder that lost its lock must not keep working, even between units of work
    (which confirm the lease themselves). Other exceptions of the body come out unwrapped.
    """

    stopped: list[LockLostError] = []

    async def watch(scope: anyio.CancelScope) -> None:
        while True:
            await anyio.sleep(every)
            try:
                await lease.confirm()
            except LockLostError as exc:
                log.error("%s; stopping the work done under it", exc)
                stopped.append(exc)
                scope.cancel()
                return

    async with beside(watch):
        yield lease
    if stopped:
        raise stopped[0]


@asynccontextmanager
async def beside(task: Callable[[anyio.CancelScope], Coroutine[Any, Any, None]]
                 ) -> AsyncIterator[None]:
    """Run the body with ``task`` beside it, for as long as the body runs.

    ``task`` gets the body's cancel scope, to stop the body (a lock found lost); it is cancelled
    when the body ends. The body's own exception comes out unwrapped, exactly as if no task group
    were involved, since the task never raises.
    """
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(task, tg.cancel_scope)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        inner = unwrap_single(group)
        if inner is group:
            raise
        raise inner from inner.__cause__  # keeps the body's own cause, drops the group


def unwrap_single(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception a lock's body raised, out of the task group that renews the lease.

    The renewal task never raises, so a group with a single member is the body's own exception and
    the caller should see it unwrapped, exactly as if no task group were involved.
    """
    if len(group.exceptions) == 1:
        return group.exceptions[0]
    return group
