"""Agent configuration: keys, defaults, Consul's merge rule, -config-file / -config-dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from trellis.catalog.model import CheckType
from trellis.config.agent_config import (
    AgentConfig,
    ConfigFragment,
    InvalidConfig,
    combine,
    decode_agent_config,
    load_config_files,
    merge,
    parse_agent_config,
)
from trellis.config.hcl import ConfigSyntaxError


def config(text: str, filename: str = "agent.hcl") -> AgentConfig:
    return merge([parse_agent_config(text, filename=filename)])


def test_nothing_configured_gives_consuls_defaults() -> None:
    c = merge([])
    assert (c.datacenter, c.domain, c.client_addr, c.bind_addr, c.log_level) == (
        "dc1", "consul.", "127.0.0.1", "0.0.0.0", "info")
    assert (c.ports.http, c.ports.dns, c.ports.grpc, c.ports.sidecar_min_port, c.ports.sidecar_max_port,
            c.ports.expose_min_port, c.ports.expose_max_port) == (8500, 8600, -1, 21000, 21255, 21500, 21755)
    d = c.dns_config
    assert (d.allow_stale, d.max_stale, d.udp_answer_limit, d.enable_additional_node_meta_txt,
            d.recursor_timeout, d.soa.refresh, d.soa.retry, d.soa.expire, d.soa.min_ttl) == (
        True, 315360000.0, 3, True, 2.0, 3600, 600, 86400, 0)
    assert c.connect.enabled and c.enable_central_service_config
    assert (c.acl.enabled, c.acl.default_policy, c.acl.down_policy) == (False, "allow", "extend-cache")


FULL_HCL = """
node_name  = "node-1"
datacenter = "DC-East"
data_dir   = "/var/lib/trellis"
server     = true
bootstrap_expect = 3
client_addr = "0.0.0.0"
bind_addr   = "10.0.0.1"
advertise_addr = "10.0.0.1"
domain     = "mesh"
log_level  = "DEBUG"
log_json   = true
ports {
  "grpc"           = 8502
  http             = 9500
  sidecar_min_port = 22000
  sidecar_max_port = 22010
}
addresses { http = "0.0.0.0" }
dns_config {
  allow_stale = false
  max_stale   = "10s"
  node_ttl    = "30s"
  service_ttl { "*" = "5s", "web" = "1m" }
  udp_answer_limit = 5
  a_record_limit   = 2
  only_passing     = true
  enable_truncate  = true
  soa { min_ttl = 10, refresh = 20 }
  recursor_timeout = "3s"
}
enable_script_checks       = true
enable_local_script_checks = true
enable_central_service_config = false
default_intention_policy   = "deny"
connect {
  enabled     = true
  ca_provider = "consul"
  ca_config { leaf_cert_ttl = "24h" }
}
acl {
  enabled        = true
  default_policy = "deny"
  tokens { agent = "agent-token" }
}
node_meta { rack = "r1" }
recursors = ["8.8.8.8"]
ui_config { enabled = true }
"""


def test_every_documented_key_is_read() -> None:
    c = config(FULL_HCL)
    assert (c.node_name, c.datacenter, c.data_dir, c.server, c.bootstrap_expect) == (
        "node-1", "dc-east", "/var/lib/trellis", True, 3)
    assert (c.client_addr, c.bind_addr, c.advertise_addr, c.domain, c.log_level, c.log_json) == (
        "0.0.0.0", "10.0.0.1", "10.0.0.1", "mesh.", "debug", True)
    assert (c.ports.grpc, c.ports.http, c.ports.sidecar_min_port, c.ports.sidecar_max_port) == (
        8502, 9500, 22000, 22010)
    assert c.ports.sidecar_pool(frozenset({22000})).min_port == 22000
    assert c.addresses.http == "0.0.0.0"
    d = c.dns_config
    assert (d.allow_stale, d.max_stale, d.node_ttl, d.service_ttl, d.udp_answer_limit, d.a_record_limit,
            d.only_passing, d.enable_truncate, d.soa.min_ttl, d.soa.refresh, d.soa.retry, d.recursor_timeout) == (
        False, 10.0, 30.0, {"*": 5.0, "web": 60.0}, 5, 2, True, True, 10, 20, 600, 3.0)
    assert (c.enable_script_checks, c.enable_local_script_checks, c.enable_central_service_config,
            c.default_intention_policy) == (True, True, False, "deny")
    assert (c.connect.ca_provider, c.connect.ca_config) == ("consul", {"leaf_cert_ttl": "24h"})
    assert (c.acl.enabled, c.acl.default_policy, c.acl.tokens) == (True, "deny", {"agent": "agent-token"})
    assert (c.node_meta, c.recursors, c.ui) == ({"rack": "r1"}, ("8.8.8.8",), True)
    assert c.sources == ("agent.hcl",)


def test_json_config_reads_the_same_keys() -> None:
    c = config('{"node_name": "n", "ports": {"grpc": 8502}, "dns_config": {"service_ttl": {"*": "5s"}}}',
               filename="agent.json")
    assert (c.node_name, c.ports.grpc, c.dns_config.service_ttl) == ("n", 8502, {"*": 5.0})


def test_keys_are_case_insensitive() -> None:
    assert config('Node_Name = "n"\nPORTS { HTTP = 1 }').ports.http == 1


def test_services_checks_and_bootstrap_entries_are_collected() -> None:
    c = config("""
        service { name = "web" port = 80 connect { sidecar_service {} } }
        services = [{ name = "db", port = 5432 }]
        check { id = "mem" name = "Memory" args = ["/bin/check-mem"] interval = "30s" }
        checks = [{ name = "disk", ttl = "1m", service_id = "db" }]
        config_entries {
          bootstrap = [
            { kind = "proxy-defaults", name = "global", config { protocol = "http" } },
          ]
        }
    """)
    assert [s.name for s in c.services] == ["web", "db"]
    assert c.services[0].sidecar_service is not None
    assert [(k.check_id, k.name, k.type, k.service_id) for k in c.checks] == [
        ("mem", "Memory", CheckType.SCRIPT, ""), ("", "disk", CheckType.TTL, "db")]
    assert c.config_entries_bootstrap == ({"kind": "proxy-defaults", "name": "global",
                                           "config": {"protocol": "http"}},)


def test_repeated_service_blocks_are_all_kept() -> None:
    c = config('service { name = "a" }\nservice { name = "b" }')
    assert [s.name for s in c.services] == ["a", "b"]


# --------------------------------------------------------------------------- merging


def fragment(text: str, name: str) -> ConfigFragment:
    return parse_agent_config(text, filename=name)


def test_later_files_override_scalars_append_lists_and_merge_maps() -> None:
    first = fragment("""
        node_name = "a"
        log_level = "info"
        ports { http = 1, dns = 2 }
        recursors = ["1.1.1.1"]
        node_meta { rack = "r1", zone = "z1" }
        dns_config { service_ttl { "*" = "1s" } }
        service { name = "web" }
    """, "00-base.hcl")
    second = fragment("""
        log_level = "debug"
        ports { dns = 3 }
        recursors = ["8.8.8.8"]
        node_meta { zone = "z2" }
        dns_config { service_ttl { "db" = "2s" } }
        service { name = "db" }
    """, "10-override.hcl")
    c = merge([first, second])
    assert (c.node_name, c.log_level) == ("a", "debug")
    assert (c.ports.http, c.ports.dns) == (1, 3)
    assert c.recursors == ("1.1.1.1", "8.8.8.8")
    assert c.node_meta == {"rack": "r1", "zone": "z2"}
    assert c.dns_config.service_ttl == {"*": 1.0, "db": 2.0}
    assert [s.name for s in c.services] == ["web", "db"]
    assert c.sources == ("00-base.hcl", "10-override.hcl")


def test_combine_is_associative() -> None:
    a, b, c = (fragment(t, n) for t, n in [('ports { http = 1 }\nrecursors = ["a"]', "a"),
                                           ('ports { dns = 2 }\nrecursors = ["b"]', "b"),
                                           ('ports { http = 3 }\nnode_meta { k = "v" }', "c")])
    assert combine(combine(a, b), c) == combine(a, combine(b, c))


def test_repeated_section_blocks_merge_like_files() -> None:
    assert config("ports { http = 1 }\nports { dns = 2 }").ports.dns == 2


def test_flags_can_be_a_fragment_after_the_files() -> None:
    flags = decode_agent_config({"node_name": "from-flag", "ports": {"http": 7500}}, "<flags>")
    c = merge([fragment('node_name = "from-file"', "a.hcl"), flags])
    assert (c.node_name, c.ports.http) == ("from-flag", 7500)


# --------------------------------------------------------------------------- errors

ERRORS = {
    "unknown-top-level": ("foo = 1", 'agent.hcl: invalid config key "foo"'),
    "unknown-nested": ("ports { htp = 1 }", 'agent.hcl: invalid config key "ports.htp"'),
    "unknown-acl-token": ('acl { tokens { root = "x" } }', 'agent.hcl: invalid config key "acl.tokens.root"'),
    "wrong-type": ('ports { http = "x" }', 'agent.hcl: ports.http: expected an integer, got string "x"'),
    "bad-port": ("ports { http = 70000 }", "agent.hcl: ports.http: invalid port 70000: must be -1 (disabled) "
                                           "or 0-65535"),
    "bad-duration": ('dns_config { node_ttl = "5x" }',
                     'agent.hcl: dns_config.node_ttl: time: unknown unit "x" in duration "5x"'),
    "duration-number": ("dns_config { node_ttl = 5 }",
                        'agent.hcl: dns_config.node_ttl: expected a duration string such as "10s", got number 5'),
    "bad-choice": ('acl { default_policy = "maybe" }',
                   'agent.hcl: acl.default_policy: invalid value "maybe": must be one of "allow", "deny"'),
    "bad-datacenter": ('datacenter = "dc 1"',
                       "agent.hcl: datacenter: datacenter can only contain lowercase alphanumeric, - or _ "
                       "characters."),
    "bad-node-meta": ('node_meta { "consul-x" = "1" }',
                      "agent.hcl: node_meta: Couldn't load metadata pair ('consul-x', '1'): Key prefix 'consul-' "
                      "is reserved for internal use"),
    "bad-service": ('service { name = "web" prot = 1 }', 'agent.hcl: service: unknown field "prot"'),
    "service-in-list": ('services = [{ name = "a" }, { port = 1 }]', "agent.hcl: services[1]: Missing service name"),
    "bad-check": ('check { name = "c" http = "http://x" }',
                  "agent.hcl: check: Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or "
                  "OSService checks"),
    "bootstrap-both": ("server = true\nbootstrap = true\nbootstrap_expect = 3",
                       "agent.hcl: 'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive"),
    "bootstrap-needs-server": ("bootstrap_expect = 3", "agent.hcl: 'bootstrap_expect > 0' requires 'server = true'"),
    "sidecar-range": ("ports { sidecar_min_port = 5, sidecar_max_port = 4 }",
                      "agent.hcl: ports.sidecar_min_port must be less than or equal to ports.sidecar_max_port"),
}


@pytest.mark.parametrize("text, message", ERRORS.values(), ids=ERRORS.keys())
def test_config_errors_name_file_and_key(text: str, message: str) -> None:
    with pytest.raises(InvalidConfig) as err:
        config(text)
    assert str(err.value) == message


def test_syntax_errors_carry_line_and_column() -> None:
    with pytest.raises(ConfigSyntaxError) as err:
        config("ports {\n  http = \n}")
    assert (err.value.filename, err.value.line) == ("agent.hcl", 3)


# --------------------------------------------------------------------------- files and directories


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_config_dir_loads_json_and_hcl_in_lexical_order_without_subdirs(tmp_path: Path) -> None:
    write(tmp_path / "20-b.json", '{"log_level": "warn", "recursors": ["b"]}')
    write(tmp_path / "10-a.hcl", 'log_level = "debug"\nrecursors = ["a"]')
    write(tmp_path / "30-c.txt", "this is not config")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "00-x.hcl", 'log_level = "error"')
    (tmp_path / "40-dir.hcl").mkdir()
    c = load_config_files([], [tmp_path])
    assert (c.log_level, c.recursors) == ("warn", ("a", "b"))
    assert c.sources == (str(tmp_path / "10-a.hcl"), str(tmp_path / "20-b.json"))


def test_config_files_then_dirs_between_before_and_after(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    write(conf / "a.hcl", 'node_name = "dir"\nrecursors = ["dir"]')
    f = write(tmp_path / "agent.json", '{"node_name": "file", "recursors": ["file"]}')
    dev = decode_agent_config({"ports": {"grpc": 8502}, "recursors": ["dev"]}, "<dev>")
    flags = decode_agent_config({"recursors": ["flag"]}, "<flags>")
    c = load_config_files([f], [conf], before=[dev], after=[flags])
    assert (c.node_name, c.ports.grpc, c.recursors) == ("dir", 8502, ("dev", "file", "dir", "flag"))


def test_a_directory_given_as_a_file_is_read_as_a_directory(tmp_path: Path) -> None:
    write(tmp_path / "a.hcl", 'node_name = "x"')
    assert load_config_files([tmp_path]).node_name == "x"


def test_config_format_forces_the_parser(tmp_path: Path) -> None:
    f = write(tmp_path / "agent.conf", 'node_name = "x"')
    assert load_config_files([f], fmt="hcl").node_name == "x"


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig) as err:
        load_config_files([tmp_path / "nope.hcl"])
    assert str(err.value) == f"{tmp_path / 'nope.hcl'}: Error reading config file: No such file or directory"


def test_errors_in_a_dir_name_the_file(tmp_path: Path) -> None:
    write(tmp_path / "a.hcl", 'node_name = "x"')
    write(tmp_path / "b.json", '{"nodename": "y"}')
    with pytest.raises(InvalidConfig) as err:
        load_config_files([], [tmp_path])
    assert str(err.value) == f'{tmp_path / "b.json"}: invalid config key "nodename"'
