"""Connect CA benchmarks, each against a baseline measured in the same run.

    .venv/bin/python bench/bench_ca.py [--part sign|rotate|all] [--csrs 3000] [--services 10000]
                                       [--concurrency 32] [--rotate-concurrency 64] [--client raw|aiohttp]
                                       [--profile]

1. sign: leaf signatures per second through the server's signing path
   (``CAManager.sign_csr``: CSR limiter, CSR checks, signing, issued mark) with
   CSRMaxPerSecond = 0, in-process over a SQLite store, against the bare minimum
   with ``cryptography`` in the same process (load the CSR, CertificateBuilder,
   sign with the same root key; measured before and after, averaged). Also: the
   pure functions alone, the agent's side included (``LeafManager.get``: key + CSR
   + sign), and over HTTP against a real agent process (``GET
   /v1/agent/connect/ca/leaf/<svc>`` for distinct services, some in flight).
   Goal: >= 1,000 leaves/s through ``sign_csr``.
2. rotate: a real agent holds leaves for ``--services`` services; ``POST
   /v1/connect/ca/rotate``; then every service asks for its leaf again
   (non-blocking: the agent re-issues a leaf not signed by the active root). The
   figure is the time from the rotate call until every service holds a leaf whose
   AuthorityKeyId is the new root's SigningKeyID (each leaf is then verified
   against the new root's certificate, outside the timing). Baseline: the same
   number of GETs of leaves already cached (no signing), same client, same agent.

The HTTP load comes from a minimal raw HTTP/1.1 keep-alive client by default: on 2
cores an aiohttp client takes CPU the agent needs (``--client aiohttp`` to compare).
Agent CPU per leaf is read from /proc/<pid>/stat around each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from trellis.agent.leafcert import LeafManager  # noqa: E402
from trellis.catalog.tables import catalog_tables  # noqa: E402
from trellis.connect import spiffe  # noqa: E402
from trellis.connect.ca import certs  # noqa: E402
from trellis.connect.ca.manager import CAManager  # noqa: E402
from trellis.connect.ca.tables import CATable  # noqa: E402
from trellis.store.sqlite import SQLiteBackend  # noqa: E402
from trellis.store.view import View  # noqa: E402
from trellis.store.writer import Writer  # noqa: E402
from trellis.testing.agent import AgentProcess, start_agent  # noqa: E402

DC = "dc1"
NS = "default"
GOAL = 1000.0


# -- part 1, in-process -------------------------------------------------------------------
def make_csrs(td: str, names: Sequence[str]) -> list[bytes]:
    """One P-256 key and CSR per service (what an agent does before asking)."""
    return [certs.dump_csr(certs.build_csr(certs.generate_key(certs.LEAF_KEY),
                                           spiffe.service_uri(td, NS, DC, name))) for name in names]


def raw_cryptography(csrs: Sequence[bytes], root: x509.Certificate, root_key: certs.PrivateKey,
                     verify: bool = False) -> float:
    """Baseline: the least a CA must do per leaf with cryptography; leaves/s. With
    ``verify``, also the CSR's own signature (what any CA checks before signing)."""
    now = dt.datetime.now(dt.timezone.utc)
    start, end = now - dt.timedelta(minutes=1), now + dt.timedelta(hours=72)
    issuer = root.subject
    t0 = time.perf_counter()
    for der in csrs:
        csr = x509.load_der_x509_csr(der)
        if verify and not csr.is_signature_valid:
            raise AssertionError("bad CSR")
        (x509.CertificateBuilder()
         .subject_name(csr.subject).issuer_name(issuer).public_key(csr.public_key())
         .serial_number(secrets.randbits(127) | 1 << 120)
         .not_valid_before(start).not_valid_after(end)
         .sign(root_key, hashes.SHA256()))
    return len(csrs) / (time.perf_counter() - t0)


