"""An ingress gateway through real Envoys (issue 7, item 2): its config entry's listeners
become Envoy listeners that route by Host (http) or forward (tcp) to mesh services over
mutual TLS, and intentions apply with the gateway as the source.

    client ─Host: web.ingress.consul─▶ gateway Envoy :H ══mTLS══▶ web-1 Envoy ─▶ web-1 app
    client ──────────────────────────▶ gateway Envoy :T ══mTLS══▶ db-1 Envoy  ─▶ db-1 app
    client ─TLS, SNI web.ingress.consul─▶ gateway Envoy :S (Connect leaf, *.ingress.consul) ══mTLS══▶ web-1
    client ─TLS, SNI api.example.com─▶ gateway Envoy (certificate from the operator's SDS server) ══mTLS══▶ api-1

Every process is started on free loopback ports and stopped by PID; every wait polls."""

from __future__ import annotations

import http.client
import json
import socket
import ssl

import pytest

from trellis.testing.agent import free_port
from trellis.testing.apps import answer, get
from trellis.testing.envoy import EnvoyMesh
from trellis.testing.external import ThrowawayCA
from trellis.testing.sds import SdsServer, grpc_cluster

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


def test_certificates_from_an_operators_sds_server_are_served_by_sni_and_rotate(mesh):
    """Scenario 25: a listener's SDS certificate, and on another listener a certificate of
    each service's own, chosen by SNI; each name routes to its service. A new certificate
    on the SDS server reaches the next handshake without a restart."""
    ca, sds = ThrowawayCA("operator CA"), SdsServer()
    try:
        for name, hosts in (("wildcard", ("*.ingress.example",)), ("web-cert", ("web.example.com",)),
                            ("api-cert", ("api.example.com",))):
            sds.put(name, *ca.issue(*hosts))
        mesh.config_write({"Kind": "service-defaults", "Name": "api", "Protocol": "http"})
        mesh.register("api", "api-1")
        mesh.start_envoy("api-1")
        wild_port, own_port = free_port(), free_port()
        status, _, text = mesh.agent.request("PUT", "/v1/agent/service/register", {
            "Name": "sds-ingress", "Kind": "ingress-gateway", "Address": "127.0.0.1", "Port": free_port(),
            "Proxy": {"Config": {"envoy_extra_static_clusters_json": json.dumps(grpc_cluster("sds", sds.port))}}})
        assert status == 200, text
        mesh.config_write({"Kind": "ingress-gateway", "Name": "sds-ingress", "Listeners": [
            {"Port": wild_port, "Protocol": "http", "TLS": {"SDS": {"ClusterName": "sds", "CertResource": "wildcard"}},
             "Services": [{"Name": "web", "Hosts": ["web.ingress.example"]}]},
            {"Port": own_port, "Protocol": "http", "Services": [
                {"Name": "web", "Hosts": ["web.example.com"],
                 "TLS": {"SDS": {"ClusterName": "sds", "CertResource": "web-cert"}}},
                {"Name": "api", "Hosts": ["api.example.com"],
                 "TLS": {"SDS": {"ClusterName": "sds", "CertResource": "api-cert"}}}]}]})
        mesh.start_gateway("ingress", "sds-ingress")
        roots = [ca.pem.decode()]

        def served(port: int, sni: str) -> tuple[int, str, dict] | None:
            try:
                return https_get(port, sni, roots)
            except (OSError, ssl.SSLError):
                return None

        for port, sni, app in ((wild_port, "web.ingress.example", "web-1"), (own_port, "web.example.com", "web-1"),
                               (own_port, "api.example.com", "api-1")):
            mesh.wait(lambda: (got := served(port, sni)) is not None and got[:2] == (200, app),
                      f"{app} over TLS as {sni}")
            _, _, peer = served(port, sni)
            assert dict(peer["issuer"][0])["commonName"] == "operator CA", peer
        assert set(sds.asked) >= {"wildcard", "web-cert", "api-cert"}
        with pytest.raises(OSError):  # a name no filter chain of that listener serves: the handshake is cut
            https_get(own_port, "web.ingress.example", roots)

        before = served(own_port, "api.example.com")[2]["serialNumber"]
        sds.put("api-cert", *ca.issue("api.example.com"))
        mesh.wait(lambda: (got := served(own_port, "api.example.com")) is not None
                  and got[2]["serialNumber"] != before, "the rotated certificate is served")
        status, _, rows = mesh.agent.request("GET", "/v1/agent/connect/proxies")
        row = next(r for r in rows if r["ProxyID"] == "sds-ingress")
        assert not row.get("Problems"), row
        assert mesh.nacks() == [], mesh.diagnose()
    finally:
        sds.stop()


