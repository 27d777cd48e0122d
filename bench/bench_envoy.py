"""The Envoy data plane against its baselines, each in the same run.

    sh scripts/bench-deps.sh            # nginx-light and wrk from Debian
    .venv/bin/python bench/bench_envoy.py [--part 1,2,3,4] [--duration 10] [--rate 1000]

Parts (``--part`` picks some; default all, in order):

1. Data path. A real agent; nginx serving a fixed 1 KiB body ("api"); two Envoys
   (``trellis connect envoy -sidecar-for``, concurrency 1) for web and api, web's with an
   upstream to api; two built-in proxies (``trellis connect proxy``) for another web/api pair
   in front of the same nginx. Measured one after the other, direct to nginx, through web's
   Envoy upstream listener -> mTLS -> api's Envoy -> nginx, and through the built-in pair:
   throughput (wrk -t1 -c10, --duration s, closed loop) and latency at --rate rps (open loop:
   each request timed from when it was due, as bench_proxy.py) in --rounds interleaved rounds
   of --duration s per path, reported as the median over rounds of each round's percentile
   (one stall of the shared VM then moves one round, not the figure). Goal: added p99 <= 0.5 ms.
2. Intention write -> first denied request, over --trials: PUT /v1/connect/intentions/exact
   (deny), then a new connection to web's upstream listener after every answer until one is
   refused; DELETE and wait until a request passes again between trials. Both data planes
   in the same run (the built-in pair is the baseline). Goal: Envoy p99 <= 100 ms.
3. Snapshot build + translation, in process, no I/O: a view with a CA and 100 destination
   services of 10 sidecar instances each (1,000 endpoints), one proxy with 100 upstreams.
   Times ``proxycfg.build.build`` (view -> snapshot), ``xds.resources.build_resources``
   (snapshot -> Envoy protos) and ``delta.version_resources`` (the per-resource hashes the
   ADS server computes for every snapshot). Baseline: serializing the same resources to
   bytes (the least any xDS server must do to send them).
4. 1,000 simulated incremental ADS clients: a real agent with --ads-clients connect-proxy
   registrations (each its own service, one upstream "api" with 3 instances on another node),
   and a grpc.aio client per proxy in --ads-procs worker processes that subscribes like Envoy
   (CDS and LDS wildcard with the node on the first message, then EDS and SDS by name) and
   ACKs every response. One catalog change touching every proxy (an "api" instance added
   with PUT /v1/catalog/register, then removed with /v1/catalog/deregister, in turn) -> the
   last client's ACK of the EDS update; p50/p99 over --ads-trials changes. Goal <= 250 ms.
   Also: the agent's CPU per change and how long it stays busy (/proc), the clients' CPU,
   and the agent's SIGTERM -> exit time with every stream open. Baselines in the same run:
   (a) the CPU floor of that change, in this process: 1,000 x (build + translate, given the
   stream's previous translation, + the delta response), the work the current design does
   per change without any I/O, scheduling or lookups around it; (b) an unrelated change (an intention
   between two services no proxy is): every proxy's follower wakes (intentions are one watch
   key) and nothing is sent; the agent's CPU for it.

Every process started here is stopped by PID (SIGTERM, then SIGKILL), also on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_proxy import fixed_rate, pct, proc_cpu_rss, start_nginx, wait_http, wrk  # noqa: E402

from trellis.testing.agent import AgentProcess, free_port, start_agent  # noqa: E402


def say(*args: Any) -> None:
    print(*args, flush=True)


# -- processes ---------------------------------------------------------------------------------
class Procs:
    """Everything this run starts, stopped by PID in reverse order (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self.popen: list[subprocess.Popen] = []
        self.agents: list[AgentProcess] = []
        self.workers: list[Any] = []  # multiprocessing.Process

    def add(self, p: subprocess.Popen) -> subprocess.Popen:
        self.popen.append(p)
        return p

    def stop(self) -> None:
        for w in self.workers:
            if w.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, signal.SIGTERM)
        for w in self.workers:
            w.join(10)
            if w.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, signal.SIGKILL)
                w.join(5)
        for p in reversed(self.popen):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)
        for p in self.popen:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
        for a in reversed(self.agents):
            a.stop()
        self.popen.clear()
        self.agents.clear()
        self.workers.clear()


@contextlib.contextmanager
def running() -> Iterator[Procs]:
    procs = Procs()

    def interrupted(*_: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupted)
    try:
        yield procs
    finally:
        procs.stop()
        signal.signal(signal.SIGTERM, previous)


def ok(agent: AgentProcess, method: str, path: str, body: Any = None) -> Any:
    status, _, answer = agent.request(method, path, body)
    if status != 200:
        raise RuntimeError(f"{method} {path}: {status} {answer}")
    return answer


def set_csr_limit_zero(agent: AgentProcess) -> None:
    cfg = ok(agent, "GET", "/v1/connect/ca/configuration")
    ok(agent, "PUT", "/v1/connect/ca/configuration",
       {"Provider": cfg["Provider"], "Config": {**cfg["Config"], "CSRMaxPerSecond": 0}})


