"""Agent benchmarks, each against a baseline measured in the same run.

    python bench/bench_agent.py [--quick]

1. start: agent start to first answered request vs a bare aiohttp server's.
2. registrations/s acknowledged through the HTTP API (server mode, SQLite
   synchronous=FULL, group commit) vs raw SQLite commits on the same disk; then
   kill -9 and restart: every acknowledged registration must be there.
3. health query p50/p99 with 10,000 instances across 1,000 services vs the
   p50/p99 of /v1/status/leader (the HTTP floor).
4. blocking queries: 1,000 parked on different services, one write: how many
   wake; 1,000 parked on one service: p99 from the write's 200 to the last answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from trellis.testing.agent import free_port, start_agent  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def bench_start(tmp: Path) -> None:
    t0 = time.perf_counter()
    agent = start_agent(tmp / "start", timeout=60)
    agent_s = time.perf_counter() - t0
    agent.stop()
    port = free_port()
    code = textwrap.dedent(f"""
        from aiohttp import web
        async def h(r): return web.Response(text="ok")
        app = web.Application(); app.router.add_get("/", h)
        web.run_app(app, host="127.0.0.1", port={port}, print=None)
    """)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code])
    import urllib.request
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
            break
        except OSError:
            time.sleep(0.01)
    base_s = time.perf_counter() - t0
    proc.terminate()
    proc.wait()
    print(f"start to first answer: agent {agent_s * 1000:.0f} ms, bare aiohttp {base_s * 1000:.0f} ms, "
          f"ratio {agent_s / base_s:.2f}x")


CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "64"))


def raw_sqlite_commits(path: Path, n: int) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB)")
    t0 = time.perf_counter()
    for i in range(n):
        db.execute("BEGIN")
        db.execute("INSERT INTO kv VALUES (?, ?)", (f"k{i}", b"x" * 300))
        db.execute("COMMIT")
    dt = time.perf_counter() - t0
    db.close()
    return n / dt


async def _register_many(url: str, n: int, concurrency: int) -> tuple[float, int]:
    """Registrations over ``concurrency`` keep-alive connections with a minimal raw
    HTTP/1.1 client: on a 2-core machine an aiohttp client would take the CPU the
    agent needs and measure the client instead."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    ok = 0
    next_i = 0

    async def conn() -> None:
        nonlocal ok, next_i
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while next_i < n:
                i = next_i
                next_i += 1
                body = json.dumps({"Name": f"svc{i % 1000}", "ID": f"svc-{i}", "Port": 1000 + i % 50000,
                                   "Tags": ["bench"], "Meta": {"i": str(i)}}).encode()
                writer.write(b"PUT /v1/agent/service/register HTTP/1.1\r\nHost: x\r\n"
                             b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                status = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if length:
                    await reader.readexactly(length)
                if status.split()[1] == b"200":
                    ok += 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*[conn() for _ in range(concurrency)])
    dt = time.perf_counter() - t0
    return ok / dt, ok


def bench_registrations(tmp: Path, n: int) -> None:
    disk = tmp / "reg"
    disk.mkdir()
    base = raw_sqlite_commits(disk / "raw.db", min(n, 2000))
    data_dir = str(disk / "data")
    agent = start_agent(disk, "-server", dev=False, data_dir=data_dir, timeout=60)
    rate, acked = asyncio.run(_register_many(agent.url, n, CONCURRENCY))
    agent.kill9()
    again = start_agent(disk, "-server", dev=False, data_dir=data_dir, ports=(agent.http_port, agent.dns_port, agent.grpc_port), timeout=60)
    _, _, services = again.request("GET", "/v1/agent/services")
    kept = sum(1 for k in services if k.startswith("svc-"))
    again.stop()
    print(f"registrations/s (HTTP, synchronous=FULL): {rate:,.0f}/s vs raw SQLite commits {base:,.0f}/s "
          f"(ratio {rate / base:.2f}x); acknowledged {acked}, present after kill -9 + restart {kept}"
          f"{'' if kept == acked else '  <-- LOST WRITES'}")


async def _catalog_fill(url: str, instances: int, services: int) -> None:
    conn = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=conn) as session:
        sem = asyncio.Semaphore(64)

        async def one(i: int) -> None:
            node = f"node{i % 100}"
            body = {"Node": node, "Address": f"10.0.{i % 100 // 250}.{i % 100 + 1}",
                    "Service": {"Service": f"svc{i % services}", "ID": f"i{i}", "Port": 8000 + i % 1000},
                    "Check": {"CheckID": f"chk{i}", "Name": "c", "Status": "passing", "ServiceID": f"i{i}"}}
            async with sem:
                async with session.put(f"{url}/v1/catalog/register", json=body) as resp:
                    await resp.read()
                    assert resp.status == 200, await resp.text()

        await asyncio.gather(*[one(i) for i in range(instances)])


