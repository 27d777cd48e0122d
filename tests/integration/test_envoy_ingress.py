"""An ingress gateway through real Envoys (issue 7, item 2): its config entry's listeners
become Envoy listeners that route by Host (http) or forward (tcp) to mesh services over
mutual TLS, and intentions apply with the gateway as the source.

    client ─Host: web.ingress.consul─▶ gateway Envoy :H ══mTLS══▶ web-1 Envoy ─▶ web-1 app
    client ──────────────────────────▶ gateway Envoy :T ══mTLS══▶ db-1 Envoy  ─▶ db-1 app
    client ─TLS, SNI web.ingress.consul─▶ gateway Envoy :S (Connect leaf, *.ingress.consul) ══mTLS══▶ web-1

Every process is started on free loopback ports and stopped by PID; every wait polls."""

from __future__ import annotations

import http.client
import socket
import ssl

import pytest

from trellis.testing.agent import free_port
from trellis.testing.apps import answer, get
from trellis.testing.envoy import EnvoyMesh

pytestmark = pytest.mark.integration
INTENTION = "/v1/connect/intentions/exact?source=ingress-gateway&destination=web"


@pytest.fixture(scope="module")
def mesh(agent, tmp_path_factory):
    m = EnvoyMesh(tmp_path_factory.mktemp("envoy-ingress"), agent)
    m.http_port, m.tcp_port = free_port(), free_port()  # type: ignore[attr-defined]
    try:
        m.config_write({"Kind": "service-defaults", "Name": "web", "Protocol": "http"})
        m.register("web", "web-1")
        m.register("db", "db-1")
        status, _, text = agent.request("PUT", "/v1/agent/service/register", {
            "Name": "ingress-gateway", "Kind": "ingress-gateway", "Address": "127.0.0.1", "Port": free_port()})
        assert status == 200, text
        m.config_write({"Kind": "ingress-gateway", "Name": "ingress-gateway", "Listeners": [
            {"Port": m.http_port, "Protocol": "http", "Services": [
                {"Name": "web", "RequestHeaders": {"Set": {"x-via": "ingress"}}}]},
            {"Port": m.tcp_port, "Protocol": "tcp", "Services": [{"Name": "db"}]}]})
        for sid in ("web-1", "db-1"):
            m.start_envoy(sid)
        m.start_gateway("ingress", "ingress-gateway")
        for sid in ("web-1", "db-1"):
            m.wait(lambda sid=sid: m.in_sync(sid), f"{sid}'s Envoy ACKs its snapshot")
    except BaseException:
        m.stop()
        raise
    yield m
    m.stop()


def through(mesh, host: str = "web.ingress.consul", path: str = "/") -> tuple[int, str]:
    try:
        return get(mesh.http_port, path, headers={"Host": host})
    except OSError as exc:
        return 0, repr(exc)


def test_http_routes_by_host_and_tcp_forwards(mesh):
    mesh.wait(lambda: through(mesh) == (200, "web-1"), "web through the gateway's http listener")
    assert through(mesh, f"web.ingress.consul:{mesh.http_port}") == (200, "web-1")  # with the port too
    assert through(mesh, "nobody.ingress.consul")[0] == 404  # no virtual host for it
    mesh.wait(lambda: answer(mesh.tcp_port) == "db-1", "db through the gateway's tcp listener")
    gateway = mesh.envoys["ingress-gateway"]
    assert {f"http:127.0.0.1:{mesh.http_port}", f"tcp:127.0.0.1:{mesh.tcp_port}"} <= gateway.listeners()
    status, _, rows = mesh.agent.request("GET", "/v1/agent/connect/proxies")
    row = next(r for r in rows if r["ProxyID"] == "ingress-gateway")
    assert row["Kind"] == "ingress-gateway" and row["DataPlane"] == "envoy"
    assert row["PublicListener"] == f"http:127.0.0.1:{mesh.http_port}, tcp:127.0.0.1:{mesh.tcp_port}"
    assert mesh.nacks() == [], mesh.diagnose()


