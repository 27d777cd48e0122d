"""The bootstrap keys of ``Proxy.Config`` reach the real Envoy: an operator's extra static
gRPC cluster (an SDS server, as an ingress gateway's TLS needs) and an extra static
listener are loaded and served; proxy-defaults supply keys the registration lacks; a
malformed key stops ``trellis connect envoy`` before Envoy starts, naming the key."""

from __future__ import annotations

import json
import urllib.request

import pytest

from trellis.testing.agent import free_port
from trellis.testing.envoy import EnvoyMesh

pytestmark = pytest.mark.integration


def sds_cluster(port: int) -> dict:
    """A static gRPC (HTTP/2) cluster, the shape an SDS server needs."""
    return {"name": "sds-server", "type": "STATIC", "connect_timeout": "2s",
            "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}}}},
            "load_assignment": {"cluster_name": "sds-server", "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}


def hello_listener(port: int) -> dict:
    """A static HTTP listener answering every request itself."""
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                    "HttpConnectionManager",
           "stat_prefix": "hello", "route_config": {"name": "hello", "virtual_hosts": [{
               "name": "hello", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "direct_response": {
                   "status": 200, "body": {"inline_string": "from the extra listener"}}}]}]},
           "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    return {"name": "hello", "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": hcm}]}]}


def get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
        return r.read().decode()


@pytest.fixture()
def mesh(agent, tmp_path):
    m = EnvoyMesh(tmp_path, agent)
    yield m
    m.stop()


def test_envoy_loads_the_extra_static_cluster_and_listener(mesh):
    hello = free_port()
    mesh.register("web", "web-1", config={
        "envoy_extra_static_clusters_json": json.dumps(sds_cluster(free_port())),
        "envoy_extra_static_listeners_json": json.dumps(hello_listener(hello)),
        "envoy_stats_tags": "team=mesh"})
    envoy = mesh.start_envoy("web-1")

    static = mesh.wait(lambda: {e["cluster"]["name"]: e["cluster"] for e in envoy.dump("static_clusters")},
                       "Envoy's static clusters")
    assert set(static) == {"local_agent", "sds-server"}
    assert "http2_protocol_options" in json.dumps(static["sds-server"])
    assert "sds-server" in envoy.admin("/clusters")
    assert [e["listener"]["name"] for e in envoy.dump("static_listeners")] == ["hello"]
    assert mesh.wait(lambda: get(hello), "the extra listener answering") == "from the extra listener"
    mesh.wait(lambda: mesh.in_sync("web-1"), "the sidecar's xDS config applied as well")
    assert mesh.nacks() == []


def test_proxy_defaults_supply_bootstrap_keys_the_registration_lacks(agent, mesh):
    mesh.register("api", "api-1", config={"envoy_stats_flush_interval": "7s"})
    mesh.config_write({"Kind": "proxy-defaults", "Name": "global", "Config": {
        "envoy_extra_static_clusters_json": json.dumps(sds_cluster(free_port())),
        "envoy_stats_flush_interval": "30s"}})
    try:
        boot = json.loads(mesh.cli("connect", "envoy", "-sidecar-for", "api-1", "-bootstrap"))
        assert [c["name"] for c in boot["static_resources"]["clusters"]] == ["local_agent", "sds-server"]
        assert boot["stats_flush_interval"] == "7s"  # the registration wins
        bare = json.loads(mesh.cli("connect", "envoy", "-sidecar-for", "api-1", "-bootstrap", "-no-central-config"))
        assert [c["name"] for c in bare["static_resources"]["clusters"]] == ["local_agent"]
        assert "stats_flush_interval" not in bare
    finally:
        assert agent.request("DELETE", "/v1/config/proxy-defaults/global")[0] == 200


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("envoy_extra_static_listeners_json", '{"name": "hello",}', "invalid JSON"),
    ("envoy_statsd_url", "tcp://127.0.0.1:8125", "unsupported address protocol"),
    ("envoy_bootstrap_json_tpl", '{"admin": {}}', "does not render Go templates"),
], ids=["bad-json", "bad-url", "go-template"])
def test_a_malformed_key_stops_connect_envoy_naming_the_key(agent, mesh, key, value, reason):
    sid = f"bad-{key.replace('_', '-')}"
    mesh.register("bad", sid, config={key: value})
    done = agent.cli("connect", "envoy", "-sidecar-for", sid, "-admin-bind", f"127.0.0.1:{free_port()}", timeout=30)
    assert done.returncode != 0
    assert f"Proxy.Config key {key}: " in done.stderr and reason in done.stderr, done.stderr
    assert done.stdout == ""
