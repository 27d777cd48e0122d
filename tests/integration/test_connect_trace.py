"""``trellis connect trace`` against a real agent (issue 7, item 5): web's sidecar has an
upstream to api; the trace reads the snapshots the agent builds for the registered
sidecars (no proxy process runs: the watcher builds a snapshot for every local
connect-proxy, running or not), so each story changes the catalog or the config
entries, waits for the trace to say so, and checks what the CLI prints and its exit code.

    web-1 ── sidecar (upstream api) ──▶ api-1's sidecar     db-1's sidecar (no upstream to it)

Every process is started on free loopback ports and stopped by PID; every wait polls
with a deadline.
"""

from __future__ import annotations

import subprocess
import urllib.parse

import pytest

from trellis.testing.agent import AgentProcess, free_port, start_agent
from trellis.testing.apps import eventually

pytestmark = pytest.mark.integration
DEADLINE = 20.0


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> AgentProcess:
    proc = start_agent(tmp_path_factory.mktemp("connect-trace"))
    try:
        register(proc, "api", "api-1")
        register(proc, "db", "db-1")
        register(proc, "web", "web-1", upstreams=[{"DestinationName": "api", "LocalBindPort": free_port()}])
        eventually(lambda: trace_api(proc, "web", "api").get("Ok"), "web's trace to api works", DEADLINE,
                   diagnose=proc.log)
    except BaseException:
        proc.stop()
        raise
    yield proc
    proc.stop()


def register(agent: AgentProcess, name: str, sid: str, upstreams: list[dict] | None = None) -> None:
    """``sid`` with a sidecar whose one check is a TTL check, passing (its alias check on
    ``sid`` passes too: ``sid`` has no checks)."""
    status, _, text = agent.request("PUT", "/v1/agent/service/register", {
        "Name": name, "ID": sid, "Port": free_port(), "Connect": {"SidecarService": {
            "Port": free_port(),
            "Checks": [{"CheckID": f"{sid}-sidecar-ttl", "Name": "sidecar ttl", "TTL": "600s", "Status": "passing"}],
            "Proxy": {"Upstreams": upstreams or []}}}})
    assert status == 200, text


def trace_api(agent: AgentProcess, source: str, destination: str) -> dict:
    query = urllib.parse.urlencode({"source": source, "destination": destination})
    status, _, body = agent.request("GET", f"/v1/agent/connect/trace?{query}")
    assert status == 200, body
    return body


def failed_at(agent: AgentProcess, step: str, destination: str = "api") -> dict:
    """Wait until web's trace to ``destination`` fails at ``step``."""
    return eventually(lambda: (lambda t: t if t["FailedStep"] == step else None)(trace_api(agent, "web", destination)),
                      f"the trace fails at {step}", DEADLINE, diagnose=agent.log)


def cli(agent: AgentProcess, *args: str) -> subprocess.CompletedProcess:
    return agent.cli("connect", "trace", *args, timeout=30)


def put(agent: AgentProcess, path: str, body: object = None) -> None:
    status, _, text = agent.request("PUT", path, body)
    assert status == 200, text


def test_a_healthy_path_works_and_shows_each_step(agent):
    done = cli(agent, "web", "api")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Trace web → api (from proxy web-1-sidecar-proxy)"
    # no proxy process runs: step 1 warns, which never breaks the path
    assert lines[2].startswith("WARN  1 proxy         web-1-sidecar-proxy (service web): no data plane")
    assert any(line.startswith("OK    4 endpoints     1 of 1 instance usable on the default path") for line in lines)
    assert any("api-1-sidecar-proxy  passing  usable" in line for line in lines)
    # api's sidecar runs on this agent: its leaf is checked against web's roots, and web's against its
    assert any("api-1-sidecar-proxy presents it (serial " in line and "each side's leaf chains" in line
               for line in lines)
    assert lines[-1] == "The path works, with 1 warning."


def test_a_destination_without_an_upstream_breaks_at_the_upstream(agent):
    done = cli(agent, "web", "db")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "its upstreams: api@127.0.0.1:" in done.stdout
    assert done.stdout.splitlines()[-1] == "Broken at step 2 (upstream): web has no upstream to db"