def test_an_intention_with_the_gateway_as_source_is_enforced_by_the_service(mesh):
    mesh.wait(lambda: through(mesh) == (200, "web-1"), "web through the gateway")
    status, _, text = mesh.agent.request("PUT", INTENTION, {"Action": "deny"})
    assert status == 200, text
    try:
        mesh.wait(lambda: through(mesh)[0] == 403, "web's sidecar refuses the gateway")
    finally:
        mesh.agent.request("DELETE", INTENTION)
    mesh.wait(lambda: through(mesh) == (200, "web-1"), "allowed again")


def test_a_seed_style_gateway_gets_its_listeners_when_its_entry_is_written_later(mesh):
    """The seed registers ``connect.gateway`` first and writes the entry after."""
    port = free_port()
    status, _, text = mesh.agent.request("PUT", "/v1/agent/service/register", {
        "Name": "seed-ingress", "Address": "127.0.0.1", "Port": free_port(), "Connect": {"Gateway": {"Proxy": {
            "envoy_gateway_bind_addresses": {"default": {"address": "127.0.0.1", "port": port}}}}}})
    assert status == 200, text
    mesh.config_write({"Kind": "ingress-gateway", "Name": "seed-ingress", "Listeners": [
        {"Port": port, "Protocol": "http", "Services": [{"Name": "web", "Hosts": ["web.example.com"]}]}]})
    mesh.start_gateway("ingress", "seed-ingress")
    mesh.wait(lambda: get(port, "/", headers={"Host": "web.example.com"}) == (200, "web-1"),
              "web through the seed's gateway")


def https_get(port: int, sni: str, roots: list[str]) -> tuple[int, str, dict]:
    """GET / over TLS with ``sni``, the server verified against ``roots`` and for ``sni``."""
    ctx = ssl.create_default_context(cadata="".join(roots))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=sni) as tls:
        peer = tls.getpeercert()
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
        resp = http.client.HTTPResponse(tls)  # type: ignore[arg-type]
        resp.begin()
        return resp.status, resp.read().decode(), peer


def test_a_gateway_with_tls_enabled_serves_its_connect_leaf_for_its_hosts(mesh):
    port = free_port()
    status, _, text = mesh.agent.request("PUT", "/v1/agent/service/register", {
        "Name": "tls-ingress", "Kind": "ingress-gateway", "Address": "127.0.0.1", "Port": free_port()})
    assert status == 200, text
    mesh.config_write({"Kind": "ingress-gateway", "Name": "tls-ingress", "TLS": {"Enabled": True},
                       "Listeners": [{"Port": port, "Protocol": "http", "Services": [{"Name": "web"}]}]})
    mesh.start_gateway("ingress", "tls-ingress")
    _, _, body = mesh.agent.request("GET", "/v1/connect/ca/roots")
    roots = [r["RootCert"] for r in body["Roots"]]

    def served() -> tuple[int, str, dict] | None:
        try:
            return https_get(port, "web.ingress.consul", roots)
        except (OSError, ssl.SSLError):
            return None

    mesh.wait(lambda: (got := served()) is not None and got[:2] == (200, "web-1"), "web over TLS through the gateway")
    _, _, peer = served()
    dns = [v for k, v in peer["subjectAltName"] if k == "DNS"]
    assert "*.ingress.consul" in dns and "*.ingress.dc1.consul" in dns, peer
    assert any(k == "URI" and v.endswith("/svc/tls-ingress") for k, v in peer["subjectAltName"]), peer
    with pytest.raises(ssl.SSLCertVerificationError):  # a name the gateway was not granted
        https_get(port, "web.example.com", roots)
    status, _, rows = mesh.agent.request("GET", "/v1/agent/connect/proxies")
    row = next(r for r in rows if r["ProxyID"] == "tls-ingress")
    assert not any("TLS" in p or "SDS" in p for p in row.get("Problems") or ()), row
    assert mesh.nacks() == [], mesh.diagnose()
