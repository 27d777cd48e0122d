"""Service definitions: every shape the seed guide, py-consul and config files write."""

from __future__ import annotations

import json

import pytest

from trellis.catalog.definition import (
    ServiceDefinition,
    decode_service,
    decode_service_file,
    definition_warnings,
)
from trellis.catalog.errors import InvalidDefinition
from trellis.catalog.model import CheckType, ServiceAddress, ServiceKind, Weights
from trellis.config.hcl import parse_text

# --------------------------------------------------------------------------- the seed guide
# Every service registration JSON in /work/shared/seed, verbatim.

SEED_SIDECAR_REGISTRATION = """
{
  "service": {
    "name": "web",
    "port": 8080,
    "connect": {
      "sidecar_service": {
        "port": 20000,
        "check": {
          "name": "Connect Sidecar Health",
          "http": "http://localhost:20000/health",
          "interval": "10s"
        },
        "proxy": {
          "upstreams": [
            {
              "destination_name": "api",
              "local_bind_port": 9090
            }
          ]
        }
      }
    }
  }
}
"""
SEED_SIDECAR_CONFIGURATION = """
{
  "service": {
    "name": "web",
    "connect": {
      "sidecar_service": {
        "proxy": {
          "upstreams": [
            {
              "destination_name": "api",
              "local_bind_port": 9090,
              "datacenter": "dc1"
            },
            {
              "destination_name": "database",
              "local_bind_port": 9091,
              "datacenter": "dc2"
            }
          ],
          "config": {
            "envoy_prometheus_bind_addr": "0.0.0.0:9102",
            "protocol": "http"
          }
        }
      }
    }
  }
}
"""
SEED_INGRESS = """
{
  "service": {
    "name": "ingress-gateway",
    "port": 8080,
    "connect": {
      "gateway": {
        "proxy": {
          "envoy_gateway_bind_addresses": {
            "default": {
              "address": "0.0.0.0",
              "port": 8080
            }
          }
        }
      }
    }
  }
}
"""
SEED_INGRESS_LISTENERS = """
{
  "service": {
    "name": "ingress-gateway",
    "connect": {
      "gateway": {
        "proxy": {
          "envoy_gateway_bind_addresses": {
            "default": {
              "address": "0.0.0.0",
              "port": 8080
            }
          },
          "envoy_gateway_no_default_bind": true,
          "envoy_gateway_bind_tagged_addresses": {
            "lan": {
              "address": "0.0.0.0",
              "port": 8080
            }
          }
        }
      }
    }
  }
}
"""
SEED_EGRESS = """
{
  "service": {
    "name": "egress-gateway",
    "connect": {
      "gateway": {
        "proxy": {
          "envoy_gateway_bind_addresses": {
            "default": {
              "address": "0.0.0.0",
              "port": 8443
            }
          }
        }
      }
    }
  }
}
"""
SEED_UPSTREAM_DISCOVERY = """
{
  "service": {
    "name": "web",
    "connect": {
      "sidecar_service": {
        "proxy": {
          "upstreams": [
            {
              "destination_name": "api",
              "local_bind_port": 9090
            },
            {
              "destination_name": "database",
              "local_bind_port": 9091
            }
          ]
        }
      }
    }
  }
}
"""

SEED = {
    "sidecar-registration": SEED_SIDECAR_REGISTRATION,
    "sidecar-configuration": SEED_SIDECAR_CONFIGURATION,
    "ingress-gateway": SEED_INGRESS,
    "ingress-gateway-listeners": SEED_INGRESS_LISTENERS,
    "egress-gateway": SEED_EGRESS,
    "upstream-discovery": SEED_UPSTREAM_DISCOVERY,
}


@pytest.mark.parametrize("text", SEED.values(), ids=SEED.keys())
def test_every_seed_service_file_decodes(text: str) -> None:
    [defn] = decode_service_file(json.loads(text))
    assert defn.name in ("web", "ingress-gateway", "egress-gateway")


def test_seed_sidecar_registration_keeps_port_check_and_upstream() -> None:
    [web] = decode_service_file(json.loads(SEED_SIDECAR_REGISTRATION))
    assert (web.name, web.port) == ("web", 8080)
    sidecar = web.sidecar_service
    assert sidecar is not None and sidecar.port == 20000
    [check] = sidecar.checks
    assert (check.name, check.type, check.definition.http, check.definition.interval) == (
        "Connect Sidecar Health", CheckType.HTTP, "http://localhost:20000/health", 10.0)
    assert sidecar.proxy is not None
    [api] = sidecar.proxy.upstreams
    assert (api.destination_name, api.destination_type, api.local_bind_port) == ("api", "service", 9090)


def test_seed_sidecar_configuration_keeps_datacenters_and_proxy_config_verbatim() -> None:
    [web] = decode_service_file(json.loads(SEED_SIDECAR_CONFIGURATION))
    proxy = web.sidecar_service.proxy
    assert [(u.destination_name, u.local_bind_port, u.datacenter) for u in proxy.upstreams] == [
        ("api", 9090, "dc1"), ("database", 9091, "dc2")]
    assert proxy.config == {"envoy_prometheus_bind_addr": "0.0.0.0:9102", "protocol": "http"}