def pure_functions(csrs: Sequence[bytes], root: x509.Certificate, root_key: certs.PrivateKey,
                   td: str) -> tuple[float, dict[str, float]]:
    """trellis' pure steps of sign_csr, no event loop, no store; leaves/s and µs per step."""
    steps = {"load_csr": 0.0, "check_csr": 0.0, "sign_leaf": 0.0, "dump_cert": 0.0}
    now = dt.datetime.now(dt.timezone.utc)
    ttl = dt.timedelta(hours=72)
    pc = time.perf_counter
    t0 = pc()
    for der in csrs:
        a = pc()
        csr = certs.load_csr(der)
        b = pc()
        certs.check_csr(csr, trust_domain=td, datacenter=DC)
        c = pc()
        leaf = certs.sign_leaf(csr, root, root_key, serial=secrets.randbits(127) | 1 << 120, now=now, ttl=ttl)
        d = pc()
        certs.dump_cert(leaf)
        e = pc()
        steps["load_csr"] += b - a
        steps["check_csr"] += c - b
        steps["sign_leaf"] += d - c
        steps["dump_cert"] += e - d
    elapsed = pc() - t0
    return len(csrs) / elapsed, {k: v / len(csrs) * 1e6 for k, v in steps.items()}


async def _sign_all(ca: CAManager, csrs: Sequence[bytes]) -> float:
    t0 = time.perf_counter()
    for der in csrs:
        await ca.sign_csr(der)
    return len(csrs) / (time.perf_counter() - t0)


async def _sign_gather(ca: CAManager, csrs: Sequence[bytes], in_flight: int) -> float:
    it = iter(csrs)

    async def worker() -> None:
        for der in it:
            await ca.sign_csr(der)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return len(csrs) / (time.perf_counter() - t0)


async def bench_sign_inprocess(tmp: Path, n: int, profile: bool) -> list[tuple[str, float]]:
    backend = await SQLiteBackend.open(str(tmp / "state.db"), synchronous="FULL")  # as a -server agent
    view = View([*catalog_tables(), CATable()])
    view_task = asyncio.create_task(view.run(backend), name="view")
    try:
        await view.ready.wait()
        writer = Writer(backend, view)
        ca = CAManager(view, writer, datacenter=DC)
        await ca.initialize("consul", {"csr_max_per_second": 0})
        cfg = ca.current_config()
        assert cfg.csr_max_per_second == 0, cfg
        td = ca.table.trust_domain
        active = ca.table.active_root()  # the baseline signs with the same root key
        root, root_key = certs.parse_cert(active.root_cert), certs.load_private_key(active.signing_key)
        print(f"CA: root {active.id[:23]}…, key {certs.key_spec_of(root_key)}, "
              f"CSRMaxPerSecond {cfg.csr_max_per_second:g}, leaf TTL {cfg.leaf_cert_ttl / 3600:g}h", flush=True)

        t0 = time.perf_counter()
        csrs = make_csrs(td, [f"svc-{i}" for i in range(n)])
        csr_rate = n / (time.perf_counter() - t0)
        warm = make_csrs(td, [f"warm-{i}" for i in range(50)])
        for der in warm:  # first signing writes the issued mark; caches warm up
            await ca.sign_csr(der)
        revision_before = view.revision

        base1 = raw_cryptography(csrs, root, root_key)
        verified = raw_cryptography(csrs, root, root_key, verify=True)
        pure, steps = pure_functions(csrs, root, root_key, td)
        signed = await _sign_all(ca, csrs)
        marks_written = view.revision - revision_before
        gathered = await _sign_gather(ca, csrs, 32)
        base2 = raw_cryptography(csrs, root, root_key)
        if profile:  # a pass of its own: the profiler slows what it watches
            prof = cProfile.Profile()
            prof.enable()
            await _sign_all(ca, csrs)
            prof.disable()

        leaves = LeafManager(view, ca, datacenter=DC)
        t0 = time.perf_counter()
        for i in range(n):
            await leaves.get(NS, f"e2e-{i}")
        e2e = n / (time.perf_counter() - t0)
    finally:
        view_task.cancel()
        await asyncio.gather(view_task, return_exceptions=True)
        await backend.close()

    base = (base1 + base2) / 2
    print(f"baseline, raw cryptography: {base:,.0f} leaves/s ({base1:,.0f} before, {base2:,.0f} after)")
    print(f"agent side, key + CSR alone: {csr_rate:,.0f}/s")
    print("pure steps of sign_csr, µs per leaf: " + ", ".join(f"{k} {v:.0f}" for k, v in steps.items()))
    print(f"store writes (issued marks) during {n} sign_csr calls: {marks_written}")
    if profile:
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(20)
        print("cProfile of a separate sign_csr pass, by own time:\n" + "\n".join(out.getvalue().splitlines()[:45]))
    return [("baseline: raw cryptography (load CSR, builder, sign)", base),
            ("raw cryptography + the CSR's signature check", verified),
            ("trellis pure steps (load + check_csr + sign_leaf + PEM)", pure),
            ("CAManager.sign_csr, one at a time", signed),
            ("CAManager.sign_csr, 32 in flight", gathered),
            ("LeafManager.get (agent: key + CSR + sign_csr)", e2e)]


