"""parse_query ∘ format_query is the identity on queries (STYLE §6: every parser/formatter pair)."""

from __future__ import annotations

import ipaddress

from hypothesis import given
from hypothesis import strategies as st

from trellis.dns import AddrQuery, ApexQuery, LookupKind, NodeQuery, ServiceQuery, format_query, parse_query

# Labels that mean something in a name (kinds, locality keys) are not valid values.
_RESERVED = {"service", "connect", "ingress", "node", "addr", "virtual", "query", "workload", "port", "peer"}
label = st.from_regex(r"[a-z0-9][a-z0-9-]{0,14}", fullmatch=True).filter(lambda s: s not in _RESERVED)
dotted = st.lists(label, min_size=1, max_size=3).map(".".join)
namespace = st.one_of(st.just("default"), label)
domain = st.one_of(
    st.just("consul."), st.lists(label, min_size=1, max_size=2).map(lambda ls: ".".join(ls) + ".")
)


@st.composite
def service_queries(draw: st.DrawFn) -> ServiceQuery:
    kind = draw(st.sampled_from(LookupKind))
    name, dc, ns = draw(label), draw(label), draw(namespace)
    if kind is not LookupKind.SERVICE:
        return ServiceQuery(name, dc, kind, namespace=ns)
    if draw(st.booleans()):  # `_name._tag` without `.service`: one-label tag, `tcp` means none
        tag = draw(st.one_of(st.just(""), label.filter(lambda t: t != "tcp")))
        return ServiceQuery(name, dc, tag=tag, namespace=ns, srv_short_form=True)
    return ServiceQuery(name, dc, tag=draw(st.one_of(st.just(""), dotted)), namespace=ns)


queries = st.one_of(
    service_queries(),
    st.builds(NodeQuery, dotted, label),
    st.builds(AddrQuery, st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), label),
    st.just(ApexQuery()),
)


@given(queries, domain, label)
def test_parse_inverts_format(query: object, dom: str, default_dc: str) -> None:
    assert parse_query(format_query(query, dom), dom, default_dc) == query  # type: ignore[arg-type]


@given(queries, domain)
def test_parse_ignores_case(query: object, dom: str) -> None:
    text = format_query(query, dom).to_text()  # type: ignore[arg-type]
    assert parse_query(text.upper(), dom, "dc1") == parse_query(text, dom, "dc1")


@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
def test_addr_label_round_trips_every_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    query = parse_query(format_query(AddrQuery(address, "dc1"), "consul."), "consul.", "dc1")
    assert isinstance(query, AddrQuery) and query.address == address
