"""A terminating gateway through real Envoys (issue 7, item 3): mesh services reach an
external service, registered in the catalog on a node that is no trellis agent, through
the gateway, which presents the external service's identity, enforces the intentions
whose destination it is, and originates TLS to it (or plain TCP).

    client ─▶ web-1 Envoy :U ══mTLS (SNI external-api…)══▶ gateway Envoy ─TLS (SNI api.external.com)─▶ HTTPS server
    client ─▶ web-1 Envoy :P ══mTLS (SNI plain-api…)═════▶ gateway Envoy ─plain TCP─────────────────▶ HTTP app
    client ─▶ web-1 Envoy :H ══mTLS (SNI http-api…)══════▶ gateway Envoy ─HTTP (Host: localhost)────▶ HTTP app
                                                            (L7 intentions, per-route RBAC)
    client ─▶ web-1 Envoy :V ══mTLS (SNI [v1.]versioned-api…)▶ gateway Envoy ─plain TCP─▶ api-v1 (and api-v2,
                                                            until a resolver's DefaultSubset picks v1)

Every process is started on free loopback ports and stopped by PID; every wait polls."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from trellis.testing.agent import free_port
from trellis.testing.apps import NamedApp, answer, get
from trellis.testing.envoy import EnvoyMesh
from trellis.testing.external import HttpsServer, make_ca_and_server_cert

pytestmark = pytest.mark.integration
DENY = "/v1/connect/intentions/exact?source=web&destination=external-api"
ONLY_GET_OK = {"Kind": "service-intentions", "Name": "http-api", "Sources": [{"Name": "web", "Permissions": [
    {"Action": "allow", "HTTP": {"PathExact": "/ok", "Methods": ["GET"]}},
    {"Action": "deny", "HTTP": {"PathPrefix": "/"}}]}]}


class HostEcho:
    """An HTTP app answering every GET with ``http-api``, recording each request's (Host, path).
    It listens on 127.0.0.1 and, where it can, on ::1 at the same port: it is registered as
    ``localhost``, which Envoy may resolve to either."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        seen = self.seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append((self.headers.get("Host", ""), self.path))
                body = b"http-api"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        class V6(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6

        self.servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)]
        self.port = self.servers[0].server_address[1]
        try:
            self.servers.append(V6(("::1", self.port), Handler))
        except OSError:
            pass  # no IPv6 loopback, or the port is taken there: Envoy will use 127.0.0.1
        for httpd in self.servers:
            threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        for httpd in self.servers:
            httpd.shutdown()
            httpd.server_close()


