"""A real Envoy seen through its admin port, for integration tests (started by the test,
stopped by PID: SIGTERM, then SIGKILL after a grace period)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path


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
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
