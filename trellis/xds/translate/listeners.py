"""Listeners: the public (inbound) listener and one outbound listener per upstream (pure).

Rules (reference/envoy-xds.md §0, §2.2, §2.3, §2.5, §8):
1. The public listener is ``public_listener`` (xds/types.py) on the snapshot's public
   bind address and port. A TLS inspector tells the two filter chains apart:
   * ``transport_protocol: tls``: mutual TLS (tls.py) and then, for a tcp service, the
     network RBAC filter and ``tcp_proxy`` to ``local_app`` (the live RBAC of rbac.py
     rules 8-9 when ``local_app`` is EDS: the same filter for every set of intentions, so
     an intention change never drains this chain); for http/http2/grpc one HTTP
     connection manager whose HTTP filters are [grpc_stats, grpc_http1_bridge (grpc
     only)], the HTTP RBAC filter, the router, with its routes over RDS (routes.py): the
     intentions' rules travel in the route (per-route RBAC), so a change reaches the next
     request on connections already open, without touching (and draining) the listener.
     The listener's own RBAC config is a constant deny-all: fail closed if a route ever
     came without its rules.
   * ``transport_protocol: raw_buffer``: plaintext, answering only ``GET /health``
     (200, or 503 once the agent asked the proxy to stop) and 403 to everything else
     without ever reaching the application: the seed's plaintext check
     ``http://localhost:<public port>/health`` (proxy/preface.py, same port, same rule).
2. The public HTTP manager normalises paths before RBAC looks at them, upgrades
   websockets, and (not for grpc) forwards the caller's certificate details in
   ``x-forwarded-client-cert``, as Consul does. ``local_request_timeout_ms`` and
   ``local_idle_timeout_ms`` of the proxy config become the route's timeouts.
3. One outbound listener per served upstream (knobs.py rule 1), named
   ``<upstream id>:<bind address>:<bind port>`` (Consul's name; the id is the destination
   name, prefixed ``default/<ns>/`` outside the default namespace as Consul Enterprise
   does), plaintext on loopback: ``tcp_proxy`` to the upstream's cluster (its SNI name),
   or for http-like upstreams an HTTP manager with an inline route ``/`` to it and only
   the router filter (no RBAC outbound). Stat prefix
   ``upstream.<service>.<ns>.default.<dc>``.
4. Names and lists come out sorted (the public listener's two chains in the fixed order
   above), so equal snapshots give byte-identical listeners.
5. An upstream with a discovery chain (chains.py): tcp sends to the start resolver's
   cluster; http-like takes the chain's routes over RDS, named by the upstream id.
6. An ingress gateway has one listener per entry listener, ``<protocol>:<address>:<port>``:
   tcp sends its one service's ``tcp_proxy`` to that service's cluster (or its chain's);
   http-like has an HTTP manager taking RDS route ``<port>`` (routes.py), whose virtual
   hosts pick the service by Host. Neither has a public listener or RBAC: the services'
   sidecars decide with the gateway as the source. A listener with TLS enabled terminates
   it with the gateway's leaf (tls.py rule 6), or the listener's SDS certificate (tls.py
   rule 7). A service with its own SDS certificate gets a filter chain of its own,
   matched on its hosts by SNI (a TLS inspector reads it), taking its own route
   ``<port>_<upstream id>``; the default chain, without SNI match, serves the others
   (none when every service has its own), as Consul builds them.
7. A terminating gateway has one listener per bind (knobs.py rule 8),
   ``<bind name>:<address>:<port>``, INBOUND, with a TLS inspector and one filter chain
   per served linked service, matched on its mesh SNI (sorted by it), then one per subset
   of its resolver, matched on the subset's SNI, alike but for its cluster and route
   (knobs.py rule 8): mutual TLS
   presenting that service's leaf (``leaf/<ns>/<service>``) and requiring a mesh client
   certificate, then for a tcp service the network RBAC of that service's intentions
   (rbac.py, as a tcp public listener's: the live filter of rbac.py rule 10 when the
   service's instances are all IPs) and ``tcp_proxy`` to the service's cluster
   (clusters.py rule 6). An http-like service (reference/envoy-xds.md §4) gets instead an
   HTTP manager built as the public one of rule 1-2 is (deny-all RBAC filter, path
   normalisation, XFCC append-forward but for grpc) taking RDS route ``<service SNI>``
   (routes.py), whose per-route RBAC carries that service's intentions: an intention
   change only changes the route, never the chain, so nothing is drained. A last chain,
   ``fallback``, without match, takes a connection with another SNI, or none, and closes
   it unanswered (Consul's has an ``sni_cluster`` chain there to the same end); the
   listener is there even before any linked service is served, so the gateway's TCP
   check passes from the start, as Consul's does.
8. Connection knobs, as Consul sets them: ``max_inbound_connections`` (Proxy.Config, or
   service-defaults' MaxInboundConnections) puts a ``connection_limit`` filter (stat prefix
   ``inbound_connection_limit``) first on the public listener's mutual-TLS chain;
   ``balance_inbound_connections`` = ``exact_balance`` gives the public listener, and an
   upstream's ``balance_outbound_connections`` its listener, Envoy's exact connection
   balance across worker threads.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from envoy.config.core.v3 import base_pb2, protocol_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.grpc_http1_bridge.v3 import config_pb2 as grpc_bridge_pb2
from envoy.extensions.filters.http.grpc_stats.v3 import config_pb2 as grpc_stats_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.connection_limit.v3 import connection_limit_pb2
from envoy.extensions.filters.network.direct_response.v3 import config_pb2 as direct_response_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import message, wrappers_pb2

from trellis.config.entry.model_gateway import tls_server_name
from trellis.proxycfg.model import (
    INGRESS_GATEWAY,
    ConnectProxySnapshot,
    GatewayBind,
    IngressListenerSnapshot,
    IngressServiceSnapshot,
    IngressTLS,
    LinkedServiceSnapshot,
    SdsCertificate,
    UpstreamSnapshot,
)
from trellis.xds import types
from trellis.xds.translate import chains, core, knobs, rbac, tls
from trellis.xds.translate.secrets import leaf_name

TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
HTTP_CONNECTION_MANAGER = "envoy.filters.network.http_connection_manager"
ROUTER = "envoy.filters.http.router"
GRPC_STATS = "envoy.filters.http.grpc_stats"
GRPC_HTTP1_BRIDGE = "envoy.filters.http.grpc_http1_bridge"
DIRECT_RESPONSE = "envoy.filters.network.direct_response"
CONNECTION_LIMIT = "envoy.filters.network.connection_limit"

HEALTH_PATH = "/health"
HEALTH_STAT_PREFIX = "public_listener_health"
MTLS_CHAIN = "mtls"
PLAINTEXT_CHAIN = "plaintext_health"
FALLBACK_CHAIN = "fallback"
_REFUSED_BODY = f"this is a mutual TLS port; only GET {HEALTH_PATH} is answered in plaintext\n"

_HCM = hcm_pb2.HttpConnectionManager


def build_listeners(snapshot: ConnectProxySnapshot, *, upstreams: tuple[UpstreamSnapshot, ...],
                    public: bool = True) -> list[listener_pb2.Listener]:
    """Rules 1-4: the public listener (when ``public``) and one per upstream in ``upstreams``
    (the served ones, knobs.py), sorted by name."""
    if snapshot.terminating is not None:
        linked = knobs.served_linked(snapshot)
        return sorted((build_terminating_listener(snapshot, b, linked) for b in snapshot.terminating.binds
                       if knobs.is_ip(b.address)), key=lambda listener: listener.name)
    if snapshot.ingress or snapshot.kind == INGRESS_GATEWAY:
        served = {id(up) for up in upstreams}
        leaf = leaf_name(snapshot) if snapshot.leaf is not None else None
        listeners = [build_ingress_listener(li, served, leaf) for li in snapshot.ingress]
        return sorted((x for x in listeners if x is not None), key=lambda listener: listener.name)
    listeners = [build_upstream_listener(up) for up in upstreams]
    if public:
        listeners.append(build_public_listener(snapshot))
    return sorted(listeners, key=lambda listener: listener.name)


# -- the public listener (rules 1, 2) ---------------------------------------------------------
def build_public_listener(snapshot: ConnectProxySnapshot) -> listener_pb2.Listener:
    p = snapshot.public
    listener = listener_pb2.Listener(
        name=types.PUBLIC_LISTENER,
        address=core.socket_address(p.bind_address or "0.0.0.0", p.bind_port),
        traffic_direction=base_pb2.INBOUND,
        listener_filters=[listener_components_pb2.ListenerFilter(
            name=TLS_INSPECTOR, typed_config=core.pack(tls_inspector_pb2.TlsInspector()))],
        filter_chains=[_mtls_chain(snapshot), _plaintext_chain(snapshot)],
    )
    if knobs.balanced(snapshot.config, "balance_inbound_connections"):  # rule 8
        listener.connection_balance_config.exact_balance.SetInParent()
    return listener


def _mtls_chain(snapshot: ConnectProxySnapshot) -> listener_components_pb2.FilterChain:
    protocol = snapshot.public.protocol
    if knobs.is_http(protocol):
        filters = [network_filter(HTTP_CONNECTION_MANAGER, _public_http_manager(snapshot))]
    else:
        live = rbac.live_enforcement(snapshot)
        authz = rbac.build_live_network_filter(snapshot) if live else rbac.build_network_filter(snapshot)
        filters = [
            network_filter(rbac.NETWORK_FILTER, authz),
            network_filter(TCP_PROXY, tcp_proxy_pb2.TcpProxy(stat_prefix=types.PUBLIC_LISTENER,
                                                              cluster=types.LOCAL_APP)),
        ]
    limit = knobs.INBOUND_LIMIT.read(knobs.INBOUND_LIMIT.given(snapshot.config))
    if limit is not None:  # rule 8
        filters.insert(0, network_filter(CONNECTION_LIMIT, connection_limit_pb2.ConnectionLimit(
            stat_prefix="inbound_connection_limit", max_connections=wrappers_pb2.UInt64Value(value=limit))))
    return listener_components_pb2.FilterChain(
        name=MTLS_CHAIN,
        filter_chain_match=listener_components_pb2.FilterChainMatch(transport_protocol="tls"),
        filters=filters,
        transport_socket=tls.transport_socket(tls.downstream_context(leaf_name(snapshot), protocol)),
    )


def public_route_action(snapshot: ConnectProxySnapshot) -> route_components_pb2.RouteAction:
    """Rule 2's timeouts on the public route to ``local_app``."""
    action = route_components_pb2.RouteAction(cluster=types.LOCAL_APP)
    request_ms = knobs.timeout_ms(snapshot.config, "local_request_timeout_ms")
    if request_ms is not None:
        action.timeout.CopyFrom(core.duration(request_ms))
    idle_ms = knobs.timeout_ms(snapshot.config, "local_idle_timeout_ms")
    if idle_ms is not None:
        action.idle_timeout.CopyFrom(core.duration(idle_ms))
    return action


