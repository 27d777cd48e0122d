"""Envoy's RBAC, as trellis configures it, decides exactly as the intentions engine does.

The issue's requirement: Envoy and ``/v1/connect/intentions/check`` never disagree. Each
test builds a sidecar snapshot per destination, takes the RBAC config out of the public
listener that ``build_resources`` made, and evaluates it with ``rbac_allows`` below: a
small model of Envoy's RBAC matchers (principal regexes through RE2 full match,
and/or/not ids and rules, header and path matchers with Envoy's absent-header rule),
written from the Envoy API docs rather than from the engine. The verdict must equal
``IntentionIndex.decide`` for every (source, destination[, request]) pair, with both
defaults, on tcp (network filter, no request) and http (HTTP filter) listeners.

A tcp listener whose local_app is an IP carries the live RBAC (rbac.py rules 8-9): its
verdict is ``live_allows``, a model of the CEL lookup over the decision table in
local_app's endpoint metadata. "tcp-static" is a tcp service reached by host name, which
keeps the policies in the listener.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import re2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from xds_scenarios import ALLOW_DEFAULT, DENY_DEFAULT, TD, intentions, snapshot

from trellis.connect import spiffe
from trellis.connect.intentions.decide import Default
from trellis.connect.intentions.index import IntentionIndex
from trellis.connect.intentions.model import Action, HeaderMatch, HTTPMatch, HTTPRequest, Intention, Permission
from trellis.proxycfg.model import DefaultDecision
from trellis.xds import types
from trellis.xds.resources import build_resources
from trellis.xds.translate import rbac

# =========================================================================== the Envoy model


def string_matches(m: string_pb2.StringMatcher, value: str) -> bool:
    """Envoy's StringMatcher: ``ignore_case`` folds ASCII; ``safe_regex`` is an RE2 full match."""
    kind = m.WhichOneof("match_pattern")
    if kind == "safe_regex":
        return re2.fullmatch(m.safe_regex.regex, value) is not None
    expected = getattr(m, kind)
    if m.ignore_case:
        value, expected = _ascii_lower(value), _ascii_lower(expected)
    if kind == "exact":
        return value == expected
    if kind == "prefix":
        return value.startswith(expected)
    if kind == "suffix":
        return value.endswith(expected)
    if kind == "contains":
        return expected in value
    raise AssertionError(f"matcher {kind} is not modelled")


