"""A terminating gateway's linked services by protocol (listeners.py rule 7, routes.py,
clusters.py rule 6): tcp at L4, http-like through an HTTP manager whose route carries
the service's intentions."""

from __future__ import annotations

import dataclasses

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import json_format
from xds_scenarios import intentions, linked, linked_subsets, scenarios, terminating_gateway

from trellis.config.entry.model_chain import HashPolicy, LoadBalancer
from trellis.proxycfg.model import Endpoint
from trellis.xds import types
from trellis.xds.resources import build_resources, consistency_problems
from trellis.xds.translate import problems, rbac

ENDPOINTS = (Endpoint("10.0.5.1", 8080, "external", "ext", "passing"),)
L7_ALLOW_GET_OK = intentions({"Name": "ext", "Sources": [
    {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"PathExact": "/ok", "Methods": ["GET"]}}]}]})
L4_ALLOW = intentions({"Name": "ext", "Sources": [{"Name": "web", "Action": "allow"}]})


def gateway(protocol: str, all_intentions=L7_ALLOW_GET_OK, endpoints=ENDPOINTS, **kw):
    return terminating_gateway((linked("ext", endpoints, protocol=protocol, all_intentions=all_intentions, **kw),))


def chain_of(resources: dict):
    """The one linked service's chain (the listener's last is the closing fallback)."""
    (listener,) = resources[types.LISTENER].values()
    chain, fallback = listener.filter_chains
    assert fallback.name == "fallback" and not fallback.HasField("filter_chain_match")
    assert [f.name for f in fallback.filters] == ["envoy.filters.network.direct_response"]
    return chain


def unpack(packed, cls):
    out = cls()
    assert packed.Unpack(out), f"not a {cls.__name__}"
    return out


@pytest.mark.parametrize(("protocol", "filters", "alpn"), [
    ("tcp", [rbac.NETWORK_FILTER, "envoy.filters.network.tcp_proxy"], []),
    ("http", ["envoy.filters.network.http_connection_manager"], ["http/1.1"]),
    ("http2", ["envoy.filters.network.http_connection_manager"], ["h2", "http/1.1"]),
    ("grpc", ["envoy.filters.network.http_connection_manager"], ["h2", "http/1.1"]),
], ids=["tcp", "http", "http2", "grpc"])
def test_the_linked_service_chain_follows_its_protocol(protocol: str, filters: list[str], alpn: list[str]) -> None:
    resources = build_resources(gateway(protocol))
    chain = chain_of(resources)
    assert [f.name for f in chain.filters] == filters
    context = unpack(chain.transport_socket.typed_config, tls_pb2.DownstreamTlsContext)
    assert list(context.common_tls_context.alpn_protocols) == alpn
    sni = chain.filter_chain_match.server_names[0]
    assert list(resources[types.ROUTE]) == ([] if protocol == "tcp" else [sni])
    assert consistency_problems(resources) == []


@pytest.mark.parametrize("protocol", ["http", "http2", "grpc"])
def test_an_http_like_chain_takes_its_route_by_sni_and_denies_without_it(protocol: str) -> None:
    chain = chain_of(build_resources(gateway(protocol)))
    manager = unpack(chain.filters[0].typed_config, hcm_pb2.HttpConnectionManager)
    assert manager.rds.route_config_name == chain.filter_chain_match.server_names[0]
    assert manager.stat_prefix == "upstream.ext.default.default.dc1"
    assert manager.normalize_path.value
    assert manager.HasField("http2_protocol_options") == (protocol != "http")
    own = [f for f in manager.http_filters if f.name == rbac.HTTP_FILTER]
    assert unpack(own[0].typed_config, http_rbac_pb2.RBAC) == rbac.deny_all_http_filter()
    assert manager.http_filters[-1].name == "envoy.filters.http.router"


def test_the_route_sends_everything_to_the_cluster_with_the_service_intentions() -> None:
    resources = build_resources(gateway("http"))
    (route,) = resources[types.ROUTE].values()
    assert isinstance(route, route_pb2.RouteConfiguration)
    (vhost,) = route.virtual_hosts
    (r,) = vhost.routes
    assert (list(vhost.domains), r.match.prefix, r.route.cluster) == (["*"], "/", route.name)
    assert route.name in resources[types.CLUSTER]
    per_route = unpack(r.typed_per_filter_config[rbac.HTTP_FILTER], http_rbac_pb2.RBACPerRoute)
    assert list(per_route.rbac.rules.policies) == ["consul-intentions-layer7-0"]  # an L7 intention, not an L4 deny


