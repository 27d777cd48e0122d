"""The bootstrap `connect envoy` writes, and the pure parts of the command; every
bootstrap is checked by the real Envoy (``envoy --mode validate``)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from trellis.cli import connect_envoy
from trellis.xds.bootstrap import MIN_ENVOY, BootstrapArgs, BootstrapConfig, build_bootstrap, parse_version

ENVOY = str(Path(sys.executable).parent / "envoy")
BASE = BootstrapArgs(proxy_id="web-1-sidecar-proxy", service="web", namespace="default", admin_host="127.0.0.1",
                     admin_port=19000, agent_host="127.0.0.1", agent_port=8502, token="s3cret")


def test_the_bootstrap_names_the_node_and_reaches_the_agent_over_delta_ads():
    b = build_bootstrap(BASE)
    assert b["node"] == {"id": "web-1-sidecar-proxy", "cluster": "web",
                         "metadata": {"namespace": "default", "partition": "default"}}
    (agent,) = b["static_resources"]["clusters"]
    assert agent["name"] == "local_agent" and "http2_protocol_options" in json.dumps(agent)
    ads = b["dynamic_resources"]["ads_config"]
    assert ads["api_type"] == "DELTA_GRPC" and ads["grpc_services"][0]["initial_metadata"] == [
        {"key": "x-consul-token", "value": "s3cret"}]
    assert b["dynamic_resources"]["lds_config"]["ads"] == {} and b["dynamic_resources"]["cds_config"]["ads"] == {}


WITH_PROMETHEUS = dataclasses.replace(BASE, config=BootstrapConfig(prometheus_bind=("127.0.0.1", 9102)))
INGRESS_GATEWAY = dataclasses.replace(BASE, proxy_id="ingress-gateway", service="ingress-gateway",
                                      ready_host="127.0.0.1", ready_port=8443)
BOTH = dataclasses.replace(INGRESS_GATEWAY, config=BootstrapConfig(prometheus_bind=("127.0.0.1", 9102)))


@pytest.mark.parametrize("args", [BASE, WITH_PROMETHEUS, INGRESS_GATEWAY, BOTH],
                         ids=["plain", "with-prometheus", "ingress-gateway-ready", "ready-and-prometheus"])
def test_envoy_accepts_the_bootstrap(tmp_path, args):
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(build_bootstrap(args)))
    r = subprocess.run([ENVOY, "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_prometheus_listener_serves_metrics_only():
    b = build_bootstrap(WITH_PROMETHEUS)
    (listener,) = b["static_resources"]["listeners"]
    routes = listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    assert routes[0]["match"] == {"path": "/metrics"} and routes[0]["route"]["prefix_rewrite"] == "/stats/prometheus"
    assert routes[1]["direct_response"]["status"] == 404


def test_an_ingress_gateway_answers_ready_on_its_address_through_the_admin_listener():
    b = build_bootstrap(BOTH)
    assert b["node"]["id"] == b["node"]["cluster"] == "ingress-gateway"
    assert [c["name"] for c in b["static_resources"]["clusters"]] == ["local_agent", "self_admin"]
    listeners = {li["name"]: li for li in b["static_resources"]["listeners"]}
    ready = listeners["envoy_ready_listener"]
    assert ready["address"] == {"socket_address": {"address": "127.0.0.1", "port_value": 8443}}
    routes = ready["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    assert routes[0] == {"match": {"path": "/ready"}, "route": {"cluster": "self_admin", "prefix_rewrite": "/ready"}}
    assert "envoy_prometheus_metrics_listener" in listeners


@pytest.mark.parametrize(("text", "version"), [
    ("envoy  version: 9e55809/1.40.0/Clean/RELEASE/BoringSSL", (1, 40, 0)),
    ("envoy version: abc/1.28.7/Modified/DEBUG/BoringSSL-FIPS", (1, 28, 7)),
    ("nonsense", None),
], ids=["release", "debug-fips", "unreadable"])
def test_parse_version(text, version):
    assert parse_version(text) == version


@pytest.mark.parametrize(("passthrough", "expected"), [
    ([], ["--concurrency", "1", "--disable-hot-restart"]),
    (["--base-id", "7"], ["--base-id", "7", "--concurrency", "1"]),
    (["--concurrency", "4", "-l", "debug"], ["--concurrency", "4", "-l", "debug", "--disable-hot-restart"]),
], ids=["defaults", "hot-restart-given", "concurrency-given"])
def test_envoy_arguments(passthrough, expected):
    assert connect_envoy.envoy_args(1, passthrough) == expected


def test_the_installed_envoy_is_new_enough_and_an_old_one_is_refused(tmp_path):
    assert connect_envoy.version_problem(ENVOY) == ""
    old = tmp_path / "envoy"
    old.write_text("#!/bin/sh\necho 'envoy  version: x/1.20.1/Clean/RELEASE/BoringSSL'\n")
    old.chmod(0o755)
    problem = connect_envoy.version_problem(str(old))
    assert "1.20.1 is older than trellis supports" in problem and ".".join(map(str, MIN_ENVOY)) in problem


def test_arguments_after_a_double_dash_go_to_envoy():
    assert connect_envoy._split(["-sidecar-for", "web", "--", "-l", "debug"]) == (["-sidecar-for", "web"],
                                                                                ["-l", "debug"])


@pytest.mark.parametrize("addr", ["https://127.0.0.1:8503", "unix:///tmp/agent.sock"], ids=["tls", "unix"])
def test_a_grpc_address_trellis_cannot_serve_is_refused(addr):
    from types import SimpleNamespace

    from trellis.errors import InvalidInput

    class Client:
        config = SimpleNamespace(token="")

        def get(self, path):
            return {"Kind": "connect-proxy", "Service": "web-sidecar-proxy", "Proxy": {"DestinationServiceName": "web"}}

    parsed = SimpleNamespace(admin_bind="127.0.0.1:19000", grpc_addr=addr)
    with pytest.raises(InvalidInput, match="plaintext gRPC on loopback only"):
        connect_envoy._args(Client(), parsed, "web-sidecar-proxy")
