"""Waiting with a deadline in synchronous tests (subprocesses, servers in threads).

Async tests use :func:`runtime.testing.wait_until`, the same loop for coroutines.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(predicate: Callable[[], object], timeout: float = 20, what: str = "condition",
             interval: float = 0.1) -> None:
    """Poll ``predicate()`` every ``interval`` seconds until it is true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(interval)


def wait_for_progress(done: Callable[[], bool], progress: Callable[[], object], *, stall: float,
                      what: str, interval: float = 0.5) -> None:
    """Poll ``done()`` until true, for as long as ``progress()`` keeps changing.

    For waits on a fixed amount of work (hundreds of flow runs) whose length is the machine's load
    more than anything: a busy machine gets all the time it needs while the work goes on, and a run
    that stopped moving still fails, ``stall`` seconds after its last step.
    """
    last, moved = progress(), time.monotonic()
    while not done():
        now = progress()
        if now != last:
            last, moved = now, time.monotonic()
        assert time.monotonic() - moved < stall, (
            f"no progress for {stall:g} s waiting for {what} (stuck at {last!r})")
        time.sleep(interval)