async def _latencies(url: str, paths: list[str]) -> list[float]:
    out = []
    async with aiohttp.ClientSession() as session:
        for p in paths:
            t0 = time.perf_counter()
            async with session.get(url + p) as resp:
                await resp.read()
            out.append(time.perf_counter() - t0)
    return out


def bench_health_query(tmp: Path, instances: int, services: int, queries: int) -> None:
    agent = start_agent(tmp / "health", timeout=60)
    try:
        t0 = time.perf_counter()
        asyncio.run(_catalog_fill(agent.url, instances, services))
        fill = time.perf_counter() - t0
        lat = asyncio.run(_latencies(agent.url, [f"/v1/health/service/svc{i % services}?passing" for i in range(queries)]))
        base = asyncio.run(_latencies(agent.url, ["/v1/status/leader"] * queries))
    finally:
        agent.stop()
    print(f"health query ({instances} instances / {services} services, filled in {fill:.1f}s): "
          f"p50 {pct(lat, 50) * 1000:.2f} ms p99 {pct(lat, 99) * 1000:.2f} ms; "
          f"baseline /v1/status/leader p50 {pct(base, 50) * 1000:.2f} ms p99 {pct(base, 99) * 1000:.2f} ms "
          f"(p50 ratio {pct(lat, 50) / pct(base, 50):.2f}x)")


async def _view_stats(session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    async with session.get(f"{url}/v1/agent/self") as r:
        return (await r.json())["Stats"]["view"]


async def _blocking(url: str, waiters: int, same: bool) -> tuple[int, list[float]]:
    conn = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:
        names = ["hot"] * waiters if same else [f"b{i}" for i in range(waiters)]
        for name in sorted(set(names)):
            async with session.put(f"{url}/v1/agent/service/register", json={"Name": name, "Port": 1}) as r:
                await r.read()
        async with session.get(f"{url}/v1/health/service/{names[0]}") as r:
            await r.read()
        done: list[float] = []
        wrote = asyncio.get_running_loop().create_future()

        async def park(name: str) -> None:
            async with session.get(f"{url}/v1/health/service/{name}") as r:
                idx = r.headers["X-Consul-Index"]
                await r.read()
            async with session.get(f"{url}/v1/health/service/{name}?index={idx}&wait=15s") as r:
                await r.read()
            if wrote.done():
                done.append(time.perf_counter() - wrote.result())

        tasks = [asyncio.create_task(park(n)) for n in names]
        await asyncio.sleep(3)  # let every query park
        before = await _view_stats(session, url)
        target = names[0]
        async with session.put(f"{url}/v1/agent/service/register",
                               json={"Name": target, "ID": target + "-2", "Port": 2}) as r:
            await r.read()
        wrote.set_result(time.perf_counter())
        await asyncio.sleep(2)
        after = await _view_stats(session, url)
        woke = len(done)
        print(f"    view: {int(before['waiters'])} watch-key registrations parked; the write woke {int(after['wakeups']) - int(before['wakeups'])} "
              "waiters inside the agent (HTTP, DNS, check sync)", flush=True)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return woke, done


def bench_blocking(tmp: Path, waiters: int) -> None:
    agent = start_agent(tmp / "block", timeout=60)
    try:
        woke, _ = asyncio.run(_blocking(agent.url, waiters, same=False))
        _, lat = asyncio.run(_blocking(agent.url, waiters, same=True))
    finally:
        agent.stop()
    print(f"blocking: {waiters} waiters on different services, one write -> {woke} woke (ideal 1); "
          f"{waiters} on one service -> {len(lat)} answered, write-200 to last answer "
          f"p50 {pct(lat, 50) * 1000:.0f} ms p99 {pct(lat, 99) * 1000:.0f} ms max {max(lat) * 1000:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    ap.add_argument("--only", choices=["start", "register", "health", "blocking"])
    args = ap.parse_args()
    n = 2000 if args.quick else 20000
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        tmp = Path(d)
        if args.only in (None, "start"):
            bench_start(tmp)
        if args.only in (None, "register"):
            bench_registrations(tmp, n)
        if args.only in (None, "health"):
            bench_health_query(tmp, 1000 if args.quick else 10000, 100 if args.quick else 1000,
                               500 if args.quick else 2000)
        if args.only in (None, "blocking"):
            bench_blocking(tmp, 100 if args.quick else 1000)


if __name__ == "__main__":
    main()
