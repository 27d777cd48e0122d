"""build_answer/answer: what each Consul DNS name yields from a catalog (consul-connect.md §4.2-4.4)."""

from __future__ import annotations

import os
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import dns.rcode
import dns.rdatatype
import pytest
from dns_catalog import Catalog

from trellis.catalog.model import Connect, Proxy
from trellis.dns import DnsConfig, answer, build_answer, format_answer, parse_query, select
from trellis.dns.answer import encode_rfc1464, service_ttl
from trellis.store.view import View

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "dns"
CFG = DnsConfig()


def catalog() -> View:
    return (
        Catalog()
        .node("n1", "10.0.0.1", meta={"rack": "r1", "rfc1035-raw": "v=spf1"})
        .node("n2", "10.0.0.2")
        .node("n3", "10.0.0.3")
        .node("n6", "2001:db8::6")
        .node("ext", "ext.example.com")
        .check("n3", "serfHealth", "critical")
        .service("n1", "consul", port=8300)
        .service("n1", "web1", "web", port=8080, tags=("v1", "Primary"))
        .service("n2", "web2", "web", port=8081, address="10.1.0.2", tags=("v2",), weights=(5, 2))
        .check("n2", "web2:http", "warning", service_id="web2", service_name="web")
        .service("n3", "web3", "web", port=8082)
        .service(
            "n1",
            "web1-sidecar-proxy",
            kind="connect-proxy",
            port=21000,
            proxy=Proxy(destination_service_name="web", destination_service_id="web1"),
        )
        .service("n2", "pay", port=9090, connect=Connect(native=True))
        .service("n3", "cache", port=6379)
        .service("n6", "db", port=5432)
        .service("n1", "api1", "api", port=80, address="api.example.com")
        .service("n2", "api2", "api", port=80, address="api2.example.com")
        .service("n1", "dup1", "dup", port=1)
        .service("n1", "dup2", "dup", port=1)
        .service("n2", "web-team", "web", namespace="team", port=7000)
        .service("n1", "web-alias", "web", port=8080, address="10.0.0.1", tags=("alias",))
        .view()
    )


@pytest.fixture(scope="module")
def view() -> View:
    return catalog()


def run(view: View, qname: str, qtype: str, **config: Any) -> tuple[str, list[str], list[str], list[str]]:
    cfg = replace(CFG, **config)
    query = parse_query(qname, cfg.domain, cfg.datacenter)
    ans = build_answer(query, dns.rdatatype.from_text(qtype), view, cfg)
    lines = format_answer(ans, qname).splitlines()
    sections: dict[str, list[str]] = {"answer": [], "authority": [], "additional": []}
    current = None
    for line in lines[1:]:
        if line.startswith(";; limit"):
            continue
        if line.startswith(";; "):
            current = line[3:]
        else:
            assert current is not None
            sections[current].append(line)
    return (
        dns.rcode.to_text(ans.rcode),
        sorted(sections["answer"]),
        sorted(sections["authority"]),
        sorted(sections["additional"]),
    )


