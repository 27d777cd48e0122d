"""problems(): every piece of a proxy's Envoy config that is left out or defaulted, and why
(issue 6, "Faults"); each verdict checked against what build_resources actually builds."""

from __future__ import annotations

import dataclasses

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from xds_scenarios import scenarios, snapshot, upstream

from trellis.proxycfg.model import Endpoint
from trellis.xds import types
from trellis.xds.resources import build_resources, consistency_problems
from trellis.xds.translate import knobs
from trellis.xds.translate.problems import PROTOCOLS, problems

PASSING = Endpoint("10.0.0.1", 21000, "n1", "api-1-sidecar-proxy", "passing")
CRITICAL = dataclasses.replace(PASSING, health="critical")
NAMED = dataclasses.replace(PASSING, address="api.internal")


def api(port: int = 9191, **kw):
    return upstream("api", port, endpoints=kw.pop("endpoints", (PASSING,)), **kw)


# -- one fault, one sentence ------------------------------------------------------------------
FAULTS = {
    # the proxy as a whole
    "no-leaf": (dict(leaf=None), "no leaf certificate for service web yet; no public listener and no upstream "
                                 "listeners until it is issued"),
    "no-roots": (dict(root_count=0), "no trusted CA roots yet; no public listener and no upstream listeners "
                                     "until there are"),
    "local-connect-timeout-text": (
        dict(config={"local_connect_timeout_ms": "abc"}),
        'Proxy.Config local_connect_timeout_ms = "abc": not a whole number of milliseconds; '
        "Envoy's default (5000 ms) applies"),
    "local-connect-timeout-negative": (
        dict(config={"local_connect_timeout_ms": -5}),
        "Proxy.Config local_connect_timeout_ms = -5: not a whole number of milliseconds; "
        "Envoy's default (5000 ms) applies"),
    "local-connect-timeout-truncated": (
        dict(config={"local_connect_timeout_ms": 1.5}, local_connect_timeout_ms=1),
        "Proxy.Config local_connect_timeout_ms = 1.5: not a whole number of milliseconds; 1 ms applies"),
    "bind-port-text": (
        dict(config={"bind_port": "abc"}),
        'Proxy.Config bind_port = "abc": not a port number (1-65535); the public listener uses port 21000'),
    "request-timeout": (
        dict(config={"local_request_timeout_ms": "soon"}),
        'Proxy.Config local_request_timeout_ms = "soon": not a positive whole number of milliseconds; '
        "Envoy's default (15 s) applies"),
    "idle-timeout": (
        dict(config={"Local_Idle_Timeout_Ms": [1]}),
        "Proxy.Config local_idle_timeout_ms = [1]: not a positive whole number of milliseconds; Envoy's default "
        "(the connection manager's 5 min stream idle timeout) applies"),
    "protocol-not-text": (dict(config={"protocol": 5}), "Proxy.Config protocol = 5: not a string; ignored"),
    "protocol-unknown": (dict(protocol="htp"), 'service web: protocol "htp" is not tcp, http, http2 or grpc; '
                                               "the public listener serves tcp"),
    # upstreams: refused (knobs.select_upstreams), one sentence each
    "clash-with-public": (
        dict(upstreams=(api(), api(21000))),
        "upstream api: 127.0.0.1:21000 clashes with the public listener on 0.0.0.0:21000; no listener for it"),
    "clash-with-upstream": (
        dict(upstreams=(api(), upstream("db", 9191, endpoints=(PASSING,), config={"limits": 5}))),
        "upstream db: 127.0.0.1:9191 clashes with upstream api on 127.0.0.1:9191; no listener for it"),
    "other-datacenter": (
        dict(upstreams=(api(error="upstream api is in datacenter 'dc2'"),)),
        "upstream api is in datacenter 'dc2'; no listener for it"),
    # upstreams: served, with a bad value left out
    "connect-timeout": (
        dict(upstreams=(api(config={"connect_timeout_ms": "soon"}),)),
        'upstream api (127.0.0.1:9191) Config connect_timeout_ms = "soon": not a whole number of milliseconds; '
        "Envoy's default (5000 ms) applies"),
    "limits-not-an-object": (
        dict(upstreams=(api(config={"limits": 10}),)),
        "upstream api (127.0.0.1:9191) Config limits = 10: not an object; Envoy's defaults apply"),
    "limit-negative": (
        dict(upstreams=(api(config={"limits": {"max_connections": -1}}),)),
        "upstream api (127.0.0.1:9191) Config limits.max_connections = -1: not a whole number from 0 to "
        "4294967295; Envoy's default (1024) applies"),
    "concurrent-requests-text": (
        dict(upstreams=(api(config={"limits": {"max_concurrent_requests": "many"}}),)),
        'upstream api (127.0.0.1:9191) Config limits.max_concurrent_requests = "many": not a whole number from 0 '
        "to 4294967295; Envoy's default (1024) applies"),
    "ejection-percent": (
        dict(upstreams=(api(config={"passive_health_check": {"max_ejection_percent": 150}}),)),
        "upstream api (127.0.0.1:9191) Config passive_health_check.max_ejection_percent = 150: not a whole "
        "number from 0 to 100; Envoy's default (10) applies"),
    "check-interval": (
        dict(upstreams=(api(config={"passive_health_check": {"interval": "often"}}),)),
        'upstream api (127.0.0.1:9191) Config passive_health_check.interval = "often": not a positive duration '
        "such as \"10s\"; Envoy's default (10s) applies"),
    "upstream-protocol": (
        dict(upstreams=(api(protocol="htp"),)),
        'upstream api (127.0.0.1:9191): protocol "htp" is not tcp, http, http2 or grpc; served as tcp'),
    "shared-cluster": (
        dict(upstreams=(api(), api(9192, connect_timeout_ms=250))),
        "upstream api (127.0.0.1:9192): shares cluster api.default.dc1.internal."
        "11111111-2222-3333-4444-555555555555.consul with upstream api (127.0.0.1:9191), whose protocol, "
        "connect timeout, limits and passive health check apply"),
    # upstreams: endpoints
    "unknown-service": (
        dict(upstreams=(upstream("db", 9192),)),
        'upstream db (127.0.0.1:9192): no instance of service "db" is in the mesh yet (registered with a '
        "sidecar proxy or Connect-native); its cluster has no endpoints until one is"),
    "unknown-service-in-namespace": (
        dict(upstreams=(upstream("db", 9192, ns="shop"),)),
        'upstream db (127.0.0.1:9192): no instance of service "db" in namespace shop is in the mesh yet '
        "(registered with a sidecar proxy or Connect-native); its cluster has no endpoints until one is"),
    "all-critical": (
        dict(upstreams=(api(endpoints=(CRITICAL, dataclasses.replace(CRITICAL, port=21001))),)),
        'upstream api (127.0.0.1:9191): 2 instances of service "api" are critical; its cluster has no endpoints '
        "until one passes"),
    "host-name-endpoint": (
        dict(upstreams=(api(endpoints=(PASSING, NAMED)),)),
        'upstream api (127.0.0.1:9191): EDS leaves out 1 instance of service "api" addressed by a host name, '
        'not an IP: api-1-sidecar-proxy on n1 ("api.internal")'),
    "only-host-name-endpoints": (
        dict(upstreams=(api(endpoints=tuple(dataclasses.replace(NAMED, service_id=f"api-{n}") for n in range(5))),)),
        'upstream api (127.0.0.1:9191): EDS leaves out 5 instances of service "api" addressed by a host name, '
        'not an IP: api-0 on n1 ("api.internal"), api-1 on n1 ("api.internal"), api-2 on n1 ("api.internal") '
        "and 2 more; its cluster has no endpoints"),
}


