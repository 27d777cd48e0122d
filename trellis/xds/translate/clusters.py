"""Clusters: ``local_app`` and one EDS cluster per served upstream (pure).

Rules (reference/envoy-xds.md §2.4, §2.6, §8):
1. ``local_app`` is the application beside the proxy: STATIC on
   ``local_service_address:local_service_port`` (STRICT_DNS when the address is a host
   name), ``connect_timeout`` = ``local_connect_timeout_ms``, default 5000 ms. For
   http2/grpc the app is spoken to in the protocol the client used. For a tcp service
   with an IP address it is EDS over ADS instead: its one endpoint carries the intentions
   decision table that the public listener's RBAC reads (rbac.py rules 8-9).
2. An upstream's cluster is named by its SNI name (``alt_stat_name`` too), type EDS over
   ADS; ``connect_timeout`` = the upstream's ``connect_timeout_ms``, default 5000 ms;
   panic mode off (``healthy_panic_threshold`` 0: never send to unhealthy hosts); mutual
   TLS with SNI and the expected SPIFFE ID (tls.py); HTTP/2 upstream for http2/grpc.
3. Circuit breakers only when ``limits`` sets something; outlier detection always
   (empty means Envoy's defaults), from ``passive_health_check`` (knobs.py rule 5). A
   ``base_ejection_time`` above Envoy's 300 s ``max_ejection_time`` raises that too, as
   Envoy refuses a base above the maximum.
4. Two upstreams with the same destination share one cluster (the first one's settings):
   the cluster name is the SNI name. NOTE: Consul gives an upstream that overrides the
   protocol or timeouts its own ``<hash>~<sni>`` cluster; trellis does not yet.
5. An upstream with a discovery chain gets its chain's clusters instead (chains.py).
6. A terminating gateway has one cluster per served linked service (knobs.py rule 8),
   named by the service's mesh SNI: its external instances inline (STATIC when every
   usable one is an IP literal, else STRICT_DNS, which resolves host names, or with
   ``envoy_dns_discovery_type`` LOGICAL_DNS and the first instance only: knobs.py rule 9), sorted;
   ``connect_timeout`` the gateway's ``connect_timeout_ms``, default 5000 ms; outlier
   detection Envoy's defaults; TLS to the external service as tls.py rule 5 says; HTTP/2
   to the external instances for an http2 or grpc service (the gateway proxies it at L7,
   listeners.py rule 7), as Consul's gateway clusters do. Its service-resolver (Consul's
   ``makeGatewayCluster``): ``ConnectTimeout`` is the ``connect_timeout`` (proxycfg puts
   it in the snapshot's ``connect_timeout_ms``), ``LoadBalancer`` the ``lb_policy``
   (chains.py rule 1), and each subset gets one more such cluster, named by the subset's
   SNI, with the external instances that pass its filter. A tcp linked service whose
   instances are all IPs has EDS clusters instead (rbac.py rule 10, endpoints.py rule 8).
"""

from __future__ import annotations

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import protocol_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from trellis.proxycfg.model import (
    ConnectProxySnapshot,
    Endpoint,
    LinkedServiceSnapshot,
    UpstreamSnapshot,
    usable_endpoints,
)
from trellis.xds import types
from trellis.xds.translate import core, knobs, rbac, tls
from trellis.xds.translate.secrets import leaf_name

HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
MAX_EJECTION_TIME_MS = 300_000  # Envoy's default outlier_detection.max_ejection_time

_Cluster = cluster_pb2.Cluster
_HttpOptions = http_protocol_options_pb2.HttpProtocolOptions