@pytest.mark.parametrize(
    "text, port, gateway",
    [
        (SEED_INGRESS, 8080, {"proxy": {"envoy_gateway_bind_addresses": {"default": {"address": "0.0.0.0",
                                                                                    "port": 8080}}}}),
        (SEED_INGRESS_LISTENERS, 0, {"proxy": {
            "envoy_gateway_bind_addresses": {"default": {"address": "0.0.0.0", "port": 8080}},
            "envoy_gateway_no_default_bind": True,
            "envoy_gateway_bind_tagged_addresses": {"lan": {"address": "0.0.0.0", "port": 8080}}}}),
        (SEED_EGRESS, 0, {"proxy": {"envoy_gateway_bind_addresses": {"default": {"address": "0.0.0.0",
                                                                                "port": 8443}}}}),
    ],
    ids=["ingress", "ingress-listeners", "egress"],
)
def test_seed_connect_gateway_becomes_the_gateways_proxy_config(text: str, port: int, gateway: dict) -> None:
    [defn] = decode_service_file(json.loads(text))
    assert defn.port == port
    assert defn.kind is ServiceKind.TYPICAL  # the kind comes from a config entry (catalog/gateway.py)
    assert defn.connect.gateway is True
    assert defn.proxy.config == gateway["proxy"]
    assert defn.sidecar_service is None


# --------------------------------------------------------------------------- HCL twins

SEED_HCL = {
    "sidecar-registration": (SEED_SIDECAR_REGISTRATION, """
        service {
          name = "web"
          port = 8080
          connect {
            sidecar_service {
              port = 20000
              check {
                name     = "Connect Sidecar Health"
                http     = "http://localhost:20000/health"
                interval = "10s"
              }
              proxy {
                upstreams {
                  destination_name = "api"
                  local_bind_port  = 9090
                }
              }
            }
          }
        }
    """),
    "sidecar-configuration": (SEED_SIDECAR_CONFIGURATION, """
        service {
          name = "web"
          connect {
            sidecar_service {
              proxy {
                upstreams = [
                  { destination_name = "api", local_bind_port = 9090, datacenter = "dc1" },
                  { destination_name = "database", local_bind_port = 9091, datacenter = "dc2" },
                ]
                config {
                  envoy_prometheus_bind_addr = "0.0.0.0:9102"
                  protocol                   = "http"
                }
              }
            }
          }
        }
    """),
    "upstream-blocks": (SEED_UPSTREAM_DISCOVERY, """
        service {
          name = "web"
          connect {
            sidecar_service {
              proxy {
                upstreams {
                  destination_name = "api"
                  local_bind_port  = 9090
                }
                upstreams {
                  destination_name = "database"
                  local_bind_port  = 9091
                }
              }
            }
          }
        }
    """),
    "ingress-gateway-listeners": (SEED_INGRESS_LISTENERS, """
        service {
          name = "ingress-gateway"
          connect {
            gateway {
              proxy {
                envoy_gateway_bind_addresses "default" {
                  address = "0.0.0.0"
                  port    = 8080
                }
                envoy_gateway_no_default_bind = true
                envoy_gateway_bind_tagged_addresses {
                  lan { address = "0.0.0.0", port = 8080 }
                }
              }
            }
          }
        }
    """),
}


@pytest.mark.parametrize("json_text, hcl_text", SEED_HCL.values(), ids=SEED_HCL.keys())
def test_hcl_twin_decodes_to_the_same_definition_as_json(json_text: str, hcl_text: str) -> None:
    from_json = decode_service_file(parse_text(json_text, filename="web.json"))
    from_hcl = decode_service_file(parse_text(hcl_text, filename="web.hcl"))
    assert from_hcl == from_json


def test_several_hcl_service_blocks_are_several_definitions() -> None:
    data = parse_text('service { name = "a" }\nservice { name = "b" }\n', filename="two.hcl")
    assert [d.name for d in decode_service_file(data)] == ["a", "b"]


# --------------------------------------------------------------------------- py-consul payloads
# consul.Agent.Service.register() sends lowercase keys; checks come from consul.Check.*.

