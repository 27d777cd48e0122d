"""Consul-shaped JSON for catalog values: the only place PascalCase names live.

Every encoder mirrors one Go struct and its JSON tags (hashicorp/consul
``agent/structs/structs.go``, ``agent/structs/connect_proxy_config.go``,
``api/agent.go``); ``tests/unit/api/test_golden_shapes.py`` holds the table of
keys each one promises.

Rules (reference/consul-http-api.md §0):
1. A Go field without ``omitempty`` is always emitted; with ``omitempty`` it is
   dropped when zero ("", 0, false, nil, empty slice or map). A nested struct
   (``MeshGateway``, ``Expose``, ``Weights``) is never dropped; a nil pointer
   without ``omitempty`` is ``null`` (``ServiceLocality``).
2. Empty lists that Consul patches (``Tags``, ``ServiceTags``) are ``[]``, maps ``{}``.
3. Catalog and health endpoints render ``structs`` types; ``/v1/agent/services``
   and ``/v1/agent/service/:id`` render the ``api`` copies (``buildAgentService``),
   whose proxy and upstream fields are all ``omitempty`` except the nested structs.
4. Check durations: top-level ``Interval``/``Timeout`` and ``Definition``'s
   ``Interval``/``Timeout``/``DeregisterCriticalServiceAfter`` are Go duration
   strings (``HealthCheckDefinition.MarshalJSON``); ``Definition.TTL`` is not in
   that override and stays an integer of nanoseconds.
5. Nested objects stored raw with snake_case keys (catalog/definition.py rule 5:
   mesh gateway, expose, transparent proxy, access logs, Envoy extensions,
   locality) are renamed here, field by field.
6. ``Namespace`` appears only on objects outside the default namespace
   (DESIGN.md: JSON is exactly Consul CE's in the default namespace). Fields
   named ``agent_*`` are agent bookkeeping and are never read here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from trellis.catalog.model import (
    DEFAULT_NAMESPACE,
    Check,
    CheckDefinition,
    Connect,
    Node,
    Proxy,
    Service,
    ServiceKind,
    Upstream,
)
from trellis.catalog.query import Instance

CATALOG_SOURCE = "catalog"  # agent_source of entries written through the catalog, not the agent
from trellis.config.duration import format_duration, seconds_to_ns

Fields = Iterable[tuple[str, str]]  # (JSON key, attribute or stored snake_case key)


def _ns(out: dict[str, Any], namespace: str) -> dict[str, Any]:
    if namespace != DEFAULT_NAMESPACE:
        out["Namespace"] = namespace
    return out


def _put_nonzero(out: dict[str, Any], key: str, value: Any) -> None:
    """Go's ``omitempty``: keep ``value`` unless it is a zero value."""
    if value:
        out[key] = value


