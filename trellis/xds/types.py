"""The Envoy resource types trellis serves, by type URL, in make-before-break order."""

from __future__ import annotations

SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"

# DESIGN: secrets, clusters, endpoints, then listeners and routes (removals last).
ORDER = (SECRET, CLUSTER, ENDPOINT, LISTENER, ROUTE)
# Listener/route updates wait while cluster/endpoint updates are unacknowledged.
HELD_BEHIND = {LISTENER: (CLUSTER, ENDPOINT), ROUTE: (CLUSTER, ENDPOINT)}

# Well-known names (Consul's, reference/envoy-xds.md).
PUBLIC_LISTENER = "public_listener"
LOCAL_APP = "local_app"
ROOTS_SECRET = "roots"


def leaf_secret(namespace: str, service: str) -> str:
    """DESIGN: one SDS secret per identity a proxy presents."""
    return f"leaf/{namespace}/{service}"