def _public_http_manager(snapshot: ConnectProxySnapshot) -> hcm_pb2.HttpConnectionManager:
    return authz_http_manager(types.PUBLIC_LISTENER, snapshot.public.protocol, types.PUBLIC_LISTENER)


def authz_http_manager(stat_prefix: str, protocol: str, route_name: str) -> hcm_pb2.HttpConnectionManager:
    """Rule 2: an inbound HTTP manager whose RDS route ``route_name`` carries the RBAC
    rules per route; its own RBAC config denies everything (fail closed)."""
    http_filters = []
    if protocol == "grpc":
        http_filters += [
            http_filter(GRPC_STATS, grpc_stats_pb2.FilterConfig(
                stats_for_all_methods=wrappers_pb2.BoolValue(value=True))),
            http_filter(GRPC_HTTP1_BRIDGE, grpc_bridge_pb2.Config()),
        ]
    http_filters += [http_filter(rbac.HTTP_FILTER, rbac.deny_all_http_filter()), _router()]
    manager = _http_manager(stat_prefix, protocol, None, http_filters)
    manager.rds.CopyFrom(hcm_pb2.Rds(config_source=core.ads_source(), route_config_name=route_name))
    manager.normalize_path.value = True
    if protocol != "grpc":
        manager.forward_client_cert_details = _HCM.APPEND_FORWARD
        manager.set_current_client_cert_details.CopyFrom(_HCM.SetCurrentClientCertDetails(
            subject=wrappers_pb2.BoolValue(value=True), cert=True, chain=True, dns=True, uri=True))
    return manager


