"""Programs the store tests run as separate processes (``python workers.py <command> <url> ...``).

* ``increment URL NAME TIMES``: TIMES times, take lock NAME, read the counter, yield to the event loop,
  write it back plus one (lost updates show up unless the lock excludes the other process).
* ``hold URL NAME LEASE``: take lock NAME with LEASE, print ``locked``, then wait to be killed.
"""

from __future__ import annotations

import sys

import anyio

from runtime.store import open_store


async def increment(url: str, name: str, times: int) -> None:
    async with open_store(url) as store:
        for _ in range(times):
            async with store.lock(name, timeout=60, lease=30):
                value = await store.get("counters", name) or 0
                await anyio.sleep(0.001)
                await store.put("counters", name, value + 1)


async def hold(url: str, name: str, lease: float) -> None:
    async with open_store(url) as store, store.lock(name, timeout=30, lease=lease):
        print("locked", flush=True)
        await anyio.sleep_forever()


def main(argv: list[str]) -> None:
    command, url, name, number = argv
    if command == "increment":
        anyio.run(increment, url, name, int(number))
    elif command == "hold":
        anyio.run(hold, url, name, float(number))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
