"""Consul-shaped JSON for catalog values: the only place PascalCase names live.

Rules (reference/consul-http-api.md §0):
1. Empty lists that Consul patches (`Tags`, `ServiceTags`) are `[]`, maps `{}`.
2. Nested structs Consul always emits (`Proxy.MeshGateway`, `Expose`, `Connect`)
   are emitted even when empty.
3. Durations render as Go duration strings; zero durations in a check
   `Definition` are omitted.
4. `Namespace` appears only on objects outside the default namespace
   (DESIGN.md: JSON is exactly Consul CE's in the default namespace).
"""

from __future__ import annotations

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
from trellis.config.duration import format_duration


def _ns(out: dict[str, Any], namespace: str) -> dict[str, Any]:
    if namespace != DEFAULT_NAMESPACE:
        out["Namespace"] = namespace
    return out


def _put_nonzero(out: dict[str, Any], key: str, value: Any) -> None:
    if value:
        out[key] = value


def encode_node(n: Node) -> dict[str, Any]:
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


def encode_upstream(u: Upstream) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if u.destination_type:
        out["DestinationType"] = u.destination_type
    _put_nonzero(out, "DestinationNamespace", u.destination_namespace)
    _put_nonzero(out, "DestinationPartition", u.destination_partition)
    _put_nonzero(out, "DestinationPeer", u.destination_peer)
    out["DestinationName"] = u.destination_name
    out["Datacenter"] = u.datacenter
    _put_nonzero(out, "LocalBindAddress", u.local_bind_address)
    _put_nonzero(out, "LocalBindPort", u.local_bind_port)
    _put_nonzero(out, "LocalBindSocketPath", u.local_bind_socket_path)
    _put_nonzero(out, "LocalBindSocketMode", u.local_bind_socket_mode)
    _put_nonzero(out, "Config", dict(u.config))
    out["MeshGateway"] = dict(u.mesh_gateway)
    _put_nonzero(out, "CentrallyConfigured", u.centrally_configured)
    return out


def encode_proxy(p: Proxy | None) -> dict[str, Any]:
    if p is None:
        return {"Mode": "", "MeshGateway": {}, "Expose": {}}
    out: dict[str, Any] = {}
    _put_nonzero(out, "EnvoyExtensions", [dict(e) for e in p.envoy_extensions])
    _put_nonzero(out, "DestinationServiceName", p.destination_service_name)
    _put_nonzero(out, "DestinationServiceID", p.destination_service_id)
    _put_nonzero(out, "LocalServiceAddress", p.local_service_address)
    _put_nonzero(out, "LocalServicePort", p.local_service_port)
    _put_nonzero(out, "LocalServiceSocketPath", p.local_service_socket_path)
    out["Mode"] = p.mode
    _put_nonzero(out, "Config", dict(p.config))
    _put_nonzero(out, "Upstreams", [encode_upstream(u) for u in p.upstreams])
    out["MeshGateway"] = dict(p.mesh_gateway)
    out["Expose"] = dict(p.expose)
    _put_nonzero(out, "TransparentProxy", dict(p.transparent_proxy))
    _put_nonzero(out, "AccessLogs", dict(p.access_logs))
    return out


def encode_connect(c: Connect) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _put_nonzero(out, "Native", c.native)
    return out


def _tagged(s: Service) -> dict[str, Any]:
    return {k: {"Address": v.address, "Port": v.port} for k, v in s.tagged_addresses.items()}


def _weights(s: Service) -> dict[str, int]:
    return {"Passing": s.weights.passing, "Warning": s.weights.warning}


def encode_agent_service(s: Service) -> dict[str, Any]:
    """``/v1/agent/services`` and ``/v1/agent/service/:id`` (AgentService)."""
    out: dict[str, Any] = {}
    if s.kind is not ServiceKind.TYPICAL:
        out["Kind"] = s.kind.value
    out.update(ID=s.id, Service=s.name, Tags=list(s.tags), Meta=dict(s.meta), Port=s.port, Address=s.address)
    _put_nonzero(out, "SocketPath", s.socket_path)
    _put_nonzero(out, "TaggedAddresses", _tagged(s))
    out["Weights"] = _weights(s)
    out["EnableTagOverride"] = s.enable_tag_override
    if s.kind is not ServiceKind.TYPICAL:
        out["Proxy"] = encode_proxy(s.proxy)
    if s.connect.native:
        out["Connect"] = encode_connect(s.connect)
    if s.locality:
        out["Locality"] = dict(s.locality)
    _ns(out, s.namespace)
    out["Datacenter"] = s.datacenter
    return out


