"""Real Envoys for integration tests: one seen through its admin port (``EnvoyProcess``),
and a mesh of apps with Envoy sidecars around one agent (``EnvoyMesh``). Everything is
started by the test on free loopback ports and stopped by PID: SIGTERM, then SIGKILL
after a grace period."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.request
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trellis.testing.agent import AgentProcess, free_port
from trellis.testing.apps import NamedApp, Respond, eventually
from trellis.testing.orphans import guarded

DEADLINE = 30.0  # Envoys take a while to come up
ENVOY_ARGS = ["-l", "warning"]


@dataclass
class EnvoyProcess:
    """A running Envoy (started by the test), looked at through its admin port."""

    proxy_id: str
    proc: subprocess.Popen
    admin_port: int
    log_path: Path

    def admin(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as r:
            return r.read().decode()

    def dump(self, resource: str) -> list[dict]:
        """``/config_dump?resource=...``: the list of that kind of resource."""
        return json.loads(self.admin(f"/config_dump?resource={resource}")).get("configs", [])

    def listener(self, name: str) -> dict | None:
        for entry in self.dump("dynamic_listeners"):
            if entry.get("name") == name and "active_state" in entry:
                return entry["active_state"]["listener"]
        return None

    def route(self, name: str) -> dict | None:
        for entry in self.dump("dynamic_route_configs"):
            if entry.get("route_config", {}).get("name") == name:
                return entry["route_config"]
        return None

    def endpoint_metadata(self, cluster: str, namespace: str) -> list[dict]:
        """The ``namespace`` filter metadata of each endpoint EDS gave ``cluster``."""
        text = self.admin("/config_dump?resource=dynamic_endpoint_configs&include_eds")
        for entry in json.loads(text).get("configs", []):
            assignment = entry.get("endpoint_config", {})
            if assignment.get("cluster_name") == cluster:
                return [e.get("metadata", {}).get("filter_metadata", {}).get(namespace, {})
                        for group in assignment.get("endpoints", []) for e in group.get("lb_endpoints", [])]
        return []

    def secret(self, name: str) -> dict | None:
        for entry in self.dump("dynamic_active_secrets"):
            if entry.get("name") == name:
                return entry["secret"]
        return None

    def cluster_names(self) -> set[str]:
        return {entry["cluster"]["name"] for entry in self.dump("dynamic_active_clusters")}

    def hosts(self, cluster: str) -> dict[int, str]:
        """``/clusters``: port -> EDS health status of each member of ``cluster``."""
        for c in json.loads(self.admin("/clusters?format=json")).get("cluster_statuses", []):
            if c["name"] == cluster:
                return {h["address"]["socket_address"]["port_value"]: h.get("health_status", {}).get(
                    "eds_health_status", "?") for h in c.get("host_statuses", [])}
        return {}

    def stat(self, name: str) -> int:
        """A counter or gauge by exact name (0 when Envoy has not created it)."""
        text = self.admin(f"/stats?filter=^{re.escape(name)}$")
        for line in text.splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0

    def log(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def listeners(self) -> set[str]:
        """Names of the active dynamic listeners."""
        return {e["name"] for e in self.dump("dynamic_listeners") if "active_state" in e}

    def clusters(self) -> dict[str, dict]:
        """Active dynamic clusters by name."""
        return {e["cluster"]["name"]: e["cluster"] for e in self.dump("dynamic_active_clusters")}

    def rejected(self) -> list[str]:
        """Envoy's non-zero ``*.update_rejected`` counters: every NACK it sent."""
        lines = self.admin("/stats?filter=update_rejected").splitlines()
        return [line for line in lines if line.partition(": ")[2].strip() not in ("", "0")]

    def stop(self) -> None:
        stop_processes([self.proc])


