"""A sidecar proxy or gateway merged with proxy-defaults and service-defaults, as Consul's
agent serves it (catalog/central.py): the pure merge by tables, then the view reader."""

from __future__ import annotations

from dataclasses import replace

import pytest

from trellis.catalog import central
from trellis.catalog.model import Proxy, ServiceKind, Upstream
from trellis.config.entry.decode import decode_entry
from trellis.testing.builders import make_service, put_entries, running_view


PD = {"Kind": "proxy-defaults", "Name": "global", "Config": {"protocol": "http", "envoy_statsd_url": "udp://1.1.1.1:8125",
                                                              "local_connect_timeout_ms": 1000}}


@pytest.mark.parametrize(("registered", "defaults", "merged"), [
    ({}, {"a": 1}, {"a": 1}),
    ({"a": 2}, {"a": 1, "b": 1}, {"a": 2, "b": 1}),  # the registration wins key by key
    ({"Protocol": "tcp"}, {"protocol": "http"}, {"Protocol": "tcp"}),  # keys compare case-insensitively
    ({"limits": {"max_connections": 1}}, {"limits": {"max_pending_requests": 2}},
     {"limits": {"max_connections": 1}}),  # a key is filled whole, not merged inside
], ids=["defaults-only", "registration-wins", "case-insensitive", "whole-values"])
def test_fill(registered, defaults, merged):
    assert central.fill(registered, defaults) == merged


@pytest.mark.parametrize(("pd", "sd", "expected"), [
    (None, None, Proxy()),
    (PD, None, Proxy(config=PD["Config"])),
    (PD, {"Kind": "service-defaults", "Name": "web", "Protocol": "grpc", "LocalRequestTimeoutMs": 30000,
          "MaxInboundConnections": 10, "BalanceInboundConnections": "exact_balance"},
     Proxy(config={**PD["Config"], "protocol": "grpc", "local_request_timeout_ms": 30000,
                   "max_inbound_connections": 10, "balance_inbound_connections": "exact_balance"})),
    ({"Kind": "proxy-defaults", "Name": "global", "Mode": "direct", "MeshGateway": {"Mode": "local"},
      "Expose": {"Checks": True}, "TransparentProxy": {"OutboundListenerPort": 15001},
      "AccessLogs": {"Enabled": True, "Path": "/dev/stdout"}},
     {"Kind": "service-defaults", "Name": "web", "Mode": "transparent", "MeshGateway": {"Mode": "remote"},
      "Expose": {"Paths": [{"Path": "/health", "ListenerPort": 21500, "LocalPathPort": 8080}]},
      "TransparentProxy": {"DialedDirectly": True}},
     Proxy(mode="transparent", mesh_gateway={"mode": "remote"},
           expose={"checks": True, "paths": [{"path": "/health", "listener_port": 21500, "local_path_port": 8080}]},
           transparent_proxy={"outbound_listener_port": 15001, "dialed_directly": True},
           access_logs={"enabled": True, "path": "/dev/stdout"})),
], ids=["nothing", "proxy-defaults", "service-defaults-keys", "modes-expose-tproxy-logs"])
def test_resolved_defaults(pd, sd, expected):
    assert central.resolved_defaults(decode_entry(pd) if pd else None, decode_entry(sd) if sd else None) == expected


def test_the_registration_wins_wherever_it_has_a_value():
    defaults = Proxy(mode="transparent", mesh_gateway={"mode": "local"}, config={"protocol": "http"},
                     expose={"checks": True}, transparent_proxy={"outbound_listener_port": 15001})
    registered = Proxy(destination_service_name="web", mode="direct", mesh_gateway={"mode": "none"},
                       config={"protocol": "tcp"}, expose={}, transparent_proxy={"outbound_listener_port": 0})
    merged = central.merge_proxy(registered, defaults)
    assert (merged.mode, merged.mesh_gateway, merged.config) == ("direct", {"mode": "none"}, {"protocol": "tcp"})
    assert merged.expose == {"checks": True} and merged.transparent_proxy == {"outbound_listener_port": 15001}
    assert merged.destination_service_name == "web"


WEB = make_service("web-sidecar-proxy", kind=ServiceKind.CONNECT_PROXY, port=21000, proxy=Proxy(
    destination_service_name="web", config={"envoy_statsd_url": "udp://2.2.2.2:8125"}, upstreams=(
        Upstream(destination_name="api", local_bind_port=9191, config={"connect_timeout_ms": 250}),
        Upstream(destination_name="db", local_bind_port=9192),
        Upstream(destination_name="q", destination_type="prepared_query", local_bind_port=9193))))


async def test_a_sidecar_gets_proxy_defaults_its_services_defaults_and_upstream_config():
    async with running_view() as (view, writer, _):
        await put_entries(writer, PD, {"Kind": "service-defaults", "Name": "web", "UpstreamConfig": {
            "Defaults": {"ConnectTimeoutMs": 500, "Limits": {"MaxConnections": 7}},
            "Overrides": [{"Name": "db", "Protocol": "tcp",
                           "PassiveHealthCheck": {"Interval": "10s", "MaxFailures": 3}}]}},
            {"Kind": "service-defaults", "Name": "api", "Protocol": "grpc"})
        merged, watch = central.resolved(view, WEB)
        assert merged.proxy.config == {"envoy_statsd_url": "udp://2.2.2.2:8125", "protocol": "http",
                                       "local_connect_timeout_ms": 1000}
        api, db, q = merged.proxy.upstreams
        # the upstream's own protocol over proxy-defaults', the downstream's defaults under the registration's keys
        assert api.config == {"connect_timeout_ms": 250, "protocol": "grpc", "limits": {"max_connections": 7}}
        assert db.config == {"protocol": "tcp", "connect_timeout_ms": 500, "limits": {"max_connections": 7},
                             "passive_health_check": {"interval": "10s", "max_failures": 3}}
        assert q == WEB.proxy.upstreams[2]  # a prepared query is not a service's upstream
        assert ("config-entry", "proxy-defaults", "default", "global") in watch
        assert ("config-entry", "service-defaults", "default", "web") in watch


async def test_without_entries_nothing_changes():
    async with running_view() as (view, _, _):
        bare = replace(WEB, proxy=replace(WEB.proxy, upstreams=()))
        assert central.resolved(view, bare)[0] == bare


async def test_a_gateway_takes_its_own_service_defaults_and_a_typical_service_nothing():
    async with running_view() as (view, writer, _):
        await put_entries(writer, PD, {"Kind": "service-defaults", "Name": "igw", "Protocol": "http2"})
        gateway = make_service("igw", kind=ServiceKind.INGRESS_GATEWAY, port=8443, proxy=Proxy())
        assert central.resolved(view, gateway)[0].proxy.config["protocol"] == "http2"
        typical = make_service("web", port=80)
        assert central.resolved(view, typical) == (typical, ())
