"""Builders and fakes for the xDS servicer tests: small Envoy protos, requests, a fake
stream (queues in, a list out) and a fake snapshot source (latest-value-wins, like the
ProxyWatcher). The translation stand-in is ``snapshot.resources``: tests build the protos."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import duration_pb2
from google.rpc import status_pb2

from trellis.errors import NotFound, TrellisError
from trellis.xds.types import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET

# -- resources --------------------------------------------------------------------------------


def cluster(name: str, *, eds: bool = True, timeout_s: int = 1) -> cluster_pb2.Cluster:
    c = cluster_pb2.Cluster(name=name, connect_timeout=duration_pb2.Duration(seconds=timeout_s))
    if eds:
        c.type = cluster_pb2.Cluster.EDS
        c.eds_cluster_config.eds_config.CopyFrom(config_source_pb2.ConfigSource(ads={}))
    return c


def cla(name: str, *ports: int) -> endpoint_pb2.ClusterLoadAssignment:
    assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    group = assignment.endpoints.add()
    for port in ports or (8080,):
        group.lb_endpoints.add(endpoint=endpoint_components_pb2.Endpoint(address=socket("127.0.0.1", port)))
    return assignment


def socket(host: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(socket_address=address_pb2.SocketAddress(address=host, port_value=port))


def tcp_listener(name: str, port: int, to_cluster: str) -> listener_pb2.Listener:
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=name, cluster=to_cluster)
    chain = listener_components_pb2.FilterChain()
    f = chain.filters.add(name="envoy.filters.network.tcp_proxy")
    f.typed_config.Pack(proxy)
    return listener_pb2.Listener(name=name, address=socket("127.0.0.1", port), filter_chains=[chain])


def http_listener(name: str, port: int, route: str) -> listener_pb2.Listener:
    hcm = http_connection_manager_pb2.HttpConnectionManager(stat_prefix=name)
    hcm.rds.route_config_name = route
    hcm.rds.config_source.ads.SetInParent()
    chain = listener_components_pb2.FilterChain()
    f = chain.filters.add(name="envoy.filters.network.http_connection_manager")
    f.typed_config.Pack(hcm)
    return listener_pb2.Listener(name=name, address=socket("127.0.0.1", port), filter_chains=[chain])


def route(name: str, to_cluster: str = "db") -> route_pb2.RouteConfiguration:
    rc = route_pb2.RouteConfiguration(name=name)
    vh = rc.virtual_hosts.add(name=name, domains=["*"])
    r = vh.routes.add()
    r.match.prefix = "/"
    r.route.cluster = to_cluster
    return rc


def secret(name: str, pem: str = "PEM") -> secret_pb2.Secret:
    s = secret_pb2.Secret(name=name)
    s.validation_context.trusted_ca.inline_string = pem
    return s


def sidecar(version: str = "1", *, db_port: int = 8080) -> dict[str, dict[str, Any]]:
    """A small sidecar's resources: one upstream (db) over EDS, local_app, a TCP listener
    for each, and the leaf/roots secrets."""
    return {
        SECRET: {"leaf/default/web": secret("leaf/default/web", "LEAF" + version), "roots": secret("roots")},
        CLUSTER: {"db": cluster("db"), "local_app": cluster("local_app", eds=False)},
        ENDPOINT: {"db": cla("db", db_port)},
        LISTENER: {"public_listener": tcp_listener("public_listener", 21000, "local_app"),
                   "db:127.0.0.1:9191": tcp_listener("db:127.0.0.1:9191", 9191, "db")},
        ROUTE: {},
    }


# -- requests ---------------------------------------------------------------------------------


def request(
    type_url: str, *, subscribe: tuple[str, ...] = (), unsubscribe: tuple[str, ...] = (), nonce: str = "",
    error: str = "", initial: dict[str, str] | None = None, node: str = "",
) -> discovery_pb2.DeltaDiscoveryRequest:
    req = discovery_pb2.DeltaDiscoveryRequest(
        type_url=type_url, resource_names_subscribe=subscribe, resource_names_unsubscribe=unsubscribe,
        response_nonce=nonce, initial_resource_versions=initial or {})
    if error:
        req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    if node:
        req.node.CopyFrom(base_pb2.Node(id=node, cluster="web", user_agent_name="envoy"))
        req.node.user_agent_build_version.version.major_number = 1
        req.node.user_agent_build_version.version.minor_number = 40
    return req


# -- fakes ------------------------------------------------------------------------------------


class FakeStream:
    """``recv`` takes from a queue fed by the test (``None`` = Envoy hung up); ``send`` appends."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[discovery_pb2.DeltaDiscoveryRequest | None] = asyncio.Queue()
        self.sent: list[discovery_pb2.DeltaDiscoveryResponse] = []
        self.sent_event = asyncio.Event()
        self.block_send = False

    def put(self, req: discovery_pb2.DeltaDiscoveryRequest | None) -> None:
        self.inbox.put_nowait(req)

    async def recv(self) -> discovery_pb2.DeltaDiscoveryRequest | None:
        return await self.inbox.get()

    async def send(self, response: discovery_pb2.DeltaDiscoveryResponse) -> None:
        if self.block_send:
            await asyncio.Future()  # a peer that never reads
        self.sent.append(response)
        self.sent_event.set()

    async def next_response(self, timeout: float = 2.0) -> discovery_pb2.DeltaDiscoveryResponse:
        """The first response not yet taken by this method."""
        taken = getattr(self, "_taken", 0)
        async with asyncio.timeout(timeout):
            while len(self.sent) <= taken:
                self.sent_event.clear()
                await self.sent_event.wait()
        self._taken = taken + 1
        return self.sent[taken]

    async def quiet(self, seconds: float = 0.05) -> bool:
        """True when nothing more was sent for ``seconds`` (a test of absence)."""
        before = len(self.sent)
        await asyncio.sleep(seconds)
        return len(self.sent) == before and getattr(self, "_taken", 0) == before