def _plaintext_chain(snapshot: ConnectProxySnapshot) -> listener_components_pb2.FilterChain:
    """Rule 1: the plaintext health answer."""
    status, body = (503, "not serving: the proxy is stopping\n") if snapshot.stop else (200, "ok\n")
    health = route_components_pb2.Route(
        name="health",
        match=route_components_pb2.RouteMatch(path=HEALTH_PATH, headers=[route_components_pb2.HeaderMatcher(
            name=":method", string_match=string_pb2.StringMatcher(exact="GET"))]),
        direct_response=_direct(status, body),
    )
    refused = route_components_pb2.Route(
        name="refused", match=route_components_pb2.RouteMatch(prefix="/"), direct_response=_direct(403, _REFUSED_BODY),
    )
    routes = route_pb2.RouteConfiguration(name=HEALTH_STAT_PREFIX, virtual_hosts=[route_components_pb2.VirtualHost(
        name=HEALTH_STAT_PREFIX, domains=["*"], routes=[health, refused])])
    manager = _HCM(stat_prefix=HEALTH_STAT_PREFIX, codec_type=_HCM.AUTO, route_config=routes,
                   http_filters=[_router()])
    return listener_components_pb2.FilterChain(
        name=PLAINTEXT_CHAIN,
        filter_chain_match=listener_components_pb2.FilterChainMatch(transport_protocol="raw_buffer"),
        filters=[network_filter(HTTP_CONNECTION_MANAGER, manager)],
    )


