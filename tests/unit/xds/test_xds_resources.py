"""build_resources and consistency_problems: what each piece of a snapshot turns into."""

from __future__ import annotations

import dataclasses
import json

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import health_check_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import json_format
from xds_scenarios import ALLOW_DEFAULT, scenarios, snapshot, upstream

from trellis.proxycfg.build import from_json, to_json
from trellis.proxycfg.model import Endpoint, PublicListener
from trellis.xds import delta, types
from trellis.xds.resources import build_resources, consistency_problems, refused_upstreams, translate
from trellis.xds.translate import knobs

API_SNI = upstream("api", 1).sni


def names(resources: dict) -> dict[str, list[str]]:
    return {type_url.rsplit(".", 1)[-1]: list(named) for type_url, named in resources.items()}


def unpack(packed, cls):
    out = cls()
    assert packed.Unpack(out), f"not a {cls.__name__}"
    return out


def public_chains(resources: dict) -> dict[str, listener_pb2.FilterChain]:
    return {c.name: c for c in resources[types.LISTENER][types.PUBLIC_LISTENER].filter_chains}


# -- what gets built --------------------------------------------------------------------------
def test_a_sidecar_gets_secrets_clusters_endpoints_and_listeners() -> None:
    got = names(build_resources(snapshot(upstreams=(upstream("api", 9191),))))
    assert got == {
        "Secret": ["leaf/default/web", "roots"],
        "Cluster": [API_SNI, "local_app"],
        "ClusterLoadAssignment": [API_SNI, "local_app"],  # local_app: EDS for a tcp service (live RBAC)
        "Listener": ["api:127.0.0.1:9191", "public_listener"],
        "RouteConfiguration": [],
    }


@pytest.mark.parametrize("missing", ["leaf", "roots"])
def test_without_a_leaf_or_roots_nothing_names_a_missing_secret(missing: str) -> None:
    gone = {"leaf": None} if missing == "leaf" else {"roots": ()}
    snap = dataclasses.replace(snapshot(upstreams=(upstream("api", 9191),)), **gone)
    resources = build_resources(snap)
    assert names(resources)["Listener"] == []
    assert names(resources)["Cluster"] == ["local_app"]
    assert consistency_problems(resources) == []


REFUSED = {
    "snapshot_error": (upstream("db", 9191, error="upstream db is in datacenter 'dc2'"), "datacenter 'dc2'"),
    "no_bind_port": (upstream("db", 0), "no local_bind_port"),
    "host_name_bind": (dataclasses.replace(upstream("db", 9191), local_bind_address="localhost"), "not an IP"),
    "clash_with_public": (upstream("db", 21000), "clashes with the public listener"),
    "clash_with_earlier_upstream": (dataclasses.replace(upstream("db", 9191), local_bind_address="0.0.0.0"),
                                    "clashes with upstream api"),
}


@pytest.mark.parametrize(("bad", "reason"), list(REFUSED.values()), ids=list(REFUSED))
def test_a_refused_upstream_gets_nothing_and_says_why(bad, reason: str) -> None:
    snap = snapshot(upstreams=(upstream("api", 9191), bad))
    resources = build_resources(snap)
    assert names(resources)["Listener"] == ["api:127.0.0.1:9191", "public_listener"]
    assert names(resources)["Cluster"] == [API_SNI, "local_app"]
    [refusal] = refused_upstreams(snap)
    assert refusal.upstream == bad and reason in refusal.reason


def test_two_upstreams_to_one_service_share_the_cluster() -> None:
    resources = build_resources(snapshot(upstreams=(upstream("api", 9191), upstream("api", 9192))))
    assert names(resources)["Listener"] == ["api:127.0.0.1:9191", "api:127.0.0.1:9192", "public_listener"]
    assert names(resources)["Cluster"] == [API_SNI, "local_app"]