# (id, qname, qtype, config, rcode, answer lines, additional lines)
CASES: list[tuple[str, str, str, dict, str, list[str], list[str]]] = [
    (
        "srv_targets_node_name_or_addr_with_additionals_and_warning_weight",
        "web.service.consul.",
        "SRV",
        {},
        "NOERROR",
        [
            "web.service.consul. 0 IN SRV 1 1 8080 n1.node.dc1.consul.",
            "web.service.consul. 0 IN SRV 1 2 8081 0a010002.addr.dc1.consul.",
        ],
        [
            "0a010002.addr.dc1.consul. 0 IN A 10.1.0.2",
            "n1.node.dc1.consul. 0 IN A 10.0.0.1",
            'n1.node.dc1.consul. 0 IN TXT "rack=r1"',
            'n1.node.dc1.consul. 0 IN TXT "v=spf1"',
        ],
    ),
    (
        "srv_without_node_meta_txt",
        "web.service.consul.",
        "SRV",
        {"enable_additional_node_meta_txt": False},
        "NOERROR",
        [
            "web.service.consul. 0 IN SRV 1 1 8080 n1.node.dc1.consul.",
            "web.service.consul. 0 IN SRV 1 2 8081 0a010002.addr.dc1.consul.",
        ],
        ["0a010002.addr.dc1.consul. 0 IN A 10.1.0.2", "n1.node.dc1.consul. 0 IN A 10.0.0.1"],
    ),
    (
        "a_one_record_per_healthy_instance_critical_node_left_out",
        "web.service.consul.",
        "A",
        {},
        "NOERROR",
        ["web.service.consul. 0 IN A 10.0.0.1", "web.service.consul. 0 IN A 10.1.0.2"],
        [],
    ),
    (
        "only_passing_drops_warning",
        "web.service.consul.",
        "A",
        {"only_passing": True},
        "NOERROR",
        ["web.service.consul. 0 IN A 10.0.0.1"],
        [],
    ),
    (
        "tag_filter_is_case_insensitive",
        "PRIMARY.web.service.consul.",
        "A",
        {},
        "NOERROR",
        ["PRIMARY.web.service.consul. 0 IN A 10.0.0.1"],
        [],
    ),
    (
        "rfc2782_tag",
        "_web._v2.service.consul.",
        "SRV",
        {},
        "NOERROR",
        ["_web._v2.service.consul. 0 IN SRV 1 2 8081 0a010002.addr.dc1.consul."],
        ["0a010002.addr.dc1.consul. 0 IN A 10.1.0.2"],
    ),
    (
        "rfc2782_short_form_answers_srv",
        "_web._alias.consul.",
        "SRV",
        {},
        "NOERROR",
        ["_web._alias.consul. 0 IN SRV 1 1 8080 n1.node.dc1.consul."],
        [
            "n1.node.dc1.consul. 0 IN A 10.0.0.1",
            'n1.node.dc1.consul. 0 IN TXT "rack=r1"',
            'n1.node.dc1.consul. 0 IN TXT "v=spf1"',
        ],
    ),
    ("rfc2782_short_form_is_srv_only", "_web._tcp.consul.", "A", {}, "NXDOMAIN", [], []),
    ("aaaa_on_ipv4_service_is_nodata", "web.service.consul.", "AAAA", {}, "NOERROR", [], []),
    ("txt_on_service_is_nodata", "web.service.consul.", "TXT", {}, "NOERROR", [], []),
    (
        "aaaa_on_ipv6_node",
        "db.service.consul.",
        "AAAA",
        {},
        "NOERROR",
        ["db.service.consul. 0 IN AAAA 2001:db8::6"],
        [],
    ),
    ("a_on_ipv6_only_service_is_nodata", "db.service.consul.", "A", {}, "NOERROR", [], []),
    (
        "srv_ipv6_target_is_addr_of_node_name",
        "db.service.consul.",
        "SRV",
        {},
        "NOERROR",
        ["db.service.consul. 0 IN SRV 1 1 5432 n6.node.dc1.consul."],
        ["n6.node.dc1.consul. 0 IN AAAA 2001:db8::6"],
    ),
    ("unknown_service_nxdomain", "nope.service.consul.", "A", {}, "NXDOMAIN", [], []),
    ("all_instances_critical_nxdomain", "cache.service.consul.", "A", {}, "NXDOMAIN", [], []),
    ("unknown_tag_nxdomain", "v9.web.service.consul.", "SRV", {}, "NXDOMAIN", [], []),
    ("other_datacenter_nxdomain", "web.service.dc2.consul.", "A", {}, "NXDOMAIN", [], []),
    ("ingress_without_gateways", "web.ingress.consul.", "A", {}, "NXDOMAIN", [], []),
    (
        "connect_answers_sidecar_address_and_port",
        "web.connect.consul.",
        "SRV",
        {},
        "NOERROR",
        ["web.connect.consul. 0 IN SRV 1 1 21000 n1.node.dc1.consul."],
        [
            "n1.node.dc1.consul. 0 IN A 10.0.0.1",
            'n1.node.dc1.consul. 0 IN TXT "rack=r1"',
            'n1.node.dc1.consul. 0 IN TXT "v=spf1"',
        ],
    ),
    (
        "connect_native_service",
        "pay.connect.consul.",
        "A",
        {},
        "NOERROR",
        ["pay.connect.consul. 0 IN A 10.0.0.2"],
        [],
    ),
    ("connect_without_proxies_nxdomain", "db.connect.consul.", "A", {}, "NXDOMAIN", [], []),
    (
        "namespace_pair",
        "web.service.team.ns.consul.",
        "A",
        {},
        "NOERROR",
        ["web.service.team.ns.consul. 0 IN A 10.0.0.2"],
        [],
    ),
    (
        "hostname_address_is_a_cname",
        "api.service.consul.",
        "A",
        {},
        "NOERROR",
        [
            "api.service.consul. 0 IN CNAME api.example.com.",
            "api.service.consul. 0 IN CNAME api2.example.com.",
        ],
        [],
    ),
    (
        "hostname_address_is_the_srv_target",
        "api.service.consul.",
        "SRV",
        {},
        "NOERROR",
        [
            "api.service.consul. 0 IN SRV 1 1 80 api.example.com.",
            "api.service.consul. 0 IN SRV 1 1 80 api2.example.com.",
        ],
        [],
    ),
    (
        "same_node_address_port_deduplicated",
        "dup.service.consul.",
        "SRV",
        {},
        "NOERROR",
        ["dup.service.consul. 0 IN SRV 1 1 1 n1.node.dc1.consul."],
        [
            "n1.node.dc1.consul. 0 IN A 10.0.0.1",
            'n1.node.dc1.consul. 0 IN TXT "rack=r1"',
            'n1.node.dc1.consul. 0 IN TXT "v=spf1"',
        ],
    ),
    (
        "service_ttl_exact",
        "web.service.consul.",
        "A",
        {"service_ttl": {"web": 30, "w*": 5, "*": 1}},
        "NOERROR",
        ["web.service.consul. 30 IN A 10.0.0.1", "web.service.consul. 30 IN A 10.1.0.2"],
        [],
    ),
    (
        "node_a_with_meta_txt_additional",
        "n1.node.consul.",
        "A",
        {"node_ttl": 10},
        "NOERROR",
        ["n1.node.consul. 10 IN A 10.0.0.1"],
        ['n1.node.consul. 10 IN TXT "rack=r1"', 'n1.node.consul. 10 IN TXT "v=spf1"'],
    ),
    (
        "node_a_without_meta_txt",
        "n1.node.consul.",
        "A",
        {"enable_additional_node_meta_txt": False},
        "NOERROR",
        ["n1.node.consul. 0 IN A 10.0.0.1"],
        [],
    ),
    (
        "node_txt",
        "N1.node.dc1.consul.",
        "TXT",
        {},
        "NOERROR",
        ['N1.node.dc1.consul. 0 IN TXT "rack=r1"', 'N1.node.dc1.consul. 0 IN TXT "v=spf1"'],
        [],
    ),
    ("node_any", "n2.node.consul.", "ANY", {}, "NOERROR", ["n2.node.consul. 0 IN A 10.0.0.2"], []),
    ("node_aaaa_on_ipv4_is_nodata", "n2.node.consul.", "AAAA", {}, "NOERROR", [], []),
    ("node_ipv6", "n6.node.consul.", "AAAA", {}, "NOERROR", ["n6.node.consul. 0 IN AAAA 2001:db8::6"], []),
    (
        "node_hostname_is_a_cname",
        "ext.node.consul.",
        "A",
        {},
        "NOERROR",
        ["ext.node.consul. 0 IN CNAME ext.example.com."],
        [],
    ),
    ("unknown_node_nxdomain", "zz.node.consul.", "A", {}, "NXDOMAIN", [], []),
    ("node_other_dc_nxdomain", "n1.node.dc2.consul.", "A", {}, "NXDOMAIN", [], []),
    (
        "addr_v4",
        "0a000063.addr.dc1.consul.",
        "A",
        {},
        "NOERROR",
        ["0a000063.addr.dc1.consul. 0 IN A 10.0.0.99"],
        [],
    ),
    ("addr_v4_aaaa_is_nodata", "0a000063.addr.consul.", "AAAA", {}, "NOERROR", [], []),
    (
        "addr_v6",
        "20010db8000000000000000000000001.addr.consul.",
        "AAAA",
        {},
        "NOERROR",
        ["20010db8000000000000000000000001.addr.consul. 0 IN AAAA 2001:db8::1"],
        [],
    ),
    (
        "apex_ns_names_consul_servers_with_glue",
        "consul.",
        "NS",
        {},
        "NOERROR",
        ["consul. 0 IN NS n1.node.dc1.consul."],
        ["n1.node.dc1.consul. 0 IN A 10.0.0.1"],
    ),
    ("apex_a_is_nodata", "consul.", "A", {}, "NOERROR", [], []),
    ("axfr_not_implemented", "consul.", "AXFR", {}, "NOTIMP", [], []),
]


