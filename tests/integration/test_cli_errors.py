"""CLI errors as a user sees them: one ``Error ...`` line on stderr, exit 1, never a traceback.

``trellis agent`` start failures run the real command in a subprocess (each must fail
fast, hence ``timeout=30``); ``services register`` with an agent-config style file
runs against a real agent.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from trellis.testing.agent import free_port

pytestmark = pytest.mark.integration


def trellis(*args: str, env: dict[str, str] | None = None, cwd=None) -> subprocess.CompletedProcess:
    e = {**os.environ, **(env or {})}
    for name in ("CONSUL_HTTP_ADDR", "TRELLIS_HTTP_ADDR"):
        e.pop(name, None)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "trellis", *args], capture_output=True, text=True, env=e,
                          cwd=cwd, timeout=30)


def start_agent_args(*extra: str) -> list[str]:
    """``agent -dev`` on free ports (DNS and gRPC off unless ``extra`` says otherwise)."""
    return ["agent", "-dev", "-node", "err-node", "-http-port", str(free_port()), "-dns-port", "-1",
            "-grpc-port", "-1", *extra]


def assert_one_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    # Only our line: the agent may have logged INFO lines before it failed, never after.
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("Error starting agent: "), r.stderr
    for needle in needles:
        assert needle in last, (needle, r.stderr)


# --------------------------------------------------------------------------- trellis agent


def test_http_port_out_of_range():
    r = trellis(*start_agent_args(), "-http-port", "70000")
    assert_one_error(r, "ports.http", "70000")


def test_bad_json_config_file_names_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "datacenter": "dc1",\n  "log_level": \n}\n')
    r = trellis(*start_agent_args("-config-file", str(bad)))
    assert_one_error(r, f"Error parsing {bad}: line 4, column 1")


def test_bad_hcl_config_file_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.hcl"
    bad.write_text('datacenter = "dc1"\nports {\n  http =\n}\n')
    r = trellis(*start_agent_args("-config-file", str(bad)))
    assert_one_error(r, f"Error parsing {bad}: line 4")


def test_unknown_config_key_is_named(tmp_path):
    conf = tmp_path / "typo.json"
    conf.write_text(json.dumps({"datacenter": "dc1", "no_such_key": True}))
    r = trellis(*start_agent_args("-config-file", str(conf)))
    assert_one_error(r, str(conf), "no_such_key")


def test_config_file_that_does_not_exist(tmp_path):
    r = trellis(*start_agent_args("-config-file", str(tmp_path / "missing.json")))
    assert_one_error(r, "missing.json", "No such file or directory")


def test_domain_with_an_empty_label():
    r = trellis(*start_agent_args("-domain", "a..b"))
    assert_one_error(r, "domain", "a..b", "label is empty")


def test_client_address_that_is_not_an_ip():
    r = trellis(*start_agent_args("-client", "notanip"))
    assert_one_error(r, "client_addr", "notanip", "not an IP address")


def test_http_port_already_in_use():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = trellis(*start_agent_args("-client", "127.0.0.1"), "-http-port", str(port))
    assert_one_error(r, f"127.0.0.1:{port}", "address already in use")


def test_server_without_data_dir():
    r = trellis("agent", "-server", "-http-port", str(free_port()), "-dns-port", "-1")
    assert_one_error(r, "data_dir", "-data-dir")


def test_unknown_log_level():
    r = trellis(*start_agent_args("-log-level", "loud"))
    assert_one_error(r, "-log-level", '"loud"', "trace, debug, info, warn, error or off")


def test_config_format_yaml(tmp_path):
    conf = tmp_path / "a.conf"
    conf.write_text('datacenter = "dc1"')
    r = trellis(*start_agent_args("-config-format", "yaml", "-config-file", str(conf)))
    assert_one_error(r, "-config-format", '"yaml"', "json or hcl")


# --------------------------------------------------------------------------- trellis members -http-addr


@pytest.mark.parametrize(("how", "addr"), [("flag", "bad addr"), ("env", "bad addr"), ("flag", "127.0.0.1:abc"),
                                           ("env", "http://h:99999")])
def test_malformed_http_addr_is_one_line(how, addr):
    if how == "flag":
        r = trellis("members", "-http-addr", addr)
    else:
        r = trellis("members", env={"CONSUL_HTTP_ADDR": addr})
    assert r.returncode == 1 and r.stdout == ""
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith(f'Error connecting to agent: Invalid address "{addr}": ')
    assert r.stderr.count("\n") == 1


# --------------------------------------------------------------------------- services register, agent-config style


AGENT_STYLE = """\
service {
  name = "a"
  port = 7001
  check {
    id  = "c1"
    ttl = "30s"
  }
  check {
    ID   = "c2"
    name = "second"
    ttl  = "30s"
    token = "ignored-as-in-consul"
  }
  connect {
    sidecar_service {
      checks = [{ id = "sc1", ttl = "30s" }]
    }
  }
}
"""


def test_agent_config_style_checks_register(agent, tmp_path):
    f = tmp_path / "a.hcl"
    f.write_text(AGENT_STYLE)
    env = {"CONSUL_HTTP_ADDR": agent.http_addr}
    r = trellis("services", "register", str(f), env=env)
    assert (r.returncode, r.stdout, r.stderr) == (0, "Registered service: a\n", "")
    _, _, checks = agent.request("GET", "/v1/agent/checks")
    assert checks["c1"]["ServiceID"] == "a"
    assert (checks["c2"]["ServiceID"], checks["c2"]["Name"]) == ("a", "second")
    assert checks["sc1"]["ServiceID"] == "a-sidecar-proxy"
    r = trellis("services", "deregister", str(f), env=env)
    assert (r.returncode, r.stdout) == (0, "Deregistered service: a\n")
    _, _, checks = agent.request("GET", "/v1/agent/checks")
    assert not {"c1", "c2", "sc1"} & set(checks)


def test_single_agent_style_check_json(agent, tmp_path):
    f = tmp_path / "b.json"
    f.write_text(json.dumps({"service": {"name": "b", "check": {"id": "b-ttl", "ttl": "30s"}}}))
    env = {"CONSUL_HTTP_ADDR": agent.http_addr}
    r = trellis("services", "register", str(f), env=env)
    assert (r.returncode, r.stderr) == (0, "")
    _, _, checks = agent.request("GET", "/v1/agent/checks")
    assert checks["b-ttl"]["ServiceID"] == "b"
    assert trellis("services", "deregister", "-id", "b", env=env).returncode == 0
