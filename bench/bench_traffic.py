"""Route and split changes under load (issue 7): no request may fail while the discovery
chain changes.

    python bench/bench_traffic.py [--changes 100] [--rate 1000] [--gap 0.1]

A real agent (`-dev`, default allow) and nginx; `api` has two instances (tags v1 and v2, both
served by nginx) behind their own Envoy sidecars, and `web`'s Envoy has `api` as an http
upstream. api has a resolver with subsets v1 and v2. An open-loop client sends GET / at
``--rate`` requests per second over keep-alive connections through web's upstream listener.

* baseline: the same load for the same time with no change (what the path itself loses);
* changes: the same load while ``--changes`` config entries are written one after another,
  ``--gap`` seconds apart, alternating splitter weights (100/0, 50/50, 0/100, 75/25, ...) and
  a router whose rules come and go (a /v2 prefix route to subset v2, a header route).

It prints the requests sent, non-2xx answers and connection errors for both, and the agent's
route updates web's Envoy accepted (its RDS ``update_success``). Goal: 0 non-2xx during the changes. Needs nginx
(`sh scripts/bench-deps.sh`). Every process is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_proxy import wait_http  # noqa: E402
from envoy_mesh import bench_mesh  # noqa: E402

from trellis.testing.agent import free_port  # noqa: E402


async def load(port: int, rate: int, seconds: float, conns: int = 32) -> dict[str, int]:
    """Open-loop GETs; counts 2xx, other statuses and connection errors (a failed
    connection is replaced)."""
    request = b"GET / HTTP/1.1\r\nHost: api\r\n\r\n"
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(conns):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    counts = {"sent": 0, "2xx": 0, "non-2xx": 0, "errors": 0}
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    async def one() -> None:
        reader, writer = await pool.get()
        try:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await reader.readexactly(length)
            counts["2xx" if 200 <= status < 300 else "non-2xx"] += 1
            pool.put_nowait((reader, writer))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            counts["errors"] += 1
            writer.close()
            pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))

    tasks = []
    for i in range(int(rate * seconds)):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        counts["sent"] += 1
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait()[1].close()
    return counts


def change(k: int) -> dict:
    """The k-th entry written: splitter weights, or a router with rules that come and go."""
    if k % 2 == 0:
        w = (100, 50, 0, 75, 25)[(k // 2) % 5]
        return {"Kind": "service-splitter", "Name": "api", "Splits": [
            {"Weight": w, "ServiceSubset": "v1"}, {"Weight": 100 - w, "ServiceSubset": "v2"}]}
    routes = [{"Match": {"HTTP": {"PathPrefix": "/v2"}}, "Destination": {"ServiceSubset": "v2"}}]
    if (k // 2) % 2:
        routes.append({"Match": {"HTTP": {"Header": [{"Name": "x-v1", "Present": True}]}},
                       "Destination": {"ServiceSubset": "v1", "NumRetries": 1}})
    return {"Kind": "service-router", "Name": "api", "Routes": routes}


def rds_updates(admin: int) -> int:
    """Route updates web's Envoy accepted for the ``api`` route (its RDS stat)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter=rds\\.api\\.update_success", timeout=5) as r:
        lines = r.read().decode().splitlines()
    return sum(int(line.rsplit(":", 1)[1]) for line in lines if line.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--gap", type=float, default=0.1, help="seconds between two writes")
    a = ap.parse_args()
    with bench_mesh() as m:
        m.ok("PUT", "/v1/config", {"Kind": "service-defaults", "Name": "api", "Protocol": "http"})
        m.ok("PUT", "/v1/config", {"Kind": "service-resolver", "Name": "api", "Subsets": {
            "v1": {"Filter": '"v1" in Service.Tags'}, "v2": {"Filter": '"v2" in Service.Tags'}}})
        up = free_port()
        bind = {"bind_address": "127.0.0.1"}
        for sid, tag in (("api-1", "v1"), ("api-2", "v2")):
            m.ok("PUT", "/v1/agent/service/register", {
                "Name": "api", "ID": sid, "Port": m.nginx, "Tags": [tag],
                "Connect": {"SidecarService": {"Port": free_port(), "Proxy": {"Config": bind}}}})
        m.ok("PUT", "/v1/agent/service/register", {
            "Name": "web", "ID": "web-1", "Port": free_port(), "Connect": {"SidecarService": {
                "Port": free_port(), "Proxy": {"Config": bind, "Upstreams": [
                    {"DestinationName": "api", "LocalBindPort": up}]}}}})
        admin = {sid: m.envoy(sid, "-sidecar-for", sid) for sid in ("api-1", "api-2", "web-1")}
        wait_http(up, 60)
        seconds = a.changes * a.gap + 1.0
        print(f"baseline: {a.rate} rps for {seconds:.1f} s, no change ...", flush=True)
        base = asyncio.run(load(up, a.rate, seconds))

        async def with_changes() -> dict[str, int]:
            task = asyncio.create_task(load(up, a.rate, seconds))
            await asyncio.sleep(0.5)
            for k in range(a.changes):
                await asyncio.to_thread(m.ok, "PUT", "/v1/config", change(k))
                await asyncio.sleep(a.gap)
            return await task

        print(f"changes: {a.changes} writes {a.gap:g} s apart under the same load ...", flush=True)
        before = rds_updates(admin["web-1"])
        changed = asyncio.run(with_changes())
        time.sleep(0.5)
        routes = rds_updates(admin["web-1"]) - before
    print(f"\n{'':<28} {'sent':>8} {'2xx':>8} {'non-2xx':>8} {'errors':>8}")
    for label, c in (("baseline (no change)", base), (f"{a.changes} route/split changes", changed)):
        print(f"{label:<28} {c['sent']:>8} {c['2xx']:>8} {c['non-2xx']:>8} {c['errors']:>8}")
    print(f"route updates web's Envoy accepted during the changes: {routes} (of {a.changes} writes; "
          f"writes closer than the agent's debounce share one)")
    bad = changed["non-2xx"] + changed["errors"]
    print(f"non-2xx or failed during the changes: {bad} (goal 0: {'met' if bad == 0 else 'NOT met'})")
    print(json.dumps({"baseline": base, "changes": changed, "route_updates": routes}))


if __name__ == "__main__":
    main()
