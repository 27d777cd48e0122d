"""Intentions through the agent, each figure against a baseline in the same run.

    .venv/bin/python bench/bench_intentions_api.py [--part wake|dryrun|all] [--intentions 10000]
                                                   [--services 1000] [--rounds 200]

1. wake: a real agent holds ``--intentions`` intentions (1,000 service-intentions
   entries); a blocking ``/v1/connect/intentions/match?by=destination`` query parks;
   an ``/exact`` PUT changes that destination; the figure is the time from the start
   of the PUT to the blocking query's answer (p50/p99 over ``--rounds``). Baseline:
   the acknowledged PUT alone, same agent, same rounds.
2. dryrun: in-process, ``--services`` registered services and ``--intentions``
   intentions; the time ``impact`` takes for an exact intention, a wildcard source,
   a wildcard destination and ``*/*``. Baseline: deciding every pair of services
   twice (before/after), the obvious way to compute the same answer.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trellis.connect.intentions.decide import Default  # noqa: E402
from trellis.connect.intentions.impact import changed_intentions, impact  # noqa: E402
from trellis.connect.intentions.index import IntentionIndex  # noqa: E402
from trellis.connect.intentions.model import Action, Intention  # noqa: E402
from trellis.connect.intentions.precedence import precedence  # noqa: E402
from trellis.testing.agent import start_agent  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Client:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body: object = None) -> tuple[int, dict, object]:
        data = None if body is None else json.dumps(body).encode()
        self.conn.request(method, path, body=data)
        resp = self.conn.getresponse()
        raw = resp.read()
        return resp.status, dict(resp.getheaders()), json.loads(raw) if raw else None


def wake(n_intentions: int, rounds: int) -> None:
    per_entry = 10
    with tempfile.TemporaryDirectory() as tmp:
        agent = start_agent(Path(tmp), "-hcl", 'default_intention_policy = "allow"')
        try:
            c = Client(agent.http_port)
            t0 = time.perf_counter()
            for i in range(n_intentions // per_entry):
                sources = [{"Name": f"src-{i}-{j}", "Action": "allow" if j % 2 else "deny"} for j in range(per_entry)]
                status, _, _ = c.call("PUT", "/v1/config", {"Kind": "service-intentions", "Name": f"dst-{i}",
                                                           "Sources": sources})
                assert status == 200
            print(f"loaded {n_intentions} intentions in {time.perf_counter() - t0:.1f}s", flush=True)
            acks, wakes = [], []
            for r in range(rounds):
                dst = f"dst-{r % 50}"
                _, h, _ = c.call("GET", f"/v1/connect/intentions/match?by=destination&name={dst}")
                index = int(h["X-Consul-Index"])
                got: dict = {}

                def block() -> None:
                    w = Client(agent.http_port)
                    got["status"], got["headers"], _ = w.call(
                        "GET", f"/v1/connect/intentions/match?by=destination&name={dst}&index={index}&wait=30s")
                    got["at"] = time.perf_counter()

                t = threading.Thread(target=block)
                t.start()
                time.sleep(0.02)  # parked
                start = time.perf_counter()
                status, _, _ = c.call("PUT", f"/v1/connect/intentions/exact?source=bench-{r}&destination={dst}",
                                      {"Action": "deny"})
                acks.append(time.perf_counter() - start)
                t.join(30)
                assert status == 200 and int(got["headers"]["X-Consul-Index"]) > index
                wakes.append(got["at"] - start)
            print(f"\n{'what':<48} {'p50 ms':>8} {'p99 ms':>8}")
            print(f"{'baseline: PUT /exact acknowledged':<48} {pct(acks, .5) * 1e3:>8.2f} {pct(acks, .99) * 1e3:>8.2f}")
            print(f"{'PUT start -> blocking /match answered':<48} {pct(wakes, .5) * 1e3:>8.2f} "
                  f"{pct(wakes, .99) * 1e3:>8.2f}")
            print(f"({n_intentions} intentions, {rounds} rounds)")
        finally:
            agent.stop()


def dryrun(n_intentions: int, n_services: int) -> None:
    rng = random.Random(7)
    services = [("default", f"svc-{i}") for i in range(n_services)]
    intentions = []
    seen = set()
    while len(intentions) < n_intentions:
        src, dst = rng.choice(services), rng.choice(services)
        if src == dst or (src, dst) in seen:
            continue
        seen.add((src, dst))
        intentions.append(Intention(src[0], src[1], dst[0], dst[1], action=rng.choice(list(Action)),
                                    precedence=precedence(*src, *dst)))
    before = IntentionIndex(intentions)
    default = Default(True, "Default intention policy")
    cases = {
        "exact  svc-1 -> svc-2": Intention("default", "svc-1", "default", "svc-2", action=Action.DENY),
        "source *  -> svc-2": Intention("default", "*", "default", "svc-2", action=Action.DENY),
        "svc-1 -> destination *": Intention("default", "svc-1", "default", "*", action=Action.DENY),
        "*/* -> */*": Intention("*", "*", "*", "*", action=Action.DENY),
    }
    print(f"\n{'change':<26} {'impact ms':>10} {'pairs changed':>14} {'all-pairs ms':>13} {'speed-up':>9}")
    for label, new in cases.items():
        new = Intention(*[getattr(new, f) for f in ("source_ns", "source_name", "destination_ns",
                                                    "destination_name")], action=new.action,
                        precedence=precedence(new.source_ns, new.source_name, new.destination_ns,
                                              new.destination_name))
        after_list = [*intentions, new]
        t0 = time.perf_counter()
        after = IntentionIndex(after_list)
        changes = impact(before, after, changed_intentions(intentions, after_list), services, default=default)
        fast = time.perf_counter() - t0
        t0 = time.perf_counter()
        after2 = IntentionIndex(after_list)
        flips = 0
        for s in services:
            for d in services:
                if s != d and before.decide(s, d, default=default).allowed != after2.decide(s, d, default=default).allowed:
                    flips += 1
        slow = time.perf_counter() - t0
        assert flips == len(changes), (label, flips, len(changes))
        print(f"{label:<26} {fast * 1e3:>10.1f} {len(changes):>14} {slow * 1e3:>13.0f} {slow / fast:>8.1f}x")
    print(f"({n_intentions} intentions, {n_services} services; both columns include building the after-index)")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--part", choices=("wake", "dryrun", "all"), default="all")
    p.add_argument("--intentions", type=int, default=10_000)
    p.add_argument("--services", type=int, default=1_000)
    p.add_argument("--rounds", type=int, default=200)
    a = p.parse_args()
    if a.part in ("dryrun", "all"):
        dryrun(a.intentions, a.services)
    if a.part in ("wake", "all"):
        wake(a.intentions, a.rounds)


if __name__ == "__main__":
    main()