def test_a_grpc_listener_routes_by_authority_and_the_gateway_needs_an_intention(mesh):
    """Scenario 26: a gRPC service behind a grpc listener whose host is ``localhost:<port>``;
    with ``* => ping`` denied, calls fail until ``grpc-ingress => ping`` is allowed."""
    from concurrent import futures

    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    app = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), app)
    app_port = app.add_insecure_port("127.0.0.1:0")
    app.start()
    port, public = free_port(), free_port()
    deny_all = "/v1/connect/intentions/exact?source=*&destination=ping"
    allow_gateway = "/v1/connect/intentions/exact?source=grpc-ingress&destination=ping"
    try:
        mesh.config_write({"Kind": "service-defaults", "Name": "ping", "Protocol": "grpc"})
        status, _, text = mesh.agent.request("PUT", "/v1/agent/service/register", {
            "Name": "ping", "ID": "ping-1", "Port": app_port, "Connect": {"SidecarService": {
                "Port": public, "Proxy": {"Config": {"bind_address": "127.0.0.1"}}}}})
        assert status == 200, text
        mesh.start_envoy("ping-1")
        status, _, text = mesh.agent.request("PUT", "/v1/agent/service/register", {
            "Name": "grpc-ingress", "Kind": "ingress-gateway", "Address": "127.0.0.1", "Port": free_port()})
        assert status == 200, text
        mesh.config_write({"Kind": "ingress-gateway", "Name": "grpc-ingress", "Listeners": [
            {"Port": port, "Protocol": "grpc", "Services": [{"Name": "ping", "Hosts": [f"localhost:{port}"]}]}]})
        mesh.start_gateway("ingress", "grpc-ingress")
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.default_authority", f"localhost:{port}")])
        stub = health_pb2_grpc.HealthStub(channel)

        def check() -> str:
            try:
                return health_pb2.HealthCheckResponse.ServingStatus.Name(
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status)
            except grpc.RpcError as exc:
                return exc.code().name

        mesh.wait(lambda: check() == "SERVING", "the gRPC call through the gateway")
        assert mesh.agent.request("PUT", deny_all, {"Action": "deny"})[0] == 200
        mesh.wait(lambda: check() == "PERMISSION_DENIED", "ping's sidecar refuses the gateway")
        assert mesh.agent.request("PUT", allow_gateway, {"Action": "allow"})[0] == 200
        mesh.wait(lambda: check() == "SERVING", "the gateway is allowed by name")
        wrong = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.default_authority", "nobody.example")])
        try:  # an authority no service has: no virtual host
            health_pb2_grpc.HealthStub(wrong).Check(health_pb2.HealthCheckRequest(), timeout=2)
            raise AssertionError("a call for an unknown authority was answered")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNIMPLEMENTED, exc  # Envoy's 404, as gRPC reads it
        finally:
            wrong.close()
        channel.close()
        assert mesh.nacks() == [], mesh.diagnose()
    finally:
        mesh.agent.request("DELETE", deny_all)
        mesh.agent.request("DELETE", allow_gateway)
        app.stop(0)
