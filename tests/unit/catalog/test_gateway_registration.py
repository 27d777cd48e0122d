"""Gateway registration: the seed's ``connect.gateway`` and Consul's ``Kind`` store the same
thing; bad bind config is refused naming the field; a kind-less ``connect.gateway`` service
takes its kind from the gateway config entry of its name when it is read."""

from __future__ import annotations

import asyncio
import json

import pytest

from trellis.catalog import query
from trellis.catalog.definition import build_registration, decode_service, decode_service_file
from trellis.catalog.errors import InvalidDefinition
from trellis.catalog.gateway import (
    GatewayBinds,
    effective_kind,
    gateway_config_problem,
    kind_watch,
    parse_gateway_binds,
)
from trellis.catalog.model import ServiceAddress, ServiceKind
from trellis.catalog.sidecar import PortPool
from trellis.config.entry import write as entry_write
from trellis.config.entry.keys import EntryRef
from trellis.testing.builders import make_node, put_catalog, put_entries, running_view

BIND = {"envoy_gateway_bind_addresses": {"default": {"address": "0.0.0.0", "port": 8080}}}


def stored(body: dict, origin: str = "api"):
    defn = decode_service(body, origin=origin)
    return build_registration(defn, node="n1", datacenter="dc1", sidecar_ports=PortPool()).service


# -- both shapes store the same thing -----------------------------------------------------------------
MAPPING = [
    ("seed-ingress",
     {"name": "ingress-gateway", "port": 8080, "connect": {"gateway": {"proxy": BIND}}},
     ServiceKind.TYPICAL, True, BIND),
    ("seed-listeners-with-tagged-map",
     {"name": "ingress-gateway", "connect": {"gateway": {"proxy": {
         **BIND, "envoy_gateway_no_default_bind": True,
         "envoy_gateway_bind_tagged_addresses": {"lan": {"address": "0.0.0.0", "port": 8080}}}}}},
     ServiceKind.TYPICAL, True,
     {**BIND, "envoy_gateway_no_default_bind": True,
      "envoy_gateway_bind_tagged_addresses": {"lan": {"address": "0.0.0.0", "port": 8080}}}),
    ("seed-egress-without-port",
     {"name": "egress-gateway", "connect": {"gateway": {"proxy": {
         "envoy_gateway_bind_addresses": {"default": {"address": "0.0.0.0", "port": 8443}}}}}},
     ServiceKind.TYPICAL, True, {"envoy_gateway_bind_addresses": {"default": {"address": "0.0.0.0", "port": 8443}}}),
    ("seed-with-explicit-kind",
     {"Name": "igw", "Kind": "ingress-gateway", "Connect": {"Gateway": {"Proxy": BIND}}},
     ServiceKind.INGRESS_GATEWAY, True, BIND),
    ("seed-merged-with-proxy-config",
     {"Name": "igw", "Proxy": {"Config": {"connect_timeout_ms": 3000}}, "Connect": {"Gateway": {"Proxy": BIND}}},
     ServiceKind.TYPICAL, True, {"connect_timeout_ms": 3000, **BIND}),
    ("seed-gateway-without-proxy",
     {"Name": "igw", "Connect": {"Gateway": {}}}, ServiceKind.TYPICAL, True, {}),
    ("consul-ingress",
     {"Name": "igw", "Kind": "ingress-gateway", "Proxy": {"Config": BIND}},
     ServiceKind.INGRESS_GATEWAY, False, BIND),
    ("consul-terminating-as-connect-envoy-registers-it",
     {"Name": "tgw", "Kind": "terminating-gateway", "Port": 8443, "Proxy": {"Config": {
         "envoy_gateway_no_default_bind": True,
         "envoy_gateway_bind_addresses": {"default": {"Address": "127.0.0.1", "Port": 9443}}}}},
     ServiceKind.TERMINATING_GATEWAY, False,
     {"envoy_gateway_no_default_bind": True,
      "envoy_gateway_bind_addresses": {"default": {"Address": "127.0.0.1", "Port": 9443}}}),
]


@pytest.mark.parametrize(("body", "kind", "marked", "config"), [c[1:] for c in MAPPING], ids=[c[0] for c in MAPPING])
def test_both_registration_shapes_store_the_bind_config_in_proxy_config(body, kind, marked, config):
    s = stored(body)
    assert (s.kind, s.connect.gateway, s.proxy.config) == (kind, marked, config)


def test_the_seed_files_store_the_same_thing_from_a_services_file():
    text = json.dumps({"service": {"name": "ingress-gateway", "port": 8080,
                                   "connect": {"gateway": {"proxy": BIND}}}})
    [defn] = decode_service_file(json.loads(text))
    assert (defn.connect.gateway, defn.proxy.config) == (True, BIND)


