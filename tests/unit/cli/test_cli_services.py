"""``trellis services register|deregister``: bodies sent, messages printed, bad files."""

from __future__ import annotations

import json
import textwrap

import pytest

from trellis.cli import http, services

REGISTER = "PUT /v1/agent/service/register"


@pytest.fixture()
def ok(agent):
    agent.on("PUT", "/v1/agent/service/register", None)
    for sid in ("web", "web-1", "db", "api", "a1", "b"):
        agent.on("PUT", f"/v1/agent/service/deregister/{sid}", None)
    return agent


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


# --------------------------------------------------------------------------- register with flags

FLAG_CASES = [
    ("name-only", ["-name", "web"], {"Name": "web"}),
    ("all-flags", ["-name=web", "-id=web-1", "-address=10.0.0.5", "-port=8080", "-tag", "v1", "--tag=primary",
                   "-meta", "env=prod", "-meta=team=a=b", "-kind", "connect-proxy"],
     {"Kind": "connect-proxy", "ID": "web-1", "Name": "web", "Tags": ["v1", "primary"], "Port": 8080,
      "Address": "10.0.0.5", "Meta": {"env": "prod", "team": "a=b"}}),
    ("tagged-addresses", ["-name", "web", "-tagged-address", "lan=10.0.0.5:80", "-tagged-address=wan=[::1]:443"],
     {"Name": "web", "TaggedAddresses": {"lan": {"Address": "10.0.0.5", "Port": 80},
                                         "wan": {"Address": "::1", "Port": 443}}}),
    ("socket", ["-name", "web", "-socket", "/run/web.sock"], {"Name": "web", "SocketPath": "/run/web.sock"}),
]


@pytest.mark.parametrize(("argv", "body"), [c[1:] for c in FLAG_CASES], ids=[c[0] for c in FLAG_CASES])
def test_register_from_flags_sends_go_client_body(ok, cli, argv, body):
    r = cli("services", "register", *argv)
    assert (r.code, r.out, r.err) == (0, "Registered service: web\n", "")
    assert ok.paths() == [REGISTER]
    assert ok.body() == body


def test_register_sends_http_options(ok, cli):
    cli("services", "register", "-name", "web", "-token", "t", "-namespace", "team-a", "-http-addr", "h:1")
    assert ok.last.headers["X-Consul-Token"] == "t"
    assert ok.query() == [("ns", "team-a")]
    assert ok.configs[-1].address == "h:1"


REGISTER_ERRORS = [
    ("nothing", [], "Service registration requires at least one argument or flags."),
    ("id-without-name", ["-id", "web"], "Service registration requires at least one argument or flags."),
    ("both", ["-name", "web", "web.hcl"], "Service registration requires arguments or -id, not both."),
    ("tagged-no-port", ["-name", "web", "-tagged-address", "lan=10.0.0.5"],
     "Invalid Tagged Address: address 10.0.0.5: missing port in address"),
    ("tagged-bad-port", ["-name", "web", "-tagged-address", "lan=10.0.0.5:http"],
     'Invalid Tagged Address: strconv.Atoi: parsing "http": invalid syntax'),
    ("tagged-ipv6-unbracketed", ["-name", "web", "-tagged-address", "lan=::1:80"],
     "Invalid Tagged Address: address ::1:80: too many colons in address"),
]


@pytest.mark.parametrize(("argv", "message"), [c[1:] for c in REGISTER_ERRORS], ids=[c[0] for c in REGISTER_ERRORS])
def test_register_argument_errors_send_nothing(ok, cli, argv, message):
    r = cli("services", "register", *argv)
    assert (r.code, r.out, r.err) == (1, "", message + "\n")
    assert ok.requests == []


def test_register_api_error_names_the_service(agent, cli):
    agent.on("PUT", "/v1/agent/service/register", "Invalid service address", status=400)
    r = cli("services", "register", "-name", "web", "-address", "0.0.0.0")
    assert r.code == 1
    assert r.err == 'Error registering service "web": Unexpected response code: 400 (Invalid service address)\n'


# --------------------------------------------------------------------------- register from files

HCL_FILE = """\
    service {
      name = "web"
      id   = "web-1"
      port = 8080
      tags = ["v1"]
      enable_tag_override = true
      meta { env = "prod" }
      check {
        http     = "http://localhost:8080/health"
        interval = "10s"
      }
      connect { sidecar_service {} }
    }
"""


def test_register_hcl_file_forwards_the_service_object(ok, cli, tmp_path):
    path = write(tmp_path, "web.hcl", HCL_FILE)
    r = cli("services", "register", path)
    assert (r.code, r.out) == (0, "Registered service: web\n")
    assert ok.body() == {
        "name": "web", "id": "web-1", "port": 8080, "tags": ["v1"], "enable_tag_override": True,
        "meta": {"env": "prod"}, "check": {"http": "http://localhost:8080/health", "interval": "10s"},
        "connect": {"sidecar_service": {}},
    }