@pytest.mark.parametrize(
    ("qname", "qtype", "config", "rcode", "answers", "additional"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_answer(
    view: View, qname: str, qtype: str, config: dict, rcode: str, answers: list[str], additional: list[str]
) -> None:
    got_rcode, got_answers, authority, got_additional = run(view, qname, qtype, **config)
    assert (got_rcode, got_answers, got_additional) == (rcode, sorted(answers), sorted(additional))
    if rcode == "NXDOMAIN" or (rcode == "NOERROR" and not answers):
        assert len(authority) == 1 and " IN SOA ns.consul. hostmaster.consul. " in authority[0]
    elif qtype != "SOA":
        assert authority == []


def test_soa_query_has_ns_authority_and_glue(view: View) -> None:
    rcode, answers, authority, additional = run(view, "consul.", "SOA")
    assert rcode == "NOERROR"
    assert len(answers) == 1 and answers[0].startswith("consul. 0 IN SOA ns.consul. hostmaster.consul. ")
    assert authority == ["consul. 0 IN NS n1.node.dc1.consul."]
    assert additional == ["n1.node.dc1.consul. 0 IN A 10.0.0.1"]


def test_soa_settings_and_serial_from_the_index(view: View) -> None:
    cfg = replace(CFG, soa=replace(CFG.soa, refresh=1, retry=2, expire=3, min_ttl=4))
    ans = build_answer(parse_query("nope.service.consul", "consul", "dc1"), dns.rdatatype.A, view, cfg)
    (soa,) = ans.authority
    assert (soa.ttl, soa.rdata.refresh, soa.rdata.retry, soa.rdata.expire, soa.rdata.minimum) == (
        4,
        1,
        2,
        3,
        4,
    )
    assert soa.rdata.serial == view.index_of(ans.watch)


def test_other_domain_names_records_under_it() -> None:
    view = Catalog().node("n1", "10.0.0.1").service("n1", "web", port=80).view()
    cfg = DnsConfig(domain="mesh.internal", datacenter="east")
    ans = build_answer(
        parse_query("web.service.mesh.internal", cfg.domain, cfg.datacenter), dns.rdatatype.SRV, view, cfg
    )
    assert "SRV 1 1 80 n1.node.east.mesh.internal." in format_answer(ans, "web.service.mesh.internal.")


def test_answer_watches_what_it_read(view: View) -> None:
    ans = build_answer(parse_query("web.service.consul", "consul", "dc1"), dns.rdatatype.A, view, CFG)
    assert {("service", "default", "web"), ("service-checks", "default", "web"), ("node", "n1")} <= ans.watch
    node = build_answer(parse_query("n1.node.consul", "consul", "dc1"), dns.rdatatype.A, view, CFG)
    assert node.watch == frozenset({("node", "n1")})


def test_a_record_limit_caps_after_the_shuffle(view: View) -> None:
    cfg = replace(CFG, a_record_limit=1)
    query = parse_query("web.service.consul", "consul", "dc1")
    full = build_answer(query, dns.rdatatype.A, view, cfg)
    assert (len(full.entries), full.limit) == (2, 1)
    seen = {answer(query, dns.rdatatype.A, view, cfg, random.Random(seed)).entries[0] for seed in range(20)}
    assert seen == set(full.entries)


def test_a_record_limit_does_not_apply_to_srv(view: View) -> None:
    cfg = replace(CFG, a_record_limit=1)
    ans = answer(
        parse_query("web.service.consul", "consul", "dc1"), dns.rdatatype.SRV, view, cfg, random.Random(1)
    )
    assert len(ans.entries) == 2


def test_only_one_cname_when_every_instance_is_a_hostname(view: View) -> None:
    query = parse_query("api.service.consul", "consul", "dc1")
    assert len(answer(query, dns.rdatatype.A, view, CFG, random.Random(3)).entries) == 1


def test_shuffle_is_per_call_and_deterministic_per_seed() -> None:
    c = Catalog()
    for i in range(8):
        c.node(f"n{i}", f"10.0.0.{i + 1}").service(f"n{i}", f"web{i}", "web", port=80)
    view = c.view()
    query = parse_query("web.service.consul", "consul", "dc1")
    orders = {answer(query, dns.rdatatype.A, view, CFG, random.Random(s)).entries for s in range(10)}
    assert len(orders) > 1
    one = answer(query, dns.rdatatype.A, view, CFG, random.Random(5))
    assert one == answer(query, dns.rdatatype.A, view, CFG, random.Random(5))
    assert select(one, random.Random(1)).watch == one.watch


TTL_RULES = {"web": 30.0, "web*": 20.0, "we*": 10.0, "*": 1.0}


@pytest.mark.parametrize(
    ("service", "rules", "ttl"),
    [
        ("web", TTL_RULES, 30),
        ("webapp", TTL_RULES, 20),
        ("west", TTL_RULES, 10),
        ("db", TTL_RULES, 1),
        ("db", {"web": 5.0}, 0),
        ("Web", TTL_RULES, 30),
    ],
    ids=["exact", "longest_prefix", "shorter_prefix", "catch_all", "no_rule", "case_insensitive"],
)
def test_service_ttl_rules(service: str, rules: dict, ttl: int) -> None:
    assert service_ttl(replace(CFG, service_ttl=rules), service) == ttl


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("rack", "r1", "rack=r1"),
        ("a=b", "c", "a`=b=c"),
        ("a`b", "c`d", "a``b=c``d"),
        ("  lead", "v", "` ` lead=v"),
        ("trail ", "v", "trail` =v"),
        ("k", "x=y", "k=x=y"),
    ],
    ids=["plain", "equals_in_key", "backquotes", "leading_spaces", "trailing_space", "equals_in_value"],
)
def test_rfc1464_encoding(key: str, value: str, text: str) -> None:
    assert encode_rfc1464(key, value) == text


