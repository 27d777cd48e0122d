"""``trellis connect envoy -gateway=...``: the pure parts (Consul's ``connect envoy`` rules for
gateways): the kind, the registration body, addresses, finding the local gateway, /ready."""

from __future__ import annotations

import pytest

from trellis.cli import connect_envoy
from trellis.cli.connect_envoy import (
    GatewayAddress,
    find_gateway,
    gateway_kind,
    gateway_registration,
    parse_bind_addresses,
    parse_gateway_address,
    ready_bind,
)
from trellis.errors import InvalidInput


def flags(*argv: str):
    return connect_envoy.FLAGS.parse(list(argv))


LOCAL = {"127.0.0.1", "10.0.0.5"}


def bindable(ip: str) -> bool:
    return ip in LOCAL


def test_gateway_kinds():
    assert (gateway_kind(""), gateway_kind("ingress"), gateway_kind("terminating")) == (
        "", "ingress-gateway", "terminating-gateway")
    with pytest.raises(InvalidInput, match="Gateway must be one of: api, terminating, mesh, or ingress"):
        gateway_kind("egress")
    with pytest.raises(InvalidInput, match="mesh-gateways are not supported by trellis yet"):
        gateway_kind("mesh")


REGISTRATIONS = [
    ("defaults: named after the kind, port 8443, check on loopback",
     ("-gateway=ingress",), "ingress-gateway", "ingress-gateway",
     {"Kind": "ingress-gateway", "Name": "ingress-gateway", "ID": "ingress-gateway", "Port": 8443,
      "Check": {"Name": "ingress-gateway listening", "TCP": "127.0.0.1:8443", "Interval": "10s",
                "DeregisterCriticalServiceAfter": "6h"}}),
    ("bind addresses override the default binding",
     ("-service", "igw", "-address", "127.0.0.1:8080", "-bind-address", "default=0.0.0.0:8080",
      "-bind-address", "v6=[::]:8080"), "ingress-gateway", "igw",
     {"Kind": "ingress-gateway", "Name": "igw", "ID": "igw", "Address": "127.0.0.1", "Port": 8080,
      "TaggedAddresses": {"lan": {"Address": "127.0.0.1", "Port": 8080}},
      "Proxy": {"Config": {"envoy_gateway_no_default_bind": True, "envoy_gateway_bind_addresses": {
          "default": {"Address": "0.0.0.0", "Port": 8080}, "v6": {"Address": "::", "Port": 8080}}}},
      "Check": {"Name": "ingress-gateway listening", "TCP": "127.0.0.1:8080", "Interval": "10s",
                "DeregisterCriticalServiceAfter": "6h"}}),
    ("bindable lan and wan addresses bind the tagged addresses",
     ("-address", "10.0.0.5:8443", "-wan-address", "127.0.0.1:443", "-deregister-after-critical", "1m"),
     "terminating-gateway", "terminating-gateway",
     {"Kind": "terminating-gateway", "Name": "terminating-gateway", "ID": "terminating-gateway",
      "Address": "10.0.0.5", "Port": 8443,
      "TaggedAddresses": {"lan": {"Address": "10.0.0.5", "Port": 8443}, "wan": {"Address": "127.0.0.1", "Port": 443}},
      "Proxy": {"Config": {"envoy_gateway_no_default_bind": True, "envoy_gateway_bind_tagged_addresses": True}},
      "Check": {"Name": "terminating-gateway listening", "TCP": "10.0.0.5:8443", "Interval": "10s",
                "DeregisterCriticalServiceAfter": "1m"}}),
    ("a bindable lan address alone sets no bind config",
     ("-address", "10.0.0.5",), "terminating-gateway", "tgw-1",
     {"Kind": "terminating-gateway", "Name": "terminating-gateway", "ID": "tgw-1", "Address": "10.0.0.5",
      "Port": 8443, "TaggedAddresses": {"lan": {"Address": "10.0.0.5", "Port": 8443}},
      "Check": {"Name": "terminating-gateway listening", "TCP": "10.0.0.5:8443", "Interval": "10s",
                "DeregisterCriticalServiceAfter": "6h"}}),
]


