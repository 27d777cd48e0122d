"""The rows of ``/v1/catalog/gateway-services`` and the ingress gateways of a service, from
config entries and the catalog (catalog/gateway_services.py), in Consul's JSON."""

from __future__ import annotations

import pytest

from trellis.api.codec_gateway import encode_gateway_service
from trellis.catalog.gateway_services import gateway_services, ingress_instances
from trellis.catalog.model import Connect, Proxy, ServiceKind
from trellis.testing.builders import make_node, make_service, put_catalog, put_entries, running_view


def sidecar(name: str):
    return make_service(f"{name}-sidecar-proxy", kind=ServiceKind.CONNECT_PROXY, port=21000,
                        proxy=Proxy(destination_service_name=name))


SERVICES = [
    make_service("web", port=80), sidecar("web"),
    make_service("cart", port=81), sidecar("cart"),  # tcp: a wildcard http listener leaves it out
    make_service("api", port=82),  # no mesh instance: not behind an ingress "*"
    make_service("pay", port=83, connect=Connect(native=True)),
    make_service("db", port=5432),
    make_service("consul", port=8300), sidecar("consul"),
    make_service("igw", kind=ServiceKind.INGRESS_GATEWAY, port=8443, proxy=Proxy()),
    make_service("igw2", kind=ServiceKind.INGRESS_GATEWAY, address="10.0.0.9", port=8444, proxy=Proxy()),
    make_service("tgw", kind=ServiceKind.TERMINATING_GATEWAY, port=9443, proxy=Proxy()),
    make_service("seedgw", connect=Connect(gateway=True), proxy=Proxy()),
]
ENTRIES = [
    {"Kind": "service-defaults", "Name": "web", "Protocol": "http"},
    {"Kind": "service-defaults", "Name": "pay", "Protocol": "http"},
    {"Kind": "service-defaults", "Name": "ext", "Destination": {"Addresses": ["example.com"], "Port": 443}},
    {"Kind": "ingress-gateway", "Name": "igw", "Listeners": [
        {"Port": 8080, "Protocol": "http", "Services": [{"Name": "web", "Hosts": ["web.example.com"]}]},
        {"Port": 9090, "Protocol": "http", "Services": [{"Name": "*"}]},
        {"Port": 7000, "Protocol": "tcp", "Services": [{"Name": "cart"}]}]},
    {"Kind": "ingress-gateway", "Name": "igw2", "Listeners": [
        {"Port": 8080, "Protocol": "tcp", "Services": [{"Name": "unregistered"}]}]},
    {"Kind": "terminating-gateway", "Name": "tgw", "Services": [
        {"Name": "external-api", "SNI": "api.external.com"},
        {"Name": "db", "CAFile": "/ca.pem", "DisableAutoHostRewrite": True},
        {"Name": "*", "SNI": "wild.example.com"}]},
]


async def _catalog(view, writer):
    await put_catalog(writer, make_node(), *SERVICES)
    await put_entries(writer, *ENTRIES)


def _rows(view, gateway):
    out = []
    for g in gateway_services(view, "default", gateway).value:
        doc = encode_gateway_service(g)
        assert doc["CreateIndex"] > 0 and doc["ModifyIndex"] >= doc["CreateIndex"]
        out.append({k: v for k, v in doc.items() if k not in ("CreateIndex", "ModifyIndex", "Gateway")})
    return out