# -- bad input is refused, naming the field ---------------------------------------------------------
REFUSED = [
    ("tagged-addresses-a-string",
     {"Name": "g", "Connect": {"Gateway": {"Proxy": {"envoy_gateway_bind_tagged_addresses": "yes"}}}},
     'Invalid gateway config: Connect.Gateway.Proxy.envoy_gateway_bind_tagged_addresses: expected a boolean or an '
     'object of {address, port}, got string "yes"'),
    ("bind-port-not-a-number",
     {"Name": "g", "Connect": {"Gateway": {"Proxy": {
         "envoy_gateway_bind_addresses": {"default": {"address": "0.0.0.0", "port": "http"}}}}}},
     'Connect.Gateway.Proxy.envoy_gateway_bind_addresses["default"].port: expected a port number (1-65535), '
     'got string "http"'),
    ("bind-address-not-an-ip",
     {"Name": "g", "Connect": {"Gateway": {"Proxy": {
         "envoy_gateway_bind_addresses": {"default": {"address": "localhost", "port": 80}}}}}},
     'envoy_gateway_bind_addresses["default"].address: expected an IP address, got string "localhost"'),
    ("bind-address-unknown-key",
     {"Name": "g", "Connect": {"Gateway": {"Proxy": {
         "envoy_gateway_bind_addresses": {"default": {"address": "0.0.0.0", "port": 80, "proto": "tcp"}}}}}},
     'envoy_gateway_bind_addresses["default"]: unknown field "proto"'),
    ("bind-addresses-a-list",
     {"Name": "g", "Connect": {"Gateway": {"Proxy": {"envoy_gateway_bind_addresses": ["0.0.0.0:80"]}}}},
     "envoy_gateway_bind_addresses: expected an object of {address, port}, got an array"),
    ("no-default-bind-a-number",
     {"Name": "g", "Connect": {"Gateway": {"Proxy": {"envoy_gateway_no_default_bind": 3}}}},
     "envoy_gateway_no_default_bind: expected a boolean, got number 3"),
    ("unknown-key-in-connect-gateway",
     {"Name": "g", "Connect": {"Gateway": {"Listeners": []}}},
     'Request decode failed: json: unknown field "Listeners"'),
    ("gateway-with-a-sidecar",
     {"Name": "g", "Port": 80, "Connect": {"Gateway": {"Proxy": BIND}, "SidecarService": {}}},
     "A gateway cannot have a sidecar service defined"),
    ("gateway-with-upstreams",
     {"Name": "g", "Proxy": {"Upstreams": [{"DestinationName": "db", "LocalBindPort": 9}]},
      "Connect": {"Gateway": {"Proxy": BIND}}},
     "The Proxy.Upstreams configuration is invalid for a gateway"),
    ("gateway-and-connect-proxy",
     {"Name": "g", "Kind": "connect-proxy", "Port": 21000, "Proxy": {"DestinationServiceName": "web"},
      "Connect": {"Gateway": {"Proxy": BIND}}},
     "connect.gateway is only for gateways, not for a connect-proxy service"),
    ("gateway-and-native",
     {"Name": "g", "Port": 80, "Connect": {"Native": True, "Gateway": {"Proxy": BIND}}},
     "A gateway cannot also be Connect Native"),
    ("same-key-twice-with-different-values",
     {"Name": "g", "Proxy": {"Config": {"envoy_gateway_no_default_bind": False}},
      "Connect": {"Gateway": {"Proxy": {"envoy_gateway_no_default_bind": True}}}},
     "envoy_gateway_no_default_bind is set both in connect.gateway.proxy and in proxy.config"),
    ("consul-kind-with-bad-bind-config",
     {"Name": "g", "Kind": "ingress-gateway", "Proxy": {"Config": {"envoy_gateway_bind_tagged_addresses": 1}}},
     "Invalid Proxy.Config: envoy_gateway_bind_tagged_addresses: expected a boolean or an object of "
     "{address, port}, got number 1"),
    ("consul-terminating-needs-a-port",
     {"Name": "g", "Kind": "terminating-gateway", "Proxy": {"Config": BIND}},
     "Port must be non-zero for a terminating-gateway"),
]


