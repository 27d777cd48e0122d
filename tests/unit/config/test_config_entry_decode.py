"""Config entries from Consul-shaped JSON/HCL data: decoding, normalising, validation,
and the JSON Consul prints back."""

from __future__ import annotations

from typing import Any

import pytest

from trellis.config.entry import codec
from trellis.config.entry.decode import decode_entry
from trellis.config.entry.model import Mesh, ProxyDefaults, ServiceDefaults, ServiceIntentions
from trellis.config.entry.validate import validate_entry
from trellis.errors import InvalidInput


def decoded(data: dict[str, Any]) -> Any:
    entry = decode_entry(data)
    validate_entry(entry)
    return entry


ACCEPTED = {
    "camel_case": ({"Kind": "service-defaults", "Name": "web", "Protocol": "HTTP",
                    "UpstreamConfig": {"Defaults": {"ConnectTimeoutMs": 5000}}},
                   lambda e: e.protocol == "http" and e.upstream_config.defaults.connect_timeout_ms == 5000),
    "snake_case": ({"kind": "service-defaults", "name": "web", "upstream_config": {
        "defaults": {"connect_timeout_ms": 5000, "limits": {"max_connections": 10},
                     "passive_health_check": {"interval": "10s", "max_failures": 3}}}},
                   lambda e: e.upstream_config.defaults.limits.max_connections == 10
                   and e.upstream_config.defaults.passive_health_check.interval == 10.0),
    "duration_as_nanoseconds": ({"Kind": "service-defaults", "Name": "web", "UpstreamConfig": {
        "Defaults": {"PassiveHealthCheck": {"Interval": 2_000_000_000}}}},
        lambda e: e.upstream_config.defaults.passive_health_check.interval == 2.0),
    "hcl_block_as_one_element_list": ({"Kind": "service-defaults", "Name": "web",
                                       "UpstreamConfig": [{"Defaults": [{"Protocol": "http"}]}]},
                                      lambda e: e.upstream_config.defaults.protocol == "http"),
    "camel_name_wins_over_alias": ({"Kind": "service-defaults", "Name": "web",
                                    "MaxInboundConnections": 5, "max_inbound_connections": 9},
                                   lambda e: e.max_inbound_connections == 5),
    "proxy_defaults_empty_name_is_global": ({"Kind": "proxy-defaults", "Config": {"protocol": "http"}},
                                            lambda e: e.name == "global" and e.config == {"protocol": "http"}),
    "free_map_not_translated": ({"Kind": "proxy-defaults", "Name": "global",
                                 "Config": {"local_connect_timeout_ms": 1000, "Envoy_Thing": "x"}},
                                lambda e: e.config == {"local_connect_timeout_ms": 1000, "Envoy_Thing": "x"}),
    "mesh_without_name": ({"Kind": "mesh", "TransparentProxy": {"MeshDestinationsOnly": True}},
                          lambda e: isinstance(e, Mesh) and e.transparent_proxy.mesh_destinations_only),
    "intentions_sorted_by_precedence": ({"Kind": "service-intentions", "Name": "db", "Sources": [
        {"Name": "*", "Action": "deny"}, {"Name": "web", "Action": "ALLOW"}]},
        lambda e: [(s.name, s.precedence, s.action) for s in e.sources] == [("web", 9, "allow"), ("*", 8, "deny")]),
    "methods_upper_cased": ({"Kind": "service-intentions", "Name": "db", "Sources": [
        {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/v1", "Methods": ["get"]}}]}]},
        lambda e: e.sources[0].permissions[0].http.methods == ("GET",)),
    "legacy_ids_dropped_on_config_writes": ({"Kind": "service-intentions", "Name": "db", "Sources": [
        {"Name": "web", "Action": "allow", "LegacyID": "x", "LegacyCreateTime": "2020-01-01T00:00:00Z"}]},
        lambda e: e.sources[0].legacy_id == "" and e.sources[0].legacy_create_time == ""),
    "indexes_ignored_on_input": ({"Kind": "service-defaults", "Name": "web", "CreateIndex": 4, "ModifyIndex": 9},
                                 lambda e: e.name == "web"),
    "namespaced_entry": ({"Kind": "service-defaults", "Name": "web", "Namespace": "team-a"},
                         lambda e: e.namespace == "team-a"),
}


@pytest.mark.parametrize(("data", "check"), list(ACCEPTED.values()), ids=list(ACCEPTED))
def test_accepted_entries(data, check):
    assert check(decoded(data))


REFUSED = {
    "no_kind": ({"Name": "web"}, "Payload does not contain a kind/Kind key at the top level"),
    "kind_not_string": ({"Kind": 5}, "Kind value in payload is not a string"),
    "unknown_kind": ({"Kind": "service-bogus", "Name": "x"}, "invalid config entry kind: service-bogus"),
    "unknown_key": ({"Kind": "service-defaults", "Name": "web", "Prtocol": "http"}, 'invalid config key "Prtocol"'),
    "unknown_nested_key": ({"Kind": "service-intentions", "Name": "db", "Sources": [{"Nmae": "web"}]},
                           'invalid config key "Sources[0].Nmae"'),
    "mesh_has_no_name": ({"Kind": "mesh", "Name": "mesh"}, 'invalid config key "Name"'),
    "wrong_type": ({"Kind": "service-defaults", "Name": "web", "MaxInboundConnections": "many"},
                   "MaxInboundConnections: expected a whole number"),
    "bad_duration": ({"Kind": "service-defaults", "Name": "web", "UpstreamConfig": {"Defaults": {
        "PassiveHealthCheck": {"Interval": "ten seconds"}}}}, "UpstreamConfig.Defaults.PassiveHealthCheck.Interval"),
    "bad_protocol": ({"Kind": "service-defaults", "Name": "web", "Protocol": "udp"}, "invalid value for protocol: udp"),
    "wildcard_service_defaults": ({"Kind": "service-defaults", "Name": "*"},
                                  "service-defaults name must be the name of a service, and not a wildcard"),
    "service_defaults_without_name": ({"Kind": "service-defaults"}, "Name is required"),
    "proxy_defaults_other_name": ({"Kind": "proxy-defaults", "Name": "local"},
                                  'invalid name ("local"), only "global" is supported'),
    "proxy_defaults_bad_protocol": ({"Kind": "proxy-defaults", "Config": {"protocol": "smtp"}},
                                    "invalid value for protocol: smtp"),
    "upstream_override_without_name": ({"Kind": "service-defaults", "Name": "web", "UpstreamConfig": {
        "Overrides": [{"Protocol": "http"}]}}, "error in upstream override for : Name is required"),
    "ejection_percent": ({"Kind": "service-defaults", "Name": "web", "UpstreamConfig": {"Defaults": {
        "PassiveHealthCheck": {"MaxEjectionPercent": 150}}}}, "max_ejection_percent must be a percentage"),
    "negative_limit": ({"Kind": "service-defaults", "Name": "web", "UpstreamConfig": {"Defaults": {
        "Limits": {"MaxConnections": -1}}}}, "max connections cannot be negative"),
    "mutual_tls_mode": ({"Kind": "service-defaults", "Name": "web", "MutualTLSMode": "loose"},
                        'Invalid MutualTLSMode "loose"'),
    "destination_and_upstreams": ({"Kind": "service-defaults", "Name": "web", "Destination": {
        "Addresses": ["1.2.3.4"], "Port": 443}, "UpstreamConfig": {}},
        "UpstreamConfig and Destination are mutually exclusive for service defaults"),
    "destination_port": ({"Kind": "service-defaults", "Name": "web", "Destination": {"Addresses": ["a.example"],
                                                                                    "Port": 0}},
                         "Invalid Port number 0"),
    "no_sources": ({"Kind": "service-intentions", "Name": "db", "Sources": []}, "At least one source is required"),
    "partial_wildcard": ({"Kind": "service-intentions", "Name": "db*", "Sources": [{"Name": "web", "Action": "allow"}]},
                         "Name: wildcard character '*' cannot be used with partial values"),
    "source_partial_wildcard": ({"Kind": "service-intentions", "Name": "db", "Sources": [
        {"Name": "w*", "Action": "allow"}]}, "Sources[0].Name: wildcard character '*' cannot be used with partial values"),
    "exact_after_wildcard_ns": ({"Kind": "service-intentions", "Name": "db", "Sources": [
        {"Name": "web", "Namespace": "*", "Action": "allow"}]},
        "Sources[0].Name: exact value cannot follow wildcard namespace"),
    "duplicate_source": ({"Kind": "service-intentions", "Name": "db", "Sources": [
        {"Name": "web", "Action": "allow"}, {"Name": "web", "Action": "deny"}]},
        'Sources[1] defines "web" more than once'),
    "action_missing": ({"Kind": "service-intentions", "Name": "db", "Sources": [{"Name": "web"}]},
                       "Sources[0].Action must be set to 'allow' or 'deny'"),
    "action_with_permissions": ({"Kind": "service-intentions", "Name": "db", "Sources": [
        {"Name": "web", "Action": "allow", "Permissions": [{"Action": "allow", "HTTP": {"PathExact": "/"}}]}]},
        "Sources[0].Action must be omitted if Permissions are specified"),
    "permissions_on_wildcard": ({"Kind": "service-intentions", "Name": "*", "Sources": [
        {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"PathExact": "/"}}]}]},
        "Sources[0].Permissions cannot be specified on intentions with wildcarded destinations"),
    "path_without_slash": ({"Kind": "service-intentions", "Name": "db", "Sources": [
        {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "v1"}}]}]},
        "Sources[0].Permissions[0].HTTP.PathPrefix doesn't start with '/'"),
    "two_paths": ({"Kind": "service-intentions", "Name": "db", "Sources": [
        {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/a", "PathExact": "/b"}}]}]},
        "should only contain at most one of PathExact, PathPrefix, or PathRegex"),
    "non_re2_regex": ({"Kind": "service-intentions", "Name": "db", "Sources": [
        {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"PathRegex": "(?=lookahead)"}}]}]},
        "Sources[0].Permissions[0].HTTP.PathRegex"),
    "bad_method": ({"Kind": "service-intentions", "Name": "db", "Sources": [
        {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"Methods": ["FETCH"]}}]}]},
        'contains an invalid method "FETCH"'),
    "header_two_matchers": ({"Kind": "service-intentions", "Name": "db", "Sources": [
        {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"Header": [
            {"Name": "x", "Exact": "a", "Prefix": "b"}]}}]}]},
        "should only contain one of Present, Exact, Prefix, Suffix, Contains, or Regex"),
    "ignore_case_with_regex": ({"Kind": "service-intentions", "Name": "db", "Sources": [
        {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"Header": [
            {"Name": "x", "Regex": "a.*", "IgnoreCase": True}]}}]}]},
        "should set one of Exact, Prefix, Suffix, or Contains when using IgnoreCase"),
    "empty_http": ({"Kind": "service-intentions", "Name": "db", "Sources": [
        {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {}}]}]}, "HTTP should not be empty"),
    "legacy_meta_on_config_write": ({"Kind": "service-intentions", "Name": "db", "Sources": [
        {"Name": "web", "Action": "allow", "LegacyMeta": {"a": "b"}}]}, "Sources[0].LegacyMeta must be omitted"),
    "meta_key_too_long": ({"Kind": "service-defaults", "Name": "web", "Meta": {"k" * 129: "v"}},
                          "exceeds maximum length 128"),
    "mesh_tls_version": ({"Kind": "mesh", "TLS": {"Incoming": {"TLSMinVersion": "TLSv9"}}},
                         "no matching TLS version found for TLSv9"),
}


