"""The bootstrap `trellis connect envoy` hands Envoy (pure): who it is, where its admin
listens, and how to reach the agent's xDS server; everything else comes over ADS.

Rules (reference/envoy-xds.md §6, DESIGN):
1. node.id = the proxy's service ID, node.cluster = its service (a sidecar's destination,
   a gateway's own name), metadata namespace and partition.
2. One static cluster, ``local_agent``: the agent's gRPC address, HTTP/2 (without it
   Envoy never leaves PRE_INITIALIZING), 1 s connect timeout.
3. ADS is ``DELTA_GRPC``, V3; LDS and CDS come over ADS with no initial fetch timeout;
   the token travels as ``x-consul-token`` metadata.
4. ``envoy_prometheus_bind_addr`` adds a static listener serving Envoy's Prometheus stats
   at ``/metrics`` through a ``self_admin`` cluster pointing at the admin listener.
5. RE2 programs may be large (RBAC regexes over many intentions): the runtime layer
   raises the limit, as Consul's template does.
6. ``ready_port`` adds a static listener answering ``/ready`` through ``self_admin``:
   an ingress gateway binds it on its registered address, so the gateway's TCP check
   passes before any listener arrives over xDS (Consul's ``envoy_ready_listener``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LOCAL_AGENT = "local_agent"
SELF_ADMIN = "self_admin"
PROMETHEUS_LISTENER = "envoy_prometheus_metrics_listener"
READY_LISTENER = "envoy_ready_listener"


@dataclass(frozen=True, slots=True)
class BootstrapArgs:
    proxy_id: str
    service: str
    namespace: str
    admin_host: str
    admin_port: int
    agent_host: str
    agent_port: int
    token: str = ""
    node_name: str = ""
    prometheus_host: str = ""
    prometheus_port: int = 0
    prometheus_path: str = "/metrics"
    ready_host: str = ""
    ready_port: int = 0


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def build_bootstrap(a: BootstrapArgs) -> dict[str, Any]:
    """The bootstrap as JSON-ready data (Envoy reads JSON as YAML). Pure."""
    metadata = {"namespace": a.namespace, "partition": "default"}
    if a.node_name:
        metadata["node_name"] = a.node_name
    boot: dict[str, Any] = {
        "admin": {"address": _address(a.admin_host, a.admin_port)},
        "node": {"id": a.proxy_id, "cluster": a.service, "metadata": metadata},
        "layered_runtime": {"layers": [{"name": "base", "static_layer": {
            "re2.max_program_size.error_level": 1048576}}]},
        "static_resources": {"clusters": [_agent_cluster(a)], "listeners": []},
        "dynamic_resources": {
            "lds_config": {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"},
            "cds_config": {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"},
            "ads_config": {
                "api_type": "DELTA_GRPC", "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": LOCAL_AGENT},
                                   "initial_metadata": [{"key": "x-consul-token", "value": a.token}]}],
            },
        },
    }
    if a.prometheus_port or a.ready_port:
        boot["static_resources"]["clusters"].append({
            "name": SELF_ADMIN, "type": "STATIC", "connect_timeout": "5s",
            "load_assignment": {"cluster_name": SELF_ADMIN, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": _address(a.admin_host, a.admin_port)}}]}]},
        })
    if a.prometheus_port:
        boot["static_resources"]["listeners"].append(_admin_listener(
            PROMETHEUS_LISTENER, "envoy_prometheus_metrics", a.prometheus_host, a.prometheus_port,
            a.prometheus_path, "/stats/prometheus"))
    if a.ready_port:
        boot["static_resources"]["listeners"].append(_admin_listener(
            READY_LISTENER, "envoy_ready", a.ready_host, a.ready_port, "/ready", "/ready"))
    return boot


def _agent_cluster(a: BootstrapArgs) -> dict[str, Any]:
    return {
        "name": LOCAL_AGENT, "type": "STATIC", "connect_timeout": "1s",
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}},
        "load_assignment": {"cluster_name": LOCAL_AGENT, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": _address(a.agent_host, a.agent_port)}}]}]},
    }


def _admin_listener(name: str, stat_prefix: str, host: str, port: int, path: str, rewrite: str) -> dict[str, Any]:
    """A static listener exposing one admin path (rewritten) and 404 for anything else."""
    routes = [
        {"match": {"path": path}, "route": {"cluster": SELF_ADMIN, "prefix_rewrite": rewrite}},
        {"match": {"prefix": "/"}, "direct_response": {"status": 404}},
    ]
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix, "codec_type": "HTTP1",
        "route_config": {"name": "self_admin_route", "virtual_hosts": [
            {"name": SELF_ADMIN, "domains": ["*"], "routes": routes}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    return {"name": name, "address": _address(host, port),
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": hcm}]}]}


def parse_version(text: str) -> tuple[int, int, int] | None:
    """The x.y.z in ``envoy --version``'s output (``.../1.40.0/Clean/RELEASE/BoringSSL``)."""
    import re

    m = re.search(r"/(\d+)\.(\d+)\.(\d+)/", text) or re.search(r"\b(\d+)\.(\d+)\.(\d+)\b", text)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


MIN_ENVOY = (1, 28, 0)  # a minimum, never a closed list (consul#16493)