# -- listeners --------------------------------------------------------------------------------
PUBLIC_FILTERS = {
    "tcp": ["envoy.filters.network.rbac", "envoy.filters.network.tcp_proxy"],
    "http": ["envoy.filters.network.http_connection_manager"],
}
HTTP_FILTERS = {
    "http": ["envoy.filters.http.rbac", "envoy.filters.http.router"],
    "http2": ["envoy.filters.http.rbac", "envoy.filters.http.router"],
    "grpc": ["envoy.filters.http.grpc_stats", "envoy.filters.http.grpc_http1_bridge", "envoy.filters.http.rbac",
             "envoy.filters.http.router"],
}


@pytest.mark.parametrize("protocol", ["tcp", "http", "http2", "grpc", "udp"])
def test_public_filters_follow_the_protocol(protocol: str) -> None:
    chains = public_chains(build_resources(snapshot(protocol=protocol)))
    assert list(chains) == ["mtls", "plaintext_health"]
    mtls = chains["mtls"]
    assert mtls.filter_chain_match.transport_protocol == "tls"
    assert [f.name for f in mtls.filters] == PUBLIC_FILTERS["http" if protocol in HTTP_FILTERS else "tcp"]
    if protocol in HTTP_FILTERS:
        resources = build_resources(snapshot(protocol=protocol))
        manager = unpack(mtls.filters[0].typed_config, hcm_pb2.HttpConnectionManager)
        assert [h.name for h in manager.http_filters] == HTTP_FILTERS[protocol]
        assert manager.rds.route_config_name == "public_listener"  # routes over RDS: per-route RBAC
        route = resources[types.ROUTE]["public_listener"]
        assert route.virtual_hosts[0].routes[0].route.cluster == "local_app"


@pytest.mark.parametrize(("stop", "status"), [(False, 200), (True, 503)])
def test_plaintext_chain_answers_only_get_health(stop: bool, status: int) -> None:
    chain = public_chains(build_resources(snapshot(stop=stop)))["plaintext_health"]
    assert chain.filter_chain_match.transport_protocol == "raw_buffer"
    assert not chain.HasField("transport_socket")
    manager = unpack(chain.filters[0].typed_config, hcm_pb2.HttpConnectionManager)
    health, other = manager.route_config.virtual_hosts[0].routes
    assert (health.match.path, health.match.headers[0].name, health.match.headers[0].string_match.exact) == \
        ("/health", ":method", "GET")
    assert health.direct_response.status == status
    assert (other.match.prefix, other.direct_response.status) == ("/", 403)


def test_route_timeouts_come_from_the_proxy_config() -> None:
    snap = snapshot(protocol="http", config={"local_request_timeout_ms": 30000, "local_idle_timeout_ms": "bad"})
    action = build_resources(snap)[types.ROUTE]["public_listener"].virtual_hosts[0].routes[0].route
    assert action.timeout.ToMilliseconds() == 30000
    assert not action.HasField("idle_timeout")


@pytest.mark.parametrize(("ns", "protocol", "listener"), [
    ("default", "tcp", "api:127.0.0.1:9191"),
    ("team-a", "http", "default/team-a/api:127.0.0.1:9191"),
])
def test_upstream_listener_names_and_filters(ns: str, protocol: str, listener: str) -> None:
    up = upstream("api", 9191, ns=ns, protocol=protocol)
    resources = build_resources(snapshot(upstreams=(up,)))
    [f] = resources[types.LISTENER][listener].filter_chains[0].filters
    if protocol == "tcp":
        proxy = unpack(f.typed_config, tcp_proxy_pb2.TcpProxy)
        assert (proxy.cluster, proxy.stat_prefix) == (up.sni, "upstream.api.default.default.dc1")
    else:
        manager = unpack(f.typed_config, hcm_pb2.HttpConnectionManager)
        assert [h.name for h in manager.http_filters] == ["envoy.filters.http.router"]
        assert manager.route_config.name == "default/team-a/api"
        assert manager.route_config.virtual_hosts[0].routes[0].route.cluster == up.sni