def _ascii_lower(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def header_value(request: HTTPRequest, name: str) -> str | None:
    """Envoy's headers: names are lower case; repeated values are joined with ``,``."""
    if name == ":method":
        return request.method
    if name == ":path":
        return request.path
    values = [v for k, v in request.headers if k.lower() == name.lower()]
    return ",".join(values) if values else None


def header_matches(h: route_components_pb2.HeaderMatcher, request: HTTPRequest) -> bool:
    """Envoy's HeaderMatcher: an absent header fails every matcher but ``present_match``,
    whose result ``invert_match`` flips like any other."""
    value = header_value(request, h.name)
    kind = h.WhichOneof("header_match_specifier")
    if kind == "present_match":
        return ((value is not None) == h.present_match) != h.invert_match
    if value is None:
        return False
    assert kind == "string_match", f"header matcher {kind} is not modelled"
    return string_matches(h.string_match, value) != h.invert_match


def permission_matches(p: rbac_pb2.Permission, request: HTTPRequest | None) -> bool:
    kind = p.WhichOneof("rule")
    if kind == "any":
        return p.any
    if kind == "and_rules":
        return all(permission_matches(r, request) for r in p.and_rules.rules)
    if kind == "or_rules":
        return any(permission_matches(r, request) for r in p.or_rules.rules)
    if kind == "not_rule":
        return not permission_matches(p.not_rule, request)
    assert request is not None, f"an L7 permission ({kind}) on a network filter"
    if kind == "header":
        return header_matches(p.header, request)
    if kind == "url_path":
        return string_matches(p.url_path.path, request.path.split("?", 1)[0].split("#", 1)[0])
    raise AssertionError(f"permission {kind} is not modelled")


def principal_matches(p: rbac_pb2.Principal, uri: str) -> bool:
    kind = p.WhichOneof("identifier")
    if kind == "any":
        return p.any
    if kind == "and_ids":
        return all(principal_matches(i, uri) for i in p.and_ids.ids)
    if kind == "or_ids":
        return any(principal_matches(i, uri) for i in p.or_ids.ids)
    if kind == "not_id":
        return not principal_matches(p.not_id, uri)
    if kind == "authenticated":
        return string_matches(p.authenticated.principal_name, uri)
    raise AssertionError(f"principal {kind} is not modelled")


def rbac_allows(rules: rbac_pb2.RBAC, uri: str, request: HTTPRequest | None) -> bool:
    """A policy matches when any principal and any permission do; ALLOW lets matches
    through, DENY stops them."""
    matched = any(
        any(principal_matches(pr, uri) for pr in policy.principals)
        and any(permission_matches(pe, request) for pe in policy.permissions)
        for policy in rules.policies.values()
    )
    return matched if rules.action == rbac_pb2.RBAC.ALLOW else not matched


def live_allows(table: dict, uri: str) -> bool:
    """The live RBAC's CEL condition (rbac.py rule 9) over ``table``: the URI's segments
    looked up as ns/name, then ns/*, then */*; anything but a service identity of the trust
    domain TD gets the default."""
    p = uri.split("/")
    service = (len(p) == 9 and p[0] == "spiffe:" and p[1] == "" and p[2] == TD
               and (p[3], p[5], p[7]) == ("ns", "dc", "svc") and "" not in (p[4], p[6], p[8]))
    if not service:
        return table["default"]
    sources = table["sources"]
    if p[4] in sources and p[8] in sources[p[4]]:
        return sources[p[4]][p[8]]
    if p[4] in sources and "*" in sources[p[4]]:
        return sources[p[4]]["*"]
    return sources["*"]["*"]


def live_table(resources: dict) -> dict | None:
    """The decision table on local_app's endpoint, if the public listener uses the live RBAC."""
    chain = resources[types.LISTENER][types.PUBLIC_LISTENER].filter_chains[0]
    for f in chain.filters:
        if f.name == rbac.NETWORK_FILTER:
            config = network_rbac_pb2.RBAC()
            f.typed_config.Unpack(config)
            if rbac.LIVE_POLICY not in config.rules.policies:
                return None
            assert config.enforcement_type == network_rbac_pb2.RBAC.CONTINUOUS
            [endpoint] = resources[types.ENDPOINT][types.LOCAL_APP].endpoints[0].lb_endpoints
            return json_format.MessageToDict(endpoint.metadata.filter_metadata[rbac.LIVE_METADATA])
    return None


def allows(resources: dict, uri: str, request: HTTPRequest | None) -> bool:
    table = live_table(resources)
    if table is not None:
        return live_allows(table, uri)
    return rbac_allows(public_rules(resources), uri, request)


def public_rules(resources: dict) -> rbac_pb2.RBAC:
    """The RBAC rules that decide on the public listener: the network filter's for tcp;
    for HTTP, the per-route config of the public route (RDS), which replaces the
    listener's deny-all HTTP RBAC config."""
    chain = resources[types.LISTENER][types.PUBLIC_LISTENER].filter_chains[0]
    for f in chain.filters:
        if f.name == rbac.NETWORK_FILTER:
            config = network_rbac_pb2.RBAC()
            f.typed_config.Unpack(config)
            return config.rules
        if f.typed_config.Is(hcm_pb2.HttpConnectionManager.DESCRIPTOR):
            manager = hcm_pb2.HttpConnectionManager()
            f.typed_config.Unpack(manager)
            [h] = [h for h in manager.http_filters if h.name == rbac.HTTP_FILTER]
            listener_level = http_rbac_pb2.RBAC()
            h.typed_config.Unpack(listener_level)
            assert listener_level.rules.action == rbac_pb2.RBAC.ALLOW and not listener_level.rules.policies  # deny-all
            route = resources[types.ROUTE][manager.rds.route_config_name].virtual_hosts[0].routes[0]
            per_route = http_rbac_pb2.RBACPerRoute()
            route.typed_per_filter_config[rbac.HTTP_FILTER].Unpack(per_route)
            return per_route.rbac.rules
    raise AssertionError("no RBAC filter on the public listener")


# =========================================================================== the comparison


def disagreements(all_intentions: list[Intention], destinations, sources, requests, *,
                  default: DefaultDecision, protocol: str) -> list[str]:
    index = IntentionIndex(all_intentions)
    engine_default = Default(default.allowed, default.reason)
    found = []
    for ns, name in destinations:
        snap = snapshot(service=name, ns=ns, protocol=protocol.removesuffix("-static"),
                        all_intentions=all_intentions, default=default)
        if protocol == "tcp-static":
            snap = by_host_name(snap)
        resources = build_resources(snap)
        assert (live_table(resources) is not None) == (protocol == "tcp")
        for source, request in itertools.product(sources, requests):
            uri = spiffe.service_uri(TD, source[0], "dc2", source[1])  # any datacenter matches
            want = index.decide(source, (ns, name), default=engine_default, request=request).allowed
            if allows(resources, uri, request) != want:
                found.append(f"{source} -> {ns}/{name} {request}: engine says {'allow' if want else 'deny'}")
    return found


def by_host_name(snap):
    """The same sidecar with its local service named by host: local_app is STRICT_DNS, so the
    tcp listener keeps the policies (rbac.py rules 1-7)."""
    return dataclasses.replace(snap, public=dataclasses.replace(snap.public, local_service_address="app.internal"))


def http(path_prefix: str = "", *, path_exact: str = "", path_regex: str = "", methods: tuple[str, ...] = (),
         headers: tuple[dict, ...] = ()) -> dict:
    out: dict = {}
    for key, value in (("PathPrefix", path_prefix), ("PathExact", path_exact), ("PathRegex", path_regex)):
        if value:
            out[key] = value
    if methods:
        out["Methods"] = list(methods)
    if headers:
        out["Header"] = list(headers)
    return out


MESH = intentions(
    {"Name": "db", "Sources": [
        {"Name": "web", "Action": "allow"},
        {"Name": "admin", "Permissions": [
            {"Action": "deny", "HTTP": http("/admin/secret")},
            {"Action": "allow", "HTTP": http("/admin", methods=("GET",))},
            {"Action": "allow", "HTTP": http(headers=({"Name": "x-role", "Exact": "ops", "IgnoreCase": True},))},
        ]},
        {"Name": "legacy", "Action": "deny"},
        {"Name": "*", "Namespace": "team-a", "Permissions": [
            {"Action": "allow", "HTTP": http(path_exact="/health")},
            {"Action": "deny", "HTTP": http(headers=({"Name": "x-debug", "Present": True},))},
            {"Action": "allow", "HTTP": http(methods=("POST", "PUT"))},
        ]},
        {"Name": "*", "Namespace": "*", "Action": "deny"},
    ]},
    {"Name": "*", "Sources": [
        {"Name": "web", "Action": "deny"},
        {"Name": "*", "Namespace": "default", "Action": "allow"},
        {"Name": "ops", "Namespace": "team-a", "Permissions": [
            {"Action": "allow", "HTTP": http(path_regex="/v[0-9]+/.*")},
            {"Action": "deny", "HTTP": http("/", headers=({"Name": "x-env", "Suffix": "-prod"},))},
        ]},
    ]},
    {"Name": "*", "Namespace": "*", "Sources": [
        {"Name": "audit", "Action": "allow"},
        {"Name": "*", "Namespace": "*", "Action": "deny"},
    ]},
    {"Name": "cache", "Namespace": "team-a", "Sources": [
        {"Name": "web", "Namespace": "default", "Action": "allow"},
        {"Name": "*", "Namespace": "team-a", "Permissions": [
            {"Action": "deny", "HTTP": http(headers=({"Name": "x-env", "Suffix": "-PROD", "IgnoreCase": True},
                                                     {"Name": "x-canary", "Exact": "1", "Invert": True}))},
            {"Action": "allow", "HTTP": http("/")},
        ]},
        {"Name": "*", "Namespace": "default", "Action": "deny"},
    ]},
)

SOURCES = [(ns, n) for ns, names in (("default", ("web", "admin", "legacy", "ops", "audit", "api", "x")),
                                     ("team-a", ("web", "ops", "cache", "y")), ("team-b", ("web", "z")))
           for n in names]
DESTINATIONS = [("default", "db"), ("default", "web"), ("default", "api"), ("team-a", "cache"),
                ("team-a", "other"), ("team-b", "db")]
REQUESTS = [
    HTTPRequest("/admin", "GET"),
    HTTPRequest("/admin/secret/key", "GET"),
    HTTPRequest("/admin", "POST"),
    HTTPRequest("/admin", "get"),
    HTTPRequest("/health", "GET"),
    HTTPRequest("/health?verbose=1", "GET"),
    HTTPRequest("/data", "POST"),
    HTTPRequest("/data", "PUT", (("X-Debug", ""),)),
    HTTPRequest("/data", "DELETE", (("x-role", "OPS"),)),
    HTTPRequest("/v1/items", "GET"),
    HTTPRequest("/v12", "GET", (("x-env", "eu-prod"),)),
    HTTPRequest("/v1/", "GET", (("x-env", "eu-Prod"), ("x-canary", "1"))),
    HTTPRequest("/items", "GET", (("x-env", "eu-prod"), ("x-env", "us"))),
]


@pytest.mark.parametrize("protocol", ["tcp", "tcp-static"])
@pytest.mark.parametrize("default", [DENY_DEFAULT, ALLOW_DEFAULT], ids=["default_deny", "default_allow"])
def test_network_rbac_agrees_with_the_engine_for_every_pair(default: DefaultDecision, protocol: str) -> None:
    assert disagreements(MESH, DESTINATIONS, SOURCES, [None], default=default, protocol=protocol) == []


def test_live_rbac_gives_identities_that_are_not_services_the_default() -> None:
    given = intentions({"Name": "web", "Sources": [{"Name": "*", "Namespace": "*", "Action": "allow"}]})
    for default in (DENY_DEFAULT, ALLOW_DEFAULT):
        table = live_table(build_resources(snapshot(all_intentions=given, default=default)))
        assert live_allows(table, spiffe.service_uri(TD, "default", "dc1", "api"))
        for uri in (f"spiffe://{TD}/agent/client/dc/dc1/id/n1", f"spiffe://{TD}/ap/default/ns/default/dc/dc1/svc/api",
                    spiffe.service_uri("other.consul", "default", "dc1", "api"), f"spiffe://{TD}/ns//dc/dc1/svc/api"):
            assert live_allows(table, uri) == default.allowed, uri


def test_the_live_listener_does_not_change_with_the_intentions() -> None:
    """What keeps open connections alive: an intention change touches local_app's endpoint
    metadata only, so Envoy has no listener to update and no filter chain to drain."""
    before = build_resources(snapshot(all_intentions=[], default=ALLOW_DEFAULT))
    after = build_resources(snapshot(all_intentions=MESH, default=DENY_DEFAULT))
    changed = {(t, n) for t in before for n in before[t].keys() | after[t].keys()
               if before[t].get(n) != after[t].get(n)}
    assert changed == {(types.ENDPOINT, types.LOCAL_APP)}


@pytest.mark.parametrize("default", [DENY_DEFAULT, ALLOW_DEFAULT], ids=["default_deny", "default_allow"])
def test_http_rbac_agrees_with_the_engine_for_every_pair_and_request(default: DefaultDecision) -> None:
    assert disagreements(MESH, DESTINATIONS, SOURCES, REQUESTS, default=default, protocol="http") == []


def test_the_enumeration_sees_both_verdicts() -> None:
    """Guard against a vacuous comparison: the mesh above allows and denies plenty."""
    index = IntentionIndex(MESH)
    verdicts = {index.decide(s, d, default=Default(False, ""), request=r).allowed
                for s in SOURCES for d in DESTINATIONS for r in REQUESTS}
    assert verdicts == {True, False}


# =========================================================================== shape of the rules

RULES = {
    "no_intentions_default_deny_denies_everything": ([], DENY_DEFAULT, rbac_pb2.RBAC.ALLOW, []),
    "no_intentions_default_allow_allows_everything": ([], ALLOW_DEFAULT, rbac_pb2.RBAC.DENY, []),
    "default_deny_keeps_only_allows": (
        intentions({"Name": "web", "Sources": [{"Name": "api", "Action": "allow"}, {"Name": "db", "Action": "deny"}]}),
        DENY_DEFAULT, rbac_pb2.RBAC.ALLOW, [rbac.L4_POLICY]),
    "l7_on_tcp_is_a_deny": (
        intentions({"Name": "web", "Sources": [{"Name": "api", "Permissions": [
            {"Action": "allow", "HTTP": {"PathPrefix": "/"}}]}]}),
        ALLOW_DEFAULT, rbac_pb2.RBAC.DENY, [rbac.L4_POLICY]),
}


@pytest.mark.parametrize(("given", "default", "action", "policies"), list(RULES.values()), ids=list(RULES))
def test_rules_shape(given: list[Intention], default: DefaultDecision, action: int, policies: list[str]) -> None:
    rules = public_rules(build_resources(by_host_name(snapshot(all_intentions=given, default=default))))
    assert rules.action == action
    assert sorted(rules.policies) == policies


def test_wildcard_source_is_carved_out_around_a_higher_precedence_deny() -> None:
    """Reference §2.3's example: web DENY (9), * ALLOW (8), default deny -> "any AND NOT web"."""
    given = intentions({"Name": "web", "Sources": [{"Name": "api", "Action": "deny"},
                                                   {"Name": "*", "Action": "allow"}]})
    rules = public_rules(build_resources(by_host_name(snapshot(all_intentions=given, default=DENY_DEFAULT))))
    [principal] = rules.policies[rbac.L4_POLICY].principals
    assert [p.WhichOneof("identifier") for p in principal.and_ids.ids] == ["authenticated", "not_id"]
    assert principal.and_ids.ids[1].not_id.authenticated.principal_name.safe_regex.regex == \
        rbac.spiffe_regex(TD, ("default", "api"))


def test_spiffe_regex_quotes_names_and_matches_any_datacenter() -> None:
    pattern = rbac.spiffe_regex("a.consul", ("team.a", "*"))
    assert pattern == r"^spiffe://a\.consul/ns/team\.a/dc/[^/]+/svc/[^/]+$"
    assert re2.fullmatch(pattern, "spiffe://a.consul/ns/team.a/dc/dc9/svc/web")
    assert not re2.fullmatch(pattern, "spiffe://a.consul/ns/teamxa/dc/dc9/svc/web")
    assert not re2.fullmatch(pattern, "spiffe://a.consul/ns/team.a/dc/dc9/svc/web/extra")


# =========================================================================== random meshes

_NAMES = ("web", "api", "*")
_NAMESPACES = ("default", "team-a", "*")
_HEADERS = st.sampled_from([
    HeaderMatch("x-a", exact="1"), HeaderMatch("x-a", present=True, invert=True),
    HeaderMatch("x-a", prefix="a", ignore_case=True), HeaderMatch("x-b", regex="[0-9]+", invert=True),
])
_MATCHES = st.builds(
    HTTPMatch,
    path_prefix=st.sampled_from(["", "/a", "/a/b"]),
    methods=st.sampled_from([(), ("GET",), ("POST", "PUT")]),
    headers=st.lists(_HEADERS, max_size=2, unique=True).map(tuple),
)
_PERMISSIONS = st.lists(st.builds(Permission, st.sampled_from(list(Action)), _MATCHES), min_size=1, max_size=3)


@st.composite
def _intention(draw) -> Intention:
    src_ns = draw(st.sampled_from(_NAMESPACES))
    src = "*" if src_ns == "*" else draw(st.sampled_from(_NAMES))
    dst_ns = draw(st.sampled_from(_NAMESPACES))
    dst = "*" if dst_ns == "*" else draw(st.sampled_from(_NAMES))
    if draw(st.booleans()):
        return Intention(src_ns, src, dst_ns, dst, action=draw(st.sampled_from(list(Action))))
    return Intention(src_ns, src, dst_ns, dst, permissions=tuple(draw(_PERMISSIONS)))


def _unique_pairs(found: list[Intention]) -> list[Intention]:
    """The store keeps one intention per (source, destination)."""
    return list({(i.source, i.destination): i for i in found}.values())


_RANDOM_SOURCES = [(ns, n) for ns in ("default", "team-a", "team-b") for n in ("web", "api", "db")]
_RANDOM_REQUESTS = [HTTPRequest(p, m, h) for p, m, h in itertools.product(
    ["/a", "/a/b/c", "/z"], ["GET", "PUT"], [(), (("x-a", "1"),), (("x-a", "Abc"), ("x-b", "7"))])]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(found=st.lists(_intention(), max_size=8).map(_unique_pairs), allowed=st.booleans(),
       protocol=st.sampled_from(["tcp", "tcp-static", "http"]))
def test_random_meshes_agree_with_the_engine(found: list[Intention], allowed: bool, protocol: str) -> None:
    default = ALLOW_DEFAULT if allowed else DENY_DEFAULT
    requests = _RANDOM_REQUESTS if protocol == "http" else [None]
    assert disagreements(found, [("default", "web"), ("team-a", "api")], _RANDOM_SOURCES, requests,
                         default=default, protocol=protocol) == []