# -- parts 1 and 2: two Envoys, two built-in proxies, nginx ---------------------------------------
class Mesh:
    """web -> api through two Envoys and bweb -> bapi through two built-in proxies, both
    in front of the same nginx; default intention policy allow."""

    def __init__(self, tmp: Path, procs: Procs, *, builtin: bool = True) -> None:
        self.tmp, self.procs = tmp, procs
        self.agent = start_agent(tmp / "agent", "-hcl", 'default_intention_policy = "allow"')
        procs.agents.append(self.agent)
        self.nginx = free_port()
        procs.add(start_nginx(tmp, self.nginx))
        env = {**os.environ, "TRELLIS_HTTP_ADDR": f"127.0.0.1:{self.agent.http_port}"}
        self.pids: dict[str, int] = {}
        self.admin: dict[str, int] = {}  # Envoy admin ports
        self.envoy_up = self._pair("web", "api", env, envoy=True)
        self.builtin_up = self._pair("bweb", "bapi", env, envoy=False) if builtin else 0
        wait_http(self.envoy_up, 60)
        if builtin:
            wait_http(self.builtin_up, 60)

    def _pair(self, web: str, api: str, env: dict, *, envoy: bool) -> int:
        up, api_pub, web_pub = free_port(), free_port(), free_port()
        bind = {"bind_address": "127.0.0.1"}
        for body in ({"Name": api, "ID": f"{api}-1", "Port": self.nginx,
                      "Connect": {"SidecarService": {"Port": api_pub, "Proxy": {"Config": bind}}}},
                     {"Name": web, "ID": f"{web}-1", "Port": free_port(),
                      "Connect": {"SidecarService": {"Port": web_pub, "Proxy": {"Config": bind, "Upstreams": [
                          {"DestinationName": api, "LocalBindPort": up}]}}}}):
            ok(self.agent, "PUT", "/v1/agent/service/register", body)
        for name in (f"{api}-1", f"{web}-1"):
            if envoy:
                self.admin[name] = free_port()
                argv = ["connect", "envoy", "-sidecar-for", name, "-admin-bind", f"127.0.0.1:{self.admin[name]}",
                        "--", "-l", "warning"]
            else:
                argv = ["connect", "proxy", "-sidecar-for", name, "-log-level", "WARN"]
            with open(self.tmp / f"{name}.log", "w") as log:
                p = self.procs.add(subprocess.Popen([sys.executable, "-m", "trellis", *argv], env=env,
                                                    stdout=log, stderr=subprocess.STDOUT))
            self.pids[name] = p.pid  # `connect envoy` execs Envoy: this PID is Envoy's
        return up