@pytest.mark.parametrize(("data", "message"), list(REFUSED.values()), ids=list(REFUSED))
def test_refused_entries_name_the_problem(data, message):
    with pytest.raises(InvalidInput) as err:
        decoded(data)
    assert message in str(err.value)


OUTPUT = {
    "service_defaults_structs_always_printed": (
        {"Kind": "service-defaults", "Name": "web"},
        {"Name": "web", "Protocol": "", "TransparentProxy": {}, "MeshGateway": {}, "Expose": {}}),
    "upstream_peer_always_printed": (
        {"Kind": "service-defaults", "Name": "web", "Protocol": "http",
         "UpstreamConfig": {"Defaults": {"ConnectTimeoutMs": 5000, "PassiveHealthCheck": {"Interval": "10s"}}}},
        {"Name": "web", "Protocol": "http", "TransparentProxy": {}, "MeshGateway": {}, "Expose": {},
         "UpstreamConfig": {"Defaults": {"Peer": "", "ConnectTimeoutMs": 5000,
                                         "PassiveHealthCheck": {"Interval": 10_000_000_000}, "MeshGateway": {}}}}),
    "proxy_defaults_null_config": (
        {"Kind": "proxy-defaults"},
        {"Name": "global", "Config": None, "TransparentProxy": {}, "MeshGateway": {}, "Expose": {}, "AccessLogs": {}}),
    "intentions": (
        {"Kind": "service-intentions", "Name": "db", "Sources": [{"Name": "web", "Action": "allow"}]},
        {"Name": "db", "Sources": [{"Name": "web", "Action": "allow", "Precedence": 9, "Type": "consul"}]}),
    "namespace_only_outside_default": (
        {"Kind": "service-intentions", "Name": "db", "Namespace": "team-a",
         "Sources": [{"Name": "web", "Namespace": "team-b", "Action": "allow"}]},
        {"Name": "db", "Namespace": "team-a",
         "Sources": [{"Name": "web", "Namespace": "team-b", "Action": "allow", "Precedence": 9, "Type": "consul"}]}),
    "mesh": ({"Kind": "mesh"}, {"TransparentProxy": {"MeshDestinationsOnly": False}}),
}


@pytest.mark.parametrize(("data", "expected"), list(OUTPUT.values()), ids=list(OUTPUT))
def test_output_is_consuls_json(data, expected):
    assert codec.encode(decoded(data)) == expected


@pytest.mark.parametrize("cls", [ServiceDefaults, ProxyDefaults, ServiceIntentions, Mesh], ids=lambda c: c.KIND)
def test_encode_then_decode_gives_the_entry_back(cls):
    entry = decoded({"Kind": cls.KIND, **({} if cls is Mesh else {"Name": "global" if cls is ProxyDefaults else "web"}),
                     **({"Sources": [{"Name": "api", "Action": "deny"}]} if cls is ServiceIntentions else {})})
    again = decode_entry({"Kind": cls.KIND, **codec.encode(entry)})
    assert again == entry
