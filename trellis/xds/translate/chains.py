"""An upstream's discovery chain as Envoy clusters, endpoints and routes (pure).

    UpstreamSnapshot.chain (config/entry/chain.py) ─┬─ clusters: one EDS cluster per target,
                                                     │  one aggregate per resolver with failover
                                                     ├─ endpoints: one assignment per target
                                                     └─ route (http-like upstreams, RDS): the
                                                        router's routes / the splitter's weights

Rules (reference/envoy-xds.md §2.6-2.8, consul-config-entries.md §6-8):
1. A target's cluster is named by the target's SNI name (``[subset.]service.ns.dc.internal.
   <trust domain>``); it is an ordinary upstream cluster (clusters.py rules 2-3: TLS with
   that SNI and the target service's SPIFFE ID, the upstream's limits and outlier
   detection) whose ``connect_timeout`` is the upstream's ``connect_timeout_ms`` when set,
   else the ``ConnectTimeout`` of the target's own resolver (5 s by default), and whose
   load-balancing policy is that resolver's: round_robin (Envoy's default), least_request (with ``ChoiceCount``),
   ring_hash (with the ring sizes), maglev, random.
2. A resolver with failover targets sends through an aggregate cluster named
   ``failover~<primary target's cluster>`` whose children are the primary's cluster and
   then each failover target's, in order: Envoy uses the first child with a healthy host,
   so traffic moves on when every primary instance is critical (critical instances are
   not in EDS) and back when one recovers.
3. A tcp upstream (its chain can only be resolvers) sends its ``tcp_proxy`` to the start
   resolver's cluster. An http-like upstream's listener takes its routes over RDS, from a
   ``RouteConfiguration`` named by the upstream id with one virtual host ``*``, so a route
   change reaches open connections and waits behind the clusters it names (make-before-
   break, delta.py rule 3).
4. Routes: a router gives one route per rule in order, then the catch-all; a splitter
   start gives one ``/`` route with weighted clusters; a resolver start one ``/`` route.
   A route to a splitter flattens nested splitters, multiplying weights; weights are in
   hundredths of a percent (total 10,000).
5. A route's match: ``PathExact`` → ``path``, ``PathPrefix`` → ``prefix``, ``PathRegex``
   → ``safe_regex``, none → prefix ``/``; ``CaseInsensitive``; each header (exact, prefix,
   suffix, regex or present; ``Invert``); methods as a ``:method`` regex; each query
   parameter (exact, regex or present).
6. A route's action: ``PrefixRewrite``; ``RequestTimeout`` (else the resolver's) →
   ``timeout``; ``IdleTimeout``; retries: ``RetryOn`` plus ``connect-failure`` with
   ``RetryOnConnectFailure`` plus ``retriable-status-codes`` with ``RetryOnStatusCodes``,
   ``num_retries`` only when ``NumRetries`` > 0 (Envoy's default is 1); request and
   response header changes (add appends, set overwrites, remove); a split's header
   changes go on its weighted cluster; the resolver's hash policies (ring_hash, maglev)
   → the action's ``hash_policy``.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.clusters.aggregate.v3 import cluster_pb2 as aggregate_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from trellis.config.entry.chain import ChainNode, ChainResolver, CompiledChain
from trellis.config.entry.model import HTTPHeaderModifiers
from trellis.config.entry.model_chain import LoadBalancer, ServiceRouteDestination, ServiceRouteHTTPMatch
from trellis.proxycfg.model import ConnectProxySnapshot, TargetSnapshot, UpstreamSnapshot
from trellis.xds.translate import clusters, core, endpoints

AGGREGATE = "envoy.clusters.aggregate"
FAILOVER_PREFIX = "failover~"
_Cluster = cluster_pb2.Cluster
_LB = {"": _Cluster.ROUND_ROBIN, "round_robin": _Cluster.ROUND_ROBIN, "least_request": _Cluster.LEAST_REQUEST,
       "ring_hash": _Cluster.RING_HASH, "maglev": _Cluster.MAGLEV, "random": _Cluster.RANDOM}
_HeaderOption = base_pb2.HeaderValueOption


def _targets(up: UpstreamSnapshot) -> dict[str, TargetSnapshot]:
    return {t.id: t for t in up.targets}


def _resolvers(chain: CompiledChain) -> list[ChainResolver]:
    return [n.resolver for n in chain.nodes if n.resolver is not None]


# -- clusters and endpoints (rules 1-2) ---------------------------------------------------------
def build_clusters(snapshot: ConnectProxySnapshot, up: UpstreamSnapshot) -> list[cluster_pb2.Cluster]:
    """Every cluster ``up``'s chain sends to."""
    assert up.chain is not None
    targets = _targets(up)
    out = []
    for tid, t in sorted(targets.items()):
        settings = up.chain.target(tid)  # its own resolver's connect timeout and load balancer
        timeout_ms = up.connect_timeout_ms or round(settings.connect_timeout * 1000)
        cluster = clusters.eds_cluster(snapshot, up, name=t.sni, spiffe_id=t.spiffe_id, connect_timeout_ms=timeout_ms)
        set_load_balancer(cluster, settings.load_balancer)
        out.append(cluster)
    for r in _resolvers(up.chain):
        if r.failover:
            children = [targets[tid].sni for tid in (r.target, *r.failover)]
            out.append(_Cluster(
                name=resolver_cluster(up, r), alt_stat_name=resolver_cluster(up, r),
                connect_timeout=core.duration(round(r.connect_timeout * 1000)), lb_policy=_Cluster.CLUSTER_PROVIDED,
                cluster_type=_Cluster.CustomClusterType(name=AGGREGATE, typed_config=core.pack(
                    aggregate_pb2.ClusterConfig(clusters=list(dict.fromkeys(children))))),
            ))
    return out