def test_register_json_services_list_and_several_files_in_order(ok, cli, tmp_path):
    a = write(tmp_path, "a.json", '{"services": [{"name": "api", "port": 1}, {"Name": "db", "Port": 2}]}')
    b = write(tmp_path, "b.hcl", 'service {\n  name = "web"\n}\n')
    r = cli("services", "register", a, b)
    assert r.out == "Registered service: api\nRegistered service: db\nRegistered service: web\n"
    assert [ok.body(i) for i in range(3)] == [{"name": "api", "port": 1}, {"Name": "db", "Port": 2}, {"name": "web"}]


BAD_FILES = [
    ("hcl-syntax", "bad.hcl", 'service {\n  name = "web"\n  port =\n}\n',
     "Error parsing {path}: line 4, column 1: unexpected \"}}\""),
    ("json-syntax", "bad.json", '{"service": {"name": "web",}}',
     "Error parsing {path}: line 1, column 28: Expecting property name enclosed in double quotes"),
    ("unknown-key", "typo.hcl", 'service {\n  name = "web"\n  prot = 80\n}\n',
     'Error decoding {path}: service: unknown field "prot"'),
    ("unknown-top-level", "top.json", '{"servce": {"name": "web"}}',
     'Error decoding {path}: unknown field "servce" (a service file holds "service" or "services")'),
]