PY_CONSUL = {
    "minimal": ({"name": "web"}, {"name": "web"}),
    "full": (
        {"name": "web", "id": "web-1", "address": "10.0.0.5", "port": 8080, "tags": ["v1", "primary"],
         "meta": {"version": "1.0"}, "enabletagoverride": True, "weights": {"Passing": 10, "Warning": 1},
         "tagged_addresses": {"lan": {"address": "10.0.0.5", "port": 8080}}},
        {"name": "web", "id": "web-1", "address": "10.0.0.5", "port": 8080, "tags": ("v1", "primary"),
         "meta": {"version": "1.0"}, "enable_tag_override": True, "weights": Weights(10, 1),
         "tagged_addresses": {"lan": ServiceAddress("10.0.0.5", 8080)}},
    ),
    "kind-proxy-socket-locality": (
        {"name": "web-proxy", "port": 21000, "Kind": "connect-proxy",
         "Proxy": {"DestinationServiceName": "web", "LocalServicePort": 8080},
         "SocketPath": "/tmp/web.sock", "Locality": {"Region": "us-west-1", "Zone": "us-west-1a"}},
        {"name": "web-proxy", "port": 21000, "kind": ServiceKind.CONNECT_PROXY, "socket_path": "/tmp/web.sock",
         "locality": {"region": "us-west-1", "zone": "us-west-1a"}},
    ),
    "connect-sidecar": ({"name": "web", "port": 80, "connect": {"sidecar_service": {}}}, {"name": "web", "port": 80}),
}


@pytest.mark.parametrize("body, expected", PY_CONSUL.values(), ids=PY_CONSUL.keys())
def test_py_consul_service_payloads(body: dict, expected: dict) -> None:
    defn = decode_service(body, origin="api")
    for attr, value in expected.items():
        assert getattr(defn, attr) == value, attr


PY_CONSUL_CHECKS = {
    "http": ({"http": "http://localhost:8080/health", "interval": "10s", "timeout": "1s",
              "DeregisterCriticalServiceAfter": "90m", "header": {"x-foo": ["bar", "baz"]}}, CheckType.HTTP),
    "tcp": ({"tcp": "localhost:5432", "interval": "10s"}, CheckType.TCP),
    "ttl": ({"ttl": "10s"}, CheckType.TTL),
    "script": ({"args": ["/bin/check", "-q"], "interval": "30s"}, CheckType.SCRIPT),
    "grpc": ({"grpc": "localhost:9000/health", "interval": "5s", "grpc_use_tls": True, "tls_skip_verify": True},
             CheckType.GRPC),
    "docker": ({"docker_container_id": "abc", "shell": "/bin/sh", "args": ["true"], "interval": "5s"},
               CheckType.DOCKER),
}


@pytest.mark.parametrize("check, kind", PY_CONSUL_CHECKS.values(), ids=PY_CONSUL_CHECKS.keys())
def test_py_consul_check_shapes_inside_a_service(check: dict, kind: CheckType) -> None:
    defn = decode_service({"name": "web", "checks": [check]}, origin="api")
    [spec] = defn.checks
    assert spec.type is kind


def test_py_consul_http_check_fields_land_in_the_definition() -> None:
    [spec] = decode_service({"name": "web", "checks": [PY_CONSUL_CHECKS["http"][0]]}, origin="api").checks
    d = spec.definition
    assert (d.http, d.interval, d.timeout, d.deregister_critical_service_after) == (
        "http://localhost:8080/health", 10.0, 1.0, 5400.0)
    assert d.header == {"x-foo": ("bar", "baz")}


# --------------------------------------------------------------------------- key spellings

SPELLINGS = {
    "service-snake-vs-camel": (
        {"Name": "web", "EnableTagOverride": True, "TaggedAddresses": {"lan": {"Address": "10.0.0.1", "Port": 1}},
         "SocketPath": "/s"},
        {"name": "web", "enable_tag_override": True, "tagged_addresses": {"lan": {"address": "10.0.0.1", "port": 1}},
         "socket_path": "/s"},
    ),
    "service-lowercase-go-names": (
        {"Name": "web", "EnableTagOverride": True, "TaggedAddresses": {"lan": {"Address": "10.0.0.1"}}},
        {"NAME": "web", "enabletagoverride": True, "taggedaddresses": {"lan": {"ADDRESS": "10.0.0.1"}}},
    ),
    "connect-and-sidecar": (
        {"Name": "web", "Connect": {"SidecarService": {"Port": 1}}},
        {"name": "web", "connect": {"sidecar_service": {"port": 1}}},
    ),
    "proxy-and-upstreams": (
        {"Name": "p", "Kind": "connect-proxy", "Port": 1, "Proxy": {
            "DestinationServiceName": "web", "DestinationServiceID": "web-1", "LocalServiceAddress": "127.0.0.1",
            "LocalServicePort": 8080, "MeshGateway": {"Mode": "local"}, "TransparentProxy": {"OutboundListenerPort": 1},
            "Upstreams": [{"DestinationName": "db", "DestinationType": "service", "LocalBindPort": 9191,
                           "LocalBindAddress": "127.0.0.2", "MeshGateway": {"Mode": "remote"}}],
            "Expose": {"Checks": True, "Paths": [{"ListenerPort": 21500, "Path": "/m", "LocalPathPort": 8080}]}}},
        {"name": "p", "kind": "connect-proxy", "port": 1, "proxy": {
            "destination_service_name": "web", "destination_service_id": "web-1",
            "local_service_address": "127.0.0.1", "local_service_port": 8080, "mesh_gateway": {"mode": "local"},
            "transparent_proxy": {"outbound_listener_port": 1},
            "upstreams": [{"destination_name": "db", "destination_type": "service", "local_bind_port": 9191,
                           "local_bind_address": "127.0.0.2", "mesh_gateway": {"mode": "remote"}}],
            "expose": {"checks": True, "paths": [{"listener_port": 21500, "path": "/m", "local_path_port": 8080}]}}},
    ),
    "checks": (
        {"Name": "web", "Checks": [{"CheckID": "c", "DeregisterCriticalServiceAfter": "2m", "TLSSkipVerify": True,
                                    "TLSServerName": "x", "HTTP": "http://x", "Interval": "1s"},
                                   {"DockerContainerID": "d", "ScriptArgs": ["a"], "Interval": "1s"}]},
        {"name": "web", "checks": [{"check_id": "c", "deregister_critical_service_after": "2m",
                                    "tls_skip_verify": True, "tls_server_name": "x", "http": "http://x",
                                    "interval": "1s"},
                                   {"docker_container_id": "d", "script_args": ["a"], "interval": "1s"}]},
    ),
}