def part1(mesh: Mesh, a: argparse.Namespace) -> dict[str, Any]:
    say(f"\n== part 1: data path (nginx :{mesh.nginx}, Envoy upstream :{mesh.envoy_up}, "
        f"built-in upstream :{mesh.builtin_up}) ==")
    paths = {"direct to nginx": mesh.nginx, "two Envoys (mTLS)": mesh.envoy_up,
             "two built-in proxies (mTLS)": mesh.builtin_up}
    owners = {"two Envoys (mTLS)": ("web-1", "api-1"), "two built-in proxies (mTLS)": ("bweb-1", "bapi-1")}
    rps: dict[str, float] = {}
    cost: dict[str, list[tuple[str, float, int]]] = {}
    for label, port in paths.items():
        say(f"  wrk -t1 -c10 -d{a.duration}s {label} ...")
        pids = {n: mesh.pids[n] for n in owners.get(label, ())}
        before = {n: proc_cpu_rss(pid) for n, pid in pids.items()}
        rps[label] = wrk(port, a.duration)
        after = {n: proc_cpu_rss(pid) for n, pid in pids.items()}
        requests = rps[label] * a.duration
        cost[label] = [(n, (after[n][0] - before[n][0]) / requests * 1e6, after[n][1]) for n in pids]
    rounds: dict[str, list[list[float]]] = {label: [] for label in paths}
    for r in range(a.rounds):  # interleaved, so a stall of the shared VM hits one round of one path
        for label, port in paths.items():
            say(f"  round {r + 1}/{a.rounds}: {a.rate} rps for {a.duration}s (open loop) {label} ...")
            rounds[label].append(asyncio.run(fixed_rate(port, a.rate, a.duration)))

    def med(label: str, q: float) -> float:  # the median over rounds of each round's percentile
        return sorted(pct(x, q) for x in rounds[label])[len(rounds[label]) // 2]

    base50, base99 = med("direct to nginx", .5), med("direct to nginx", .99)
    say(f"\n{'part 1':<30} {'req/s':>9} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'+p50':>6} {'+p99':>6}  "
        f"p99 of each round ms; per-proxy CPU µs/req, RSS")
    for label in paths:
        p50, p99 = med(label, .5), med(label, .99)
        each = "/".join(f"{pct(x, .99) * 1e3:.2f}" for x in rounds[label])
        extra = ", ".join(f"{n} {c:.0f} µs {r / 2**20:.0f} MiB" for n, c, r in cost[label])
        say(f"{label:<30} {rps[label]:>9,.0f} {rps[label] / rps['direct to nginx']:>5.2f}x {p50 * 1e3:>7.2f} "
            f"{p99 * 1e3:>7.2f} {(p50 - base50) * 1e3:>6.2f} {(p99 - base99) * 1e3:>6.2f}  {each}; {extra}")
    added = (med("two Envoys (mTLS)", .99) - base99) * 1e3
    say(f"latency: median over {a.rounds} interleaved rounds of {a.duration * a.rate:,} requests each; "
        f"Envoy added p99 {added:.2f} ms (goal <= 0.5 ms: {'met' if added <= 0.5 else 'NOT met'})")
    lat = {label: [v for x in rs for v in x] for label, rs in rounds.items()}
    return {"rps": rps, "lat": lat, "cost": cost}


def request_once(port: int, timeout: float = 2.0) -> bool:
    """One GET on a new connection: True for an HTTP answer, False when refused or closed."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = s.recv(64)
            return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def deny_times(agent: AgentProcess, src: str, dst: str, port: int, trials: int,
               label: str) -> tuple[list[float], list[float]]:
    """PUT a deny, then one new connection after another until one is refused; DELETE it
    and wait until requests pass again. Returns (write -> first refusal, the PUT's own time)."""
    path = f"/v1/connect/intentions/exact?source={src}&destination={dst}"
    out, puts = [], []
    for n in range(trials):
        deadline = time.monotonic() + 30
        while not request_once(port):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{label}: requests never pass again after the DELETE")
            time.sleep(0.002)
        t0 = time.perf_counter()
        ok(agent, "PUT", path, {"Action": "deny"})
        puts.append(time.perf_counter() - t0)
        while request_once(port):
            if time.perf_counter() - t0 > 10:
                raise TimeoutError(f"{label}: deny never enforced")
        out.append(time.perf_counter() - t0)
        ok(agent, "DELETE", path)
        if (n + 1) % 10 == 0:
            say(f"    {label}: {n + 1}/{trials}, p50 so far {pct(out, .5) * 1e3:.1f} ms")
    return out, puts


def part2(mesh: Mesh, a: argparse.Namespace) -> dict[str, Any]:
    say(f"\n== part 2: intention write -> first denied request, {a.trials} trials each ==")
    envoy, envoy_puts = deny_times(mesh.agent, "web", "api", mesh.envoy_up, a.trials, "two Envoys")
    builtin, builtin_puts = deny_times(mesh.agent, "bweb", "bapi", mesh.builtin_up, a.trials, "built-in pair")
    say(f"\n{'part 2: write -> first denied request':<40} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}   "
        f"PUT answered p50/p99 ms; slowest three")
    for label, t, puts in (("two Envoys", envoy, envoy_puts),
                           ("two built-in proxies (baseline)", builtin, builtin_puts)):
        slow = ", ".join(f"{x * 1e3:.0f}" for x in sorted(t)[-3:])
        say(f"{label:<40} {pct(t, .5) * 1e3:>7.1f} {pct(t, .99) * 1e3:>7.1f} {max(t) * 1e3:>7.1f}   "
            f"{pct(puts, .5) * 1e3:.1f}/{pct(puts, .99) * 1e3:.1f}; {slow}")
    p99 = pct(envoy, .99) * 1e3
    say(f"Envoy p99 {p99:.1f} ms (goal <= 100 ms: {'met' if p99 <= 100 else 'NOT met'})")
    return {"envoy": envoy, "builtin": builtin}


# -- parts 3 and 4: an in-process view ------------------------------------------------------------
async def fill_view(view: Any, writer: Any, *, destinations: int, instances: int, proxies: int,
                    upstreams_each: int) -> list[Any]:
    """``destinations`` services with ``instances`` sidecars each (one per node r0..), and
    ``proxies`` sidecars on node n1 with ``upstreams_each`` upstreams (dest-0.. in turn).
    Returns the proxies."""
    from trellis.catalog import write
    from trellis.catalog.model import Node, Proxy, Service, ServiceKind, Upstream
    from trellis.store.writer import Plan

    def sidecar(node: str, name: str, sid: str, port: int, ups: tuple = ()) -> Service:
        return Service(node=node, id=sid, name=f"{name}-sidecar-proxy", kind=ServiceKind.CONNECT_PROXY,
                       port=port, address="", proxy=Proxy(destination_service_name=name, destination_service_id=name,
                                                          local_service_port=8080, upstreams=ups))

    nodes = [Node(name="n1", address="10.0.0.1")] + [Node(name=f"r{k}", address=f"10.1.0.{k + 1}")
                                                      for k in range(instances)]
    items: list[Any] = list(nodes)
    for d in range(destinations):
        items += [sidecar(f"r{k}", f"dest-{d}", f"dest-{d}-{k}-sidecar-proxy", 21000 + d) for k in range(instances)]
    mine = []
    for p in range(proxies):
        ups = tuple(Upstream(destination_name=f"dest-{(p + u) % destinations}", local_bind_port=10000 + u)
                    for u in range(upstreams_each))
        mine.append(sidecar("n1", f"web-{p}", f"web-{p}-sidecar-proxy", 30000 + p, ups))
    items += mine
    for start in range(0, len(items), 500):
        chunk = items[start:start + 500]

        def plan(v: Any, chunk: list = chunk) -> Plan:
            pl = Plan()
            for item in chunk:
                if isinstance(item, Node):
                    write.put_node(pl, v, item)
                else:
                    write.put_service(pl, v, item)
            return pl

        await writer.apply(plan)
    return mine


def timed(fn: Any, reps: int) -> tuple[float, Any]:
    """Median seconds of ``reps`` calls, and the last result."""
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2], out


async def _part3(a: argparse.Namespace) -> dict[str, Any]:
    from trellis.agent.leafcert import LeafManager
    from trellis.connect.ca.manager import CAManager
    from trellis.proxycfg import build as builder
    from trellis.proxycfg.model import DefaultDecision
    from trellis.proxycfg.watcher import _leaf_snapshot
    from trellis.testing.builders import running_view
    from trellis.xds import delta, types
    from trellis.xds import resources as resources_mod
    from trellis.xds.resources import build_resources, consistency_problems, translate
    from trellis.xds.translate import endpoints

    async with running_view() as (view, writer, _):
        ca = CAManager(view, writer, datacenter="dc1")
        await ca.initialize("consul", {"csr_max_per_second": 0})
        t0 = time.perf_counter()
        (proxy,) = await fill_view(view, writer, destinations=100, instances=10, proxies=1, upstreams_each=100)
        say(f"  view filled: 100 services x 10 sidecars + 1 proxy with 100 upstreams "
            f"({time.perf_counter() - t0:.1f} s)")
        leaf = _leaf_snapshot(await LeafManager(view, ca, datacenter="dc1").get("default", "web-0"))
        allow = DefaultDecision(True, "Default intention policy")
        reps = a.reps

        def build() -> Any:
            return builder.build(view, proxy, datacenter="dc1", leaf=leaf, default=allow)

        def cold_build() -> Any:  # the first proxy to rebuild after a change reads the catalog
            view._shared.clear()  # noqa: SLF001 - what an applied change does
            return build()

        def cold_translate() -> Any:  # nothing shared from other proxies or earlier rebuilds
            endpoints.assignment.cache_clear()
            resources_mod._versioned_assignment.cache_clear()  # noqa: SLF001
            return translate(snap)

        t_cold, result = timed(cold_build, reps)
        t_warm, _ = timed(build, reps)
        snap = result.value
        t_whole, whole = timed(cold_translate, reps)
        resources = {t: {n: v.message for n, v in by_name.items()} for t, by_name in whole.desired.items()}
        # one endpoint of one upstream moves: what each later rebuild of this proxy costs
        up = snap.upstreams[0]
        moved = dataclasses.replace(snap, upstreams=(
            dataclasses.replace(up, endpoints=(*up.endpoints[1:], dataclasses.replace(up.endpoints[0], port=1))),
            *snap.upstreams[1:]))
        t_step, stepped = timed(lambda: translate(moved, whole), reps)
        assert stepped.desired == delta.version_resources(build_resources(moved))
        every = [m for by_name in resources.values() for m in by_name.values()]
        t_ser, blobs = timed(lambda: [m.SerializeToString() for m in every], reps)
        n_endpoints = sum(len(e.lb_endpoints) for name, cla in resources[types.ENDPOINT].items()
                          if name != types.LOCAL_APP for e in cla.endpoints)
        counts = {delta.SHORT[t]: len(resources[t]) for t in types.ORDER}
        problems = consistency_problems(resources)
        assert not problems, problems
        assert sum(len(u.endpoints) for u in snap.upstreams) == 1000 and n_endpoints == 1000, n_endpoints
        size = sum(len(b) for b in blobs)
    say(f"  resources: {counts}, {n_endpoints} lb endpoints, {size / 1024:.0f} KiB serialized; median of {reps}")
    say(f"\n{'part 3: 100 upstreams, 1,000 endpoints':<60} {'ms':>8} {'x serialize':>12}")
    rows = [("proxycfg build, first proxy after a change (reads the catalog)", t_cold),
            ("proxycfg build, later proxies (upstream endpoints shared)", t_warm),
            ("translate, whole (snapshot -> versioned protos, nothing cached)", t_whole),
            ("build + whole translate: a first rebuild of this proxy", t_cold + t_whole),
            ("translate after one endpoint moved (with the previous result)", t_step),
            ("baseline: SerializeToString of every resource", t_ser)]
    for label, t in rows:
        say(f"{label:<60} {t * 1e3:>8.2f} {t / t_ser:>11.1f}x")
    return {"build": t_cold, "build_warm": t_warm, "translate": t_whole, "step": t_step, "serialize": t_ser,
            "size": size, "counts": counts}


def part3(a: argparse.Namespace) -> dict[str, Any]:
    say("\n== part 3: snapshot build + translation (in process) ==")
    return asyncio.run(_part3(a))


# -- part 4: simulated incremental ADS clients -----------------------------------------------------
API_INSTANCES = 3


def ads_worker(conn: Any, port: int, proxies: list[tuple[str, str]], channels: int) -> None:
    """A worker process: one delta ADS stream per (proxy id, service), answering the parent
    over ``conn`` (see ``_Clients``)."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    asyncio.run(_Clients(conn, port, proxies, channels).run())


class _Clients:
    """Protocol with the parent, one message each way at a time:
    ("ready", n) once every stream has ACKed CDS, LDS, EDS and SDS;
    ("arm",) -> ("armed",): forget earlier events, start the CPU clock;
    ("collect", timeout, want_eds) -> ("collected", [ACK times of the EDS updates], other
    responses, client CPU seconds since arm): waits until every stream has ACKed an EDS
    response since arm (or ``timeout``; with ``want_eds`` False it waits the whole timeout);
    ("stop",)."""

    def __init__(self, conn: Any, port: int, proxies: list[tuple[str, str]], channels: int) -> None:
        self.conn, self.port, self.proxies, self.channels = conn, port, proxies, max(1, channels)
        self.armed = False
        self.eds_acks: dict[int, float] = {}
        self.other = 0
        self.complete = asyncio.Event()
        self.synced: set[int] = set()
        self.all_synced = asyncio.Event()
        self.errors: list[str] = []

    async def run(self) -> None:
        import grpc
        from envoy.service.discovery.v3 import ads_pb2_grpc

        loop = asyncio.get_running_loop()
        inbox: asyncio.Queue = asyncio.Queue()
        loop.add_reader(self.conn.fileno(), lambda: inbox.put_nowait(self.conn.recv()))
        opts = [("grpc.use_local_subchannel_pool", 1)]  # one TCP connection per channel, as Envoys
        chans = [grpc.aio.insecure_channel(f"127.0.0.1:{self.port}", options=opts) for _ in range(self.channels)]
        stubs = [ads_pb2_grpc.AggregatedDiscoveryServiceStub(c) for c in chans]
        tasks = [asyncio.create_task(self._client(i, stubs[i % len(stubs)], pid, svc))
                 for i, (pid, svc) in enumerate(self.proxies)]
        try:
            while not self.all_synced.is_set():
                try:
                    await asyncio.wait_for(self.all_synced.wait(), 2)
                except TimeoutError:
                    self.conn.send(("progress", len(self.synced), self.errors[:3]))
            self.conn.send(("ready", len(self.synced)))
            while True:
                msg = await inbox.get()
                if msg[0] == "arm":
                    self.eds_acks, self.other, self.armed = {}, 0, True
                    self.complete.clear()
                    cpu0 = time.process_time()
                    self.conn.send(("armed",))
                elif msg[0] == "collect":
                    _, timeout, want_eds = msg
                    if want_eds:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self.complete.wait(), timeout)
                    else:
                        await asyncio.sleep(timeout)
                    self.armed = False
                    self.conn.send(("collected", list(self.eds_acks.values()), self.other,
                                    time.process_time() - cpu0, self.errors[:3]))
                elif msg[0] == "stop":
                    self.conn.send(("stopped",))
                    return
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for c in chans:
                await c.close()

    async def _client(self, i: int, stub: Any, proxy_id: str, service: str) -> None:
        import grpc
        from envoy.config.core.v3 import base_pb2
        from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest as Req

        from trellis.xds.types import CLUSTER, ENDPOINT, LISTENER, LOCAL_APP, ROOTS_SECRET, SECRET, leaf_secret

        try:
            call = stub.DeltaAggregatedResources(wait_for_ready=True)
            await call.write(Req(node=base_pb2.Node(id=proxy_id, cluster=service), type_url=CLUSTER))
            await call.write(Req(type_url=LISTENER))
            seen: set[str] = set()
            subscribed = False
            while True:
                resp = await call.read()
                if resp is grpc.aio.EOF:
                    self.errors.append(f"{proxy_id}: stream ended")
                    return
                await call.write(Req(type_url=resp.type_url, response_nonce=resp.nonce))  # ACK
                now = time.monotonic()
                if resp.type_url == CLUSTER and not subscribed:  # as Envoy: EDS and SDS by name
                    subscribed = True
                    eds = [r.name for r in resp.resources if r.name != LOCAL_APP]
                    await call.write(Req(type_url=ENDPOINT, resource_names_subscribe=eds))
                    await call.write(Req(type_url=SECRET, resource_names_subscribe=[
                        leaf_secret("default", service), ROOTS_SECRET]))
                if i not in self.synced:
                    seen.add(resp.type_url)
                    if len(seen) == 4:
                        self.synced.add(i)
                        if len(self.synced) == len(self.proxies):
                            self.all_synced.set()
                if self.armed:
                    if resp.type_url == ENDPOINT and i not in self.eds_acks:
                        self.eds_acks[i] = now
                        if len(self.eds_acks) == len(self.proxies):
                            self.complete.set()
                    else:
                        self.other += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            self.errors.append(f"{proxy_id}: {exc!r}"[:300])


def agent_busy(pid: int, t0: float, cpu0: float, quiet: float = 0.15, limit: float = 30.0) -> tuple[float, float]:
    """The agent's CPU seconds since ``cpu0`` and how long after ``t0`` it stayed busy: /proc
    polled every 5 ms, busy ending at the last CPU tick (10 ms) before ``quiet`` s without one."""
    last_cpu, last_change = proc_cpu_rss(pid)[0], time.monotonic()
    while time.monotonic() - last_change < quiet and time.monotonic() - t0 < limit:
        time.sleep(0.005)
        cpu = proc_cpu_rss(pid)[0]
        if cpu != last_cpu:
            last_cpu, last_change = cpu, time.monotonic()
    return last_cpu - cpu0, max(0.0, last_change - t0)


def _api_instance(k: int, prefix: str = "api") -> dict[str, Any]:
    return {"Node": "remote", "Address": "10.9.0.1", "SkipNodeUpdate": k > 0,
            "Service": {"Kind": "connect-proxy", "ID": f"{prefix}-{k}-sidecar-proxy", "Service": "api-sidecar-proxy",
                        "Port": 21000 + k, "Proxy": {"DestinationServiceName": "api", "LocalServicePort": 8080}}}


class ClientPool:
    """The simulated Envoys of part 4: worker processes each running ``_Clients`` against
    ``port``; ``trial`` times one write that should reach every stream."""

    def __init__(self, procs: Procs, port: int, proxies: list[tuple[str, str]], a: argparse.Namespace) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conns = []
        t0 = time.monotonic()
        for share in (proxies[w::a.ads_procs] for w in range(a.ads_procs)):
            parent, child = ctx.Pipe()
            w = ctx.Process(target=ads_worker, args=(child, port, share,
                                                      len(share) if a.ads_channels <= 0 else a.ads_channels))
            w.start()
            procs.workers.append(w)
            self.conns.append(parent)
        for c in self.conns:
            self._expect(c, 300)
        say(f"  {len(proxies)} streams subscribed and in sync in {time.monotonic() - t0:.1f} s")
        time.sleep(1.0)

    def ask(self, msg: tuple, timeout: float = 60) -> list[tuple]:
        for c in self.conns:
            c.send(msg)
        return [self._expect(c, timeout) for c in self.conns]

    @staticmethod
    def _expect(c: Any, timeout: float) -> tuple:
        while True:
            if not c.poll(timeout):
                raise TimeoutError(f"no answer from an ADS worker within {timeout}s")
            got = c.recv()
            if got[0] != "progress":
                return got
            say(f"    a worker has {got[1]} streams in sync {got[2] or ''}")

    def trial(self, write: Any, want_eds: bool, timeout: float, server_pid: int) -> dict[str, Any]:
        self.ask(("arm",))
        cpu0 = proc_cpu_rss(server_pid)[0]
        start = time.monotonic()
        write()
        server_cpu, busy = agent_busy(server_pid, start, cpu0)
        got = self.ask(("collect", timeout, want_eds), timeout + 30)
        errors = [e for g in got for e in g[4]]
        if errors:
            say(f"    client errors: {errors[:3]}")
        return {"acks": [t - start for g in got for t in g[1]], "other": sum(g[2] for g in got),
                "client_cpu": sum(g[3] for g in got), "agent_cpu": server_cpu, "busy": busy}

    def stop(self) -> None:
        self.ask(("stop",), 30)


def grpc_floor(procs: Procs, proxies: list[tuple[str, str]], a: argparse.Namespace) -> list[float]:
    """Baseline (c): change -> last ACK with ads_floor_server.py instead of the agent."""
    port = free_port()
    server = procs.add(subprocess.Popen([sys.executable, str(HERE / "ads_floor_server.py"), str(port)],
                                        stdout=subprocess.PIPE, text=True))
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    pool = ClientPool(procs, port, proxies, a)
    lasts = []
    for k in range(a.ads_trials):
        t = pool.trial(lambda: os.kill(server.pid, signal.SIGUSR1), True, 30, server.pid)
        if len(t["acks"]) != len(proxies):
            raise RuntimeError(f"floor trial {k}: only {len(t['acks'])} of {len(proxies)} clients got the update")
        lasts.append(max(t["acks"]))
        say(f"    floor change {k + 1}/{a.ads_trials}: first ACK {min(t['acks']) * 1e3:.0f} ms, last ACK "
            f"{max(t['acks']) * 1e3:.0f} ms, server CPU {t['agent_cpu'] * 1e3:.0f} ms")
        time.sleep(0.5)
    pool.stop()
    os.kill(server.pid, signal.SIGTERM)
    server.wait(10)
    return lasts


def part4(tmp: Path, procs: Procs, a: argparse.Namespace) -> dict[str, Any]:
    n = a.ads_clients
    say(f"\n== part 4: {n} simulated incremental ADS clients ==")
    floor = asyncio.run(_ads_floor(n))
    proxies = [(f"svc-{i}-sidecar-proxy", f"svc-{i}") for i in range(n)]
    say("  baseline (c): the same clients against ads_floor_server.py (bare grpc.aio, no agent)")
    grpc_lasts = grpc_floor(procs, proxies, a)
    agent = start_agent(tmp, "-log-level", "warn")
    procs.agents.append(agent)
    set_csr_limit_zero(agent)
    for k in range(API_INSTANCES):
        ok(agent, "PUT", "/v1/catalog/register", _api_instance(k))
    t0 = time.monotonic()

    def register(i: int) -> None:
        ok(agent, "PUT", "/v1/agent/service/register", {
            "Kind": "connect-proxy", "ID": f"svc-{i}-sidecar-proxy", "Name": f"svc-{i}-sidecar-proxy",
            "Port": 30000 + i, "Proxy": {"DestinationServiceName": f"svc-{i}", "LocalServicePort": 8080,
                                         "Upstreams": [{"DestinationName": "api", "LocalBindPort": 9000}]}})

    with concurrent.futures.ThreadPoolExecutor(32) as threads:
        list(threads.map(register, range(n)))
    say(f"  {n} connect-proxy registrations (32 in flight) in {time.monotonic() - t0:.1f} s")
    pool = ClientPool(procs, agent.grpc_port, proxies, a)

    def trial(write: Any, want_eds: bool, timeout: float) -> dict[str, Any]:
        return pool.trial(write, want_eds, timeout, agent.proc.pid)

    lasts, firsts, per_proxy, agent_cpus, client_cpus, busys = [], [], [], [], [], []
    def change(k: int) -> None:  # add an instance, remove it, ...: each touches every proxy
        if k % 2 == 0:
            ok(agent, "PUT", "/v1/catalog/register", _api_instance(100 + k, "api-new"))
        else:
            ok(agent, "PUT", "/v1/catalog/deregister", {"Node": "remote",
                                                        "ServiceID": f"api-new-{100 + k - 1}-sidecar-proxy"})

    for k in range(a.ads_trials):
        t = trial(lambda k=k: change(k), True, 30)
        acks = t["acks"]
        if len(acks) != n:
            raise RuntimeError(f"trial {k}: only {len(acks)} of {n} clients got the EDS update")
        lasts.append(max(acks))
        firsts.append(min(acks))
        per_proxy += acks
        agent_cpus.append(t["agent_cpu"])
        client_cpus.append(t["client_cpu"])
        busys.append(t["busy"])
        say(f"    change {k + 1}/{a.ads_trials} ({'add' if k % 2 == 0 else 'remove'} an api instance): "
            f"first ACK {min(acks) * 1e3:.0f} ms, last ACK {max(acks) * 1e3:.0f} ms, {t['other']} other "
            f"responses, agent CPU {t['agent_cpu'] * 1e3:.0f} ms, client CPU {t['client_cpu'] * 1e3:.0f} ms")
        time.sleep(0.5)
    unrelated = []
    for k in range(3):
        path = f"/v1/connect/intentions/exact?source=bench-x-{k}&destination=bench-y-{k}"
        t = trial(lambda path=path: ok(agent, "PUT", path, {"Action": "deny"}), False, 1.0)
        got = len(t["acks"]) + t["other"]
        unrelated.append((got, t["agent_cpu"], t["busy"]))
        say(f"    unrelated intention {k + 1}/3: {got} responses, agent CPU {t['agent_cpu'] * 1e3:.0f} ms, "
            f"busy {t['busy'] * 1e3:.0f} ms")
        time.sleep(0.5)
    agent_rss = proc_cpu_rss(agent.proc.pid)[1]
    t0 = time.monotonic()
    code = agent.stop(60)  # with every stream still open
    stop_s = time.monotonic() - t0
    pool.stop()
    res = {"grpc_floor": grpc_lasts, "last": lasts, "first": firsts, "per_proxy": per_proxy, "agent_cpu": agent_cpus, "client_cpu": client_cpus,
           "busy": busys, "unrelated": unrelated, "floor": floor, "stop": stop_s}
    say(f"\n{'part 4: ' + str(n) + ' delta ADS clients, one catalog change':<58} {'p50 ms':>8} {'p99 ms':>8}")
    say(f"{'change -> last client ACK (' + str(len(lasts)) + ' trials)':<58} {pct(lasts, .5) * 1e3:>8.0f} "
        f"{pct(lasts, .99) * 1e3:>8.0f}")
    say(f"{'baseline (c): bare grpc.aio server, change -> last ACK':<58} {pct(grpc_lasts, .5) * 1e3:>8.0f} "
        f"{pct(grpc_lasts, .99) * 1e3:>8.0f}   agent/baseline (p50): "
        f"{pct(lasts, .5) / max(pct(grpc_lasts, .5), 1e-9):.1f}x")
    say(f"{'change -> first client ACK':<58} {pct(firsts, .5) * 1e3:>8.0f} {pct(firsts, .99) * 1e3:>8.0f}")
    say(f"{'change -> each client ACK (all trials pooled)':<58} {pct(per_proxy, .5) * 1e3:>8.0f} "
        f"{pct(per_proxy, .99) * 1e3:>8.0f}")
    say(f"{'change -> agent idle again':<58} {pct(busys, .5) * 1e3:>8.0f} {pct(busys, .99) * 1e3:>8.0f}")
    say(f"{'agent CPU per change':<58} {pct(agent_cpus, .5) * 1e3:>8.0f} {pct(agent_cpus, .99) * 1e3:>8.0f}")
    say(f"{'clients CPU per change (all ' + str(n) + ', incl. gRPC threads)':<58} "
        f"{pct(client_cpus, .5) * 1e3:>8.0f} {pct(client_cpus, .99) * 1e3:>8.0f}")
    say(f"{'baseline (a): CPU floor, ' + str(n) + ' x build+translate+response':<58} "
        f"{floor['total'] * 1e3:>8.0f}")
    for label, key in (("  build", "build"), ("  translate (with the stream's previous translation)", "translate"),
                       ("  next_response + serialize", "respond")):
        say(f"{label:<58} {floor[key] * 1e3:>8.0f}")
    u_cpu = [u[1] for u in unrelated]
    say(f"{'baseline (b): unrelated intention, agent CPU (0 sent)':<58} {pct(u_cpu, .5) * 1e3:>8.0f} "
        f"{max(u_cpu) * 1e3:>8.0f}   responses: {sum(u[0] for u in unrelated)}")
    p99 = pct(lasts, .99) * 1e3
    say(f"agent SIGTERM -> exit with {n} streams open: {stop_s:.1f} s (exit code {code})")
    say(f"agent RSS {agent_rss / 2**20:.0f} MiB; last ACK p99 {p99:.0f} ms "
        f"(goal <= 250 ms: {'met' if p99 <= 250 else 'NOT met'})")
    return res


async def _ads_floor(n: int) -> dict[str, float]:
    """Baseline (a): what the agent must compute for one change that touches ``n`` proxies
    (each one upstream "dest-0" with API_INSTANCES instances gaining one), on one core."""
    from trellis.agent.leafcert import LeafManager
    from trellis.catalog import write
    from trellis.catalog.model import Proxy, Service, ServiceKind
    from trellis.connect.ca.manager import CAManager
    from trellis.proxycfg import build as builder
    from trellis.proxycfg.model import DefaultDecision
    from trellis.proxycfg.watcher import _leaf_snapshot
    from trellis.store.writer import Plan
    from trellis.testing.builders import running_view
    from trellis.xds import delta, types
    from trellis.xds.resources import translate

    async with running_view() as (view, writer, _):
        ca = CAManager(view, writer, datacenter="dc1")
        await ca.initialize("consul", {"csr_max_per_second": 0})
        mine = await fill_view(view, writer, destinations=1, instances=API_INSTANCES, proxies=n, upstreams_each=1)
        leaf = _leaf_snapshot(await LeafManager(view, ca, datacenter="dc1").get("default", "web-0"))
        allow = DefaultDecision(True, "Default intention policy")
        states, translations = [], []
        for p in mine:  # each stream in sync with the snapshot before the change
            translations.append(translate(builder.build(view, p, datacenter="dc1", leaf=leaf, default=allow).value))
            desired = translations[-1].desired
            states.append(delta.StreamState(types={t: delta.TypeState(
                requested=True, answered=True, wildcard=t in delta.WILDCARD_TYPES, names=frozenset(desired[t]),
                acked={name: v.version for name, v in desired[t].items()}) for t in types.ORDER}))
        new = Service(node="r0", id="dest-0-new-sidecar-proxy", name="dest-0-sidecar-proxy",
                      kind=ServiceKind.CONNECT_PROXY, port=22000,
                      proxy=Proxy(destination_service_name="dest-0", local_service_port=8080))

        def plan(v: Any) -> Plan:
            pl = Plan()
            write.put_service(pl, v, new)
            return pl

        await writer.apply(plan)
        spent = {"build": 0.0, "translate": 0.0, "respond": 0.0}
        clock = time.perf_counter
        for p, state, previous in zip(mine, states, translations, strict=True):
            t0 = clock()
            snap = builder.build(view, p, datacenter="dc1", leaf=leaf, default=allow).value
            t1 = clock()
            desired = translate(snap, previous).desired  # as the agent's xDS session does
            t2 = clock()
            state, response = delta.next_response(state, desired, system_version=snap.version)
            assert response is not None and response.type_url == types.ENDPOINT, response
            response.SerializeToString()
            state, _ = delta.next_response(state, desired)
            t4 = clock()
            spent["build"] += t1 - t0
            spent["translate"] += t2 - t1
            spent["respond"] += t4 - t2
        spent["total"] = sum(spent.values())
    return spent


# -- main ----------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", default="1,2,3,4", help="comma-separated parts to run (default 1,2,3,4)")
    ap.add_argument("--duration", type=int, default=10, help="part 1: seconds per wrk and per latency run")
    ap.add_argument("--rate", type=int, default=1000, help="part 1: open-loop requests per second")
    ap.add_argument("--rounds", type=int, default=3, help="part 1: interleaved latency rounds per path")
    ap.add_argument("--trials", type=int, default=50, help="part 2: deny trials per data plane")
    ap.add_argument("--reps", type=int, default=20, help="part 3: repetitions of each timed step")
    ap.add_argument("--ads-clients", type=int, default=1000, help="part 4: simulated Envoys")
    ap.add_argument("--ads-procs", type=int, default=1, help="part 4: client worker processes")
    ap.add_argument("--ads-trials", type=int, default=10, help="part 4: catalog changes timed")
    ap.add_argument("--ads-channels", type=int, default=0,
                    help="part 4: gRPC channels per worker (default 0: one per client, as Envoys)")
    a = ap.parse_args()
    parts = {int(p) for p in a.part.split(",") if p.strip()}
    if parts & {1, 2} and (not shutil.which("wrk") or not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists())):
        sys.exit("parts 1-2 need nginx and wrk: sh scripts/bench-deps.sh")
    with tempfile.TemporaryDirectory() as tmp_name, running() as procs:
        tmp = Path(tmp_name)
        if parts & {1, 2}:
            say("starting agent, nginx, two Envoys and two built-in proxies ...")
            mesh = Mesh(tmp / "mesh", procs, builtin=True)
            if 1 in parts:
                part1(mesh, a)
            if 2 in parts:
                part2(mesh, a)
            procs.stop()
        if 3 in parts:
            part3(a)
        if 4 in parts:
            part4(tmp / "ads", procs, a)


if __name__ == "__main__":
    main()