# -- clusters ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("given", "expected"), [(0, 5000), (2500, 2500)])
def test_connect_timeouts_default_to_five_seconds(given: int, expected: int) -> None:
    resources = build_resources(snapshot(local_connect_timeout_ms=given,
                                         upstreams=(upstream("api", 9191, connect_timeout_ms=given),)))
    for name in ("local_app", API_SNI):
        assert resources[types.CLUSTER][name].connect_timeout.ToMilliseconds() == expected


LIMITS = {
    "absent": ({}, None),
    "all": ({"limits": {"max_connections": 1, "max_pending_requests": 2, "max_concurrent_requests": 3}},
            {"max_connections": 1, "max_pending_requests": 2, "max_requests": 3}),
    "zero_is_a_value": ({"limits": {"max_connections": 0}}, {"max_connections": 0}),
    "strings_and_keys_in_any_case": ({"Limits": {"Max_Connections": "10"}}, {"max_connections": 10}),
    "nonsense_is_left_to_envoy": ({"limits": {"max_connections": -1, "max_pending_requests": True,
                                              "max_concurrent_requests": "x"}}, None),
}


@pytest.mark.parametrize(("config", "expected"), list(LIMITS.values()), ids=list(LIMITS))
def test_circuit_breakers_only_with_limits(config: dict, expected: dict | None) -> None:
    cluster = build_resources(snapshot(upstreams=(upstream("api", 9191, config=config),)))[types.CLUSTER][API_SNI]
    if expected is None:
        assert not cluster.HasField("circuit_breakers")
        return
    [threshold] = cluster.circuit_breakers.thresholds
    assert {f.name: v.value for f, v in threshold.ListFields()} == expected


OUTLIERS = {
    "absent_is_envoys_defaults": ({}, {}),
    "consul_names": (
        {"passive_health_check": {"interval": "10s", "max_failures": 3, "enforcing_consecutive_5xx": 80,
                                  "max_ejection_percent": 50, "base_ejection_time": "30s"}},
        {"interval": "10s", "consecutive_5xx": 3, "enforcing_consecutive_5xx": 80, "max_ejection_percent": 50,
         "base_ejection_time": "30s"}),
    "nanoseconds_and_long_ejections": (
        {"passive_health_check": {"interval": 1_000_000_000, "base_ejection_time": "10m"}},
        {"interval": "1s", "base_ejection_time": "600s", "max_ejection_time": "600s"}),
    "nonsense_is_left_to_envoy": ({"passive_health_check": {"interval": "soon", "max_failures": 0,
                                                            "max_ejection_percent": 101}}, {}),
}


@pytest.mark.parametrize(("config", "expected"), list(OUTLIERS.values()), ids=list(OUTLIERS))
def test_outlier_detection_is_always_there(config: dict, expected: dict) -> None:
    cluster = build_resources(snapshot(upstreams=(upstream("api", 9191, config=config),)))[types.CLUSTER][API_SNI]
    assert cluster.HasField("outlier_detection")
    assert json_format.MessageToDict(cluster.outlier_detection, preserving_proto_field_name=True) == expected


def test_local_app_by_host_name_is_resolved_by_envoy() -> None:
    snap = dataclasses.replace(snapshot(), public=PublicListener("0.0.0.0", 21000, "app.local", 8080, "tcp", 0))
    assert build_resources(snap)[types.CLUSTER]["local_app"].type == cluster_pb2.Cluster.STRICT_DNS


# -- endpoints --------------------------------------------------------------------------------
def test_endpoints_follow_the_health_rule() -> None:
    up = upstream("api", 9191, endpoints=(
        Endpoint("10.0.0.2", 21000, "n2", "b", "warning", weight=500),
        Endpoint("10.0.0.1", 21000, "n1", "a", "passing", weight=0),
        Endpoint("10.0.0.3", 21000, "n3", "c", "critical"),
        Endpoint("api.internal", 21000, "n4", "d", "passing"),
    ))
    [group] = build_resources(snapshot(upstreams=(up,)))[types.ENDPOINT][API_SNI].endpoints
    got = [(e.endpoint.address.socket_address.address, e.health_status, e.load_balancing_weight.value)
           for e in group.lb_endpoints]
    assert got == [("10.0.0.1", health_check_pb2.HEALTHY, 1), ("10.0.0.2", health_check_pb2.HEALTHY, 128)]


