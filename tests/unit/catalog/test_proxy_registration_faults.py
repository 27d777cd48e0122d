"""Proxy registration faults (issue 6, "Faults"): what Consul refuses at registration is a
400 with Consul's message; what Consul accepts is accepted, and the xDS side leaves the
bad piece out and says why (xds/translate/problems.py)."""

from __future__ import annotations

import pytest

from trellis.catalog.definition import decode_service, upstream_problems
from trellis.catalog.errors import InvalidDefinition
from trellis.catalog.model import Upstream


def proxy(*upstreams: dict, **proxy: object) -> dict:
    """A connect-proxy registration for web on port 21000 with these upstreams."""
    return {"Name": "web-sidecar-proxy", "Kind": "connect-proxy", "Port": 21000,
            "Proxy": {"DestinationServiceName": "web", "Upstreams": list(upstreams), **proxy}}


def sidecar(*upstreams: dict, **proxy: object) -> dict:
    return {"Name": "web", "Port": 8080, "Connect": {"SidecarService": {"Proxy": {"Upstreams": list(upstreams),
                                                                                 **proxy}}}}


def one(problem: str, prefix: str = "Validation failed") -> str:
    return f"{prefix}: 1 error occurred:\n\t* {problem}\n\n"


DB = {"DestinationName": "db", "LocalBindPort": 9000}
REFUSED = {
    "no-destination-name": (proxy({"LocalBindPort": 9000}), one("upstream destination name cannot be empty")),
    "no-destination-name-in-sidecar": (
        sidecar({"LocalBindPort": 9000}), one("upstream destination name cannot be empty", "Failed Validation")),
    "wildcard-destination": (proxy({"DestinationName": "*", "LocalBindPort": 9000}),
                             one("upstream destination name cannot be a wildcard")),
    "unknown-destination-type": (proxy({**DB, "DestinationType": "queue"}),
                                 one('unknown upstream destination type: "queue"')),
    "port-and-socket": (proxy({**DB, "LocalBindSocketPath": "/tmp/db.sock"}),
                        one("only one of upstream local bind port or local socket path can be defined and nonzero")),
    "bind-clash-default-and-explicit-address": (
        proxy(DB, {"DestinationName": "api", "LocalBindPort": 9000, "LocalBindAddress": "127.0.0.1"}),
        one('upstreams cannot contain duplicates by local bind address and port or unix path; "127.0.0.1:9000" '
            "is specified twice")),
    "bind-clash-ipv6": (
        proxy({**DB, "LocalBindAddress": "::1"}, {"DestinationName": "api", "LocalBindPort": 9000,
                                                 "LocalBindAddress": "::1"}),
        one('upstreams cannot contain duplicates by local bind address and port or unix path; "[::1]:9000" is '
            "specified twice")),
    "bind-clash-in-sidecar": (
        sidecar(DB, {"DestinationName": "api", "LocalBindPort": 9000}),
        one('upstreams cannot contain duplicates by local bind address and port or unix path; "127.0.0.1:9000" '
            "is specified twice", "Failed Validation")),
    "two-faults-both-named": (
        proxy({"LocalBindPort": 9000}, DB, {"DestinationName": "api", "LocalBindPort": 9000}),
        "Validation failed: 2 errors occurred:\n\t* upstream destination name cannot be empty\n\t* upstreams "
        'cannot contain duplicates by local bind address and port or unix path; "127.0.0.1:9000" is specified '
        "twice\n\n"),
}


@pytest.mark.parametrize(("body", "message"), list(REFUSED.values()), ids=list(REFUSED))
def test_what_consul_refuses_is_refused_with_its_message(body: dict, message: str) -> None:
    with pytest.raises(InvalidDefinition) as err:
        decode_service(body, origin="api")
    assert str(err.value) == message


# Consul accepts these, and so does trellis: the xDS translation leaves the piece out (or
# applies Envoy's default) and problems() says why, so a registration never fails for them.
ACCEPTED = {
    "upstream-on-the-proxys-own-port": proxy({"DestinationName": "db", "LocalBindPort": 21000}),
    "upstream-to-a-service-nobody-registered": proxy({"DestinationName": "not-yet", "LocalBindPort": 9000}),
    "malformed-proxy-config-values": proxy(DB, Config={"local_connect_timeout_ms": "abc", "bind_port": "x",
                                                       "protocol": 5}),
    "malformed-upstream-config-values": proxy({**DB, "Config": {"limits": {"max_connections": -1},
                                                                "connect_timeout_ms": "soon"}}),
    "upstream-bound-to-a-host-name": proxy({**DB, "LocalBindAddress": "localhost"}),
    "wildcard-and-loopback-on-one-port": proxy({**DB, "LocalBindAddress": "0.0.0.0"},
                                               {"DestinationName": "api", "LocalBindPort": 9000}),
    "sidecar-upstream-on-its-parents-port": sidecar({"DestinationName": "db", "LocalBindPort": 8080}),
}


@pytest.mark.parametrize("body", list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_what_consul_accepts_is_accepted(body: dict) -> None:
    assert decode_service(body, origin="api").name == body["Name"]


def test_upstream_problems_are_collected_in_the_order_of_the_upstreams() -> None:
    ups = (Upstream(destination_name="", local_bind_port=1), Upstream(destination_name="a", local_bind_port=0),
           Upstream(destination_name="b", local_bind_port=2), Upstream(destination_name="c", local_bind_port=2))
    assert upstream_problems(ups) == [
        "upstream destination name cannot be empty",
        "upstream local bind port or local socket path must be defined and nonzero",
        'upstreams cannot contain duplicates by local bind address and port or unix path; "127.0.0.1:2" is '
        "specified twice",
    ]
