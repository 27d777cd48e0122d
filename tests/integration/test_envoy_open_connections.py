"""Open connections after a deny, through real Envoy sidecars (docs/proxy.md "Open connections
after a deny: built-in proxy and Envoy").

api (a tcp line-echo app) has a sidecar; web and db each reach it through their own
sidecar's upstream listener. Each keeps one TCP connection open and sends a line every
PERIOD. A deny for web -> api cuts web's open connection within CUT_DEADLINE, while db's
open connection keeps echoing. With Envoy, api's Envoy gets an EDS update of local_app (the
decision table, xds/translate/rbac.py rules 8-9) and no listener update, so no filter chain
drains; the built-in proxy re-decides its open connections when it applies the snapshot.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from trellis.testing.agent import AgentProcess, free_port
from trellis.testing.apps import EchoApp, Stream, echo_once
from trellis.testing.apps import eventually as _eventually
from trellis.testing.envoy import stop_processes
from trellis.testing.orphans import guarded

pytestmark = pytest.mark.integration
DEADLINE = 30.0
eventually = functools.partial(_eventually, timeout=DEADLINE)  # Envoys take longer to come up
CUT_DEADLINE = 5.0  # intention written -> web's open connection cut


class Mesh:
    def __init__(self, agent: AgentProcess, tmp: Path) -> None:
        self.agent, self.tmp = agent, tmp
        self.procs: list[subprocess.Popen] = []
        self.admin: dict[str, int] = {}
        self.env = {**os.environ, "TRELLIS_HTTP_ADDR": f"127.0.0.1:{agent.http_port}"}

    def register(self, name: str, app_port: int, public: int, upstreams: dict[str, int] | None = None) -> None:
        body = {"Name": name, "ID": f"{name}-1", "Port": app_port, "Connect": {"SidecarService": {
            "Port": public, "Proxy": {"Config": {"bind_address": "127.0.0.1"}, "Upstreams": [
                {"DestinationName": d, "LocalBindPort": p} for d, p in (upstreams or {}).items()]}}}}
        status, _, text = self.agent.request("PUT", "/v1/agent/service/register", body)
        assert status == 200, text

    def sidecar(self, data_plane: str, sidecar_for: str) -> None:
        log = open(self.tmp / f"{data_plane}-{sidecar_for}.log", "w")
        if data_plane == "envoy":
            self.admin[sidecar_for] = admin = free_port()
            args = ["envoy", "-sidecar-for", sidecar_for, "-admin-bind", f"127.0.0.1:{admin}", "--", "-l", "warning"]
        else:
            args = ["proxy", "-sidecar-for", sidecar_for]
        self.procs.append(subprocess.Popen(guarded([sys.executable, "-m", "trellis", "connect", *args]),
                                           env=self.env, stdout=log, stderr=subprocess.STDOUT))

    def stats(self, sidecar_for: str, prefix: str) -> dict[str, int]:
        url = f"http://127.0.0.1:{self.admin[sidecar_for]}/stats?format=json&filter=^{prefix}"
        with urllib.request.urlopen(url, timeout=2) as r:
            return {s["name"]: s.get("value", 0) for s in json.load(r)["stats"] if "name" in s}

    def intention(self, source: str, destination: str, action: str | None) -> None:
        """Write source -> destination with ``action``, or delete it (None; absent is fine)."""
        path = f"/v1/connect/intentions/exact?source={source}&destination={destination}"
        if action is None:
            status, _, text = self.agent.request("DELETE", path)
            assert status in (200, 404), text
        else:
            status, _, text = self.agent.request("PUT", path, {"Action": action})
            assert status == 200, text

    def stop(self) -> None:
        stop_processes(self.procs)


@pytest.fixture()
def mesh(agent, tmp_path):
    m = Mesh(agent, tmp_path)
    yield m
    m.stop()


@pytest.mark.parametrize("data_plane", ["envoy", "builtin"])
def test_a_deny_cuts_the_denied_open_connection_and_leaves_the_allowed_one(mesh, data_plane):
    api, web_name, db_name = (f"{name}-{data_plane}" for name in ("api", "web", "db"))  # one agent for both cases
    web_up, db_up = free_port(), free_port()
    mesh.register(api, EchoApp().port, free_port())
    mesh.register(web_name, EchoApp().port, free_port(), {api: web_up})
    mesh.register(db_name, EchoApp().port, free_port(), {api: db_up})
    for name in (api, web_name, db_name):
        mesh.sidecar(data_plane, f"{name}-1")
    eventually(lambda: echo_once(web_up) and echo_once(db_up))

    web, db = Stream(web_up), Stream(db_up)
    eventually(lambda: web.echoed >= 3 and db.echoed >= 3)
    envoy = data_plane == "envoy"
    chains_before = mesh.stats(f"{api}-1", "listener_manager.") if envoy else {}

    written = time.monotonic()
    mesh.intention(web_name, api, "deny")
    try:
        eventually(lambda: web.cut_at is not None, timeout=CUT_DEADLINE)
        cut_after = web.cut_at - written
        echoed_at_cut = db.echoed
        time.sleep(2.0)  # the allowed connection carries on
        assert db.cut_at is None and db.echoed >= echoed_at_cut + 10, "the allowed connection was disturbed"
        assert not echo_once(web_up)  # and new connections from web are refused
        assert echo_once(db_up)
        if envoy:  # no listener update, nothing drained on api's Envoy: the decision moved in the EDS data
            after = mesh.stats(f"{api}-1", "listener_manager.")
            assert after["listener_manager.listener_modified"] == chains_before["listener_manager.listener_modified"]
            assert after["listener_manager.total_filter_chains_draining"] == 0
            assert mesh.stats(f"{api}-1", "connect_authz.rbac.")["connect_authz.rbac.denied"] >= 1
        print(f"{data_plane}: intention written -> open connection cut: {cut_after * 1000:.0f} ms")
        mesh.intention(web_name, api, None)  # allowed again: new connections get through
        eventually(lambda: echo_once(web_up))
    finally:
        web.close()
        db.close()
        mesh.intention(web_name, api, None)
