"""The real Envoy against the real delta ADS server: it ACKs a snapshot, takes a change,
and NACKs an invalid listener, which is then not sent again.

The snapshot source is a fake (one static listener + cluster, built here with Envoy's proto
classes); the servicer, grpc.aio and Envoy are real.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import duration_pb2

from trellis.errors import NotFound
from trellis.testing.agent import free_port
from trellis.xds.server import GRACE, start_xds_server, whole
from trellis.xds.types import CLUSTER, LISTENER

pytestmark = pytest.mark.integration

ENVOY = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "envoy"
PROXY = "web-sidecar-proxy"
DEADLINE = 20.0

BOOTSTRAP = """\
node: {{id: {node}, cluster: web}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
dynamic_resources:
  ads_config:
    api_type: DELTA_GRPC
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services: [{{envoy_grpc: {{cluster_name: local_agent}}}}]
  cds_config: {{ads: {{}}, resource_api_version: V3, initial_fetch_timeout: 0s}}
  lds_config: {{ads: {{}}, resource_api_version: V3, initial_fetch_timeout: 0s}}
static_resources:
  clusters:
  - name: local_agent
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{http2_protocol_options: {{}}}}
    load_assignment:
      cluster_name: local_agent
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {xds}}}}}}}
"""


# -- the snapshot: one static cluster and one TCP listener ------------------------------------


def address(port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=port))


def static_cluster(name: str, port: int, timeout_s: int = 1) -> cluster_pb2.Cluster:
    endpoint = endpoint_components_pb2.LbEndpoint(endpoint=endpoint_components_pb2.Endpoint(address=address(port)))
    return cluster_pb2.Cluster(
        name=name, type=cluster_pb2.Cluster.STATIC, connect_timeout=duration_pb2.Duration(seconds=timeout_s),
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name, endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[endpoint])]))


def tcp_listener(name: str, port: int, cluster: str) -> listener_pb2.Listener:
    chain = listener_components_pb2.FilterChain()
    chain.filters.add(name="envoy.filters.network.tcp_proxy").typed_config.Pack(
        tcp_proxy_pb2.TcpProxy(stat_prefix=name.replace(":", "_"), cluster=cluster))
    return listener_pb2.Listener(name=name, address=address(port), filter_chains=[chain])


@dataclass(frozen=True)
class Snapshot:
    version: str
    index: int
    resources: dict[str, dict[str, Any]]


class SnapshotSource:
    """The ProxyWatcher's get/report for one proxy, latest-value-wins."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self.changed = asyncio.Condition()
        self.reports: list[dict[str, Any]] = []

    async def publish(self, version: str, resources: dict[str, dict[str, Any]]) -> None:
        async with self.changed:
            self.snapshot = Snapshot(version, (self.snapshot.index if self.snapshot else 0) + 1, resources)
            self.changed.notify_all()

    async def get(self, proxy_id: str, *, index: int = 0, wait: float = 0.0) -> Snapshot:
        if proxy_id != PROXY:
            raise NotFound(f"unknown proxy ID: {proxy_id}")
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(lambda: self.snapshot and self.snapshot.index > index),
                                       wait)
            except TimeoutError:
                pass
            assert self.snapshot is not None
            return self.snapshot

    def report(self, proxy_id: str, *, applied_version: str, data_plane: str, extra: dict[str, Any],
               **_: Any) -> None:
        self.reports.append({"applied_version": applied_version, "data_plane": data_plane, "extra": extra})

    @property
    def last(self) -> dict[str, Any]:
        return self.reports[-1] if self.reports else {"applied_version": "", "extra": {}}


def build(snapshot: Snapshot) -> dict[str, dict[str, Any]]:
    return snapshot.resources


# -- processes --------------------------------------------------------------------------------


class Envoy:
    def __init__(self, proc: asyncio.subprocess.Process, admin_port: int, log_path: Path) -> None:
        self.proc = proc
        self.admin_port = admin_port
        self.log_path = log_path

    async def admin(self, path: str) -> str:
        async with aiohttp.ClientSession() as http, http.get(
                f"http://127.0.0.1:{self.admin_port}{path}", timeout=aiohttp.ClientTimeout(total=2)) as r:
            return await r.text()

    async def stat(self, name: str) -> int:
        text = await self.admin(f"/stats?filter=^{name}$")
        return int(text.split(":")[1]) if ":" in text else 0

    def log(self) -> str:
        return self.log_path.read_text()[-4000:]

    async def stop(self) -> None:
        if self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                os.kill(self.proc.pid, signal.SIGKILL)
                await self.proc.wait()


async def start_envoy(tmp: Path, xds_port: int) -> Envoy:
    admin_port = free_port()
    config = tmp / "bootstrap.yaml"
    config.write_text(BOOTSTRAP.format(node=PROXY, admin=admin_port, xds=xds_port))
    log_path = tmp / "envoy.log"
    with log_path.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            str(ENVOY), "-c", str(config), "--disable-hot-restart", "--concurrency", "1", "-l", "info",
            "--base-id", str(random.randint(1000, 1_000_000)), stdout=out, stderr=asyncio.subprocess.STDOUT)
    return Envoy(proc, admin_port, log_path)