# -- golden files: rendered answers with a fixed shuffle ------------------------------------

GOLDEN_CASES = [
    ("srv_web", "web.service.consul.", "SRV"),
    ("a_web", "web.service.consul.", "A"),
    ("srv_connect", "web.connect.consul.", "SRV"),
    ("node_any", "n1.node.consul.", "ANY"),
    ("apex_soa", "consul.", "SOA"),
    ("nxdomain", "nope.service.consul.", "A"),
    ("nodata", "web.service.consul.", "AAAA"),
]


def _update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(os.environ.get("TRELLIS_UPDATE_GOLDEN")) or bool(
        request.config.getoption("--update-golden", default=False)
    )


@pytest.mark.parametrize(("name", "qname", "qtype"), GOLDEN_CASES, ids=[c[0] for c in GOLDEN_CASES])
def test_golden(request: pytest.FixtureRequest, view: View, name: str, qname: str, qtype: str) -> None:
    query = parse_query(qname, CFG.domain, CFG.datacenter)
    ans = answer(query, dns.rdatatype.from_text(qtype), view, CFG, random.Random(7))
    text = f";; {qname} {qtype}\n" + format_answer(ans, qname)
    path = GOLDEN / f"{name}.txt"
    if _update_golden(request):
        path.write_text(text)
    assert path.exists(), f"{path} missing; create it with TRELLIS_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path} differs; rerun with TRELLIS_UPDATE_GOLDEN=1 and read the diff"
