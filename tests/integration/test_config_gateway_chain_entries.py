"""The gateway and discovery-chain config entries through one real agent: the seed
guide's terminating-gateway file written with ``trellis config write`` as a user
types it, an ingress gateway and a resolver/router/splitter chain over the HTTP API in
Consul's shape, and the cross-entry refusals (a router on a tcp service, a protocol
pulled from under a splitter, an ingress listener over a service of another protocol,
one name as two gateway kinds), each a 400 that changes nothing.

The stories run in file order on the same agent.
"""

from __future__ import annotations

import json

import pytest

from trellis.testing.seed import INGRESS_GATEWAY_HCL as INGRESS_CONFIG
from trellis.testing.seed import TERMINATING_GATEWAY_HCL as SEED_TERMINATING
from trellis.testing.agent import AgentProcess, cli_ok

pytestmark = pytest.mark.integration




def put(agent: AgentProcess, body: dict) -> tuple[int, object]:
    status, _, answer = agent.request("PUT", "/v1/config", body)
    return status, answer


def get(agent: AgentProcess, path: str) -> dict:
    status, _, body = agent.request("GET", path)
    assert status == 200, (path, status, body)
    return body


def without_indexes(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in ("CreateIndex", "ModifyIndex")}


def refused(agent: AgentProcess, body: dict, message: str) -> None:
    """A 400 whose text contains ``message``, and nothing written."""
    before = agent.request("GET", f"/v1/config/{body['Kind']}/{body['Name']}")
    status, text = put(agent, body)
    assert status == 400 and message in text, (status, text)
    assert agent.request("GET", f"/v1/config/{body['Kind']}/{body['Name']}")[::2] == before[::2]


# -- the seed's gateway files through the CLI --------------------------------------------------------
def test_seed_terminating_gateway_file_writes_and_reads_back(agent, tmp_path):
    path = tmp_path / "egress-gateway-config.hcl"
    path.write_text(SEED_TERMINATING)
    cli_ok(agent.cli("config", "write", str(path)), "Config entry written: terminating-gateway/egress-gateway\n")
    entry = json.loads(cli_ok(agent.cli("config", "read", "-kind", "terminating-gateway", "-name", "egress-gateway")))
    assert without_indexes(entry) == {"Kind": "terminating-gateway", "Name": "egress-gateway",
                                      "Services": [{"Name": "external-api", "SNI": "api.external.com"}]}
    cli_ok(agent.cli("config", "list", "-kind", "terminating-gateway"), "egress-gateway\n")


def test_seed_ingress_gateway_file_needs_its_service_to_speak_http(agent, tmp_path):
    path = tmp_path / "ingress-gateway-config.hcl"
    path.write_text(INGRESS_CONFIG)
    r = agent.cli("config", "write", str(path))
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == ("Error writing config entry ingress-gateway/ingress-gateway: Unexpected response code: 400 "
                        '(service "web" has protocol "tcp", which does not match defined listener protocol "http")\n')
    defaults = tmp_path / "web-defaults.hcl"
    defaults.write_text('Kind = "service-defaults"\nName = "web"\nProtocol = "http"\n')
    cli_ok(agent.cli("config", "write", str(defaults)), "Config entry written: service-defaults/web\n")
    cli_ok(agent.cli("config", "write", str(path)), "Config entry written: ingress-gateway/ingress-gateway\n")
    entry = get(agent, "/v1/config/ingress-gateway/ingress-gateway")
    assert without_indexes(entry) == {
        "Kind": "ingress-gateway", "Name": "ingress-gateway", "TLS": {"Enabled": False},
        "Listeners": [{"Port": 8080, "Protocol": "http", "Services": [{"Name": "web", "Hosts": None}]}]}


# -- the HTTP API --------------------------------------------------------------------------------------
def test_one_name_is_one_gateway_kind(agent):
    refused(agent, {"Kind": "ingress-gateway", "Name": "egress-gateway",
                    "Listeners": [{"Port": 9000, "Protocol": "tcp", "Services": [{"Name": "db"}]}]},
            'cannot create a "ingress-gateway" config entry with name "egress-gateway", a "terminating-gateway" '
            "config entry with that name already exists")


def test_a_protocol_change_under_an_ingress_listener_is_refused(agent):
    status, text = put(agent, {"Kind": "service-defaults", "Name": "web", "Protocol": "tcp"})
    assert status == 400 and 'listener protocol "http"' in text
    assert get(agent, "/v1/config/service-defaults/web")["Protocol"] == "http"