def _direct(status: int, body: str) -> route_components_pb2.DirectResponseAction:
    return route_components_pb2.DirectResponseAction(status=status, body=base_pb2.DataSource(inline_string=body))


# -- upstream listeners (rule 3) --------------------------------------------------------------
def upstream_id(up: UpstreamSnapshot) -> str:
    """Rule 3: Consul's upstream id."""
    if up.destination_namespace == "default":
        return up.destination_name
    return f"default/{up.destination_namespace}/{up.destination_name}"


def upstream_listener_name(up: UpstreamSnapshot) -> str:
    return f"{upstream_id(up)}:{up.local_bind_address}:{up.local_bind_port}"


def upstream_stat_prefix(up: UpstreamSnapshot) -> str:
    """Consul's ``upstream.<service>.<ns>.<partition>.<dc>``, colons made underscores."""
    return f"upstream.{up.destination_name}.{up.destination_namespace}.default.{up.datacenter}".replace(":", "_")


def build_upstream_listener(up: UpstreamSnapshot) -> listener_pb2.Listener:
    stat_prefix = upstream_stat_prefix(up)
    if knobs.is_http(up.protocol) and up.chain is not None:  # rule 5: the chain's routes over RDS
        manager = _http_manager(stat_prefix, up.protocol, None, [_router()])
        manager.rds.CopyFrom(hcm_pb2.Rds(config_source=core.ads_source(), route_config_name=upstream_id(up)))
        filters = [network_filter(HTTP_CONNECTION_MANAGER, manager)]
    elif knobs.is_http(up.protocol):
        route = _one_route(upstream_id(up), route_components_pb2.RouteAction(cluster=up.sni))
        filters = [network_filter(HTTP_CONNECTION_MANAGER, _http_manager(stat_prefix, up.protocol, route, [_router()]))]
    else:
        cluster = chains.start_cluster(up) if up.chain is not None else up.sni
        filters = [network_filter(TCP_PROXY, tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix, cluster=cluster))]
    listener = listener_pb2.Listener(
        name=upstream_listener_name(up),
        address=core.socket_address(up.local_bind_address, up.local_bind_port),
        traffic_direction=base_pb2.OUTBOUND,
        filter_chains=[listener_components_pb2.FilterChain(filters=filters)],
    )
    if knobs.balanced(up.config, "balance_outbound_connections"):  # rule 8
        listener.connection_balance_config.exact_balance.SetInParent()
    return listener


# -- ingress gateway listeners (rule 6) --------------------------------------------------------
def ingress_listener_name(li: IngressListenerSnapshot) -> str:
    return f"{li.protocol}:{li.address}:{li.port}"


def ingress_route_name(li: IngressListenerSnapshot, svc: IngressServiceSnapshot | None = None) -> str:
    """The RDS route of an http-like ingress listener: its port, as Consul names it; that
    of a service with a chain of its own (``own_certificates``) ``<port>_<upstream id>``."""
    return f"{li.port}_{upstream_id(svc.upstream)}" if svc is not None else str(li.port)


class OwnCertificate(NamedTuple):
    service: IngressServiceSnapshot
    tls: IngressTLS  # its versions and ciphers (the listener's)
    sds: SdsCertificate
    names: list[str]  # the SNI names that choose its chain


def own_certificates(li: IngressListenerSnapshot) -> list[OwnCertificate]:
    """Rule 6: the services with their own SDS certificate that get a chain of their own,
    each with the SNI names that choose it: its hosts' TLS server names, less those an
    earlier such service took (validation refuses a shared name; an entry stored before
    that rule may have one, and two chains with one name would make Envoy refuse the
    listener). A service left with no name gets no chain (problems.py says so)."""
    taken: set[str] = set()
    out = []
    for svc in li.services:
        if svc.tls is None or svc.tls.sds is None:
            continue
        names = sorted({n for n in map(tls_server_name, svc.hosts) if n} - taken)
        if names:
            taken.update(names)
            out.append(OwnCertificate(svc, svc.tls, svc.tls.sds, names))
    return out


