"""The real Envoy as the sidecar data plane, configured by the agent over delta ADS:
the seed's web -> api flow, intentions taking effect, the plaintext /health check on the
public port, and the two data planes talking to each other."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trellis.testing.agent import AgentProcess, free_port
from trellis.testing.apps import NamedApp, answer, eventually as _eventually
from trellis.testing.envoy import stop_processes
from trellis.testing.orphans import guarded

pytestmark = pytest.mark.integration
DEADLINE = 30.0
eventually = functools.partial(_eventually, timeout=DEADLINE)  # Envoys take longer to come up


class Mesh:
    def __init__(self, agent: AgentProcess, tmp: Path) -> None:
        self.agent, self.tmp = agent, tmp
        self.procs: list[subprocess.Popen] = []
        self.env = {**os.environ, "TRELLIS_HTTP_ADDR": f"127.0.0.1:{agent.http_port}"}

    def register(self, name: str, app_port: int, public: int, upstreams: dict[str, int] | None = None) -> None:
        body = {"Name": name, "ID": f"{name}-1", "Port": app_port, "Connect": {"SidecarService": {
            "Port": public, "Proxy": {"Config": {"bind_address": "127.0.0.1"}, "Upstreams": [
                {"DestinationName": d, "LocalBindPort": p} for d, p in (upstreams or {}).items()]}}}}
        status, _, text = self.agent.request("PUT", "/v1/agent/service/register", body)
        assert status == 200, text

    def envoy(self, sidecar_for: str) -> subprocess.Popen:
        log = open(self.tmp / f"envoy-{sidecar_for}.log", "w")
        p = subprocess.Popen(guarded([sys.executable, "-m", "trellis", "connect", "envoy", "-sidecar-for", sidecar_for,
                                      "-admin-bind", f"127.0.0.1:{free_port()}", "--", "-l", "warning"]),
                             env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def builtin(self, sidecar_for: str) -> subprocess.Popen:
        log = open(self.tmp / f"proxy-{sidecar_for}.log", "w")
        p = subprocess.Popen(guarded([sys.executable, "-m", "trellis", "connect", "proxy", "-sidecar-for",
                                      sidecar_for]), env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        stop_processes(self.procs)


@pytest.fixture()
def mesh(agent, tmp_path):
    m = Mesh(agent, tmp_path)
    yield m
    m.stop()


def test_web_reaches_api_through_two_envoys_and_intentions_apply(agent, mesh):
    web_app, api_app = NamedApp("web"), NamedApp("api")
    up, web_pub, api_pub = free_port(), free_port(), free_port()
    mesh.register("api", api_app.port, api_pub)
    mesh.register("web", web_app.port, web_pub, {"api": up})
    mesh.envoy("api-1")
    mesh.envoy("web-1")
    assert eventually(lambda: answer(up)) == "api"
    assert eventually(lambda: answer(web_pub, "/health")) is not None  # the seed's plaintext check on the mTLS port
    assert agent.request("PUT", "/v1/connect/intentions/exact?source=web&destination=api", {"Action": "deny"})[0] == 200
    eventually(lambda: answer(up) is None)
    agent.request("DELETE", "/v1/connect/intentions/exact?source=web&destination=api")
    assert eventually(lambda: answer(up)) == "api"


@pytest.mark.parametrize("client_is_envoy", [True, False], ids=["envoy-client-builtin-server",
                                                                 "builtin-client-envoy-server"])
def test_the_two_data_planes_interoperate(agent, mesh, client_is_envoy):
    tag = "e2b" if client_is_envoy else "b2e"
    server_app = NamedApp(f"srv-{tag}")
    up, cli_pub, srv_pub = free_port(), free_port(), free_port()
    mesh.register(f"srv-{tag}", server_app.port, srv_pub)
    mesh.register(f"cli-{tag}", NamedApp("client").port, cli_pub, {f"srv-{tag}": up})
    if client_is_envoy:
        mesh.envoy(f"cli-{tag}-1")
        mesh.builtin(f"srv-{tag}-1")
    else:
        mesh.builtin(f"cli-{tag}-1")
        mesh.envoy(f"srv-{tag}-1")
    assert eventually(lambda: answer(up)) == f"srv-{tag}"
