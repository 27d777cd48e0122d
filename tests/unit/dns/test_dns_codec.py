"""wire.py: request parsing and reply assembly, checked against dnspython."""

from __future__ import annotations

import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.SRV import SRV

from trellis.dns import Answer, Entry, Record, WireError
from trellis.dns.wire import (
    assemble,
    encode_answer,
    encode_error,
    encode_formerr,
    encode_name,
    parse_request,
)


def query(name: str = "web.service.consul.", qtype: str = "A", **kw: object) -> bytes:
    return dns.message.make_query(name, qtype, **kw).to_wire()  # type: ignore[arg-type]


# -- parse_request ----------------------------------------------------------------------


def test_parse_plain_query() -> None:
    msg = dns.message.make_query("Web.Service.Consul.", "SRV")
    req = parse_request(msg.to_wire())
    assert (req.id, req.qtype, req.qclass, req.edns) == (msg.id, dns.rdatatype.SRV, 1, None)
    assert req.qname == b"\x03web\x07service\x06consul\x00"
    assert req.question[:4] == b"\x03Web"  # the client's spelling is kept for the echo
    assert req.name() == dns.name.from_text("web.service.consul.")
    assert req.udp_limit == 512


def test_parse_edns_payload_do_bit_and_client_subnet() -> None:
    ecs = dns.edns.ECSOption("192.0.2.0", 24)
    wire = query(use_edns=0, payload=4096, want_dnssec=True, options=[ecs])
    req = parse_request(wire)
    assert req.edns is not None
    assert (req.edns.payload, req.edns.version, req.edns.do) == (4096, 0, True)
    assert req.edns.ecs == ecs.to_wire()
    assert req.udp_limit == 4096


@pytest.mark.parametrize(("payload", "limit"), [(100, 512), (1232, 1232), (65535, 65467)])
def test_udp_limit_clamps_the_edns_payload(payload: int, limit: int) -> None:
    assert parse_request(query(use_edns=0, payload=payload)).udp_limit == limit


