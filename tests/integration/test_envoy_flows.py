"""The seed's flows end to end through real Envoys configured by the agent over delta ADS
(issue 6, item 5), each asserted twice: by what a user sees (requests through web's
upstream port) and by what Envoy says on its admin port (``/config_dump``, ``/clusters``,
``/certs``, ``/stats``).

    client ─▶ web Envoy upstream 127.0.0.1:U ══mTLS══▶ api-1 Envoy ─▶ api-1 app
                                              ╚══mTLS══▶ api-2 Envoy ─▶ api-2 app

One module-scoped agent and mesh (web-1, api-1, api-2, three Envoys) serve the stories
that leave the mesh as they found it; the agent-restart story has its own agent and Envoys.
Every process is stopped by PID in teardown; every wait polls a condition with a deadline.
test_envoy_sidecars.py already shows web -> api and an L4 deny with requests only; here
the same flows are also checked against Envoy's own view.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from trellis.testing.agent import AgentProcess, free_port, start_agent
from trellis.testing.apps import NamedApp, Traffic, answer, eventually, get
from trellis.testing.envoy import EnvoyProcess
from trellis.testing.orphans import guarded

pytestmark = pytest.mark.integration

FAST = 'connect { root_change_jitter = "0s" }'
DEADLINE = 20.0
# short drains so that a replaced filter chain lets go of its connections quickly
ENVOY_ARGS = ["-l", "info", "--drain-time-s", "1", "--drain-strategy", "immediate"]
INTENTION = "/v1/connect/intentions/exact?source=web&destination=api"
RBAC_DENIED = "RBAC: access denied"  # Envoy's own 403 body, never the app's
API = ["api-1", "api-2"]


# -- the pieces ------------------------------------------------------------------------------
# -- Envoy, seen through its admin port ------------------------------------------------------
def rbac_policies(chain: dict) -> dict:
    """The RBAC policies (network or HTTP filter) of one filter chain from config_dump."""
    for f in chain.get("filters", []):
        cfg = f.get("typed_config", {})
        if f["name"] == "envoy.filters.network.rbac":
            return {"action": cfg.get("rules", {}).get("action", "ALLOW"), **cfg.get("rules", {}).get("policies", {})}
        if f["name"] == "envoy.filters.network.http_connection_manager":
            for hf in cfg.get("http_filters", []):
                if hf["name"] == "envoy.filters.http.rbac":
                    rules = hf.get("typed_config", {}).get("rules", {})
                    return {"action": rules.get("action", "ALLOW"), **rules.get("policies", {})}
    return {}


def route_rbac_policies(route: dict | None) -> dict:
    """The HTTP RBAC policies a route carries per route (RBACPerRoute), from config_dump."""
    for host in (route or {}).get("virtual_hosts", []):
        for r in host.get("routes", []):
            per_route = r.get("typed_per_filter_config", {}).get("envoy.filters.http.rbac", {})
            rules = per_route.get("rbac", {}).get("rules", {})
            if rules:
                return {"action": rules.get("action", "ALLOW"), **rules.get("policies", {})}
    return {}


def mtls_chain(listener: dict) -> dict:
    return next(c for c in listener["filter_chains"] if c.get("name") == "mtls")


def pem_certs(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data) if data.strip() else []


def inline(source: dict) -> bytes:
    """A DataSource from config_dump: inline_bytes come base64-encoded."""
    if "inline_bytes" in source:
        return base64.b64decode(source["inline_bytes"])
    return source.get("inline_string", "").encode()


def ski(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def aki(cert: x509.Certificate) -> bytes | None:
    return cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier


# -- the mesh --------------------------------------------------------------------------------
@dataclass
class Mesh:
    tmp: Path
    agent: AgentProcess
    apps: dict[str, NamedApp] = field(default_factory=dict)
    public: dict[str, int] = field(default_factory=dict)  # service id -> its sidecar's public port
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)  # service id -> its sidecar Envoy
    upstream: int = 0  # web's upstream port for api

    def call(self, method: str, path: str, body: Any = None) -> Any:
        status, _, data = self.agent.request(method, path, body)
        assert status == 200, (method, path, status, data)
        return data

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "TRELLIS_HTTP_ADDR": self.agent.http_addr}

    def register(self, name: str, sid: str, *, upstreams: dict[str, int] | None = None,
                 check: dict | None = None) -> None:
        self.apps[sid] = NamedApp(sid)
        self.public[sid] = free_port()
        public = self.public[sid]
        body: dict[str, Any] = {"Name": name, "ID": sid, "Port": self.apps[sid].port, "Connect": {"SidecarService": {
            "Port": public,
            # the seed's check, plaintext /health on the mTLS port, every second: it replaces the default
            # 10 s "Connect Sidecar Listening" check (the sidecar keeps the alias check on its app)
            "Checks": [{"Name": "public /health", "HTTP": f"http://127.0.0.1:{public}/health", "Interval": "1s"}],
            "Proxy": {"Config": {"bind_address": "127.0.0.1"}, "Upstreams": [
                {"DestinationName": d, "LocalBindPort": p} for d, p in (upstreams or {}).items()]}}}}
        if check:
            body["Check"] = check
        self.call("PUT", "/v1/agent/service/register", body)

    def start_envoy(self, sid: str) -> EnvoyProcess:
        admin = free_port()
        log_path = self.tmp / f"envoy-{sid}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(guarded(
                [sys.executable, "-m", "trellis", "connect", "envoy", "-sidecar-for", sid,
                 "-admin-bind", f"127.0.0.1:{admin}", "--", *ENVOY_ARGS]),
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.envoys[sid] = envoy = EnvoyProcess(f"{sid}-sidecar-proxy", proc, admin, log_path)
        return envoy

    def stop(self) -> None:
        """Every Envoy by PID (SIGTERM, then SIGKILL), then the apps; one failure stops nothing else."""
        for envoy in self.envoys.values():
            try:
                envoy.stop()
            except OSError:
                if envoy.proc.poll() is None:
                    envoy.proc.kill()
        for app in self.apps.values():
            app.close()

    # -- what the agent says about its Envoys
    def proxies(self) -> dict[str, dict]:
        return {r["ProxyID"]: r for r in self.call("GET", "/v1/agent/connect/proxies")}

    def versions(self) -> dict[str, str]:
        return {pid: r["SnapshotVersion"] for pid, r in self.proxies().items()}

    def applied(self, sids: list[str] | None = None, *, changed_from: dict[str, str] | None = None) -> bool:
        """Every Envoy of ``sids`` ACKed its current snapshot (a new one, with ``changed_from``)."""
        rows = self.proxies()
        for sid in sids or list(self.envoys):
            r = rows.get(f"{sid}-sidecar-proxy")
            if r is None or not r["SnapshotVersion"] or r["AppliedVersion"] != r["SnapshotVersion"]:
                return False
            if changed_from is not None and r["SnapshotVersion"] == changed_from.get(r["ProxyID"]):
                return False
        return True

    def snapshot(self, sid: str) -> dict:
        return self.call("GET", f"/v1/agent/connect/proxy-snapshot/{sid}-sidecar-proxy")

    def sni(self, service: str = "api") -> str:
        return next(u["sni"] for u in self.snapshot("web-1")["upstreams"] if u["destination_name"] == service)

    def diagnose(self) -> str:
        nacks = [line for line in self.agent.log().splitlines() if " rejected " in line or "Traceback" in line]
        parts = ["agent NACK/error lines:\n" + "\n".join(nacks[-10:])]
        for sid, envoy in self.envoys.items():
            parts.append(f"--- Envoy {sid} (exit {envoy.proc.poll()}):\n{envoy.log(15)}")
        return "\n".join(parts)

    def wait(self, check: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
        return eventually(check, what, timeout, diagnose=self.diagnose)

    def sum_stat(self, sids: list[str], name: str) -> int:
        return sum(self.envoys[s].stat(name) for s in sids)

    def rejections(self) -> list[str]:
        """Every NACK: EnvoyProcess's non-zero ``*.update_rejected`` counters and the agent's NACK log lines."""
        found = [line for line in self.agent.log().splitlines() if "xds:" in line and " rejected " in line]
        for sid, envoy in self.envoys.items():
            found += [f"{sid}: {line}" for line in envoy.rejected()]
        return found


def build_mesh(tmp: Path, agent: AgentProcess, *, api: list[str]) -> Mesh:
    mesh = Mesh(tmp, agent, upstream=free_port())
    try:
        for sid in api:
            check = {"CheckID": f"{sid}-ttl", "TTL": "10m", "Status": "passing"} if sid == "api-2" else None
            mesh.register("api", sid, check=check)
        mesh.register("web", "web-1", upstreams={"api": mesh.upstream})
        for sid in [*api, "web-1"]:
            mesh.start_envoy(sid)
        mesh.wait(lambda: set(api) <= {answer(mesh.upstream) for _ in range(2 * len(api) + 2)},
                  f"web reaches {', '.join(api)} through its Envoy")
        mesh.wait(mesh.applied, "every Envoy ACKs its snapshot")
    except BaseException:
        mesh.stop()
        raise
    return mesh


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> AgentProcess:
    proc = start_agent(tmp_path_factory.mktemp("envoy-flows-agent"), "-hcl", FAST)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def mesh(agent, tmp_path_factory) -> Mesh:
    m = build_mesh(tmp_path_factory.mktemp("envoy-flows"), agent, api=["api-1", "api-2"])
    yield m
    m.stop()


@pytest.fixture(autouse=True)
def no_nacks(request):
    """Every story ends with no configuration rejected by any Envoy."""
    yield
    if "mesh" in request.fixturenames:
        m = request.getfixturevalue("mesh")
        assert m.rejections() == [], m.diagnose()


# -- 1. web -> api ---------------------------------------------------------------------------
def test_web_reaches_both_api_instances_and_envoy_shows_the_config_it_was_given(mesh):
    seen = [answer(mesh.upstream) for _ in range(10)]
    assert set(seen) == {"api-1", "api-2"}, seen  # round robin over both healthy sidecars

    web, sni = mesh.envoys["web-1"], mesh.sni()
    assert web.listener(f"api:127.0.0.1:{mesh.upstream}") is not None, [e.get("name") for e in
                                                                      web.dump("dynamic_listeners")]
    assert {sni, "local_app"} <= web.cluster_names()
    assert web.hosts(sni) == {mesh.public["api-1"]: "HEALTHY", mesh.public["api-2"]: "HEALTHY"}
    assert web.stat(f"cluster.{sni}.membership_healthy") == 2
    assert web.stat(f"cluster.{sni}.upstream_cx_total") >= 10  # tcp: one upstream connection per request
    assert web.stat("control_plane.connected_state") == 1
    for sid in API:
        api = mesh.envoys[sid]
        public = api.listener("public_listener")
        assert public is not None
        assert public["address"]["socket_address"]["port_value"] == mesh.public[sid]
        assert {c.get("name") for c in public["filter_chains"]} == {"mtls", "plaintext_health"}
        assert api.stat("cluster.local_app.upstream_cx_total") >= 1
        assert api.secret("leaf/default/api") is not None and api.secret("roots") is not None
    assert get(mesh.public["web-1"], "/health") == (200, "ok\n")  # the seed's plaintext check, from Envoy


# -- 2. L4 deny/allow ------------------------------------------------------------------------
def test_an_l4_deny_and_allow_take_effect_on_the_next_connection_and_count_in_rbac_stats(mesh):
    denied0 = mesh.sum_stat(API, "connect_authz.rbac.denied")
    try:
        before = mesh.versions()
        mesh.call("PUT", INTENTION, {"Action": "deny"})
        mesh.wait(lambda: mesh.applied(API, changed_from=before), "both api Envoys ACK the deny")
        # the very next connections are refused by whichever api Envoy they reach
        assert [answer(mesh.upstream) for _ in range(4)] == [None] * 4
        mesh.wait(lambda: mesh.sum_stat(API, "connect_authz.rbac.denied") >= denied0 + 4, "rbac.denied counts them")
        for sid in API:  # the listener keeps its one live policy; the decision is local_app's metadata
            policies = rbac_policies(mtls_chain(mesh.envoys[sid].listener("public_listener")))
            assert policies["action"] == "ALLOW" and set(policies) == {"action", "consul-intentions-live"}, policies
            assert mesh.envoys[sid].endpoint_metadata("local_app", "trellis.intentions") == [
                {"default": True, "sources": {"*": {"*": True}, "default": {"web": False}}}]

        allowed0 = mesh.sum_stat(API, "connect_authz.rbac.allowed")
        before = mesh.versions()
        mesh.call("PUT", INTENTION, {"Action": "allow"})
        mesh.wait(lambda: mesh.applied(API, changed_from=before), "both api Envoys ACK the allow")
        seen = [answer(mesh.upstream) for _ in range(4)]  # the very next connections pass again
        assert set(seen) <= {"api-1", "api-2"}, seen
        mesh.wait(lambda: mesh.sum_stat(API, "connect_authz.rbac.allowed") >= allowed0 + 4,
                  "rbac.allowed counts them")
        for sid in API:
            assert mesh.envoys[sid].endpoint_metadata("local_app", "trellis.intentions") == [
                {"default": True, "sources": {"*": {"*": True}, "default": {"web": True}}}]
    finally:
        mesh.agent.request("DELETE", INTENTION)
    mesh.wait(lambda: answer(mesh.upstream) in ("api-1", "api-2"), "traffic as before")


# -- 3. L7 -----------------------------------------------------------------------------------
def l7_entry(allowed_prefix: str) -> dict:
    return {"Kind": "service-intentions", "Name": "api", "Sources": [{"Name": "web", "Permissions": [
        {"Action": "allow", "HTTP": {"PathPrefix": allowed_prefix}},
        {"Action": "deny", "HTTP": {"PathPrefix": "/"}}]}]}


def test_l7_permissions_allow_one_path_deny_the_rest_and_a_change_flips_on_the_next_request(mesh):
    web, up, sni = mesh.envoys["web-1"], mesh.upstream, mesh.sni()
    denied0 = mesh.sum_stat(API, "http.public_listener.rbac.denied")
    try:
        before = mesh.versions()
        mesh.call("PUT", "/v1/config", {"Kind": "service-defaults", "Name": "api", "Protocol": "http"})
        mesh.call("PUT", "/v1/config", l7_entry("/public"))
        mesh.wait(lambda: mesh.applied(changed_from=before), "every Envoy ACKs the http protocol and the L7 entry")
        mesh.wait(lambda: all(route_rbac_policies(mesh.envoys[s].route("public_listener")).get(
            "consul-intentions-layer7-0") for s in API),
            "api's public route carries the HTTP RBAC policy (per route, over RDS)")
        upstream = web.listener(f"api:127.0.0.1:{up}")
        assert upstream["filter_chains"][0]["filters"][0]["name"] == "envoy.filters.network.http_connection_manager"

        mesh.wait(lambda: answer(up, "/public/x") in ("api-1", "api-2"), "/public passes")
        assert {get(up, "/public/x")[0] for _ in range(6)} == {200}
        assert [get(up, "/private") for _ in range(4)] == [(403, RBAC_DENIED)] * 4  # from Envoy, not the app
        mesh.wait(lambda: mesh.sum_stat(API, "http.public_listener.rbac.denied") >= denied0 + 4,
                  "http rbac.denied counts the 403s")

        before = mesh.versions()
        mesh.call("PUT", "/v1/config", l7_entry("/private"))
        mesh.wait(lambda: mesh.applied(API, changed_from=before), "both api Envoys ACK the changed entry")
        cx0 = web.stat(f"cluster.{sni}.upstream_cx_total")
        first = get(up, "/public/x")  # the next request after the ACK: now denied
        reused = web.stat(f"cluster.{sni}.upstream_cx_total") == cx0  # it rode a pooled web -> api connection
        mesh.wait(lambda: get(up, "/private")[0] == 200 and get(up, "/public/x") == (403, RBAC_DENIED),
                  "the change is enforced")
        assert {get(up, "/private")[0] for _ in range(6)} == {200}
        assert first == (403, RBAC_DENIED), (
            f"the first request after every api Envoy ACKed the new entry got {first} "
            f"({'on a kept-alive web -> api connection' if reused else 'on a new connection'}): the HTTP RBAC "
            "rules live in the public listener's filter chain, so requests on connections accepted before the "
            "change keep the old rules until the old chain drains")
    finally:
        mesh.agent.request("DELETE", "/v1/config/service-intentions/api")
        mesh.agent.request("DELETE", "/v1/config/service-defaults/api")
    mesh.wait(lambda: web.listener(f"api:127.0.0.1:{up}")["filter_chains"][0]["filters"][0]["name"]
              == "envoy.filters.network.tcp_proxy", "api back to tcp")
    mesh.wait(lambda: answer(up, "/private") in ("api-1", "api-2"), "traffic as before")


# -- 4. CA rotation --------------------------------------------------------------------------
def envoy_leaf(envoy: EnvoyProcess) -> x509.Certificate | None:
    secret = envoy.secret("leaf/default/" + envoy.proxy_id.split("-")[0])
    if secret is None:
        return None
    chain = pem_certs(inline(secret["tls_certificate"]["certificate_chain"]))
    return chain[0] if chain else None


def envoy_roots(envoy: EnvoyProcess) -> list[x509.Certificate]:
    secret = envoy.secret("roots")
    return pem_certs(inline(secret["validation_context"]["trusted_ca"])) if secret else []


def test_ca_rotation_under_a_steady_request_loop_drops_nothing_and_envoy_holds_the_new_leaf_and_two_roots(mesh):
    old_serials = {sid: envoy_leaf(e).serial_number for sid, e in mesh.envoys.items()}
    with Traffic(mesh.upstream) as traffic:
        traffic.wait_for(10)
        rotated = mesh.call("POST", "/v1/connect/ca/rotate")
        roots = mesh.call("GET", "/v1/connect/ca/roots")
        assert len(roots["Roots"]) == 2
        active = next(x509.load_pem_x509_certificate(r["RootCert"].encode())
                      for r in roots["Roots"] if r["ID"] == rotated["ActiveRootID"])

        def rotated_everywhere() -> bool:
            for sid, envoy in mesh.envoys.items():
                leaf = envoy_leaf(envoy)
                if leaf is None or leaf.serial_number == old_serials[sid] or aki(leaf) != ski(active):
                    return False
            return True

        mesh.wait(rotated_everywhere, "every Envoy holds a leaf signed by the new root")
        mesh.wait(mesh.applied, "every Envoy ACKs its rotated snapshot")
        traffic.wait_for(30)
    assert traffic.failures == [], f"{len(traffic.failures)} failed of {traffic.ok + len(traffic.failures)}: " \
                                   f"{traffic.failures[:5]}\n{mesh.diagnose()}"

    want_roots = sorted(r["RootCert"].strip() for r in roots["Roots"])
    for sid, envoy in mesh.envoys.items():
        held = envoy_roots(envoy)
        assert len(held) == 2, (sid, len(held))
        assert sorted(c.public_bytes(Encoding.PEM).decode().strip() for c in held) == want_roots
        leaf = envoy_leaf(envoy)
        snap_leaf = x509.load_pem_x509_certificates(mesh.snapshot(sid)["leaf"]["cert_pem"].encode())[0]
        assert leaf == snap_leaf, sid
        # /certs: the TLS contexts in use present the new leaf
        certs = json.loads(envoy.admin("/certs"))["certificates"]
        in_use = {int(c["serial_number"], 16) for ctx in certs for c in ctx.get("cert_chain", [])}
        assert in_use == {leaf.serial_number}, (sid, in_use, leaf.serial_number)


# -- 5. a critical instance ------------------------------------------------------------------
def test_a_critical_api_instance_stops_receiving_traffic_and_comes_back_when_passing(mesh):
    web, sni = mesh.envoys["web-1"], mesh.sni()
    gone, kept = mesh.public["api-2"], mesh.public["api-1"]
    mesh.call("PUT", "/v1/agent/check/fail/api-2-ttl")
    try:
        # Envoy's view: no healthy member at api-2 (trellis leaves critical endpoints out of EDS,
        # translate/endpoints.py rule 1; Consul sends them UNHEALTHY: either is no traffic)
        mesh.wait(lambda: web.hosts(sni).get(gone, "absent") != "HEALTHY"
                  and web.stat(f"cluster.{sni}.membership_healthy") == 1, "api-2 unhealthy in web's /clusters")
        assert web.hosts(sni).get(kept) == "HEALTHY"
        seen = [answer(mesh.upstream) for _ in range(20)]
        assert seen == ["api-1"] * 20, seen
    finally:
        mesh.call("PUT", "/v1/agent/check/pass/api-2-ttl")
    mesh.wait(lambda: web.hosts(sni) == {kept: "HEALTHY", gone: "HEALTHY"}, "api-2 healthy again in /clusters")
    mesh.wait(lambda: "api-2" in {answer(mesh.upstream) for _ in range(6)}, "api-2 receives traffic again")


# -- 6. the agent stops and comes back -------------------------------------------------------
def test_envoys_serve_on_their_last_config_while_the_agent_is_down_and_resync_when_it_is_back(tmp_path):
    agent = start_agent(tmp_path / "agent", "-hcl", FAST, data_dir=str(tmp_path / "data"))
    mesh: Mesh | None = None
    try:
        mesh = build_mesh(tmp_path, agent, api=["api-1"])
        envoys = list(mesh.envoys.values())
        with Traffic(mesh.upstream) as traffic:
            traffic.wait_for(5)
            assert agent.stop() == 0
            mesh.wait(lambda: all(e.stat("control_plane.connected_state") == 0 for e in envoys),
                      "every Envoy sees its ADS stream gone")
            traffic.wait_for(30)  # served from the last configuration
            down_failures = list(traffic.failures)
            mesh.agent = agent = start_agent(tmp_path / "agent-back", "-hcl", FAST, data_dir=agent.data_dir,
                                             ports=(agent.http_port, agent.dns_port, agent.grpc_port))
            mesh.wait(lambda: all(e.stat("control_plane.connected_state") == 1 for e in envoys),
                      "every Envoy reconnects to the agent on the same port", timeout=40)
            mesh.wait(mesh.applied, "every Envoy ACKs the restarted agent's snapshot")
            traffic.wait_for(10)
        assert down_failures == [], down_failures[:5]

        # resynced: a change made after the restart reaches every Envoy
        denied0 = mesh.envoys["api-1"].stat("connect_authz.rbac.denied")
        before = mesh.versions()
        mesh.call("PUT", INTENTION, {"Action": "deny"})
        mesh.wait(lambda: mesh.applied(["api-1"], changed_from=before), "api's Envoy ACKs the new deny")
        assert answer(mesh.upstream) is None
        mesh.wait(lambda: mesh.envoys["api-1"].stat("connect_authz.rbac.denied") > denied0, "and counts it")
        mesh.call("DELETE", INTENTION)
        mesh.wait(lambda: answer(mesh.upstream) == "api-1", "traffic restored")
        assert mesh.rejections() == [], mesh.diagnose()
    finally:
        if mesh is not None:
            mesh.stop()
        agent.stop()