@pytest.mark.parametrize(("auto", "expected"), [(True, True), (False, False)], ids=["default", "disabled"])
def test_the_host_is_rewritten_unless_the_entry_disables_it(auto: bool, expected: bool) -> None:
    (route,) = build_resources(gateway("http", auto_host_rewrite=auto))[types.ROUTE].values()
    assert route.virtual_hosts[0].routes[0].route.auto_host_rewrite.value is expected


@pytest.mark.parametrize(("protocol", "http2"), [("tcp", False), ("http", False), ("http2", True), ("grpc", True)])
def test_the_external_cluster_speaks_http2_for_http2_and_grpc(protocol: str, http2: bool) -> None:
    (cluster,) = build_resources(gateway(protocol))[types.CLUSTER].values()
    assert bool(cluster.typed_extension_protocol_options) is http2


def test_an_intention_change_on_an_http_service_changes_only_its_route() -> None:
    before = build_resources(gateway("http"))
    after = build_resources(gateway("http", all_intentions=L4_ALLOW))
    assert before[types.LISTENER] == after[types.LISTENER]  # the chain is not replaced, so not drained
    assert before[types.CLUSTER] == after[types.CLUSTER]
    assert before[types.ROUTE] != after[types.ROUTE]


def test_an_http_like_linked_service_is_no_longer_a_problem() -> None:
    assert not [p for p in problems.problems(gateway("http")) if "ext" in p]


def test_a_linked_service_without_a_leaf_gets_no_route() -> None:
    snap = gateway("http")
    t = dataclasses.replace(snap.terminating, services=tuple(
        dataclasses.replace(s, leaf=None) for s in snap.terminating.services))
    assert build_resources(dataclasses.replace(snap, terminating=t))[types.ROUTE] == {}


def test_the_golden_http_scenario_hangs_together() -> None:
    assert consistency_problems(build_resources(scenarios()["terminating_gateway_http_linked"])) == []


# -- the linked service's service-resolver (clusters.py rule 6, knobs.py rule 8) --------------
def resolver_gateway(protocol: str, **kw):
    return terminating_gateway((linked_subsets("ext", protocol, **kw),))


def test_each_subset_gets_a_chain_on_its_sni_with_the_services_identity_and_the_plain_sni_goes_to_the_default():
    resources = build_resources(resolver_gateway("tcp"))
    (listener,) = resources[types.LISTENER].values()
    sni = listener.filter_chains[0].filter_chain_match.server_names[0]
    routed = {c.filter_chain_match.server_names[0]: c for c in listener.filter_chains[:-1]}
    assert list(routed) == [sni, f"v1.{sni}", f"v2.{sni}"]
    for name, chain in routed.items():
        rbac_filter, proxy = chain.filters
        assert rbac_filter.name == rbac.NETWORK_FILTER
        assert unpack(proxy.typed_config, tcp_proxy_pb2.TcpProxy).cluster == (f"v1.{sni}" if name == sni else name)
        context = unpack(chain.transport_socket.typed_config, tls_pb2.DownstreamTlsContext)
        assert context.common_tls_context.tls_certificate_sds_secret_configs[0].name == types.leaf_secret("default", "ext")
    assert rbac_filter.typed_config == routed[sni].filters[0].typed_config  # the same intentions
    clusters = resources[types.CLUSTER]
    assert sorted(clusters) == [sni, f"v1.{sni}", f"v2.{sni}"]
    assert all(c.type == cluster_pb2.Cluster.EDS for c in clusters.values())  # IPs, tcp: live (rbac.py rule 10)
    assert [e.endpoint.address.socket_address.address for e in resources[types.ENDPOINT][f"v2.{sni}"].endpoints[0]
            .lb_endpoints] == ["10.0.6.2"]
    assert consistency_problems(resources) == []


def test_the_resolver_sets_connect_timeout_load_balancer_request_timeout_and_hash_policy():
    lb = LoadBalancer(policy="maglev", hash_policies=(HashPolicy(source_ip=True),))
    resources = build_resources(resolver_gateway("http", connect_timeout_ms=2500, request_timeout=3.5,
                                                 load_balancer=lb))
    for cluster in resources[types.CLUSTER].values():
        assert (cluster.connect_timeout.ToMilliseconds(), cluster.lb_policy) == (2500, cluster.MAGLEV)
    routes = resources[types.ROUTE]
    assert len(routes) == 3
    for name, route in routes.items():
        (r,) = route.virtual_hosts[0].routes
        assert r.route.cluster == (name if name.startswith("v") else f"v1.{name}")
        assert r.route.timeout.ToMilliseconds() == 3500
        assert r.route.hash_policy[0].connection_properties.source_ip
    assert consistency_problems(resources) == []