def test_no_usable_endpoint_sends_an_empty_assignment() -> None:
    up = upstream("api", 9191, endpoints=(Endpoint("10.0.0.3", 21000, "n3", "c", "critical"),))
    assignment = build_resources(snapshot(upstreams=(up,)))[types.ENDPOINT][API_SNI]
    assert assignment.cluster_name == API_SNI and len(assignment.endpoints) == 0


# -- consistency ------------------------------------------------------------------------------
def _broken(edit) -> list[str]:
    resources = build_resources(snapshot(upstreams=(upstream("api", 9191),), default=ALLOW_DEFAULT))
    edit(resources)
    return consistency_problems(resources)


BROKEN = {
    "endpoints_without_cluster": (lambda r: r[types.CLUSTER].pop(API_SNI), "belong to no EDS cluster"),
    "eds_cluster_without_endpoints": (lambda r: r[types.ENDPOINT].pop(API_SNI), "has no endpoints resource"),
    "listener_to_missing_cluster": (lambda r: r[types.CLUSTER].pop("local_app"), "cluster 'local_app', which is not"),
    "missing_leaf": (lambda r: r[types.SECRET].pop("leaf/default/web"), "secret 'leaf/default/web', which is not"),
    "missing_roots": (lambda r: r[types.SECRET].pop("roots"), "secret 'roots', which is not in SDS"),
    "filed_under_another_name": (lambda r: r[types.SECRET].update(other=r[types.SECRET]["roots"]),
                                 "filed under another name"),
}


@pytest.mark.parametrize(("edit", "problem"), list(BROKEN.values()), ids=list(BROKEN))
def test_consistency_problems_name_what_dangles(edit, problem: str) -> None:
    problems = _broken(edit)
    assert any(problem in p for p in problems), problems


# -- knobs ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    (3, 3), ("3", 3), (3.0, 3), (3.5, None), (True, None), (None, None), ("x", None), (-1, None), (2**32, None),
])
def test_count_reads_whole_numbers(value, expected) -> None:
    assert knobs.count(value) == expected


# -- rule 4: translating with the stream's previous translation --------------------------------
def _with_endpoints(snap, *endpoints: Endpoint):
    return dataclasses.replace(snap, upstreams=tuple(dataclasses.replace(u, endpoints=endpoints)
                                                     for u in snap.upstreams))


