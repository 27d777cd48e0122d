"""The proxy shell without an agent: snapshots applied by hand to ProxyServers on real
loopback sockets, with a throwaway CA. Each test is one story about the listeners.

    client (web leaf) ══mTLS══▶ api ProxyServer public port ──▶ echo app
    client ──▶ web ProxyServer upstream port ══mTLS══▶ api public port (or a dead one)
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from proxy_certs import TestCA

from trellis.connect.intentions.model import Action, Intention
from trellis.proxy.server import ProxyServer, StartError
from trellis.proxy.tls import build_contexts
from trellis.proxycfg.model import (
    ConnectProxySnapshot,
    DefaultDecision,
    Endpoint,
    PublicListener,
    UpstreamSnapshot,
)
from trellis.testing.agent import free_port

CLUSTER = "11111111-2222-3333-4444-555555555555"
DEADLINE = 10.0


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA(CLUSTER)


class Logs(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)


def make_server(name: str) -> tuple[ProxyServer, Logs]:
    logs = Logs()
    log = logging.getLogger(f"test.proxy.server.{name}.{id(logs)}")
    log.setLevel(logging.DEBUG)
    log.addHandler(logs)
    return ProxyServer(agent=None, proxy_id=f"{name}-sidecar-proxy", log=log), logs  # type: ignore[arg-type]


def snapshot(ca: TestCA, service: str, *, public_port: int, local_port: int, config: dict | None = None,
             intentions: tuple[Intention, ...] = (), upstreams: tuple[UpstreamSnapshot, ...] = (),
             leaf: Any = None) -> ConnectProxySnapshot:
    return ConnectProxySnapshot(
        proxy_id=f"{service}-sidecar-proxy", proxy_name=f"{service}-sidecar-proxy", namespace="default",
        datacenter="dc1", trust_domain=ca.trust_domain, service=service, service_id=f"{service}-1",
        public=PublicListener("127.0.0.1", public_port, "127.0.0.1", local_port, "tcp", 0),
        leaf=leaf or ca.leaf(service), roots=(ca.root_pem,), intentions=intentions,
        default=DefaultDecision(True, "Default behavior configured by ACLs"), upstreams=upstreams,
        config={"drain_timeout_ms": 300, **(config or {})}, version=f"v-{len(intentions)}-{len(upstreams)}",
        index=1)


def deny(source: str, destination: str) -> Intention:
    return Intention("default", source, "default", destination, action=Action.DENY)


def upstream(ca: TestCA, name: str, bind_port: int, ports: list[int], *, config: dict | None = None,
             spiffe_name: str | None = None) -> UpstreamSnapshot:
    return UpstreamSnapshot(
        destination_name=name, destination_namespace="default", datacenter="dc1", local_bind_address="127.0.0.1",
        local_bind_port=bind_port, protocol="tcp", connect_timeout_ms=2000,
        sni=f"{name}.default.dc1.internal.{ca.trust_domain}", spiffe_id=ca.uri(spiffe_name or name),
        endpoints=tuple(Endpoint("127.0.0.1", p, "n1", f"{name}-{i}-sidecar-proxy", "passing")
                        for i, p in enumerate(ports)),
        config=config or {})


@pytest.fixture()
async def echo() -> AsyncIterator[int]:
    """The local app: echoes every byte back."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def tls_client(ca: TestCA, service: str, port: int, leaf: Any = None):
    ctx = build_contexts(leaf or ca.leaf(service), (ca.root_pem,)).client
    async with asyncio.timeout(DEADLINE):
        return await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="api.default.dc1.internal.x")


async def roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes = b"hello") -> bytes:
    writer.write(data)
    async with asyncio.timeout(DEADLINE):
        await writer.drain()
        return await reader.read(len(data))


async def closed(reader: asyncio.StreamReader) -> bool:
    async with asyncio.timeout(DEADLINE):
        try:
            return await reader.read(1) == b""
        except (ConnectionError, ssl.SSLError):
            return True


async def eventually(check, what: str) -> None:
    async with asyncio.timeout(DEADLINE):
        while not check():
            await asyncio.sleep(0.02)