def encode_node_service(s: Service) -> dict[str, Any]:
    """NodeService: ``Service`` in health results and catalog node listings."""
    out: dict[str, Any] = {}
    if s.kind is not ServiceKind.TYPICAL:
        out["Kind"] = s.kind.value
    out.update(ID=s.id, Service=s.name, Tags=list(s.tags), Address=s.address)
    _put_nonzero(out, "TaggedAddresses", _tagged(s))
    out["Meta"] = dict(s.meta)
    out["Port"] = s.port
    _put_nonzero(out, "SocketPath", s.socket_path)
    out["Weights"] = _weights(s)
    out["EnableTagOverride"] = s.enable_tag_override
    out["Proxy"] = encode_proxy(s.proxy)
    out["Connect"] = encode_connect(s.connect)
    out["PeerName"] = ""
    if s.locality:
        out["Locality"] = dict(s.locality)
    _ns(out, s.namespace)
    out["CreateIndex"] = s.create_index
    out["ModifyIndex"] = s.modify_index
    return out


def encode_service_node(n: Node, s: Service) -> dict[str, Any]:
    """ServiceNode: elements of ``/v1/catalog/service/:name`` (node and service flattened)."""
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
    )
    if s.locality:
        out["ServiceLocality"] = dict(s.locality)
    _ns(out, s.namespace)
    out["CreateIndex"] = s.create_index
    out["ModifyIndex"] = s.modify_index
    return out


_DEF_FIELDS = (
    ("HTTP", "http"), ("TLSServerName", "tls_server_name"), ("TLSSkipVerify", "tls_skip_verify"),
    ("Method", "method"), ("Body", "body"), ("DisableRedirects", "disable_redirects"),
    ("TCP", "tcp"), ("TCPUseTLS", "tcp_use_tls"), ("UDP", "udp"), ("H2PING", "h2ping"),
    ("OSService", "os_service"),
    ("DockerContainerID", "docker_container_id"), ("Shell", "shell"), ("GRPC", "grpc"),
    ("GRPCUseTLS", "grpc_use_tls"), ("AliasNode", "alias_node"), ("AliasService", "alias_service"),
)
_DEF_DURATIONS = (
    ("Interval", "interval"), ("Timeout", "timeout"),
    ("DeregisterCriticalServiceAfter", "deregister_critical_service_after"), ("TTL", "ttl"),
)


def encode_check_definition(d: CheckDefinition) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, attr in _DEF_FIELDS:
        _put_nonzero(out, key, getattr(d, attr))
    if d.header:
        out["Header"] = {k: list(v) for k, v in d.header.items()}
    if d.h2ping and d.h2ping_use_tls:
        out["H2PingUseTLS"] = True
    if d.args:
        out["ScriptArgs"] = list(d.args)
    if d.output_max_size != CheckDefinition().output_max_size:
        out["OutputMaxSize"] = d.output_max_size
    for key, attr in _DEF_DURATIONS:
        seconds = getattr(d, attr)
        if seconds:
            out[key] = format_duration(seconds)
    return out


def encode_check(c: Check) -> dict[str, Any]:
    """HealthCheck as ``/v1/health/*`` and ``/v1/agent/checks`` return it."""
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
        "Definition": encode_check_definition(d),
    }
    _ns(out, c.namespace)
    out["CreateIndex"] = c.create_index
    out["ModifyIndex"] = c.modify_index
    return out


def encode_instance(i: Instance) -> dict[str, Any]:
    """CheckServiceNode: elements of ``/v1/health/service/:name``."""
    return {
        "Node": encode_node(i.node),
        "Service": encode_node_service(i.service),
        "Checks": [encode_check(c) for c in i.checks],
    }