# -- HTTP clients ---------------------------------------------------------------------------
class RawConn:
    """One keep-alive HTTP/1.1 connection: GET/PUT/POST, Content-Length bodies only."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        for attempt in range(2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            self.writer.write(b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                              % (method.encode(), path.encode(), len(body), body))
            status = await self.reader.readline()
            if not status:  # the server closed an idle connection: once more on a new one
                self.close()
                if attempt:
                    raise ConnectionError("connection closed")
                continue
            length = 0
            close = False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                low = line.lower()
                if low.startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                elif low.startswith(b"connection:") and b"close" in low:
                    close = True
            data = await self.reader.readexactly(length) if length else b""
            if close:
                self.close()
            return int(status.split()[1]), data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Client:
    """``concurrency`` workers pulling paths from one list; raw or aiohttp."""

    def __init__(self, url: str, kind: str) -> None:
        self.url = url
        self.kind = kind
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host, int(port)

    async def run(self, paths: Sequence[str], concurrency: int,
                  handle: Callable[[int, int, bytes], bool], progress: str = "") -> None:
        """GET every path; ``handle(i, status, body)`` returns False to ask again."""
        next_i = 0
        done = 0
        step = max(1, len(paths) // 5)

        async def loop(get: Callable[[str], Any]) -> None:
            nonlocal next_i, done
            while next_i < len(paths):
                i = next_i
                next_i += 1
                for _ in range(1000):
                    status, body = await get(paths[i])
                    if handle(i, status, body):
                        break
                else:
                    raise RuntimeError(f"{paths[i]}: no acceptable answer after 1000 tries")
                done += 1
                if progress and done % step == 0:
                    print(f"    {progress}: {done}/{len(paths)}", flush=True)

        if self.kind == "raw":
            conns = [RawConn(self.host, self.port) for _ in range(concurrency)]
            try:
                await asyncio.gather(*(loop(lambda p, c=c: c.request("GET", p)) for c in conns))
            finally:
                for c in conns:
                    c.close()
            return
        import aiohttp

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
            async def get(p: str) -> tuple[int, bytes]:
                async with session.get(self.url + p) as resp:
                    return resp.status, await resp.read()

            await asyncio.gather(*(loop(get) for _ in range(concurrency)))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Timed:
    """Wall time, agent CPU and this process' CPU of one phase."""

    def __init__(self, agent: AgentProcess) -> None:
        self.agent = agent

    def __enter__(self) -> Timed:
        self.cpu0, self.me0, self.t0 = cpu_seconds(self.agent.proc.pid), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.agent_cpu = cpu_seconds(self.agent.proc.pid) - self.cpu0
        self.client_cpu = time.process_time() - self.me0

    def per(self, n: int) -> str:
        return (f"{n / self.wall:,.0f}/s, {self.wall * 1000 / n:.3f} ms wall per leaf; agent CPU "
                f"{self.agent_cpu * 1000 / n:.3f} ms/leaf ({self.agent_cpu / self.wall:.0%} of a core), "
                f"client CPU {self.client_cpu * 1000 / n:.3f} ms/leaf")


def _ok_leaf(status: int, body: bytes) -> bool:
    if status != 200:
        raise RuntimeError(f"leaf: HTTP {status}: {body[:300]!r}")
    return True


def set_csr_limit_zero(agent: AgentProcess) -> None:
    status, _, cfg = agent.request("GET", "/v1/connect/ca/configuration")
    assert status == 200, cfg
    new = {"Provider": cfg["Provider"], "Config": {**cfg["Config"], "CSRMaxPerSecond": 0}}
    status, _, body = agent.request("PUT", "/v1/connect/ca/configuration", new)
    assert status == 200, body
    status, _, cfg = agent.request("GET", "/v1/connect/ca/configuration")
    assert cfg["Config"]["CSRMaxPerSecond"] == 0, cfg