@pytest.mark.parametrize(("argv", "kind", "service_id", "body"), [c[1:] for c in REGISTRATIONS],
                         ids=[c[0] for c in REGISTRATIONS])
def test_gateway_registration(argv, kind, service_id, body):
    assert gateway_registration(flags(*argv), kind, service_id, bindable) == body


def test_an_address_this_host_cannot_bind_needs_bind_addresses():
    with pytest.raises(InvalidInput, match='The LAN address "192.0.2.7" will not be bindable. Either set a bindable '
                                           "address or override the bind addresses with -bind-address"):
        gateway_registration(flags("-address", "192.0.2.7:8443"), "ingress-gateway", "ingress-gateway", bindable)
    body = gateway_registration(flags("-address", "192.0.2.7:8443", "-bind-address", "d=0.0.0.0:8443"),
                                "ingress-gateway", "ingress-gateway", bindable)
    assert body["Proxy"]["Config"]["envoy_gateway_bind_addresses"] == {"d": {"Address": "0.0.0.0", "Port": 8443}}


ADDRESSES = [
    ("ip-and-port", "10.0.0.5:8080", GatewayAddress("10.0.0.5", 8080)),
    ("bare-ip-gets-8443", "10.0.0.5", GatewayAddress("10.0.0.5", 8443)),
    ("port-only", ":9000", GatewayAddress("", 9000)),
    ("bracketed-ipv6", "[::1]:9000", GatewayAddress("::1", 9000)),
    ("bare-ipv6", "::1", GatewayAddress("::1", 8443)),
]


@pytest.mark.parametrize(("text", "address"), [c[1:] for c in ADDRESSES], ids=[c[0] for c in ADDRESSES])
def test_parse_gateway_address(text, address):
    assert parse_gateway_address(text, "address") == address


@pytest.mark.parametrize(("values", "message"), [
    (["default"], 'Missing "=" in argument: default'),
    (["d=host"], 'Error parsing address "host": not an IP address'),
    (["d=1.2.3.4:http"], 'Error parsing address "1.2.3.4:http": invalid port "http"'),
], ids=["no-equals", "no-ip", "bad-port"])
def test_bad_bind_addresses(values, message):
    with pytest.raises(InvalidInput) as exc:
        parse_bind_addresses(values)
    assert str(exc.value) == message


def test_find_gateway_needs_exactly_one_of_the_kind():
    one = {"igw": {"Kind": "ingress-gateway"}, "web": {}}
    assert find_gateway(one, "ingress-gateway") == "igw"
    with pytest.raises(InvalidInput, match="No terminating-gateway services registered with this agent"):
        find_gateway(one, "terminating-gateway")
    with pytest.raises(InvalidInput, match="Cannot lookup the ingress-gateway's proxy ID because multiple are "
                                           "registered with the agent"):
        find_gateway({**one, "igw2": {"Kind": "ingress-gateway"}}, "ingress-gateway")


@pytest.mark.parametrize(("argv", "kind", "bind"), [
    ((), "ingress-gateway", ("127.0.0.1", 8443)),
    (("-address", "10.0.0.5:8080"), "ingress-gateway", ("10.0.0.5", 8080)),
    (("-envoy-ready-bind-address", "127.0.0.2", "-envoy-ready-bind-port", "9999"), "ingress-gateway",
     ("127.0.0.2", 9999)),
    ((), "terminating-gateway", ("", 0)),
    ((), "connect-proxy", ("", 0)),
], ids=["ingress-default", "ingress-address", "flags-win", "terminating-none", "sidecar-none"])
def test_where_envoy_answers_ready(argv, kind, bind):
    assert ready_bind(flags(*argv), kind) == bind


def test_can_bind_knows_loopback_from_a_foreign_address():
    assert connect_envoy.can_bind("127.0.0.1") is True
    assert connect_envoy.can_bind("192.0.2.7") is False