@pytest.fixture(scope="module")
def mesh(agent, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("envoy-terminating")
    m = EnvoyMesh(tmp, agent)
    ca, cert, key = make_ca_and_server_cert(tmp)
    server, plain, echo = HttpsServer(cert, key), NamedApp("plain-api"), HostEcho()
    v1, v2 = NamedApp("api-v1"), NamedApp("api-v2")
    m.tls_port, m.plain_port, m.http_port = free_port(), free_port(), free_port()  # type: ignore[attr-defined]
    m.versioned_port = free_port()  # type: ignore[attr-defined]
    m.server, m.echo, m.v2 = server, echo, v2  # type: ignore[attr-defined]
    apps = (server, plain, echo, v1, v2)
    try:
        for name, address, port in (("external-api", "127.0.0.1", server.port),
                                    ("plain-api", "127.0.0.1", plain.port), ("http-api", "localhost", echo.port)):
            status, _, text = agent.request("PUT", "/v1/catalog/register", {
                "Node": "external", "Address": "127.0.0.1",
                "Service": {"Service": name, "Address": address, "Port": port}})
            assert status == 200, text
        for app in (v1, v2):
            status, _, text = agent.request("PUT", "/v1/catalog/register", {
                "Node": "external", "Address": "127.0.0.1", "Service": {
                    "Service": "versioned-api", "ID": app.name, "Address": "127.0.0.1", "Port": app.port,
                    "Meta": {"version": app.name.removeprefix("api-")}}})
            assert status == 200, text
        m.config_write({"Kind": "service-defaults", "Name": "http-api", "Protocol": "http"})
        status, _, text = agent.request("PUT", "/v1/agent/service/register", {
            "Name": "egress-gateway", "Kind": "terminating-gateway", "Address": "127.0.0.1", "Port": free_port()})
        assert status == 200, text
        m.config_write({"Kind": "terminating-gateway", "Name": "egress-gateway", "Services": [
            {"Name": "external-api", "CAFile": ca, "SNI": "api.external.com"}, {"Name": "plain-api"},
            {"Name": "http-api"}, {"Name": "versioned-api"}]})
        m.register("web", "web-1", upstreams=[
            {"DestinationName": "external-api", "LocalBindAddress": "127.0.0.1", "LocalBindPort": m.tls_port},
            {"DestinationName": "plain-api", "LocalBindAddress": "127.0.0.1", "LocalBindPort": m.plain_port},
            {"DestinationName": "http-api", "LocalBindAddress": "127.0.0.1", "LocalBindPort": m.http_port},
            {"DestinationName": "versioned-api", "LocalBindAddress": "127.0.0.1", "LocalBindPort": m.versioned_port}])
        m.start_envoy("web-1")
        m.start_gateway("terminating", "egress-gateway")
        m.wait(lambda: m.in_sync("web-1"), "web-1's Envoy ACKs its snapshot")
    except BaseException:
        m.stop()
        for app in apps:
            app.close()
        raise
    yield m
    m.stop()
    for app in apps:
        app.close()


def test_a_mesh_service_reaches_the_external_service_over_tls_through_the_gateway(mesh):
    mesh.wait(lambda: answer(mesh.tls_port) == "external-api", "external-api through web's upstream and the gateway")
    assert "api.external.com" in mesh.server.sni  # the gateway sent the entry's SNI
    status, _, rows = mesh.agent.request("GET", "/v1/health/connect/external-api")
    assert status == 200 and [r["Service"]["ID"] for r in rows] == ["egress-gateway"], rows
    assert mesh.nacks() == [], mesh.diagnose()


def test_a_linked_service_without_tls_settings_is_reached_in_plain_tcp(mesh):
    mesh.wait(lambda: answer(mesh.plain_port) == "plain-api", "plain-api through the gateway")


def test_an_intention_to_the_external_service_is_enforced_at_the_gateway(mesh):
    mesh.wait(lambda: answer(mesh.tls_port) == "external-api", "external-api through the gateway")
    status, _, text = mesh.agent.request("PUT", DENY, {"Action": "deny"})
    assert status == 200, text
    try:
        mesh.wait(lambda: answer(mesh.tls_port) is None, "the gateway refuses web")
        assert answer(mesh.plain_port) == "plain-api"  # another linked service is not affected
    finally:
        mesh.agent.request("DELETE", DENY)
    mesh.wait(lambda: answer(mesh.tls_port) == "external-api", "allowed again")


def status_of(port: int, path: str) -> int | None:
    try:
        return get(port, path)[0]
    except OSError:
        return None


def test_an_http_linked_service_gets_its_l7_intentions_and_its_own_host_at_the_gateway(mesh):
    mesh.wait(lambda: answer(mesh.http_port, "/ok") == "http-api", "http-api through the gateway")
    mesh.config_write(ONLY_GET_OK)
    try:
        mesh.wait(lambda: status_of(mesh.http_port, "/other") == 403, "the gateway denies web GET /other")
        before = len(mesh.echo.seen)
        assert get(mesh.http_port, "/other")[0] == 403
        assert len(mesh.echo.seen) == before  # denied at the gateway: the external app saw nothing
        assert get(mesh.http_port, "/ok") == (200, "http-api")  # allowed by the L7 intention
        host, path = mesh.echo.seen[-1]
        assert path == "/ok" and host.split(":")[0] == "localhost", mesh.echo.seen[-1]  # auto_host_rewrite
    finally:
        status, _, text = mesh.agent.request("DELETE", "/v1/config/service-intentions/http-api")
        assert status == 200, text
    mesh.wait(lambda: status_of(mesh.http_port, "/other") == 200, "the default allows /other again")
    assert mesh.nacks() == [], mesh.diagnose()


VERSIONED_RESOLVER = {"Kind": "service-resolver", "Name": "versioned-api", "DefaultSubset": "v1", "ConnectTimeout": "3s",
                      "Subsets": {"v1": {"Filter": "Service.Meta.version == v1"},
                                  "v2": {"Filter": "Service.Meta.version == v2"}}}


def test_a_linked_services_resolver_default_subset_sends_only_to_that_subsets_instances(mesh):
    mesh.wait(lambda: answer(mesh.versioned_port) in ("api-v1", "api-v2"), "versioned-api through the gateway")
    mesh.config_write(VERSIONED_RESOLVER)
    mesh.wait(lambda: all(answer(mesh.versioned_port) == "api-v1" for _ in range(10)), "only api-v1 answers")
    asked = len(mesh.v2.paths)
    assert [answer(mesh.versioned_port) for _ in range(20)] == ["api-v1"] * 20
    assert len(mesh.v2.paths) == asked  # the v2 instance is not in the subset's cluster
    assert mesh.nacks() == [], mesh.diagnose()


def test_a_linked_services_redirect_is_followed_by_the_mesh_client_through_the_gateway(mesh):
    """A resolver's Redirect on a linked service is followed by web's discovery chain, as
    Consul's is: web's Envoy sends to the redirect target's SNI, which reaches the gateway
    (linked to both) and the target's external instance."""
    mesh.wait(lambda: answer(mesh.plain_port) == "plain-api", "plain-api through the gateway")
    mesh.config_write({"Kind": "service-resolver", "Name": "plain-api", "Redirect": {"Service": "external-api"}})
    try:
        mesh.wait(lambda: answer(mesh.plain_port) == "external-api", "plain-api's clients redirected to external-api")
        status, _, rows = mesh.agent.request("GET", "/v1/agent/connect/proxies")
        assert not [p for r in rows for p in r.get("Problems") or () if "plain-api" in p], rows
    finally:
        status, _, text = mesh.agent.request("DELETE", "/v1/config/service-resolver/plain-api")
        assert status == 200, text
    mesh.wait(lambda: answer(mesh.plain_port) == "plain-api", "plain-api again once the resolver is gone")
    assert mesh.nacks() == [], mesh.diagnose()


def closed_by_peer(port: int) -> bool:
    """A TCP connection to ``port`` is accepted, then closed by the other side unanswered
    (a reset, when what was sent is still unread)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"hello\r\n")
            try:
                return conn.recv(64) == b""
            except ConnectionResetError:
                return True
    except OSError:
        return False


def test_a_gateway_with_nothing_linked_listens_and_closes_connections(mesh):
    """Before any entry links a service, the gateway's listener is there (its TCP check can
    pass, as Consul's) and closes whatever connects."""
    port = free_port()
    status, _, text = mesh.agent.request("PUT", "/v1/agent/service/register", {
        "Name": "idle-gateway", "Kind": "terminating-gateway", "Address": "127.0.0.1", "Port": port})
    assert status == 200, text
    envoy = mesh.start_gateway("terminating", "idle-gateway")
    mesh.wait(lambda: f"default:127.0.0.1:{port}" in envoy.listeners() and closed_by_peer(port),
              "the idle gateway accepts and closes")
    status, _, rows = mesh.agent.request("GET", "/v1/agent/connect/proxies")
    row = next(r for r in rows if r["ProxyID"] == "idle-gateway")
    assert any("no linked service is served yet" in p for p in row["Problems"]), row
    assert mesh.nacks() == [], mesh.diagnose()
