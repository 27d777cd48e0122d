"""The gateway and discovery-chain kinds alone: ingress-gateway, terminating-gateway,
service-resolver, service-router and service-splitter decoded from Consul-shaped JSON
(CamelCase or snake_case) and HCL, validated, and printed back in Consul's shape."""

from __future__ import annotations

from typing import Any

import pytest

from trellis.config import hcl
from trellis.config.entry import codec
from trellis.config.entry.decode import decode_entry
from trellis.config.entry.kinds import KINDS
from trellis.config.entry.validate import validate_entry
from trellis.errors import InvalidInput


def decoded(data: dict[str, Any]) -> Any:
    entry = decode_entry(data)
    validate_entry(entry)
    return entry


def consul_json(data: dict[str, Any]) -> dict[str, Any]:
    return codec.encode(decoded(data))


# -- valid entries print in Consul's shape -----------------------------------------------------------
OUTPUT = {
    "terminating_seed": (
        {"Kind": "terminating-gateway", "Name": "egress-gateway",
         "Services": [{"Name": "external-api", "SNI": "api.external.com"}]},
        {"Name": "egress-gateway", "Services": [{"Name": "external-api", "SNI": "api.external.com"}]}),
    "terminating_snake_case_tls": (
        {"kind": "terminating-gateway", "name": "tgw", "services": [
            {"name": "billing", "ca_file": "/ca.pem", "cert_file": "/c.pem", "key_file": "/k.pem", "sni": "b.example",
             "DisableAutoHostRewrite": True, "namespace": "team-a"}], "meta": {"owner": "ops"}},
        {"Name": "tgw", "Services": [{"Name": "billing", "CAFile": "/ca.pem", "CertFile": "/c.pem", "KeyFile": "/k.pem",
                                      "SNI": "b.example", "DisableAutoHostRewrite": True, "Namespace": "team-a"}],
         "Meta": {"owner": "ops"}}),
    "terminating_without_services": ({"Kind": "terminating-gateway", "Name": "tgw"}, {"Name": "tgw", "Services": None}),
    "ingress_minimal_defaults_tcp": (
        {"Kind": "ingress-gateway", "Name": "ig", "Listeners": [{"Port": 9000, "Services": [{"Name": "db"}]}]},
        {"Name": "ig", "TLS": {"Enabled": False},
         "Listeners": [{"Port": 9000, "Protocol": "tcp", "Services": [{"Name": "db", "Hosts": None}]}]}),
    "ingress_every_field": (
        {"Kind": "ingress-gateway", "Name": "ig",
         "TLS": {"Enabled": True, "TLSMinVersion": "TLSv1_2", "CipherSuites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]},
         "Listeners": [{"Port": 8443, "Protocol": "HTTP", "TLS": {"SDS": {"ClusterName": "sds", "CertResource": "c"}},
                        "Services": [{"Name": "web", "Hosts": ["web.example.com", "*.web.example.com"],
                                      "TLS": {"SDS": {"CertResource": "web-cert"}},
                                      "RequestHeaders": {"Add": {"x-a": "1"}, "Remove": ["x-b"]},
                                      "ResponseHeaders": {"Set": {"x-c": "2"}},
                                      "MaxConnections": 10, "PassiveHealthCheck": {"Interval": "5s", "MaxFailures": 3},
                                      "Meta": {"k": "v"}}]}],
         "Defaults": {"MaxConnections": 100, "PassiveHealthCheck": {"MaxEjectionPercent": 20}}},
        {"Name": "ig",
         "TLS": {"Enabled": True, "TLSMinVersion": "TLSv1_2", "CipherSuites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]},
         "Listeners": [{"Port": 8443, "Protocol": "http", "TLS": {"Enabled": False, "SDS": {"ClusterName": "sds",
                                                                                            "CertResource": "c"}},
                        "Services": [{"Name": "web", "Hosts": ["web.example.com", "*.web.example.com"],
                                      "TLS": {"SDS": {"CertResource": "web-cert"}},
                                      "RequestHeaders": {"Add": {"x-a": "1"}, "Remove": ["x-b"]},
                                      "ResponseHeaders": {"Set": {"x-c": "2"}},
                                      "MaxConnections": 10,
                                      "PassiveHealthCheck": {"Interval": 5_000_000_000, "MaxFailures": 3},
                                      "Meta": {"k": "v"}}]}],
         "Defaults": {"MaxConnections": 100, "MaxPendingRequests": 0, "MaxConcurrentRequests": 0,
                      "PassiveHealthCheck": {"MaxEjectionPercent": 20}}}),
    "ingress_snake_case": (
        {"kind": "ingress-gateway", "name": "ig", "tls": {"enabled": True, "tls_min_version": "TLSv1_3"},
         "listeners": [{"port": 8080, "protocol": "http", "services": [
             {"name": "api", "request_headers": {"set": {"a": "b"}}, "max_pending_requests": 5,
              "passive_health_check": {"max_failures": 2, "enforcing_consecutive_5xx": 50}}]}]},
        {"Name": "ig", "TLS": {"Enabled": True, "TLSMinVersion": "TLSv1_3"},
         "Listeners": [{"Port": 8080, "Protocol": "http", "Services": [
             {"Name": "api", "Hosts": None, "RequestHeaders": {"Set": {"a": "b"}}, "MaxPendingRequests": 5,
              "PassiveHealthCheck": {"MaxFailures": 2, "EnforcingConsecutive5xx": 50}}]}]}),
    "resolver_every_field": (
        {"Kind": "service-resolver", "Name": "web", "DefaultSubset": "v1",
         "Subsets": {"v2": {"Filter": "Service.Meta.version == v2"},
                     "v1": {"Filter": "Service.Meta.version == v1", "OnlyPassing": True}},
         "Failover": {"*": {"Datacenters": ["dc2", "dc3"]},
                      "v1": {"Targets": [{"Service": "web-backup", "Namespace": "team-b"}, {"Datacenter": "dc2"}]}},
         "ConnectTimeout": "15s", "RequestTimeout": 90_000_000_000,
         "LoadBalancer": {"Policy": "ring_hash", "RingHashConfig": {"MinimumRingSize": 1024, "MaximumRingSize": 8192},
                          "HashPolicies": [{"Field": "header", "FieldValue": "x-user", "Terminal": True},
                                           {"Field": "cookie", "FieldValue": "s", "CookieConfig": {"TTL": "1h",
                                                                                                  "Path": "/"}},
                                           {"SourceIP": True}]},
         "Meta": {"team": "web"}},
        {"Name": "web", "DefaultSubset": "v1",
         "Subsets": {"v1": {"Filter": "Service.Meta.version == v1", "OnlyPassing": True},
                     "v2": {"Filter": "Service.Meta.version == v2"}},
         "Failover": {"*": {"Datacenters": ["dc2", "dc3"]},
                      "v1": {"Targets": [{"Service": "web-backup", "Namespace": "team-b"}, {"Datacenter": "dc2"}]}},
         "ConnectTimeout": "15s", "RequestTimeout": "1m30s",
         "LoadBalancer": {"Policy": "ring_hash", "RingHashConfig": {"MinimumRingSize": 1024, "MaximumRingSize": 8192},
                          "HashPolicies": [{"Field": "header", "FieldValue": "x-user", "Terminal": True},
                                           {"Field": "cookie", "FieldValue": "s",
                                            "CookieConfig": {"TTL": 3_600_000_000_000, "Path": "/"}},
                                           {"SourceIP": True}]},
         "Meta": {"team": "web"}}),
    "resolver_snake_case_redirect": (
        {"kind": "service-resolver", "name": "old", "redirect": {"service": "new", "service_subset": "v2",
                                                                 "namespace": "team-a", "datacenter": "dc2"},
         "connect_timeout": "500ms", "load_balancer": {"policy": "least_request",
                                                       "least_request_config": {"choice_count": 3}}},
        {"Name": "old", "Redirect": {"Service": "new", "ServiceSubset": "v2", "Namespace": "team-a", "Datacenter": "dc2"},
         "ConnectTimeout": "500ms", "LoadBalancer": {"Policy": "least_request", "LeastRequestConfig": {"ChoiceCount": 3}}}),
    "resolver_empty": ({"Kind": "service-resolver", "Name": "web"}, {"Name": "web"}),
    "router_every_field": (
        {"Kind": "service-router", "Name": "web", "Routes": [
            {"Match": {"HTTP": {"PathPrefix": "/admin", "CaseInsensitive": True, "Methods": ["get", "POST"],
                                "Header": [{"Name": "x-debug", "Present": True, "Invert": True},
                                           {"Name": "x-v", "Regex": "v[0-9]+"}],
                                "QueryParam": [{"Name": "beta", "Exact": "1"}]}},
             "Destination": {"Service": "admin", "ServiceSubset": "v1", "Namespace": "ops", "PrefixRewrite": "/",
                             "RequestTimeout": "2s", "IdleTimeout": "30s", "NumRetries": 3,
                             "RetryOnConnectFailure": True, "RetryOn": ["5xx", "reset"],
                             "RetryOnStatusCodes": [503, 504], "RequestHeaders": {"Set": {"x-from": "web"}},
                             "ResponseHeaders": {"Remove": ["server"]}}},
            {"Match": {"HTTP": {"PathRegex": "/api/v[0-9]+/.*"}}},
            {"Destination": {"Service": "fallback"}}]},
        {"Name": "web", "Routes": [
            {"Match": {"HTTP": {"PathPrefix": "/admin", "CaseInsensitive": True,
                                "Header": [{"Name": "x-debug", "Present": True, "Invert": True},
                                           {"Name": "x-v", "Regex": "v[0-9]+"}],
                                "QueryParam": [{"Name": "beta", "Exact": "1"}], "Methods": ["GET", "POST"]}},
             "Destination": {"Service": "admin", "ServiceSubset": "v1", "Namespace": "ops", "PrefixRewrite": "/",
                             "RequestTimeout": "2s", "IdleTimeout": "30s", "NumRetries": 3,
                             "RetryOnConnectFailure": True, "RetryOn": ["5xx", "reset"],
                             "RetryOnStatusCodes": [503, 504], "RequestHeaders": {"Set": {"x-from": "web"}},
                             "ResponseHeaders": {"Remove": ["server"]}}},
            {"Match": {"HTTP": {"PathRegex": "/api/v[0-9]+/.*"}}},
            {"Destination": {"Service": "fallback"}}]}),
    "router_snake_case": (
        {"kind": "service-router", "name": "web", "routes": [
            {"match": {"http": {"path_exact": "/x", "query_param": [{"name": "q", "present": True}]}},
             "destination": {"service_subset": "v2", "prefix_rewrite": "/y", "num_retries": 2,
                             "retry_on_status_codes": [500], "retry_on_connect_failure": True}}]},
        {"Name": "web", "Routes": [
            {"Match": {"HTTP": {"PathExact": "/x", "QueryParam": [{"Name": "q", "Present": True}]}},
             "Destination": {"ServiceSubset": "v2", "PrefixRewrite": "/y", "NumRetries": 2,
                             "RetryOnConnectFailure": True, "RetryOnStatusCodes": [500]}}]}),
    "router_without_routes": ({"Kind": "service-router", "Name": "web"}, {"Name": "web", "Routes": None}),
    "splitter_weights_rounded_to_hundredths": (
        {"Kind": "service-splitter", "Name": "web", "Splits": [
            {"Weight": 33.333, "ServiceSubset": "v1"}, {"Weight": 33.333, "ServiceSubset": "v2"},
            {"Weight": 33.336, "Service": "web-next", "Namespace": "team-a",
             "RequestHeaders": {"Set": {"x-split": "next"}}, "ResponseHeaders": {"Add": {"x-seen": "1"}}}]},
        {"Name": "web", "Splits": [
            {"Weight": 33.33, "ServiceSubset": "v1"}, {"Weight": 33.33, "ServiceSubset": "v2"},
            {"Weight": 33.34, "Service": "web-next", "Namespace": "team-a",
             "RequestHeaders": {"Set": {"x-split": "next"}}, "ResponseHeaders": {"Add": {"x-seen": "1"}}}]}),
    "splitter_snake_case_whole_weights_print_whole": (
        {"kind": "service-splitter", "name": "web", "splits": [{"weight": 90, "service_subset": "v1"},
                                                               {"weight": "10", "service_subset": "v2"}]},
        {"Name": "web", "Splits": [{"Weight": 90, "ServiceSubset": "v1"}, {"Weight": 10, "ServiceSubset": "v2"}]}),
    "namespaced_entry_prints_its_namespace": (
        {"Kind": "service-splitter", "Name": "web", "Namespace": "team-a", "Splits": [{"Weight": 100}]},
        {"Name": "web", "Namespace": "team-a", "Splits": [{"Weight": 100}]}),
}


@pytest.mark.parametrize(("data", "expected"), list(OUTPUT.values()), ids=list(OUTPUT))
def test_output_is_consuls_json(data, expected):
    out = consul_json(data)
    assert out == expected
    assert list(out) == list(expected)  # Consul's field order


@pytest.mark.parametrize(("data", "expected"), list(OUTPUT.values()), ids=list(OUTPUT))
def test_printed_entry_decodes_to_the_same_entry(data, expected):
    entry = decoded(data)
    kind = data.get("Kind", data.get("kind"))
    assert decoded({"Kind": kind, **codec.encode(entry)}) == entry


def test_maps_print_sorted_and_whole_floats_without_a_fraction():
    out = consul_json({"Kind": "service-resolver", "Name": "web", "Subsets": {"b": {}, "a": {}}, "Meta": {"z": "1",
                                                                                                          "y": "2"}})
    assert list(out["Subsets"]) == ["a", "b"] and list(out["Meta"]) == ["y", "z"]


HCL = {
    "terminating_seed_file": ('''
        Kind = "terminating-gateway"
        Name = "egress-gateway"
        Services = [
          {
            Name = "external-api"
            SNI = "api.external.com"
          }
        ]''', lambda e: (e.name, e.services[0].name, e.services[0].sni) == ("egress-gateway", "external-api",
                                                                             "api.external.com")),
    "ingress_blocks": ('''
        Kind = "ingress-gateway"
        Name = "ingress-service"
        TLS { Enabled = true }
        Listeners {
          Port = 8080
          Protocol = "http"
          Services { Name = "web" }
          Services {
            Name = "api"
            Hosts = ["api.example.com"]
          }
        }
        Listeners {
          Port = 9090
          Services { Name = "db" }
        }''', lambda e: [(li.port, li.protocol, [s.name for s in li.services]) for li in e.listeners]
                   == [(8080, "http", ["web", "api"]), (9090, "tcp", ["db"])] and e.tls.enabled),
    "resolver_maps": ('''
        Kind = "service-resolver"
        Name = "web"
        DefaultSubset = "v1"
        Subsets = {
          v1 = { Filter = "Service.Meta.version == v1" }
          v2 = {
            Filter = "Service.Meta.version == v2"
            OnlyPassing = true
          }
        }
        Failover = {
          "*" = { Datacenters = ["dc2"] }
        }
        ConnectTimeout = "15s"''', lambda e: sorted(e.subsets) == ["v1", "v2"] and e.subsets["v2"].only_passing
                   and e.failover["*"].datacenters == ("dc2",) and e.connect_timeout == 15.0),
    "splitter": ('''
        Kind = "service-splitter"
        Name = "web"
        Splits = [
          { Weight = 90, ServiceSubset = "v1" },
          { Weight = 10, ServiceSubset = "v2" },
        ]''', lambda e: [s.weight for s in e.splits] == [90.0, 10.0]),
    "router": ('''
        Kind = "service-router"
        Name = "web"
        Routes = [
          {
            Match { HTTP { PathPrefix = "/admin" } }
            Destination { Service = "admin" }
          },
        ]''', lambda e: e.routes[0].match.http.path_prefix == "/admin" and e.routes[0].destination.service == "admin"),
}


@pytest.mark.parametrize(("text", "check"), list(HCL.values()), ids=list(HCL))
def test_hcl_files_decode(text, check):
    assert check(decoded(hcl.parse_text(text, filename="entry.hcl")))


# -- invalid entries are refused naming the field ------------------------------------------------------
def ig(*listeners: dict, **kw: Any) -> dict:
    return {"Kind": "ingress-gateway", "Name": "ig", "Listeners": list(listeners), **kw}


def li(port: int = 8080, protocol: str = "http", *services: dict, **kw: Any) -> dict:
    return {"Port": port, "Protocol": protocol, "Services": list(services) or [{"Name": "web"}], **kw}


def tgw(*services: dict) -> dict:
    return {"Kind": "terminating-gateway", "Name": "tgw", "Services": list(services)}


def res(**kw: Any) -> dict:
    return {"Kind": "service-resolver", "Name": "web", **kw}


def rt(*routes: dict) -> dict:
    return {"Kind": "service-router", "Name": "web", "Routes": list(routes)}


def match(**http: Any) -> dict:
    return {"Match": {"HTTP": http}}


def spl(*splits: dict) -> dict:
    return {"Kind": "service-splitter", "Name": "web", "Splits": list(splits)}


V1 = {"v1": {"Filter": "Service.Meta.version == v1"}}

# name -> (entry, the field named, a piece of the message)
REFUSED: dict[str, tuple[dict, str, str]] = {
    # decoding, for every kind
    "ingress_unknown_key": (ig(li(Bogus=1)), "Listeners[0].Bogus", 'invalid config key "Listeners[0].Bogus"'),
    "defaults_have_no_snake_case_alias": (ig(li(), Defaults={"max_connections": 5}), "Defaults.max_connections",
                                          'invalid config key "Defaults.max_connections"'),
    "resolver_unknown_nested_key": (res(Subsets={"v1": {"Filtre": "x"}}), "Subsets.v1.Filtre",
                                    'invalid config key "Subsets.v1.Filtre"'),
    "router_bad_duration": (rt({"Destination": {"RequestTimeout": "soon"}}), "Routes[0].Destination.RequestTimeout",
                            "Routes[0].Destination.RequestTimeout"),
    "splitter_weight_not_a_number": (spl({"Weight": "lots"}), "Splits[0].Weight", "expected a number"),
    "terminating_entry_without_name": ({"Kind": "terminating-gateway"}, "Name", "Name is required"),
    # ingress-gateway
    "ingress_port_twice": (ig(li(8080), li(8080)), "Listeners[1].Port", "port 8080 declared on two listeners"),
    "ingress_port_out_of_range": (ig(li(70000)), "Listeners[0].Port", "Listeners[0].Port 70000 is not a valid port"),
    "ingress_protocol": (ig(li(8080, "udp")), "Listeners[0].Protocol",
                         "protocol must be 'tcp', 'http', 'http2', or 'grpc'. 'udp' is an unsupported protocol"),
    "ingress_no_services": (ig({"Port": 8080, "Protocol": "http"}), "Listeners[0].Services",
                            "No service declared for listener with port 8080"),
    "ingress_tcp_two_services": (ig(li(9000, "tcp", {"Name": "a"}, {"Name": "b"})), "Listeners[0].Services",
                                 "Multiple services per listener are only supported for L7 protocols"),
    "ingress_tcp_wildcard": (ig(li(9000, "tcp", {"Name": "*"})), "Listeners[0].Services[0].Name",
                             "Wildcard service name is only valid for protocol = 'http' (listener on port 9000)"),
    "ingress_tcp_hosts": (ig(li(9000, "tcp", {"Name": "db", "Hosts": ["db.example.com"]})),
                          "Listeners[0].Services[0].Hosts",
                          "Associating hosts to a service is not supported for the tcp protocol"),
    "ingress_tcp_header_modifiers": (ig(li(9000, "tcp", {"Name": "db", "RequestHeaders": {"Set": {"a": "b"}}})),
                                     "Listeners[0].Services[0].RequestHeaders",
                                     'request headers only valid for http, http2 and grpc protocols (service "db" on '
                                     "listener on port 9000)"),
    "ingress_blank_service": (ig(li(8080, "http", {"Name": ""})), "Listeners[0].Services[0].Name",
                              "Service name cannot be blank (listener on port 8080)"),
    "ingress_wildcard_with_hosts": (ig(li(8080, "http", {"Name": "*", "Hosts": ["a.example"]})),
                                    "Listeners[0].Services[0].Hosts",
                                    "Associating hosts to a wildcard service is not supported"),
    "ingress_wildcard_namespace": (ig(li(8080, "http", {"Name": "web", "Namespace": "*"})),
                                   "Listeners[0].Services[0].Namespace",
                                   "Wildcard namespace is not supported for ingress services"),
    "ingress_service_twice": (ig(li(8080, "http", {"Name": "web"}, {"Name": "web"})), "Listeners[0].Services[1].Name",
                              "Service web cannot be added multiple times (listener on port 8080)"),
    "ingress_host_twice": (ig(li(8080, "http", {"Name": "a", "Hosts": ["x.example"]},
                                 {"Name": "b", "Hosts": ["x.example"]})), "Listeners[0].Services[1].Hosts",
                           "Hosts must be unique within a specific listener"),
    "ingress_host_wildcard_inside": (ig(li(8080, "http", {"Name": "a", "Hosts": ["a.*.example"]})),
                                     "Listeners[0].Services[0].Hosts",
                                     'Host "a.*.example" is not valid, a wildcard specifier is only allowed as the '
                                     "leftmost label"),
    "ingress_host_not_dns": (ig(li(8080, "http", {"Name": "a", "Hosts": ["a..example"]})),
                             "Listeners[0].Services[0].Hosts", 'Host "a..example" must be a valid DNS hostname'),
    "ingress_star_host_with_tls": (ig(li(8080, "http", {"Name": "a", "Hosts": ["*"]}), TLS={"Enabled": True}),
                                   "Listeners[0].Services[0].Hosts", "Host '*' is not allowed when TLS is enabled"),
    "ingress_tls_version": (ig(li(), TLS={"TLSMinVersion": "TLSv9"}), "TLS",
                            "no matching TLS version found for TLSv9"),
    "ingress_tls_max_below_min": (ig(li(), TLS={"TLSMinVersion": "TLSv1_3", "TLSMaxVersion": "TLSv1_2"}), "TLS",
                                  "configuring max version TLSv1_2 less than the configured min version TLSv1_3"),
    "ingress_listener_cipher_suites_with_tls13": (
        ig(li(TLS={"TLSMinVersion": "TLSv1_3", "CipherSuites": ["TLS_RSA_WITH_AES_128_CBC_SHA"]})), "Listeners[0].TLS",
        "configuring CipherSuites is only applicable to connections negotiated with TLS 1.2 or earlier"),
    "ingress_unknown_cipher_suite": (ig(li(), TLS={"CipherSuites": ["TLS_NOPE"]}), "TLS.CipherSuites",
                                     "unsupported cipher suite: TLS_NOPE"),
    "ingress_sds_cert_without_cluster": (ig(li(), TLS={"SDS": {"CertResource": "c"}}), "TLS.SDS.ClusterName",
                                         "TLS.SDS.ClusterName is required if CertResource is set"),
    "ingress_service_sds_without_hosts": (ig(li(8080, "http", {"Name": "web", "TLS": {"SDS": {
        "ClusterName": "sds", "CertResource": "c"}}})), "Listeners[0].Services[0].Hosts",
        "A service specifying TLS.SDS.CertResource must have at least one item in Hosts"),
    "ingress_own_certificate_shares_a_server_name": (
        ig(li(8080, "http", {"Name": "web", "Hosts": ["Shop.example.com:8443"]},
              {"Name": "shop", "Hosts": ["shop.example.com"], "TLS": {"SDS": {"ClusterName": "sds", "CertResource": "c"}}})),
        "Listeners[0].Services[1].Hosts",
        "host 'shop.example.com' of service \"shop\", which has its own TLS certificate, is the same TLS server name "
        "as a host of service \"web\"; clients could not be told apart by SNI"),
    "ingress_negative_limit": (ig(li(8080, "http", {"Name": "web", "MaxConnections": -1})),
                               "Listeners[0].Services[0].MaxConnections", "MaxConnections must be >= 0"),
    "ingress_defaults_ejection_percent": (ig(li(), Defaults={"PassiveHealthCheck": {"MaxEjectionPercent": 101}}),
                                          "Defaults.PassiveHealthCheck.MaxEjectionPercent",
                                          "must be a percentage between 0 and 100"),
    # terminating-gateway
    "terminating_blank_service": (tgw({"SNI": "x"}), "Services[0].Name", "Service name cannot be blank."),
    "terminating_service_twice": (tgw({"Name": "api"}, {"Name": "api"}), "Services[1].Name",
                                  'Service "api" was specified more than once within a namespace'),
    "terminating_cert_without_key": (tgw({"Name": "api", "CAFile": "ca", "CertFile": "c"}), "Services[0]",
                                     'Service "api" must have a CertFile, CAFile, and KeyFile specified for TLS '
                                     "origination"),
    "terminating_key_without_ca": (tgw({"Name": "api", "CertFile": "c", "KeyFile": "k"}), "Services[0]",
                                   "must have a CertFile, CAFile, and KeyFile"),
    "terminating_wildcard_namespace": (tgw({"Name": "api", "Namespace": "*"}), "Services[0].Namespace",
                                       "Wildcard namespace is not supported for terminating gateway services"),
    # service-resolver
    "resolver_subset_name": (res(Subsets={"V1": {}}), "Subsets.V1", 'Subset "V1" is invalid: must be 63 characters'),
    "resolver_subset_name_too_long": (res(Subsets={"v" * 64: {}}), f"Subsets.{'v' * 64}",
                                      "must be non-empty and 63 characters or fewer"),
    "resolver_filter_syntax": (res(Subsets={"v1": {"Filter": "random string"}}), "Subsets.v1.Filter",
                               'Filter for subset "v1" is not a valid expression: Failed to create boolean expression '
                               "evaluator"),
    "resolver_filter_selector": (res(Subsets={"v1": {"Filter": "Service.Bogus == 1"}}), "Subsets.v1.Filter",
                                 'Selector "Service.Bogus" is not valid'),
    "resolver_default_subset": (res(DefaultSubset="v9", Subsets=V1), "DefaultSubset",
                                'DefaultSubset "v9" is not a valid subset'),
    "resolver_redirect_and_failover": (res(Redirect={"Service": "b"}, Failover={"*": {"Service": "c"}}), "Redirect",
                                       "Redirect and Failover cannot both be set"),
    "resolver_redirect_empty": (res(Redirect={}), "Redirect", "Redirect is empty"),
    "resolver_redirect_subset_without_service": (res(Redirect={"ServiceSubset": "v1"}, Subsets=V1),
                                                 "Redirect.ServiceSubset",
                                                 "Redirect.ServiceSubset defined without Redirect.Service"),
    "resolver_redirect_to_own_missing_subset": (res(Redirect={"Service": "web", "ServiceSubset": "v2"}, Subsets=V1),
                                                "Redirect.ServiceSubset",
                                                'Redirect.ServiceSubset "v2" is not a valid subset of "web"'),
    "resolver_redirect_peer": (res(Redirect={"Service": "b", "Peer": "east"}), "Redirect.Peer",
                               "cluster peering is not supported by trellis"),
    "resolver_redirect_sameness_group": (res(Redirect={"SamenessGroup": "g"}), "Redirect.SamenessGroup",
                                         "Redirect: Setting SamenessGroup requires Consul Enterprise"),
    "resolver_redirect_partition": (res(Redirect={"Service": "b", "Partition": "p2"}), "Redirect.Partition",
                                    "Redirect: Setting Partition requires Consul Enterprise"),
    "resolver_failover_unknown_subset": (res(Failover={"v9": {"Service": "b"}}), 'Failover["v9"]',
                                         'Bad Failover["v9"]: not a valid subset'),
    "resolver_failover_empty": (res(Failover={"*": {}}), 'Failover["*"]',
                                'Bad Failover["*"]: one of Service, ServiceSubset, Namespace, Targets, SamenessGroup, '
                                "or Datacenters is required"),
    "resolver_failover_targets_and_datacenters": (res(Failover={"*": {"Datacenters": ["dc2"], "Targets": [
        {"Service": "b"}]}}), 'Failover["*"].Targets', 'Bad Failover["*"]: Targets cannot be set with Datacenters'),
    "resolver_failover_target_missing_own_subset": (res(Failover={"*": {"Targets": [{"ServiceSubset": "v7"}]}}),
                                                    'Failover["*"].Targets[0].ServiceSubset',
                                                    'Bad Failover["*"].Targets[0]: ServiceSubset "v7" is not a valid '
                                                    'subset of "web"'),
    "resolver_failover_target_partition_and_dc": (res(Failover={"*": {"Targets": [{"Partition": "default",
                                                                                   "Datacenter": "dc2"}]}}),
                                                  'Failover["*"].Targets[0]', "Partition cannot be set with Datacenter"),
    "resolver_failover_empty_datacenter": (res(Failover={"*": {"Datacenters": ["dc2", ""]}}),
                                           'Failover["*"].Datacenters',
                                           'Bad Failover["*"].Datacenters: found empty datacenter'),
    "resolver_failover_policy": (res(Failover={"*": {"Service": "b", "Policy": {"Mode": "order-by-locality"}}}),
                                 'Failover["*"].Policy', "Setting failover policies requires Consul Enterprise"),
    "resolver_failover_sameness_group": (res(Failover={"*": {"SamenessGroup": "g"}}), 'Failover["*"].SamenessGroup',
                                         "Setting SamenessGroup requires Consul Enterprise"),
    "resolver_negative_connect_timeout": (res(ConnectTimeout="-1s"), "ConnectTimeout",
                                          "Bad ConnectTimeout '-1s', must be >= 0"),
    "resolver_negative_request_timeout": (res(RequestTimeout="-2m"), "RequestTimeout",
                                          "Bad RequestTimeout '-2m0s', must be >= 0"),
    "resolver_lb_policy": (res(LoadBalancer={"Policy": "fastest"}), "LoadBalancer.Policy",
                           'Bad LoadBalancer policy: "fastest" is not supported'),
    "resolver_ring_config_for_maglev": (res(LoadBalancer={"Policy": "maglev", "RingHashConfig": {}}),
                                        "LoadBalancer.RingHashConfig",
                                        'RingHashConfig specified for incompatible load balancing policy "maglev"'),
    "resolver_least_request_config_for_random": (res(LoadBalancer={"Policy": "random", "LeastRequestConfig": {}}),
                                                 "LoadBalancer.LeastRequestConfig",
                                                 "LeastRequestConfig specified for incompatible load balancing policy"),
    "resolver_hash_policies_for_round_robin": (res(LoadBalancer={"Policy": "round_robin", "HashPolicies": [
        {"SourceIP": True}]}), "LoadBalancer.HashPolicies",
        'HashPolicies specified for non-hash-based Policy: "round_robin"'),
    "resolver_hash_field_unknown": (res(LoadBalancer={"Policy": "maglev", "HashPolicies": [
        {"Field": "body", "FieldValue": "x"}]}), "LoadBalancer.HashPolicies[0].Field",
        'Bad LoadBalancer HashPolicy[0]: "body" is not a supported field'),
    "resolver_hash_field_without_value": (res(LoadBalancer={"Policy": "maglev", "HashPolicies": [{"Field": "header"}]}),
                                          "LoadBalancer.HashPolicies[0].FieldValue",
                                          'Field "header" was specified without a FieldValue'),
    "resolver_hash_source_ip_and_field": (res(LoadBalancer={"Policy": "ring_hash", "HashPolicies": [
        {"SourceIP": True, "Field": "header", "FieldValue": "x"}]}), "LoadBalancer.HashPolicies[0]",
        'A single hash policy cannot hash both a source address and a "header"'),
    "resolver_cookie_config_for_header": (res(LoadBalancer={"Policy": "ring_hash", "HashPolicies": [
        {"Field": "header", "FieldValue": "x", "CookieConfig": {"Path": "/"}}]}),
        "LoadBalancer.HashPolicies[0].CookieConfig", 'cookie_config provided for "header"'),
    "resolver_session_cookie_with_ttl": (res(LoadBalancer={"Policy": "ring_hash", "HashPolicies": [
        {"Field": "cookie", "FieldValue": "s", "CookieConfig": {"Session": True, "TTL": "1m"}}]}),
        "LoadBalancer.HashPolicies[0].CookieConfig", "a session cookie cannot have an associated TTL"),
    "resolver_ring_min_above_max": (res(LoadBalancer={"Policy": "ring_hash", "RingHashConfig": {
        "MinimumRingSize": 4096, "MaximumRingSize": 1024}}), "LoadBalancer.RingHashConfig",
        "MinimumRingSize must not be greater than MaximumRingSize"),
    "resolver_choice_count_one": (res(LoadBalancer={"Policy": "least_request", "LeastRequestConfig": {"ChoiceCount": 1}}),
                                  "LoadBalancer.LeastRequestConfig.ChoiceCount", "ChoiceCount must be at least 2"),
    "resolver_prioritize_by_locality": (res(PrioritizeByLocality={"Mode": "failover"}), "PrioritizeByLocality",
                                        "Prioritize-by-locality requires Consul Enterprise"),
    # service-router
    "router_path_without_slash": (rt(match(PathExact="admin")), "Routes[0].Match.HTTP.PathExact",
                                  "Route[0] PathExact doesn't start with '/': \"admin\""),
    "router_two_paths": (rt(match(PathExact="/a", PathRegex="/b.*")), "Routes[0].Match.HTTP",
                         "Route[0] should only contain at most one of PathExact, PathPrefix, or PathRegex"),
    "router_regex_not_re2": (rt(match(PathRegex="(?=ahead)")), "Routes[0].Match.HTTP.PathRegex", "Route[0] PathRegex"),
    "router_header_without_name": (rt(match(Header=[{"Exact": "a"}])), "Routes[0].Match.HTTP.Header[0]",
                                   "Route[0] Header[0] missing required Name field"),
    "router_header_two_matchers": (rt(match(Header=[{"Name": "x", "Exact": "a", "Suffix": "b"}])),
                                   "Routes[0].Match.HTTP.Header[0]",
                                   "Route[0] Header[0] should only contain one of Present, Exact, Prefix, Suffix, "
                                   "or Regex"),
    "router_header_regex_not_re2": (rt(match(Header=[{"Name": "x", "Regex": "(a"}])),
                                    "Routes[0].Match.HTTP.Header[0].Regex", "Route[0] Header[0] Regex"),
    "router_query_param_no_matcher": (rt(match(QueryParam=[{"Name": "q"}])), "Routes[0].Match.HTTP.QueryParam[0]",
                                      "Route[0] QueryParam[0] should only contain one of Present, Exact, or Regex"),
    "router_query_param_without_name": (rt(match(QueryParam=[{"Exact": "1"}])), "Routes[0].Match.HTTP.QueryParam[0]",
                                        "Route[0] QueryParam[0] missing required Name field"),
    "router_bad_method": (rt(match(Methods=["FETCH"])), "Routes[0].Match.HTTP.Methods",
                          'Route[0] Methods contains an invalid method "FETCH"'),
    "router_method_twice": (rt(match(Methods=["get", "GET"])), "Routes[0].Match.HTTP.Methods",
                            'Route[0] Methods contains "GET" more than once'),
    "router_prefix_rewrite_needs_path": (rt({**match(PathRegex="/a.*"), "Destination": {"PrefixRewrite": "/"}}),
                                         "Routes[0].Destination.PrefixRewrite",
                                         "Route[0] cannot make use of PrefixRewrite without configuring either "
                                         "PathExact or PathPrefix"),
    "router_retry_condition": (rt({"Destination": {"RetryOn": ["sometimes"]}}), "Routes[0].Destination.RetryOn",
                               'Route[0] contains an invalid retry condition: "sometimes"'),
    "router_negative_timeout": (rt({"Destination": {"IdleTimeout": "-5s"}}), "Routes[0].Destination.IdleTimeout",
                                "Routes[0].Destination.IdleTimeout must be >= 0"),
    "router_negative_retries": (rt({"Destination": {"NumRetries": -1}}), "Routes[0].Destination.NumRetries",
                                "NumRetries must be >= 0"),
    "router_partition": (rt({"Destination": {"Partition": "other"}}), "Routes[0].Destination.Partition",
                         "Setting Partition requires Consul Enterprise"),
    "router_bad_destination_namespace": (rt({"Destination": {"Namespace": "not ok"}}), "Routes[0].Destination.Namespace",
                                         "is not a valid namespace name"),
    # service-splitter
    "splitter_no_splits": (spl(), "Splits", "no splits configured"),
    "splitter_sum_below_100": (spl({"Weight": 90, "ServiceSubset": "v1"}), "Splits",
                               "the sum of all split weights must be 100, not 90.000000"),
    "splitter_sum_rounded_away": (spl({"Weight": 33.333, "ServiceSubset": "a"}, {"Weight": 33.333, "ServiceSubset": "b"},
                                      {"Weight": 33.333, "ServiceSubset": "c"}), "Splits",
                                  "the sum of all split weights must be 100, not 99.989998"),
    "splitter_weight_above_100": (spl({"Weight": 150, "ServiceSubset": "a"}, {"Weight": -50, "ServiceSubset": "b"}),
                                  "Splits[0].Weight", "Splits[0].Weight must be between 0 and 100, not 150"),
    "splitter_negative_weight": (spl({"Weight": 100, "ServiceSubset": "a"}, {"Weight": -0.5, "ServiceSubset": "b"}),
                                 "Splits[1].Weight", "Splits[1].Weight must be between 0 and 100, not -0.5"),
    "splitter_same_destination_twice": (spl({"Weight": 50}, {"Weight": 50, "Service": "web"}), "Splits[1]",
                                        'split destination occurs more than once: service="web", subset="", '
                                        'namespace="default", partition="default"'),
    "splitter_partition": (spl({"Weight": 100, "Partition": "p2"}), "Splits[0].Partition",
                           "Setting Partition requires Consul Enterprise"),
    "splitter_empty_header_name": (spl({"Weight": 100, "RequestHeaders": {"Set": {"": "x"}}}),
                                   "Splits[0].RequestHeaders", "header names must not be empty"),
    "chain_entry_meta": (spl({"Weight": 100}) | {"Meta": {"k" * 129: "v"}}, "Meta", "exceeds maximum length 128"),
}


@pytest.mark.parametrize(("data", "field", "message"), list(REFUSED.values()), ids=list(REFUSED))
def test_refused_entries_name_the_field(data, field, message):
    with pytest.raises(InvalidInput) as err:
        decoded(data)
    assert message in str(err.value)
    assert err.value.field == field


@pytest.mark.parametrize("kind", ["ingress-gateway", "terminating-gateway", "service-resolver", "service-router",
                                  "service-splitter"])
def test_each_new_kind_is_registered_and_needs_a_name(kind):
    assert KINDS[kind].KIND == kind
    with pytest.raises(InvalidInput, match="Name is required"):
        decoded({"Kind": kind, **({"Splits": [{"Weight": 100}]} if kind == "service-splitter" else {})})
