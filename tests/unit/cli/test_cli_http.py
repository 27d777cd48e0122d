"""http.py: flags + environment → HttpConfig, request building, errors, and real I/O.

The last tests use loopback sockets (a stdlib HTTP server in a thread, a Unix
socket, a closed port) to check ``send`` itself; everything else is pure.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

import pytest

from trellis.cli import http
from trellis.cli.flags import FlagSet, go_quote
from trellis.cli.output import CommandError
from trellis.errors import InvalidInput

FLAGS = FlagSet(usage="u", flags=(*http.CLIENT_FLAGS, *http.SERVER_FLAGS, *http.MULTI_TENANCY_FLAGS))


def config(argv: list[str], env: dict[str, str] | None = None) -> http.HttpConfig:
    return http.resolve_config(FLAGS.parse(argv), env or {})


CONFIG_CASES = [
    ("default", [], {}, {"scheme": "http", "address": "127.0.0.1:8500", "token": ""}),
    ("consul-env-addr", [], {"CONSUL_HTTP_ADDR": "10.0.0.1:8501"}, {"address": "10.0.0.1:8501"}),
    ("trellis-env-beats-consul", [], {"CONSUL_HTTP_ADDR": "a:1", "TRELLIS_HTTP_ADDR": "b:2"}, {"address": "b:2"}),
    ("flag-beats-env", ["-http-addr", "c:3"], {"TRELLIS_HTTP_ADDR": "b:2"}, {"address": "c:3"}),
    ("two-dash-flag", ["--http-addr=c:3"], {}, {"address": "c:3"}),
    ("http-scheme", ["-http-addr", "http://h:1/"], {}, {"scheme": "http", "address": "h:1"}),
    ("https-scheme", ["-http-addr", "https://h:1"], {}, {"scheme": "https", "address": "h:1"}),
    ("ssl-env", [], {"CONSUL_HTTP_ADDR": "h:1", "CONSUL_HTTP_SSL": "true"}, {"scheme": "https"}),
    ("ssl-env-bad-value-ignored", [], {"CONSUL_HTTP_SSL": "yes"}, {"scheme": "http"}),
    ("explicit-http-beats-ssl-env", ["-http-addr=http://h:1"], {"CONSUL_HTTP_SSL": "1"}, {"scheme": "http"}),
    ("unix-socket", ["-http-addr", "unix:///run/trellis.sock"], {}, {"scheme": "unix", "address": "/run/trellis.sock"}),
    ("ssl-verify-off", [], {"CONSUL_HTTP_SSL_VERIFY": "false"}, {"tls_verify": False}),
    ("token-flag", ["-token", "s3cret"], {}, {"token": "s3cret"}),
    ("token-consul-env", [], {"CONSUL_HTTP_TOKEN": "e"}, {"token": "e"}),
    ("token-trellis-env-beats-consul", [], {"CONSUL_HTTP_TOKEN": "c", "TRELLIS_HTTP_TOKEN": "t"}, {"token": "t"}),
    ("token-flag-beats-env-file", ["-token", "f"], {"CONSUL_HTTP_TOKEN_FILE": "/x"}, {"token": "f", "token_file": ""}),
    ("token-file-env", [], {"CONSUL_HTTP_TOKEN_FILE": "/x"}, {"token_file": "/x"}),
    ("server-flags", ["-datacenter", "dc2", "-stale"], {}, {"datacenter": "dc2", "stale": True}),
    ("namespace-flag", ["-namespace", "team-a"], {"CONSUL_NAMESPACE": "b"}, {"namespace": "team-a"}),
    ("namespace-env", [], {"CONSUL_NAMESPACE": "b"}, {"namespace": "b"}),
    ("partition-env", [], {"CONSUL_PARTITION": "p"}, {"partition": "p"}),
    ("basic-auth", [], {"CONSUL_HTTP_AUTH": "user:pa:ss"}, {"auth": ("user", "pa:ss")}),
    ("tls-files", ["-ca-file", "ca.pem", "-tls-server-name", "server.dc1.consul"], {"CONSUL_CLIENT_CERT": "c.pem"},
     {"ca_file": "ca.pem", "tls_server_name": "server.dc1.consul", "client_cert": "c.pem"}),
]


@pytest.mark.parametrize(("argv", "env", "expected"), [c[1:] for c in CONFIG_CASES], ids=[c[0] for c in CONFIG_CASES])
def test_resolve_config_table(argv, env, expected):
    got = config(argv, env)
    assert {k: getattr(got, k) for k in expected} == expected


def test_unknown_scheme_is_invalid_input():
    with pytest.raises(InvalidInput, match="Unknown protocol scheme: ftp"):
        config(["-http-addr", "ftp://h:1"])


def test_resolve_config_uses_only_declared_flags():
    bare = FlagSet(usage="u", flags=http.CLIENT_FLAGS)
    got = http.resolve_config(bare.parse([]), {"CONSUL_NAMESPACE": "n"})
    assert (got.datacenter, got.stale, got.namespace) == ("", False, "n")


def test_request_carries_query_options_token_and_json_body():
    client = http.ApiClient(config(["-datacenter", "dc2", "-namespace", "ns1", "-stale", "-token", "tok"]))
    req = client.build_request("PUT", "/v1/agent/service/register", [("replace-existing-checks", "")], body={"Name": "web"})
    path, _, query = req.target.partition("?")
    assert path == "/v1/agent/service/register"
    assert parse_qsl(query, keep_blank_values=True) == [("replace-existing-checks", ""), ("dc", "dc2"), ("ns", "ns1")]
    assert req.headers["X-Consul-Token"] == "tok"
    assert req.headers["Content-Type"] == "application/json"
    assert json.loads(req.body) == {"Name": "web"}


def test_stale_is_added_to_reads_only():
    client = http.ApiClient(config(["-stale"]))
    assert client.build_request("GET", "/v1/catalog/nodes").target == "/v1/catalog/nodes?stale="
    assert client.build_request("PUT", "/v1/agent/service/deregister/web").target == "/v1/agent/service/deregister/web"


def test_path_is_percent_encoded_and_params_may_be_a_mapping():
    client = http.ApiClient(http.HttpConfig())
    req = client.build_request("GET", "/v1/catalog/service/my web", {"filter": 'Node == "a b"'})
    assert req.target == "/v1/catalog/service/my%20web?filter=Node%20%3D%3D%20%22a%20b%22"
    assert "X-Consul-Token" not in req.headers
    assert req.body is None


def test_basic_auth_header():
    req = http.ApiClient(http.HttpConfig(auth=("u", "p"))).build_request("GET", "/v1/agent/self")
    assert req.headers["Authorization"] == "Basic dTpw"


def test_non_2xx_raises_api_error_with_consul_wording(agent):
    agent.on("PUT", "/v1/agent/service/register", "Missing service name\n", status=400)
    client = http.ApiClient(http.HttpConfig())
    with pytest.raises(http.ApiError) as info:
        client.put("/v1/agent/service/register", {})
    assert (info.value.status, info.value.body) == (400, "Missing service name")
    assert str(info.value) == "Unexpected response code: 400 (Missing service name)"


def test_empty_body_decodes_to_none(agent):
    agent.on("PUT", "/v1/agent/service/deregister/web", None)
    assert http.ApiClient(http.HttpConfig()).put("/v1/agent/service/deregister/web") is None


def test_token_file_wins_and_is_stripped(tmp_path):
    path = tmp_path / "token"
    path.write_text("  from-file\n")
    parsed = FLAGS.parse(["-token", "from-flag", "-token-file", str(path)])
    assert http.client_for(parsed, env={}).config.token == "from-file"


def test_empty_token_file_keeps_the_token(tmp_path):
    path = tmp_path / "token"
    path.write_text("\n")
    parsed = FLAGS.parse(["-token", "from-flag", "-token-file", str(path)])
    assert http.client_for(parsed, env={}).config.token == "from-flag"


def test_missing_token_file_is_a_connect_error(tmp_path):
    parsed = FLAGS.parse(["-token-file", str(tmp_path / "nope")])
    with pytest.raises(CommandError) as info:
        http.client_for(parsed, env={})
    assert str(info.value) == (
        f"Error connecting to agent: Error loading token file: open {tmp_path / 'nope'}: no such file or directory"
    )


def test_client_for_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "https://10.1.1.1:8501")
    client = http.client_for(FLAGS.parse([]))
    assert client.config.base_url == "https://10.1.1.1:8501"


# --------------------------------------------------------------------------- real sockets


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_names_the_url_and_address():
    port = _closed_port()
    client = http.ApiClient(http.HttpConfig(address=f"127.0.0.1:{port}", timeout=5))
    with pytest.raises(http.ConnectError) as info:
        client.get("/v1/agent/members", [("wan", "1")])
    assert str(info.value) == (
        f'Get "http://127.0.0.1:{port}/v1/agent/members?wan=1": '
        f"dial tcp 127.0.0.1:{port}: connect: connection refused"
    )


def test_missing_unix_socket_names_the_path(tmp_path):
    sock = str(tmp_path / "none.sock")
    client = http.ApiClient(http.HttpConfig(scheme="unix", address=sock, timeout=5))
    with pytest.raises(http.ConnectError, match=f"dial unix {sock}: connect: no such file or directory"):
        client.get("/v1/agent/self")


class _Echo(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.startswith("/v1/fail"):
            self.send_response(403)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(b"Permission denied: anonymous token lacks permission")
            return
        doc = {"method": self.command, "path": self.path, "token": self.headers.get("X-Consul-Token"),
               "body": body.decode()}
        raw = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    do_GET = do_PUT = _answer

    def log_message(self, *args) -> None:  # keep test output clean
        pass


@pytest.fixture()
def echo_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_round_trip_over_tcp(echo_server):
    port = echo_server.server_address[1]
    client = http.ApiClient(http.HttpConfig(address=f"127.0.0.1:{port}", token="t1", datacenter="dc1", timeout=5))
    got = client.put("/v1/agent/service/register", {"Name": "web"})
    assert got == {"method": "PUT", "path": "/v1/agent/service/register?dc=dc1", "token": "t1",
                   "body": '{"Name": "web"}'}
    with pytest.raises(http.ApiError) as info:
        client.get("/v1/fail")
    assert info.value.status == 403
    assert "Permission denied" in str(info.value)


class _UnixEcho(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def test_round_trip_over_a_unix_socket(tmp_path):
    path = str(tmp_path / "agent.sock")

    class Handler(_Echo):
        def address_string(self) -> str:
            return "unix"

    server = _UnixEcho(path, Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        parsed = FLAGS.parse(["-http-addr", f"unix://{path}"])
        got = http.client_for(parsed, env={}).get("/v1/agent/self")
        assert got["path"] == "/v1/agent/self"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        if os.path.exists(path):
            os.unlink(path)


def test_https_to_a_plain_http_server_is_a_tls_error(echo_server):
    port = echo_server.server_address[1]
    client = http.ApiClient(http.HttpConfig(scheme="https", address=f"127.0.0.1:{port}", timeout=5))
    with pytest.raises(http.ConnectError) as info:
        client.get("/v1/agent/self")
    assert str(info.value).startswith(f'Get "https://127.0.0.1:{port}/v1/agent/self": tls: ')


def test_agent_closing_without_an_answer_is_eof():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def accept_and_close() -> None:
        conn, _ = listener.accept()
        seen = b""
        while b"\r\n\r\n" not in seen:  # read the whole request, so closing sends FIN, not RST
            chunk = conn.recv(65536)
            if not chunk:
                break
            seen += chunk
        conn.close()

    thread = threading.Thread(target=accept_and_close, daemon=True)
    thread.start()
    try:
        client = http.ApiClient(http.HttpConfig(address=f"127.0.0.1:{port}", timeout=5))
        with pytest.raises(http.ConnectError) as info:
            client.get("/v1/agent/self")
        assert str(info.value) == f'Get "http://127.0.0.1:{port}/v1/agent/self": EOF'
    finally:
        thread.join(5)
        listener.close()


# --------------------------------------------------------------------------- malformed addresses


BAD_ADDRESSES = [
    ("bad addr", "contains whitespace"),
    ("http://bad addr", "contains whitespace"),
    ("http://a\tb:1", "contains whitespace"),
    ("h\x01:1", "contains a control character"),
    ("127.0.0.1:abc", 'invalid port "abc"'),
    ("http://h:99999", 'invalid port "99999"'),
    ("h:-1", 'invalid port "-1"'),
    ("http://", "missing host"),
    ("https:///", "missing host"),
    ("unix://", "missing socket path"),
    ("127.0.0.1:8500/v1", "a path or query is not allowed, use host:port"),
    ("h:1?x=1", "a path or query is not allowed, use host:port"),
    ("::1", "too many colons in address, write an IPv6 address as [addr]:port"),
    ("a:b:c", "too many colons in address, write an IPv6 address as [addr]:port"),
    ("http://[::1", "missing ']' in address"),
    ("[zz]:1", '"zz" is not an IPv6 address'),
    ("[::1]x", "unexpected text after ']'"),
]


@pytest.mark.parametrize(("text", "why"), BAD_ADDRESSES, ids=[a for a, _ in BAD_ADDRESSES])
def test_malformed_address_is_invalid_input_naming_it(text, why):
    with pytest.raises(InvalidInput) as info:
        http.parse_address(text)
    assert str(info.value) == f"Invalid address {go_quote(text)}: {why}"


@pytest.mark.parametrize(("text", "expected"), [
    ("h", ("http", "h")), ("h:1", ("http", "h:1")),
    ("[::1]:8500", ("http", "[::1]:8500")), ("[::1]", ("http", "[::1]")),
    ("https://10.0.0.1:8501/", ("https", "10.0.0.1:8501")), ("unix:///tmp/a b.sock", ("unix", "/tmp/a b.sock")),
    ("[fe80::1%eth0]:1", ("http", "[fe80::1%eth0]:1")), ("h:", ("http", "h:")),
])
def test_well_formed_addresses_parse(text, expected):
    assert http.parse_address(text) == expected


@pytest.mark.parametrize("source", ["flag", "consul-env", "trellis-env"])
def test_malformed_address_is_one_line_from_any_command_and_sends_nothing(agent, cli, monkeypatch, source):
    argv = ["members"]
    if source == "flag":
        argv += ["-http-addr", "bad addr"]
    else:
        monkeypatch.setenv("CONSUL_HTTP_ADDR" if source == "consul-env" else "TRELLIS_HTTP_ADDR", "bad addr")
    r = cli(*argv)
    assert (r.code, r.out) == (1, "")
    assert r.err == 'Error connecting to agent: Invalid address "bad addr": contains whitespace\n'
    assert agent.requests == []


def test_send_never_leaks_http_client_value_errors():
    # An address parse_address never lets through still ends as a ConnectError, not a traceback.
    config = http.HttpConfig(address="bad addr", timeout=5)
    with pytest.raises(http.ConnectError) as info:
        http.send(config, http.Request("GET", "/v1/agent/self"))
    assert str(info.value).startswith('Get "http://bad addr/v1/agent/self": invalid address "bad addr": ')


def test_unreadable_ca_file_is_an_error_before_any_request(tmp_path):
    parsed = FLAGS.parse(["-http-addr", "https://127.0.0.1:1", "-ca-file", str(tmp_path / "nope.pem")])
    with pytest.raises(CommandError) as info:
        http.client_for(parsed, env={})
    assert str(info.value) == (
        f"Error connecting to agent: Error loading CA file {tmp_path / 'nope.pem'}: no such file or directory"
    )


def test_bad_client_certificate_is_an_error_before_any_request(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate")
    parsed = FLAGS.parse(["-http-addr", "https://127.0.0.1:1", "-client-cert", str(cert)])
    with pytest.raises(CommandError) as info:
        http.client_for(parsed, env={})
    assert str(info.value).startswith(f"Error connecting to agent: Error loading client certificate {cert}: ")