def test_a_chain_of_resolver_splitter_and_router_in_consuls_shape(agent):
    resolver = {"kind": "service-resolver", "name": "web", "default_subset": "v1", "connect_timeout": "3s",
                "subsets": {"v1": {"filter": "Service.Meta.version == v1"},
                            "v2": {"filter": "Service.Meta.version == v2", "only_passing": True}}}
    assert put(agent, resolver) == (200, True)
    assert put(agent, {"Kind": "service-splitter", "Name": "web", "Splits": [
        {"Weight": 90, "ServiceSubset": "v1"}, {"Weight": 10, "ServiceSubset": "v2",
                                                "RequestHeaders": {"Set": {"x-canary": "1"}}}]}) == (200, True)
    assert put(agent, {"Kind": "service-router", "Name": "web", "Routes": [
        {"Match": {"HTTP": {"PathPrefix": "/beta", "Methods": ["get"]}},
         "Destination": {"ServiceSubset": "v2", "RequestTimeout": "2s", "NumRetries": 2, "RetryOn": ["5xx"]}}]}) \
        == (200, True)
    assert without_indexes(get(agent, "/v1/config/service-resolver/web")) == {
        "Kind": "service-resolver", "Name": "web", "DefaultSubset": "v1",
        "Subsets": {"v1": {"Filter": "Service.Meta.version == v1"},
                    "v2": {"Filter": "Service.Meta.version == v2", "OnlyPassing": True}},
        "ConnectTimeout": "3s"}
    assert get(agent, "/v1/config/service-splitter/web")["Splits"] == [
        {"Weight": 90, "ServiceSubset": "v1"},
        {"Weight": 10, "ServiceSubset": "v2", "RequestHeaders": {"Set": {"x-canary": "1"}}}]
    assert get(agent, "/v1/config/service-router/web")["Routes"] == [
        {"Match": {"HTTP": {"PathPrefix": "/beta", "Methods": ["GET"]}},
         "Destination": {"ServiceSubset": "v2", "RequestTimeout": "2s", "NumRetries": 2, "RetryOn": ["5xx"]}}]
    assert [e["Name"] for e in get(agent, "/v1/config/service-router")] == ["web"]


def test_the_chain_holds_what_it_relies_on(agent):
    refused(agent, {"Kind": "service-resolver", "Name": "web", "Subsets": {"v1": {"Filter": "Service.Meta.version == v1"}}},
            'service "web" does not have a subset named "v2"')
    status, _, text = agent.request("DELETE", "/v1/config/service-defaults/web")
    assert status == 400 and 'discovery chain "web" uses a protocol "tcp"' in text
    assert get(agent, "/v1/config/service-defaults/web")["Protocol"] == "http"


def test_a_router_on_a_tcp_service_is_refused(agent):
    refused(agent, {"Kind": "service-router", "Name": "db", "Routes": [{"Match": {"HTTP": {"PathPrefix": "/"}}}]},
            'discovery chain "db" uses a protocol "tcp" that does not permit advanced routing or splitting behavior')


def test_invalid_entries_are_400s_naming_the_field(agent):
    refused(agent, {"Kind": "service-splitter", "Name": "web", "Splits": [{"Weight": 60}, {"Weight": 30,
                                                                                            "ServiceSubset": "v2"}]},
            "the sum of all split weights must be 100, not 90.000000")
    refused(agent, {"Kind": "service-router", "Name": "web", "Routes": [{"Match": {"HTTP": {"PathExact": "x"}}}]},
            "Route[0] PathExact doesn't start with '/': \"x\"")
    refused(agent, {"Kind": "ingress-gateway", "Name": "ig2", "Listeners": [
        {"Port": 9000, "Protocol": "tcp", "Services": [{"Name": "a"}, {"Name": "b"}]}]},
        "Multiple services per listener are only supported for L7 protocols")
    refused(agent, {"Kind": "service-resolver", "Name": "api", "Subsets": {"v1": {"Filter": "Service.Bogus == 1"}}},
            'Filter for subset "v1" is not a valid expression')
    status, text = put(agent, {"Kind": "terminating-gateway", "Name": "tgw", "Services": [{"Name": "x", "Sni": "a",
                                                                                          "Certfile": "c"}]})
    assert status == 400 and text == ('Service "x" must have a CertFile, CAFile, and KeyFile specified for TLS '
                                      "origination")
    status, text = put(agent, {"Kind": "service-resolver", "Name": "api", "Bogus": 1})
    assert (status, text) == (400, 'Request decoding failed: invalid config key "Bogus"')


def test_deleting_the_chain_top_down_then_the_protocol_is_free(agent):
    for kind in ("service-router", "service-splitter"):
        assert agent.request("DELETE", f"/v1/config/{kind}/web")[0] == 200
    assert agent.request("DELETE", "/v1/config/ingress-gateway/ingress-gateway")[0] == 200
    assert put(agent, {"Kind": "service-defaults", "Name": "web", "Protocol": "tcp"}) == (200, True)
