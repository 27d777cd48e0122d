"""The CLI as a user types it, against a real agent: the seed's registrations and listings."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

SEED_WEB = {"service": {"name": "web", "id": "web-1", "port": 8080, "connect": {"sidecar_service": {
    "port": 20000,
    "check": {"name": "Connect Sidecar Health", "http": "http://localhost:20000/health", "interval": "10s"},
    "proxy": {"upstreams": [{"destination_name": "api", "local_bind_port": 9090}]},
}}}}
SEED_UPSTREAMS = {"service": {"name": "frontend", "connect": {"sidecar_service": {"proxy": {
    "upstreams": [
        {"destination_name": "api", "local_bind_port": 9090, "datacenter": "dc1"},
        {"destination_name": "database", "local_bind_port": 9091, "datacenter": "dc2"},
    ],
    "config": {"envoy_prometheus_bind_addr": "0.0.0.0:9102", "protocol": "http"},
}}}}}
SEED_INGRESS = {"service": {"name": "ingress-gateway", "connect": {"gateway": {"proxy": {
    "envoy_gateway_bind_addresses": {"default": {"address": "0.0.0.0", "port": 8080}},
    "envoy_gateway_no_default_bind": True,
    "envoy_gateway_bind_tagged_addresses": {"lan": {"address": "0.0.0.0", "port": 8080}},
}}}}}
SEED_EGRESS = {"service": {"name": "egress-gateway", "connect": {"gateway": {"proxy": {
    "envoy_gateway_bind_addresses": {"default": {"address": "0.0.0.0", "port": 8443}},
}}}}}


def trellis(agent, *args, env=None):
    e = {**os.environ, "CONSUL_HTTP_ADDR": agent.http_addr, **(env or {})}
    e.pop("TRELLIS_HTTP_ADDR", None)
    return subprocess.run([sys.executable, "-m", "trellis", *args], capture_output=True, text=True, env=e,
                          timeout=60)


@pytest.mark.parametrize("doc", [SEED_WEB, SEED_UPSTREAMS, SEED_INGRESS, SEED_EGRESS],
                         ids=["web-sidecar", "upstreams", "ingress", "egress"])
def test_seed_registrations_register_as_written(agent, tmp_path, doc):
    f = tmp_path / "svc.json"
    f.write_text(json.dumps(doc))
    r = trellis(agent, "services", "register", str(f))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"Registered service: {doc['service']['name']}"
    sid = doc["service"].get("id", doc["service"]["name"])
    _, _, svc = agent.request("GET", f"/v1/agent/service/{sid}")
    assert svc["Service"] == doc["service"]["name"]
    r = trellis(agent, "services", "deregister", str(f))
    assert r.returncode == 0 and f"Deregistered service: {sid}" in r.stdout


def test_seed_sidecar_details(agent, tmp_path):
    f = tmp_path / "web-service.json"
    f.write_text(json.dumps(SEED_UPSTREAMS))
    assert trellis(agent, "services", "register", str(f)).returncode == 0
    _, _, proxy = agent.request("GET", "/v1/agent/service/frontend-sidecar-proxy")
    ups = {u["DestinationName"]: u for u in proxy["Proxy"]["Upstreams"]}
    assert (ups["api"]["LocalBindPort"], ups["api"]["Datacenter"]) == (9090, "dc1")
    assert (ups["database"]["LocalBindPort"], ups["database"]["Datacenter"]) == (9091, "dc2")
    assert proxy["Proxy"]["Config"]["protocol"] == "http"
    assert 21000 <= proxy["Port"] <= 21255
    trellis(agent, "services", "deregister", "-id", "frontend")


def test_flag_form_registration_and_catalog_listing(agent):
    r = trellis(agent, "services", "register", "-name=cli-svc", "-id", "cli-1", "-port", "7000",
                "-tag", "b", "--tag=a", "-meta", "env=prod")
    assert r.returncode == 0, r.stderr
    r = trellis(agent, "catalog", "services", "-tags")
    assert r.returncode == 0
    line = next(x for x in r.stdout.splitlines() if x.startswith("cli-svc"))
    assert line.split() == ["cli-svc", "a,b"]
    r = trellis(agent, "catalog", "services", "-format=json")
    assert json.loads(r.stdout)["cli-svc"] == ["a", "b"]
    r = trellis(agent, "catalog", "nodes", "-service", "cli-svc")
    assert r.stdout.splitlines()[0].split() == ["Node", "ID", "Address", "DC"]
    assert r.stdout.splitlines()[1].split()[0] == "test-node"
    assert trellis(agent, "services", "deregister", "-id", "cli-1").returncode == 0


def test_members_datacenters_version(agent):
    r = trellis(agent, "members")
    header, row = r.stdout.splitlines()[:2]
    assert header.split()[:4] == ["Node", "Address", "Status", "Type"]
    assert row.split()[:4] == ["test-node", "127.0.0.1:8301", "alive", "server"]
    assert trellis(agent, "catalog", "datacenters").stdout.strip() == "dc1"
    v = trellis(agent, "version", "-format=json")
    assert json.loads(v.stdout)["Name"] == "trellis"


def test_errors_go_to_stderr_with_nonzero_exit(agent, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"service": {"name": "x", "port": "abc"}}')
    r = trellis(agent, "services", "register", str(bad))
    assert r.returncode != 0 and "port" in r.stderr.lower() and r.stdout == ""
    r = trellis(agent, "services", "deregister", "-id", "does-not-exist")
    assert r.returncode != 0 and "does-not-exist" in r.stderr
    r = trellis(agent, "members", env={"CONSUL_HTTP_ADDR": "127.0.0.1:1"})
    assert r.returncode != 0 and "connection refused" in r.stderr