def stop_processes(procs: list[subprocess.Popen], grace: float = 10.0) -> None:
    """SIGTERM every process still running, then wait for each; SIGKILL one that outlives ``grace``."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@dataclass
class EnvoyMesh:
    """An agent, apps, and a sidecar with a real Envoy per app: what the data-plane
    integration tests build stories on. Every Envoy is stopped by PID in ``stop``."""

    tmp: Path
    agent: AgentProcess
    apps: list[NamedApp] = field(default_factory=list)
    envoys: dict[str, EnvoyProcess] = field(default_factory=dict)  # service id -> its sidecar's Envoy

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "TRELLIS_HTTP_ADDR": self.agent.http_addr}

    def register(self, name: str, sid: str, *, public: int | None = None, upstreams: list[dict] | None = None,
                 config: dict | None = None, respond: Respond | None = None, tags: list[str] | None = None,
                 meta: dict[str, str] | None = None) -> int:
        """``sid`` with its app and a sidecar (public /health checked every second); its
        public port. ``tags`` and ``meta`` go on the service (its sidecar inherits them)."""
        app = NamedApp(sid, respond)
        self.apps.append(app)
        public = public or free_port()
        status, _, text = self.agent.request("PUT", "/v1/agent/service/register", {
            "Name": name, "ID": sid, "Port": app.port, "Tags": tags or [], "Meta": meta or {},
            "Connect": {"SidecarService": {
                "Port": public,
                "Checks": [{"Name": "public /health", "HTTP": f"http://127.0.0.1:{public}/health", "Interval": "1s"}],
                "Proxy": {"Config": {"bind_address": "127.0.0.1", **(config or {})}, "Upstreams": upstreams or []}}}})
        assert status == 200, text
        return public

    def start_envoy(self, sid: str) -> EnvoyProcess:
        admin, log_path = free_port(), self.tmp / f"envoy-{sid}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(guarded(
                [sys.executable, "-m", "trellis", "connect", "envoy", "-sidecar-for", sid,
                 "-admin-bind", f"127.0.0.1:{admin}", "--", *ENVOY_ARGS]),
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.envoys[sid] = envoy = EnvoyProcess(sid, proc, admin, log_path)
        return envoy

    def stop(self) -> None:
        for envoy in self.envoys.values():
            envoy.stop()
        for app in self.apps:
            app.close()

    def proxy(self, sid: str) -> dict:
        status, _, rows = self.agent.request("GET", "/v1/agent/connect/proxies")
        assert status == 200, rows
        return next((r for r in rows if r["ProxyID"] == f"{sid}-sidecar-proxy"), {})

    def in_sync(self, sid: str) -> bool:
        """``sid``'s sidecar has applied its current snapshot."""
        return self.in_sync_id(f"{sid}-sidecar-proxy")

    def in_sync_id(self, proxy_id: str) -> bool:
        """The proxy (a sidecar's or a gateway's ID) has applied its current snapshot."""
        status, _, rows = self.agent.request("GET", "/v1/agent/connect/proxies")
        assert status == 200, rows
        row = next((r for r in rows if r["ProxyID"] == proxy_id), {})
        return bool(row.get("SnapshotVersion")) and row.get("AppliedVersion") == row["SnapshotVersion"]

    def nacks(self) -> list[str]:
        found = [line for line in self.agent.log().splitlines() if "xds:" in line and " rejected " in line]
        for sid, envoy in self.envoys.items():
            found += [f"{sid}: {line}" for line in envoy.rejected()]
        return found

    def warnings(self, sid: str, text: str) -> list[str]:
        return [line for line in self.agent.log().splitlines()
                if "[WARNING]" in line and f"{sid}-sidecar-proxy" in line and text in line]

    def diagnose(self) -> str:
        parts = [f"agent log tail:\n{chr(10).join(self.agent.log().splitlines()[-15:])}"]
        for sid, envoy in self.envoys.items():
            tail = envoy.log_path.read_text(errors="replace").splitlines()[-10:]
            parts.append(f"--- Envoy {sid} (exit {envoy.proc.poll()}):\n" + "\n".join(tail))
        return "\n".join(parts)

    def wait(self, check: Callable[[], Any], what: str) -> Any:
        return eventually(check, what, DEADLINE, diagnose=self.diagnose)

    def start_gateway(self, kind: str, service: str) -> EnvoyProcess:
        """``connect envoy -gateway=<kind> -proxy-id <service>``: the gateway registered on the agent
        (its ID is its name); -proxy-id names it when several of a kind are registered, as in Consul."""
        admin, log_path = free_port(), self.tmp / f"envoy-{service}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(guarded(
                [sys.executable, "-m", "trellis", "connect", "envoy", f"-gateway={kind}", "-proxy-id", service,
                 "-admin-bind", f"127.0.0.1:{admin}", "--", *ENVOY_ARGS]),
                env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.envoys[service] = envoy = EnvoyProcess(service, proc, admin, log_path)
        return envoy

    def config_write(self, entry: dict) -> None:
        status, _, text = self.agent.request("PUT", "/v1/config", entry)
        assert status == 200, text

    def check_state(self, service_id: str, state: str) -> None:
        """Force ``service_id`` critical with a TTL check of its own, or lift that (``passing``)."""
        check_id = f"forced-{service_id}"
        if state == "passing":
            status, _, text = self.agent.request("PUT", f"/v1/agent/check/deregister/{check_id}")
        else:
            status, _, text = self.agent.request("PUT", "/v1/agent/check/register", {
                "Name": "forced by the test", "ID": check_id, "ServiceID": service_id, "TTL": "600s",
                "Status": state})
        assert status == 200, text

    def cli(self, *args: str) -> str:
        done = self.agent.cli(*args, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout
