"""Acknowledged txns/s of SQLiteBackend under concurrent writers, against raw sqlite3.

    .venv/bin/python bench/bench_store.py [--writers 200] [--txns 10000] [--synchronous FULL] [--dir D]

Both runs use the same directory (so the same disk), WAL and the same
``synchronous``. The baseline commits one row per transaction from one thread:
what a store without group commit pays per write (one fsync each with FULL). The
backend's figure counts txns acknowledged to their callers (committed, watchers
fed), each txn one key with a ~200-byte JSON value, each with its own revision.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from trellis.store.backend import Put
from trellis.store.sqlite import SQLiteBackend

VALUE = json.dumps({"Node": "node-1", "Service": "web", "Port": 8080, "Tags": ["v1", "primary"],
                    "Meta": {"version": "1.2.3"}, "Address": "10.0.0.1", "Pad": "x" * 64}).encode()  # fmt: skip


async def bench_backend(path: Path, writers: int, txns: int, synchronous: str) -> tuple[float, list[float]]:
    backend = await SQLiteBackend.open(path, synchronous=synchronous)
    latencies: list[float] = []
    per_writer = txns // writers

    async def writer(w: int) -> None:
        for i in range(per_writer):
            started = time.perf_counter()
            await backend.txn(puts=[Put(f"catalog/services/node-{w}/svc-{i}", VALUE)])
            latencies.append(time.perf_counter() - started)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        elapsed = time.perf_counter() - started
    finally:
        await backend.close()
    return per_writer * writers / elapsed, latencies


def bench_raw(path: Path, seconds: float, max_rows: int, synchronous: str) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
    rows = 0
    started = time.perf_counter()
    deadline = started + seconds
    while rows < max_rows and time.perf_counter() < deadline:
        conn.execute("BEGIN")
        conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (f"k/{rows}".encode(), VALUE))
        conn.execute("COMMIT")
        rows += 1
    elapsed = time.perf_counter() - started
    conn.close()
    return rows / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=200)
    parser.add_argument("--txns", type=int, default=10_000)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--baseline-seconds", type=float, default=3.0)
    parser.add_argument("--dir", default=None, help="where the databases go (default: a temp dir)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="trellis-bench-", dir=args.dir))
    try:  # the baseline runs before and after, so a disk that gets busier shows up
        before = bench_raw(work / "raw1.db", args.baseline_seconds, args.txns, args.synchronous)
        rate, latencies = asyncio.run(bench_backend(work / "store.db", args.writers, args.txns, args.synchronous))
        after = bench_raw(work / "raw2.db", args.baseline_seconds, args.txns, args.synchronous)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    raw = (before + after) / 2
    q = statistics.quantiles(latencies, n=100)
    print(f"directory:          {work} (removed)")
    print(f"synchronous:        {args.synchronous}, WAL")
    print(f"raw sqlite3:        {raw:10.0f} commits/s (one row per commit, one thread; "
          f"{before:.0f} before, {after:.0f} after)")  # fmt: skip
    print(f"SQLiteBackend:      {rate:10.0f} txns/s acknowledged ({args.writers} writers, {len(latencies)} txns)")
    print(f"ack latency:        p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms")
    print(f"ratio:              {rate / raw:10.1f}x")


if __name__ == "__main__":
    main()