def _omitempty_attrs(obj: Any, fields: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, attr in fields:
        _put_nonzero(out, key, getattr(obj, attr))
    return out


def _omitempty_keys(raw: Mapping[str, Any], fields: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, name in fields:
        _put_nonzero(out, key, raw.get(name))
    return out


# --------------------------------------------------------------------------- small structs

_LOCALITY = (("Region", "region"), ("Zone", "zone"))
_MESH_GATEWAY = (("Mode", "mode"),)
_TRANSPARENT_PROXY = (("OutboundListenerPort", "outbound_listener_port"), ("DialedDirectly", "dialed_directly"))
_ACCESS_LOGS = (
    ("Enabled", "enabled"), ("DisableListenerLogs", "disable_listener_logs"), ("Type", "type"),
    ("Path", "path"), ("JSONFormat", "json_format"), ("TextFormat", "text_format"),
)
_EXPOSE_PATH = (
    ("ListenerPort", "listener_port"), ("Path", "path"), ("LocalPathPort", "local_path_port"),
    ("Protocol", "protocol"), ("ParsedFromCheck", "parsed_from_check"),
)


def encode_locality(raw: Mapping[str, str] | None) -> dict[str, str] | None:
    """``*Locality``: ``None`` stays nil (``null``); Region and Zone are omitempty."""
    return None if raw is None else _omitempty_keys(raw, _LOCALITY)


def encode_mesh_gateway(raw: Mapping[str, Any]) -> dict[str, Any]:
    """MeshGatewayConfig: ``{}`` or ``{"Mode": ...}``; callers always emit it."""
    return _omitempty_keys(raw, _MESH_GATEWAY)


def encode_expose(raw: Mapping[str, Any]) -> dict[str, Any]:
    """ExposeConfig: Checks and Paths are omitempty; callers always emit it."""
    out: dict[str, Any] = {}
    _put_nonzero(out, "Checks", raw.get("checks", False))
    _put_nonzero(out, "Paths", [_omitempty_keys(p, _EXPOSE_PATH) for p in raw.get("paths", ())])
    return out


def encode_envoy_extension(raw: Mapping[str, Any]) -> dict[str, Any]:
    """EnvoyExtension has no JSON tags: every field is emitted (nil Arguments → null)."""
    args = raw.get("arguments")
    return {
        "Name": raw.get("name", ""),
        "Required": raw.get("required", False),
        "Arguments": dict(args) if args is not None else None,
        "ConsulVersion": raw.get("consul_version", ""),
        "EnvoyVersion": raw.get("envoy_version", ""),
    }


def encode_node(n: Node) -> dict[str, Any]:
    """Node: Partition, PeerName and Locality are omitempty and never set here."""
    return {
        "ID": n.id,
        "Node": n.name,
        "Address": n.address,
        "Datacenter": n.datacenter,
        "TaggedAddresses": dict(n.tagged_addresses),
        "Meta": dict(n.meta),
        "CreateIndex": n.create_index,
        "ModifyIndex": n.modify_index,
    }


# --------------------------------------------------------------------------- proxies

_UPSTREAM_OPTIONAL = (
    ("DestinationNamespace", "destination_namespace"), ("DestinationPartition", "destination_partition"),
    ("DestinationPeer", "destination_peer"), ("LocalBindAddress", "local_bind_address"),
    ("LocalBindPort", "local_bind_port"), ("LocalBindSocketPath", "local_bind_socket_path"),
    ("LocalBindSocketMode", "local_bind_socket_mode"),
)


def _upstream_rest(u: Upstream) -> dict[str, Any]:
    out = _omitempty_attrs(u, _UPSTREAM_OPTIONAL)
    _put_nonzero(out, "Config", dict(u.config))
    out["MeshGateway"] = encode_mesh_gateway(u.mesh_gateway)
    _put_nonzero(out, "CentrallyConfigured", u.centrally_configured)
    return out


def encode_upstream(u: Upstream) -> dict[str, Any]:
    """structs.Upstream: DestinationType, DestinationName, Datacenter have no omitempty."""
    out = {"DestinationType": u.destination_type, "DestinationName": u.destination_name, "Datacenter": u.datacenter}
    return out | _upstream_rest(u)


def encode_agent_upstream(u: Upstream) -> dict[str, Any]:
    """api.Upstream: only DestinationName (and the MeshGateway struct) lack omitempty."""
    out: dict[str, Any] = {"DestinationName": u.destination_name}
    _put_nonzero(out, "DestinationType", u.destination_type)
    _put_nonzero(out, "Datacenter", u.datacenter)
    return out | _upstream_rest(u)


_PROXY_OPTIONAL = (
    ("DestinationServiceName", "destination_service_name"), ("DestinationServiceID", "destination_service_id"),
    ("LocalServiceAddress", "local_service_address"), ("LocalServicePort", "local_service_port"),
    ("LocalServiceSocketPath", "local_service_socket_path"),
)


def _proxy_rest(p: Proxy, upstream: Callable[[Upstream], dict[str, Any]]) -> dict[str, Any]:
    """The fields both proxy shapes drop when zero (TransparentProxy and AccessLogs
    are dropped when zero by ConnectProxyConfig.MarshalJSON and by ToAPI's nil pointers)."""
    out: dict[str, Any] = {}
    _put_nonzero(out, "EnvoyExtensions", [encode_envoy_extension(e) for e in p.envoy_extensions])
    out |= _omitempty_attrs(p, _PROXY_OPTIONAL)
    _put_nonzero(out, "TransparentProxy", _omitempty_keys(p.transparent_proxy, _TRANSPARENT_PROXY))
    _put_nonzero(out, "Config", dict(p.config))
    _put_nonzero(out, "Upstreams", [upstream(u) for u in p.upstreams])
    _put_nonzero(out, "AccessLogs", _omitempty_keys(p.access_logs, _ACCESS_LOGS))
    return out


def encode_proxy(p: Proxy | None) -> dict[str, Any]:
    """structs.ConnectProxyConfig: Mode, MeshGateway and Expose are always present,
    so a typical service shows ``{"Mode": "", "MeshGateway": {}, "Expose": {}}``."""
    p = p or Proxy()
    out = _proxy_rest(p, encode_upstream)
    out.update(Mode=p.mode, MeshGateway=encode_mesh_gateway(p.mesh_gateway), Expose=encode_expose(p.expose))
    return out


def encode_agent_proxy(p: Proxy | None) -> dict[str, Any]:
    """api.AgentServiceConnectProxyConfig: Mode is omitempty; MeshGateway and Expose are structs."""
    p = p or Proxy()
    out = _proxy_rest(p, encode_agent_upstream)
    _put_nonzero(out, "Mode", p.mode)
    out.update(MeshGateway=encode_mesh_gateway(p.mesh_gateway), Expose=encode_expose(p.expose))
    return out


def encode_connect(c: Connect) -> dict[str, Any]:
    """ServiceConnect: Native omitempty; SidecarService is consumed at registration."""
    out: dict[str, Any] = {}
    _put_nonzero(out, "Native", c.native)
    return out


# --------------------------------------------------------------------------- services


def _tagged(s: Service) -> dict[str, Any]:
    return {k: {"Address": v.address, "Port": v.port} for k, v in s.tagged_addresses.items()}


def _weights(s: Service) -> dict[str, int]:
    return {"Passing": s.weights.passing, "Warning": s.weights.warning}


def _kind(out: dict[str, Any], s: Service) -> None:
    if s.kind is not ServiceKind.TYPICAL:
        out["Kind"] = s.kind.value


def encode_agent_service(s: Service) -> dict[str, Any]:
    """api.AgentService as ``/v1/agent/services`` and ``/v1/agent/service/:id`` build it
    (agent_endpoint.go ``buildAgentService``): Proxy only for proxies and gateways,
    Connect only when native; Create/ModifyIndex are omitempty and zero for local state."""
    out: dict[str, Any] = {}
    _kind(out, s)
    out.update(ID=s.id, Service=s.name, Tags=list(s.tags), Meta=dict(s.meta), Port=s.port, Address=s.address)
    _put_nonzero(out, "SocketPath", s.socket_path)
    _put_nonzero(out, "TaggedAddresses", _tagged(s))
    out.update(Weights=_weights(s), EnableTagOverride=s.enable_tag_override)
    if s.kind is not ServiceKind.TYPICAL:
        out["Proxy"] = encode_agent_proxy(s.proxy)
    if s.connect.native:
        out["Connect"] = encode_connect(s.connect)
    _ns(out, s.namespace)
    out["Datacenter"] = s.datacenter
    if s.locality is not None:
        out["Locality"] = encode_locality(s.locality)
    return out


def encode_node_service(s: Service) -> dict[str, Any]:
    """structs.NodeService: ``Service`` in health results and catalog node listings.
    Port, SocketPath, TaggedAddresses, Kind and Locality are omitempty; PeerName is not."""
    out: dict[str, Any] = {}
    _kind(out, s)
    out.update(ID=s.id, Service=s.name, Tags=list(s.tags), Address=s.address)
    _put_nonzero(out, "TaggedAddresses", _tagged(s))
    out["Meta"] = dict(s.meta)
    _put_nonzero(out, "Port", s.port)
    _put_nonzero(out, "SocketPath", s.socket_path)
    out.update(Weights=_weights(s), EnableTagOverride=s.enable_tag_override)
    if s.locality is not None:
        out["Locality"] = encode_locality(s.locality)
    out.update(Proxy=encode_proxy(s.proxy), Connect=encode_connect(s.connect), PeerName="")
    _ns(out, s.namespace)
    out.update(CreateIndex=s.create_index, ModifyIndex=s.modify_index)
    return out


def encode_service_node(n: Node, s: Service) -> dict[str, Any]:
    """structs.ServiceNode: elements of ``/v1/catalog/service/:name`` (node and service
    flattened). Only ServiceTaggedAddresses and PeerName are omitempty;
    ServiceLocality is a pointer without omitempty, so ``null`` when unset."""
    out: dict[str, Any] = {
        "ID": n.id,
        "Node": n.name,
        "Address": n.address,
        "Datacenter": n.datacenter,
        "TaggedAddresses": dict(n.tagged_addresses),
        "NodeMeta": dict(n.meta),
        "ServiceKind": s.kind.value,
        "ServiceID": s.id,
        "ServiceName": s.name,
        "ServiceTags": list(s.tags),
        "ServiceAddress": s.address,
    }
    _put_nonzero(out, "ServiceTaggedAddresses", _tagged(s))
    out.update(
        ServiceWeights=_weights(s),
        ServiceMeta=dict(s.meta),
        ServicePort=s.port,
        ServiceSocketPath=s.socket_path,
        ServiceEnableTagOverride=s.enable_tag_override,
        ServiceProxy=encode_proxy(s.proxy),
        ServiceConnect=encode_connect(s.connect),
        ServiceLocality=encode_locality(s.locality),
    )
    _ns(out, s.namespace)
    out.update(CreateIndex=s.create_index, ModifyIndex=s.modify_index)
    return out


# --------------------------------------------------------------------------- checks

_DEF_FIELDS = (
    ("HTTP", "http"), ("TLSServerName", "tls_server_name"), ("TLSSkipVerify", "tls_skip_verify"),
    ("Method", "method"), ("Body", "body"), ("DisableRedirects", "disable_redirects"),
    ("TCP", "tcp"), ("TCPUseTLS", "tcp_use_tls"), ("UDP", "udp"), ("H2PING", "h2ping"),
    ("OSService", "os_service"),
    ("DockerContainerID", "docker_container_id"), ("Shell", "shell"), ("GRPC", "grpc"),
    ("GRPCUseTLS", "grpc_use_tls"), ("AliasNode", "alias_node"), ("AliasService", "alias_service"),
)
_DEF_DURATION_TEXT = (
    ("Interval", "interval"), ("Timeout", "timeout"),
    ("DeregisterCriticalServiceAfter", "deregister_critical_service_after"),
)


def encode_check_definition(d: CheckDefinition) -> dict[str, Any]:
    """HealthCheckDefinition: every field omitempty. MarshalJSON turns Interval, Timeout
    and DeregisterCriticalServiceAfter into duration text; TTL keeps Go's int64 ns.

    NOTE: Consul fills ``Definition`` only for checks written through
    ``/v1/catalog/register`` (or a txn); agent-registered checks show ``{}``
    (agent/agent.go never sets it). trellis renders the definition the agent runs,
    because ``Check`` does not record which path wrote it.
    """
    out = _omitempty_attrs(d, _DEF_FIELDS)
    if d.header:
        out["Header"] = {k: list(v) for k, v in d.header.items()}
    if d.h2ping and d.h2ping_use_tls:
        out["H2PingUseTLS"] = True
    if d.args:
        out["ScriptArgs"] = list(d.args)
    if d.output_max_size != CheckDefinition().output_max_size:
        out["OutputMaxSize"] = d.output_max_size
    for key, attr in _DEF_DURATION_TEXT:
        seconds = getattr(d, attr)
        if seconds:
            out[key] = format_duration(seconds)
    _put_nonzero(out, "TTL", seconds_to_ns(d.ttl))
    return out


def encode_check(c: Check) -> dict[str, Any]:
    """structs.HealthCheck as ``/v1/health/*`` and ``/v1/agent/checks`` return it.
    Interval and Timeout are ``""`` when zero (agent.go only formats non-zero values)."""
    d = c.definition
    out: dict[str, Any] = {
        "Node": c.node,
        "CheckID": c.check_id,
        "Name": c.name,
        "Status": c.status.value,
        "Notes": c.notes,
        "Output": c.output,
        "ServiceID": c.service_id,
        "ServiceName": c.service_name,
        "ServiceTags": list(c.service_tags),
        "Type": c.type.value,
        "Interval": format_duration(d.interval) if d.interval else "",
        "Timeout": format_duration(d.timeout) if d.timeout else "",
        "ExposedPort": c.exposed_port,
        # Consul fills Definition only for checks written through /v1/catalog/register;
        # the agent's own checks show {} (agent.go never sets it).
        "Definition": encode_check_definition(d) if c.agent_source == CATALOG_SOURCE else {},
    }
    _ns(out, c.namespace)
    out.update(CreateIndex=c.create_index, ModifyIndex=c.modify_index)
    return out


def encode_instance(i: Instance) -> dict[str, Any]:
    """CheckServiceNode: elements of ``/v1/health/service/:name``."""
    return {
        "Node": encode_node(i.node),
        "Service": encode_node_service(i.service),
        "Checks": [encode_check(c) for c in i.checks],
    }


def format_time(ts: float) -> str:
    """Go's ``time.Time`` JSON for a UTC instant (fractional seconds only when present)."""
    when = dt.datetime.fromtimestamp(ts, dt.timezone.utc)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += f".{when.microsecond:06d}".rstrip("0")
    return text + "Z"