async def test_an_allowed_peer_reaches_the_local_service_and_a_denied_one_is_closed_logged_and_counted(ca, echo):
    port = free_port()
    api, logs = make_server("api")
    api.apply(snapshot(ca, "api", public_port=port, local_port=echo, intentions=(deny("db", "api"),)), starting=True)
    try:
        reader, writer = await tls_client(ca, "web", port)
        assert await roundtrip(reader, writer) == b"hello"
        writer.close()

        reader, writer = await tls_client(ca, "db", port)
        assert await closed(reader)
        writer.close()
        await eventually(lambda: logs.has("denied: default/db -> default/api (Matched L4 intention: "
                                          "default/db => default/api (Precedence: 9, Action: DENY))"), "denial")
        assert api.metrics.denied.labels("db", "api")._value.get() == 1
        assert api.metrics.opened.labels("web", "api")._value.get() == 1
    finally:
        await api.shutdown()


@pytest.mark.parametrize("close_denied", [True, False], ids=["closed by default", "kept when turned off"])
async def test_a_new_deny_closes_open_connections_unless_turned_off(ca, echo, close_denied):
    port = free_port()
    api, logs = make_server("api")
    config = {} if close_denied else {"close_denied_connections": False}
    first = snapshot(ca, "api", public_port=port, local_port=echo, config=config)
    api.apply(first, starting=True)
    try:
        reader, writer = await tls_client(ca, "web", port)
        assert await roundtrip(reader, writer) == b"hello"
        api.apply(replace(first, intentions=(deny("web", "api"),), version="denied"))
        if close_denied:
            assert await closed(reader)
            assert logs.has("denied: default/web -> default/api (Matched L4 intention: default/web => "
                            "default/api (Precedence: 9, Action: DENY)): closing an open connection")
            assert api.metrics.revoked.labels("web", "api")._value.get() == 1
        else:
            assert await roundtrip(reader, writer, b"still here") == b"still here"
        reader2, writer2 = await tls_client(ca, "web", port)
        assert await closed(reader2), "new connections are denied either way"
        writer.close()
        writer2.close()
    finally:
        await api.shutdown()


async def test_health_answers_503_when_the_local_service_is_down(ca):
    port, dead = free_port(), free_port()
    api, _ = make_server("api")
    api.apply(snapshot(ca, "api", public_port=port, local_port=dead), starting=True)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(DEADLINE):
            raw = await reader.read()
        assert raw.startswith(b"HTTP/1.1 503 ")
        assert f"the local service at 127.0.0.1:{dead} does not accept connections".encode() in raw
        writer.close()
    finally:
        await api.shutdown()


async def test_upstream_retries_the_next_instance_ejects_the_dead_one_and_reaches_the_live_one(ca, echo):
    api_port, dead, bind = free_port(), free_port(), free_port()
    api, _ = make_server("api")
    web, logs = make_server("web")
    api.apply(snapshot(ca, "api", public_port=api_port, local_port=echo), starting=True)
    up = upstream(ca, "api", bind, [dead, api_port], config={"passive_health_check": {"max_failures": 1}})
    web.apply(snapshot(ca, "web", public_port=free_port(), local_port=echo, upstreams=(up,)), starting=True)
    try:
        for _ in range(4):  # round robin puts the dead one first every other time
            reader, writer = await asyncio.open_connection("127.0.0.1", bind)
            assert await roundtrip(reader, writer) == b"hello"
            writer.close()
        failures = [line for line in logs.lines if f"127.0.0.1:{dead} (api-0-sidecar-proxy) failed" in line]
        assert len(failures) == 1 and "ejected" in failures[0], logs.lines
        assert web.metrics.upstream_failures.labels("api", "connection_refused")._value.get() == 1
        assert web.metrics.connect_latency.labels("api")._sum.get() > 0
    finally:
        await web.shutdown()
        await api.shutdown()