def set_load_balancer(cluster: cluster_pb2.Cluster, lb: LoadBalancer | None) -> None:
    """Rule 1: a resolver's load-balancing policy on ``cluster`` (a terminating gateway's
    linked-service clusters take it too, clusters.py rule 6)."""
    if lb is None:
        return
    cluster.lb_policy = _LB[lb.policy]
    if lb.policy == "least_request" and lb.least_request_config and lb.least_request_config.choice_count:
        cluster.least_request_lb_config.choice_count.value = lb.least_request_config.choice_count
    if lb.policy == "ring_hash" and lb.ring_hash_config:
        rh = lb.ring_hash_config
        if rh.minimum_ring_size:
            cluster.ring_hash_lb_config.minimum_ring_size.value = rh.minimum_ring_size
        if rh.maximum_ring_size:
            cluster.ring_hash_lb_config.maximum_ring_size.value = rh.maximum_ring_size


def resolver_cluster(up: UpstreamSnapshot, r: ChainResolver) -> str:
    """Rule 2: where a resolver sends: its target's cluster, or the failover aggregate."""
    primary = _targets(up)[r.target].sni
    return f"{FAILOVER_PREFIX}{primary}" if r.failover else primary


def start_cluster(up: UpstreamSnapshot) -> str:
    """Rule 3: a tcp upstream's one cluster (its chain starts at a resolver)."""
    assert up.chain is not None
    node = up.chain.node(up.chain.start)
    assert node.resolver is not None, f"a tcp chain starts at a resolver, not {node.name}"
    return resolver_cluster(up, node.resolver)


def build_assignments(up: UpstreamSnapshot) -> list[endpoint_pb2.ClusterLoadAssignment]:
    """One assignment per target (shared across proxies, endpoints.py rule 6)."""
    return [endpoints.assignment(t.sni, t.endpoints) for t in up.targets]


