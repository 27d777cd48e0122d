"""The nested objects catalog/definition.py stores raw with snake_case keys come out
with Consul's names and ``omitempty`` rules (agent/structs/connect_proxy_config.go,
api/agent.go). Pure: no agent, no loop."""

from __future__ import annotations

from typing import Any

import pytest

from trellis.api import codec
from trellis.catalog.model import CheckDefinition, Proxy, Upstream

PROXY_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "mesh-gateway-mode": ({"mesh_gateway": {"mode": "local"}}, {"MeshGateway": {"Mode": "local"}}),
    "expose-paths": (
        {"expose": {"checks": True, "paths": [
            {"path": "/metrics", "listener_port": 21500, "local_path_port": 9102, "protocol": "http",
             "parsed_from_check": False}]}},
        {"Expose": {"Checks": True, "Paths": [
            {"Path": "/metrics", "ListenerPort": 21500, "LocalPathPort": 9102, "Protocol": "http"}]}},
    ),
    "transparent-proxy": (
        {"mode": "transparent", "transparent_proxy": {"outbound_listener_port": 15001, "dialed_directly": False}},
        {"Mode": "transparent", "TransparentProxy": {"OutboundListenerPort": 15001}},
    ),
    "zero-transparent-proxy-is-dropped": ({"transparent_proxy": {"dialed_directly": False}}, {}),
    "access-logs": (
        {"access_logs": {"enabled": True, "type": "file", "path": "/tmp/a.log", "json_format": ""}},
        {"AccessLogs": {"Enabled": True, "Type": "file", "Path": "/tmp/a.log"}},
    ),
    "envoy-extension": (
        {"envoy_extensions": ({"name": "builtin/lua", "required": True, "arguments": {"Script": "x"}},)},
        {"EnvoyExtensions": [{"Name": "builtin/lua", "Required": True, "Arguments": {"Script": "x"},
                              "ConsulVersion": "", "EnvoyVersion": ""}]},
    ),
}


@pytest.mark.parametrize(("fields", "expected"), PROXY_CASES.values(), ids=PROXY_CASES.keys())
def test_catalog_proxy_renames_raw_objects(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    base = {"Mode": "", "MeshGateway": {}, "Expose": {}}
    assert codec.encode_proxy(Proxy(**fields)) == base | expected


def test_agent_proxy_drops_an_empty_mode_but_keeps_the_structs() -> None:
    assert codec.encode_agent_proxy(Proxy()) == {"MeshGateway": {}, "Expose": {}}
    assert codec.encode_agent_proxy(Proxy(mode="direct"))["Mode"] == "direct"


UPSTREAM = Upstream(destination_name="db", destination_type="", local_bind_port=9191,
                    mesh_gateway={"mode": "remote"})


def test_catalog_upstream_keeps_type_and_datacenter_even_when_empty() -> None:
    assert codec.encode_upstream(UPSTREAM) == {
        "DestinationType": "", "DestinationName": "db", "Datacenter": "", "LocalBindPort": 9191,
        "MeshGateway": {"Mode": "remote"},
    }


def test_agent_upstream_drops_an_empty_type_and_datacenter() -> None:
    assert codec.encode_agent_upstream(UPSTREAM) == {
        "DestinationName": "db", "LocalBindPort": 9191, "MeshGateway": {"Mode": "remote"},
    }


LOCALITY_CASES = {
    "unset-is-nil": (None, None),
    "empty-zone-omitted": ({"region": "eu-west-1", "zone": ""}, {"Region": "eu-west-1"}),
    "both": ({"region": "eu-west-1", "zone": "eu-west-1b"}, {"Region": "eu-west-1", "Zone": "eu-west-1b"}),
}


@pytest.mark.parametrize(("raw", "expected"), LOCALITY_CASES.values(), ids=LOCALITY_CASES.keys())
def test_locality(raw: dict[str, str] | None, expected: dict[str, str] | None) -> None:
    assert codec.encode_locality(raw) == expected


DEFINITION_CASES = {
    "ttl-is-integer-nanoseconds": (CheckDefinition(ttl=30.0), {"TTL": 30_000_000_000}),
    "durations-are-go-text": (
        CheckDefinition(tcp="db:5432", interval=60.0, timeout=0.5, deregister_critical_service_after=7200.0),
        {"TCP": "db:5432", "Interval": "1m0s", "Timeout": "500ms", "DeregisterCriticalServiceAfter": "2h0m0s"},
    ),
    "h2ping-tls-only-with-h2ping": (CheckDefinition(h2ping="h:1", interval=1.0),
                                    {"H2PING": "h:1", "H2PingUseTLS": True, "Interval": "1s"}),
    "zero-definition-is-empty": (CheckDefinition(), {}),
}


@pytest.mark.parametrize(("definition", "expected"), DEFINITION_CASES.values(), ids=DEFINITION_CASES.keys())
def test_check_definition(definition: CheckDefinition, expected: dict[str, Any]) -> None:
    assert codec.encode_check_definition(definition) == expected
