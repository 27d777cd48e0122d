"""Gateways through one real agent, as the seed guide sets them up: its ``ingress-gateway.json``
and ``egress-gateway.json`` (``connect.gateway``, no ``kind``) registered with ``trellis
services register``, then the gateway config entries written with ``trellis config write``
*after* the registration. Each gateway then shows its kind everywhere (blocking queries
wake up), ``/v1/catalog/gateway-services``, ``/v1/health/ingress`` and DNS
``<service>.ingress.consul`` answer as Consul's, and ``trellis connect envoy
-gateway=... -register -bootstrap`` registers a gateway in Consul's shape and prints a
bootstrap the real Envoy accepts.

The stories run in file order on the same agent.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from trellis.testing.seed import INGRESS_GATEWAY_HCL as INGRESS_CONFIG
from trellis.testing.seed import TERMINATING_GATEWAY_HCL as SEED_TERMINATING
from trellis.testing.agent import AgentProcess, cli_ok, free_port

pytestmark = pytest.mark.integration

ENVOY = str(Path(sys.executable).parent / "envoy")

# The seed guide's "Ingress Gateway Configuration" and "Egress Gateway Configuration", as written there.
SEED_INGRESS = {"service": {"name": "ingress-gateway", "port": 8080, "connect": {"gateway": {"proxy": {
    "envoy_gateway_bind_addresses": {"default": {"address": "0.0.0.0", "port": 8080}}}}}}}
SEED_EGRESS = {"service": {"name": "egress-gateway", "connect": {"gateway": {"proxy": {
    "envoy_gateway_bind_addresses": {"default": {"address": "0.0.0.0", "port": 8443}}}}}}}
# Its "Ingress Gateway with Listeners" (the tagged addresses as a map, which Consul has as a bool).
SEED_INGRESS_LISTENERS = {"service": {"name": "ingress-gateway", "connect": {"gateway": {"proxy": {
    "envoy_gateway_bind_addresses": {"default": {"address": "0.0.0.0", "port": 8080}},
    "envoy_gateway_no_default_bind": True,
    "envoy_gateway_bind_tagged_addresses": {"lan": {"address": "0.0.0.0", "port": 8080}}}}}}}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("gateway-files")
    (d / "ingress-gateway.json").write_text(json.dumps(SEED_INGRESS, indent=2))
    (d / "egress-gateway.json").write_text(json.dumps(SEED_EGRESS, indent=2))
    (d / "ingress-gateway-listeners.json").write_text(json.dumps(SEED_INGRESS_LISTENERS, indent=2))
    (d / "egress-gateway-config.hcl").write_text(SEED_TERMINATING)
    (d / "ingress-gateway-config.hcl").write_text(INGRESS_CONFIG)
    (d / "web-defaults.hcl").write_text('Kind = "service-defaults"\nName = "web"\nProtocol = "http"\n')
    (d / "web.json").write_text(json.dumps({"service": {"name": "web", "port": 9090,
                                                        "connect": {"sidecar_service": {}}}}))
    return d


def get(agent: AgentProcess, path: str) -> tuple[dict, object]:
    status, headers, body = agent.request("GET", path)
    assert status == 200, (path, status, body)
    return headers, body


def index(agent: AgentProcess, path: str) -> int:
    return int(get(agent, path)[0]["X-Consul-Index"])


class Blocking:
    """A blocking GET in a thread: started before a write, joined after it."""

    def __init__(self, agent: AgentProcess, path: str) -> None:
        self.result: tuple | None = None
        self.started = time.monotonic()
        self.thread = threading.Thread(target=lambda: setattr(self, "result", agent.request("GET", path, timeout=60)))
        self.thread.start()

    def answer(self) -> tuple[float, object]:
        self.thread.join(60)
        assert self.result is not None
        status, _, body = self.result
        assert status == 200, body
        return time.monotonic() - self.started, body


def ask(agent: AgentProcess, name: str, rdtype: str = "A") -> dns.message.Message:
    return dns.query.udp(dns.message.make_query(name, rdtype), "127.0.0.1", port=agent.dns_port, timeout=5)


# -- the seed's terminating (egress) gateway ---------------------------------------------------------
def test_seed_gateway_files_register_without_a_kind(agent, files):
    cli_ok(agent.cli("services", "register", str(files / "ingress-gateway.json"), str(files / "egress-gateway.json")),
       "Registered service: ingress-gateway\nRegistered service: egress-gateway\n")
    _, svc = get(agent, "/v1/agent/service/egress-gateway")
    assert "Kind" not in svc and "Proxy" not in svc  # a typical service until its entry says otherwise
    _, (node,) = get(agent, "/v1/catalog/service/egress-gateway")
    assert node["ServiceKind"] == ""
    assert node["ServiceProxy"]["Config"] == {"envoy_gateway_bind_addresses": {"default": {"address": "0.0.0.0",
                                                                                          "port": 8443}}}


def test_the_terminating_entry_written_later_gives_the_kind_and_wakes_blocking_queries(agent, files):
    catalog = index(agent, "/v1/catalog/service/egress-gateway")
    headers, svc = get(agent, "/v1/agent/service/egress-gateway")
    watchers = [Blocking(agent, f"/v1/catalog/service/egress-gateway?index={catalog}&wait=30s"),
                Blocking(agent, f"/v1/agent/service/egress-gateway?hash={headers['X-Consul-ContentHash']}&wait=30s"),
                Blocking(agent, f"/v1/catalog/gateway-services/egress-gateway?index="
                                f"{index(agent, '/v1/catalog/gateway-services/egress-gateway')}&wait=30s")]
    time.sleep(0.2)  # let them park: a write before they block would answer them at once anyway
    cli_ok(agent.cli("config", "write", str(files / "egress-gateway-config.hcl")),
       "Config entry written: terminating-gateway/egress-gateway\n")
    (took, (node,)), (took2, svc), (took3, rows) = (w.answer() for w in watchers)
    assert max(took, took2, took3) < 10
    assert node["ServiceKind"] == "terminating-gateway"
    assert svc["Kind"] == "terminating-gateway"
    assert svc["Proxy"]["Config"] == node["ServiceProxy"]["Config"]
    assert [(r["Gateway"], r["Service"], r["GatewayKind"], r["SNI"], r["AutoHostRewrite"]) for r in rows] == [
        ({"Name": "egress-gateway"}, {"Name": "external-api"}, "terminating-gateway", "api.external.com", True)]
    _, (inst,) = get(agent, "/v1/health/service/egress-gateway")
    assert inst["Service"]["Kind"] == "terminating-gateway"
    _, services = get(agent, "/v1/agent/services?filter=" + quote('Kind == "terminating-gateway"'))
    assert list(services) == ["egress-gateway"]


def test_gateway_services_of_the_egress_gateway_in_consuls_shape(agent):
    _, rows = get(agent, "/v1/catalog/gateway-services/egress-gateway")
    assert [{k: v for k, v in r.items() if k not in ("CreateIndex", "ModifyIndex")} for r in rows] == [
        {"Gateway": {"Name": "egress-gateway"}, "Service": {"Name": "external-api"},
         "GatewayKind": "terminating-gateway", "SNI": "api.external.com", "AutoHostRewrite": True}]
    assert get(agent, "/v1/catalog/gateway-services/nothing-here")[1] == []
    status, _, text = agent.request("GET", "/v1/catalog/gateway-services/")
    assert (status, text) == (400, "Missing gateway name")


# -- the seed's ingress gateway -----------------------------------------------------------------------
def test_the_ingress_entry_written_later_exposes_web_through_the_gateway(agent, files):
    cli_ok(agent.cli("services", "register", str(files / "web.json")), "Registered service: web\n")
    cli_ok(agent.cli("config", "write", str(files / "web-defaults.hcl")))
    assert get(agent, "/v1/health/ingress/web")[1] == []
    assert ask(agent, "web.ingress.consul").rcode() == dns.rcode.NXDOMAIN
    waiting = Blocking(agent, f"/v1/health/ingress/web?index={index(agent, '/v1/health/ingress/web')}&wait=30s")
    time.sleep(0.2)
    cli_ok(agent.cli("config", "write", str(files / "ingress-gateway-config.hcl")),
       "Config entry written: ingress-gateway/ingress-gateway\n")
    took, (inst,) = waiting.answer()
    assert took < 10
    assert (inst["Service"]["ID"], inst["Service"]["Kind"], inst["Service"]["Port"]) == (
        "ingress-gateway", "ingress-gateway", 8080)
    assert inst["Node"]["Node"] == "test-node" and [c["CheckID"] for c in inst["Checks"]] == ["serfHealth"]
    assert [i["Service"]["ID"] for i in get(agent, "/v1/health/ingress/web?passing")[1]] == ["ingress-gateway"]
    assert get(agent, "/v1/health/ingress/db")[1] == []
    _, rows = get(agent, "/v1/catalog/gateway-services/ingress-gateway")
    assert [{k: v for k, v in r.items() if k not in ("CreateIndex", "ModifyIndex")} for r in rows] == [
        {"Gateway": {"Name": "ingress-gateway"}, "Service": {"Name": "web"}, "GatewayKind": "ingress-gateway",
         "Port": 8080, "Protocol": "http"}]
    _, svc = get(agent, "/v1/agent/service/ingress-gateway")
    assert svc["Kind"] == "ingress-gateway"


def test_dns_answers_web_ingress_with_the_gateway_on_the_wire(agent):
    a = ask(agent, "web.ingress.consul")
    assert a.rcode() == dns.rcode.NOERROR
    assert [rr.address for rr in a.answer[0]] == ["127.0.0.1"]  # the gateway has no address: its node's
    srv = ask(agent, "web.ingress.consul", "SRV")
    (rec,) = srv.answer[0]
    assert (rec.port, rec.target.to_text()) == (8080, "test-node.node.dc1.consul.")
    assert any(rr.rdtype == dns.rdatatype.A for rr in srv.additional)
    assert ask(agent, "db.ingress.consul").rcode() == dns.rcode.NXDOMAIN


# -- connect envoy -gateway ---------------------------------------------------------------------------
def test_connect_envoy_registers_an_ingress_gateway_and_prints_a_bootstrap_envoy_accepts(agent, tmp_path):
    port, bind = free_port(), free_port()
    r = agent.cli("connect", "envoy", "-gateway=ingress", "-register", "-service", "edge",
                "-address", f"127.0.0.1:{port}", "-bind-address", f"default=127.0.0.1:{bind}",
                "-admin-bind", f"127.0.0.1:{free_port()}", "-bootstrap")
    boot = json.loads(cli_ok(r))  # stdout is the bootstrap alone: no "Registered service" line with -bootstrap
    assert boot["node"]["id"] == boot["node"]["cluster"] == "edge"
    assert boot["dynamic_resources"]["ads_config"]["api_type"] == "DELTA_GRPC"
    ready = {li["name"]: li for li in boot["static_resources"]["listeners"]}["envoy_ready_listener"]
    assert ready["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": port}
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(boot))
    v = subprocess.run([ENVOY, "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert v.returncode == 0, v.stdout + v.stderr

    _, svc = get(agent, "/v1/agent/service/edge")
    assert (svc["Kind"], svc["ID"], svc["Address"], svc["Port"]) == ("ingress-gateway", "edge", "127.0.0.1", port)
    assert svc["TaggedAddresses"]["lan"] == {"Address": "127.0.0.1", "Port": port}
    assert svc["Proxy"]["Config"] == {"envoy_gateway_no_default_bind": True, "envoy_gateway_bind_addresses": {
        "default": {"Address": "127.0.0.1", "Port": bind}}}
    _, checks = get(agent, "/v1/agent/checks")
    check = checks["service:edge"]
    assert (check["Name"], check["ServiceID"], check["Type"], check["Interval"]) == (
        "ingress-gateway listening", "edge", "tcp", "10s")


def test_connect_envoy_finds_the_one_local_gateway_of_a_kind(agent):
    boot = json.loads(cli_ok(agent.cli("connect", "envoy", "-gateway=terminating", "-bootstrap")))
    assert boot["node"]["id"] == boot["node"]["cluster"] == "egress-gateway"  # the seed's, kind from its entry
    assert all(li["name"] != "envoy_ready_listener" for li in boot["static_resources"]["listeners"])
    r = agent.cli("connect", "envoy", "-gateway=ingress", "-bootstrap")
    assert (r.returncode, r.stdout, r.stderr) == (
        1, "", "Cannot lookup the ingress-gateway's proxy ID because multiple are registered with the agent\n")
    r = agent.cli("connect", "envoy", "-register", "-sidecar-for", "web", "-bootstrap")
    assert (r.returncode, r.stderr) == (1, "Auto-Registration can only be used for gateways\n")
    r = agent.cli("connect", "envoy", "-gateway=egress", "-bootstrap")
    assert (r.returncode, r.stderr) == (1, "Gateway must be one of: api, terminating, mesh, or ingress\n")


# -- bad input, and the seed's other ingress example ----------------------------------------------
def test_bad_gateway_bind_config_is_refused_naming_the_field(agent, tmp_path):
    bad = tmp_path / "bad-gateway.json"
    bad.write_text(json.dumps({"service": {"name": "bad-gw", "connect": {"gateway": {"proxy": {
        "envoy_gateway_bind_tagged_addresses": "lan"}}}}}))
    r = agent.cli("services", "register", str(bad))
    assert (r.returncode, r.stdout) == (1, "")
    assert "service.connect.gateway.proxy: Invalid gateway config: envoy_gateway_bind_tagged_addresses: expected a " \
           'boolean or an object of {address, port}, got string "lan"' in r.stderr
    status, _, text = agent.request("PUT", "/v1/agent/service/register", {
        "Name": "bad-gw", "Kind": "ingress-gateway",
        "Proxy": {"Config": {"envoy_gateway_bind_addresses": {"default": {"Address": "0.0.0.0", "Port": "x"}}}}})
    assert status == 400
    assert text == ('Invalid Proxy.Config: envoy_gateway_bind_addresses["default"].port: expected a port number '
                    '(1-65535), got string "x"')
    assert agent.request("GET", "/v1/agent/service/bad-gw")[0] == 404


def test_the_seeds_ingress_with_listeners_keeps_its_tagged_address_map(agent, files):
    cli_ok(agent.cli("services", "register", str(files / "ingress-gateway-listeners.json")),
       "Registered service: ingress-gateway\n")
    _, svc = get(agent, "/v1/agent/service/ingress-gateway")
    assert svc["Kind"] == "ingress-gateway"
    assert svc["Proxy"]["Config"]["envoy_gateway_bind_tagged_addresses"] == {"lan": {"address": "0.0.0.0",
                                                                                     "port": 8080}}
    assert svc["Port"] == 0
