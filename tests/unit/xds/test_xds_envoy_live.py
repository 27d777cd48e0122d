"""A real Envoy serving translated resources: the plaintext /health answer on the public
port, mutual TLS with RBAC from intentions, and an upstream listener whose cluster dials
the public listener back with the proxy's own identity.

One Envoy (``--concurrency 1``) on free loopback ports, started from the resolved
bootstrap (xds_envoy.py) and stopped by its PID; a throwaway CA made for the test; an
echo server standing in for the application. Waits poll with deadlines.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import http.server
import datetime as dt
import socket
import socketserver
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from xds_envoy import ENVOY, resolved_bootstrap, write
from xds_scenarios import ALLOW_DEFAULT, CLUSTER_ID, DC, DENY_DEFAULT, TD, intentions, snapshot, upstream

from trellis.connect import spiffe
from trellis.connect.ca import certs
from trellis.connect.intentions.decide import Default
from trellis.connect.intentions.index import IntentionIndex
from trellis.connect.intentions.model import HTTPRequest
from trellis.proxycfg.model import DefaultDecision, Endpoint, LeafSnapshot, PublicListener
from trellis.xds.resources import build_resources
from trellis.testing.orphans import guarded

pytestmark = pytest.mark.integration

NOW = dt.datetime.now(dt.timezone.utc)
DEADLINE = 15.0


class CA:
    def __init__(self) -> None:
        self.key = certs.generate_key(certs.LEAF_KEY)
        self.root = certs.build_root(self.key, cluster_id=CLUSTER_ID, uid="live", serial=1, now=NOW,
                                     ttl=dt.timedelta(days=1))
        self.root_pem = certs.dump_cert(self.root)

    def leaf(self, service: str) -> LeafSnapshot:
        key = certs.generate_key(certs.LEAF_KEY)
        uri = spiffe.service_uri(TD, "default", DC, service)
        cert = certs.sign_leaf(certs.build_csr(key, uri), self.root, self.key, serial=2, now=NOW,
                               ttl=dt.timedelta(hours=1))
        return LeafSnapshot(certs.dump_cert(cert), certs.dump_private_key(key), uri, "02", 0.0)


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def echo_server() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def envoy(config: Path, log: Path) -> Iterator[subprocess.Popen]:
    with log.open("w") as out:
        proc = subprocess.Popen(guarded([str(ENVOY), "-c", str(config), "--concurrency", "1", "--disable-hot-restart",
                                         "--log-level", "warning", "--drain-time-s", "1"]), stdout=out, stderr=out)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for_health(port: int, proc: subprocess.Popen, log: Path) -> None:
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        assert proc.poll() is None, f"envoy exited: {log.read_text()[-2000:]}"
        with contextlib.suppress(OSError):
            if http_get(port, "/health")[0] == 200:
                return
        time.sleep(0.05)
    raise AssertionError(f"envoy did not answer /health in {DEADLINE}s: {log.read_text()[-2000:]}")


def tls_echo(port: int, ca: CA, leaf: LeafSnapshot | None, tmp: Path) -> bytes:
    """Send bytes over mutual TLS as ``leaf`` (no client certificate if None); what comes back."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cadata=ca.root_pem)
    if leaf is not None:
        (tmp / "c.pem").write_text(leaf.cert_pem)
        (tmp / "k.pem").write_text(leaf.private_key_pem)
        context.load_cert_chain(tmp / "c.pem", tmp / "k.pem")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as raw, \
                context.wrap_socket(raw, server_hostname=f"web.default.{DC}.internal.{TD}") as conn:
            conn.sendall(b"ping")
            return conn.recv(4)
    except (ssl.SSLError, ConnectionError, TimeoutError):
        return b""


