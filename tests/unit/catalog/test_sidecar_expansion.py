"""connect.sidecar_service expansion: reference/consul-connect.md §2 plus DESIGN's alias-check rule."""

from __future__ import annotations

import pytest

from trellis.catalog.definition import Registration, build_registration, decode_service
from trellis.catalog.errors import SidecarPortUnavailable
from trellis.catalog.model import CheckType, ServiceAddress, ServiceKind
from trellis.catalog.sidecar import PortPool, allocate_sidecar_port


def sidecar_of(body: dict, pool: PortPool = PortPool(), existing: int = 0, origin: str = "api") -> Registration:
    defn = decode_service(body, origin=origin)  # type: ignore[arg-type]
    reg = build_registration(defn, node="node-1", datacenter="dc1", sidecar_ports=pool,
                             existing_sidecar_port=existing)
    assert reg.sidecar is not None
    return reg.sidecar


WEB = {"ID": "web-1", "Name": "web", "Port": 8080, "Connect": {"SidecarService": {}}}


# --------------------------------------------------------------------------- identity

def test_empty_sidecar_service_gets_every_default() -> None:
    proxy = sidecar_of(WEB).service
    assert (proxy.id, proxy.name, proxy.kind, proxy.port) == (
        "web-1-sidecar-proxy", "web-sidecar-proxy", ServiceKind.CONNECT_PROXY, 21000)
    assert proxy.agent_sidecar_of == "web-1"
    p = proxy.proxy
    assert (p.destination_service_name, p.destination_service_id, p.local_service_address,
            p.local_service_port) == ("web", "web-1", "127.0.0.1", 8080)


def test_parent_registration_does_not_carry_the_sidecar_definition() -> None:
    defn = decode_service(WEB, origin="api")
    reg = build_registration(defn, node="n", datacenter="dc1", sidecar_ports=PortPool())
    assert reg.service.connect.native is False and reg.service.agent_sidecar_of == ""


def test_sidecar_may_rename_itself_but_not_choose_its_id() -> None:
    proxy = sidecar_of({**WEB, "Connect": {"SidecarService": {"Name": "web-envoy"}}}).service
    assert (proxy.id, proxy.name) == ("web-1-sidecar-proxy", "web-envoy")


def test_seed_sidecar_registration_expands() -> None:
    body = {"service": {"name": "web", "port": 8080, "connect": {"sidecar_service": {
        "port": 20000,
        "check": {"name": "Connect Sidecar Health", "http": "http://localhost:20000/health", "interval": "10s"},
        "proxy": {"upstreams": [{"destination_name": "api", "local_bind_port": 9090}]}}}}}
    reg = sidecar_of(body["service"], origin="config")
    assert (reg.service.id, reg.service.port) == ("web-sidecar-proxy", 20000)
    assert [(u.destination_name, u.local_bind_port) for u in reg.service.proxy.upstreams] == [("api", 9090)]
    assert [(c.check_id, c.name, c.type) for c in reg.checks] == [
        ("service:web-sidecar-proxy:1", "Connect Sidecar Health", CheckType.HTTP),
        ("service:web-sidecar-proxy:2", "Connect Sidecar Aliasing web", CheckType.ALIAS),
    ]


# --------------------------------------------------------------------------- ports

PORTS = {
    "first-of-range": (PortPool(), 0, None, 21000),
    "skips-used": (PortPool(used=frozenset({21000, 21001, 21003})), 0, None, 21002),
    "reuses-existing": (PortPool(used=frozenset({21000, 21005})), 21005, None, 21005),
    "existing-outside-range-is-replaced": (PortPool(), 20000, None, 21000),
    "explicit-port-wins": (PortPool(), 21007, 19000, 19000),
    "small-range": (PortPool(2222, 2222), 0, None, 2222),
}


@pytest.mark.parametrize("pool, existing, given, port", PORTS.values(), ids=PORTS.keys())
def test_sidecar_port(pool: PortPool, existing: int, given: int | None, port: int) -> None:
    sidecar = {} if given is None else {"Port": given}
    reg = sidecar_of({**WEB, "Connect": {"SidecarService": sidecar}}, pool, existing)
    assert reg.service.port == port


@pytest.mark.parametrize("pool, message", [
    (PortPool(2222, 2222, frozenset({2222})),
     "no port provided for sidecar_service and none left in the configured range [2222, 2222]"),
    (PortPool(21000, 21255, frozenset(range(21000, 21256))),
     "no port provided for sidecar_service and none left in the configured range [21000, 21255]"),
    (PortPool(0, 0), "no port provided for sidecar_service and auto-assignment disabled in config"),
    (PortPool(-1, -1), "no port provided for sidecar_service and auto-assignment disabled in config"),
], ids=["exhausted-one", "exhausted-default", "disabled-zero", "disabled-negative"])
def test_sidecar_port_errors(pool: PortPool, message: str) -> None:
    with pytest.raises(SidecarPortUnavailable) as err:
        sidecar_of(WEB, pool)
    assert str(err.value) == message


def test_disabled_pool_is_fine_when_the_sidecar_names_its_port() -> None:
    assert sidecar_of({**WEB, "Connect": {"SidecarService": {"Port": 20000}}}, PortPool(0, 0)).service.port == 20000


def test_allocation_is_lowest_free_port() -> None:
    assert allocate_sidecar_port(PortPool(10, 12, frozenset({10, 12}))) == 11


# --------------------------------------------------------------------------- inheritance