def test_an_intention_deny_breaks_at_the_intention(agent):
    put(agent, "/v1/connect/intentions/exact?source=web&destination=api", {"Action": "deny"})
    try:
        failed_at(agent, "intention")
        done = cli(agent, "web-1-sidecar-proxy", "api", "-format=json")
        assert done.returncode == 1
        assert '"FailedStep": "intention"' in done.stdout
        done = cli(agent, "web", "api")
        assert done.returncode == 1
        assert done.stdout.splitlines()[-1] == ("Broken at step 6 (intention): denied: Matched L4 intention: "
                                                "default/web => default/api (Precedence: 9, Action: DENY)")
    finally:
        agent.request("DELETE", "/v1/connect/intentions/exact?source=web&destination=api")
    eventually(lambda: trace_api(agent, "web", "api")["Ok"], "the path works again", DEADLINE)


def test_every_api_instance_critical_breaks_at_the_endpoints(agent):
    put(agent, "/v1/agent/check/fail/api-1-sidecar-ttl")
    try:
        failed_at(agent, "endpoints")
        done = cli(agent, "web", "api")
        assert done.returncode == 1
        assert "api-1-sidecar-proxy  critical  no traffic (critical: 'sidecar ttl')" in done.stdout
        assert done.stdout.splitlines()[-1] == ("Broken at step 4 (endpoints): no usable instance on the default "
                                                "path: the one instance of api is critical")
    finally:
        put(agent, "/v1/agent/check/pass/api-1-sidecar-ttl")
    eventually(lambda: trace_api(agent, "web", "api")["Ok"], "the path works again", DEADLINE)


def test_a_resolver_subset_that_matches_nothing_breaks_at_the_endpoints(agent):
    put(agent, "/v1/config", {"Kind": "service-resolver", "Name": "api", "DefaultSubset": "v9",
                              "Subsets": {"v9": {"Filter": "Service.Meta.version == v9"}}})
    try:
        failed_at(agent, "endpoints")
        done = cli(agent, "web", "api")
        assert done.returncode == 1
        assert "OK    3 chain         resolver; the default path ends at v9.api.default.default.dc1" in done.stdout
        assert "  default subset v9" in done.stdout
        assert done.stdout.splitlines()[-1] == (
            "Broken at step 4 (endpoints): no usable instance on the default path: no instance of api in the mesh "
            "matches subset v9 (the filter 'Service.Meta.version == v9')")
    finally:
        agent.request("DELETE", "/v1/config/service-resolver/api")
    eventually(lambda: trace_api(agent, "web", "api")["Ok"], "the path works again", DEADLINE)


def test_unknown_names_and_missing_parameters(agent):
    done = cli(agent, "nobody", "api")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("Error tracing nobody → api: Unexpected response code: 404 (unknown source "
                                  "'nobody'")
    done = cli(agent, "web", "nothing-by-that-name")
    assert done.returncode == 2 and "404 (unknown destination 'nothing-by-that-name'" in done.stderr
    status, _, body = agent.request("GET", "/v1/agent/connect/trace?source=web")
    assert (status, body) == (400, "required query parameter 'destination' not set")


def test_an_ingress_gateway_is_a_source_too(agent):
    """A trace can start at an ingress gateway: its listeners' services are its upstreams,
    the intention is the gateway's own, as its Envoy and api's sidecar judge it."""
    port = free_port()
    put(agent, "/v1/agent/service/register", {"Name": "edge", "Kind": "ingress-gateway", "Address": "127.0.0.1",
                                              "Port": free_port()})
    put(agent, "/v1/config", {"Kind": "ingress-gateway", "Name": "edge", "Listeners": [
        {"Port": port, "Protocol": "tcp", "Services": [{"Name": "api"}]}]})
    try:
        found = eventually(lambda: (lambda t: t if t.get("Ok") else None)(trace_api(agent, "edge", "api")),
                           "the gateway's trace to api works", DEADLINE, diagnose=agent.log)
        assert [s["Name"] for s in found["Steps"]][:2] == ["proxy", "upstream"]
        done = cli(agent, "edge", "api")
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.splitlines()[0] == "Trace edge → api (from proxy edge)"
        assert f"api at 127.0.0.1:{port} (tcp)" in done.stdout
        put(agent, "/v1/connect/intentions/exact?source=edge&destination=api", {"Action": "deny"})
        denied = eventually(lambda: (lambda t: t if t["FailedStep"] == "intention" else None)(
            trace_api(agent, "edge", "api")), "the gateway's trace fails at the intention", DEADLINE)
        assert "default/edge => default/api" in denied["Steps"][-1]["Summary"]
    finally:
        agent.request("DELETE", "/v1/connect/intentions/exact?source=edge&destination=api")
        agent.request("DELETE", "/v1/config/ingress-gateway/edge")
        agent.request("PUT", "/v1/agent/service/deregister/edge")
