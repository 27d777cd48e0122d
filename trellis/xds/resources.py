"""A connect-proxy snapshot as Envoy resources, and the check that they hang together (pure).

    ConnectProxySnapshot ──build_resources──▶ {type URL: {name: proto}}   (types.ORDER, names sorted)
                            translate/secrets.py    SECRET    leaf/<ns>/<service>, roots
                            translate/clusters.py   CLUSTER   local_app, <sni> per upstream
                            translate/endpoints.py  ENDPOINT  <sni> per upstream, local_app (tcp)
                            translate/listeners.py  LISTENER  public_listener, <id>:<addr>:<port>
                            (ROUTE: the public listener's HTTP route, with its per-route RBAC;
                             a terminating gateway's <sni> per http-like linked service)
    resources ──consistency_problems──▶ [] when every name a resource uses is there

Rules:
1. Every type of ``types.ORDER`` is a key of the result, empty or not; inside each, the
   resources are keyed by name and inserted in name order.
2. A resource is built only when what it names can be sent too: without a leaf or
   without roots there is no secret to present or to verify with, so neither the public
   listener nor the upstream listeners, clusters and endpoints are built (``local_app``
   and the secrets that exist are). A refused upstream (translate/knobs.py rule 1) gets
   nothing at all; ``refused_upstreams`` says why, for the shell to log.
3. ``consistency_problems`` is go-control-plane's ``Snapshot.Consistent`` widened to what
   trellis sends: every endpoints resource belongs to an EDS cluster and every EDS cluster
   has one; every cluster a listener (or a route) sends traffic to exists; every RDS name
   exists; every SDS secret a listener or a cluster names exists. It runs in tests and
   before a snapshot is published.
4. A stream translates with memory (``translate``): it keeps the last snapshot and its
   versioned resources. When the next snapshot has the same shape (``same_shape``: equal
   but for the upstreams' endpoints), only endpoints moved, and only the upstreams'
   load assignments are looked at again; everything else, versions included, is reused.
   Those assignments are shared across proxies (translate/endpoints.py rule 6), their
   versions too. The result always equals ``delta.version_resources(build_resources(s))``
   (a test holds it to that); a catalog change that a thousand proxies see costs each
   one a comparison and a few lookups instead of a whole translation.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import any_pb2, message

from trellis.proxycfg.model import ConnectProxySnapshot, Endpoint, UpstreamSnapshot
from trellis.xds import delta, types
from trellis.xds.translate import clusters, endpoints, knobs, listeners, rbac, routes, secrets

Resources = dict[str, dict[str, message.Message]]


def build_resources(snapshot: ConnectProxySnapshot) -> Resources:
    """Rules 1-2: every resource ``snapshot`` asks for. Pure; loop-safe; raises nothing
    for a snapshot proxycfg built (bad proxy-config values fall back to Envoy's defaults)."""
    served, _ = knobs.select_upstreams(snapshot)
    ready = snapshot.leaf is not None and bool(snapshot.roots)
    upstreams = served if ready else ()
    has_app = snapshot.public.local_service_port > 0
    public = ready and not knobs.public_refusal(snapshot)  # knobs.py rule 7
    found: dict[str, Iterable[message.Message]] = {
        types.SECRET: secrets.build_secrets(snapshot),
        types.CLUSTER: clusters.build_clusters(snapshot, upstreams=upstreams, local_app=has_app),
        types.ENDPOINT: [*endpoints.build_endpoints(upstreams),
                         *([endpoints.build_local_app_assignment(snapshot)]
                           if has_app and rbac.live_enforcement(snapshot) else []),
                         *endpoints.build_linked_assignments(snapshot)],
        types.LISTENER: listeners.build_listeners(snapshot, upstreams=upstreams, public=public),
        types.ROUTE: routes.build_routes(snapshot, public=public, upstreams=upstreams),
    }
    return {type_url: _by_name(found[type_url]) for type_url in types.ORDER}


@dataclass(frozen=True, slots=True)
class Translated:
    """Rule 4: one stream's last translation."""

    snapshot: ConnectProxySnapshot
    desired: delta.Desired  # {type URL: {name: Versioned}}, names sorted


def translate(snapshot: ConnectProxySnapshot, previous: Translated | None = None) -> Translated:
    """Rule 4: ``snapshot``'s versioned resources, reusing ``previous`` where it can. Pure."""
    if previous is not None and same_shape(previous.snapshot, snapshot):
        desired = dict(previous.desired)
        kept = {name: v for name, v in previous.desired[types.ENDPOINT].items() if name == types.LOCAL_APP}
        desired[types.ENDPOINT] = dict(sorted({**kept, **_upstream_assignments(snapshot)}.items()))
        return Translated(snapshot, desired)
    shared = _upstream_assignments(snapshot)
    return Translated(snapshot, {
        type_url: {name: (shared.get(name) if type_url == types.ENDPOINT else None) or delta.versioned(msg)
                   for name, msg in by_name.items()}
        for type_url, by_name in build_resources(snapshot).items()
    })


_SNAPSHOT_FIELDS = tuple(f.name for f in fields(ConnectProxySnapshot) if f.name not in ("upstreams", "version", "index"))
_UPSTREAM_FIELDS = tuple(f.name for f in fields(UpstreamSnapshot) if f.name not in ("endpoints", "targets"))


def same_shape(a: ConnectProxySnapshot, b: ConnectProxySnapshot) -> bool:
    """Rule 4: equal but for the upstreams' endpoints (and the version and index). A chain
    target's cluster name and identity follow from the chain and the trust domain, which
    are compared, so only its endpoints can differ. A terminating gateway's assignments
    are not upstreams' (endpoints.py rule 8): it is always translated whole."""
    return (a.terminating is None and len(a.upstreams) == len(b.upstreams)
            and all(getattr(a, f) == getattr(b, f) for f in _SNAPSHOT_FIELDS)
            and all(getattr(u, f) == getattr(v, f) for u, v in zip(a.upstreams, b.upstreams) for f in _UPSTREAM_FIELDS))


def _upstream_assignments(snapshot: ConnectProxySnapshot) -> dict[str, delta.Versioned]:
    ready = snapshot.leaf is not None and bool(snapshot.roots)
    served = knobs.select_upstreams(snapshot)[0] if ready else ()
    out: dict[str, delta.Versioned] = {}
    for up in served:
        for cluster, given in endpoints.cluster_endpoints(up):
            if cluster not in out:
                out[cluster] = _versioned_assignment(cluster, given)
    return out


@functools.lru_cache(maxsize=4096)
def _versioned_assignment(cluster: str, given: tuple[Endpoint, ...]) -> delta.Versioned:
    return delta.versioned(endpoints.assignment(cluster, given))


def refused_upstreams(snapshot: ConnectProxySnapshot) -> tuple[knobs.Refusal, ...]:
    """Rule 2: the upstreams that get no resources, each with the reason."""
    return knobs.select_upstreams(snapshot)[1]


def resource_name(resource: message.Message) -> str:
    """The xDS name of a resource: ``name``, or ``cluster_name`` for a load assignment."""
    field = "cluster_name" if resource.DESCRIPTOR.full_name.endswith("ClusterLoadAssignment") else "name"
    return getattr(resource, field)


def _by_name(resources: Iterable[message.Message]) -> dict[str, message.Message]:
    return {resource_name(r): r for r in sorted(resources, key=resource_name)}


# -- rule 3 -----------------------------------------------------------------------------------
def consistency_problems(resources: Mapping[str, Mapping[str, message.Message]]) -> list[str]:
    """Rule 3: one sentence per dangling name; empty when the resources are consistent. Pure."""
    secrets_ = resources.get(types.SECRET, {})
    clusters_ = resources.get(types.CLUSTER, {})
    assignments = resources.get(types.ENDPOINT, {})
    listeners_ = resources.get(types.LISTENER, {})
    routes = resources.get(types.ROUTE, {})
    problems: list[str] = []
    for type_url, named in resources.items():
        problems += [f"{_short(type_url)} {key!r} is filed under another name than its own ({resource_name(r)!r})"
                     for key, r in named.items() if resource_name(r) != key]
    eds = {_eds_name(c): name for name, c in clusters_.items() if c.type == cluster_pb2.Cluster.EDS}
    problems += [f"endpoints {name!r} belong to no EDS cluster" for name in assignments if name not in eds]
    problems += [f"EDS cluster {cluster!r} has no endpoints resource {name!r}"
                 for name, cluster in eds.items() if name not in assignments]
    for name, listener in listeners_.items():
        problems += [f"listener {name!r} sends traffic to cluster {c!r}, which is not in CDS"
                     for c in _listener_clusters(listener) if c not in clusters_]
        problems += [f"listener {name!r} names route {r!r}, which is not in RDS"
                     for r in _listener_routes(listener) if r not in routes]
        problems += [f"listener {name!r} names secret {s!r}, which is not in SDS"
                     for s in _listener_secrets(listener) if s not in secrets_]
    for name, route in routes.items():
        problems += [f"route {name!r} sends traffic to cluster {c!r}, which is not in CDS"
                     for c in _route_clusters(route) if c not in clusters_]
    for name, cluster in clusters_.items():
        problems += [f"cluster {name!r} names secret {s!r}, which is not in SDS"
                     for s in _cluster_secrets(cluster) if s not in secrets_]
    return problems


def _short(type_url: str) -> str:
    return type_url.rsplit(".", 1)[-1]


def _eds_name(cluster: cluster_pb2.Cluster) -> str:
    return cluster.eds_cluster_config.service_name or cluster.name


def _unpack(packed: any_pb2.Any, cls: type[message.Message]) -> message.Message | None:
    if not packed.Is(cls.DESCRIPTOR):
        return None
    out = cls()
    packed.Unpack(out)
    return out


def _managers(listener: listener_pb2.Listener) -> Iterator[hcm_pb2.HttpConnectionManager]:
    for chain in _chains(listener):
        for f in chain.filters:
            manager = _unpack(f.typed_config, hcm_pb2.HttpConnectionManager)
            if manager is not None:
                yield manager


def _listener_clusters(listener: listener_pb2.Listener) -> Iterator[str]:
    for chain in _chains(listener):
        for f in chain.filters:
            tcp = _unpack(f.typed_config, tcp_proxy_pb2.TcpProxy)
            if tcp is not None:
                yield from [tcp.cluster] if tcp.cluster else (w.name for w in tcp.weighted_clusters.clusters)
    for manager in _managers(listener):
        yield from _route_clusters(manager.route_config)


def _listener_routes(listener: listener_pb2.Listener) -> Iterator[str]:
    yield from (m.rds.route_config_name for m in _managers(listener) if m.HasField("rds"))


def _route_clusters(route: route_pb2.RouteConfiguration) -> Iterator[str]:
    for host in route.virtual_hosts:
        for r in host.routes:
            if not r.HasField("route"):
                continue
            if r.route.cluster:
                yield r.route.cluster
            yield from (w.name for w in r.route.weighted_clusters.clusters)


def _chains(listener: listener_pb2.Listener) -> Iterator[message.Message]:
    yield from listener.filter_chains
    if listener.HasField("default_filter_chain"):
        yield listener.default_filter_chain


def _listener_secrets(listener: listener_pb2.Listener) -> Iterator[str]:
    for chain in _chains(listener):
        context = _unpack(chain.transport_socket.typed_config, tls_pb2.DownstreamTlsContext)
        if context is not None:
            yield from _context_secrets(context.common_tls_context)


def _cluster_secrets(cluster: cluster_pb2.Cluster) -> Iterator[str]:
    context = _unpack(cluster.transport_socket.typed_config, tls_pb2.UpstreamTlsContext)
    if context is not None:
        yield from _context_secrets(context.common_tls_context)


def _context_secrets(common: tls_pb2.CommonTlsContext) -> Iterator[str]:
    """The secrets a context asks over ADS (an operator's SDS server serves the others)."""
    yield from (s.name for s in common.tls_certificate_sds_secret_configs if s.sds_config.HasField("ads"))
    if common.HasField("validation_context_sds_secret_config"):
        yield common.validation_context_sds_secret_config.name
    if common.combined_validation_context.HasField("validation_context_sds_secret_config"):
        yield common.combined_validation_context.validation_context_sds_secret_config.name