@pytest.mark.parametrize(("body", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_bad_gateway_registrations_are_refused_naming_the_field(body, message):
    with pytest.raises(InvalidDefinition) as exc:
        decode_service(body, origin="api")
    assert message in str(exc.value)


def test_a_services_file_names_the_key_path():
    data = {"service": {"name": "g", "connect": {"gateway": {"proxy": {"envoy_gateway_no_default_bind": "maybe"}}}}}
    with pytest.raises(InvalidDefinition) as exc:
        decode_service_file(data)
    assert str(exc.value) == ('service.connect.gateway.proxy: Invalid gateway config: envoy_gateway_no_default_bind: '
                              'expected a boolean, got string "maybe"')


# -- the typed bind config --------------------------------------------------------------------------
BINDS = [
    ("nothing", {}, GatewayBinds()),
    ("consul-cli-shape",
     {"envoy_gateway_no_default_bind": True,
      "envoy_gateway_bind_addresses": {"default": {"Address": "127.0.0.1", "Port": 8088}}},
     GatewayBinds(addresses={"default": ServiceAddress("127.0.0.1", 8088)}, no_default_bind=True)),
    ("tagged-bool", {"envoy_gateway_bind_tagged_addresses": True}, GatewayBinds(bind_tagged_addresses=True)),
    ("tagged-map-is-the-seeds",
     {"envoy_gateway_bind_tagged_addresses": {"lan": {"address": "0.0.0.0", "port": 8080}}},
     GatewayBinds(tagged={"lan": ServiceAddress("0.0.0.0", 8080)})),
    ("weak-types-as-consul-decodes-them",
     {"envoy_gateway_no_default_bind": "true",
      "envoy_gateway_bind_addresses": {"v6": {"address": "::1", "port": "9000"}}},
     GatewayBinds(addresses={"v6": ServiceAddress("::1", 9000)}, no_default_bind=True)),
    ("other-keys-ignored", {"connect_timeout_ms": 5000, "protocol": "http"}, GatewayBinds()),
]


@pytest.mark.parametrize(("config", "binds"), [c[1:] for c in BINDS], ids=[c[0] for c in BINDS])
def test_parse_gateway_binds(config, binds):
    assert parse_gateway_binds(config) == binds
    assert gateway_config_problem(config) is None


def test_port_zero_is_no_bind_port():
    assert gateway_config_problem({"envoy_gateway_bind_addresses": {"a": {"address": "0.0.0.0", "port": 0}}}) == (
        'envoy_gateway_bind_addresses["a"].port: expected a port number (1-65535), got number 0')


# -- the effective kind, decided when read ---------------------------------------------------------
SEED = {"Name": "egress-gateway", "Connect": {"Gateway": {"Proxy": {
    "envoy_gateway_bind_addresses": {"default": {"address": "0.0.0.0", "port": 8443}}}}}}
TERMINATING = {"Kind": "terminating-gateway", "Name": "egress-gateway", "Services": [{"Name": "external-api"}]}
INGRESS = {"Kind": "ingress-gateway", "Name": "egress-gateway",
           "Listeners": [{"Port": 9000, "Protocol": "tcp", "Services": [{"Name": "db"}]}]}
KINDS = [
    ("seed-and-terminating-entry", SEED, [TERMINATING], ServiceKind.TERMINATING_GATEWAY),
    ("seed-and-ingress-entry", SEED, [INGRESS], ServiceKind.INGRESS_GATEWAY),
    ("seed-without-entry-is-typical", SEED, [], ServiceKind.TYPICAL),
    ("entry-in-another-namespace", SEED, [{**TERMINATING, "Namespace": "team"}], ServiceKind.TYPICAL),
    ("explicit-kind-wins", {**SEED, "Kind": "ingress-gateway"}, [TERMINATING], ServiceKind.INGRESS_GATEWAY),
    ("unmarked-typical-service-ignores-entries", {"Name": "egress-gateway", "Port": 80}, [TERMINATING],
     ServiceKind.TYPICAL),
]


async def _put(view, writer, *services, entries=()):
    await put_catalog(writer, make_node(), *services)
    await put_entries(writer, *entries)


@pytest.mark.parametrize(("body", "entries", "kind"), [c[1:] for c in KINDS], ids=[c[0] for c in KINDS])
async def test_effective_kind(body, entries, kind):
    async with running_view() as (view, writer, _):
        s = stored(body)
        await _put(view, writer, s, entries=entries)
        found, watch = effective_kind(view, s)
        assert found is kind
        assert watch == kind_watch(s)
        (inst,) = query.service_instances(view, "default", s.name).value
        assert inst.service.kind is kind


async def test_only_a_kindless_connect_gateway_service_watches_entries():
    assert kind_watch(stored(SEED)) == (("config-entry", "ingress-gateway", "default", "egress-gateway"),
                                        ("config-entry", "terminating-gateway", "default", "egress-gateway"))
    assert kind_watch(stored({**SEED, "Kind": "ingress-gateway"})) == ()
    assert kind_watch(stored({"Name": "web"})) == ()


async def test_writing_the_entry_after_registration_wakes_readers_and_changes_the_kind():
    async with running_view() as (view, writer, _):
        s = stored(SEED)
        await _put(view, writer, s)
        before = query.service_instances(view, "default", "egress-gateway")
        assert before.value[0].service.kind is ServiceKind.TYPICAL
        waiter = asyncio.create_task(view.wait_change(before.watch, before.index, 5))
        await asyncio.sleep(0)
        await put_entries(writer, TERMINATING)
        assert await waiter is True
        after = query.service_instances(view, "default", "egress-gateway")
        assert after.index > before.index
        assert after.value[0].service.kind is ServiceKind.TERMINATING_GATEWAY
        node_res = query.node(view, "n1")
        assert [x.kind for x in node_res.value[1]] == [ServiceKind.TERMINATING_GATEWAY]
        await writer.apply(lambda v: entry_write.plan_delete(v, EntryRef("terminating-gateway", "default",
                                                                          "egress-gateway")))
        assert query.service_instances(view, "default", "egress-gateway").value[0].service.kind is ServiceKind.TYPICAL