# -- routes (rules 3-6) -------------------------------------------------------------------------
def build_route(up: UpstreamSnapshot, name: str) -> route_pb2.RouteConfiguration:
    """The RDS route configuration ``name`` (the upstream id) of an http-like upstream."""
    chain = up.chain
    assert chain is not None
    start = chain.node(chain.start)
    if start.kind == "router":
        routes = []
        for r in start.routes:
            route = route_components_pb2.Route(match=route_match(r.match), route=_action(up, r.next, r.destination))
            route_headers(route, r.destination)
            routes.append(route)
    else:
        routes = [route_components_pb2.Route(match=route_components_pb2.RouteMatch(prefix="/"),
                                             route=_action(up, start.name, None))]
    return route_pb2.RouteConfiguration(name=name, virtual_hosts=[
        route_components_pb2.VirtualHost(name=name, domains=["*"], routes=routes)])


def route_match(m: ServiceRouteHTTPMatch | None) -> route_components_pb2.RouteMatch:
    """Rule 5."""
    out = route_components_pb2.RouteMatch()
    if m is None:
        out.prefix = "/"
        return out
    if m.path_exact:
        out.path = m.path_exact
    elif m.path_prefix:
        out.prefix = m.path_prefix
    elif m.path_regex:
        out.safe_regex.CopyFrom(_regex(m.path_regex))
    else:
        out.prefix = "/"
    if m.case_insensitive:
        out.case_sensitive.value = False
    for h in m.header:
        header = route_components_pb2.HeaderMatcher(name=h.name, invert_match=h.invert)
        if h.present:
            header.present_match = True
        elif h.exact:
            header.string_match.exact = h.exact
        elif h.prefix:
            header.string_match.prefix = h.prefix
        elif h.suffix:
            header.string_match.suffix = h.suffix
        elif h.regex:
            header.string_match.safe_regex.CopyFrom(_regex(h.regex))
        else:
            header.present_match = True
        out.headers.append(header)
    if m.methods:
        out.headers.append(route_components_pb2.HeaderMatcher(
            name=":method", string_match=string_pb2.StringMatcher(safe_regex=_regex("|".join(m.methods)))))
    for q in m.query_param:
        param = route_components_pb2.QueryParameterMatcher(name=q.name)
        if q.exact:
            param.string_match.exact = q.exact
        elif q.regex:
            param.string_match.safe_regex.CopyFrom(_regex(q.regex))
        else:
            param.present_match = True
        out.query_parameters.append(param)
    return out


def _regex(pattern: str) -> regex_pb2.RegexMatcher:
    return regex_pb2.RegexMatcher(regex=pattern)


def _action(up: UpstreamSnapshot, node_name: str, d: ServiceRouteDestination | None) -> route_components_pb2.RouteAction:
    """Rule 6: the action for a route leading to ``node_name`` (a splitter or a resolver)."""
    chain = up.chain
    assert chain is not None
    node = chain.node(node_name)
    action = route_components_pb2.RouteAction()
    request_timeout = 0.0
    lb: LoadBalancer | None = None
    if node.resolver is not None:
        action.cluster = resolver_cluster(up, node.resolver)
        request_timeout, lb = node.resolver.request_timeout, node.resolver.load_balancer
    else:
        action.weighted_clusters.CopyFrom(route_components_pb2.WeightedCluster(clusters=_weighted(up, node, 1.0)))
    if d is not None:
        if d.prefix_rewrite:
            action.prefix_rewrite = d.prefix_rewrite
        request_timeout = d.request_timeout or request_timeout
        if d.idle_timeout:
            action.idle_timeout.CopyFrom(_duration(d.idle_timeout))
        retry = _retry(d)
        if retry is not None:
            action.retry_policy.CopyFrom(retry)
    set_resolver_timeout_and_hashing(action, request_timeout, lb)
    return action


def set_resolver_timeout_and_hashing(action: route_components_pb2.RouteAction, request_timeout: float,
                                     lb: LoadBalancer | None) -> None:
    """Rule 6: a request timeout (0: Envoy's default) and the resolver's hash policies
    (ring_hash, maglev) on a route action (a terminating gateway's linked route too)."""
    if request_timeout:
        action.timeout.CopyFrom(_duration(request_timeout))
    if lb is not None and lb.policy in ("ring_hash", "maglev"):
        action.hash_policy.extend(_hash_policy(p) for p in lb.hash_policies)