async def eventually(check, what: str, envoy: Envoy) -> float:
    """Poll ``check`` (sync or async) until true; the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < DEADLINE:
        ok = check()
        if asyncio.iscoroutine(ok):
            ok = await ok
        if ok:
            return time.monotonic() - start
        assert envoy.proc.returncode is None, f"Envoy exited ({envoy.proc.returncode}):\n{envoy.log()}"
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} did not happen within {DEADLINE}s\nEnvoy log:\n{envoy.log()}")


async def echo_server() -> tuple[asyncio.Server, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def through(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
    try:
        writer.write(payload)
        await writer.drain()
        return await asyncio.wait_for(reader.read(100), 2)
    finally:
        writer.close()


# -- the story --------------------------------------------------------------------------------


async def test_envoy_acks_a_snapshot_takes_a_change_and_rejects_a_bad_listener_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="trellis.xds")
    echo, echo_port = await echo_server()
    listen_port, xds_port = free_port(), free_port()
    source = SnapshotSource()
    v1 = {CLUSTER: {"local_app": static_cluster("local_app", echo_port)},
          LISTENER: {"public_listener": tcp_listener("public_listener", listen_port, "local_app")}}
    await source.publish("v1", v1)
    server = await start_xds_server(source, whole(build), "127.0.0.1", xds_port)
    envoy = await start_envoy(tmp_path, xds_port)
    try:
        # 1. Envoy connects, gets the cluster then the listener, ACKs both.
        took = await eventually(lambda: source.last["applied_version"] == "v1", "ACK of v1", envoy)
        assert source.last["data_plane"] == "envoy"
        assert source.last["extra"]["acked"] == {"cds": 1, "lds": 1}
        await eventually(lambda: _has(envoy, "/listeners", "public_listener"), "listener in /listeners", envoy)
        assert await through(listen_port, b"hello") == b"hello"
        sent = [r.getMessage() for r in caplog.records if " <- " in r.getMessage()]
        assert [m.split(" <- ")[1].split()[0] for m in sent] == ["cds", "lds"]  # make-before-break
        print(f"\nv1 applied {took * 1000:.0f} ms after Envoy started")

        # 2. A change: the cluster's connect timeout. Only the cluster goes; Envoy ACKs it.
        v2 = {**v1, CLUSTER: {"local_app": static_cluster("local_app", echo_port, timeout_s=3)}}
        await source.publish("v2", v2)
        took = await eventually(lambda: source.last["applied_version"] == "v2", "ACK of v2", envoy)
        assert await envoy.stat("cluster_manager.cds.update_success") >= 2
        print(f"v2 applied {took * 1000:.0f} ms after publishing")

        # 3. An invalid listener (port out of range): Envoy NACKs, keeps v2, we log it once.
        v3 = {**v2, LISTENER: {**v2[LISTENER], "bad": tcp_listener("bad", 70_000, "local_app")}}
        await source.publish("v3", v3)
        await eventually(lambda: source.last["extra"].get("rejected") == {"lds": 1}, "NACK of v3", envoy)
        assert source.last["applied_version"] == "v2"
        nacks = [r for r in caplog.records if "rejected lds bad" in r.getMessage()]
        assert len(nacks) == 1 and nacks[0].levelno == logging.WARNING
        assert PROXY in nacks[0].getMessage() and "70000" in nacks[0].getMessage()
        assert await envoy.stat("listener_manager.lds.update_rejected") == 1
        assert await through(listen_port, b"still") == b"still"  # the last good config serves

        # 4. An unrelated change goes out alone; the rejected listener is not sent again.
        v4 = {**v3, CLUSTER: {"local_app": static_cluster("local_app", echo_port, timeout_s=4)}}
        await source.publish("v4", v4)
        await eventually(lambda: source.last["extra"].get("sent_version") == "v4"
                         and source.last["extra"]["acked"] == {"cds": 1, "lds": 1}
                         and _cds_acks(caplog) >= 3, "ACK of v4's cluster", envoy)
        await asyncio.sleep(0.3)  # give a resend (the bug) a chance to show
        assert await envoy.stat("listener_manager.lds.update_rejected") == 1
        lds_sent = [r for r in caplog.records if " <- lds " in r.getMessage()]
        assert len(lds_sent) == 2, [r.getMessage() for r in lds_sent]  # v1's listener, v3's bad one
        assert source.last["applied_version"] == "v2"  # v4 is not fully applied: "bad" is missing
    finally:
        await envoy.stop()
        await server.stop(GRACE)
        echo.close()


def _cds_acks(caplog: pytest.LogCaptureFixture) -> int:
    return sum(1 for r in caplog.records if " <- cds " in r.getMessage())


async def _has(envoy: Envoy, path: str, text: str) -> bool:
    return text in await envoy.admin(path)


async def test_the_grpc_edge_answers_state_of_the_world_and_unknown_nodes_with_a_status() -> None:
    source = SnapshotSource()
    port = free_port()
    server = await start_xds_server(source, whole(build), "127.0.0.1", port)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
            sotw = stub.StreamAggregatedResources(iter([discovery_pb2.DiscoveryRequest(type_url=CLUSTER)]))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await asyncio.wait_for(sotw.read(), 5)
            assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED
            first = discovery_pb2.DeltaDiscoveryRequest(type_url=CLUSTER, node=base_pb2.Node(id="nobody"))
            call = stub.DeltaAggregatedResources(iter([first]))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await asyncio.wait_for(call.read(), 5)
            assert err.value.code() is grpc.StatusCode.NOT_FOUND
            assert "nobody" in err.value.details()
    finally:
        await server.stop(GRACE)
