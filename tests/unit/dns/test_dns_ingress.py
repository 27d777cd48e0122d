"""``<service>.ingress.<domain>``: the instances of the ingress gateways exposing the service,
answered with each gateway's address and registered port (Consul's rule), health-filtered."""

from __future__ import annotations

import dns.rcode
import dns.rdatatype
import pytest

from trellis.catalog import write
from trellis.catalog.model import CheckStatus, Connect, Proxy, ServiceKind
from trellis.dns import DnsConfig, build_answer, format_answer, parse_query
from trellis.store.writer import Plan
from trellis.testing.builders import make_check, make_node, make_service, put_entries, running_view

CFG = DnsConfig()
IGW = {"Kind": "ingress-gateway", "Name": "igw", "Listeners": [
    {"Port": 8080, "Protocol": "tcp", "Services": [{"Name": "web"}]}]}
SEED_GW = {"Kind": "ingress-gateway", "Name": "seedgw", "Listeners": [
    {"Port": 9000, "Protocol": "tcp", "Services": [{"Name": "db"}]}]}


async def _setup(view, writer):
    def plan(v):
        p = Plan()
        write.put_node(p, v, make_node("n1", "10.0.0.1"))
        write.put_node(p, v, make_node("n2", "10.0.0.2"))
        write.put_node(p, v, make_node("n3", "2001:db8::3"))
        for s in (
            make_service("web", port=80),
            make_service("igw", node="n1", id="igw-1", kind=ServiceKind.INGRESS_GATEWAY, port=8443, proxy=Proxy()),
            make_service("igw", node="n2", id="igw-2", kind=ServiceKind.INGRESS_GATEWAY, address="10.9.0.2",
                         port=8443, proxy=Proxy()),
            make_service("igw", node="n3", id="igw-3", kind=ServiceKind.INGRESS_GATEWAY, port=8443, proxy=Proxy()),
            make_service("seedgw", node="n1", port=8080, connect=Connect(gateway=True), proxy=Proxy()),
        ):
            write.put_service(p, v, s)
        write.put_check(p, v, make_check("igw-3:tcp", node="n3", status=CheckStatus.CRITICAL, service_id="igw-3",
                                         service_name="igw"), keep_state=False)
        return p

    await writer.apply(plan)
    await put_entries(writer, IGW, SEED_GW)


CASES = [
    ("a_answers_gateway_addresses_not_the_critical_one", "web.ingress.consul.", "A", "NOERROR",
     ["web.ingress.consul. 0 IN A 10.0.0.1", "web.ingress.consul. 0 IN A 10.9.0.2"]),
    ("srv_answers_the_gateways_registered_port", "web.ingress.consul.", "SRV", "NOERROR",
     ["web.ingress.consul. 0 IN SRV 1 1 8443 0a090002.addr.dc1.consul.",
      "web.ingress.consul. 0 IN SRV 1 1 8443 n1.node.dc1.consul."]),
    ("aaaa_of_ipv4_gateways_is_nodata", "web.ingress.consul.", "AAAA", "NOERROR", []),
    ("a_seed_style_gateway_answers_too", "db.ingress.consul.", "SRV", "NOERROR",
     ["db.ingress.consul. 0 IN SRV 1 1 8080 n1.node.dc1.consul."]),
    ("no_gateway_exposes_it", "api.ingress.consul.", "A", "NXDOMAIN", []),
]


@pytest.mark.parametrize(("qname", "qtype", "rcode", "answers"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_ingress_answers(qname, qtype, rcode, answers):
    async with running_view() as (view, writer, _):
        await _setup(view, writer)
        query = parse_query(qname, CFG.domain, CFG.datacenter)
        ans = build_answer(query, dns.rdatatype.from_text(qtype), view, CFG)
        assert dns.rcode.to_text(ans.rcode) == rcode
        text = format_answer(ans, qname)
        got = sorted(line for line in text.splitlines() if not line.startswith(";;") and line.startswith(qname))
        assert got == sorted(answers)
        assert ("config-kind", "ingress-gateway") in ans.watch  # a new entry invalidates the cached answer