@pytest.mark.parametrize(
    "wire",
    [
        query(),
        query("consul.", "SOA", use_edns=0),
        query(
            "a.b.c.d.e.f.node.consul.",
            "ANY",
            use_edns=0,
            payload=1232,
            options=[dns.edns.ECSOption("10.0.0.0", 8)],
        ),
    ],
    ids=["plain", "edns", "edns_with_option"],
)
def test_every_strict_prefix_is_a_wire_error(wire: bytes) -> None:
    parse_request(wire)
    for end in range(len(wire)):
        with pytest.raises(WireError):
            parse_request(wire[:end])


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (query() + b"\x00", "trailing"),
        (bytes([0, 1, 0x80, 0]) + query()[4:], "response"),
        (query()[:4] + b"\x00\x02" + query()[6:], "2 questions"),
        (query()[:4] + b"\x00\x00" + query()[6:12], "0 questions"),
        (query()[:12] + b"\xc0\x0c\x00\x01\x00\x01", "compression"),
    ],
    ids=["trailing_bytes", "a_response", "two_questions", "no_question", "pointer_in_question"],
)
def test_malformed_queries_raise(wire: bytes, reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        parse_request(wire)


def test_other_opcodes_parse_to_an_empty_question() -> None:
    msg = dns.message.make_query("consul.", "SOA")
    msg.set_opcode(dns.opcode.NOTIFY)
    req = parse_request(msg.to_wire())
    assert (req.opcode, req.question) == (dns.opcode.NOTIFY, b"")
    reply = dns.message.from_wire(encode_error(req, dns.rcode.NOTIMP))
    assert (reply.opcode(), reply.rcode(), reply.question) == (dns.opcode.NOTIFY, dns.rcode.NOTIMP, [])


def test_formerr_copies_the_id_and_never_answers_responses_or_scraps() -> None:
    wire = bytes([0x12, 0x34, 0x01, 0x00]) + b"\x00\x05" + b"\x00" * 6
    reply = dns.message.from_wire(encode_formerr(wire))  # type: ignore[arg-type]
    assert (reply.id, reply.rcode(), reply.flags & dns.flags.RD) == (0x1234, dns.rcode.FORMERR, dns.flags.RD)
    assert encode_formerr(b"\x12\x34\x01") is None
    assert encode_formerr(bytes([0x12, 0x34, 0x81, 0]) + b"\x00" * 8) is None


# -- names ------------------------------------------------------------------------------------


def test_names_compress_against_the_question() -> None:
    table = {b"\x07service\x06consul\x00": 16, b"\x06consul\x00": 24}
    assert encode_name(dns.name.from_text("n1.node.dc1.consul."), table) == b"\x02n1\x04node\x03dc1\xc0\x18"
    assert encode_name(dns.name.from_text("consul."), table) == b"\xc0\x18"
    assert encode_name(dns.name.from_text("example.com."), table) == b"\x07example\x03com\x00"


# -- assemble -----------------------------------------------------------------------------------


def _srv_answer(n: int) -> Answer:
    entries = []
    for i in range(n):
        target = dns.name.from_text(f"node{i}.node.dc1.consul.")
        srv = SRV(1, 33, 1, 1, 8000 + i, target)
        entries.append(
            Entry((Record(None, 5, srv),), (Record(target, 5, A(1, 1, f"10.0.{i // 250}.{i % 250 + 1}")),))
        )
    return Answer(dns.rcode.NOERROR, tuple(entries))


def _reply(n: int, max_size: int, **kw: object) -> tuple[bytes, dns.message.Message]:
    wire_q = query("Web.Service.Consul.", "SRV", **kw)
    req = parse_request(wire_q)
    enc = encode_answer(_srv_answer(n), req.qname)
    wire = assemble(req, enc, enc.entries, max_size)
    return wire, dns.message.from_wire(wire)


def test_reply_echoes_the_question_and_points_owners_at_it() -> None:
    wire, msg = _reply(2, 512)
    assert msg.question[0].name.to_text() == "Web.Service.Consul."
    assert msg.answer[0].name.to_text() == "Web.Service.Consul."
    assert msg.flags & dns.flags.AA and not msg.flags & dns.flags.TC
    targets = {rd.target for rd in msg.answer[0]}
    assert {rr.name for rr in msg.additional} == targets
    assert wire.count(b"\x05node0") == 1  # the additional owner is a pointer to the SRV target


def test_entries_that_do_not_fit_are_left_out_with_tc() -> None:
    wire, msg = _reply(40, 512)
    assert len(wire) <= 512 and msg.flags & dns.flags.TC
    kept = {rd.target for rd in msg.answer[0]}
    assert 0 < len(kept) < 40
    assert {rr.name for rr in msg.additional} == kept  # additionals stay in sync


def test_large_replies_fall_back_to_plain_additional_owners_past_16k() -> None:
    wire, msg = _reply(600, 65535)
    assert len(wire) > 0x3FFF and not msg.flags & dns.flags.TC
    assert len(msg.answer[0]) == 600
    assert {rr.name for rr in msg.additional} == {rd.target for rd in msg.answer[0]}


def test_edns_reply_carries_opt_with_the_do_bit_and_ecs_scope_zero() -> None:
    ecs = dns.edns.ECSOption("192.0.2.0", 24)
    _, msg = _reply(1, 4096, use_edns=0, payload=1232, want_dnssec=True, options=[ecs])
    assert msg.edns == 0 and msg.payload == 1232 and msg.ednsflags & dns.flags.DO
    (opt,) = msg.options
    assert (opt.address, opt.srclen, opt.scopelen) == ("192.0.2.0", 24, 0)


def test_badvers_uses_the_extended_rcode() -> None:
    req = parse_request(query(use_edns=1))
    msg = dns.message.from_wire(encode_error(req, dns.rcode.BADVERS))
    assert msg.rcode() == dns.rcode.BADVERS


def test_authority_that_does_not_fit_sets_tc() -> None:
    soa_like = Record(dns.name.from_text("consul."), 0, A(1, 1, "10.0.0.1"))
    ans = Answer(dns.rcode.NXDOMAIN, authority=(soa_like,) * 40)
    req = parse_request(query())
    msg = dns.message.from_wire(assemble(req, encode_answer(ans, req.qname), (), 512))
    assert msg.flags & dns.flags.TC and msg.authority == []
    full = dns.message.from_wire(assemble(req, encode_answer(ans, req.qname), (), 65535))
    assert not full.flags & dns.flags.TC and len(full.authority[0]) == 1  # identical records merge


def test_header_counts_match_sections() -> None:
    wire, msg = _reply(3, 4096)
    _, _, qd, an, ns, ar = struct.unpack("!6H", wire[:12])
    assert (qd, an, ns, ar) == (1, 3, 0, 3)