INHERIT = {
    "tags-inherited": ({"Tags": ["v1"]}, {}, "tags", ("v1",)),
    "tags-own": ({"Tags": ["v1"]}, {"Tags": ["proxy"]}, "tags", ("proxy",)),
    "meta-inherited": ({"Meta": {"team": "a"}}, {}, "meta", {"team": "a"}),
    "meta-own": ({"Meta": {"team": "a"}}, {"Meta": {"envoy": "1"}}, "meta", {"envoy": "1"}),
    "address-inherited": ({"Address": "10.0.0.5"}, {}, "address", "10.0.0.5"),
    "address-own": ({"Address": "10.0.0.5"}, {"Address": "10.0.0.6"}, "address", "10.0.0.6"),
    "locality-inherited": ({"Locality": {"Region": "r"}}, {}, "locality", {"region": "r", "zone": ""}),
    "token-inherited": ({"Token": "parent"}, {}, "agent_token", "parent"),
    "token-own": ({"Token": "parent"}, {"Token": "own"}, "agent_token", "own"),
    "namespace-always-parents": ({"Namespace": "team-a"}, {"Namespace": "other"}, "namespace", "team-a"),
}


@pytest.mark.parametrize("parent, sidecar, attr, value", INHERIT.values(), ids=INHERIT.keys())
def test_sidecar_inherits_from_its_parent(parent: dict, sidecar: dict, attr: str, value: object) -> None:
    proxy = sidecar_of({**WEB, **parent, "Connect": {"SidecarService": sidecar}}).service
    assert getattr(proxy, attr) == value


def test_sidecar_tagged_addresses_use_its_own_port() -> None:
    proxy = sidecar_of({**WEB, "Address": "10.0.0.5"}).service
    assert proxy.tagged_addresses["lan_ipv4"] == ServiceAddress("10.0.0.5", 21000)


LOCAL_SERVICE = {
    "defaults": ({}, {}, ("127.0.0.1", 8080, "")),
    "own-address-and-port": ({}, {"LocalServiceAddress": "10.1.1.1", "LocalServicePort": 9000},
                             ("10.1.1.1", 9000, "")),
    "own-address-only": ({}, {"LocalServiceAddress": "10.1.1.1"}, ("10.1.1.1", 8080, "")),
    "parent-socket": ({"SocketPath": "/run/web.sock"}, {}, ("", 0, "/run/web.sock")),
    "own-socket": ({"SocketPath": "/run/web.sock"}, {"LocalServiceSocketPath": "/run/x.sock"},
                   ("", 0, "/run/x.sock")),
}


@pytest.mark.parametrize("parent, proxy, expected", LOCAL_SERVICE.values(), ids=LOCAL_SERVICE.keys())
def test_local_service_defaults(parent: dict, proxy: dict, expected: tuple) -> None:
    body = {**WEB, **parent, "Connect": {"SidecarService": {"Proxy": proxy}}}
    p = sidecar_of(body).service.proxy
    assert (p.local_service_address, p.local_service_port, p.local_service_socket_path) == expected


def test_sidecar_upstreams_and_config_are_carried() -> None:
    body = {**WEB, "Connect": {"SidecarService": {"Proxy": {
        "Upstreams": [{"DestinationName": "api", "LocalBindPort": 9090, "Datacenter": "dc1"},
                      {"DestinationName": "database", "LocalBindPort": 9091, "Datacenter": "dc2"}],
        "Config": {"protocol": "http", "envoy_prometheus_bind_addr": "0.0.0.0:9102"}}}}}
    p = sidecar_of(body).service.proxy
    assert [(u.destination_name, u.datacenter) for u in p.upstreams] == [("api", "dc1"), ("database", "dc2")]
    assert p.config == {"protocol": "http", "envoy_prometheus_bind_addr": "0.0.0.0:9102"}


# --------------------------------------------------------------------------- checks

def test_sidecar_without_checks_gets_listening_and_alias_checks() -> None:
    reg = sidecar_of({**WEB, "Address": "10.0.0.5"})
    listening, alias = reg.checks
    assert (listening.check_id, listening.name, listening.type, listening.definition.tcp,
            listening.definition.interval) == (
        "service:web-1-sidecar-proxy:1", "Connect Sidecar Listening", CheckType.TCP, "10.0.0.5:21000", 10.0)
    assert (alias.check_id, alias.name, alias.type, alias.definition.alias_service) == (
        "service:web-1-sidecar-proxy:2", "Connect Sidecar Aliasing web-1", CheckType.ALIAS, "web-1")
    assert {c.service_id for c in reg.checks} == {"web-1-sidecar-proxy"}


def test_listening_check_falls_back_to_the_local_service_address() -> None:
    listening = sidecar_of(WEB).checks[0]
    assert listening.definition.tcp == "127.0.0.1:21000"


def test_listening_check_brackets_ipv6() -> None:
    listening = sidecar_of({**WEB, "Address": "2001:db8::5"}).checks[0]
    assert listening.definition.tcp == "[2001:db8::5]:21000"


def test_sidecar_with_its_own_checks_still_gets_the_alias_check() -> None:
    # DESIGN.md: a documented difference from Consul, which adds nothing here.
    reg = sidecar_of({**WEB, "Connect": {"SidecarService": {"Checks": [{"TTL": "30s", "Name": "hb"}]}}})
    assert [(c.name, c.type) for c in reg.checks] == [("hb", CheckType.TTL),
                                                        ("Connect Sidecar Aliasing web-1", CheckType.ALIAS)]


def test_an_own_alias_check_on_the_parent_is_not_duplicated() -> None:
    body = {**WEB, "Connect": {"SidecarService": {"Check": {"AliasService": "web-1", "Name": "mine"}}}}
    assert [c.name for c in sidecar_of(body).checks] == ["mine"]