@pytest.mark.parametrize(("given", "problem"), list(FAULTS.values()), ids=list(FAULTS))
def test_each_fault_is_one_clear_sentence(given, problem) -> None:
    assert problems(snapshot(**given)) == (problem,)


PUBLIC = {
    "no-local-port": (dict(local_service_port=0), "the local service has no port (the registration's "
                      "LocalServicePort, else the service's Port), so there is no local_app cluster; "
                      "no public listener"),
    "no-public-port": (dict(bind_port=0), "the public port 0 is not a port (set the registration's Port or "
                                          "bind_port); no public listener"),
    "public-host-name": (dict(bind_address="web.local"), "the public bind address 'web.local' is not an IP address "
                         "(set Proxy.Config bind_address to one); Envoy cannot listen on it; no public listener"),
}


@pytest.mark.parametrize(("public", "problem"), list(PUBLIC.values()), ids=list(PUBLIC))
def test_a_public_listener_that_cannot_be_built_says_why(public, problem) -> None:
    snap = snapshot()
    snap = dataclasses.replace(snap, public=dataclasses.replace(snap.public, **public))
    assert problems(snap) == (problem,)


# -- nothing to say ---------------------------------------------------------------------------
FINE = {
    "plain": {},
    "zero-means-default": dict(config={"local_connect_timeout_ms": 0, "local_request_timeout_ms": "0"},
                               upstreams=(api(config={"connect_timeout_ms": 0,
                                                      "passive_health_check": {"max_failures": 0}}),)),
    "empty-means-default": dict(config={"bind_port": "", "protocol": ""}),
    "numbers-as-text": dict(config={"local_request_timeout_ms": "2500", "bind_port": "21000"},
                            upstreams=(api(config={"limits": {"max_connections": "10"}}),)),
    "good-knobs": dict(upstreams=(api(config={
        "limits": {"max_connections": 0, "max_pending_requests": 5, "max_concurrent_requests": 7},
        "passive_health_check": {"interval": "5s", "max_failures": 3, "enforcing_consecutive_5xx": 100,
                                 "max_ejection_percent": 50, "base_ejection_time": 30_000_000_000}}),)),
    "warning-instances-serve": dict(upstreams=(api(endpoints=(dataclasses.replace(PASSING, health="warning"),)),)),
    "one-critical-of-two": dict(upstreams=(api(endpoints=(PASSING, dataclasses.replace(CRITICAL, port=1))),)),
    "two-upstreams-same-settings": dict(upstreams=(api(), api(9192))),
    "http-protocols": dict(protocol="grpc", upstreams=(api(protocol="http2"),)),
}


