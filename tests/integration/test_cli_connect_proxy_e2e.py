"""``trellis connect proxy`` as a user runs it: the seed's sidecar registration and its
``/health`` check, the management verbs, flags mode with ``-register``, ``-upstream`` on
top of a registration, and the errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trellis.testing.agent import AgentProcess, free_port
from trellis.testing.apps import NamedApp, answer, eventually
from trellis.testing.orphans import guarded

pytestmark = pytest.mark.integration
DEADLINE = 20.0


@pytest.fixture(scope="module")
def apps():
    web, api = NamedApp("web"), NamedApp("api")
    yield web, api
    web.server.shutdown()
    api.server.shutdown()


def cli(agent: AgentProcess, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return agent.cli("connect", "proxy", *args, timeout=timeout)


def start_proxy(agent: AgentProcess, tmp: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "TRELLIS_HTTP_ADDR": f"127.0.0.1:{agent.http_port}"}
    log = open(tmp / f"proxy-{time.monotonic_ns()}.log", "w")
    return subprocess.Popen(guarded([sys.executable, "-m", "trellis", "connect", "proxy", *args]), env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(5)


def register(agent: AgentProcess, body: dict) -> None:
    status, _, text = agent.request("PUT", "/v1/agent/service/register", body)
    assert status == 200, text


def check_status(agent: AgentProcess, service: str, name: str) -> str:
    """The status of the check ``name`` on ``service``'s sidecar."""
    _, _, checks = agent.request("GET", f"/v1/health/checks/{service}-sidecar-proxy")
    return next((c["Status"] for c in checks if c["Name"] == name), "")


def test_the_seeds_sidecar_turns_healthy_serves_and_answers_the_verbs(agent, apps, tmp_path):
    web_app, api_app = apps
    web_pub, api_pub, upstream = free_port(), free_port(), free_port()
    # the seed's registration, on free ports, with its plaintext /health check on the public port
    register(agent, {"Name": "web", "ID": "web-1", "Port": web_app.port, "Connect": {"SidecarService": {
        "Port": web_pub, "Check": {"Name": "Connect Sidecar Health", "HTTP": f"http://localhost:{web_pub}/health",
                                   "Interval": "1s"},
        "Proxy": {"Config": {"bind_address": "127.0.0.1"},
                  "Upstreams": [{"DestinationName": "api", "LocalBindPort": upstream}]}}}})
    register(agent, {"Name": "api", "ID": "api-1", "Port": api_app.port, "Connect": {"SidecarService": {
        "Port": api_pub, "Proxy": {"Config": {"bind_address": "127.0.0.1"}}}}})
    assert check_status(agent, "web", "Connect Sidecar Health") == "critical"
    web = start_proxy(agent, tmp_path, "-sidecar-for", "web-1")
    api = start_proxy(agent, tmp_path, "-sidecar-for", "api")  # a name with one instance works too
    try:
        eventually(lambda: check_status(agent, "web", "Connect Sidecar Health") == "passing")
        assert eventually(lambda: answer(upstream)) == "api"
        listed = cli(agent, "-list")
        assert listed.returncode == 0
        row = next(line for line in listed.stdout.splitlines() if line.startswith("web-1-sidecar-proxy"))
        assert row.split()[1:3] == ["web", "builtin"] and "in sync (" in row  # applied == sent
        as_json = json.loads(cli(agent, "-list", "-format", "json").stdout)
        assert {p["ProxyID"] for p in as_json} >= {"web-1-sidecar-proxy", "api-1-sidecar-proxy"}
        verify = cli(agent, "-sidecar-for", "web-1", "-verify")
        assert verify.returncode == 0 and verify.stdout.count("OK") == 3, verify.stdout
        assert "/svc/web" in verify.stdout
        stopped = cli(agent, "-sidecar-for", "api-1", "-stop")
        assert stopped.returncode == 0
        assert api.wait(DEADLINE) == 0  # drained and exited
        eventually(lambda: answer(upstream) is None)
    finally:
        assert stop(web) == 0
        stop(api)


def test_flags_mode_registers_serves_and_deregisters(agent, apps, tmp_path):
    _, api_app = apps
    api_pub, upstream, listen = free_port(), free_port(), free_port()
    register(agent, {"Name": "store", "ID": "store-1", "Port": api_app.port, "Connect": {"SidecarService": {
        "Port": api_pub, "Proxy": {"Config": {"bind_address": "127.0.0.1"}}}}})
    store = start_proxy(agent, tmp_path, "-sidecar-for", "store-1")
    shop = start_proxy(agent, tmp_path, "-service", "shop", "-service-addr", "127.0.0.1:9",
                       "-listen", f"127.0.0.1:{listen}", "-upstream", f"store:{upstream}", "-register")
    try:
        eventually(lambda: agent.request("GET", "/v1/agent/service/shop-proxy")[0] == 200)
        assert eventually(lambda: answer(upstream)) == "api"
        _, _, checks = agent.request("GET", "/v1/agent/checks")
        assert eventually(lambda: agent.request("GET", "/v1/agent/checks")[2].get("shop-proxy-ttl", {}).get("Status")
                     == "passing")
        assert checks.get("shop-proxy-ttl", {}).get("Name", "proxy heartbeat") == "proxy heartbeat"
    finally:
        assert stop(shop) == 0
        stop(store)
    assert agent.request("GET", "/v1/agent/service/shop-proxy")[0] == 404  # deregistered on exit


def test_an_extra_upstream_on_a_registration_and_a_clash(agent, apps, tmp_path):
    _, api_app = apps
    pub, first, extra = free_port(), free_port(), free_port()
    register(agent, {"Name": "cart", "ID": "cart-1", "Port": api_app.port, "Connect": {"SidecarService": {
        "Port": pub, "Proxy": {"Config": {"bind_address": "127.0.0.1"},
                               "Upstreams": [{"DestinationName": "store", "LocalBindPort": first}]}}}})
    clash = cli(agent, "-sidecar-for", "cart-1", "-upstream", f"store:{first}")
    assert clash.returncode == 1 and "is already the bind address of upstream store" in clash.stderr
    proc = start_proxy(agent, tmp_path, "-sidecar-for", "cart-1", "-upstream", f"store:{extra}")
    try:
        eventually(lambda: any(p["ProxyID"].startswith("cart-1-sidecar-proxy-cli-")
                          for p in json.loads(cli(agent, "-list", "-format", "json").stdout)))
    finally:
        assert stop(proc) == 0
    eventually(lambda: not any(p["ProxyID"].startswith("cart-1-sidecar-proxy-cli-")
                          for p in json.loads(cli(agent, "-list", "-format", "json").stdout)))


@pytest.mark.parametrize(("args", "message"), [
    (("-sidecar-for", "nope"), "No sidecar proxy registered for nope"),
    ((), "-service or -proxy-id must be specified so that proxy can configure itself."),
    (("-service", "x", "-listen", "127.0.0.1:1"), "-service needs -listen host:port and -service-addr host:port"),
    (("-service", "x", "-listen", "127.0.0.1:1", "-service-addr", "a:2", "-upstream", "bad"),
     "expected name:port or name:addr:port"),
], ids=["unknown-sidecar", "nothing-to-serve", "flags-mode-incomplete", "bad-upstream"])
def test_errors_name_the_problem(agent, args, message):
    r = cli(agent, *args)
    assert r.returncode == 1 and message in r.stderr, r.stderr