@dataclass(frozen=True)
class FakeSnapshot:
    version: str
    index: int
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)


def build_from_snapshot(snap: FakeSnapshot) -> dict[str, dict[str, Any]]:
    return snap.resources


class FakeSource:
    """The ProxyWatcher's get/report for one known proxy; ``publish`` is latest-value-wins."""

    def __init__(self, proxy_id: str = "web-sidecar-proxy") -> None:
        self.proxy_id = proxy_id
        self.snapshot: FakeSnapshot | None = None
        self.reports: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.gets = 0

    def publish(self, version: str, resources: dict[str, dict[str, Any]]) -> FakeSnapshot:
        index = (self.snapshot.index if self.snapshot else 0) + 1
        self.snapshot = FakeSnapshot(version, index, resources)
        self.changed.set()
        return self.snapshot

    async def get(self, proxy_id: str, *, index: int = 0, wait: float = 0.0) -> FakeSnapshot:
        self.gets += 1
        if proxy_id != self.proxy_id:
            raise NotFound(f"unknown proxy ID: {proxy_id}")
        try:
            async with asyncio.timeout(wait):
                while self.snapshot is None or self.snapshot.index <= index:
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            if self.snapshot is None:
                raise TrellisError(f"no snapshot for {proxy_id} yet") from None
        return self.snapshot

    def report(self, proxy_id: str, *, applied_version: str, connections: int = 0, pid: int = 0,
               data_plane: str = "builtin", extra: dict[str, Any] | None = None) -> None:
        if proxy_id != self.proxy_id:
            raise NotFound(f"unknown proxy ID: {proxy_id}")
        self.reports.append({"applied_version": applied_version, "data_plane": data_plane, "extra": extra or {}})

    @property
    def applied(self) -> str:
        return self.reports[-1]["applied_version"] if self.reports else ""
