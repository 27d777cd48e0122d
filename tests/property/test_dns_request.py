"""wire.py against dnspython: any query dnspython writes parses the same, every prefix is
rejected cleanly (h11 test_io style), and every reply fits its limit and parses back."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.SRV import SRV
from hypothesis import given, settings
from hypothesis import strategies as st

from trellis.dns import Answer, Entry, Record, WireError
from trellis.dns.wire import assemble, encode_answer, parse_request

label = st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True)
names = st.lists(label, min_size=0, max_size=6).map(lambda ls: ".".join(ls) + ".")
qtypes = st.sampled_from(["A", "AAAA", "SRV", "TXT", "ANY", "SOA", "NS", "MX"])


@st.composite
def queries(draw: st.DrawFn) -> dns.message.Message:
    name = draw(names)
    edns = draw(st.booleans())
    options = []
    if edns and draw(st.booleans()):
        options.append(dns.edns.ECSOption(draw(st.ip_addresses(v=4)).exploded, draw(st.integers(0, 32))))
    return dns.message.make_query(
        name,
        draw(qtypes),
        use_edns=0 if edns else None,
        payload=draw(st.integers(0, 65535)),
        want_dnssec=edns and draw(st.booleans()),
        options=options or None,
    )


@given(queries())
def test_parses_like_dnspython(msg: dns.message.Message) -> None:
    req = parse_request(msg.to_wire())
    q = msg.question[0]
    assert (req.id, req.qtype, req.qclass) == (msg.id, q.rdtype, q.rdclass)
    assert req.name() == q.name
    assert req.question[: len(q.name.to_wire())] == q.name.to_wire()  # spelling kept
    assert (req.edns is not None) == (msg.edns >= 0)
    if req.edns is not None:
        assert (req.edns.payload, req.edns.do) == (msg.payload, bool(msg.ednsflags & dns.flags.DO))


@settings(max_examples=50)
@given(queries())
def test_every_prefix_is_rejected(msg: dns.message.Message) -> None:
    wire = msg.to_wire()
    for end in range(len(wire)):
        try:
            parse_request(wire[:end])
        except WireError:
            continue
        raise AssertionError(f"prefix of {end} bytes parsed")


def _answer(n: int, meta: int) -> Answer:
    entries = []
    for i in range(n):
        target = dns.name.from_text(f"node{i}.node.dc1.consul.")
        extra = tuple(Record(target, 0, A(1, 1, f"10.0.{i // 250}.{i % 250 + 1}")) for _ in range(1 + meta))
        entries.append(Entry((Record(None, 0, SRV(1, 33, 1, 1, 1000 + i, target)),), extra))
    return Answer(dns.rcode.NOERROR, tuple(entries))


@settings(max_examples=60)
@given(st.integers(0, 300), st.integers(0, 2), st.integers(512, 65535), queries())
def test_replies_fit_and_parse(n: int, meta: int, limit: int, msg: dns.message.Message) -> None:
    req = parse_request(msg.to_wire())
    enc = encode_answer(_answer(n, meta), req.qname)
    wire = assemble(req, enc, enc.entries, limit)
    assert len(wire) <= limit
    reply = dns.message.from_wire(wire)
    srv = [rd for rrset in reply.answer for rd in rrset]
    assert bool(reply.flags & dns.flags.TC) == (len(srv) < n)
    assert {rr.name for rr in reply.additional} == {rd.target for rd in srv}