def test_an_empty_subset_is_reported_not_dropped():
    ls = linked_subsets("ext", "tcp")
    ls = dataclasses.replace(ls, subsets=(dataclasses.replace(ls.subsets[0], endpoints=()), ls.subsets[1]))
    found = problems.problems(terminating_gateway((ls,)))
    assert ("linked service ext: no usable external instance passes the filter of its subset v1; connections to "
            "that subset fail") in found


def test_with_nothing_served_the_listener_is_there_and_only_closes_connections():
    """The gateway's TCP check passes before any linked service is served, as Consul's does."""
    snap = terminating_gateway(())
    (listener,) = build_resources(snap)[types.LISTENER].values()
    assert [c.name for c in listener.filter_chains] == ["fallback"]
    assert problems.problems(snap) == (
        "no linked service is served yet (none linked, or no leaf or roots yet); the gateway accepts connections and "
        "closes them",)


HOSTS = (Endpoint("b.example.com", 443, "external", "ext-2", "passing"),
         Endpoint("a.example.com", 443, "external", "ext-1", "passing"))


@pytest.mark.parametrize(("given", "kind", "hosts", "problem"), [
    (None, "STRICT_DNS", 2, None),
    ("STRICT_DNS", "STRICT_DNS", 2, None),
    ("logical_dns", "LOGICAL_DNS", 1,
     "linked service ext: LOGICAL_DNS takes one instance, and 2 are usable; only a.example.com:443 gets traffic"),
    ("EDS", "STRICT_DNS", 2,
     'Proxy.Config envoy_dns_discovery_type "EDS" is not one of STRICT_DNS or LOGICAL_DNS; host names resolve '
     "with STRICT_DNS"),
    (7, "STRICT_DNS", 2,
     "Proxy.Config envoy_dns_discovery_type 7 is not one of STRICT_DNS or LOGICAL_DNS; host names resolve with "
     "STRICT_DNS"),
])
def test_envoy_dns_discovery_type_picks_how_host_names_resolve(given, kind, hosts, problem):
    snap = terminating_gateway((linked("ext", HOSTS),))
    if given is not None:
        snap = dataclasses.replace(snap, config={"Envoy_DNS_Discovery_Type": given})
    (cluster,) = build_resources(snap)[types.CLUSTER].values()
    assert cluster_pb2.Cluster.DiscoveryType.Name(cluster.type) == kind
    assert len(cluster.load_assignment.endpoints[0].lb_endpoints) == hosts
    assert cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address == \
        "a.example.com"
    assert problems.problems(snap) == ((problem,) if problem else ())


def test_logical_dns_leaves_ip_instances_static():
    snap = dataclasses.replace(terminating_gateway((linked("ext", ENDPOINTS, protocol="http"),)),
                               config={"envoy_dns_discovery_type": "LOGICAL_DNS"})
    (cluster,) = build_resources(snap)[types.CLUSTER].values()
    assert cluster.type == cluster_pb2.Cluster.STATIC
    assert problems.problems(snap) == ()


# -- live intentions on a tcp linked service (rbac.py rule 10) ------------------------------
def test_a_tcp_linked_service_of_ips_takes_its_decisions_from_its_endpoints_metadata():
    deny = intentions({"Name": "ext", "Sources": [{"Name": "web", "Action": "deny"}]})
    before = build_resources(gateway("tcp", all_intentions=L4_ALLOW))
    after = build_resources(gateway("tcp", all_intentions=deny))
    name = next(iter(before[types.CLUSTER]))
    assert before[types.CLUSTER][name].type == cluster_pb2.Cluster.EDS
    assert chain_of(before).filters[0].typed_config == chain_of(after).filters[0].typed_config  # nothing drained
    assert before[types.LISTENER] == after[types.LISTENER] and before[types.CLUSTER] == after[types.CLUSTER]

    def table(resources) -> dict:
        (lb,) = resources[types.ENDPOINT][name].endpoints[0].lb_endpoints
        return json_format.MessageToDict(lb.metadata.filter_metadata[rbac.LIVE_METADATA])

    assert table(before)["sources"]["default"]["web"] is True
    assert table(after)["sources"]["default"]["web"] is False
    assert consistency_problems(after) == []


@pytest.mark.parametrize(("protocol", "endpoints"), [
    ("http", ENDPOINTS),  # its rules travel in the route
    ("tcp", (Endpoint("api.external.com", 443, "external", "ext", "passing"),)),  # DNS clusters carry no EDS metadata
])
def test_other_linked_services_keep_their_rules_in_the_chain_or_route(protocol, endpoints):
    resources = build_resources(gateway(protocol, all_intentions=L4_ALLOW, endpoints=endpoints))
    assert not resources[types.ENDPOINT]
    assert all(c.type != cluster_pb2.Cluster.EDS for c in resources[types.CLUSTER].values())
