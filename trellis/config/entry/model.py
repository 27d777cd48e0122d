"""Config entries as typed values: the sub-objects several kinds share, and the kinds
service-defaults, proxy-defaults, service-intentions and mesh. The gateway kinds are
in model_gateway.py, the discovery-chain kinds (resolver, router, splitter) in
model_chain.py; kinds.py lists them all.

Every field names its Consul JSON key (and snake_case alias) through ``key()``;
codec.py decodes and encodes them all the same way. Values are stored with
store/doc.py (snake_case, defaults left out), so the stored form is trellis's own.

Rules:
1. ``namespace`` is real (DESIGN: namespaces): an entry's appears in JSON only
   outside ``default``. A sub-object's ``Namespace`` (a split, a linked service...)
   is kept as given: empty means the entry's own.
2. Field order is Consul's output order (``agent/structs``).
3. ``name_of`` gives an entry's name (``mesh`` has no Name field: its name is ``mesh``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from trellis.config.entry.codec import Duration, FreeMap, key

DEFAULT_NS = "default"


# -- shared sub-objects ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MeshGatewayConfig:
    mode: str = key("Mode", "")


@dataclass(frozen=True, slots=True)
class TransparentProxyConfig:
    outbound_listener_port: int = key("OutboundListenerPort", 0, alias="outbound_listener_port")
    dialed_directly: bool = key("DialedDirectly", False, alias="dialed_directly")


@dataclass(frozen=True, slots=True)
class ExposePath:
    listener_port: int = key("ListenerPort", 0, alias="listener_port")
    path: str = key("Path", "")
    local_path_port: int = key("LocalPathPort", 0, alias="local_path_port")
    protocol: str = key("Protocol", "")


@dataclass(frozen=True, slots=True)
class ExposeConfig:
    checks: bool = key("Checks", False)
    paths: tuple[ExposePath, ...] = key("Paths", ())


@dataclass(frozen=True, slots=True)
class UpstreamLimits:
    max_connections: int | None = key("MaxConnections", None, alias="max_connections")
    max_pending_requests: int | None = key("MaxPendingRequests", None, alias="max_pending_requests")
    max_concurrent_requests: int | None = key("MaxConcurrentRequests", None, alias="max_concurrent_requests")


@dataclass(frozen=True, slots=True)
class PassiveHealthCheck:
    interval: Duration = key("Interval", 0.0)
    max_failures: int = key("MaxFailures", 0, alias="max_failures")
    enforcing_consecutive_5xx: int | None = key("EnforcingConsecutive5xx", None, alias="enforcing_consecutive_5xx")
    max_ejection_percent: int | None = key("MaxEjectionPercent", None, alias="max_ejection_percent")
    base_ejection_time: Duration | None = key("BaseEjectionTime", None, alias="base_ejection_time")


@dataclass(frozen=True, slots=True)
class HTTPHeaderModifiers:
    """Headers a proxy adds, sets or removes (``RequestHeaders``/``ResponseHeaders``)."""

    add: dict[str, str] = key("Add", factory=dict)
    set: dict[str, str] = key("Set", factory=dict)
    remove: tuple[str, ...] = key("Remove", ())


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    name: str = key("Name", "")
    namespace: str = key("Namespace", "")
    peer: str = key("Peer", "", omitempty=False)
    envoy_listener_json: str = key("EnvoyListenerJSON", "", alias="envoy_listener_json")
    envoy_cluster_json: str = key("EnvoyClusterJSON", "", alias="envoy_cluster_json")
    protocol: str = key("Protocol", "")
    connect_timeout_ms: int = key("ConnectTimeoutMs", 0, alias="connect_timeout_ms")
    limits: UpstreamLimits | None = key("Limits", None)
    passive_health_check: PassiveHealthCheck | None = key("PassiveHealthCheck", None, alias="passive_health_check")
    mesh_gateway: MeshGatewayConfig = key("MeshGateway", factory=MeshGatewayConfig, alias="mesh_gateway")
    balance_outbound_connections: str = key("BalanceOutboundConnections", "", alias="balance_outbound_connections")


@dataclass(frozen=True, slots=True)
class UpstreamConfiguration:
    overrides: tuple[UpstreamConfig, ...] = key("Overrides", ())
    defaults: UpstreamConfig | None = key("Defaults", None)


@dataclass(frozen=True, slots=True)
class DestinationConfig:
    addresses: tuple[str, ...] = key("Addresses", ())
    port: int = key("Port", 0)


@dataclass(frozen=True, slots=True)
class EnvoyExtension:
    name: str = key("Name", "", omitempty=False)
    required: bool = key("Required", False, omitempty=False)
    arguments: FreeMap | None = key("Arguments", None, omitempty=False)
    consul_version: str = key("ConsulVersion", "", alias="consul_version", omitempty=False)
    envoy_version: str = key("EnvoyVersion", "", alias="envoy_version", omitempty=False)


@dataclass(frozen=True, slots=True)
class AccessLogsConfig:
    enabled: bool = key("Enabled", False)
    disable_listener_logs: bool = key("DisableListenerLogs", False, alias="disable_listener_logs")
    type: str = key("Type", "")
    path: str = key("Path", "")
    json_format: str = key("JSONFormat", "", alias="json_format")
    text_format: str = key("TextFormat", "", alias="text_format")


# -- service-defaults ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ServiceDefaults:
    KIND: ClassVar[str] = "service-defaults"
    name: str = key("Name", "", omitempty=False)
    namespace: str = key("Namespace", DEFAULT_NS, omit_value=DEFAULT_NS)
    protocol: str = key("Protocol", "", omitempty=False)
    mode: str = key("Mode", "")
    transparent_proxy: TransparentProxyConfig = key("TransparentProxy", factory=TransparentProxyConfig,
                                                    alias="transparent_proxy")
    mutual_tls_mode: str = key("MutualTLSMode", "", alias="mutual_tls_mode")
    mesh_gateway: MeshGatewayConfig = key("MeshGateway", factory=MeshGatewayConfig, alias="mesh_gateway")
    expose: ExposeConfig = key("Expose", factory=ExposeConfig)
    external_sni: str = key("ExternalSNI", "", alias="external_sni")
    upstream_config: UpstreamConfiguration | None = key("UpstreamConfig", None, alias="upstream_config")
    destination: DestinationConfig | None = key("Destination", None)
    max_inbound_connections: int = key("MaxInboundConnections", 0, alias="max_inbound_connections")
    local_connect_timeout_ms: int = key("LocalConnectTimeoutMs", 0, alias="local_connect_timeout_ms")
    local_request_timeout_ms: int = key("LocalRequestTimeoutMs", 0, alias="local_request_timeout_ms")
    balance_inbound_connections: str = key("BalanceInboundConnections", "", alias="balance_inbound_connections")
    envoy_extensions: tuple[EnvoyExtension, ...] = key("EnvoyExtensions", (), alias="envoy_extensions")
    meta: dict[str, str] = key("Meta", factory=dict)


# -- proxy-defaults ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProxyDefaults:
    KIND: ClassVar[str] = "proxy-defaults"
    name: str = key("Name", "global", omitempty=False)
    namespace: str = key("Namespace", DEFAULT_NS, omit_value=DEFAULT_NS)
    config: FreeMap | None = key("Config", None, omitempty=False)
    mode: str = key("Mode", "")
    transparent_proxy: TransparentProxyConfig = key("TransparentProxy", factory=TransparentProxyConfig,
                                                    alias="transparent_proxy")
    mutual_tls_mode: str = key("MutualTLSMode", "", alias="mutual_tls_mode")
    mesh_gateway: MeshGatewayConfig = key("MeshGateway", factory=MeshGatewayConfig, alias="mesh_gateway")
    expose: ExposeConfig = key("Expose", factory=ExposeConfig)
    access_logs: AccessLogsConfig = key("AccessLogs", factory=AccessLogsConfig, alias="access_logs")
    envoy_extensions: tuple[EnvoyExtension, ...] = key("EnvoyExtensions", (), alias="envoy_extensions")
    meta: dict[str, str] = key("Meta", factory=dict)


# -- service-intentions --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class IntentionHTTPHeaderPermission:
    name: str = key("Name", "", omitempty=False)
    present: bool = key("Present", False)
    exact: str = key("Exact", "")
    prefix: str = key("Prefix", "")
    suffix: str = key("Suffix", "")
    contains: str = key("Contains", "")
    regex: str = key("Regex", "")
    invert: bool = key("Invert", False)
    ignore_case: bool = key("IgnoreCase", False, alias="ignore_case")


@dataclass(frozen=True, slots=True)
class IntentionHTTPPermission:
    path_exact: str = key("PathExact", "", alias="path_exact")
    path_prefix: str = key("PathPrefix", "", alias="path_prefix")
    path_regex: str = key("PathRegex", "", alias="path_regex")
    header: tuple[IntentionHTTPHeaderPermission, ...] = key("Header", ())
    methods: tuple[str, ...] = key("Methods", ())


@dataclass(frozen=True, slots=True)
class IntentionPermission:
    action: str = key("Action", "", omitempty=False)
    http: IntentionHTTPPermission | None = key("HTTP", None)


@dataclass(frozen=True, slots=True)
class SourceIntention:
    name: str = key("Name", "", omitempty=False)
    namespace: str = key("Namespace", "", omit_value=DEFAULT_NS)
    action: str = key("Action", "")
    permissions: tuple[IntentionPermission, ...] = key("Permissions", ())
    precedence: int = key("Precedence", 0, omitempty=False)
    legacy_id: str = key("LegacyID", "", alias="legacy_id")
    type: str = key("Type", "consul", omitempty=False)
    description: str = key("Description", "")
    legacy_meta: dict[str, str] = key("LegacyMeta", factory=dict, alias="legacy_meta")
    legacy_create_time: str = key("LegacyCreateTime", "", alias="legacy_create_time")
    legacy_update_time: str = key("LegacyUpdateTime", "", alias="legacy_update_time")
    peer: str = key("Peer", "")
    sameness_group: str = key("SamenessGroup", "", alias="sameness_group")


@dataclass(frozen=True, slots=True)
class ServiceIntentions:
    KIND: ClassVar[str] = "service-intentions"
    name: str = key("Name", "", omitempty=False)
    namespace: str = key("Namespace", DEFAULT_NS, omit_value=DEFAULT_NS)
    sources: tuple[SourceIntention, ...] = key("Sources", (), omitempty=False)
    meta: dict[str, str] = key("Meta", factory=dict)


# -- mesh ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TransparentProxyMeshConfig:
    mesh_destinations_only: bool = key("MeshDestinationsOnly", False, alias="mesh_destinations_only",
                                       omitempty=False)


@dataclass(frozen=True, slots=True)
class MeshDirectionalTLSConfig:
    tls_min_version: str = key("TLSMinVersion", "", alias="tls_min_version")
    tls_max_version: str = key("TLSMaxVersion", "", alias="tls_max_version")
    cipher_suites: tuple[str, ...] = key("CipherSuites", (), alias="cipher_suites")


@dataclass(frozen=True, slots=True)
class MeshTLSConfig:
    incoming: MeshDirectionalTLSConfig | None = key("Incoming", None)
    outgoing: MeshDirectionalTLSConfig | None = key("Outgoing", None)


@dataclass(frozen=True, slots=True)
class RequestNormalizationMeshConfig:
    insecure_disable_path_normalization: bool = key("InsecureDisablePathNormalization", False,
                                                    alias="insecure_disable_path_normalization", omitempty=False)
    merge_slashes: bool = key("MergeSlashes", False, alias="merge_slashes", omitempty=False)
    path_with_escaped_slashes_action: str = key("PathWithEscapedSlashesAction", "",
                                                alias="path_with_escaped_slashes_action", omitempty=False)
    headers_with_underscores_action: str = key("HeadersWithUnderscoresAction", "",
                                               alias="headers_with_underscores_action", omitempty=False)


@dataclass(frozen=True, slots=True)
class MeshDirectionalHTTPConfig:
    request_normalization: RequestNormalizationMeshConfig | None = key("RequestNormalization", None,
                                                                       alias="request_normalization")


@dataclass(frozen=True, slots=True)
class MeshHTTPConfig:
    sanitize_x_forwarded_client_cert: bool = key("SanitizeXForwardedClientCert", False,
                                                 alias="sanitize_x_forwarded_client_cert", omitempty=False)
    incoming: MeshDirectionalHTTPConfig | None = key("Incoming", None)


@dataclass(frozen=True, slots=True)
class PeeringMeshConfig:
    peer_through_mesh_gateways: bool = key("PeerThroughMeshGateways", False, alias="peer_through_mesh_gateways",
                                           omitempty=False)


@dataclass(frozen=True, slots=True)
class Mesh:
    KIND: ClassVar[str] = "mesh"
    namespace: str = key("Namespace", DEFAULT_NS, omit_value=DEFAULT_NS)
    transparent_proxy: TransparentProxyMeshConfig = key("TransparentProxy", factory=TransparentProxyMeshConfig,
                                                        alias="transparent_proxy")
    allow_enabling_permissive_mutual_tls: bool = key("AllowEnablingPermissiveMutualTLS", False,
                                                     alias="allow_enabling_permissive_mutual_tls")
    validate_clusters: bool = key("ValidateClusters", False, alias="validate_clusters")
    tls: MeshTLSConfig | None = key("TLS", None)
    http: MeshHTTPConfig | None = key("HTTP", None)
    peering: PeeringMeshConfig | None = key("Peering", None)
    meta: dict[str, str] = key("Meta", factory=dict)


MESH_NAME = "mesh"


def name_of(entry: Any) -> str:
    return MESH_NAME if isinstance(entry, Mesh) else entry.name