def build_clusters(snapshot: ConnectProxySnapshot, *, upstreams: tuple[UpstreamSnapshot, ...],
                   local_app: bool = True) -> list[cluster_pb2.Cluster]:
    """Rules 1-4: ``local_app`` (when asked) and one cluster per upstream in ``upstreams``
    (the served ones, knobs.py), sorted by name."""
    clusters: dict[str, cluster_pb2.Cluster] = {}
    for up in upstreams:
        if up.chain is not None:  # rule 5
            from trellis.xds.translate import chains  # chains.py builds on this module
            for c in chains.build_clusters(snapshot, up):
                clusters.setdefault(c.name, c)
        else:
            clusters.setdefault(up.sni, build_upstream_cluster(snapshot, up))
    logical = knobs.dns_discovery_type(snapshot.config) == "LOGICAL_DNS"
    for ls in knobs.served_linked(snapshot):  # rule 6
        clusters.setdefault(ls.sni, build_external_cluster(ls, logical_dns=logical))
        for sub in ls.subsets:
            clusters.setdefault(sub.sni, build_external_cluster(ls, name=sub.sni, endpoints=sub.endpoints,
                                                                logical_dns=logical))
    if local_app:
        clusters[types.LOCAL_APP] = build_local_app(snapshot)
    return [clusters[name] for name in sorted(clusters)]


def build_local_app(snapshot: ConnectProxySnapshot) -> cluster_pb2.Cluster:
    """Rule 1."""
    p = snapshot.public
    address = rbac.local_app_address(snapshot)
    cluster = _Cluster(
        name=types.LOCAL_APP,
        type=_Cluster.STATIC if knobs.is_ip(address) else _Cluster.STRICT_DNS,
        connect_timeout=core.duration(knobs.connect_timeout_ms(p.local_connect_timeout_ms)),
    )
    if rbac.live_enforcement(snapshot):
        cluster.type = _Cluster.EDS
        cluster.eds_cluster_config.eds_config.CopyFrom(core.ads_source())
    else:
        cluster.load_assignment.CopyFrom(endpoint_pb2.ClusterLoadAssignment(cluster_name=types.LOCAL_APP, endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[endpoint_components_pb2.LbEndpoint(
                endpoint=endpoint_components_pb2.Endpoint(
                    address=core.socket_address(address, p.local_service_port)))])]))
    if knobs.is_http2(p.protocol):
        options = _HttpOptions(use_downstream_protocol_config=_HttpOptions.UseDownstreamHttpConfig(
            http_protocol_options=protocol_pb2.Http1ProtocolOptions(),
            http2_protocol_options=protocol_pb2.Http2ProtocolOptions()))
        cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(core.pack(options))
    return cluster


def build_upstream_cluster(snapshot: ConnectProxySnapshot, up: UpstreamSnapshot) -> cluster_pb2.Cluster:
    """Rules 2-3."""
    return eds_cluster(snapshot, up, name=up.sni, spiffe_id=up.spiffe_id,
                       connect_timeout_ms=knobs.connect_timeout_ms(up.connect_timeout_ms))


def eds_cluster(snapshot: ConnectProxySnapshot, up: UpstreamSnapshot, *, name: str, spiffe_id: str,
                connect_timeout_ms: int) -> cluster_pb2.Cluster:
    """Rules 2-3 for one cluster of ``up``: ``name`` is its SNI too (chains.py uses it per target)."""
    cluster = _Cluster(
        name=name,
        alt_stat_name=name,
        type=_Cluster.EDS,
        eds_cluster_config=_Cluster.EdsClusterConfig(eds_config=core.ads_source()),
        connect_timeout=core.duration(connect_timeout_ms),
        common_lb_config=_Cluster.CommonLbConfig(healthy_panic_threshold=percent_pb2.Percent(value=0)),
        outlier_detection=outlier_detection(knobs.outlier_detection(up)),
        transport_socket=tls.transport_socket(tls.upstream_context(leaf_name(snapshot), name, spiffe_id)),
    )
    limits = knobs.upstream_limits(up)
    if limits:
        cluster.circuit_breakers.CopyFrom(circuit_breakers(limits))
    if knobs.is_http2(up.protocol):
        cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(core.pack(_explicit_http2()))
    return cluster