async def test_an_upstream_with_the_wrong_identity_is_refused(ca, echo):
    api_port, bind = free_port(), free_port()
    api, _ = make_server("api")
    web, logs = make_server("web")
    api.apply(snapshot(ca, "api", public_port=api_port, local_port=echo), starting=True)
    up = upstream(ca, "db", bind, [api_port])  # expects db, meets api
    web.apply(snapshot(ca, "web", public_port=free_port(), local_port=echo, upstreams=(up,)), starting=True)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", bind)
        assert await closed(reader)
        writer.close()
        await eventually(lambda: logs.has(f"failed (spiffe_id_mismatch): upstream presented {ca.uri('api')}, "
                                          f"expected {ca.uri('db')}"), "mismatch logged")
        assert web.metrics.handshake_failures.labels("upstream", "spiffe_id_mismatch")._value.get() == 1
    finally:
        await web.shutdown()
        await api.shutdown()


async def test_an_upstream_without_a_usable_instance_is_closed_with_a_clear_log(ca, echo):
    bind = free_port()
    web, logs = make_server("web")
    up = replace(upstream(ca, "api", bind, [free_port()]),
                 endpoints=(Endpoint("127.0.0.1", 1, "n1", "api-1-sidecar-proxy", "critical"),))
    web.apply(snapshot(ca, "web", public_port=free_port(), local_port=echo, upstreams=(up,)), starting=True)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", bind)
        assert await closed(reader)
        writer.close()
        await eventually(lambda: logs.has("upstream api: no usable endpoint (all 1 instance(s) are critical)"), "log")
    finally:
        await web.shutdown()


async def test_a_taken_upstream_port_is_logged_the_rest_served_and_bound_once_free(ca, echo):
    taken = socket.create_server(("127.0.0.1", 0))
    busy, free = taken.getsockname()[1], free_port()
    web, logs = make_server("web")
    ups = (upstream(ca, "api", busy, [1]), upstream(ca, "db", free, [1]))
    web.apply(snapshot(ca, "web", public_port=free_port(), local_port=echo, upstreams=ups), starting=True)
    try:
        assert logs.has(f"upstream api: cannot listen on 127.0.0.1:{busy}")
        assert set(web.upstreams) == {f"127.0.0.1:{free}"}
        taken.close()
        web._bind_unbound()  # what every heartbeat does
        assert set(web.upstreams) == {f"127.0.0.1:{free}", f"127.0.0.1:{busy}"}
    finally:
        taken.close()
        await web.shutdown()


async def test_a_taken_public_port_stops_the_start(ca, echo):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        web, _ = make_server("web")
        with pytest.raises(StartError, match=f"cannot listen on 127.0.0.1:{taken.getsockname()[1]}"):
            web.apply(snapshot(ca, "web", public_port=taken.getsockname()[1], local_port=echo), starting=True)


async def test_contexts_are_rebuilt_only_for_a_new_leaf_and_open_connections_continue(ca, echo):
    port = free_port()
    api, _ = make_server("api")
    first = snapshot(ca, "api", public_port=port, local_port=echo)
    api.apply(first, starting=True)
    try:
        contexts = api.shared.contexts
        api.apply(replace(first, version="same-leaf", index=2))
        assert api.shared.contexts is contexts
        reader, writer = await tls_client(ca, "web", port)
        api.apply(replace(first, leaf=ca.leaf("api"), version="renewed", index=3))
        assert api.shared.contexts is not contexts
        assert await roundtrip(reader, writer) == b"hello", "the open connection carries on"
        reader2, writer2 = await tls_client(ca, "web", port)
        assert await roundtrip(reader2, writer2) == b"hello"
        writer.close()
        writer2.close()
    finally:
        await api.shutdown()


async def test_shutdown_stops_accepting_and_cuts_connections_after_the_drain_timeout(ca, echo):
    port = free_port()
    api, logs = make_server("api")
    api.apply(snapshot(ca, "api", public_port=port, local_port=echo), starting=True)
    reader, writer = await tls_client(ca, "web", port)
    assert await roundtrip(reader, writer) == b"hello"
    async with asyncio.timeout(DEADLINE):
        await api.shutdown()  # drain_timeout_ms = 300: the idle connection is cut
    assert await closed(reader)
    assert logs.has("draining 1 connection(s)") and api.shared.tasks == set()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
    writer.close()