def _weighted(up: UpstreamSnapshot, splitter: ChainNode, share: float) -> list[route_components_pb2.WeightedCluster.ClusterWeight]:
    """Rule 4: a splitter's splits as weighted clusters, nested splitters flattened."""
    assert up.chain is not None
    out: list[route_components_pb2.WeightedCluster.ClusterWeight] = []
    for split in splitter.splits:
        node = up.chain.node(split.next)
        part = share * split.weight / 100.0
        if node.resolver is None:
            out.extend(_weighted(up, node, part))
            continue
        weight = round(part * 10_000)
        if weight <= 0:
            continue  # Envoy refuses a zero weight; a 0% split sends nothing either way
        cw = route_components_pb2.WeightedCluster.ClusterWeight(name=resolver_cluster(up, node.resolver),
                                                                 weight=wrappers_pb2.UInt32Value(value=weight))
        header_changes(cw, split.request_headers, split.response_headers)
        out.append(cw)
    return out


def header_changes(target: route_components_pb2.WeightedCluster.ClusterWeight | route_components_pb2.Route
                   | route_components_pb2.VirtualHost,
                   request: HTTPHeaderModifiers | None, response: HTTPHeaderModifiers | None) -> None:
    """Rule 6's header changes on a weighted cluster, a route or (ingress) a virtual host."""
    for mods, add, remove in ((request, target.request_headers_to_add, target.request_headers_to_remove),
                              (response, target.response_headers_to_add, target.response_headers_to_remove)):
        if mods is None:
            continue
        for name, value in sorted(mods.add.items()):
            add.append(_HeaderOption(header=base_pb2.HeaderValue(key=name, value=value),
                                     append_action=_HeaderOption.APPEND_IF_EXISTS_OR_ADD))
        for name, value in sorted(mods.set.items()):
            add.append(_HeaderOption(header=base_pb2.HeaderValue(key=name, value=value),
                                     append_action=_HeaderOption.OVERWRITE_IF_EXISTS_OR_ADD))
        remove.extend(mods.remove)


def route_headers(route: route_components_pb2.Route, d: ServiceRouteDestination | None) -> None:
    """Rule 6: a route destination's header changes, on the route."""
    if d is not None:
        header_changes(route, d.request_headers, d.response_headers)


def _retry(d: ServiceRouteDestination) -> route_components_pb2.RetryPolicy | None:
    conditions = list(d.retry_on)
    if d.retry_on_connect_failure and "connect-failure" not in conditions:
        conditions.append("connect-failure")
    if d.retry_on_status_codes:
        conditions.append("retriable-status-codes")
    if not conditions and not d.num_retries:
        return None
    policy = route_components_pb2.RetryPolicy(retry_on=",".join(conditions),
                                              retriable_status_codes=list(d.retry_on_status_codes))
    if d.num_retries > 0:
        policy.num_retries.value = d.num_retries
    return policy


def _hash_policy(p) -> route_components_pb2.RouteAction.HashPolicy:  # noqa: ANN001 - model_chain.HashPolicy
    hp = route_components_pb2.RouteAction.HashPolicy(terminal=p.terminal)
    if p.source_ip:
        hp.connection_properties.source_ip = True
    elif p.field == "header":
        hp.header.header_name = p.field_value
    elif p.field == "query_parameter":
        hp.query_parameter.name = p.field_value
    elif p.field == "cookie":
        hp.cookie.name = p.field_value
        c = p.cookie_config
        if c is not None:
            if c.path:
                hp.cookie.path = c.path
            if c.session:
                hp.cookie.ttl.CopyFrom(duration_pb2.Duration())  # a session cookie: TTL 0
            elif c.ttl:
                hp.cookie.ttl.CopyFrom(_duration(c.ttl))
    return hp


def _duration(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(round(seconds * 1e9))
    return out
