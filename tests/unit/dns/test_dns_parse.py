"""parse_query: Consul's DNS names -> typed queries (consul-connect.md §4.1)."""

from __future__ import annotations

import ipaddress

import dns.name
import pytest

from trellis.dns import (
    AddrQuery,
    ApexQuery,
    LookupKind,
    NodeQuery,
    OutsideDomain,
    ParseError,
    ServiceQuery,
    format_query,
    parse_query,
)

CASES = [
    ("service", "web.service.consul.", ServiceQuery("web", "dc1")),
    ("service_upper_case", "WEB.Service.CONSUL.", ServiceQuery("web", "dc1")),
    ("service_dc", "web.service.dc2.consul.", ServiceQuery("web", "dc2")),
    ("tag", "v1.web.service.consul.", ServiceQuery("web", "dc1", tag="v1")),
    ("tag_with_dots", "a.b.web.service.dc1.consul.", ServiceQuery("web", "dc1", tag="a.b")),
    ("rfc2782_tcp_is_no_tag", "_web._tcp.service.consul.", ServiceQuery("web", "dc1")),
    ("rfc2782_tag", "_web._v1.service.dc3.consul.", ServiceQuery("web", "dc3", tag="v1")),
    ("rfc2782_udp_is_a_tag", "_web._udp.service.consul.", ServiceQuery("web", "dc1", tag="udp")),
    (
        "rfc2782_without_service_label",
        "_web._tcp.consul.",
        ServiceQuery("web", "dc1", srv_short_form=True),
    ),
    (
        "rfc2782_without_service_label_dc",
        "_db._primary.dc2.consul.",
        ServiceQuery("db", "dc2", tag="primary", srv_short_form=True),
    ),
    ("connect", "web.connect.consul.", ServiceQuery("web", "dc1", LookupKind.CONNECT)),
    ("connect_dc", "web.connect.dc2.consul.", ServiceQuery("web", "dc2", LookupKind.CONNECT)),
    ("ingress", "web.ingress.consul.", ServiceQuery("web", "dc1", LookupKind.INGRESS)),
    ("node", "n1.node.consul.", NodeQuery("n1", "dc1")),
    ("node_with_dots", "host.example.node.dc2.consul.", NodeQuery("host.example", "dc2")),
    ("addr_v4", "0a000001.addr.consul.", AddrQuery(ipaddress.ip_address("10.0.0.1"), "dc1")),
    (
        "addr_v6",
        "20010db8000000000000000000000001.addr.dc1.consul.",
        AddrQuery(ipaddress.ip_address("2001:db8::1"), "dc1"),
    ),
    ("apex", "consul.", ApexQuery()),
    (
        "namespace_and_dc_pairs",
        "web.service.team.ns.dc2.dc.consul.",
        ServiceQuery("web", "dc2", namespace="team"),
    ),
    (
        "namespace_pair_only",
        "v1.web.service.team.ns.consul.",
        ServiceQuery("web", "dc1", tag="v1", namespace="team"),
    ),
    ("dc_pair_only", "web.service.dc2.dc.consul.", ServiceQuery("web", "dc2")),
    ("default_partition_pair", "web.service.default.ap.dc1.dc.consul.", ServiceQuery("web", "dc1")),
    (
        "connect_namespace",
        "web.connect.team.ns.consul.",
        ServiceQuery("web", "dc1", LookupKind.CONNECT, namespace="team"),
    ),
    ("rfc2782_namespace", "_web._tcp.service.team.ns.consul.", ServiceQuery("web", "dc1", namespace="team")),
    ("node_dc_pair", "n1.node.dc2.dc.consul.", NodeQuery("n1", "dc2")),
    # labels are scanned right to left: the last kind label wins (Consul's router_query.go)
    ("rightmost_kind_wins", "web.service.node.consul.", NodeQuery("web.service", "dc1")),
]


@pytest.mark.parametrize(("qname", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse_query(qname: str, expected: object) -> None:
    assert parse_query(qname, "consul.", "dc1") == expected


@pytest.mark.parametrize(("qname", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_parse_accepts_a_name_object(qname: str, expected: object) -> None:
    assert parse_query(dns.name.from_text(qname), dns.name.from_text("consul."), "dc1") == expected


def test_other_domain_and_default_datacenter() -> None:
    assert parse_query("web.service.example.", "Example", "DC9") == ServiceQuery("web", "dc9")


BAD = [
    ("unknown_kind", "web.foo.consul."),
    ("nothing_before_kind", "service.consul."),
    ("nothing_before_node", "node.dc1.consul."),
    ("prepared_query_unsupported", "q.query.consul."),
    ("virtual_unsupported", "web.virtual.consul."),
    ("peer_unsupported", "web.service.p1.peer.consul."),
    ("partition_unsupported", "web.service.part.ap.consul."),
    ("odd_locality", "web.service.a.b.c.consul."),
    ("unknown_locality_key", "web.service.x.zone.consul."),
    ("repeated_locality_key", "web.service.a.dc.b.dc.consul."),
    ("namespace_on_node", "n1.node.team.ns.consul."),
    ("addr_bad_length", "0a00001.addr.consul."),
    ("addr_not_hex", "zz000001.addr.consul."),
    ("addr_two_labels", "0a.000001.addr.consul."),
    ("connect_with_tag", "v1.web.connect.consul."),
    ("rfc2782_three_labels", "x._web._tcp.consul."),
    ("rfc2782_empty_service", "_._tcp.service.consul."),
]


@pytest.mark.parametrize("qname", [c[1] for c in BAD], ids=[c[0] for c in BAD])
def test_names_that_are_no_lookup_raise_parse_error(qname: str) -> None:
    with pytest.raises(ParseError):
        parse_query(qname, "consul.", "dc1")


@pytest.mark.parametrize("qname", ["example.com.", "consul.example.com.", "."])
def test_names_outside_the_domain_raise_outside_domain(qname: str) -> None:
    with pytest.raises(OutsideDomain):
        parse_query(qname, "consul.", "dc1")


def test_parse_error_names_the_name_and_reason() -> None:
    with pytest.raises(ParseError, match=r"web\.foo\.consul.*no lookup kind"):
        parse_query("web.foo.consul", "consul", "dc1")


FORMATTED = [
    (ServiceQuery("web", "dc1"), "web.service.dc1.consul."),
    (ServiceQuery("web", "dc1", tag="a.b"), "a.b.web.service.dc1.consul."),
    (ServiceQuery("web", "dc2", LookupKind.CONNECT, namespace="team"), "web.connect.team.ns.dc2.dc.consul."),
    (ServiceQuery("web", "dc1", tag="v1", srv_short_form=True), "_web._v1.dc1.consul."),
    (ServiceQuery("web", "dc1", srv_short_form=True), "_web._tcp.dc1.consul."),
    (NodeQuery("a.b", "dc1"), "a.b.node.dc1.consul."),
    (AddrQuery(ipaddress.ip_address("10.0.0.1"), "dc1"), "0a000001.addr.dc1.consul."),
    (ApexQuery(), "consul."),
]


@pytest.mark.parametrize(("query", "text"), FORMATTED, ids=[t for _, t in FORMATTED])
def test_format_query_writes_the_canonical_name(query: object, text: str) -> None:
    name = format_query(query, "consul.")  # type: ignore[arg-type]
    assert name.to_text() == text
    assert parse_query(name, "consul.", "dc9") == query
