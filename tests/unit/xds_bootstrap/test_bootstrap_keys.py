"""The bootstrap keys of ``Proxy.Config`` (Consul's ``BootstrapConfig``): parsed by a pure
function into a ``BootstrapConfig``, placed by ``build_bootstrap``, refused with the key's
name when malformed; a bootstrap using all of them is checked by the real Envoy."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from trellis.errors import InvalidInput
from trellis.xds.bootstrap import BOOTSTRAP_KEYS, BootstrapArgs, BootstrapConfig, build_bootstrap, \
    parse_bootstrap_config

ENVOY = str(Path(sys.executable).parent / "envoy")
BASE = BootstrapArgs(proxy_id="web-1-sidecar-proxy", service="web", namespace="default", admin_host="127.0.0.1",
                     admin_port=19000, agent_host="127.0.0.1", agent_port=8502, datacenter="dc1")
SDS = {"name": "sds-server", "type": "STATIC", "connect_timeout": "2s",
       "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
           "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
           "explicit_http_config": {"http2_protocol_options": {}}}},
       "load_assignment": {"cluster_name": "sds-server", "endpoints": [{"lb_endpoints": [
           {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}}}}]}]}}
ZIPKIN = {"name": "zipkin", "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
    "cluster_name": "zipkin", "endpoints": [{"lb_endpoints": [
        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9411}}}}]}]}}
ECHO = {"name": "echo", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 7000}},
        "filter_chains": [{"filters": [{"name": "envoy.filters.network.tcp_proxy", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": "echo", "cluster": "sds-server"}}]}]}
TRACING = {"http": {"name": "envoy.tracers.zipkin", "typed_config": {
    "@type": "type.googleapis.com/envoy.config.trace.v3.ZipkinConfig", "collector_cluster": "zipkin",
    "collector_endpoint": "/api/v2/spans", "collector_endpoint_version": "HTTP_JSON"}}}
STATSD = {"name": "envoy.stat_sinks.statsd", "typed_config": {
    "@type": "type.googleapis.com/envoy.config.metrics.v3.StatsdSink",
    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 8125}}}}
ENV = {"STATSD_ADDR": "udp://10.0.0.9:9125", "HOST_IP": "10.1.2.3"}


def dog(address: dict) -> dict:
    return {"name": "envoy.stat_sinks.dog_statsd", "typed_config": {
        "@type": "type.googleapis.com/envoy.config.metrics.v3.DogStatsdSink", "address": address}}


PARSE_CASES = [
    ("nothing", {}, BootstrapConfig()),
    ("other-keys-are-xds-business", {"protocol": "http", "bind_address": "127.0.0.1"}, BootstrapConfig()),
    ("empty-string-is-unset", {"envoy_extra_static_clusters_json": "", "envoy_statsd_url": "  "}, BootstrapConfig()),
    ("one-cluster", {"envoy_extra_static_clusters_json": json.dumps(SDS)}, BootstrapConfig(extra_clusters=(SDS,))),
    ("clusters-separated-by-commas",
     {"envoy_extra_static_clusters_json": json.dumps(SDS) + ",\n" + json.dumps(ZIPKIN)},
     BootstrapConfig(extra_clusters=(SDS, ZIPKIN))),
    ("one-listener", {"envoy_extra_static_listeners_json": json.dumps(ECHO)}, BootstrapConfig(extra_listeners=(ECHO,))),
    ("prometheus", {"envoy_prometheus_bind_addr": "0.0.0.0:9102"}, BootstrapConfig(prometheus_bind=("0.0.0.0", 9102))),
    ("stats-listener-ipv6", {"envoy_stats_bind_addr": "[::1]:9103"}, BootstrapConfig(stats_bind=("::1", 9103))),
    ("statsd-udp", {"envoy_statsd_url": "udp://127.0.0.1:8125"}, BootstrapConfig(stats_sinks=(STATSD,))),
    ("dogstatsd-unix", {"envoy_dogstatsd_url": "unix:///var/run/dd.sock"},
     BootstrapConfig(stats_sinks=(dog({"pipe": {"path": "/var/run/dd.sock"}}),))),
    ("url-from-a-whole-env-var", {"envoy_dogstatsd_url": "$STATSD_ADDR"},
     BootstrapConfig(stats_sinks=(dog({"socket_address": {"address": "10.0.0.9", "port_value": 9125}}),))),
    ("host-ip-expanded-inside-a-url", {"envoy_dogstatsd_url": "udp://${HOST_IP}:8125"},
     BootstrapConfig(stats_sinks=(dog({"socket_address": {"address": "10.1.2.3", "port_value": 8125}}),))),
    ("sinks-in-consuls-order",
     {"envoy_extra_stats_sinks_json": json.dumps(dog({"pipe": {"path": "/x"}})),
      "envoy_statsd_url": "udp://127.0.0.1:8125"},
     BootstrapConfig(stats_sinks=(STATSD, dog({"pipe": {"path": "/x"}})))),
    ("stats-config", {"envoy_stats_config_json": '{"use_all_default_tags": false}'},
     BootstrapConfig(stats_config={"use_all_default_tags": False})),
    ("tags-as-a-list", {"envoy_stats_tags": ["Team=mesh", "canary"]},
     BootstrapConfig(stats_tags=(("team", "mesh"), ("canary", "1")))),
    ("tags-comma-separated", {"envoy_stats_tags": "team=mesh, zone=a=b,"},
     BootstrapConfig(stats_tags=(("team", "mesh"), ("zone", "a=b")))),
    ("flush-interval", {"envoy_stats_flush_interval": "1.5s"}, BootstrapConfig(stats_flush_interval="1.5s")),
    ("tracing", {"envoy_tracing_json": json.dumps(TRACING)}, BootstrapConfig(tracing=TRACING)),
]


@pytest.mark.parametrize(("config", "expected"), [c[1:] for c in PARSE_CASES], ids=[c[0] for c in PARSE_CASES])
def test_parse_bootstrap_config(config, expected):
    assert parse_bootstrap_config(config, ENV) == expected


BAD_CASES = [
    ("template-is-refused", "envoy_bootstrap_json_tpl", '{"admin": {}}', "does not render Go templates"),
    ("telemetry-collector-is-refused", "envoy_telemetry_collector_bind_socket_dir", "/tmp/x", "not supported"),
    ("cluster-bad-json", "envoy_extra_static_clusters_json", '{"name": "a",}', "invalid JSON"),
    ("cluster-not-an-object", "envoy_extra_static_clusters_json", '"sds"', "item 1 is a str, not a JSON object"),
    ("cluster-given-as-a-map", "envoy_extra_static_clusters_json", {"name": "a"}, "want a string"),
    ("listener-bad-json", "envoy_extra_static_listeners_json", "{name: x}", "invalid JSON"),
    ("sinks-bad-json", "envoy_extra_stats_sinks_json", "[", "invalid JSON"),
    ("stats-config-a-list", "envoy_stats_config_json", "[]", "want one JSON object, got a list"),
    ("tracing-bad-json", "envoy_tracing_json", "{", "invalid JSON"),
    ("statsd-wrong-scheme", "envoy_statsd_url", "tcp://127.0.0.1:8125", "unsupported address protocol 'tcp'"),
    ("statsd-no-scheme", "envoy_statsd_url", "127.0.0.1:8125", "unsupported address protocol"),
    ("statsd-no-port", "envoy_statsd_url", "udp://127.0.0.1", "wants a host and a port"),
    ("statsd-bad-port", "envoy_statsd_url", "udp://127.0.0.1:99999", "cannot parse"),
    ("dogstatsd-unset-env", "envoy_dogstatsd_url", "$NOT_SET_ANYWHERE", "NOT_SET_ANYWHERE is not set"),
    ("dogstatsd-unix-no-path", "envoy_dogstatsd_url", "unix://", "wants a socket path"),
    ("prometheus-no-port", "envoy_prometheus_bind_addr", "0.0.0.0", "not host:port"),
    ("stats-bind-bad-port", "envoy_stats_bind_addr", "127.0.0.1:http", "not host:port"),
    ("stats-bind-bare-ipv6", "envoy_stats_bind_addr", "::1:9102", "in brackets"),
    ("tags-no-name", "envoy_stats_tags", ["=x"], "has no name"),
    ("tags-not-strings", "envoy_stats_tags", [1, 2], "want a list of name=value strings"),
    ("flush-go-duration", "envoy_stats_flush_interval", "1m", "not a duration in seconds"),
    ("flush-too-long", "envoy_stats_flush_interval", "301s", "out of Envoy's range"),
]


@pytest.mark.parametrize(("key", "value", "reason"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_a_malformed_key_is_refused_by_name(key, value, reason):
    with pytest.raises(InvalidInput) as caught:
        parse_bootstrap_config({key: value}, ENV)
    assert caught.value.field == key
    assert str(caught.value).startswith(f"Error reading Proxy.Config key {key}: ")
    assert reason in str(caught.value)


def test_every_documented_key_is_known():
    doc = (Path(__file__).parents[3] / "docs" / "envoy.md").read_text()
    assert [k for k in BOOTSTRAP_KEYS if f"`{k}`" not in doc] == []


def with_config(**config) -> BootstrapArgs:
    return dataclasses.replace(BASE, config=parse_bootstrap_config(config, ENV))


def names(resources: list[dict]) -> list[str]:
    return [r["name"] for r in resources]


def test_extra_clusters_follow_the_agent_cluster_and_extra_listeners_come_first():
    a = with_config(
        envoy_extra_static_clusters_json=f"{json.dumps(SDS)},{json.dumps(ZIPKIN)}",
        envoy_extra_static_listeners_json=json.dumps(ECHO), envoy_stats_bind_addr="127.0.0.1:9103",
        envoy_prometheus_bind_addr="127.0.0.1:9102")
    static = build_bootstrap(a)["static_resources"]
    assert names(static["clusters"]) == ["local_agent", "sds-server", "zipkin", "self_admin"]
    assert static["clusters"][1] == SDS
    assert names(static["listeners"]) == ["echo", "envoy_prometheus_metrics_listener", "envoy_metrics_listener"]


def test_the_stats_listener_serves_the_stats_prefix_only():
    listener = build_bootstrap(with_config(envoy_stats_bind_addr="127.0.0.1:9103"))["static_resources"]["listeners"][0]
    routes = listener["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"]
    assert routes[0] == {"match": {"prefix": "/stats"}, "route": {"cluster": "self_admin", "prefix_rewrite": "/stats"}}
    assert routes[1]["direct_response"]["status"] == 404


def test_an_extra_self_admin_cluster_replaces_ours():
    own = {**ZIPKIN, "name": "self_admin"}
    b = build_bootstrap(with_config(envoy_extra_static_clusters_json=json.dumps(own),
                                    envoy_stats_bind_addr="127.0.0.1:9103"))
    assert b["static_resources"]["clusters"][1:] == [own]


@pytest.mark.parametrize(("key", "value"), [
    ("envoy_extra_static_clusters_json", json.dumps({**SDS, "name": "local_agent"})),
    ("envoy_extra_static_clusters_json", json.dumps(SDS) + "," + json.dumps(SDS)),
    ("envoy_extra_static_listeners_json", json.dumps({**ECHO, "name": "envoy_metrics_listener"})),
], ids=["agent-cluster-name", "twice-the-same-cluster", "stats-listener-name"])
def test_a_name_clash_is_refused_naming_the_key(key, value):
    with pytest.raises(InvalidInput, match=f"key {key}: a (cluster|listener) named") as caught:
        build_bootstrap(with_config(**{key: value, "envoy_stats_bind_addr": "127.0.0.1:9103"}))
    assert caught.value.field == key


def test_stats_tags_come_first_then_the_source_tags_not_overridden():
    b = build_bootstrap(with_config(envoy_stats_tags="team=mesh,local_cluster=web-canary"))
    assert b["stats_config"] == {"use_all_default_tags": True, "stats_tags": [
        {"tag_name": "team", "fixed_value": "mesh"}, {"tag_name": "local_cluster", "fixed_value": "web-canary"},
        {"tag_name": "consul.source.service", "fixed_value": "web"},
        {"tag_name": "consul.source.namespace", "fixed_value": "default"},
        {"tag_name": "consul.source.partition", "fixed_value": "default"},
        {"tag_name": "consul.source.datacenter", "fixed_value": "dc1"}]}


def test_stats_config_json_replaces_the_tags_and_no_key_adds_no_stats_section():
    b = build_bootstrap(with_config(envoy_stats_tags="team=mesh", envoy_stats_config_json='{"stats_tags": []}'))
    assert b["stats_config"] == {"stats_tags": []}
    assert {"stats_config", "stats_sinks", "stats_flush_interval", "tracing"}.isdisjoint(build_bootstrap(BASE))


def test_sinks_flush_interval_and_tracing_land_at_the_top_level():
    b = build_bootstrap(with_config(envoy_statsd_url="udp://127.0.0.1:8125", envoy_stats_flush_interval="5s",
                                    envoy_tracing_json=json.dumps(TRACING)))
    assert b["stats_sinks"] == [STATSD] and b["stats_flush_interval"] == "5s" and b["tracing"] == TRACING


EVERYTHING = {
    "envoy_extra_static_clusters_json": f"{json.dumps(SDS)},{json.dumps(ZIPKIN)}",
    "envoy_extra_static_listeners_json": json.dumps(ECHO),
    "envoy_statsd_url": "udp://127.0.0.1:8125", "envoy_dogstatsd_url": "unix:///tmp/dd.sock",
    "envoy_extra_stats_sinks_json": json.dumps({**STATSD, "typed_config": {
        **STATSD["typed_config"], "prefix": "extra"}}),
    "envoy_stats_tags": ["team=mesh"], "envoy_stats_flush_interval": "2s", "envoy_tracing_json": json.dumps(TRACING),
    "envoy_prometheus_bind_addr": "127.0.0.1:9102", "envoy_stats_bind_addr": "127.0.0.1:9103",
}


@pytest.mark.parametrize("config", [EVERYTHING, {**EVERYTHING, "envoy_stats_config_json": '{"stats_tags": [], '
                                                 '"use_all_default_tags": false}'}],
                         ids=["every-key", "every-key-with-stats-config"])
def test_envoy_accepts_a_bootstrap_using_every_key(tmp_path, config):
    cfg = parse_bootstrap_config(config, ENV)
    a = dataclasses.replace(BASE, config=cfg)
    path = tmp_path / "bootstrap.json"
    path.write_text(json.dumps(build_bootstrap(a)))
    r = subprocess.run([ENVOY, "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_keys_compare_case_insensitively_as_every_proxy_config_key_does() -> None:
    found = parse_bootstrap_config({"Envoy_Extra_Static_Clusters_JSON": '{"name": "sds"}'}, {})
    assert [c["name"] for c in found.extra_clusters] == ["sds"]
    with pytest.raises(InvalidInput, match="envoy_bootstrap_json_tpl"):
        parse_bootstrap_config({"ENVOY_BOOTSTRAP_JSON_TPL": "{{ .x }}"}, {})
