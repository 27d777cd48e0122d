"""A terminating gateway through real Envoys (issue 7, item 3): mesh services reach an
external service, registered in the catalog on a node that is no trellis agent, through
the gateway, which presents the external service's identity, enforces the intentions
whose destination it is, and originates TLS to it (or plain TCP).

    client ─▶ web-1 Envoy :U ══mTLS (SNI external-api…)══▶ gateway Envoy ─TLS (SNI api.external.com)─▶ HTTPS server
    client ─▶ web-1 Envoy :P ══mTLS (SNI plain-api…)═════▶ gateway Envoy ─plain TCP─────────────────▶ HTTP app

Every process is started on free loopback ports and stopped by PID; every wait polls."""

from __future__ import annotations

import datetime as dt
import http.server
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from trellis.testing.agent import AgentProcess, free_port, start_agent
from trellis.testing.apps import NamedApp, answer
from trellis.testing.envoy import EnvoyMesh

pytestmark = pytest.mark.integration
DENY = "/v1/connect/intentions/exact?source=web&destination=external-api"


def make_ca_and_server_cert(directory) -> tuple[str, str, str]:
    """A test CA and a certificate for api.external.com it signs: (CA, cert, key) paths."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "external test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                                                                 "api.external.com")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("api.external.com")]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return tuple(str(p) for p in paths)  # type: ignore[return-value]


class HttpsServer:
    """An HTTPS server on 127.0.0.1 answering every GET with ``external-api`` and the SNI it was asked for."""

    def __init__(self, cert: str, key: str) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.sni: list[str | None] = []
        context.sni_callback = lambda sock, name, ctx: self.sni.append(name)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"external-api"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> AgentProcess:
    proc = start_agent(tmp_path_factory.mktemp("envoy-terminating-agent"))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def mesh(agent, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("envoy-terminating")
    m = EnvoyMesh(tmp, agent)
    ca, cert, key = make_ca_and_server_cert(tmp)
    server, plain = HttpsServer(cert, key), NamedApp("plain-api")
    m.tls_port, m.plain_port = free_port(), free_port()  # type: ignore[attr-defined]
    m.server = server  # type: ignore[attr-defined]
    try:
        for name, port in (("external-api", server.port), ("plain-api", plain.port)):
            status, _, text = agent.request("PUT", "/v1/catalog/register", {
                "Node": "external", "Address": "127.0.0.1",
                "Service": {"Service": name, "Address": "127.0.0.1", "Port": port}})
            assert status == 200, text
        status, _, text = agent.request("PUT", "/v1/agent/service/register", {
            "Name": "egress-gateway", "Kind": "terminating-gateway", "Address": "127.0.0.1", "Port": free_port()})
        assert status == 200, text
        m.config_write({"Kind": "terminating-gateway", "Name": "egress-gateway", "Services": [
            {"Name": "external-api", "CAFile": ca, "SNI": "api.external.com"}, {"Name": "plain-api"}]})
        m.register("web", "web-1", upstreams=[
            {"DestinationName": "external-api", "LocalBindAddress": "127.0.0.1", "LocalBindPort": m.tls_port},
            {"DestinationName": "plain-api", "LocalBindAddress": "127.0.0.1", "LocalBindPort": m.plain_port}])
        m.start_envoy("web-1")
        m.start_gateway("terminating", "egress-gateway")
        m.wait(lambda: m.in_sync("web-1"), "web-1's Envoy ACKs its snapshot")
    except BaseException:
        m.stop()
        server.close()
        plain.close()
        raise
    yield m
    m.stop()
    server.close()
    plain.close()


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