def plain_echo(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as conn:
        conn.sendall(b"ping")
        try:
            return conn.recv(4)
        except (ConnectionError, TimeoutError):
            return b""


def test_a_live_envoy_serves_health_mtls_rbac_and_upstreams(tmp_path: Path) -> None:
    ca = CA()
    public_port, upstream_port, admin_port = free_port(), free_port(), free_port()
    given = intentions({"Name": "web", "Sources": [
        {"Name": "frontend", "Action": "allow"}, {"Name": "web", "Action": "allow"},
        {"Name": "legacy", "Action": "deny"}, {"Name": "*", "Action": "deny"}]})
    with echo_server() as app_port:
        loop = upstream("web", upstream_port, endpoints=(Endpoint("127.0.0.1", public_port, "n1", "web", "passing"),))
        snap = dataclasses.replace(
            snapshot(all_intentions=given, default=DENY_DEFAULT, upstreams=(loop,), leaf=ca.leaf("web")),
            roots=(ca.root_pem,), public=PublicListener("127.0.0.1", public_port, "127.0.0.1", app_port, "tcp", 0))
        boot = resolved_bootstrap(build_resources(snap))
        boot["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}}
        config = write(boot, tmp_path / "envoy.json")
        log = tmp_path / "envoy.log"
        with envoy(config, log) as proc:
            wait_for_health(public_port, proc, log)
            assert http_get(public_port, "/health") == (200, "ok\n")
            status, body = http_get(public_port, "/anything")
            assert status == 403 and "mutual TLS" in body
            assert tls_echo(public_port, ca, ca.leaf("frontend"), tmp_path) == b"ping"
            assert tls_echo(public_port, ca, ca.leaf("legacy"), tmp_path) == b""
            assert tls_echo(public_port, ca, ca.leaf("billing"), tmp_path) == b""  # the default: deny
            assert tls_echo(public_port, ca, None, tmp_path) == b""  # no client certificate
            assert plain_echo(upstream_port) == b"ping"  # app -> upstream listener -> mTLS -> public -> app
            stats = stat_values(admin_port, "connect_authz.")
            assert stats["connect_authz.rbac.denied"] == 2  # legacy and billing, by RBAC (not by TLS)
            # frontend, and web through its own upstream: the live RBAC decides on every read
            # from the downstream (CONTINUOUS), so this counts reads, at least one per connection
            assert stats["connect_authz.rbac.allowed"] >= 2


def stat_values(admin_port: int, prefix: str) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/stats?filter=^{prefix}", timeout=2) as answer:
        lines = answer.read().decode().splitlines()
    return {name: int(value) for name, _, value in (line.partition(": ") for line in lines) if value.isdigit()}


class Hello(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"hi")

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_app() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def https_status(port: int, ca: CA, files: tuple[Path, Path], request: HTTPRequest) -> int:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cadata=ca.root_pem)
    context.load_cert_chain(*files)
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=3, context=context)
    try:
        conn.putrequest(request.method, request.path, skip_accept_encoding=True)
        for name, value in request.headers:
            conn.putheader(name, value)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


L7_LIVE = intentions({"Name": "web", "Sources": [
    {"Name": "frontend", "Permissions": [
        {"Action": "deny", "HTTP": {"PathPrefix": "/admin",
                                    "Header": [{"Name": "x-debug", "Present": True, "Invert": True}]}},
        {"Action": "allow", "HTTP": {"PathRegex": "/(api|admin)/[a-z]+", "Methods": ["GET", "PUT"]}},
        {"Action": "allow", "HTTP": {"Header": [{"Name": "x-team", "Suffix": "-SRE", "IgnoreCase": True},
                                                {"Name": "x-env", "Exact": "prod", "Invert": True}]}},
    ]},
    {"Name": "*", "Action": "deny"}]})
L7_REQUESTS = [
    HTTPRequest("/api/items", "GET"),
    HTTPRequest("/api/items?page=2", "PUT"),
    HTTPRequest("/api/items", "POST"),
    HTTPRequest("/api/Items", "GET"),
    HTTPRequest("/admin/users", "GET"),
    HTTPRequest("/admin/users", "GET", (("x-debug", "1"),)),
    HTTPRequest("/other", "DELETE", (("X-Team", "eu-sre"),)),
    HTTPRequest("/other", "DELETE", (("x-team", "eu-sre"), ("x-env", "prod"))),
    HTTPRequest("/other", "DELETE", (("x-team", "eu-sre"), ("x-env", "dev"))),
    HTTPRequest("/other", "DELETE", (("x-team", "eu-sre"), ("x-team", "x"))),
    HTTPRequest("/other", "GET", (("x-team", "x"), ("x-team", "eu-sre"))),
]


@pytest.mark.parametrize("default", [DENY_DEFAULT, ALLOW_DEFAULT], ids=["default_deny", "default_allow"])
def test_a_live_envoy_decides_l7_requests_as_the_engine_does(default: DefaultDecision, tmp_path: Path) -> None:
    """The pure model in test_xds_rbac.py checked against the real thing on a few requests."""
    ca = CA()
    public_port = free_port()
    index = IntentionIndex(L7_LIVE)
    engine_default = Default(default.allowed, default.reason)
    client = ca.leaf("frontend")
    files = (tmp_path / "frontend.pem", tmp_path / "frontend-key.pem")
    files[0].write_text(client.cert_pem)
    files[1].write_text(client.private_key_pem)
    with http_app() as app_port:
        snap = dataclasses.replace(
            snapshot(protocol="http", all_intentions=L7_LIVE, default=default, leaf=ca.leaf("web")),
            roots=(ca.root_pem,), public=PublicListener("127.0.0.1", public_port, "127.0.0.1", app_port, "http", 0))
        config = write(resolved_bootstrap(build_resources(snap)), tmp_path / "envoy.json")
        log = tmp_path / "envoy.log"
        with envoy(config, log) as proc:
            wait_for_health(public_port, proc, log)
            got = {r: https_status(public_port, ca, files, r) for r in L7_REQUESTS}
    want = {r: 200 if index.decide(("default", "frontend"), ("default", "web"), default=engine_default,
                                   request=r).allowed else 403 for r in L7_REQUESTS}
    assert got == want
    assert set(want.values()) == {200, 403}
