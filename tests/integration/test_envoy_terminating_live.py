"""Open connections through a terminating gateway after a deny (xds/translate/rbac.py rule 10),
through real Envoys: a tcp external service of IP instances gets its decisions from its
endpoints' metadata, as a sidecar's local app does, so an intention change is an EDS update
at the gateway that cuts only the connections it denies and drains nothing.

    web-1's Envoy :U ══mTLS (SNI echo-api…)══▶ gateway Envoy ─tcp─▶ echo app (external node)
"""

from __future__ import annotations

import time

import pytest

from trellis.testing.agent import free_port
from trellis.testing.apps import EchoApp, Stream, echo_once
from trellis.testing.envoy import EnvoyMesh
from trellis.xds.translate.rbac import LIVE_METADATA

pytestmark = pytest.mark.integration
CUT_DEADLINE = 5.0  # intention written -> the open connection cut


def intention(mesh: EnvoyMesh, source: str, action: str | None) -> None:
    path = f"/v1/connect/intentions/exact?source={source}&destination=echo-api"
    status, _, text = (mesh.agent.request("PUT", path, {"Action": action}) if action
                       else mesh.agent.request("DELETE", path))
    assert status == 200, text


def test_a_deny_cuts_the_open_connection_at_the_gateway_and_drains_nothing(agent, tmp_path):
    mesh, echo, up = EnvoyMesh(tmp_path, agent), EchoApp(), free_port()
    stream = None
    try:
        status, _, text = agent.request("PUT", "/v1/catalog/register", {
            "Node": "external", "Address": "127.0.0.1",
            "Service": {"Service": "echo-api", "Address": "127.0.0.1", "Port": echo.port}})
        assert status == 200, text
        status, _, text = agent.request("PUT", "/v1/agent/service/register", {
            "Name": "egress", "Kind": "terminating-gateway", "Address": "127.0.0.1", "Port": free_port()})
        assert status == 200, text
        mesh.config_write({"Kind": "terminating-gateway", "Name": "egress", "Services": [{"Name": "echo-api"}]})
        mesh.register("web", "web-1", upstreams=[
            {"DestinationName": "echo-api", "LocalBindAddress": "127.0.0.1", "LocalBindPort": up}])
        mesh.start_envoy("web-1")
        gateway = mesh.start_gateway("terminating", "egress")
        mesh.wait(lambda: echo_once(up), "web reaches echo-api through the gateway")

        stream = Stream(up)
        mesh.wait(lambda: stream.echoed >= 3, "the open connection echoes")
        before = gateway.stat("listener_manager.listener_modified")
        intention(mesh, "db", "deny")  # another source: the table changes, web's connection must not notice
        cluster = next(c for c in gateway.cluster_names() if c.startswith("echo-api."))

        def decided(source: str) -> bool | None:
            tables = gateway.endpoint_metadata(cluster, LIVE_METADATA)
            return tables[0].get("sources", {}).get("default", {}).get(source) if tables else None

        mesh.wait(lambda: decided("db") is False, "the gateway's echo-api endpoint carries the db deny")
        echoed = stream.echoed
        mesh.wait(lambda: stream.cut_at is not None or stream.echoed >= echoed + 5,
                  "web's open connection echoes on after the db deny")
        assert stream.cut_at is None, "an allowed open connection was disturbed"

        written = time.monotonic()
        intention(mesh, "web", "deny")
        mesh.wait(lambda: stream.cut_at is not None, "web's open connection is cut")
        assert stream.cut_at - written < CUT_DEADLINE
        assert not echo_once(up)  # new connections too
        assert gateway.stat("listener_manager.listener_modified") == before  # the decision moved in EDS data
        assert gateway.stat("listener_manager.total_filter_chains_draining") == 0
        intention(mesh, "web", None)
        mesh.wait(lambda: echo_once(up), "allowed again")
        assert mesh.nacks() == [], mesh.diagnose()
    finally:
        if stream is not None:
            stream.close()
        for source in ("web", "db"):
            agent.request("DELETE", f"/v1/connect/intentions/exact?source={source}&destination=echo-api")
        mesh.stop()
        echo.close()