def agent_trouble(agent: AgentProcess) -> list[str]:
    return [line for line in agent.log().splitlines()
            if any(w in line for w in ("Traceback", "ERROR", "WARNING", "Error", "exception"))]


def start(tmp: Path, name: str) -> AgentProcess:
    # -server with a data dir: SQLite synchronous=FULL, as a production server
    return start_agent(tmp / name, "-server", dev=False, data_dir=str(tmp / name / "data"), timeout=60)


def bench_sign_http(tmp: Path, n: int, concurrency: int, kind: str) -> list[tuple[str, float]]:
    agent = start(tmp, "sign")
    try:
        set_csr_limit_zero(agent)
        client = Client(agent.url, kind)
        asyncio.run(client.run([f"/v1/agent/connect/ca/leaf/warm-{i}" for i in range(50)], 8,
                               lambda i, s, b: _ok_leaf(s, b)))
        paths = [f"/v1/agent/connect/ca/leaf/h-svc-{i}" for i in range(n)]
        with Timed(agent) as fresh:
            asyncio.run(client.run(paths, concurrency, lambda i, s, b: _ok_leaf(s, b)))
        with Timed(agent) as cached:
            asyncio.run(client.run(paths, concurrency, lambda i, s, b: _ok_leaf(s, b)))
        trouble = agent_trouble(agent)
    finally:
        agent.stop()
    print(f"HTTP ({kind} client, {concurrency} in flight), {n} distinct services, new leaves: {fresh.per(n)}")
    print(f"HTTP, the same {n} leaves again (cached, no signing): {cached.per(n)}")
    if trouble:
        print(f"agent log: {len(trouble)} warning/error lines, first: {trouble[:3]}")
    return [(f"HTTP GET leaf, new service each, {concurrency} in flight (agent process)", n / fresh.wall),
            ("HTTP GET leaf, cached (no signing; HTTP floor)", n / cached.wall)]


def print_table(rows: list[tuple[str, float]]) -> None:
    base = rows[0][1]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'path':<{width}}  {'leaves/s':>10}  ratio to baseline")
    for name, rate in rows:
        print(f"{name:<{width}}  {rate:>10,.0f}  {rate / base:.2f}x")
    signed = next(rate for name, rate in rows if name.startswith("CAManager.sign_csr, one"))
    print(f"goal >= {GOAL:,.0f}/s through sign_csr: {'met' if signed >= GOAL else 'NOT met'} ({signed:,.0f}/s)\n")


# -- part 2: rotation ---------------------------------------------------------------------------
def _first_cert(body: bytes) -> tuple[dict, x509.Certificate]:
    doc = json.loads(body)
    pem = doc["CertPEM"]
    end = pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return doc, x509.load_pem_x509_certificate(pem[:end].encode())


def _aki(cert: x509.Certificate) -> str:
    return certs.colon_hex(cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier)


def _active_root(agent: AgentProcess) -> dict:
    status, _, roots = agent.request("GET", "/v1/connect/ca/roots")
    assert status == 200, roots
    return next(r for r in roots["Roots"] if r["ID"] == roots["ActiveRootID"])


