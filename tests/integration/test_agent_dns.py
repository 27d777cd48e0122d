"""DNS on the wire against a real agent (dnspython): A, SRV, TC then TCP, NXDOMAIN."""

from __future__ import annotations

import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

pytestmark = pytest.mark.integration


def ask(agent, name, rdtype="A", tcp=False, payload=None):
    q = dns.message.make_query(name, rdtype, use_edns=payload is not None, payload=payload or 512)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(q, "127.0.0.1", port=agent.dns_port, timeout=5)


def test_consul_service_finds_the_server(agent):
    r = ask(agent, "consul.service.consul")
    assert [rr.address for rr in r.answer[0]] == ["127.0.0.1"]


def test_seed_dig_web_service(agent):
    code, _, _ = agent.request("PUT", "/v1/agent/service/register",
                               {"Name": "web", "Port": 8080, "Address": "127.0.0.5"})
    assert code == 200
    r = ask(agent, "web.service.consul")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert [rr.address for rr in r.answer[0]] == ["127.0.0.5"]
    srv = ask(agent, "web.service.consul", "SRV")
    (rec,) = srv.answer[0]
    assert rec.port == 8080
    assert any(rr.rdtype == dns.rdatatype.A for rr in srv.additional)


def test_unknown_name_is_nxdomain_with_soa(agent):
    r = ask(agent, "nope.service.consul")
    assert r.rcode() == dns.rcode.NXDOMAIN
    assert r.authority and r.authority[0].rdtype == dns.rdatatype.SOA


def test_critical_instances_are_left_out(agent):
    agent.request("PUT", "/v1/agent/service/register", {"Name": "sick", "Port": 1, "Check": {"TTL": "60s"}})
    assert ask(agent, "sick.service.consul").rcode() == dns.rcode.NXDOMAIN
    agent.request("PUT", "/v1/agent/check/warn/service:sick")
    deadline = time.monotonic() + 10
    while ask(agent, "sick.service.consul").rcode() != dns.rcode.NOERROR:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_many_instances_truncate_over_udp_and_come_whole_over_tcp(agent):
    for i in range(40):
        agent.request("PUT", "/v1/agent/service/register",
                      {"Name": "many", "ID": f"many-{i}", "Port": 1000 + i, "Address": f"127.0.1.{i + 1}"})
    udp = ask(agent, "many.service.consul", "SRV")
    assert udp.flags & dns.flags.TC
    tcp = ask(agent, "many.service.consul", "SRV", tcp=True)
    assert len(tcp.answer[0]) == 40
    assert not tcp.flags & dns.flags.TC