@pytest.mark.parametrize("given", list(FINE.values()), ids=list(FINE))
def test_a_config_envoy_gets_whole_has_no_problems(given) -> None:
    assert problems(snapshot(**given)) == ()


# -- a problem is reported exactly when the resources lack the piece --------------------------
def test_a_refused_upstream_is_reported_once_and_gets_no_listener() -> None:
    snap = snapshot(upstreams=(api(), upstream("db", 21000, config={"connect_timeout_ms": "x"})))
    found = problems(snap)
    listeners = build_resources(snap)[types.LISTENER]
    assert [p for p in found if p.startswith("upstream db")] == [
        "upstream db: 127.0.0.1:21000 clashes with the public listener on 0.0.0.0:21000; no listener for it"]
    assert not any(name.startswith("db:") for name in listeners)
    assert [r.upstream.destination_name for r in knobs.select_upstreams(snap)[1]] == ["db"]


def test_the_same_upstream_listed_twice_is_served_once_and_refused_once() -> None:
    twice = api()
    found = problems(snapshot(upstreams=(twice, twice)))
    assert found == ("upstream api: 127.0.0.1:9191 clashes with upstream api on 127.0.0.1:9191; no listener for it",)


def test_defaulted_values_are_envoys_defaults_in_the_resources() -> None:
    snap = snapshot(config={"local_connect_timeout_ms": "abc"},
                    upstreams=(api(config={"limits": {"max_connections": -1}, "connect_timeout_ms": "soon"}),))
    assert len(problems(snap)) == 3
    clusters: dict[str, cluster_pb2.Cluster] = build_resources(snap)[types.CLUSTER]
    assert clusters["local_app"].connect_timeout.seconds == 5
    api_cluster = clusters[api().sni]
    assert api_cluster.connect_timeout.seconds == 5
    assert not api_cluster.HasField("circuit_breakers")


def test_an_unknown_service_keeps_its_listener_and_an_empty_cluster() -> None:
    snap = snapshot(upstreams=(upstream("db", 9192),))
    resources = build_resources(snap)
    assert "db:127.0.0.1:9192" in resources[types.LISTENER]
    assert not resources[types.ENDPOINT][upstream("db", 1).sni].endpoints
    assert "no endpoints" in problems(snap)[0]


def test_problems_come_in_a_fixed_order() -> None:
    snap = snapshot(config={"local_request_timeout_ms": "x", "local_connect_timeout_ms": "y"},
                    upstreams=(upstream("db", 9192), api(21000), api(9193, protocol="htp")))
    found = problems(snap)
    assert [p.split(" ")[0] for p in found] == ["Proxy.Config", "Proxy.Config", "upstream", "upstream", "upstream"]
    assert found[0].startswith("Proxy.Config local_connect_timeout_ms")
    assert [p.split(" ")[1] for p in found[2:]] == ["db", "api:", "api"]
    assert problems(snap) == found


