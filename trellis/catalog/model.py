"""Catalog value types: nodes, services, checks (pure data, snake_case inside).

Rules:
1. Values are frozen. A change is a new value written through the store.
2. ``create_index``/``modify_index`` are not part of a stored document; the view
   fills them from the backend's create and mod revisions.
3. Durations are float seconds here; ``api/codec.py`` renders Go duration strings.
4. Fields whose name starts with ``agent_`` are agent bookkeeping and are never
   rendered in Consul JSON.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

DEFAULT_NAMESPACE = "default"


class ServiceKind(enum.StrEnum):
    TYPICAL = ""
    CONNECT_PROXY = "connect-proxy"
    MESH_GATEWAY = "mesh-gateway"
    TERMINATING_GATEWAY = "terminating-gateway"
    INGRESS_GATEWAY = "ingress-gateway"
    API_GATEWAY = "api-gateway"

    @property
    def is_gateway(self) -> bool:
        return self.value.endswith("-gateway")


class CheckStatus(enum.StrEnum):
    PASSING = "passing"
    WARNING = "warning"
    CRITICAL = "critical"


class CheckType(enum.StrEnum):
    NONE = ""  # node health (serfHealth) and checks registered without a runner
    HTTP = "http"
    TCP = "tcp"
    UDP = "udp"
    TTL = "ttl"
    GRPC = "grpc"
    ALIAS = "alias"
    SCRIPT = "script"
    DOCKER = "docker"
    H2PING = "h2ping"
    OS_SERVICE = "os_service"
    MAINTENANCE = "maintenance"


@dataclass(frozen=True, slots=True)
class Weights:
    passing: int = 1
    warning: int = 1


@dataclass(frozen=True, slots=True)
class ServiceAddress:
    address: str
    port: int = 0


@dataclass(frozen=True, slots=True)
class Upstream:
    destination_name: str
    destination_type: str = "service"
    destination_namespace: str = ""
    destination_partition: str = ""
    destination_peer: str = ""
    datacenter: str = ""
    local_bind_address: str = ""
    local_bind_port: int = 0
    local_bind_socket_path: str = ""
    local_bind_socket_mode: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    mesh_gateway: dict[str, Any] = field(default_factory=dict)
    centrally_configured: bool = False


@dataclass(frozen=True, slots=True)
class Proxy:
    destination_service_name: str = ""
    destination_service_id: str = ""
    local_service_address: str = ""
    local_service_port: int = 0
    local_service_socket_path: str = ""
    mode: str = ""
    transparent_proxy: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    upstreams: tuple[Upstream, ...] = ()
    mesh_gateway: dict[str, Any] = field(default_factory=dict)
    expose: dict[str, Any] = field(default_factory=dict)
    access_logs: dict[str, Any] = field(default_factory=dict)
    envoy_extensions: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Connect:
    native: bool = False
    # The seed's `connect { gateway { proxy {...} } }` was given: its proxy object is in
    # the service's proxy.config, and a kind-less service takes its kind from a gateway
    # config entry of its name (catalog/gateway.py).
    gateway: bool = False


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    address: str
    id: str = ""
    datacenter: str = "dc1"
    tagged_addresses: dict[str, str] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    create_index: int = 0
    modify_index: int = 0


@dataclass(frozen=True, slots=True)
class Service:
    node: str
    id: str
    name: str
    kind: ServiceKind = ServiceKind.TYPICAL
    namespace: str = DEFAULT_NAMESPACE
    tags: tuple[str, ...] = ()
    address: str = ""
    tagged_addresses: dict[str, ServiceAddress] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    port: int = 0
    socket_path: str = ""
    weights: Weights = Weights()
    enable_tag_override: bool = False
    proxy: Proxy | None = None
    connect: Connect = Connect()
    locality: dict[str, str] | None = None
    datacenter: str = "dc1"
    # agent bookkeeping, never rendered
    agent_sidecar_of: str = ""  # set on a sidecar the agent created for that service ID
    agent_token: str = ""
    agent_source: str = ""  # "config" when defined in an agent config file
    create_index: int = 0
    modify_index: int = 0

    @property
    def is_mesh_capable(self) -> bool:
        return self.kind is ServiceKind.CONNECT_PROXY or self.connect.native


@dataclass(frozen=True, slots=True)
class CheckDefinition:
    """How the agent runs a check; also rendered as Consul's ``Definition``."""

    http: str = ""
    header: dict[str, tuple[str, ...]] = field(default_factory=dict)
    method: str = ""
    body: str = ""
    disable_redirects: bool = False
    tls_server_name: str = ""
    tls_skip_verify: bool = False
    tcp: str = ""
    tcp_use_tls: bool = False
    udp: str = ""
    grpc: str = ""
    grpc_use_tls: bool = False
    h2ping: str = ""
    h2ping_use_tls: bool = True
    os_service: str = ""
    args: tuple[str, ...] = ()
    shell: str = ""
    docker_container_id: str = ""
    alias_node: str = ""
    alias_service: str = ""
    interval: float = 0.0
    timeout: float = 0.0
    ttl: float = 0.0
    deregister_critical_service_after: float = 0.0
    success_before_passing: int = 0
    failures_before_warning: int = 0
    failures_before_critical: int = 0
    output_max_size: int = 4096


@dataclass(frozen=True, slots=True)
class Check:
    node: str
    check_id: str
    name: str
    status: CheckStatus = CheckStatus.CRITICAL
    notes: str = ""
    output: str = ""
    service_id: str = ""
    service_name: str = ""
    service_tags: tuple[str, ...] = ()
    type: CheckType = CheckType.NONE
    namespace: str = DEFAULT_NAMESPACE
    definition: CheckDefinition = CheckDefinition()
    exposed_port: int = 0
    agent_token: str = ""
    agent_source: str = ""
    create_index: int = 0
    modify_index: int = 0


SERF_CHECK_ID = "serfHealth"
SERF_CHECK_NAME = "Serf Health Status"
SERF_CHECK_OUTPUT = "Agent alive and reachable"
