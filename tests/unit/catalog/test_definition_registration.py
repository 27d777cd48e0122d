"""build_registration / build_check: the defaults Consul's agent fills in."""

from __future__ import annotations

import pytest

from trellis.catalog.definition import (
    Registration,
    build_check,
    build_registration,
    decode_check,
    decode_service,
)
from trellis.catalog.model import (
    DEFAULT_NAMESPACE,
    CheckStatus,
    CheckType,
    Proxy,
    ServiceAddress,
    ServiceKind,
    Weights,
)
from trellis.catalog.sidecar import PortPool


def register(body: dict, **kwargs: object) -> Registration:
    defn = decode_service(body, origin="api")
    options = {"node": "node-1", "datacenter": "dc1", "sidecar_ports": PortPool(), **kwargs}
    return build_registration(defn, **options)  # type: ignore[arg-type]


def test_plain_service_gets_consuls_defaults() -> None:
    reg = register({"Name": "web", "Port": 80})
    s = reg.service
    assert (s.node, s.id, s.name, s.kind, s.namespace, s.datacenter) == (
        "node-1", "web", "web", ServiceKind.TYPICAL, DEFAULT_NAMESPACE, "dc1")
    assert s.weights == Weights(1, 1)
    assert s.proxy is None
    assert reg.checks == () and reg.sidecar is None


def test_given_fields_are_kept() -> None:
    s = register({"ID": "web-1", "Name": "web", "Tags": ["v1"], "Meta": {"a": "b"}, "Port": 80,
                  "Weights": {"Passing": 3, "Warning": 0}, "EnableTagOverride": True, "Namespace": "ns1",
                  "Token": "tok", "Locality": {"Region": "r"}}).service
    assert (s.id, s.tags, s.meta, s.weights, s.enable_tag_override, s.namespace, s.agent_token, s.locality) == (
        "web-1", ("v1",), {"a": "b"}, Weights(3, 0), True, "ns1", "tok", {"region": "r", "zone": ""})


TAGGED = {
    "ipv4": ("10.0.0.5", {"lan_ipv4": ServiceAddress("10.0.0.5", 80), "wan_ipv4": ServiceAddress("10.0.0.5", 80)}),
    "ipv6": ("2001:db8::5", {"lan_ipv6": ServiceAddress("2001:db8::5", 80),
                             "wan_ipv6": ServiceAddress("2001:db8::5", 80)}),
    "ipv4-mapped-ipv6-counts-as-ipv4": ("::ffff:10.0.0.5", {"lan_ipv4": ServiceAddress("::ffff:10.0.0.5", 80),
                                                            "wan_ipv4": ServiceAddress("::ffff:10.0.0.5", 80)}),
    "hostname": ("web.internal", {}),
    "no-address": ("", {}),
}


@pytest.mark.parametrize("address, tagged", TAGGED.values(), ids=TAGGED.keys())
def test_tagged_addresses_are_added_from_the_address(address: str, tagged: dict) -> None:
    assert register({"Name": "web", "Port": 80, "Address": address}).service.tagged_addresses == tagged


def test_given_tagged_addresses_are_not_overwritten() -> None:
    s = register({"Name": "web", "Port": 80, "Address": "10.0.0.5",
                  "TaggedAddresses": {"wan_ipv4": {"Address": "198.51.100.1", "Port": 443}}}).service
    assert s.tagged_addresses == {"lan_ipv4": ServiceAddress("10.0.0.5", 80),
                                  "wan_ipv4": ServiceAddress("198.51.100.1", 443)}


CHECK_IDS = {
    "one-check": ({"Check": {"TTL": "10s"}}, ["service:web"]),
    "one-in-checks": ({"Checks": [{"TTL": "10s"}]}, ["service:web"]),
    "several": ({"Checks": [{"TTL": "10s"}, {"TTL": "5s"}]}, ["service:web:1", "service:web:2"]),
    "check-then-checks": ({"Check": {"TTL": "1s"}, "Checks": [{"TTL": "2s"}]}, ["service:web:1", "service:web:2"]),
    "given-id": ({"Checks": [{"CheckID": "mine", "TTL": "10s"}, {"TTL": "5s"}]}, ["mine", "service:web:2"]),
}


@pytest.mark.parametrize("body, ids", CHECK_IDS.values(), ids=CHECK_IDS.keys())
def test_check_ids_default_to_service_id_and_position(body: dict, ids: list[str]) -> None:
    assert [c.check_id for c in register({"Name": "web", **body}).checks] == ids


def test_service_checks_get_name_status_service_fields_and_type() -> None:
    reg = register({"ID": "web-1", "Name": "web", "Tags": ["v1"], "Token": "tok",
                    "Checks": [{"HTTP": "http://x", "Interval": "10s"},
                               {"Name": "ttl", "TTL": "30s", "Status": "passing", "Notes": "n"}]})
    http, ttl = reg.checks
    assert (http.name, http.status, http.type) == ("Service 'web' check", CheckStatus.CRITICAL, CheckType.HTTP)
    assert (ttl.name, ttl.status, ttl.type, ttl.notes) == ("ttl", CheckStatus.PASSING, CheckType.TTL, "n")
    for check in reg.checks:
        assert (check.node, check.service_id, check.service_name, check.service_tags, check.agent_token) == (
            "node-1", "web-1", "web", ("v1",), "tok")


def test_proxy_kinds_always_carry_a_proxy() -> None:
    s = register({"Name": "mgw", "Kind": "mesh-gateway", "Port": 8443}).service
    assert s.kind is ServiceKind.MESH_GATEWAY and s.proxy == Proxy()


def test_source_is_recorded_on_service_and_checks() -> None:
    reg = register({"Name": "web", "Check": {"TTL": "1s"}}, source="config")
    assert reg.service.agent_source == "config" and reg.checks[0].agent_source == "config"


def test_standalone_check_id_defaults_to_name() -> None:
    spec = decode_check({"Name": "memory", "TTL": "10s"}, origin="api", in_service=False)
    check = build_check(spec, node="node-1")
    assert (check.check_id, check.name, check.service_id, check.status) == (
        "memory", "memory", "", CheckStatus.CRITICAL)


def test_standalone_check_for_a_service_copies_its_name_and_tags() -> None:
    service = register({"ID": "web-1", "Name": "web", "Tags": ["v1"]}).service
    spec = decode_check({"Name": "disk", "ServiceID": "web-1", "TTL": "10s", "Token": "t"}, origin="api",
                        in_service=False)
    check = build_check(spec, node="node-1", service=service)
    assert (check.service_id, check.service_name, check.service_tags, check.agent_token) == (
        "web-1", "web", ("v1",), "t")
