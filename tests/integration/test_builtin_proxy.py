"""The built-in proxy between real processes: a real agent, three proxies (web, api-1,
api-2) running ``serve()`` on their own event loop in a thread, and two tiny HTTP apps
that answer with their name.

    client ──▶ web upstream 127.0.0.1:U ══mTLS══▶ api-1 / api-2 sidecar ──▶ api app

Each test is one story and leaves the mesh as it found it; the last one restarts the agent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import ssl
import threading
import urllib.request
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvloop

from trellis.connect import spiffe
from trellis.connect.ca import certs
from trellis.proxy import serve
from trellis.testing.agent import AgentProcess, free_port, start_agent
from trellis.testing.apps import NamedApp, Traffic, answer, eventually, get

pytestmark = pytest.mark.integration

FAST = 'connect { root_change_jitter = "0s" }'
DEADLINE = 20.0


# -- the pieces ----------------------------------------------------------------------------------
class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def has(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))


@dataclass
class Proxy:
    proxy_id: str
    result: Future
    stop_event: asyncio.Event
    loop: asyncio.AbstractEventLoop
    log: Captured

    def stop(self, timeout: float = DEADLINE) -> int:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        return self.result.result(timeout)


class ProxyRunner:
    """One event loop in a thread (asyncio's or uvloop's, which the CLI uses); every
    proxy of the test runs ``serve()`` on it."""

    def __init__(self, kind: str) -> None:
        self.loop = uvloop.new_event_loop() if kind == "uvloop" else asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="proxies", daemon=True)
        self.thread.start()

    def start(self, agent_url: str, proxy_id: str, **kw: Any) -> Proxy:
        captured = Captured()
        log = logging.getLogger(f"test.proxy.{proxy_id}.{id(captured)}")
        log.setLevel(logging.DEBUG)
        log.addHandler(captured)

        async def event() -> asyncio.Event:
            return asyncio.Event()

        stop = asyncio.run_coroutine_threadsafe(event(), self.loop).result(5)
        result = asyncio.run_coroutine_threadsafe(serve(agent_url, proxy_id, stop=stop, log=log, **kw), self.loop)
        return Proxy(proxy_id, result, stop, self.loop, captured)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def read_response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body) from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096) or b"<eof>"
        assert not data.endswith(b"<eof>"), data
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(4096)
    return data


@dataclass
class Mesh:
    tmp: Path
    agent: AgentProcess
    runner: ProxyRunner
    apps: dict[str, NamedApp]
    ports: dict[str, int]
    proxies: dict[str, Proxy] = field(default_factory=dict)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        status, _, data = self.agent.request(method, path, body)
        assert status == 200, (method, path, status, data)
        return data

    def register(self, name: str, sid: str, *, upstreams: list[dict] | None = None, check: dict | None = None,
                 config: dict | None = None) -> None:
        public = self.ports[f"{sid}-public"]
        body: dict[str, Any] = {
            "Name": name, "ID": sid, "Port": self.apps[sid].port,
            "Connect": {"SidecarService": {
                "Port": public,
                # the seed's check: plaintext /health on the sidecar's own mTLS port
                "Checks": [{"Name": "public", "HTTP": f"http://127.0.0.1:{public}/health", "Interval": "1s"}],
                "Proxy": {"Config": {"bind_address": "127.0.0.1", "drain_timeout_ms": 2000, **(config or {})},
                          "Upstreams": upstreams or []}}},
        }
        if check:
            body["Check"] = check
        self.call("PUT", "/v1/agent/service/register", body)

    def applied_everywhere(self) -> bool:
        rows = self.call("GET", "/v1/agent/connect/proxies")
        mine = [r for r in rows if r["ProxyID"] in self.proxies]
        return len(mine) == len(self.proxies) and all(r["AppliedVersion"] == r["SnapshotVersion"] for r in mine)

    def snapshot(self, proxy_id: str) -> dict:
        return self.call("GET", f"/v1/agent/connect/proxy-snapshot/{proxy_id}")

    def intention(self, action: str | None) -> None:
        path = "/v1/connect/intentions/exact?source=web&destination=api"
        if action is None:
            self.call("DELETE", path)
        else:
            self.call("PUT", path, {"Action": action})

    def api_log(self, text: str) -> bool:
        return any(self.proxies[p].log.has(text) for p in ("api-1-sidecar-proxy", "api-2-sidecar-proxy"))


@pytest.fixture(scope="module", params=["asyncio", "uvloop"])
def mesh(request, tmp_path_factory) -> Mesh:
    tmp = tmp_path_factory.mktemp(f"builtin-proxy-{request.param}")
    agent = start_agent(tmp, "-hcl", FAST, data_dir=str(tmp / "data"))
    apps = {"web-1": NamedApp("web-1"), "api-1": NamedApp("api-1"), "api-2": NamedApp("api-2")}
    ports = {name: free_port() for name in ("web-1-public", "api-1-public", "api-2-public", "upstream", "metrics")}
    m = Mesh(tmp, agent, ProxyRunner(request.param), apps, ports)
    try:
        m.register("api", "api-1")
        m.register("api", "api-2", check={"CheckID": "api-2-ttl", "TTL": "10m", "Status": "passing"})
        m.register("web", "web-1", upstreams=[{"DestinationName": "api", "LocalBindPort": ports["upstream"]}],
                   config={"envoy_prometheus_bind_addr": f"127.0.0.1:{ports['metrics']}"})
        for sid in ("web-1", "api-1", "api-2"):
            proxy_id = f"{sid}-sidecar-proxy"
            m.proxies[proxy_id] = m.runner.start(agent.url, proxy_id)
        eventually(lambda: {"api-1", "api-2"} <= {answer(ports["upstream"]) for _ in range(6)},
                   "web reaches both api instances")
        yield m
    finally:
        codes = {pid: p.stop() for pid, p in m.proxies.items()}
        m.runner.close()
        for app in apps.values():
            app.close()
        m.agent.stop()
    assert codes == {pid: 0 for pid in codes}, codes


# -- the stories ------------------------------------------------------------------------------------
def test_web_reaches_both_api_instances_through_its_upstream(mesh):
    seen = [answer(mesh.ports["upstream"]) for _ in range(10)]
    assert set(seen) == {"api-1", "api-2"}, seen  # round robin over both healthy instances


def test_the_public_port_answers_a_plaintext_health_check_and_refuses_anything_else(mesh):
    port = mesh.ports["web-1-public"]
    assert get(port, "/health") == (200, "ok\n")
    status, body = get(port, "/")
    assert status == 400 and "only GET /health is answered" in body
    eventually(lambda: mesh.proxies["web-1-sidecar-proxy"].log.has("refused a plaintext request"), "the refusal is logged")


def test_the_seeds_sidecar_health_checks_turn_passing_while_the_proxies_serve(mesh):
    def sidecar_statuses() -> set[str]:
        checks = mesh.call("GET", "/v1/agent/checks")
        return {c["Status"] for c in checks.values() if c["ServiceID"].endswith("-sidecar-proxy")}

    eventually(lambda: sidecar_statuses() == {"passing"}, "the /health and alias checks of every sidecar pass")


def test_a_peer_with_a_foreign_certificate_is_refused(mesh):
    td = spiffe.trust_domain("99999999-8888-7777-6666-555555555555")
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = certs.generate_key(certs.LEAF_KEY)
    root = certs.build_root(ca_key, cluster_id="99999999-8888-7777-6666-555555555555", uid="x", serial=7, now=now,
                            ttl=dt.timedelta(days=1))
    key = certs.generate_key(certs.LEAF_KEY)
    leaf = certs.sign_leaf(certs.build_csr(key, spiffe.service_uri(td, "default", "dc1", "web")), root, ca_key,
                           serial=8, now=now, ttl=dt.timedelta(hours=1))
    (mesh.tmp / "foreign.pem").write_text(certs.dump_cert(leaf))
    (mesh.tmp / "foreign.key").write_text(certs.dump_private_key(key))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ctx.load_cert_chain(mesh.tmp / "foreign.pem", mesh.tmp / "foreign.key")

    with socket.create_connection(("127.0.0.1", mesh.ports["api-1-public"]), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="api.default.dc1.internal.example") as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: api\r\n\r\n")
                got = tls.recv(1024)
        except (ssl.SSLError, ConnectionError) as exc:
            got = repr(exc).encode()
    assert b"api-1" not in got
    api = mesh.proxies["api-1-sidecar-proxy"]
    eventually(lambda: api.log.has("failed (certificate_verify_failed)"), "the refused handshake is logged")
    assert answer(mesh.ports["upstream"]) in ("api-1", "api-2")  # everyone else is still served


def test_a_deny_intention_refuses_new_connections_and_closes_the_open_one(mesh):
    port = mesh.ports["upstream"]
    held = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        held.sendall(b"GET / HTTP/1.1\r\nHost: api\r\n\r\n")
        assert read_response(held).startswith(b"HTTP/1.1 200 OK")

        mesh.intention("deny")
        eventually(lambda: answer(port) is None, "new connections through the upstream fail")
        held.settimeout(DEADLINE)
        assert held.recv(4096) == b"", "the open connection is closed by the api proxy"
        eventually(lambda: mesh.api_log("denied: default/web -> default/api (Matched L4 intention: "
                                        "default/web => default/api (Precedence: 9, Action: DENY))"),
                   "the denial names source, destination and intention")
        assert mesh.api_log(": closing an open connection")

        mesh.intention("allow")
        eventually(lambda: answer(port) in ("api-1", "api-2"), "allowing again restores traffic")
    finally:
        held.close()
        mesh.intention(None)


def test_ca_rotation_during_a_steady_request_loop_loses_no_request(mesh):
    before = {pid: mesh.snapshot(pid)["leaf"]["serial"] for pid in mesh.proxies}
    with Traffic(mesh.ports["upstream"]) as traffic:
        traffic.wait_for(5)
        rotated = mesh.call("POST", "/v1/connect/ca/rotate")
        eventually(lambda: all(mesh.snapshot(pid)["leaf"]["serial"] != before[pid] for pid in mesh.proxies),
                   "every proxy gets a leaf from the new root")
        eventually(mesh.applied_everywhere, "every proxy applies its new snapshot")
        traffic.wait_for(20)
    roots = mesh.call("GET", "/v1/connect/ca/roots")
    assert roots["ActiveRootID"] == rotated["ActiveRootID"]
    assert traffic.failures == [], traffic.failures[:5]


def test_a_critical_api_instance_stops_receiving_traffic(mesh):
    port = mesh.ports["upstream"]
    mesh.call("PUT", "/v1/agent/check/fail/api-2-ttl")
    try:
        eventually(lambda: {answer(port) for _ in range(8)} == {"api-1"}, "only api-1 answers")
        assert {answer(port) for _ in range(20)} == {"api-1"}
    finally:
        mesh.call("PUT", "/v1/agent/check/pass/api-2-ttl")
    eventually(lambda: "api-2" in {answer(port) for _ in range(6)}, "api-2 is back once passing")


def test_metrics_count_connections_bytes_and_connect_latency(mesh):
    assert answer(mesh.ports["upstream"])

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{mesh.ports['metrics']}/metrics", timeout=5) as resp:
            return resp.read().decode()

    text = eventually(lambda: (t := scrape()) and 'trellis_proxy_connections_closed_total{destination="api",source="web"}'
                      in t and t, "metrics after a request")
    for needle in ('trellis_proxy_connections_opened_total{destination="api",source="web"}',
                   'trellis_proxy_bytes_total{destination="api",direction="in",source="web"}',
                   'trellis_proxy_bytes_total{destination="api",direction="out",source="web"}',
                   'trellis_proxy_upstream_connect_seconds_count{destination="api"}',
                   "trellis_proxy_open_connections", "trellis_proxy_snapshot_index"):
        assert needle in text, needle


def test_an_unknown_proxy_id_exits_1(mesh):
    proxy = mesh.runner.start(mesh.agent.url, "no-such-proxy")
    assert proxy.result.result(DEADLINE) == 1
    assert proxy.log.has("unknown proxy ID 'no-such-proxy'")


def test_a_stop_from_the_agent_drains_and_exits_0(mesh):
    port = free_port()
    added = mesh.call("POST", "/v1/agent/connect/proxies", {
        "Service": "db", "ListenAddress": "127.0.0.1", "ListenPort": port,
        "ServiceAddress": "127.0.0.1", "ServicePort": mesh.apps["web-1"].port})
    try:
        proxy = mesh.runner.start(mesh.agent.url, added["ID"])
        eventually(lambda: get(port, "/health") == (200, "ok\n"), "the ephemeral proxy serves")
        mesh.call("PUT", f"/v1/agent/connect/proxies/{added['ID']}/stop")
        assert proxy.result.result(DEADLINE) == 0
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:
        mesh.call("DELETE", f"/v1/agent/connect/proxies/{added['ID']}")


def test_what_the_proxy_cannot_do_is_listed_under_its_problems(mesh):
    """A built-in proxy reports its plan's problems with its heartbeat, as an Envoy stream
    reports its translation's: ``connect proxy -list`` shows both alike."""
    port = free_port()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    added = mesh.call("POST", "/v1/agent/connect/proxies", {
        "Service": "db", "ListenAddress": "127.0.0.1", "ListenPort": port,
        "ServiceAddress": "127.0.0.1", "ServicePort": mesh.apps["web-1"].port,
        "Upstreams": [{"DestinationName": "api", "LocalBindAddress": "127.0.0.1", "LocalBindPort": busy},
                      {"DestinationName": "api", "LocalBindAddress": "127.0.0.1", "LocalBindPort": port}]})
    proxy = mesh.runner.start(mesh.agent.url, added["ID"])
    try:
        def problems() -> list[str]:
            rows = mesh.call("GET", "/v1/agent/connect/proxies")
            return next(r["Problems"] for r in rows if r["ProxyID"] == added["ID"])

        eventually(lambda: len(problems()) == 2, "the proxy reports two problems")
        found = problems()
        assert any(f"on 127.0.0.1:{port} refused" in p for p in found), found  # clashes with the public port
        assert f"upstream api: cannot listen on 127.0.0.1:{busy} yet (retrying)" in found, found
        taken.close()
        eventually(lambda: len(problems()) == 1, "the port is free: the upstream binds and its problem goes")
    finally:
        taken.close()
        mesh.call("PUT", f"/v1/agent/connect/proxies/{added['ID']}/stop")
        assert proxy.result.result(DEADLINE) == 0
        mesh.call("DELETE", f"/v1/agent/connect/proxies/{added['ID']}")


def test_the_proxies_keep_serving_while_the_agent_restarts_and_catch_up(mesh):
    agent = mesh.agent
    with Traffic(mesh.ports["upstream"]) as traffic:
        traffic.wait_for(5)
        agent.stop()
        traffic.wait_for(30)  # served from the last snapshot
        down_failures = list(traffic.failures)
        mesh.agent = start_agent(mesh.tmp, "-hcl", FAST, data_dir=agent.data_dir,
                                 ports=(agent.http_port, agent.dns_port, agent.grpc_port))
        eventually(mesh.applied_everywhere, "every proxy follows the restarted agent", timeout=30)
        traffic.wait_for(10)
    assert down_failures == [], down_failures[:5]
    assert mesh.proxies["web-1-sidecar-proxy"].log.has("agent lost")
    eventually(lambda: mesh.proxies["web-1-sidecar-proxy"].log.has("agent back"), "the return is logged")

    mesh.intention("deny")  # caught up: a change made after the restart is enforced
    try:
        eventually(lambda: answer(mesh.ports["upstream"]) is None, "the new deny is enforced")
    finally:
        mesh.intention(None)
    eventually(lambda: answer(mesh.ports["upstream"]) in ("api-1", "api-2"), "traffic restored")