@pytest.mark.parametrize(("name", "text", "message"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_bad_file_fails_locally_before_any_request(ok, cli, tmp_path, name, text, message):
    good = write(tmp_path, "good.hcl", 'service {\n  name = "web"\n}\n')
    bad = write(tmp_path, name, text)
    r = cli("services", "register", good, bad)
    assert (r.code, r.out) == (1, "")
    assert r.err == message.format(path=bad) + "\n"
    assert ok.requests == []


def test_invalid_service_content_names_the_key_path(ok, cli, tmp_path):
    bad = write(tmp_path, "svc.json", json.dumps({"services": [{"name": "a"}, {"name": "b", "port": "eighty"}]}))
    r = cli("services", "register", bad)
    assert r.code == 1
    assert r.err.startswith(f"Error decoding {bad}: services[1].port")
    assert ok.requests == []


def test_missing_file(ok, cli, tmp_path):
    r = cli("services", "register", str(tmp_path / "nope.hcl"))
    assert (r.code, r.err) == (1, f"Error reading {tmp_path / 'nope.hcl'}: no such file or directory\n")


def test_second_service_failing_stops_after_the_first(monkeypatch, cli, tmp_path):
    calls = []

    def answer(config, req):
        calls.append(req)
        if len(calls) == 2:
            return http.Response(400, {}, b"Invalid Service Meta: Couldn't load metadata pair")
        return http.Response(200, {}, b"")

    monkeypatch.setattr(http, "send", answer)
    path = write(tmp_path, "two.json", '{"services": [{"name": "a"}, {"name": "b"}]}')
    r = cli("services", "register", path)
    assert r.out == "Registered service: a\n"
    assert r.err == ('Error registering service "b": Unexpected response code: 400 '
                     "(Invalid Service Meta: Couldn't load metadata pair)\n")
    assert (r.code, len(calls)) == (1, 2)


# --------------------------------------------------------------------------- deregister


def test_deregister_by_id(ok, cli):
    r = cli("services", "deregister", "-id", "web-1")
    assert (r.code, r.out) == (0, "Deregistered service: web-1\n")
    assert ok.paths() == ["PUT /v1/agent/service/deregister/web-1"]
    assert ok.last.body is None


def test_deregister_from_files_uses_id_else_name(ok, cli, tmp_path):
    path = write(tmp_path, "s.json", '{"services": [{"name": "a", "id": "a1"}, {"name": "b"}]}')
    r = cli("services", "deregister", path)
    assert r.out == "Deregistered service: a1\nDeregistered service: b\n"
    assert ok.paths() == ["PUT /v1/agent/service/deregister/a1", "PUT /v1/agent/service/deregister/b"]


def test_deregister_file_namespace_goes_in_the_query(ok, cli, tmp_path):
    path = write(tmp_path, "s.json", '{"service": {"name": "web", "namespace": "team-a"}}')
    cli("services", "deregister", path)
    assert ok.query() == [("ns", "team-a")]


@pytest.mark.parametrize(("argv", "message"), [
    ([], "Service deregistration requires at least one argument or -id."),
    (["-id", "web", "web.hcl"], "Service deregistration requires arguments or -id, not both."),
], ids=["nothing", "both"])
def test_deregister_argument_errors(ok, cli, argv, message):
    r = cli("services", "deregister", *argv)
    assert (r.code, r.err) == (1, message + "\n")
    assert ok.requests == []


def test_deregister_unknown_id_reports_the_agent_message(agent, cli):
    agent.on("PUT", "/v1/agent/service/deregister/ghost",
             'Unknown service ID "ghost". Ensure that the service ID is passed, not the service name.', status=404)
    r = cli("services", "deregister", "-id=ghost")
    assert r.code == 1
    assert r.err == ('Error deregistering service "ghost": Unexpected response code: 404 (Unknown service ID '
                     '"ghost". Ensure that the service ID is passed, not the service name.)\n')


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(("text", "expected"), [
    ("10.0.0.1:80", ("10.0.0.1", "80")),
    ("[::1]:443", ("::1", "443")),
    ("host:", ("host", "")),
    (":80", ("", "80")),
])
def test_split_host_port(text, expected):
    assert services.split_host_port(text) == expected


@pytest.mark.parametrize(("text", "why"), [
    ("10.0.0.1", "missing port in address"),
    ("[::1]", "missing port in address"),
    ("[::1", "missing ']' in address"),
    ("a:b:c", "too many colons in address"),
    ("[::1]x:80", "missing port in address"),
    ("a]:80", "unexpected ']' in address"),
])
def test_split_host_port_errors_are_go_text(text, why):
    with pytest.raises(ValueError) as info:
        services.split_host_port(text)
    assert str(info.value) == f"address {text}: {why}"


# --------------------------------------------------------------------------- config-file checks → API body

AGENT_STYLE_CHECKS = """\
    service {
      name = "a"
      check {
        id  = "c1"
        ttl = "30s"
      }
    }
"""


def test_check_id_in_a_file_is_sent_as_check_id(ok, cli, tmp_path):
    path = write(tmp_path, "a.hcl", AGENT_STYLE_CHECKS)
    r = cli("services", "register", path)
    assert (r.code, r.out, r.err) == (0, "Registered service: a\n", "")
    assert ok.body() == {"name": "a", "check": {"CheckID": "c1", "ttl": "30s"}}


def test_repeated_check_blocks_are_sent_as_checks(ok, cli, tmp_path):
    path = write(tmp_path, "a.hcl", """\
        service {
          name = "a"
          check { id = "c1"  ttl = "30s" }
          check { id = "c2"  ttl = "30s" }
        }
    """)
    assert cli("services", "register", path).code == 0
    assert ok.body() == {"name": "a", "Checks": [{"CheckID": "c1", "ttl": "30s"}, {"CheckID": "c2", "ttl": "30s"}]}


@pytest.mark.parametrize(("service", "expected"), [
    ({"name": "a", "check": {"id": "c1", "ttl": "30s"}},
     {"name": "a", "check": {"CheckID": "c1", "ttl": "30s"}}),
    ({"Name": "a", "Check": {"ID": "c1", "TTL": "30s"}},
     {"Name": "a", "Check": {"CheckID": "c1", "TTL": "30s"}}),
    ({"name": "a", "checks": [{"id": "c1", "ttl": "1s"}, {"Id": "c2", "ttl": "1s"}, {"name": "n"}]},
     {"name": "a", "checks": [{"CheckID": "c1", "ttl": "1s"}, {"CheckID": "c2", "ttl": "1s"}, {"name": "n"}]}),
    ({"name": "a", "check": {"id": "x", "check_id": "c1", "ttl": "1s"}},
     {"name": "a", "check": {"check_id": "c1", "ttl": "1s"}}),
    ({"name": "a", "check": {"CheckID": "c1", "ID": "x", "ttl": "1s"}},
     {"name": "a", "check": {"CheckID": "c1", "ttl": "1s"}}),
    ({"name": "a", "check": {"id": "c1", "CheckID": None, "ttl": "1s"}},
     {"name": "a", "check": {"CheckID": "c1", "ttl": "1s"}}),
    ({"name": "a", "check": {"id": None, "token": "t", "ttl": "1s"}},
     {"name": "a", "check": {"ttl": "1s"}}),
    ({"name": "a", "connect": {"sidecar_service": {"port": 1, "check": {"id": "s1", "tcp": "x:1"},
                                                   "checks": [{"ID": "s2", "ttl": "1s"}]}}},
     {"name": "a", "connect": {"sidecar_service": {"port": 1, "check": {"CheckID": "s1", "tcp": "x:1"},
                                                   "checks": [{"CheckID": "s2", "ttl": "1s"}]}}}),
    ({"Name": "a", "Connect": {"SidecarService": {"Check": {"id": "s1", "ttl": "1s"}}}},
     {"Name": "a", "Connect": {"SidecarService": {"Check": {"CheckID": "s1", "ttl": "1s"}}}}),
    ({"name": "a", "check": [{"id": "c1", "ttl": "1s"}], "checks": [{"id": "c2", "ttl": "1s"}]},
     {"name": "a", "checks": [{"CheckID": "c1", "ttl": "1s"}, {"CheckID": "c2", "ttl": "1s"}]}),
    ({"name": "a", "id": "svc", "meta": {"id": "kept"}, "connect": {"native": True}},
     {"name": "a", "id": "svc", "meta": {"id": "kept"}, "connect": {"native": True}}),
], ids=["snake", "camel", "checks-list", "check_id-wins", "CheckID-wins", "null-check-id", "null-id-and-token",
        "sidecar", "sidecar-camel", "repeated-check-and-checks", "service-id-untouched"])
def test_api_service_body(service, expected):
    before = json.dumps(service, sort_keys=True)
    assert services.api_service_body(service) == expected
    assert json.dumps(service, sort_keys=True) == before  # the input is not changed
