"""Engine benchmark: ``http.listener -> transform (JSONata) -> http.request`` to a local sink.

Measures, on this machine, for each JSONata engine and for the same flow without the transform:
messages per second and p50/p99 latency at concurrency 1 and 32, and the server's peak RSS; plus the
engine's own overhead per message measured in process (everything but the transform and the sink).
With ``--node-red`` (after ``benchmarks/nodered/setup.sh``) Node-RED 4 runs the same flow (http in ->
change node with the same JSONata -> http request -> http response) against the same sink, driven by
the same load generator, in the same run.

    python benchmarks/engine.py                       # Splice only
    python benchmarks/engine.py --history both        # with execution history on, then off
    python benchmarks/engine.py --node-red --json benchmarks/results/engine.json

``--history both`` runs each Splice case with the execution history on (the default) and off and
prints what the history costs in msgs/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
ASSETS = HERE / "assets"
TRANSFORM = (ASSETS / "opportunity-to-invoice.jsonata").read_text()
OPPORTUNITY = json.loads((ASSETS / "opportunity.json").read_text())
NODE_RED = HERE / ".node-red" / "node_modules" / "node-red" / "red.js"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0, *,
                  post: bool = False) -> None:
    """Until ``url`` answers (with ``post``: until a POST of the opportunity answers 200)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            if not post:
                httpx.get(url, timeout=1.0)
                return
            if httpx.post(url, json=OPPORTUNITY, timeout=5.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


@contextmanager
def process(args: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> Any:
    proc = subprocess.Popen(args, cwd=cwd, env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- load generator: a small keep-alive HTTP/1.1 client, light enough to leave CPU to the server ----


async def _one_connection(port: int, path: str, body: bytes, count: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    try:
        for _ in range(count):
            started = time.perf_counter()
            writer.write(request)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
            status = int(head.split(b" ", 2)[1])
            length = 0
            chunked = False
            for line in head.split(b"\r\n"):
                lower = line.lower()
                if lower.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
                elif lower.startswith(b"transfer-encoding:") and b"chunked" in lower:
                    chunked = True
            if chunked:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            else:
                await reader.readexactly(length)
            if not 200 <= status < 300:
                raise RuntimeError(f"unexpected status {status}")
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()


async def drive(port: int, path: str, *, total: int, concurrency: int) -> dict[str, float]:
    body = json.dumps(OPPORTUNITY).encode()
    warm: list[float] = []
    await asyncio.gather(*(_one_connection(port, path, body, 20, warm) for _ in range(concurrency)))
    latencies: list[float] = []
    per_connection = max(1, total // concurrency)
    started = time.perf_counter()
    await asyncio.gather(*(_one_connection(port, path, body, per_connection, latencies)
                           for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "messages": len(latencies),
        "msg_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def measure(port: int, path: str, proc: subprocess.Popen[bytes], *, total: int,
            concurrency: int) -> dict[str, float]:
    ps = psutil.Process(proc.pid)
    peak = 0
    cpu_before = ps.cpu_times()
    wall_before = time.perf_counter()

    async def run() -> dict[str, float]:
        nonlocal peak
        task = asyncio.ensure_future(drive(port, path, total=total, concurrency=concurrency))
        while not task.done():
            peak = max(peak, ps.memory_info().rss)
            await asyncio.sleep(0.05)
        return task.result()

    result = asyncio.run(run())
    cpu_after = ps.cpu_times()
    busy = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    result["cpu_pct"] = 100 * busy / (time.perf_counter() - wall_before)
    result["peak_rss_mb"] = max(peak, ps.memory_info().rss) / 2**20
    return result


# -- systems under test --------------------------------------------------------------------------


def splice_project(root: Path, sink_port: int, engine: str | None, history: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    settings = f"  jsonata-engine: {engine}\n" if engine else ""
    if not history:
        settings += "  history: { enabled: false }\n"
    (root / "splice.yaml").write_text(
        f"connections:\n  sink: {{ connector: http, base-url: 'http://127.0.0.1:{sink_port}' }}\n"
        f"settings:\n  store: 'sqlite:///{root / 'store.db'}'\n{settings}")
    steps = ["  - transform: opportunity-to-invoice.jsonata\n"] if engine else []
    (root / "opportunity-to-invoice.jsonata").write_text(TRANSFORM)
    (root / "bench.yaml").write_text(
        "flow: bench\nmax-concurrency: 64\n"
        "trigger:\n  http.listener: { path: /opportunity }\n"
        "steps:\n" + "".join(steps) +
        "  - http.request: { method: POST, path: /invoices, body: '#[payload]' }\n")
    return root


def run_splice(work: Path, sink_port: int, engine: str | None, total: int,
               concurrencies: list[int], history: bool = True) -> list[dict[str, Any]]:
    project = splice_project(work / f"splice-{engine or 'none'}-{'h' if history else 'n'}",
                             sink_port, engine, history)
    port = free_port()
    rows = []
    with process([sys.executable, "-m", "runtime.cli", "--log-level", "WARNING", "serve",
                  "--project", str(project), "--port", str(port)], cwd=project) as proc:
        wait_until_up(f"http://127.0.0.1:{port}/ready", proc)
        for c in concurrencies:
            result = measure(port, "/opportunity", proc, total=total, concurrency=c)
            rows.append({"system": "splice", "transform": engine or "none", "concurrency": c,
                         "history": "on" if history else "off", **result})
    return rows


def node_red_flow(sink_port: int) -> list[dict[str, Any]]:
    expression = "payload.(" + TRANSFORM + ")"
    return [
        {"id": "b1000000.000001", "type": "tab", "label": "bench"},
        {"id": "b1000000.000002", "type": "http in", "z": "b1000000.000001", "url": "/opportunity",
         "method": "post", "upload": False, "x": 100, "y": 100, "wires": [["b1000000.000003"]]},
        {"id": "b1000000.000003", "type": "change", "z": "b1000000.000001", "x": 300, "y": 100,
         "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": expression, "tot": "jsonata"}],
         "wires": [["b1000000.000004"]]},
        {"id": "b1000000.000004", "type": "http request", "z": "b1000000.000001", "method": "POST",
         "ret": "obj", "paytoqs": "ignore", "url": f"http://127.0.0.1:{sink_port}/invoices",
         "x": 500, "y": 100, "wires": [["b1000000.000005"]]},
        {"id": "b1000000.000005", "type": "http response", "z": "b1000000.000001",
         "statusCode": "200", "x": 700, "y": 100, "wires": []},
    ]


def run_node_red(work: Path, sink_port: int, total: int, concurrencies: list[int]
                 ) -> list[dict[str, Any]]:
    user_dir = work / "node-red"
    user_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    (user_dir / "flows.json").write_text(json.dumps(node_red_flow(sink_port)))
    (user_dir / "settings.js").write_text(
        f"module.exports = {{ uiPort: {port}, uiHost: '127.0.0.1', httpAdminRoot: false, "
        "flowFile: 'flows.json', credentialSecret: false, "
        "logging: { console: { level: 'warn' } } };\n")
    node = shutil.which("node") or "node"
    rows = []
    with process([node, str(NODE_RED), "--userDir", str(user_dir), "--settings",
                  str(user_dir / "settings.js")]) as proc:
        wait_until_up(f"http://127.0.0.1:{port}/opportunity", proc, post=True)
        for c in concurrencies:
            result = measure(port, "/opportunity", proc, total=total, concurrency=c)
            rows.append({"system": "node-red 4", "transform": "jsonata (js)", "concurrency": c,
                         **result})
    return rows


# -- engine overhead in process ---------------------------------------------------------------------


async def engine_overhead(work: Path, messages: int) -> dict[str, float]:
    """Per message: engine.run (listener-less flow with http.request to an in-memory sink) minus
    the bare httpx call to the same in-memory sink."""
    import httpx

    import dsl
    from runtime.message import Event
    from runtime.registry import load_registry
    from runtime.service import open_runtime
    from runtime.store import open_store

    def sink(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"Invoice": {"Id": "130"}})

    project_dir = splice_project(work / "overhead", 1, None)
    registry = load_registry()
    project = dsl.load_project(project_dir, vocabulary=registry)
    store = open_store("memory://")
    transport = httpx.MockTransport(sink)
    async with open_runtime(project, registry, store=store, transports={"sink": transport}) as rt:
        for _ in range(200):
            await rt.engine.run("bench", Event(payload=OPPORTUNITY))
        started = time.perf_counter()
        for _ in range(messages):
            await rt.engine.run("bench", Event(payload=OPPORTUNITY))
        engine_time = (time.perf_counter() - started) / messages
    await store.aclose()
    async with httpx.AsyncClient(transport=transport, base_url="http://sink") as client:
        for _ in range(200):
            await client.post("/invoices", json=OPPORTUNITY)
        started = time.perf_counter()
        for _ in range(messages):
            await client.post("/invoices", json=OPPORTUNITY)
        bare = (time.perf_counter() - started) / messages
    return {"engine_ms": engine_time * 1000, "bare_client_ms": bare * 1000,
            "overhead_ms": (engine_time - bare) * 1000}


async def history_cost(work: Path, messages: int, rounds: int = 5) -> dict[str, float]:
    """CPU per message of the listener-less flow (jsonatapy transform, in-memory sink) with the
    execution history on and off, its writer flushing every 100 messages as the runtime's writer
    does: the best of ``rounds`` alternating runs of each, so that other load on the machine
    (which inflates wall-clock figures) shows as little as possible. CPU time counts the store's
    writer thread too."""
    import httpx

    import dsl
    from runtime.message import Event
    from runtime.registry import load_registry
    from runtime.service import open_runtime
    from runtime.store import open_store

    registry = load_registry()
    transport = httpx.MockTransport(
        lambda request: httpx.Response(201, json={"Invoice": {"Id": "130"}}))

    async def once(history: bool, n: int) -> float:
        root = splice_project(work / f"history-{n}-{history}-{time.monotonic_ns()}", 1, "jsonatapy",
                              history)
        project = dsl.load_project(root, vocabulary=registry)
        store = open_store(f"sqlite:///{root / 'store.db'}")
        async with open_runtime(project, registry, store=store, transports={"sink": transport}) as rt:
            recorder = rt.engine.history
            for _ in range(100):
                await rt.engine.run("bench", Event(payload=OPPORTUNITY))
            if recorder is not None:
                await recorder.flush()
            started = time.process_time()
            for i in range(n):
                await rt.engine.run("bench", Event(payload=OPPORTUNITY))
                if recorder is not None and i % 100 == 99:
                    await recorder.flush()
            if recorder is not None:
                await recorder.flush()
            spent = (time.process_time() - started) / n
        await store.aclose()
        return spent

    best = {True: float("inf"), False: float("inf")}
    for _ in range(rounds):
        for history in (False, True):
            best[history] = min(best[history], await once(history, messages))
    return {"on_ms": best[True] * 1000, "off_ms": best[False] * 1000,
            "cost_pct": 100 * (best[True] / best[False] - 1)}


async def loop_stall(work: Path, messages: int, engine: str) -> dict[str, float]:
    """Longest and p99 delay of a 1 ms ticker on the event loop while ``messages`` transforms run
    8 at a time: how long a CPU-bound transform keeps everything else waiting."""
    import anyio

    import dsl
    from runtime.message import Event
    from runtime.registry import load_registry
    from runtime.service import open_runtime
    from runtime.store import open_store

    root = work / f"stall-{engine}"
    root.mkdir(parents=True, exist_ok=True)
    (root / "splice.yaml").write_text(f"settings:\n  jsonata-engine: {engine}\n")
    (root / "t.jsonata").write_text(TRANSFORM)
    (root / "t.yaml").write_text("flow: t\nmax-concurrency: 8\nsteps:\n  - transform: t.jsonata\n")
    registry = load_registry()
    project = dsl.load_project(root, vocabulary=registry)
    store = open_store("memory://")
    lags: list[float] = []
    async with open_runtime(project, registry, store=store) as rt:
        async def ticker(done: anyio.Event) -> None:
            while not done.is_set():
                started = time.perf_counter()
                await anyio.sleep(0.001)
                lags.append(time.perf_counter() - started - 0.001)

        done = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker, done)
            async with anyio.create_task_group() as work_group:
                for _ in range(messages):
                    work_group.start_soon(rt.engine.run, "t", Event(payload=OPPORTUNITY))
            done.set()
    await store.aclose()
    lags.sort()
    return {"max_ms": lags[-1] * 1000, "p99_ms": lags[int(len(lags) * 0.99)] * 1000}


def transform_cost(messages: int) -> dict[str, float]:
    """Milliseconds per evaluation of the transform, per engine."""
    from dsl.expressions import get_engine

    out = {}
    for name in ("jsonata-python", "jsonatapy"):
        compiled = get_engine(name).compile(TRANSFORM)
        for _ in range(50):
            compiled.evaluate(OPPORTUNITY, {})
        started = time.perf_counter()
        for _ in range(messages):
            compiled.evaluate(OPPORTUNITY, {})
        out[name] = (time.perf_counter() - started) / messages * 1000
    return out


def table(rows: list[dict[str, Any]]) -> str:
    header = (f"{'system':<11} {'transform':<15} {'hist':>4} {'conc':>4} {'msg/s':>8} {'p50 ms':>8} "
              f"{'p99 ms':>8} {'CPU %':>6} {'RSS MB':>7}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r['system']:<11} {r['transform']:<15} {r.get('history', '-'):>4} "
                     f"{r['concurrency']:>4} "
                     f"{r['msg_per_s']:>8.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                     f"{r['cpu_pct']:>6.0f} {r['peak_rss_mb']:>7.0f}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--engines", default="none,jsonata-python,jsonatapy")
    parser.add_argument("--history", choices=["on", "off", "both"], default="on",
                        help="execution history in the Splice runs (both: each case twice)")
    parser.add_argument("--node-red", action="store_true")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    if args.node_red and not NODE_RED.exists():
        print("Node-RED is not installed: run benchmarks/nodered/setup.sh first", file=sys.stderr)
        return 2
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sink_port = free_port()
        with process([sys.executable, str(HERE / "sink.py"), str(sink_port)]) as sink:
            wait_until_up(f"http://127.0.0.1:{sink_port}/", sink)
            modes = {"on": [True], "off": [False], "both": [True, False]}[args.history]
            for engine in args.engines.split(","):
                for history in modes:
                    rows += run_splice(work, sink_port, None if engine == "none" else engine,
                                       args.messages, concurrencies, history)
            if args.node_red:
                rows += run_node_red(work, sink_port, args.messages, concurrencies)
        overhead = asyncio.run(engine_overhead(work, 3000))
        stall = asyncio.run(loop_stall(work, 500, "jsonata-python"))
        cost = asyncio.run(history_cost(work, 1000)) if args.history == "both" else None
    costs = transform_cost(500)
    machine = f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, " \
              f"Python {platform.python_version()}"
    print(f"machine: {machine}")
    print(table(rows))
    print(f"\nengine overhead per message (in process, no transform, sink excluded): "
          f"{overhead['overhead_ms']:.3f} ms (engine.run {overhead['engine_ms']:.3f} ms, bare "
          f"httpx call {overhead['bare_client_ms']:.3f} ms)")
    print("transform cost per message: " + ", ".join(f"{k} {v:.3f} ms" for k, v in costs.items()))
    print(f"event-loop stall while 500 jsonata-python transforms run 8 at a time: "
          f"max {stall['max_ms']:.2f} ms, p99 {stall['p99_ms']:.2f} ms")
    if cost is not None:
        print(f"\nexecution history, in process (CPU per message, best of 5, writer included): "
              f"on {cost['on_ms']:.3f} ms ({1000 / cost['on_ms']:.0f} msgs/s per core), "
              f"off {cost['off_ms']:.3f} ms ({1000 / cost['off_ms']:.0f} msgs/s per core): "
              f"{cost['cost_pct']:+.1f}%")
        print("\nexecution history cost (msgs/s with history on vs off; load average "
              + ", ".join(f"{x:.2f}" for x in os.getloadavg()) + "):")
        for on in (r for r in rows if r.get("history") == "on"):
            off = next(r for r in rows if r.get("history") == "off"
                       and r["transform"] == on["transform"] and r["concurrency"] == on["concurrency"])
            print(f"  {on['transform']:<15} concurrency {on['concurrency']:>3}: on {on['msg_per_s']:.0f}, "
                  f"off {off['msg_per_s']:.0f} msgs/s: {100 * (1 - on['msg_per_s'] / off['msg_per_s']):+.1f}% "
                  "cost")
    if args.node_red:
        for c in concurrencies:
            ours = next((r for r in rows if r["system"] == "splice" and r["transform"] == "jsonatapy"
                         and r["concurrency"] == c and r.get("history") != "off"), None)
            theirs = next(r for r in rows if r["system"] != "splice" and r["concurrency"] == c)
            if ours:
                print(f"concurrency {c}: splice+jsonatapy / node-red = "
                      f"{ours['msg_per_s'] / theirs['msg_per_s']:.2f}x")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"machine": machine, "rows": rows,
                                               "overhead": overhead, "transform_ms": costs,
                                               "loop_stall": stall},
                                              indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
