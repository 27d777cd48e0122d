"""A terminating gateway registered without a port (the seed's egress-gateway.json) is sent to
at its bind address (build.py ``_endpoint``): mesh clients' endpoints for a linked service."""

from __future__ import annotations

import pytest

from trellis.catalog.model import Connect, Node, Proxy, Service, Upstream
from trellis.proxycfg import build as builder
from trellis.proxycfg.model import DefaultDecision
from test_proxycfg_build import entry, mesh, put, sidecar

ALLOW = DefaultDecision(True, "Default intention policy")


def seed_gateway(binds: dict) -> Service:
    return Service(node="n1", id="egress-gateway", name="egress-gateway", address="10.0.0.1", port=0,
                   connect=Connect(gateway=True), proxy=Proxy(config={"envoy_gateway_bind_addresses": binds}))


@pytest.mark.parametrize(("binds", "expected"), [
    ({"default": {"address": "0.0.0.0", "port": 8443}}, ("10.0.0.1", 8443)),  # all addresses: the service's
    ({"default": {"address": "127.0.0.2", "port": 9443}}, ("127.0.0.2", 9443)),
    ({"b": {"address": "0.0.0.0", "port": 2}, "a": {"address": "0.0.0.0", "port": 1}}, ("10.0.0.1", 1)),  # by name
    ({}, ("10.0.0.1", 0)),  # nowhere to send: port 0, which no data plane uses
])
async def test_a_gateway_without_a_port_is_reached_at_its_bind_address(binds, expected):
    async with mesh() as (view, writer, _):
        web = sidecar("web", 21000, upstreams=(Upstream(destination_name="external-api", local_bind_port=9191),))
        await put(writer, view, Node(name="ext", address="192.0.2.1"), web, seed_gateway(binds),
                  Service(node="ext", id="external-api", name="external-api", port=443))
        await entry(writer, {"Kind": "terminating-gateway", "Name": "egress-gateway",
                             "Services": [{"Name": "external-api", "SNI": "api.external.com"}]})
        (up,) = builder.build(view, web, datacenter="dc1", leaf=None, default=ALLOW).value.upstreams
        assert [(e.address, e.port) for e in up.endpoints] == [expected]
