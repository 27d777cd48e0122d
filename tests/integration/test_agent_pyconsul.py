"""The real py-consul client against a real dev agent: agent, catalog, health, blocking."""

from __future__ import annotations

import threading
import time

import consul
import pytest

pytestmark = pytest.mark.integration


def test_fresh_agent_looks_like_consul(consul_client, agent):
    self_ = consul_client.agent.self()
    assert self_["Config"]["Datacenter"] == "dc1"
    assert self_["Config"]["NodeName"] == "test-node"
    assert self_["Config"]["Version"]
    assert self_["xDS"]["Port"] == agent.grpc_port
    assert consul_client.status.leader() == "127.0.0.1:8300"
    _, services = consul_client.catalog.services()
    assert "consul" in services
    _, node_checks = consul_client.health.node("test-node")
    serf = [c for c in node_checks if c["CheckID"] == "serfHealth"]
    assert serf[0]["Status"] == "passing" and serf[0]["Output"] == "Agent alive and reachable"
    assert "serfHealth" not in consul_client.agent.checks()  # catalog-only, as in Consul
    (member,) = consul_client.agent.members()
    assert member["Name"] == "test-node" and member["Tags"]["role"] == "consul"


def test_register_query_and_deregister_a_service(consul_client):
    c = consul_client
    c.agent.service.register("api", service_id="api-1", port=9090, tags=["v1"], meta={"env": "prod"},
                             check=consul.Check.ttl("30s"))
    assert c.agent.services()["api-1"]["Meta"] == {"env": "prod"}
    _, nodes = c.health.service("api")
    assert [n["Service"]["ID"] for n in nodes] == ["api-1"]
    _, passing = c.health.service("api", passing=True)
    assert passing == []  # TTL checks start critical
    c.agent.check.ttl_pass("service:api-1", "all good")
    _, passing = c.health.service("api", passing=True)
    assert [n["Service"]["ID"] for n in passing] == ["api-1"]
    assert passing[0]["Checks"][-1]["Output"] == "all good"
    _, catalog = c.catalog.service("api")
    assert catalog[0]["ServiceTags"] == ["v1"] and catalog[0]["ServicePort"] == 9090
    c.agent.service.deregister("api-1")
    _, nodes = c.health.service("api")
    assert nodes == []


def test_blocking_query_wakes_on_a_change(consul_client):
    c = consul_client
    c.agent.service.register("blocker", service_id="blocker-1", port=1)
    index, _ = c.health.service("blocker")
    result = {}

    def wait():
        t0 = time.monotonic()
        idx, nodes = c.health.service("blocker", index=index, wait="20s")
        result.update(index=idx, nodes=nodes, took=time.monotonic() - t0)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.3)
    c.agent.service.register("blocker", service_id="blocker-2", port=2)
    t.join(20)
    assert int(result["index"]) > int(index)
    assert {n["Service"]["ID"] for n in result["nodes"]} == {"blocker-1", "blocker-2"}
    assert result["took"] < 10


def test_catalog_register_of_an_external_service(consul_client):
    c = consul_client
    assert c.catalog.register("ext-node", "192.0.2.10",
                              service={"Service": "external-api", "Port": 443, "Tags": ["ext"]})
    _, svc = c.catalog.service("external-api")
    assert svc[0]["Node"] == "ext-node" and svc[0]["Address"] == "192.0.2.10"
    _, nodes = c.catalog.nodes()
    assert {"ext-node", "test-node"} <= {n["Node"] for n in nodes}
    assert c.catalog.deregister("ext-node")
    _, svc = c.catalog.service("external-api")
    assert svc == []


def test_filter_expression(consul_client):
    c = consul_client
    c.agent.service.register("flt", service_id="flt-1", port=1, meta={"env": "prod"})
    c.agent.service.register("flt", service_id="flt-2", port=2, meta={"env": "dev"})
    _, nodes = c.health.service("flt", filter_expr='Service.Meta.env == "prod"')
    assert [n["Service"]["ID"] for n in nodes] == ["flt-1"]


def test_unknown_service_reads_answer_as_consul(consul_client):
    c = consul_client
    assert c.health.service("does-not-exist")[1] == []
    assert c.catalog.service("does-not-exist")[1] == []
    assert c.catalog.node("no-such-node")[1] is None


def test_pyconsul_health_catalog_and_maintenance_calls(consul_client, agent):
    c = consul_client
    c.agent.service.register("pc", service_id="pc-1", port=5000, tags=["blue"],
                             check=consul.Check.ttl("60s"))
    c.agent.check.ttl_warn("service:pc-1", "slow")
    _, checks = c.health.checks("pc")
    assert [(x["CheckID"], x["Status"], x["Output"]) for x in checks] == [("service:pc-1", "warning", "slow")]
    _, warning = c.health.state("warning")
    assert "service:pc-1" in {x["CheckID"] for x in warning}
    _, node_checks = c.health.node("test-node")
    assert {"serfHealth", "service:pc-1"} <= {x["CheckID"] for x in node_checks}
    _, node = c.catalog.node("test-node")
    assert node["Services"]["pc-1"]["Tags"] == ["blue"]
    _, tagged = c.catalog.service("pc", tag="blue")
    assert [x["ServiceID"] for x in tagged] == ["pc-1"]
    _, untagged = c.catalog.service("pc", tag="green")
    assert untagged == []
    assert c.catalog.datacenters() == ["dc1"]
    assert c.status.peers() == ["127.0.0.1:8300"]
    assert c.agent.service.maintenance("pc-1", "true", "patching")
    _, nodes = c.health.service("pc")
    assert "_service_maintenance:pc-1" in {x["CheckID"] for x in nodes[0]["Checks"]}
    assert c.agent.maintenance("true", "node work")
    _, nodes = c.health.service("consul")
    assert "_node_maintenance" in {x["CheckID"] for x in nodes[0]["Checks"]}
    assert c.agent.maintenance("false")
    assert c.agent.service.maintenance("pc-1", "false")
    c.agent.check.register("pc-http", consul.Check.http(f"http://127.0.0.1:{agent.http_port}/v1/status/leader", "1s"),
                           service_id="pc-1")
    assert c.agent.checks()["pc-http"]["Type"] == "http"
    assert c.agent.check.deregister("pc-http")
    assert c.agent.service.deregister("pc-1")
