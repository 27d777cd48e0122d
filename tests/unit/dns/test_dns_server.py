"""DnsServer.handle without sockets: rcode mapping, the cache, the authorizer, limits."""

from __future__ import annotations

import logging
import random
from dataclasses import replace

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from dns_catalog import Catalog, put

from trellis.catalog.model import Service
from trellis.dns import DnsConfig, DnsServer, ServiceQuery
from trellis.store.view import View


def web_view(n: int = 3) -> View:
    c = Catalog()
    for i in range(n):
        c.node(f"n{i}", f"10.0.0.{i + 1}").service(f"n{i}", f"web{i}", "web", port=8000 + i)
    return c.node("other", "10.9.9.9").service("other", "db", port=5432).view()


def ask(
    server: DnsServer, name: str, qtype: str = "A", udp: bool = True, **kw: object
) -> dns.message.Message:
    wire = server.handle(dns.message.make_query(name, qtype, **kw).to_wire(), udp=udp)  # type: ignore[arg-type]
    assert wire is not None
    return dns.message.from_wire(wire)


def addresses(msg: dns.message.Message) -> list[str]:
    return [rd.address for rrset in msg.answer for rd in rrset]


@pytest.fixture
def server() -> DnsServer:
    return DnsServer(web_view(), DnsConfig(), [("127.0.0.1", 0)], rng=random.Random(1))


@pytest.mark.parametrize(
    ("name", "qtype", "rcode", "aa", "soa"),
    [
        ("web.service.consul.", "A", dns.rcode.NOERROR, True, False),
        ("nope.service.consul.", "A", dns.rcode.NXDOMAIN, True, True),
        ("web.nokind.consul.", "A", dns.rcode.NXDOMAIN, True, True),
        ("web.service.consul.", "AAAA", dns.rcode.NOERROR, True, True),
        ("example.com.", "A", dns.rcode.REFUSED, False, False),
        ("consul.", "AXFR", dns.rcode.NOTIMP, True, False),
    ],
    ids=["found", "unknown_service", "unknown_kind", "nodata", "outside_domain", "axfr"],
)
def test_rcodes(server: DnsServer, name: str, qtype: str, rcode: int, aa: bool, soa: bool) -> None:
    msg = ask(server, name, qtype)
    assert msg.rcode() == rcode
    assert bool(msg.flags & dns.flags.AA) == aa
    assert bool(msg.authority) == soa


def test_non_internet_class_is_refused(server: DnsServer) -> None:
    msg = dns.message.make_query("web.service.consul.", "A", rdclass="CH")
    reply = dns.message.from_wire(server.handle(msg.to_wire(), udp=True))  # type: ignore[arg-type]
    assert reply.rcode() == dns.rcode.REFUSED


def test_garbage_is_formerr_and_scraps_are_dropped(server: DnsServer) -> None:
    reply = server.handle(b"\x00\x07\x01\x00\x00\x01" + b"\x00" * 6 + b"\x05", udp=True)
    assert reply is not None and dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR
    assert server.handle(b"\x00", udp=True) is None