_MOVED = Endpoint("10.0.0.9", 21000, "n9", "api-9-sidecar-proxy", "passing")
_UPSTREAM = upstream("api", 9191, endpoints=(Endpoint("10.0.0.1", 21000, "n1", "api-1-sidecar-proxy", "passing"),))
CHANGES = {
    # name: (before, after); the translation of `after` given `before`'s must equal a whole one
    "an endpoint added": (snapshot(upstreams=(_UPSTREAM,)),
                          _with_endpoints(snapshot(upstreams=(_UPSTREAM,)), *_UPSTREAM.endpoints, _MOVED)),
    "every endpoint gone": (snapshot(upstreams=(_UPSTREAM,)), _with_endpoints(snapshot(upstreams=(_UPSTREAM,)))),
    "an endpoint turned critical": (
        snapshot(upstreams=(_UPSTREAM,)),
        _with_endpoints(snapshot(upstreams=(_UPSTREAM,)), dataclasses.replace(_UPSTREAM.endpoints[0], health="critical"))),
    "nothing changed": (snapshot(upstreams=(_UPSTREAM,)), snapshot(upstreams=(_UPSTREAM,))),
    "an intention (live RBAC table)": (snapshot(upstreams=(_UPSTREAM,)),
                                       snapshot(upstreams=(_UPSTREAM,), default=ALLOW_DEFAULT)),
    "the protocol": (snapshot(upstreams=(_UPSTREAM,)), snapshot(protocol="http", upstreams=(_UPSTREAM,))),
    "an upstream added": (snapshot(upstreams=(_UPSTREAM,)),
                          snapshot(upstreams=(_UPSTREAM, upstream("db", 9292, endpoints=(_MOVED,))))),
    "an upstream's config": (snapshot(upstreams=(_UPSTREAM,)), snapshot(upstreams=(
        dataclasses.replace(_UPSTREAM, config={"limits": {"max_connections": 3}}),))),
    "the roots": (snapshot(upstreams=(_UPSTREAM,)), snapshot(upstreams=(_UPSTREAM,), root_count=2)),
    "the leaf gone": (snapshot(upstreams=(_UPSTREAM,)), snapshot(upstreams=(_UPSTREAM,), leaf=None)),
    "endpoints while there is no leaf": (snapshot(upstreams=(_UPSTREAM,), leaf=None),
                                         _with_endpoints(snapshot(upstreams=(_UPSTREAM,), leaf=None), _MOVED)),
    "stop asked": (snapshot(upstreams=(_UPSTREAM,)), snapshot(upstreams=(_UPSTREAM,), stop=True)),
}


@pytest.mark.parametrize(("before", "after"), list(CHANGES.values()), ids=list(CHANGES))
def test_translating_with_the_previous_result_equals_a_whole_translation(before, after) -> None:
    whole = delta.version_resources(build_resources(after))
    assert translate(after, translate(before)).desired == whole
    assert translate(after).desired == whole


def test_an_endpoint_change_reuses_everything_but_the_assignments() -> None:
    before = translate(snapshot(upstreams=(_UPSTREAM,)))
    after = translate(_with_endpoints(snapshot(upstreams=(_UPSTREAM,)), _MOVED), before)
    for type_url in (types.SECRET, types.CLUSTER, types.LISTENER, types.ROUTE):
        assert after.desired[type_url] is before.desired[type_url]
    assert after.desired[types.ENDPOINT][types.LOCAL_APP] is before.desired[types.ENDPOINT][types.LOCAL_APP]
    assert after.desired[types.ENDPOINT][_UPSTREAM.sni] != before.desired[types.ENDPOINT][_UPSTREAM.sni]


def test_proxies_with_the_same_upstream_share_its_assignment() -> None:
    """Rule 4 / endpoints.py rule 6: one message and one version for every proxy."""
    web = translate(snapshot(service="web", upstreams=(_UPSTREAM,)))
    db = translate(snapshot(service="db", upstreams=(_UPSTREAM,)))
    assert web.desired[types.ENDPOINT][_UPSTREAM.sni] is db.desired[types.ENDPOINT][_UPSTREAM.sni]


@pytest.mark.parametrize("name", ["http_router_splitter_resolver", "tcp_redirect_and_failover"])
def test_a_snapshot_with_a_chain_survives_its_json_form_for_the_builtin_proxy(name: str) -> None:
    snap = scenarios()[name]
    assert from_json(json.loads(json.dumps(to_json(snap)))) == snap


def test_chain_resources_hang_together_and_an_endpoint_change_touches_only_assignments() -> None:
    snap = scenarios()["tcp_redirect_and_failover"]
    assert consistency_problems(build_resources(snap)) == []
    (up,) = snap.upstreams
    moved = dataclasses.replace(snap, upstreams=(dataclasses.replace(up, targets=tuple(
        dataclasses.replace(t, endpoints=(_MOVED,)) for t in up.targets)),))
    before = translate(snap)
    after = translate(moved, before)
    assert after.desired == delta.version_resources(build_resources(moved))
    assert after.desired[types.CLUSTER] is before.desired[types.CLUSTER]
    assert after.desired[types.ENDPOINT] != before.desired[types.ENDPOINT]