ROWS = [
    ("ingress: explicit, then wildcard rows of mesh services whose protocol matches", "igw", [
        {"Service": {"Name": "cart"}, "GatewayKind": "ingress-gateway", "Port": 7000, "Protocol": "tcp"},
        {"Service": {"Name": "pay"}, "GatewayKind": "ingress-gateway", "Port": 9090, "Protocol": "http",
         "FromWildcard": True},
        {"Service": {"Name": "web"}, "GatewayKind": "ingress-gateway", "Port": 8080, "Protocol": "http",
         "Hosts": ["web.example.com"]},
        {"Service": {"Name": "web"}, "GatewayKind": "ingress-gateway", "Port": 9090, "Protocol": "http",
         "FromWildcard": True},
    ]),
    ("terminating: listed services, then the wildcard's plain services and destinations", "tgw", [
        {"Service": {"Name": "api"}, "GatewayKind": "terminating-gateway", "SNI": "wild.example.com",
         "FromWildcard": True, "ServiceKind": "service", "AutoHostRewrite": True},
        {"Service": {"Name": "cart"}, "GatewayKind": "terminating-gateway", "SNI": "wild.example.com",
         "FromWildcard": True, "ServiceKind": "service", "AutoHostRewrite": True},
        {"Service": {"Name": "db"}, "GatewayKind": "terminating-gateway", "CAFile": "/ca.pem",
         "ServiceKind": "service"},
        {"Service": {"Name": "ext"}, "GatewayKind": "terminating-gateway", "SNI": "wild.example.com",
         "FromWildcard": True, "ServiceKind": "destination", "AutoHostRewrite": True},
        {"Service": {"Name": "external-api"}, "GatewayKind": "terminating-gateway", "SNI": "api.external.com",
         "AutoHostRewrite": True},
        {"Service": {"Name": "web"}, "GatewayKind": "terminating-gateway", "SNI": "wild.example.com",
         "FromWildcard": True, "ServiceKind": "service", "AutoHostRewrite": True},
    ]),
    ("an explicit service needs no registration", "igw2", [
        {"Service": {"Name": "unregistered"}, "GatewayKind": "ingress-gateway", "Port": 8080, "Protocol": "tcp"},
    ]),
    ("no entry, no rows", "nothing", []),
    ("a registered gateway without an entry has no rows", "seedgw", []),
]


@pytest.mark.parametrize(("gateway", "rows"), [c[1:] for c in ROWS], ids=[c[0] for c in ROWS])
async def test_gateway_services(gateway, rows):
    async with running_view() as (view, writer, _):
        await _catalog(view, writer)
        assert _rows(view, gateway) == rows


def test_a_service_name_outside_the_default_namespace_names_it():
    from trellis.catalog.gateway_services import GatewayService, ServiceName

    doc = encode_gateway_service(GatewayService(ServiceName("team", "igw"), ServiceName("default", "web"),
                                                ServiceKind.INGRESS_GATEWAY, port=80))
    assert doc == {"Gateway": {"Name": "igw", "Namespace": "team"}, "Service": {"Name": "web"},
                   "GatewayKind": "ingress-gateway", "Port": 80, "CreateIndex": 0, "ModifyIndex": 0}


INGRESS = [
    ("explicitly listed", "web", ["igw"]),
    ("through the wildcard (no protocol check, as Consul)", "cart", ["igw"]),
    ("native service through the wildcard", "pay", ["igw"]),
    ("no mesh instance: not behind the wildcard", "api", []),
    ("consul is never behind a wildcard", "consul", []),
    ("listed but not registered", "unregistered", ["igw2"]),
    ("unknown", "nope", []),
    ("names match case-insensitively", "WEB", ["igw"]),
]


@pytest.mark.parametrize(("service", "gateways"), [c[1:] for c in INGRESS], ids=[c[0] for c in INGRESS])
async def test_ingress_instances(service, gateways):
    async with running_view() as (view, writer, _):
        await _catalog(view, writer)
        res = ingress_instances(view, "default", service)
        assert [i.service.id for i in res.value] == gateways
        assert ("config-kind", "ingress-gateway") in res.watch


async def test_a_new_ingress_entry_moves_the_index_of_an_empty_answer():
    async with running_view() as (view, writer, _):
        await _catalog(view, writer)
        before = ingress_instances(view, "default", "db")
        assert before.value == []
        await put_entries(writer, {"Kind": "ingress-gateway", "Name": "igw3", "Listeners": [
            {"Port": 1, "Protocol": "tcp", "Services": [{"Name": "db"}]}]})
        after = ingress_instances(view, "default", "db")
        assert after.index > before.index and after.value == []  # igw3 has no instances yet
        gw = gateway_services(view, "default", "igw3")
        assert [g.service.name for g in gw.value] == ["db"]
