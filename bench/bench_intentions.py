"""Intention decisions per second: IntentionIndex against a linear scan of the sorted list.

    .venv/bin/python bench/bench_intentions.py [--intentions 10000] [--queries 200000] [--seed 1]

One thread, pure Python, no I/O. The mesh is a realistic mix: 2,000 services in four
namespaces (most in ``default``), mostly exact ``ns/name => ns/name`` pairs (a few
percent L7), plus namespace wildcards (``payments/* => default/db``), catch-alls for
some destinations (``*/* => ops/metrics``), a few wildcard destinations and one
``*/* => */*`` deny. Queries are the pairs a mesh asks about: half exact pairs that
have an intention, half random pairs (decided by a wildcard or by the default).

The baseline, in the same run, is decide.py's rule read literally: walk every
intention in evaluation order and take the first whose destination and source match.
Every index answer in the baseline's sample is checked against the baseline's.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Sequence

from trellis.connect.intentions.decide import (
    ACL_DEFAULT_REASON,
    Default,
    conclude,
    decide,
    destination_matches,
    source_matches,
)
from trellis.connect.intentions.index import IntentionIndex
from trellis.connect.intentions.model import WILDCARD, Action, HTTPMatch, HTTPRequest, Intention, Permission
from trellis.connect.intentions.precedence import sorted_intentions

Name = tuple[str, str]
Query = tuple[Name, Name]
NAMESPACES = ["default"] * 7 + ["payments", "search", "ops"]
DEFAULT = Default(False, ACL_DEFAULT_REASON)
L7_PERMISSIONS = (
    Permission(Action.DENY, HTTPMatch(path_prefix="/admin")),
    Permission(Action.ALLOW, HTTPMatch(path_regex="/api/v[0-9]+/.*", methods=("GET", "POST"))),
    Permission(Action.ALLOW, HTTPMatch(path_exact="/health")),
)
REQUESTS = [HTTPRequest("/api/v2/users", "GET"), HTTPRequest("/admin/x", "GET"), HTTPRequest("/other", "PUT")]


def make_services(rng: random.Random, count: int) -> list[Name]:
    return [(rng.choice(NAMESPACES), f"svc-{i:04d}") for i in range(count)]


def make_mesh(rng: random.Random, services: list[Name], total: int) -> list[Intention]:
    """``total`` intentions, unique per (source, destination) pair."""
    namespaces = sorted(set(NAMESPACES))
    wildcard_sources = [(ns, WILDCARD) for ns in namespaces] + [(WILDCARD, WILDCARD)]
    pairs: dict[tuple[Name, Name], Intention] = {}

    def add(source: Name, destination: Name, l7: bool = False) -> None:
        if (source, destination) in pairs:
            return
        if l7:
            pairs[(source, destination)] = Intention(*source, *destination, permissions=L7_PERMISSIONS)
        else:
            action = Action.ALLOW if rng.random() < 0.85 else Action.DENY
            pairs[(source, destination)] = Intention(*source, *destination, action=action)

    add((WILDCARD, WILDCARD), (WILDCARD, WILDCARD))  # level 1: the catch-all
    for ns in namespaces:
        add((WILDCARD, WILDCARD), (ns, WILDCARD))  # level 4
        add((ns, WILDCARD), (ns, WILDCARD))  # level 5
    for source in rng.sample(services, 5):
        add(source, (WILDCARD, WILDCARD))  # level 3: monitoring reaches everything
    for source in rng.sample(services, 100):
        add(source, (rng.choice(namespaces), WILDCARD))  # level 6
    for destination in rng.sample(services, 550):
        add(rng.choice(wildcard_sources), destination)  # levels 7 and 8
    while len(pairs) < total:
        source, destination = rng.choice(services), rng.choice(services)
        if source != destination:
            add(source, destination, l7=rng.random() < 0.03)  # level 9
    return list(pairs.values())


def make_queries(rng: random.Random, mesh: list[Intention], services: list[Name], count: int) -> list[Query]:
    exact = [(i.source, i.destination) for i in mesh if WILDCARD not in i.source + i.destination]
    return [
        rng.choice(exact) if rng.random() < 0.5 else (rng.choice(services), rng.choice(services))
        for _ in range(count)
    ]


def linear_scan(ordered: Sequence[Intention], source: Name, destination: Name, request: HTTPRequest | None = None):
    for ixn in ordered:
        if destination_matches(ixn, destination) and source_matches(ixn, source):
            return conclude(ixn, default=DEFAULT, request=request)
    return DEFAULT.decision()


def rate(run: Callable[[], int], repeats: int = 3) -> float:
    """Best of ``repeats`` runs, in decisions per second."""
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        done = run()
        best = max(best, done / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intentions", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200_000)
    parser.add_argument("--scan-queries", type=int, default=300, help="queries for the (slow) linear scan")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    services = make_services(rng, 2_000)
    mesh = make_mesh(rng, services, args.intentions)
    queries = make_queries(rng, mesh, services, args.queries)
    scan_sample = queries[: args.scan_queries]
    l7_pairs = [(i.source, i.destination) for i in mesh if i.l7]
    l7_queries = [(rng.choice(l7_pairs), rng.choice(REQUESTS)) for _ in range(args.queries // 4)]

    started = time.perf_counter()
    index = IntentionIndex(mesh)
    build = time.perf_counter() - started
    ordered = sorted_intentions(mesh)

    scanned = [linear_scan(ordered, s, d) for s, d in scan_sample]
    mismatches = sum(index.decide(s, d, default=DEFAULT) != want for (s, d), want in zip(scan_sample, scanned))

    def run_index() -> int:
        for source, destination in queries:
            index.decide(source, destination, default=DEFAULT)
        return len(queries)

    def run_candidates() -> int:
        for source, destination in queries:
            decide(index.candidates(*destination), source, default=DEFAULT)
        return len(queries)

    def run_scan() -> int:
        for source, destination in scan_sample:
            linear_scan(ordered, source, destination)
        return len(scan_sample)

    def run_l7() -> int:
        for (source, destination), request in l7_queries:
            index.decide(source, destination, default=DEFAULT, request=request)
        return len(l7_queries)

    def run_l7_scan() -> int:
        for (source, destination), request in l7_queries[: args.scan_queries]:
            linear_scan(ordered, source, destination, request)
        return min(len(l7_queries), args.scan_queries)

    scan_rate, l7_scan_rate = rate(run_scan), rate(run_l7_scan)
    rows = [
        ("L4: linear scan of the sorted list (baseline)", scan_rate, scan_rate),
        ("L4: decide() over IntentionIndex.candidates (cached)", rate(run_candidates), scan_rate),
        ("L4: IntentionIndex.decide", rate(run_index), scan_rate),
        ("L7 + HTTP request: linear scan (baseline)", l7_scan_rate, l7_scan_rate),
        ("L7 + HTTP request: IntentionIndex.decide", rate(run_l7), l7_scan_rate),
    ]
    print(f"{len(mesh):,} intentions ({sum(i.l7 for i in mesh)} L7), {len(services):,} services in "
          f"{len(set(ns for ns, _ in services))} namespaces; index built in {build * 1000:.1f} ms")
    print(f"{len(queries):,} L4 queries (half exact pairs), {len(l7_queries):,} L7 queries; "
          f"index vs scan on {len(scan_sample)} queries: {mismatches} mismatches")
    print()
    print(f"| {'path':<54} | {'decisions/s':>12} | {'vs baseline':>11} |")
    print(f"|{'-' * 56}|{'-' * 14}|{'-' * 13}|")
    for label, value, baseline in rows:
        print(f"| {label:<54} | {value:>12,.0f} | {value / baseline:>10.0f}x |")
    if mismatches:
        raise SystemExit(f"{mismatches} decisions differ from the linear scan")


if __name__ == "__main__":
    main()
