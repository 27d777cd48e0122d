"""Routes served over RDS (pure): the public listener's HTTP route to ``local_app``, the
routes of http-like upstreams with a discovery chain (chains.py), and a terminating
gateway's route per http-like linked service.

Rule: the route carries the intentions' HTTP RBAC as per-route config
(``envoy.filters.http.rbac`` → ``RBACPerRoute``), which replaces the listener's
deny-all filter config. RDS updates reach the next request on every open connection
(Envoy looks routes up per request), so an L7 intention change is enforced without
draining anything; the listener itself does not change when intentions do.

A terminating gateway's http-like linked service (listeners.py rule 7) gets one route
named by its SNI, as Consul names it (reference/envoy-xds.md §0, §4): every host and
path to the service's cluster, with that service's intentions per route and
``auto_host_rewrite`` (the external service sees its own host name) unless the entry's
``DisableAutoHostRewrite`` is set; its resolver's ``RequestTimeout`` is the route's
``timeout`` and its hash policies (ring_hash, maglev) the route's ``hash_policy``, as
Consul's terminating gateway routes take them. Each of its resolver's subsets gets the
same route, named by the subset's SNI, to the subset's cluster.
"""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from google.protobuf import wrappers_pb2

from trellis.proxycfg.model import (
    ConnectProxySnapshot,
    IngressServiceSnapshot,
    LinkedServiceSnapshot,
    UpstreamSnapshot,
)
from trellis.xds import types
from trellis.xds.translate import chains, core, knobs, listeners, rbac


def build_routes(snapshot: ConnectProxySnapshot, *, public: bool,
                 upstreams: tuple[UpstreamSnapshot, ...] = ()) -> list[route_pb2.RouteConfiguration]:
    """The public route when the public listener speaks HTTP, and one route per http-like
    upstream with a discovery chain (chains.py rule 3), named by the upstream id; for a
    terminating gateway, one per served http-like linked service, named by its SNI."""
    if snapshot.terminating is not None:
        linked = [_linked_route(snapshot, ls, sni, cluster) for ls in knobs.served_linked(snapshot)
                  if knobs.is_http(ls.protocol) for sni, cluster in knobs.linked_snis(ls)]
        return sorted(linked, key=lambda r: r.name)
    out = {listeners.upstream_id(up): chains.build_route(up, listeners.upstream_id(up))
           for up in reversed(upstreams) if up.chain is not None and knobs.is_http(up.protocol)}
    if public and knobs.is_http(snapshot.public.protocol):
        out[types.PUBLIC_LISTENER] = _public_route(snapshot)
    if snapshot.ingress:
        served = {id(u) for u in upstreams}
        out = {}
        for li in snapshot.ingress:
            if knobs.is_http(li.protocol):
                out.update((name, _ingress_route(name, services))
                           for name, services in listeners.ingress_routes(li, served).items())
    return [out[name] for name in sorted(out)]


def _ingress_route(name: str, services: list[IngressServiceSnapshot]) -> route_pb2.RouteConfiguration:
    """An http-like ingress listener's route ``name``: one virtual host per one of its
    ``services`` that has hosts (listeners.py rule 6), with the service's routes (its
    chain's, or one to its cluster) and header changes."""
    hosts = []
    for svc in services:
        up = svc.upstream
        if not svc.hosts:
            continue
        if up.chain is not None:
            routes = list(chains.build_route(up, name).virtual_hosts[0].routes)
        else:
            routes = [route_components_pb2.Route(match=route_components_pb2.RouteMatch(prefix="/"),
                                                 route=route_components_pb2.RouteAction(cluster=up.sni))]
        vhost = route_components_pb2.VirtualHost(name=f"{up.destination_namespace}/{up.destination_name}",
                                                 domains=list(svc.hosts), routes=routes)
        chains.header_changes(vhost, svc.request_headers, svc.response_headers)
        hosts.append(vhost)
    return route_pb2.RouteConfiguration(name=name, virtual_hosts=hosts)


def _public_route(snapshot: ConnectProxySnapshot) -> route_pb2.RouteConfiguration:
    per_route = http_rbac_pb2.RBACPerRoute(rbac=rbac.build_http_filter(snapshot))
    route = route_components_pb2.Route(
        match=route_components_pb2.RouteMatch(prefix="/"), route=listeners.public_route_action(snapshot),
        typed_per_filter_config={rbac.HTTP_FILTER: core.pack(per_route)},
    )
    return route_pb2.RouteConfiguration(name=types.PUBLIC_LISTENER, virtual_hosts=[
        route_components_pb2.VirtualHost(name=types.PUBLIC_LISTENER, domains=["*"], routes=[route])])


def _linked_route(snapshot: ConnectProxySnapshot, ls: LinkedServiceSnapshot, name: str,
                  cluster: str) -> route_pb2.RouteConfiguration:
    """A terminating gateway's route ``name`` (the SNI of the linked service or of one of
    its subsets) to ``cluster``, with the service's RBAC and its resolver's request timeout
    and hash policies."""
    per_route = http_rbac_pb2.RBACPerRoute(rbac=rbac.build_http_filter(listeners.linked_as_service(snapshot, ls)))
    action = route_components_pb2.RouteAction(cluster=cluster)
    if ls.auto_host_rewrite:
        action.auto_host_rewrite.CopyFrom(wrappers_pb2.BoolValue(value=True))
    chains.set_resolver_timeout_and_hashing(action, ls.request_timeout, ls.load_balancer)
    route = route_components_pb2.Route(match=route_components_pb2.RouteMatch(prefix="/"), route=action,
                                       typed_per_filter_config={rbac.HTTP_FILTER: core.pack(per_route)})
    return route_pb2.RouteConfiguration(name=name, virtual_hosts=[
        route_components_pb2.VirtualHost(name=name, domains=["*"], routes=[route])])