def ingress_chains(li: IngressListenerSnapshot, served: set[int]) -> tuple[list[OwnCertificate], bool]:
    """Rule 6: the served services' own chains, and whether the default chain (every other
    service, on route ``<port>``) is needed: not when every service has its own."""
    own = [o for o in own_certificates(li) if id(o.service.upstream) in served]
    return own, len(own) < len(li.services) or not li.services


def ingress_routes(li: IngressListenerSnapshot, served: set[int]) -> dict[str, list[IngressServiceSnapshot]]:
    """The RDS routes an http-like ingress listener's chains name, each with the served
    services whose virtual hosts it holds (routes.py builds them): a chain of its own's
    route its one service, the default route every other one."""
    own, default = ingress_chains(li, served)
    out = {ingress_route_name(li, o.service): [o.service] for o in own}
    if default:
        owned = {id(o.service) for o in own}
        out[ingress_route_name(li)] = [s for s in li.services if id(s.upstream) in served and id(s) not in owned]
    return out


def build_ingress_listener(li: IngressListenerSnapshot, served: set[int],
                           leaf_secret: str | None) -> listener_pb2.Listener | None:
    """Rule 6; ``served``: ids of the upstreams that are served. A tcp listener whose one
    service is refused gets no listener. With the leaf's TLS, the default chain presents
    ``leaf_secret`` (None: no leaf yet, so no listener, which would wait on a secret that
    is not sent)."""
    stat_prefix = f"ingress_upstream_{li.port}"
    own, default = ingress_chains(li, served)
    chains_: list[listener_components_pb2.FilterChain] = []
    for o in own:
        chains_.append(_ingress_chain(li, stat_prefix, ingress_route_name(li, o.service), o.tls,
                                      tls.operator_sds(o.sds.cluster, o.sds.resource)))
        chains_[-1].filter_chain_match.server_names.extend(o.names)
    if default:
        certificate = None
        if li.tls is not None and li.tls.sds is not None:
            certificate = tls.operator_sds(li.tls.sds.cluster, li.tls.sds.resource)
        elif li.tls is not None:
            if leaf_secret is None:
                return None
            certificate = tls.sds(leaf_secret)
        if knobs.is_http(li.protocol):
            chains_.append(_ingress_chain(li, stat_prefix, ingress_route_name(li), li.tls, certificate))
        else:
            ups = [s.upstream for s in li.services if id(s.upstream) in served]
            if not ups:
                return None
            cluster = chains.start_cluster(ups[0]) if ups[0].chain is not None else ups[0].sni
            chain = listener_components_pb2.FilterChain(filters=[network_filter(
                TCP_PROXY, tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix, cluster=cluster))])
            if li.tls is not None and certificate is not None:
                chain.transport_socket.CopyFrom(tls.transport_socket(tls.ingress_context(certificate, li.protocol,
                                                                                         li.tls)))
            chains_.append(chain)
    listener = listener_pb2.Listener(
        name=ingress_listener_name(li), address=core.socket_address(li.address, li.port),
        traffic_direction=base_pb2.INBOUND, filter_chains=chains_,
    )
    if own:
        listener.listener_filters.append(listener_components_pb2.ListenerFilter(
            name=TLS_INSPECTOR, typed_config=core.pack(tls_inspector_pb2.TlsInspector())))
    return listener


def _ingress_chain(li: IngressListenerSnapshot, stat_prefix: str, route: str, given: IngressTLS | None,
                   certificate: secret_pb2.SdsSecretConfig | None) -> listener_components_pb2.FilterChain:
    """An http-like ingress filter chain taking RDS ``route``, terminating TLS with
    ``certificate`` when ``given``."""
    manager = _http_manager(stat_prefix, li.protocol, None, [_router()])
    manager.rds.CopyFrom(hcm_pb2.Rds(config_source=core.ads_source(), route_config_name=route))
    chain = listener_components_pb2.FilterChain(filters=[network_filter(HTTP_CONNECTION_MANAGER, manager)])
    if given is not None and certificate is not None:
        chain.transport_socket.CopyFrom(tls.transport_socket(tls.ingress_context(certificate, li.protocol, given)))
    return chain


