"""The ingress gateway path against a direct connection (issue 7).

    python bench/bench_gateways.py [--rate 1000] [--duration 10] [--rounds 5]

A real agent (`-dev`, default allow) and nginx returning a fixed 1 KiB body; `web` is nginx
with an Envoy sidecar; an ingress gateway (its own Envoy) has an http listener exposing web
(Hosts "*"). Open-loop GETs at ``--rate`` per second over keep-alive connections, in
``--rounds`` interleaved rounds of ``--duration`` seconds per path:

* direct: client → nginx (the baseline, same run);
* ingress: client → gateway Envoy → (mTLS) → web's Envoy → nginx.

Each figure is the median over rounds of that round's percentile; the added latency is the
ingress path's minus the direct path's. Goal (issue 7): report the added p99. Needs nginx
(`sh scripts/bench-deps.sh`). Every process is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_proxy import fixed_rate, pct, wait_http  # noqa: E402
from envoy_mesh import bench_mesh  # noqa: E402

from trellis.testing.agent import free_port  # noqa: E402


INGRESS = "ingress gateway, web's Envoy"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    with bench_mesh() as m:
        ingress = free_port()
        m.ok("PUT", "/v1/config", {"Kind": "service-defaults", "Name": "web", "Protocol": "http"})
        m.ok("PUT", "/v1/agent/service/register", {
            "Name": "web", "ID": "web-1", "Port": m.nginx, "Connect": {"SidecarService": {
                "Port": free_port(), "Proxy": {"Config": {"bind_address": "127.0.0.1"}}}}})
        m.ok("PUT", "/v1/agent/service/register", {
            "Name": "ingress-gateway", "Kind": "ingress-gateway", "Address": "127.0.0.1", "Port": free_port()})
        m.ok("PUT", "/v1/config", {"Kind": "ingress-gateway", "Name": "ingress-gateway", "Listeners": [
            {"Port": ingress, "Protocol": "http", "Services": [{"Name": "web", "Hosts": ["*"]}]}]})
        m.envoy("web-1", "-sidecar-for", "web-1")
        m.envoy("ingress", "-gateway=ingress")
        wait_http(m.nginx, 30)
        wait_http(ingress, 60)
        time.sleep(1.0)
        paths = {"direct to nginx": m.nginx, INGRESS: ingress}
        rounds: dict[str, list[tuple[float, float]]] = {label: [] for label in paths}
        for r in range(a.rounds):
            for label, port in paths.items():
                print(f"  round {r + 1}/{a.rounds}: {a.rate} rps for {a.duration}s, {label} ...", flush=True)
                lat = asyncio.run(fixed_rate(port, a.rate, a.duration))
                rounds[label].append((pct(lat, 0.5), pct(lat, 0.99)))
    med = {label: (statistics.median(p50 for p50, _ in rs) * 1e3, statistics.median(p99 for _, p99 in rs) * 1e3)
           for label, rs in rounds.items()}
    base50, base99 = med["direct to nginx"]
    print(f"\n{'path':<32} {'p50 ms':>8} {'p99 ms':>8} {'+p50':>7} {'+p99':>7}  p99 of each round ms")
    for label, (p50, p99) in med.items():
        each = "/".join(f"{p99 * 1e3:.2f}" for _, p99 in rounds[label])
        print(f"{label:<32} {p50:>8.2f} {p99:>8.2f} {p50 - base50:>7.2f} {p99 - base99:>7.2f}  {each}")
    added = med[INGRESS][1] - base99
    print(f"ingress gateway added p99: {added:.2f} ms")


if __name__ == "__main__":
    main()
