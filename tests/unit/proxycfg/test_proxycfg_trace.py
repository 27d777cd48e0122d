"""``connect trace``'s core (proxycfg/trace.py): a healthy path, and a path broken at each
step, over hand-built snapshots (the xDS scenarios' builders) and a small test CA."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "xds"))  # the shared snapshot builders

from xds_scenarios import (  # noqa: E402
    ALLOW_DEFAULT,
    CLUSTER_ID,
    DC,
    ROUTER_SPLITTER_RESOLVER,
    TCP_REDIRECT_FAILOVER,
    TD,
    chain_upstream,
    intentions,
    snapshot,
    upstream,
)

from trellis.catalog.model import Proxy, Service, ServiceKind  # noqa: E402
from trellis.connect import spiffe  # noqa: E402
from trellis.connect.ca import certs  # noqa: E402
from trellis.connect.intentions.decide import Default  # noqa: E402
from trellis.connect.intentions.index import IntentionIndex  # noqa: E402
from trellis.config.entry.model_chain import ServiceRouteHTTPMatch, ServiceRouteHTTPMatchHeader  # noqa: E402
from trellis.errors import InvalidInput, NotFound  # noqa: E402
from trellis.proxycfg.describe import describe_match  # noqa: E402
from trellis.proxycfg.model import ConnectProxySnapshot, Endpoint, LeafSnapshot  # noqa: E402
from trellis.proxycfg.trace import (  # noqa: E402
    ProxyState,
    Status,
    Trace,
    parse_destination,
    select_source,
    select_upstreams,
    trace,
    trace_without_snapshot,
)

EPOCH = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
NOW = EPOCH.timestamp() + 3600
ENVOY = ProxyState(data_plane="envoy", applied_version="v", in_sync=True, lag_seconds=0.012)
BUILTIN = dataclasses.replace(ENVOY, data_plane="builtin")
ALLOW_WEB = intentions({"Name": "*", "Sources": [{"Name": "web", "Action": "allow"}]})
MARK = {"OK": Status.OK, "WARN": Status.WARNING, "FAIL": Status.FAILED, "SKIP": Status.SKIPPED}


# -- a small CA: two unrelated roots, leaves for web and api under each -------------------------
@functools.cache
def ca(name: str) -> tuple[str, object, object]:
    key = certs.generate_key(certs.LEAF_KEY)
    root = certs.build_root(key, cluster_id=CLUSTER_ID, uid=name, serial=1, now=EPOCH, ttl=dt.timedelta(days=3650))
    return certs.dump_cert(root), root, key


@functools.cache
def leaf(service: str, root: str = "a", *, hours: float = 72) -> LeafSnapshot:
    _, cert, key = ca(root)
    uri = spiffe.service_uri(TD, "default", DC, service)
    signed = certs.sign_leaf(certs.build_csr(certs.generate_key(certs.LEAF_KEY), uri), cert, key, serial=7,
                             now=EPOCH, ttl=dt.timedelta(hours=hours))
    return LeafSnapshot(cert_pem=certs.dump_cert(signed), private_key_pem="", service_uri=uri, serial="07",
                        valid_before=certs.not_after(signed).timestamp())


def sidecar(service: str, root: str = "a", **kw) -> ConnectProxySnapshot:
    kw.setdefault("leaf", leaf(service, root))
    kw.setdefault("all_intentions", ALLOW_WEB)  # what the engine's index holds, unless a case says otherwise
    return dataclasses.replace(snapshot(service=service, **kw), roots=(ca(root)[0],),
                               proxy_id=kw.pop("proxy_id", f"{service}-1-sidecar-proxy"))


def ep(address: str, health: str = "passing", sid: str = "api-1-sidecar-proxy") -> Endpoint:
    return Endpoint(address, 21000, "n1", sid, health)


HEALTHY = (ep("10.0.0.1"), ep("10.0.0.2", "warning", "api-2-sidecar-proxy"))
API = upstream("api", 9191, endpoints=HEALTHY)


def decider(all_intentions=ALLOW_WEB, default: Default = Default(False, "Default intention policy")):
    index = IntentionIndex(all_intentions)
    return lambda src, dst: index.decide(src, dst, default=default)


def run(source: ConnectProxySnapshot, destination: str = "api", *, all_intentions=ALLOW_WEB, status=ENVOY,
        dests=(), now: float = NOW) -> Trace:
    return trace(source, destination, decide=decider(all_intentions), now=now, destination_snapshots=dests,
                 status=status)


def marks(t: Trace) -> str:
    by_status = {v: k for k, v in MARK.items()}
    return " ".join(by_status[s.status] for s in t.steps)


def step(t: Trace, name: str):
    return next(s for s in t.steps if s.name == name)


# -- the table: one healthy path, and one broken (or warned) at each step -------------------------
def _chain(entries, endpoints, name="api", **kw):
    return sidecar("web", upstreams=(chain_upstream(name, 9494, entries, endpoints),), **kw)


SUBSET_NOTHING = [
    {"Kind": "service-resolver", "Name": "api", "DefaultSubset": "v9",
     "Subsets": {"v9": {"Filter": "Service.Meta.version == v9"}}},
]
RSR_ENDPOINTS = {
    "v1.api.default.default.dc1": (ep("10.0.2.1"),), "v2.api.default.default.dc1": (ep("10.0.2.2"),),
    "billing.default.default.dc1": (ep("10.0.2.3", sid="billing-1-sidecar-proxy"),),
    "api-v2.default.default.dc1": (ep("10.0.2.4", sid="api-v2-1-sidecar-proxy"),),
}
L7 = intentions({"Name": "api", "Sources": [{"Name": "web", "Permissions": [
    {"Action": "deny", "HTTP": {"PathPrefix": "/admin"}},
    {"Action": "allow", "HTTP": {"PathPrefix": "/", "Methods": ["GET"]}}]}]})

CASES = {
    # name: (trace, expected marks, the step that decides, text in its summary)
    "healthy-l4-path": (lambda: run(sidecar("web", upstreams=(API,))),
                        "OK OK OK OK OK OK", None, ""),
    "healthy-with-the-destination-sidecar-here": (
        lambda: run(sidecar("web", upstreams=(API,)), dests=(sidecar("api"),)), "OK OK OK OK OK OK", None, ""),
    "no-data-plane-yet-only-warns": (lambda: run(sidecar("web", upstreams=(API,)), status=None),
                                     "WARN OK OK OK OK OK", "proxy", "no data plane has fetched"),
    "stale-data-plane-warns": (
        lambda: run(sidecar("web", upstreams=(API,)),
                    status=ProxyState("envoy", "old", in_sync=False, lag_seconds=42, stale=True)),
        "WARN OK OK OK OK OK", "proxy", "has not applied the newest snapshot for 42.0s"),
    "reported-problems-warn": (
        lambda: run(sidecar("web", upstreams=(API,)), status=dataclasses.replace(ENVOY, problems=("x",))),
        "WARN OK OK OK OK OK", "proxy", "in sync"),
    "a-stopping-proxy-warns": (lambda: run(sidecar("web", upstreams=(API,), stop=True)),
                               "WARN OK OK OK OK OK", "proxy", "the agent asked it to drain and stop"),
    "no-upstream": (lambda: run(sidecar("web", upstreams=(upstream("db", 9292),))),
                    "OK FAIL SKIP SKIP OK OK", "upstream", "web has no upstream to api"),
    "refused-upstream": (
        lambda: run(sidecar("web", upstreams=(upstream("api", 9191, error="upstream api is in datacenter 'dc2'"),))),
        "OK FAIL SKIP SKIP OK OK", "upstream", "is refused: upstream api is in datacenter 'dc2'"),
    "router-splitter-resolver": (lambda: run(_chain(ROUTER_SPLITTER_RESOLVER, RSR_ENDPOINTS)),
                                 "OK OK OK OK OK OK", "chain", "router → splitter → resolver"),
    "chain-with-the-builtin-proxy-warns": (
        lambda: run(_chain(ROUTER_SPLITTER_RESOLVER, RSR_ENDPOINTS), status=BUILTIN),
        "OK OK WARN OK OK OK", "chain", "routes at L4 only"),
    "every-instance-critical": (
        lambda: run(sidecar("web", upstreams=(upstream("api", 9191, endpoints=(ep("10.0.0.1", "critical"),)),))),
        "OK OK OK FAIL OK OK", "endpoints", "the one instance of api is critical"),
    "no-instance-in-the-mesh": (lambda: run(sidecar("web", upstreams=(upstream("api", 9191),))),
                                "OK OK OK FAIL OK OK", "endpoints", "no instance of api is in the mesh"),
    "a-subset-that-matches-nothing": (
        lambda: run(_chain(SUBSET_NOTHING, {"api.default.default.dc1": HEALTHY})),
        "OK OK OK FAIL OK OK", "endpoints", "matches subset v9 (the filter 'Service.Meta.version == v9')"),
    "only-a-failover-target-has-instances": (
        lambda: run(_chain(TCP_REDIRECT_FAILOVER, {
            "db-primary.default.default.dc1": (ep("10.0.3.1", "critical"),),
            "db-replica.default.default.dc1": (ep("10.0.3.2"),)}, "db"), destination="db"),
        "OK OK OK WARN OK OK", "endpoints", "Envoy fails over to db-replica.default.default.dc1"),
    "the-builtin-proxy-does-not-fail-over": (
        lambda: run(_chain(TCP_REDIRECT_FAILOVER, {
            "db-primary.default.default.dc1": (ep("10.0.3.1", "critical"),),
            "db-replica.default.default.dc1": (ep("10.0.3.2"),)}, "db"), destination="db", status=BUILTIN),
        "OK OK OK FAIL OK OK", "endpoints", "the built-in proxy does not fail over"),
    "another-route-leads-nowhere": (
        lambda: run(_chain(ROUTER_SPLITTER_RESOLVER, {**RSR_ENDPOINTS, "billing.default.default.dc1": ()})),
        "OK OK OK WARN OK OK", "endpoints", "nothing usable at billing.default.default.dc1"),
    "no-leaf": (lambda: run(sidecar("web", upstreams=(API,), leaf=None)),
                "OK OK OK OK FAIL OK", "certificates", "web has no leaf certificate yet"),
    "expired-leaf": (lambda: run(sidecar("web", upstreams=(API,)), now=NOW + 73 * 3600),
                     "OK OK OK OK FAIL OK", "certificates", "web's leaf expired at 2030-01-04 00:00:00 UTC"),
    "leaf-for-another-service": (lambda: run(sidecar("web", upstreams=(API,), leaf=leaf("billing"))),
                                 "OK OK OK OK FAIL OK", "certificates", "web's leaf names spiffe://"),
    "leaf-from-another-ca": (
        lambda: run(dataclasses.replace(sidecar("web", upstreams=(API,)), roots=(ca("b")[0],))),
        "OK OK OK OK FAIL OK", "certificates", "does not verify against its own trust bundle"),
    "no-trusted-roots": (lambda: run(dataclasses.replace(sidecar("web", upstreams=(API,)), roots=())),
                         "OK OK OK OK FAIL OK", "certificates", "there are no trusted roots"),
    "destination-sidecar-from-another-ca": (
        lambda: run(sidecar("web", upstreams=(API,)), dests=(sidecar("api", "b"),)),
        "OK OK OK OK FAIL OK", "certificates", "web would not accept api-1-sidecar-proxy's leaf"),
    "destination-sidecar-presents-another-identity": (
        lambda: run(sidecar("web", upstreams=(API,)), dests=(sidecar("api", leaf=leaf("billing")),)),
        "OK OK OK OK FAIL OK", "certificates", "api-1-sidecar-proxy presents spiffe://"),
    "denied-by-an-intention": (
        lambda: run(sidecar("web", upstreams=(API,)),
                    all_intentions=intentions({"Name": "api", "Sources": [{"Name": "web", "Action": "deny"}]})),
        "OK OK OK OK OK FAIL", "intention", "denied: Matched L4 intention: default/web => default/api"),
    "denied-by-default": (lambda: run(sidecar("web", upstreams=(API,)), all_intentions=()),
                          "OK OK OK OK OK FAIL", "intention", "no intention matches, so the default decides"),
    "an-l7-intention-depends-on-the-request": (
        lambda: run(sidecar("web", upstreams=(API,)), all_intentions=L7),
        "OK OK OK OK OK WARN", "intention", "depends on the request: Matched L7 intention"),
    "another-target-service-denied": (
        lambda: run(_chain(ROUTER_SPLITTER_RESOLVER, RSR_ENDPOINTS), all_intentions=[
            *intentions({"Name": "billing", "Sources": [{"Name": "web", "Action": "deny"}]}), *ALLOW_WEB]),
        "OK OK OK OK OK WARN", "intention", "requests routed to billing are denied"),
    "the-first-failed-step-is-the-verdict": (
        lambda: run(sidecar("web", upstreams=(upstream("api", 9191),)), all_intentions=()),
        "OK OK OK FAIL OK FAIL", "endpoints", "no usable instance on the default path"),
}


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_trace(name):
    build, expected, deciding, text = CASES[name]
    t = build()
    assert marks(t) == expected, [(s.name, s.summary) for s in t.steps]
    assert t.ok == ("FAIL" not in expected)
    if deciding is None:
        return
    s = step(t, deciding)
    assert text in s.summary, s.summary
    if "FAIL" in expected:
        assert t.failed is s


def test_destination_sidecar_disagreeing_on_the_decision_warns():
    # the engine allows (the agent's index), the api sidecar's own snapshot still holds a deny
    deny = intentions({"Name": "api", "Sources": [{"Name": "web", "Action": "deny"}]})
    api = sidecar("api", all_intentions=deny)
    t = run(sidecar("web", upstreams=(API,)), dests=(api,))
    s = step(t, "intention")
    assert s.status is Status.WARNING
    assert "a destination sidecar still enforces older intentions" in s.summary
    assert "api-1-sidecar-proxy's snapshot decides otherwise: Matched L4 intention: default/web => default/api " \
           "(Precedence: 9, Action: DENY)" in s.details


def test_endpoint_details_list_every_instance_with_its_health():
    endpoints = (ep("10.0.0.1"), dataclasses.replace(ep("10.0.0.22", "critical", "api-2-sidecar-proxy"),
                                                     failing=("public /health", "ttl")))
    t = run(sidecar("web", upstreams=(upstream("api", 9191, endpoints=endpoints),)))
    s = step(t, "endpoints")
    assert s.summary == "1 of 2 instances usable on the default path (api.default.default.dc1)"
    assert s.details[1:] == ("  10.0.0.1:21000   n1  api-1-sidecar-proxy  passing   usable",
                             "  10.0.0.22:21000  n1  api-2-sidecar-proxy  critical  no traffic (critical: "
                             "'public /health', 'ttl')")


def test_chain_details_show_routes_splits_and_resolvers():
    t = run(_chain(ROUTER_SPLITTER_RESOLVER, RSR_ENDPOINTS))
    details = step(t, "chain").details
    assert details[0] == "router api"
    assert "  route 1: GET|HEAD, path = /health → resolver billing.default.default.dc1" in details
    assert "  route 4: * (catch-all) → splitter api" in details
    assert details.index("splitter api") < details.index(
        "resolver v1.api.default.default.dc1: target v1.api.default.default.dc1 (connect timeout 3s, "
        "request timeout 20s)")
    assert "  90% → resolver v1.api.default.default.dc1" in details


def test_a_redirect_and_failover_are_shown_on_the_resolver():
    t = run(_chain(TCP_REDIRECT_FAILOVER, {"db-primary.default.default.dc1": (ep("10.0.3.1"),)}, "db"), "db")
    assert step(t, "chain").details == (
        "resolver db-primary.default.default.dc1: target db-primary.default.default.dc1 (connect timeout 1.5s)",
        "  redirected from db to db-primary",
        "  failover, in order: db-replica.default.default.dc1, db-backup.default.default.dc1",
    )


def test_missing_upstream_lists_the_upstreams_and_a_chain_that_reaches_it():
    t = run(_chain(ROUTER_SPLITTER_RESOLVER, RSR_ENDPOINTS), "billing")
    assert step(t, "upstream").details[:2] == (
        "its upstreams: api@127.0.0.1:9494",
        "billing is a target of the discovery chain of api: trace that instead")


def test_l7_intention_lists_its_permissions_and_the_default():
    t = run(sidecar("web", upstreams=(API,)), all_intentions=L7)
    assert step(t, "intention").details[1:] == (
        "  permission 0: deny path prefix /admin",
        "  permission 1: allow GET, path prefix /",
        "  no permission matches: deny (Default intention policy)",
    )


def test_a_proxy_without_a_snapshot_fails_the_first_step():
    t = trace_without_snapshot("web-1-sidecar-proxy", "web", "default", "api", "its leaf is not issued yet")
    assert marks(t) == "FAIL SKIP SKIP SKIP SKIP SKIP"
    assert t.failed.summary == "web-1-sidecar-proxy (service web) has no snapshot yet: its leaf is not issued yet"


@pytest.mark.parametrize(("text", "expected"), [
    ("api", (None, "api")), ("team-a/api", ("team-a", "api")),
], ids=["name", "ns-name"])
def test_parse_destination(text, expected):
    assert parse_destination(text) == expected


@pytest.mark.parametrize("text", ["", "a/b/c", "/api", "team-a/"], ids=["empty", "three-parts", "no-ns", "no-name"])
def test_parse_destination_refuses(text):
    with pytest.raises(InvalidInput):
        parse_destination(text)


def test_select_upstreams_by_name_prefers_the_source_namespace_and_honours_ns():
    other = upstream("api", 9292, ns="team-a")
    source = sidecar("web", upstreams=(other, API))
    assert select_upstreams(source, "api") == (API, other)
    assert select_upstreams(source, "team-a/api") == (other,)
    assert select_upstreams(source, "db") == ()


def _proxy(pid: str, sid: str, name: str) -> Service:
    return Service(node="n1", id=pid, name=f"{name}-sidecar-proxy", kind=ServiceKind.CONNECT_PROXY,
                   proxy=Proxy(destination_service_name=name, destination_service_id=sid))


PROXIES = [_proxy("web-1-sidecar-proxy", "web-1", "web"), _proxy("api-1-sidecar-proxy", "api-1", "api"),
           _proxy("api-2-sidecar-proxy", "api-2", "api")]


@pytest.mark.parametrize(("source", "expected"), [
    ("web-1-sidecar-proxy", "web-1-sidecar-proxy"), ("web-1", "web-1-sidecar-proxy"),
    ("WEB-1", "web-1-sidecar-proxy"), ("web", "web-1-sidecar-proxy"), ("api-2", "api-2-sidecar-proxy"),
], ids=["proxy-id", "service-id", "service-id-any-case", "name-with-one-sidecar", "one-of-two-by-id"])
def test_select_source(source, expected):
    assert select_source(PROXIES, source).id == expected


def test_select_source_errors():
    with pytest.raises(NotFound, match="unknown source 'nope'"):
        select_source(PROXIES, "nope")
    with pytest.raises(InvalidInput, match="api-1-sidecar-proxy, api-2-sidecar-proxy; give the proxy ID"):
        select_source(PROXIES, "api")


@pytest.mark.parametrize(("match", "expected"), [
    (None, "* (catch-all)"),
    (ServiceRouteHTTPMatch(), "*"),
    (ServiceRouteHTTPMatch(path_prefix="/v2/", methods=("GET", "POST")), "GET|POST, path prefix /v2/"),
    (ServiceRouteHTTPMatch(header=(ServiceRouteHTTPMatchHeader(name="x-debug", present=True, invert=True),
                                   ServiceRouteHTTPMatchHeader(name="x-v", regex="2|3"))),
     "header x-debug not present, header x-v ~ 2|3"),
], ids=["catch-all", "empty", "methods-and-prefix", "headers"])
def test_describe_match(match, expected):
    assert describe_match(match) == expected


def test_default_allow_is_the_default_policy_allowing():
    t = trace(sidecar("web", upstreams=(API,), default=ALLOW_DEFAULT), "api", now=NOW, status=ENVOY,
              decide=decider((), Default(True, "Default intention policy")))
    assert step(t, "intention").summary == ("allowed: no intention matches, so the default decides "
                                            "(Default intention policy)")
