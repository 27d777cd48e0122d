"""Routes served over RDS (pure): the public listener's HTTP route to ``local_app``.

Rule: the route carries the intentions' HTTP RBAC as per-route config
(``envoy.filters.http.rbac`` → ``RBACPerRoute``), which replaces the listener's
deny-all filter config. RDS updates reach the next request on every open connection
(Envoy looks routes up per request), so an L7 intention change is enforced without
draining anything; the listener itself does not change when intentions do.
"""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2

from trellis.proxycfg.model import ConnectProxySnapshot
from trellis.xds import types
from trellis.xds.translate import core, knobs, listeners, rbac


def build_routes(snapshot: ConnectProxySnapshot, *, public: bool) -> list[route_pb2.RouteConfiguration]:
    """The public route when the public listener speaks HTTP, else nothing."""
    if not public or not knobs.is_http(snapshot.public.protocol):
        return []
    per_route = http_rbac_pb2.RBACPerRoute(rbac=rbac.build_http_filter(snapshot))
    route = route_components_pb2.Route(
        match=route_components_pb2.RouteMatch(prefix="/"), route=listeners.public_route_action(snapshot),
        typed_per_filter_config={rbac.HTTP_FILTER: core.pack(per_route)},
    )
    return [route_pb2.RouteConfiguration(name=types.PUBLIC_LISTENER, virtual_hosts=[
        route_components_pb2.VirtualHost(name=types.PUBLIC_LISTENER, domains=["*"], routes=[route])])]
