"""API budgets kept in PostgreSQL, so every replica on one store spends one budget.

Two tables in the store's schema, made on first use:

* ``budget_buckets``: one token bucket per key (``tokens`` saved up, ``updated_at``). An
  acquisition is one ``UPDATE ... RETURNING`` that refills by the time elapsed since the last one and
  takes the tokens only if there are enough; the row lock serialises replicas, and PostgreSQL
  re-checks the condition on the newest row when two meet. Time is the database's
  (``clock_timestamp()``), so replicas whose clocks drift still share one timeline. A pause (after
  a 429) spends the bucket below zero, which stops every replica until it has refilled.
* ``budget_slots``: ``max`` rows per key, one per request in flight. A request takes a free row
  (``FOR UPDATE SKIP LOCKED``) with a holder id and an expiry, renews the expiry while it waits for
  its answer, and frees the row when answered; a row whose holder died (a replica killed
  mid-request) is free again once its expiry passed.

Every failure to reach the database comes out as :class:`~runtime.store.base.StoreUnavailableError`
(``STORE:UNAVAILABLE``); what to do then is :mod:`runtime.budgets`' decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runtime.store.base import ObjectStore
from runtime.store.postgres import PostgresStore, _typed

__all__ = ["BudgetTables", "TakeResult", "budget_tables"]

_NOW = "(SELECT extract(epoch FROM clock_timestamp())::double precision AS t)"
#: Tokens of a bucket row refilled up to now ($3 capacity, $4 seconds per token).
_REFILLED = "least($3::float8, b.tokens + greatest(now.t - b.updated_at, 0) / $4::float8)"


@dataclass(frozen=True, slots=True)
class TakeResult:
    """What one attempt at a bucket gave: ``granted_at`` (database epoch seconds) when the tokens
    were taken, else ``None`` and ``wait``, the seconds until they are expected to be there."""

    granted_at: float | None
    wait: float


def budget_tables(store: ObjectStore) -> BudgetTables | None:
    """The budget tables of ``store`` when it is shared by replicas and can keep them (PostgreSQL),
    else ``None`` (budgets then stay in the process). A wrapper (the metered store) is looked through."""
    inner: Any = store
    while not isinstance(inner, PostgresStore) and getattr(inner, "inner", None) is not None:
        inner = inner.inner
    return BudgetTables(inner) if isinstance(inner, PostgresStore) else None


class BudgetTables:
    """The statements of shared budgets on one :class:`PostgresStore`."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self._buckets = f'"{store.schema}".budget_buckets'
        self._slots = f'"{store.schema}".budget_slots'
        self._created = False

    async def _pool(self) -> Any:
        pool, _ = await self.store._pools()
        if not self._created:
            async with pool.acquire() as conn, conn.transaction():
                # Replicas starting together would race on CREATE ... IF NOT EXISTS; serialise them.
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('splice:create-budgets'))")
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {self._buckets} ("
                    ' key text COLLATE "C" PRIMARY KEY,'
                    " tokens double precision NOT NULL,"
                    " updated_at double precision NOT NULL)")
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {self._slots} ("
                    ' key text COLLATE "C" NOT NULL,'
                    " slot integer NOT NULL,"
                    " holder text NULL,"
                    " expires_at double precision NULL,"
                    " PRIMARY KEY (key, slot))")
            self._created = True
        return pool

    async def take(self, key: str, tokens: float, capacity: float, interval: float) -> TakeResult:
        """Take ``tokens`` from the bucket ``key`` (made full on first use) if it holds them now."""
        with _typed("budget take"):
            pool = await self._pool()
            for _ in range(2):
                row = await pool.fetchrow(
                    f"WITH now AS {_NOW}, taken AS ("
                    f" UPDATE {self._buckets} AS b SET tokens = {_REFILLED} - $2::float8,"
                    "  updated_at = greatest(b.updated_at, now.t)"
                    f" FROM now WHERE b.key = $1 AND {_REFILLED} >= $2::float8 RETURNING b.updated_at)"
                    " SELECT (SELECT updated_at FROM taken) AS granted,"
                    f" (SELECT ($2::float8 - {_REFILLED}) * $4::float8 FROM {self._buckets} AS b, now"
                    "  WHERE b.key = $1) AS wait",
                    key, tokens, capacity, interval)
                if row["granted"] is not None:
                    return TakeResult(float(row["granted"]), 0.0)
                if row["wait"] is not None:
                    return TakeResult(None, max(float(row["wait"]), 0.0))
                await pool.execute(
                    f"INSERT INTO {self._buckets} (key, tokens, updated_at) "
                    f"SELECT $1, $2::float8, now.t FROM {_NOW} AS now ON CONFLICT (key) DO NOTHING",
                    key, capacity)
        raise AssertionError("unreachable: the bucket row exists after its insert")

    async def pause(self, key: str, seconds: float, capacity: float, interval: float) -> None:
        """Spend bucket ``key`` so that nobody takes a token for ``seconds``."""
        with _typed("budget pause"):
            pool = await self._pool()
            for _ in range(2):
                status = await pool.execute(
                    f"UPDATE {self._buckets} AS b"
                    f" SET tokens = least({_REFILLED}, -($2::float8) / $4::float8),"
                    "  updated_at = greatest(b.updated_at, now.t)"
                    f" FROM {_NOW} AS now WHERE b.key = $1",
                    key, seconds, capacity, interval)
                if status != "UPDATE 0":
                    return
                await pool.execute(
                    f"INSERT INTO {self._buckets} (key, tokens, updated_at) "
                    f"SELECT $1, $2::float8, now.t FROM {_NOW} AS now ON CONFLICT (key) DO NOTHING",
                    key, capacity)

    async def take_slot(self, key: str, limit: int, holder: str, lease: float) -> int | None:
        """One of the ``limit`` in-flight slots of ``key`` for ``lease`` seconds, or ``None``.

        Asked again by the same ``holder`` (its answer was lost in a blip), it returns the slot the
        first attempt took instead of taking a second one.
        """
        with _typed("budget slot"):
            pool = await self._pool()
            for _ in range(2):
                slot = await pool.fetchval(
                    f"WITH now AS {_NOW},"
                    f" mine AS (SELECT slot FROM {self._slots} WHERE key = $1 AND holder = $3),"
                    f" taken AS (UPDATE {self._slots} AS s"
                    "  SET holder = $3, expires_at = now.t + $4::float8 FROM now"
                    "  WHERE NOT EXISTS (SELECT 1 FROM mine) AND (s.key, s.slot) = ("
                    f"   SELECT f.key, f.slot FROM {self._slots} AS f, now"
                    "   WHERE f.key = $1 AND f.slot < $2::integer"
                    "   AND (f.holder IS NULL OR f.expires_at <= now.t)"
                    "   ORDER BY f.slot LIMIT 1 FOR UPDATE OF f SKIP LOCKED) RETURNING s.slot)"
                    " SELECT coalesce((SELECT slot FROM mine LIMIT 1), (SELECT slot FROM taken))",
                    key, limit, holder, float(lease))
                if slot is not None:
                    return int(slot)
                made = await pool.execute(
                    f"INSERT INTO {self._slots} (key, slot)"
                    " SELECT $1, g FROM generate_series(0, $2::integer - 1) AS g"
                    " ON CONFLICT (key, slot) DO NOTHING", key, limit)
                if made == "INSERT 0 0":  # every slot exists and is held
                    return None
        return None

    async def renew_slot(self, key: str, slot: int, holder: str, lease: float) -> bool:
        """Extend a held slot's expiry to ``lease`` seconds from now; ``False`` if it was lost."""
        with _typed("budget slot renewal"):
            pool = await self._pool()
            status = await pool.execute(
                f"UPDATE {self._slots} SET expires_at = now.t + $4::float8 FROM {_NOW} AS now "
                "WHERE key = $1 AND slot = $2 AND holder = $3", key, slot, holder, lease)
            return bool(status != "UPDATE 0")

    async def release_slot(self, key: str, slot: int, holder: str) -> None:
        """Free a slot this holder took (one taken over after its expiry stays with its new holder)."""
        with _typed("budget slot release"):
            pool = await self._pool()
            await pool.execute(
                f"UPDATE {self._slots} SET holder = NULL, expires_at = NULL "
                "WHERE key = $1 AND slot = $2 AND holder = $3", key, slot, holder)

    async def slots_held(self, key: str) -> int:
        """How many slots of ``key`` are held and unexpired (status figures, tests)."""
        with _typed("budget slot count"):
            pool = await self._pool()
            return int(await pool.fetchval(
                f"SELECT count(*) FROM {self._slots}, {_NOW} AS now WHERE key = $1 "
                "AND holder IS NOT NULL AND expires_at > now.t", key))