def test_the_protocols_named_are_the_translations() -> None:
    assert set(PROTOCOLS) == {"tcp"} | knobs.HTTP_LIKE


def test_ingress_certificates_are_served_and_only_an_unreachable_one_is_reported() -> None:
    """Leaf and SDS certificates alike are served; a service's own certificate that no
    SNI name can select (its only host is ``*``) is reported."""
    assert problems(scenarios()["ingress_gateway_tls"]) == ()
    snap = scenarios()["ingress_gateway_sds"]
    assert problems(snap) == ()
    li = snap.ingress[0]
    star = dataclasses.replace(li.services[1], hosts=("*",))
    assert problems(dataclasses.replace(snap, ingress=(dataclasses.replace(li, services=(li.services[0], star)),
                                                       snap.ingress[1]))) == (
        "ingress listener 8443: service api has its own SDS certificate but no TLS server name of its own to be "
        "chosen by (Hosts ['*']: only *, or names an earlier service's certificate has); it is served with the "
        "listener's",)


def test_an_sds_cluster_the_gateways_bootstrap_lacks_is_named_once_per_listener() -> None:
    snap = scenarios()["ingress_gateway_sds"]
    li = snap.ingress[0]
    missing = dataclasses.replace(li.tls.sds, defined=False)
    li = dataclasses.replace(li, tls=dataclasses.replace(li.tls, sds=missing))
    assert problems(dataclasses.replace(snap, ingress=(li, snap.ingress[1]))) == (
        "ingress listener 8443: its SDS certificate 'wildcard-cert' comes from cluster 'sds-server', which the "
        "gateway's envoy_extra_static_clusters_json (Proxy.Config, else proxy-defaults) does not define; Envoy "
        "keeps the listener from serving until it can fetch it",)


def test_two_certificates_never_share_a_server_name_envoy_would_refuse_the_listener() -> None:
    """An entry stored before validation refused it: the second service's name that the first
    one's certificate already has is left out of its chain; with none left, it has no chain."""
    snap = scenarios()["ingress_gateway_sds"]
    li = snap.ingress[0]
    web, api = li.services
    web_own = dataclasses.replace(web, hosts=("API.example.com:8443", "web.example.com"), tls=api.tls)
    li = dataclasses.replace(li, services=(web_own, api))
    resources = build_resources(dataclasses.replace(snap, ingress=(li, snap.ingress[1])))
    listener = resources[types.LISTENER][f"http:127.0.0.1:{li.port}"]
    names = [list(c.filter_chain_match.server_names) for c in listener.filter_chains]
    assert names == [["api.example.com", "web.example.com"], ["*.api.example.com"]]  # api keeps only its own
    assert consistency_problems(resources) == []



def test_connection_knobs_reach_the_listeners_and_bad_values_and_escape_hatches_are_named() -> None:
    from xds_scenarios import variants

    snap = variants()["connection_knobs"]
    assert problems(snap) == ()
    resources = build_resources(snap)
    public = resources[types.LISTENER]["public_listener"]
    assert public.connection_balance_config.HasField("exact_balance")
    mtls = public.filter_chains[0]
    assert mtls.filters[0].name == "envoy.filters.network.connection_limit"
    upstream_listener = next(li for name, li in resources[types.LISTENER].items() if name.startswith("api:"))
    assert upstream_listener.connection_balance_config.HasField("exact_balance")

    bad = dataclasses.replace(snap, config={"max_inbound_connections": -1, "balance_inbound_connections": "fair",
                                            "envoy_public_listener_json": "{}"},
                              upstreams=(dataclasses.replace(snap.upstreams[0], config={"envoy_cluster_json": "{}"}),))
    found = problems(bad)
    assert "Proxy.Config max_inbound_connections = -1: not a whole number of at least 1; Envoy's default (no limit) " \
           "applies" in found
    assert "Proxy.Config balance_inbound_connections = \"fair\": not 'exact_balance'; Envoy's default balancing " \
           "applies" in found
    assert any(p.startswith("Proxy.Config envoy_public_listener_json: escape hatches are not supported") for p in found)
    assert any(p.startswith("upstream api (127.0.0.1:9191) Config envoy_cluster_json: escape hatches") for p in found)
    listener = build_resources(bad)[types.LISTENER]["public_listener"]
    assert not listener.connection_balance_config.HasField("exact_balance")
    assert listener.filter_chains[0].filters[0].name != "envoy.filters.network.connection_limit"