def test_a_bug_is_servfail_and_logged(
    server: DnsServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("trellis.dns.cache.build_answer", boom)
    with caplog.at_level(logging.ERROR, logger="trellis.dns.server"):
        msg = ask(server, "web.service.consul.")
    assert msg.rcode() == dns.rcode.SERVFAIL
    assert "SERVFAIL" in caplog.text and "bug" in caplog.text


def test_cached_answer_is_reused_until_its_watch_set_moves(server: DnsServer) -> None:
    ask(server, "web.service.consul.")
    ask(server, "WEB.service.consul.")  # same lower-cased question: same slot
    assert (server.cache.misses, server.cache.hits) == (1, 1)
    put(server.view, Service(node="other", id="db", name="db", port=5433))  # not in web's watch set
    ask(server, "web.service.consul.")
    assert server.cache.misses == 1
    put(server.view, Service(node="other", id="web9", name="web", port=80))
    msg = ask(server, "web.service.consul.")
    assert server.cache.misses == 2
    assert "10.9.9.9" in addresses(msg)


def test_negative_answers_are_invalidated_when_the_name_appears(server: DnsServer) -> None:
    assert ask(server, "api.service.consul.").rcode() == dns.rcode.NXDOMAIN
    put(server.view, Service(node="other", id="api", name="api", port=80))
    assert addresses(ask(server, "api.service.consul.")) == ["10.9.9.9"]


def test_authorizer_sees_every_query_and_can_deny() -> None:
    seen: list[tuple[object, object]] = []

    def authorize(query: object, token: object) -> bool:
        seen.append((query, token))
        return not isinstance(query, ServiceQuery) or query.name != "db"

    server = DnsServer(web_view(), DnsConfig(), authorize=authorize, token="dns-token")
    assert ask(server, "web.service.consul.").rcode() == dns.rcode.NOERROR
    assert ask(server, "web.service.consul.").rcode() == dns.rcode.NOERROR  # cached, still asked
    denied = ask(server, "db.service.consul.")
    assert denied.rcode() == dns.rcode.NXDOMAIN and denied.authority
    assert [t for _, t in seen] == ["dns-token"] * 3
    assert seen[0][0] == ServiceQuery("web", "dc1")


def test_udp_answer_limit_caps_non_edns_udp_with_tc() -> None:
    server = DnsServer(web_view(5), DnsConfig(udp_answer_limit=3))
    udp = ask(server, "web.service.consul.")
    assert len(addresses(udp)) == 3 and udp.flags & dns.flags.TC
    assert len(addresses(ask(server, "web.service.consul.", use_edns=0))) == 5
    assert len(addresses(ask(server, "web.service.consul.", udp=False))) == 5


def test_a_record_limit_is_policy_not_truncation() -> None:
    server = DnsServer(web_view(5), DnsConfig(a_record_limit=2))
    msg = ask(server, "web.service.consul.")
    assert len(addresses(msg)) == 2 and not msg.flags & dns.flags.TC


def test_order_is_shuffled_per_query(server: DnsServer) -> None:
    orders = {tuple(addresses(ask(server, "web.service.consul."))) for _ in range(30)}
    assert len(orders) > 1
    assert {frozenset(o) for o in orders} == {frozenset({"10.0.0.1", "10.0.0.2", "10.0.0.3"})}


def test_config_domain_and_datacenter() -> None:
    cfg = replace(DnsConfig(), domain="mesh.", datacenter="east")
    server = DnsServer(web_view(), cfg)
    assert addresses(ask(server, "web.service.east.mesh.")) != []
    assert ask(server, "web.service.consul.").rcode() == dns.rcode.REFUSED


def test_config_from_the_agent_config() -> None:
    from trellis.config.agent_config import AgentConfig, DNSConfig, SOAConfig

    agent = AgentConfig(
        domain="mesh.",
        datacenter="east",
        dns_config=DNSConfig(
            node_ttl=7.0, service_ttl={"web*": 3.0}, only_passing=True, a_record_limit=2,
            soa=SOAConfig(min_ttl=5, refresh=6, retry=7, expire=8),
        ),
    )
    cfg = DnsConfig.from_agent_config(agent)
    assert (cfg.domain, cfg.datacenter, cfg.node_ttl, cfg.service_ttl) == ("mesh.", "east", 7.0, {"web*": 3.0})
    assert (cfg.only_passing, cfg.a_record_limit, cfg.udp_answer_limit) == (True, 2, None)
    assert (cfg.soa.min_ttl, cfg.soa.refresh, cfg.soa.retry, cfg.soa.expire) == (5, 6, 7, 8)
    explicit = replace(agent, dns_config=replace(agent.dns_config, udp_answer_limit=5))
    assert DnsConfig.from_agent_config(explicit).udp_answer_limit == 5


def test_a_fixed_reply_is_replayed_with_the_new_id_until_the_view_moves() -> None:
    c = Catalog().node("n1", "10.0.0.1").service("n1", "solo", port=80)
    view = c.view()
    seen: list[object] = []
    server = DnsServer(view, DnsConfig(), authorize=lambda q, t: seen.append(q) or True)
    first, second = (dns.message.make_query("solo.service.consul.", "A") for _ in range(2))
    second.id = (first.id + 1) % 65536
    r1 = dns.message.from_wire(server.handle(first.to_wire(), udp=True))
    r2 = dns.message.from_wire(server.handle(second.to_wire(), udp=True))
    assert (r1.id, r2.id) == (first.id, second.id)
    assert addresses(r1) == addresses(r2) == ["10.0.0.1"]
    assert len(seen) == 2  # the replayed reply still asked the authorizer
    put(view, Service(node="n1", id="solo", name="solo", port=80, address="10.0.0.7"))
    assert addresses(dns.message.from_wire(server.handle(first.to_wire(), udp=True))) == ["10.0.0.7"]