@pytest.mark.parametrize("origin", ["api", "config"])
@pytest.mark.parametrize("camel, snake", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_go_names_and_snake_case_decode_alike(camel: dict, snake: dict, origin: str) -> None:
    assert decode_service(camel, origin=origin) == decode_service(snake, origin=origin)


def test_go_spelling_wins_when_both_spellings_are_sent() -> None:
    defn = decode_service({"Name": "web", "enable_tag_override": False, "EnableTagOverride": True}, origin="api")
    assert defn.enable_tag_override is True
    defn = decode_service({"Name": "web", "EnableTagOverride": True, "enable_tag_override": False}, origin="api")
    assert defn.enable_tag_override is True


def test_free_form_maps_keep_their_keys_verbatim() -> None:
    defn = decode_service({
        "Name": "web",
        "Meta": {"Build_ID": "7", "env": "prod"},
        "TaggedAddresses": {"LAN_custom": {"Address": "10.0.0.1", "Port": 5}},
        "Checks": [{"HTTP": "http://x", "Interval": "1s", "Header": {"X-Trace": ["on"]}}],
        "Connect": {"SidecarService": {"Proxy": {
            "Config": {"Envoy_Extra": {"NestedKey": 1}, "protocol": "http"},
            "Upstreams": [{"DestinationName": "db", "LocalBindPort": 1, "Config": {"ConnectTimeoutMs": 5}}]}}},
    }, origin="api")
    assert defn.meta == {"Build_ID": "7", "env": "prod"}
    assert set(defn.tagged_addresses) == {"LAN_custom"}
    assert defn.checks[0].definition.header == {"X-Trace": ("on",)}
    proxy = defn.sidecar_service.proxy
    assert proxy.config == {"Envoy_Extra": {"NestedKey": 1}, "protocol": "http"}
    assert proxy.upstreams[0].config == {"ConnectTimeoutMs": 5}


def test_null_means_not_given() -> None:
    defn = decode_service({"Name": "web", "Tags": None, "Port": None, "Check": None, "Connect": None},
                          origin="api")
    assert defn == ServiceDefinition(name="web")


def test_an_empty_check_object_is_ignored_as_in_consul() -> None:
    assert decode_service({"Name": "web", "Check": {}}, origin="api").checks == ()


def test_check_comes_before_checks() -> None:
    defn = decode_service({"Name": "web", "Checks": [{"TTL": "2s"}], "Check": {"TTL": "1s"}}, origin="api")
    assert [c.definition.ttl for c in defn.checks] == [1.0, 2.0]


def test_namespace_is_accepted() -> None:
    assert decode_service({"Name": "web", "Namespace": "team-a"}, origin="api").namespace == "team-a"


def test_nested_proxy_objects_are_stored_with_canonical_snake_keys() -> None:
    defn = decode_service({"Name": "p", "Kind": "connect-proxy", "Port": 1, "Proxy": {
        "DestinationServiceName": "web",
        "AccessLogs": {"Enabled": True, "Type": "file", "Path": "/tmp/a.log"},
        "EnvoyExtensions": [{"Name": "builtin/lua", "Arguments": {"Script": "x"}}],
    }}, origin="api")
    assert defn.proxy.access_logs == {"enabled": True, "type": "file", "path": "/tmp/a.log"}
    assert defn.proxy.envoy_extensions == ({"name": "builtin/lua", "arguments": {"Script": "x"}},)


# --------------------------------------------------------------------------- unknown keys

UNKNOWN_API = {
    "service": ({"Name": "web", "xyz": 1}, "xyz"),
    "connect": ({"Name": "web", "Connect": {"Natve": True}}, "Natve"),
    "sidecar": ({"Name": "web", "Connect": {"SidecarService": {"foo": 1}}}, "foo"),
    "proxy": ({"Name": "p", "Kind": "connect-proxy", "Proxy": {"Destination": "web"}}, "Destination"),
    "upstream": ({"Name": "web", "Connect": {"SidecarService": {"Proxy": {"Upstreams": [
        {"DestinationName": "db", "LocalBindPort": 1, "Bind": 2}]}}}}, "Bind"),
    "check": ({"Name": "web", "Check": {"TTL": "1s", "Script": "x"}}, "Script"),
    "checks-item": ({"Name": "web", "Checks": [{"TTL": "1s"}, {"TTL": "1s", "Foo": 1}]}, "Foo"),
    "check-id-spelling": ({"Name": "web", "Checks": [{"ID": "x", "TTL": "1s"}]}, "ID"),
    "weights": ({"Name": "web", "Weights": {"Passing": 1, "Critical": 0}}, "Critical"),
    "tagged-address": ({"Name": "web", "TaggedAddresses": {"lan": {"Addr": "x"}}}, "Addr"),
    "mesh-gateway": ({"Name": "p", "Kind": "connect-proxy", "Proxy": {"MeshGateway": {"mode": "local", "x": 1}}},
                     "x"),
    "expose-path": ({"Name": "p", "Kind": "connect-proxy", "Proxy": {"Expose": {"Paths": [{"Port": 1}]}}}, "Port"),
    "locality": ({"Name": "web", "Locality": {"Region": "r", "Rack": "x"}}, "Rack"),
    "empty-check-with-unknown-key": ({"Name": "web", "Check": {"Foo": None}}, "Foo"),
}


@pytest.mark.parametrize("body, key", UNKNOWN_API.values(), ids=UNKNOWN_API.keys())
def test_unknown_keys_are_rejected_with_consuls_text(body: dict, key: str) -> None:
    with pytest.raises(InvalidDefinition) as err:
        decode_service(body, origin="api")
    assert str(err.value) == f'Request decode failed: json: unknown field "{key}"'


UNKNOWN_CONFIG = {
    "service": ({"name": "web", "portt": 1}, 'service: unknown field "portt"'),
    "sidecar": ({"name": "web", "connect": {"sidecar_service": {"foo": 1}}},
                'service.connect.sidecar_service: unknown field "foo"'),
    "upstream": ({"name": "web", "connect": {"sidecar_service": {"proxy": {"upstreams": [
        {"destination_name": "a", "local_bind_port": 1}, {"destination_name": "b", "bind_port": 2}]}}}},
        'service.connect.sidecar_service.proxy.upstreams[1]: unknown field "bind_port"'),
    "check": ({"name": "web", "checks": [{"ttl": "1s", "intervall": "1s"}]},
              'service.checks[0]: unknown field "intervall"'),
}


@pytest.mark.parametrize("body, message", UNKNOWN_CONFIG.values(), ids=UNKNOWN_CONFIG.keys())
def test_unknown_keys_in_config_files_name_the_key_path(body: dict, message: str) -> None:
    with pytest.raises(InvalidDefinition) as err:
        decode_service(body, origin="config")
    assert str(err.value) == message


def test_config_path_can_be_given_for_a_services_list() -> None:
    data = {"services": [{"name": "ok"}, {"name": "web", "connect": {"sidecar_service": {"foo": 1}}}]}
    with pytest.raises(InvalidDefinition) as err:
        decode_service_file(data)
    assert str(err.value) == 'services[1].connect.sidecar_service: unknown field "foo"'


# --------------------------------------------------------------------------- wrong types

BAD_TYPES_API = {
    "port-string": ({"Name": "web", "Port": "abc"},
                    "Request decode failed: json: cannot unmarshal string into Go struct field "
                    "ServiceDefinition.Port of type int"),
    "port-fraction": ({"Name": "web", "Port": 80.5},
                      "Request decode failed: json: cannot unmarshal number 80.5 into Go struct field "
                      "ServiceDefinition.Port of type int"),
    "tags-not-a-list": ({"Name": "web", "Tags": "a,b"},
                        "Request decode failed: json: cannot unmarshal string into Go struct field "
                        "ServiceDefinition.Tags of type []string"),
    "meta-number": ({"Name": "web", "Meta": {"v": 1}},
                    "Request decode failed: json: cannot unmarshal number 1 into Go struct field "
                    "ServiceDefinition.Meta of type string"),
    "name-number": ({"Name": 5},
                    "Request decode failed: json: cannot unmarshal number 5 into Go struct field "
                    "ServiceDefinition.Name of type string"),
    "bool-as-string": ({"Name": "web", "EnableTagOverride": "yes"},
                       "Request decode failed: json: cannot unmarshal string into Go struct field "
                       "ServiceDefinition.EnableTagOverride of type bool"),
    "proxy-not-object": ({"Name": "web", "Proxy": []},
                         "Request decode failed: json: cannot unmarshal array into Go struct field "
                         "ServiceDefinition.Proxy of type structs.ConnectProxyConfig"),
    "body-not-object": (["web"], "Request decode failed: json: cannot unmarshal array into Go value of type "
                                 "structs.ServiceDefinition"),
    "bad-duration": ({"Name": "web", "Check": {"TTL": "ten seconds"}},
                     'Request decode failed: time: invalid duration "ten seconds"'),
    "upstream-port-string": ({"Name": "web", "Connect": {"SidecarService": {"Proxy": {"Upstreams": [
        {"DestinationName": "db", "LocalBindPort": "9191"}]}}}},
        "Request decode failed: json: cannot unmarshal string into Go struct field Upstream.LocalBindPort of type int"),
}


@pytest.mark.parametrize("body, message", BAD_TYPES_API.values(), ids=BAD_TYPES_API.keys())
def test_wrong_types_name_the_field(body: object, message: str) -> None:
    with pytest.raises(InvalidDefinition) as err:
        decode_service(body, origin="api")  # type: ignore[arg-type]
    assert str(err.value) == message


BAD_TYPES_CONFIG = {
    "port": ({"name": "web", "port": "abc"}, 'service.port: expected an integer, got string "abc"'),
    "tags": ({"name": "web", "tags": "a"}, 'service.tags: expected a list of strings, got string "a"'),
    "tag-item": ({"name": "web", "tags": ["a", 1]}, "service.tags[1]: expected a string, got number 1"),
    "meta-value": ({"name": "web", "meta": {"v": True}}, 'service.meta["v"]: expected a string, got bool true'),
    "interval": ({"name": "web", "check": {"ttl": "5x"}}, 'service.check.ttl: time: unknown unit "x" in duration "5x"'),
}


@pytest.mark.parametrize("body, message", BAD_TYPES_CONFIG.values(), ids=BAD_TYPES_CONFIG.keys())
def test_wrong_types_in_config_files_name_the_key_path(body: dict, message: str) -> None:
    with pytest.raises(InvalidDefinition) as err:
        decode_service(body, origin="config")
    assert str(err.value) == message


def test_integral_floats_are_accepted_as_integers() -> None:
    assert decode_service({"Name": "web", "Port": 8080.0}, origin="api").port == 8080


# --------------------------------------------------------------------------- validation

VALIDATION = {
    "missing-name": ({"Port": 80}, "Missing service name"),
    "empty-name": ({"Name": ""}, "Missing service name"),
    "any-address-v4": ({"Name": "web", "Address": "0.0.0.0"}, "Invalid service address"),
    "any-address-v6": ({"Name": "web", "Address": "::"}, "Invalid service address"),
    "port-too-big": ({"Name": "web", "Port": 65536}, "Invalid port 65536: must be between 0 and 65535"),
    "port-negative": ({"Name": "web", "Port": -1}, "Invalid port -1: must be between 0 and 65535"),
    "unknown-kind": ({"Name": "web", "Kind": "sidecar"},
                     'Invalid service kind "sidecar": must be one of "", "connect-proxy", "mesh-gateway", '
                     '"terminating-gateway", "ingress-gateway", "api-gateway"'),
    "weights-passing": ({"Name": "web", "Weights": {"Passing": 0, "Warning": 1}},
                        "Invalid Weights: Passing must be greater than 0"),
    "weights-warning": ({"Name": "web", "Weights": {"Passing": 1, "Warning": -1}},
                        "Invalid Weights: Warning must be greater or equal than 0"),
    "weights-range": ({"Name": "web", "Weights": {"Passing": 70000, "Warning": 1}},
                      "Invalid Weights: DNS Weight must be between 0 and 65535"),
    "meta-reserved": ({"Name": "web", "Meta": {"consul-version": "1"}},
                      "Invalid Service Meta: Couldn't load metadata pair ('consul-version', '1'): "
                      "Key prefix 'consul-' is reserved for internal use"),
    "meta-key-chars": ({"Name": "web", "Meta": {"a.b": "1"}},
                       "Invalid Service Meta: Couldn't load metadata pair ('a.b', '1'): Key contains invalid characters"),
    "meta-key-blank": ({"Name": "web", "Meta": {"": "1"}},
                       "Invalid Service Meta: Couldn't load metadata pair ('', '1'): Key cannot be blank"),
    "meta-key-long": ({"Name": "web", "Meta": {"k" * 129: "1"}},
                      f"Invalid Service Meta: Couldn't load metadata pair ('{'k' * 129}', '1'): "
                      "Key is too long (limit: 128 characters)"),
    "meta-value-long": ({"Name": "web", "Meta": {"k": "v" * 513}},
                        f"Invalid Service Meta: Couldn't load metadata pair ('k', '{'v' * 513}'): "
                        "Value is too long (limit: 512 characters)"),
    "meta-too-many": ({"Name": "web", "Meta": {f"k{i}": "v" for i in range(65)}},
                      "Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs"),
    "proxy-without-destination-or-port": (
        {"Name": "p", "Kind": "connect-proxy"},
        "Validation failed: 2 errors occurred:\n\t* Port or SocketPath must be set for a connect-proxy\n"
        "\t* Proxy.DestinationServiceName must be non-empty for Connect proxy services\n\n"),
    "proxy-wildcard-destination": (
        {"Name": "p", "Kind": "connect-proxy", "Port": 1, "Proxy": {"DestinationServiceName": "*"}},
        "Validation failed: 1 error occurred:\n\t* Proxy.DestinationServiceName must not be a wildcard for "
        "Connect proxy services\n\n"),
    "proxy-native": (
        {"Name": "p", "Kind": "connect-proxy", "Port": 1, "Proxy": {"DestinationServiceName": "web"},
         "Connect": {"Native": True}},
        "Validation failed: 1 error occurred:\n\t* A Proxy cannot also be Connect Native, only typical services\n\n"),
    "proxy-upstream-duplicate": (
        {"Name": "p", "Kind": "connect-proxy", "Port": 1, "Proxy": {"DestinationServiceName": "web", "Upstreams": [
            {"DestinationName": "db", "LocalBindPort": 1}, {"DestinationName": "db", "LocalBindPort": 2}]}},
        'Validation failed: 1 error occurred:\n\t* upstreams cannot contain duplicates of [type="service", '
        'name="db", partition="", namespace="", peer="", datacenter=""]\n\n'),
    "proxy-upstream-bind-clash": (
        {"Name": "p", "Kind": "connect-proxy", "Port": 1, "Proxy": {"DestinationServiceName": "web", "Upstreams": [
            {"DestinationName": "db", "LocalBindPort": 9000}, {"DestinationName": "api", "LocalBindPort": 9000}]}},
        "Validation failed: 1 error occurred:\n\t* upstreams cannot contain duplicates by local bind address and "
        'port or unix path; "127.0.0.1:9000" is specified twice\n\n'),
    "proxy-upstream-no-port": (
        {"Name": "p", "Kind": "connect-proxy", "Port": 1, "Proxy": {"DestinationServiceName": "web", "Upstreams": [
            {"DestinationName": "db"}]}},
        "Validation failed: 1 error occurred:\n\t* upstream local bind port or local socket path must be defined "
        "and nonzero\n\n"),
    "proxy-upstream-peer-and-dc": (
        {"Name": "p", "Kind": "connect-proxy", "Port": 1, "Proxy": {"DestinationServiceName": "web", "Upstreams": [
            {"DestinationName": "db", "DestinationPeer": "p", "Datacenter": "dc2", "LocalBindPort": 1}]}},
        "Validation failed: 1 error occurred:\n\t* upstream cannot specify both destination peer and datacenter\n\n"),
    "gateway-needs-port": (
        {"Name": "tgw", "Kind": "terminating-gateway"},
        "Validation failed: 1 error occurred:\n\t* Port must be non-zero for a terminating-gateway\n\n"),
    "gateway-with-sidecar": (
        {"Name": "mgw", "Kind": "mesh-gateway", "Port": 8443, "Connect": {"SidecarService": {}}},
        "Validation failed: 1 error occurred:\n\t* A mesh-gateway cannot have a sidecar service defined\n\n"),
    "gateway-with-upstreams": (
        {"Name": "igw", "Kind": "ingress-gateway", "Proxy": {"Upstreams": [{"DestinationName": "a",
                                                                             "LocalBindPort": 1}]}},
        "Validation failed: 1 error occurred:\n\t* The Proxy.Upstreams configuration is invalid for a "
        "ingress-gateway\n\n"),
    "sidecar-with-id": (
        {"Name": "web", "Connect": {"SidecarService": {"ID": "mine"}}},
        "Validation failed: 1 error occurred:\n\t* A SidecarService cannot specify an ID as this is managed by "
        "the agent\n\n"),
    "nested-sidecar": (
        {"Name": "web", "Connect": {"SidecarService": {"Connect": {"SidecarService": {}}}}},
        "Validation failed: 1 error occurred:\n\t* A SidecarService cannot have a nested SidecarService\n\n"),
    "native-without-port": (
        {"Name": "web", "Connect": {"Native": True}},
        "Validation failed: 1 error occurred:\n\t* Port or SocketPath must be set for a Connect native service.\n\n"),
    "bad-check": ({"Name": "web", "Check": {"HTTP": "http://x"}},
                  "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"),
    "check-with-nothing-set": ({"Name": "web", "Checks": [{"Name": "what"}]},
                               "Invalid check: TTL must be > 0 for TTL checks"),
    "bad-status": ({"Name": "web", "Check": {"TTL": "10s", "Status": "ok"}},
                   "Status for checks must 'passing', 'warning', 'critical'"),
    "bad-sidecar-check": ({"Name": "web", "Connect": {"SidecarService": {"Check": {"TCP": "x:1"}}}},
                          "Invalid check in sidecar_service: Interval must be > 0 for Script, HTTP, H2PING, TCP, "
                          "UDP or OSService checks"),
    "bad-sidecar-status": ({"Name": "web", "Connect": {"SidecarService": {"Check": {"TTL": "1s",
                                                                                     "Status": "up"}}}},
                           "Status for checks must 'passing', 'warning', 'critical'"),
    "bad-sidecar-meta": ({"Name": "web", "Connect": {"SidecarService": {"Meta": {"consul-x": "1"}}}},
                         "Invalid SidecarService: Couldn't load metadata pair ('consul-x', '1'): "
                         "Key prefix 'consul-' is reserved for internal use"),
    "sidecar-upstream-duplicate": (
        {"Name": "web", "Connect": {"SidecarService": {"Proxy": {"Upstreams": [
            {"DestinationName": "db", "LocalBindPort": 1}, {"DestinationName": "db", "LocalBindPort": 2}]}}}},
        'Failed Validation: 1 error occurred:\n\t* upstreams cannot contain duplicates of [type="service", '
        'name="db", partition="", namespace="", peer="", datacenter=""]\n\n'),
    "sidecar-native": (
        {"Name": "web", "Port": 80, "Connect": {"SidecarService": {"Connect": {"Native": True}, "Port": 1}}},
        "Failed Validation: 1 error occurred:\n\t* A Proxy cannot also be Connect Native, only typical services\n\n"),
    "tagged-lan-ipv4": ({"Name": "web", "TaggedAddresses": {"lan_ipv4": {"Address": "::1"}}},
                        'Service tagged address "lan_ipv4" must be a valid ipv4 address'),
    "tagged-wan-ipv6": ({"Name": "web", "TaggedAddresses": {"wan_ipv6": {"Address": "10.0.0.1"}}},
                        'Service tagged address "wan_ipv6" must be a valid ipv6 address'),
    "proxy-mode": ({"Name": "p", "Kind": "connect-proxy", "Port": 1, "Proxy": {"DestinationServiceName": "w",
                                                                              "Mode": "magic"}},
                   'Invalid proxy mode "magic": must be one of "", "direct", "transparent"'),
}


@pytest.mark.parametrize("body, message", VALIDATION.values(), ids=VALIDATION.keys())
def test_validation_reproduces_consuls_messages(body: dict, message: str) -> None:
    with pytest.raises(InvalidDefinition) as err:
        decode_service(body, origin="api")
    assert str(err.value) == message


def test_config_validation_messages_carry_the_key_path() -> None:
    with pytest.raises(InvalidDefinition) as err:
        decode_service_file({"services": [{"name": "a"}, {"port": 1}]})
    assert str(err.value) == "services[1]: Missing service name"


ACCEPTED = {
    "mesh-gateway-wan-federation-meta": {"Name": "mgw", "Kind": "mesh-gateway", "Port": 8443,
                                         "Meta": {"consul-wan-federation": "1"}},
    "ingress-gateway-without-port": {"Name": "igw", "Kind": "ingress-gateway"},
    "proxy-with-socket-only": {"Name": "p", "Kind": "connect-proxy", "SocketPath": "/tmp/p.sock",
                               "Proxy": {"DestinationServiceName": "web"}},
    "dns-invalid-name": {"Name": "web_v2.internal"},
    "name-with-slash": {"Name": "team/web"},
    "tagged-lan-hostname": {"Name": "web", "TaggedAddresses": {"lan": {"Address": "web.internal", "Port": 1}}},
    "upstreams-same-port-other-address": {
        "Name": "p", "Kind": "connect-proxy", "Port": 1, "Proxy": {"DestinationServiceName": "web", "Upstreams": [
            {"DestinationName": "db", "LocalBindPort": 9000},
            {"DestinationName": "api", "LocalBindPort": 9000, "LocalBindAddress": "127.0.0.2"}]}},
    "upstreams-same-name-other-dc": {
        "Name": "p", "Kind": "connect-proxy", "Port": 1, "Proxy": {"DestinationServiceName": "web", "Upstreams": [
            {"DestinationName": "db", "LocalBindPort": 9000},
            {"DestinationName": "db", "LocalBindPort": 9001, "Datacenter": "dc2"}]}},
}


@pytest.mark.parametrize("body", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_consul_accepts_these(body: dict) -> None:
    assert decode_service(body, origin="api").name == body["Name"]


def test_dns_unfriendly_names_only_warn() -> None:
    defn = decode_service({"Name": "web_v2", "Tags": ["ok", "not.ok"]}, origin="api")
    warnings = definition_warnings(defn)
    assert len(warnings) == 2 and "web_v2" in warnings[0] and "not.ok" in warnings[1]


# --------------------------------------------------------------------------- service files

FILES = {
    "service-block": ({"service": {"name": "a"}}, ["a"]),
    "service-list": ({"service": [{"name": "a"}, {"name": "b"}]}, ["a", "b"]),
    "services": ({"services": [{"name": "a"}, {"name": "b"}]}, ["a", "b"]),
    "both": ({"service": {"name": "a"}, "services": [{"name": "b"}]}, ["a", "b"]),
    "capitalised": ({"Service": {"Name": "a"}}, ["a"]),
    "empty": ({}, []),
}


@pytest.mark.parametrize("data, names", FILES.values(), ids=FILES.keys())
def test_service_file_wrappers(data: dict, names: list[str]) -> None:
    assert [d.name for d in decode_service_file(data)] == names


def test_a_bare_definition_is_not_a_service_file() -> None:
    with pytest.raises(InvalidDefinition, match='unknown field "name"'):
        decode_service_file({"name": "web"})