# -- terminating gateway listeners (rule 7) ----------------------------------------------------
def build_terminating_listener(snapshot: ConnectProxySnapshot, bind: GatewayBind,
                               linked: tuple[LinkedServiceSnapshot, ...]) -> listener_pb2.Listener:
    return listener_pb2.Listener(
        name=f"{bind.name}:{bind.address}:{bind.port}",
        address=core.socket_address(bind.address, bind.port),
        traffic_direction=base_pb2.INBOUND,
        listener_filters=[listener_components_pb2.ListenerFilter(
            name=TLS_INSPECTOR, typed_config=core.pack(tls_inspector_pb2.TlsInspector()))],
        filter_chains=[*(_linked_chain(snapshot, ls, sni, cluster) for ls in sorted(linked, key=lambda s: s.sni)
                         for sni, cluster in knobs.linked_snis(ls)), _closing_chain()],
    )


def _closing_chain() -> listener_components_pb2.FilterChain:
    """Rule 7's fallback: any other connection is accepted and closed at once, unanswered."""
    return listener_components_pb2.FilterChain(name=FALLBACK_CHAIN, filters=[
        network_filter(DIRECT_RESPONSE, direct_response_pb2.Config())])


def linked_as_service(snapshot: ConnectProxySnapshot, ls: LinkedServiceSnapshot) -> ConnectProxySnapshot:
    """Rule 7: the snapshot seen as the linked service's own, so that rbac.py builds the
    rules a public listener of that service would have."""
    return dataclasses.replace(snapshot, namespace=ls.namespace, service=ls.name, intentions=ls.intentions)


def _linked_chain(snapshot: ConnectProxySnapshot, ls: LinkedServiceSnapshot, sni: str,
                  cluster: str) -> listener_components_pb2.FilterChain:
    """Rule 7: one linked service's chain for ``sni`` (its own, or a subset's), to ``cluster``."""
    stat_prefix = f"upstream.{ls.name}.{ls.namespace}.default.{snapshot.datacenter}"
    if knobs.is_http(ls.protocol):
        filters = [network_filter(HTTP_CONNECTION_MANAGER, authz_http_manager(stat_prefix, ls.protocol, sni))]
        protocol = ls.protocol
    else:
        authz = (rbac.build_live_network_filter(snapshot) if rbac.linked_live(ls)
                 else rbac.build_network_filter(linked_as_service(snapshot, ls)))
        filters = [
            network_filter(rbac.NETWORK_FILTER, authz),
            network_filter(TCP_PROXY, tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix, cluster=cluster)),
        ]
        protocol = "tcp"
    return listener_components_pb2.FilterChain(
        name=sni,
        filter_chain_match=listener_components_pb2.FilterChainMatch(server_names=[sni], transport_protocol="tls"),
        filters=filters,
        transport_socket=tls.transport_socket(tls.downstream_context(types.leaf_secret(ls.namespace, ls.name),
                                                                     protocol)),
    )


# -- shared pieces ----------------------------------------------------------------------------
def _http_manager(stat_prefix: str, protocol: str, routes: route_pb2.RouteConfiguration | None,
                  http_filters: list[hcm_pb2.HttpFilter]) -> hcm_pb2.HttpConnectionManager:
    manager = _HCM(
        stat_prefix=stat_prefix, codec_type=_HCM.AUTO, http_filters=http_filters,
        upgrade_configs=[_HCM.UpgradeConfig(upgrade_type="websocket")],
    )
    if routes is not None:
        manager.route_config.CopyFrom(routes)
    if knobs.is_http2(protocol):
        manager.http2_protocol_options.CopyFrom(protocol_pb2.Http2ProtocolOptions())
    return manager


def _one_route(name: str, action: route_components_pb2.RouteAction) -> route_pb2.RouteConfiguration:
    """An inline route configuration: every host, every path, to one cluster."""
    route = route_components_pb2.Route(match=route_components_pb2.RouteMatch(prefix="/"), route=action)
    return route_pb2.RouteConfiguration(name=name, virtual_hosts=[
        route_components_pb2.VirtualHost(name=name, domains=["*"], routes=[route])])


def _router() -> hcm_pb2.HttpFilter:
    return http_filter(ROUTER, router_pb2.Router())


def network_filter(name: str, config: message.Message) -> listener_components_pb2.Filter:
    return listener_components_pb2.Filter(name=name, typed_config=core.pack(config))


def http_filter(name: str, config: message.Message) -> hcm_pb2.HttpFilter:
    return hcm_pb2.HttpFilter(name=name, typed_config=core.pack(config))
