"""The real py-consul client against a real dev agent: the Connect, config-entry and gateway
calls a Consul user's scripts make (intentions, CA, leaf, authorize, config entries,
gateway services, health/connect and health/ingress) answer as Consul's do."""

from __future__ import annotations

import threading
import time

import consul
import pytest
from cryptography import x509

from trellis.testing.agent import free_port

pytestmark = pytest.mark.integration


def register_with_sidecar(client: consul.Consul, name: str) -> None:
    assert client.agent.service.register(name, service_id=f"{name}-1", port=free_port(),
                                         connect={"SidecarService": {"Port": free_port()}})


def test_intentions_the_ca_a_leaf_and_authorize(consul_client):
    c = consul_client
    register_with_sidecar(c, "pc-web")
    register_with_sidecar(c, "pc-api")
    try:
        assert c.connect.intentions.upsert("pc-web", "pc-api", action="deny", description="py-consul")
        found = c.connect.intentions.read("pc-web", "pc-api")
        assert (found["SourceName"], found["DestinationName"], found["Action"]) == ("pc-web", "pc-api", "deny")
        assert c.connect.intentions.check("pc-web", "pc-api") is False
        assert c.connect.intentions.check("pc-other", "pc-api") is True  # the dev agent's default: allow
        matches = c.connect.intentions.match("destination", "pc-api")
        assert [i["SourceName"] for i in matches["pc-api"]] == ["pc-web"]
        assert any(i["SourceName"] == "pc-web" for i in c.connect.intentions.list())

        roots = c.connect.ca.roots()
        active = next(r for r in roots["Roots"] if r["Active"])
        assert roots["ActiveRootID"] == active["ID"] and roots["TrustDomain"]
        assert c.connect.ca.configuration()["Provider"] == "consul"
        leaf = c.agent.connect.ca.leaf("pc-web")
        cert = x509.load_pem_x509_certificate(leaf["CertPEM"].encode())
        uri = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.UniformResourceIdentifier)[0]
        assert uri.endswith("/svc/pc-web") and leaf["Service"] == "pc-web"

        verdict = c.agent.connect.authorize("pc-api", uri, leaf["SerialNumber"])
        assert verdict["Authorized"] is False and "DENY" in verdict["Reason"]
        assert c.connect.intentions.delete("pc-web", "pc-api")
        assert c.agent.connect.authorize("pc-api", uri, leaf["SerialNumber"])["Authorized"] is True
    finally:
        c.connect.intentions.delete("pc-web", "pc-api")
        for name in ("pc-web", "pc-api"):
            c.agent.service.deregister(f"{name}-1")
            c.agent.service.deregister(f"{name}-1-sidecar-proxy")


def test_config_entries_and_an_ingress_gateway(consul_client):
    c = consul_client
    register_with_sidecar(c, "pc-shop")
    port = free_port()
    try:
        assert c.config.set("service-defaults", "pc-shop", {"Protocol": "http"})
        assert c.config.get("service-defaults", "pc-shop")["Protocol"] == "http"
        assert c.config.set("service-router", "pc-shop", {"Routes": [
            {"Match": {"HTTP": {"PathPrefix": "/admin"}}, "Destination": {"Service": "pc-shop", "NumRetries": 2}}]})
        assert [e["Name"] for e in c.config.list("service-router")] == ["pc-shop"]
        with pytest.raises(consul.ConsulException) as refused:  # a router needs an HTTP-like protocol
            c.config.set("service-router", "pc-tcp", {"Routes": [{"Destination": {"Service": "pc-tcp"}}]})
        assert "protocol" in str(refused.value)

        assert c.agent.service.register("pc-ingress", service_id="pc-ingress", port=free_port(),
                                        kind="ingress-gateway", address="127.0.0.1")
        assert c.config.set("ingress-gateway", "pc-ingress", {"Listeners": [
            {"Port": port, "Protocol": "http", "Services": [{"Name": "pc-shop"}]}]})
        rows = c.catalog.gateway_services("pc-ingress")
        assert [(r["Service"]["Name"], r["GatewayKind"], r["Port"], r["Protocol"]) for r in rows] == [
            ("pc-shop", "ingress-gateway", port, "http")]
        _, ingress = c.health.ingress("pc-shop")
        assert [n["Service"]["ID"] for n in ingress] == ["pc-ingress"]
        _, sidecars = c.health.connect("pc-shop")
        assert [n["Service"]["ID"] for n in sidecars] == ["pc-shop-1-sidecar-proxy"]
        definition = c.agent.service_definition("pc-ingress")
        assert definition["Kind"] == "ingress-gateway" and definition["Port"]
    finally:
        for kind, name in (("ingress-gateway", "pc-ingress"), ("service-router", "pc-shop"),
                           ("service-defaults", "pc-shop")):
            c.config.delete(kind, name)
        for sid in ("pc-ingress", "pc-shop-1", "pc-shop-1-sidecar-proxy"):
            c.agent.service.deregister(sid)


def test_a_sidecars_definition_carries_proxy_defaults_as_consuls_agent_serves_it(consul_client, agent):
    """/v1/agent/service/:id merges proxy-defaults and service-defaults into a sidecar's
    Proxy.Config (the registration's keys win), and a hash-blocking read wakes when they change."""
    c = consul_client
    c.agent.service.register("pc-merge", service_id="pc-merge-1", port=free_port(), connect={"SidecarService": {
        "Port": free_port(), "Proxy": {"Config": {"envoy_statsd_url": "udp://10.0.0.2:8125"}}}})
    try:
        sid = "pc-merge-1-sidecar-proxy"
        before = c.agent.service_definition(sid)
        assert before["Proxy"]["Config"] == {"envoy_statsd_url": "udp://10.0.0.2:8125"}
        waiter: dict = {}
        parked = threading.Thread(target=lambda: waiter.update(zip(("status", "headers", "body"), agent.request(
            "GET", f"/v1/agent/service/{sid}?hash={before['ContentHash']}&wait=30s", timeout=60))))
        parked.start()
        time.sleep(0.2)
        assert c.config.set("proxy-defaults", "global", {"Config": {
            "envoy_statsd_url": "udp://10.0.0.1:8125", "envoy_prometheus_bind_addr": "127.0.0.1:9102"}})
        assert c.config.set("service-defaults", "pc-merge", {"Protocol": "http"})
        parked.join(60)
        assert waiter["status"] == 200 and waiter["body"]["ContentHash"] != before["ContentHash"]
        merged = c.agent.service_definition(sid)["Proxy"]["Config"]
        assert merged == {"envoy_statsd_url": "udp://10.0.0.2:8125", "envoy_prometheus_bind_addr": "127.0.0.1:9102",
                          "protocol": "http"}
        assert c.agent.services()[sid]["Proxy"]["Config"] == merged
        assert "Config" not in (c.agent.services()["pc-merge-1"].get("Proxy") or {})  # a typical service: as given
    finally:
        c.config.delete("proxy-defaults", "global")
        c.config.delete("service-defaults", "pc-merge")
        c.agent.service.deregister("pc-merge-1")
        c.agent.service.deregister("pc-merge-1-sidecar-proxy")