def bench_rotate(tmp: Path, n: int, concurrency: int, kind: str) -> None:
    agent = start(tmp, "rotate")
    try:
        set_csr_limit_zero(agent)
        client = Client(agent.url, kind)
        paths = [f"/v1/agent/connect/ca/leaf/svc-{i}" for i in range(n)]
        old_root = _active_root(agent)
        serials: list[str] = [""] * n

        def first(i: int, status: int, body: bytes) -> bool:
            _ok_leaf(status, body)
            serials[i] = json.loads(body)["SerialNumber"]
            return True

        print(f"rotate: {n} services take their first leaf ({concurrency} in flight)", flush=True)
        with Timed(agent) as create:
            asyncio.run(client.run(paths, concurrency, first, progress="first leaves"))
        with Timed(agent) as cached:
            asyncio.run(client.run(paths, concurrency, lambda i, s, b: _ok_leaf(s, b)))

        new_key_id: list[str] = []  # filled right after the rotate call returns
        bodies: list[bytes] = [b""] * n
        retries = 0

        def renewed(i: int, status: int, body: bytes) -> bool:
            nonlocal retries
            _ok_leaf(status, body)
            _, cert = _first_cert(body)
            if _aki(cert) != new_key_id[0]:
                retries += 1
                return False
            bodies[i] = body
            return True

        async def rotate_and_refetch() -> tuple[float, float, dict]:
            conn = RawConn(client.host, client.port)
            t0 = time.perf_counter()
            status, body = await conn.request("POST", "/v1/connect/ca/rotate")
            assert status == 200, body
            t_rotated = time.perf_counter() - t0
            status, body = await conn.request("GET", "/v1/connect/ca/roots")
            conn.close()
            roots = json.loads(body)
            new = next(r for r in roots["Roots"] if r["ID"] == roots["ActiveRootID"])
            new_key_id.append(new["SigningKeyID"])
            await client.run(paths, concurrency, renewed, progress="leaves after rotation")
            return time.perf_counter() - t0, t_rotated, new

        print("rotate: POST /v1/connect/ca/rotate, then every service asks again", flush=True)
        with Timed(agent) as rot:
            total, t_rotate_call, new_root = asyncio.run(rotate_and_refetch())
        assert new_root["SigningKeyID"] != old_root["SigningKeyID"]

        # outside the timing: every leaf verifies against the new root, and is a new certificate
        root_cert = x509.load_pem_x509_certificate(new_root["RootCert"].encode())
        verified = changed = 0
        for i, body in enumerate(bodies):
            doc, cert = _first_cert(body)
            cert.verify_directly_issued_by(root_cert)  # raises if not
            verified += 1
            changed += doc["SerialNumber"] != serials[i]
        trouble = agent_trouble(agent)
    finally:
        agent.stop()

    print(f"first leaves ({n} services, new signing each): {create.per(n)}")
    print(f"baseline, {n} cached leaves (no signing):        {cached.per(n)}")
    print(f"rotate call answered in {t_rotate_call * 1000:.0f} ms; {n} services hold a leaf of the new root "
          f"{total:.2f} s after the rotate call (answers with the old root, asked again: {retries})")
    print(f"after rotation: {rot.per(n)}")
    print(f"per leaf: {total * 1000 / n:.3f} ms after rotation vs {cached.wall * 1000 / n:.3f} ms cached "
          f"(ratio {total / cached.wall:.1f}x); first issue {create.wall * 1000 / n:.3f} ms")
    print(f"checked: {verified}/{n} verify against the new root {new_root['ID'][:23]}…, "
          f"{changed}/{n} have a new serial")
    if trouble:
        print(f"agent log: {len(trouble)} warning/error lines, first: {trouble[:3]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["sign", "rotate", "all"], default="all")
    ap.add_argument("--csrs", type=int, default=3000, help="CSRs / services for part 1")
    ap.add_argument("--services", type=int, default=10_000, help="services for part 2")
    ap.add_argument("--concurrency", type=int, default=32, help="requests in flight, part 1 over HTTP")
    ap.add_argument("--rotate-concurrency", type=int, default=64, help="requests in flight, part 2")
    ap.add_argument("--client", choices=["raw", "aiohttp"], default="raw")
    ap.add_argument("--profile", action="store_true", help="cProfile the in-process sign_csr loop")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="trellis-bench-ca-", dir=os.environ.get("BENCH_DIR")) as d:
        tmp = Path(d)
        if args.part in ("sign", "all"):
            print(f"== 1. leaf signatures per second ({args.csrs} CSRs, distinct services) ==", flush=True)
            rows = asyncio.run(bench_sign_inprocess(tmp, args.csrs, args.profile))
            rows += bench_sign_http(tmp, args.csrs, args.concurrency, args.client)
            print_table(rows)
        if args.part in ("rotate", "all"):
            print(f"== 2. {args.services} services renew right after a rotation ==", flush=True)
            bench_rotate(tmp, args.services, args.rotate_concurrency, args.client)


if __name__ == "__main__":
    main()
