"""The seed guide's egress gateway, in the seed's order, through real Envoys: register the
gateway with ``connect.gateway`` (no kind), write the seed's terminating-gateway file with
``trellis config write``, run the gateway's Envoy, and reach ``external-api`` from web.

The seed's file sets ``SNI`` alone, so the gateway verifies the external server against the
system roots; the test's server has a certificate from a throwaway CA, so that verification
must fail, closed. Adding ``CAFile`` (the seed's file plus one line) makes it pass.
(The seed binds 0.0.0.0:8443; the test keeps its shape on 127.0.0.1 and a free port. Its
registration has no port, so mesh clients are sent to the bind address.)"""

from __future__ import annotations

import json

import pytest

from trellis.testing.agent import free_port
from trellis.testing.apps import answer
from trellis.testing.envoy import EnvoyMesh
from trellis.testing.external import EXTERNAL_HOST, HttpsServer, make_ca_and_server_cert
from trellis.testing.seed import TERMINATING_GATEWAY_HCL

pytestmark = pytest.mark.integration


def test_the_seeds_egress_gateway_verifies_against_the_system_roots_then_the_given_ca(agent, tmp_path):
    m = EnvoyMesh(tmp_path, agent)
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    server = HttpsServer(cert, key)
    upstream, bind = free_port(), free_port()
    try:
        status, _, text = agent.request("PUT", "/v1/catalog/register", {
            "Node": "external", "Address": "127.0.0.1",
            "Service": {"Service": "external-api", "Address": "127.0.0.1", "Port": server.port}})
        assert status == 200, text
        seed = tmp_path / "egress-gateway.json"  # the seed's file, on loopback
        seed.write_text(json.dumps({"service": {"name": "egress-gateway", "connect": {"gateway": {"proxy": {
            "envoy_gateway_bind_addresses": {"default": {"address": "127.0.0.1", "port": bind}}}}}}}))
        m.cli("services", "register", str(seed))
        entry = tmp_path / "egress-gateway-config.hcl"
        entry.write_text(TERMINATING_GATEWAY_HCL)
        m.cli("config", "write", str(entry))
        m.register("web", "web-1", upstreams=[
            {"DestinationName": "external-api", "LocalBindAddress": "127.0.0.1", "LocalBindPort": upstream}])
        m.start_envoy("web-1")
        gateway = m.start_gateway("terminating", "egress-gateway")
        m.wait(lambda: m.in_sync("web-1") and m.in_sync_id("egress-gateway"), "both Envoys ACK their snapshots")

        # SNI alone: the system roots do not know the test CA, so the handshake fails, closed
        cluster = next(n for n in gateway.cluster_names() if n.startswith("external-api."))
        m.wait(lambda: answer(upstream) is None and gateway.stat(f"cluster.{cluster}.ssl.fail_verify_error") > 0,
               "the gateway refuses the external server's certificate")
        assert EXTERNAL_HOST in server.sni

        # the seed's file plus CAFile: verified against that CA
        entry.write_text(TERMINATING_GATEWAY_HCL.replace('SNI = "api.external.com"',
                                                         f'SNI = "api.external.com"\n        CAFile = "{ca}"'))
        m.cli("config", "write", str(entry))
        m.wait(lambda: answer(upstream) == "external-api", "web reaches external-api through the gateway")
        assert m.nacks() == [], m.diagnose()
    finally:
        m.stop()
        server.close()
