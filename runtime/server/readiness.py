"""``GET /ready``: whether this server can do its work, and if not, why, one line per reason.

Checked on every call: the store answers a read within ``store_timeout`` seconds, and every trigger
runs (or stands by for another replica). Checked at most every ``probe_ttl`` seconds, because they
cost more than a read (a load balancer may ask every second): the store's own diagnosis
(:meth:`runtime.store.base.ObjectStore.diagnose`: read-only, locked, corrupt) and, for every
connection whose client is an :class:`runtime.probes.AuthProbe`, whether it can authenticate. Each
check is bounded by ``store_timeout``; concurrent calls share one probe per connection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import anyio

from runtime.logcontext import CURRENT_OPERATION
from runtime.probes import AuthProbe
from runtime.redaction import redact
from runtime.service import SpliceRuntime

__all__ = ["PROBE_NAMESPACE", "Readiness"]

#: Where ``/ready`` reads (nothing is ever written there: a read that answers is what counts).
PROBE_NAMESPACE = "splice:ready"


@dataclass
class _Cached:
    at: float
    result: dict[str, Any]


class Readiness:
    """The checks behind ``GET /ready`` for one open runtime, with the costly ones cached."""

    def __init__(self, runtime: SpliceRuntime, *, store_timeout: float = 2.0,
                 probe_ttl: float = 5.0) -> None:
        self.runtime = runtime
        #: Seconds the store (and each connection) gets to answer.
        self.store_timeout = store_timeout
        #: Seconds a store diagnosis or connection probe result is reused.
        self.probe_ttl = probe_ttl
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, anyio.Lock] = {}

    async def check(self, *, serving: bool) -> tuple[bool, dict[str, Any]]:
        """Whether ready, and the JSON body ``/ready`` answers."""
        reasons: list[str] = []
        if not serving:
            reasons.append("the server is starting or stopping")
        store = await self._probe_store()
        if not store["ok"]:
            reasons.append(f"the store does not answer: {store['error']}")
        else:
            problems = await self._cached("store", self._diagnose_store)
            if problems.get("problems"):
                store = {**store, "ok": False, "problems": problems["problems"]}
                reasons.extend(f"the store: {problem}" for problem in problems["problems"])
        triggers = self.runtime.triggers.all()
        for flow, state in triggers.items():
            if not state.healthy:
                reasons.append(f"the trigger of flow '{flow}' ({state.trigger}) is {state.state}"
                               + (f" after {state.error}" if state.error and state.state == "restarting"
                                  else ""))
        connections = await self._probe_connections()
        for name, result in connections.items():
            if not result["ok"]:
                reasons.append(f"connection '{name}' ({result['connector']}) cannot authenticate: "
                               f"{result['error']}")
        body: dict[str, Any] = {
            "status": "not ready" if reasons else "ready",
            "store": store,
            "triggers": {flow: state.to_dict() for flow, state in triggers.items()},
            "connections": connections,
        }
        if reasons:
            body["reasons"] = reasons
        return not reasons, body

    # -- the store --------------------------------------------------------------------------------

    async def _probe_store(self) -> dict[str, Any]:
        """Whether the store answers a read within :attr:`store_timeout` seconds, and how fast."""
        started = anyio.current_time()
        try:
            with anyio.fail_after(self.store_timeout):
                await self.runtime.store.get(PROBE_NAMESPACE, "ready")
        except TimeoutError:
            return {"ok": False, "error": f"no answer within {self.store_timeout:g} s"}
        except Exception as exc:  # whatever the backend raises: report it, never fail /ready
            return {"ok": False, "error": redact(f"{type(exc).__name__}: {exc}")}
        return {"ok": True, "seconds": round(anyio.current_time() - started, 4)}

    async def _diagnose_store(self) -> dict[str, Any]:
        try:
            with anyio.fail_after(self.store_timeout):
                problems = await self.runtime.store.diagnose()
        except TimeoutError:
            problems = [f"its diagnosis did not finish within {self.store_timeout:g} s"]
        except Exception as exc:  # a backend's bug must not take /ready down
            problems = [redact(f"its diagnosis failed: {type(exc).__name__}: {exc}")]
        return {"problems": [redact(problem) for problem in problems]}

    # -- connections ------------------------------------------------------------------------------

    async def _probe_connections(self) -> dict[str, dict[str, Any]]:
        configs = self.runtime.project.connections
        probes = {name: client for name, client in self.runtime.engine.connections.items()
                  if isinstance(client, AuthProbe)}
        results: dict[str, dict[str, Any]] = {}

        async def one(name: str, client: AuthProbe) -> None:
            connector = configs[name].connector if name in configs else name
            outcome = await self._cached(f"connection:{name}", lambda: self._probe(client))
            results[name] = {"connector": connector, **outcome}

        async with anyio.create_task_group() as tg:
            for name, client in probes.items():
                tg.start_soon(one, name, client)
        return dict(sorted(results.items()))

    async def _probe(self, client: AuthProbe) -> dict[str, Any]:
        CURRENT_OPERATION.set("probe-auth")  # its requests' metrics (this task's context only)
        try:
            with anyio.fail_after(self.store_timeout):
                await client.probe_auth()
        except TimeoutError:
            return {"ok": False, "error": f"no answer within {self.store_timeout:g} s"}
        except Exception as exc:
            error_type = getattr(exc, "error_type", None) or type(exc).__name__
            return {"ok": False, "error": redact(f"{error_type}: {exc}")}
        return {"ok": True}

    # -- cache ------------------------------------------------------------------------------------

    async def _cached(self, key: str, compute: Any) -> dict[str, Any]:
        """``await compute()``, reused for :attr:`probe_ttl` seconds; one computation at a time."""
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            cached = self._cache.get(key)
            now = time.monotonic()
            if cached is not None and now - cached.at < self.probe_ttl:
                return {**cached.result, "checkedSecondsAgo": round(now - cached.at, 1)}
            result: dict[str, Any] = await compute()
            self._cache[key] = _Cached(time.monotonic(), result)
            return {**result, "checkedSecondsAgo": 0.0}