def build_external_cluster(ls: LinkedServiceSnapshot, *, name: str = "", endpoints: tuple[Endpoint, ...] | None = None,
                           logical_dns: bool = False) -> cluster_pb2.Cluster:
    """Rule 6: a terminating gateway's cluster to a linked service's external instances
    (``name`` and ``endpoints``: one of its subsets'); host names resolved ``logical_dns``
    (the first instance only, which is all Envoy allows) instead of STRICT_DNS."""
    from trellis.xds.translate.chains import set_load_balancer  # chains.py builds on this module
    from trellis.xds.translate.endpoints import lb_endpoint  # endpoints.py builds on rbac.py, as this does

    name = name or ls.sni
    cluster = _Cluster(
        name=name,
        alt_stat_name=name,
        connect_timeout=core.duration(knobs.connect_timeout_ms(ls.connect_timeout_ms)),
        common_lb_config=_Cluster.CommonLbConfig(healthy_panic_threshold=percent_pb2.Percent(value=0)),
        outlier_detection=outlier_detection_pb2.OutlierDetection(),
    )
    if rbac.linked_live(ls):  # rbac.py rule 10: the endpoints come over EDS, with the decision table
        cluster.type = _Cluster.EDS
        cluster.eds_cluster_config.eds_config.CopyFrom(core.ads_source())
    else:
        chosen = sorted(usable_endpoints(ls.endpoints if endpoints is None else endpoints),
                        key=lambda e: (e.address, e.port, e.service_id))
        by_ip = all(knobs.is_ip(e.address) for e in chosen)
        if logical_dns and not by_ip:
            chosen = chosen[:1]
        cluster.type = _Cluster.STATIC if by_ip else _Cluster.LOGICAL_DNS if logical_dns else _Cluster.STRICT_DNS
        cluster.load_assignment.cluster_name = name
        if chosen:
            cluster.load_assignment.endpoints.append(endpoint_components_pb2.LocalityLbEndpoints(
                lb_endpoints=[lb_endpoint(e) for e in chosen]))
    set_load_balancer(cluster, ls.load_balancer)
    context = tls.external_context(ls.ca_file, ls.cert_file, ls.key_file, ls.tls_sni)
    if context is not None:
        cluster.transport_socket.CopyFrom(tls.transport_socket(context))
    if knobs.is_http2(ls.protocol):
        cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(core.pack(_explicit_http2()))
    return cluster


def _explicit_http2() -> http_protocol_options_pb2.HttpProtocolOptions:
    return _HttpOptions(explicit_http_config=_HttpOptions.ExplicitHttpConfig(
        http2_protocol_options=protocol_pb2.Http2ProtocolOptions()))


def circuit_breakers(limits: knobs.Limits) -> circuit_breaker_pb2.CircuitBreakers:
    """Rule 3: one threshold (default priority) with only the values given."""
    threshold = circuit_breaker_pb2.CircuitBreakers.Thresholds()
    for field, value in (("max_connections", limits.max_connections),
                         ("max_pending_requests", limits.max_pending_requests),
                         ("max_requests", limits.max_requests)):
        if value is not None:
            getattr(threshold, field).CopyFrom(wrappers_pb2.UInt32Value(value=value))
    return circuit_breaker_pb2.CircuitBreakers(thresholds=[threshold])


def outlier_detection(od: knobs.OutlierDetection) -> outlier_detection_pb2.OutlierDetection:
    """Rule 3."""
    out = outlier_detection_pb2.OutlierDetection()
    if od.interval_ms is not None:
        out.interval.CopyFrom(core.duration(od.interval_ms))
    for field, value in (("consecutive_5xx", od.consecutive_5xx),
                         ("enforcing_consecutive_5xx", od.enforcing_consecutive_5xx),
                         ("max_ejection_percent", od.max_ejection_percent)):
        if value is not None:
            getattr(out, field).CopyFrom(wrappers_pb2.UInt32Value(value=value))
    if od.base_ejection_time_ms is not None:
        out.base_ejection_time.CopyFrom(core.duration(od.base_ejection_time_ms))
        if od.base_ejection_time_ms > MAX_EJECTION_TIME_MS:
            out.max_ejection_time.CopyFrom(core.duration(od.base_ejection_time_ms))
    return out
