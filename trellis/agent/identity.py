"""What the agent says about itself: /v1/agent/self, members, its node (pure).

Rules:
1. ``Config`` has the fields of Consul's anonymous struct in agent/agent_endpoint.go
   ``AgentSelf`` (Partition is omitempty and CE leaves it empty) plus
   ``TrellisVersion`` (docs/agent.md); ``Revision`` and the member's ``build`` tag
   name the trellis release where Consul puts its git commit.
2. ``Stats`` keeps Consul's section names (agent, runtime, raft, consul, build);
   every value is a string.
3. ``xDS`` is present only when a gRPC port is configured (``*XDSSelf`` omitempty).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any

from trellis import CONSUL_API_VERSION, __version__

SUPPORTED_ENVOY = ["1.40.0", "1.35.0", "1.34.0", "1.33.0"]


def revision_string() -> str:
    """Where Consul puts its git commit; trellis names its own release."""
    return f"trellis-{__version__}"


def build_string() -> str:
    return f"{CONSUL_API_VERSION}:{revision_string()}"


def node_meta() -> dict[str, str]:
    return {"consul-network-segment": "", "consul-version": CONSUL_API_VERSION}


def tagged_addresses(address: str) -> dict[str, str]:
    family = "ipv6" if ":" in address else "ipv4"
    return {"lan": address, f"lan_{family}": address, "wan": address, f"wan_{family}": address}


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this agent is and where its (advertised) ports are."""

    node: str
    node_id: str
    datacenter: str
    primary_datacenter: str
    server: bool
    address: str
    grpc_port: int = -1
    server_port: int = 8300
    serf_lan_port: int = 8301
    serf_wan_port: int = 8302


def member(ident: Identity, *, wan: bool = False) -> dict[str, Any]:
    """A serf member as /v1/agent/members shows it (``wan``: the WAN pool's view)."""
    tags = {
        "build": build_string(),
        "dc": ident.datacenter,
        "id": ident.node_id,
        "role": "consul" if ident.server else "node",
        "segment": "",
        "vsn": "2",
        "vsn_max": "3",
        "vsn_min": "2",
        "ft_fs": "1",
        "ft_si": "1",
    }
    if ident.server:
        tags.update(port=str(ident.server_port), bootstrap="1", raft_vsn="3", expect="0", acls="0",
                    wan_join_port=str(ident.serf_wan_port), use_tls="0")
        if ident.grpc_port > 0:
            tags["grpc_port"] = str(ident.grpc_port)
    name = f"{ident.node}.{ident.datacenter}" if wan else ident.node
    return {
        "Name": name, "Addr": ident.address, "Port": ident.serf_wan_port if wan else ident.serf_lan_port,
        "Tags": tags, "Status": 1, "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
        "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4,
    }


def self_doc(
    ident: Identity, *, debug_config: dict[str, Any], meta: dict[str, str], stats: dict[str, dict[str, str]],
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "Config": {
            "Datacenter": ident.datacenter,
            "PrimaryDatacenter": ident.primary_datacenter or ident.datacenter,
            "NodeName": ident.node,
            "NodeID": ident.node_id,
            "Revision": revision_string(),
            "Server": ident.server,
            "Version": CONSUL_API_VERSION,
            "BuildDate": "2026-11-26T00:00:00Z",
            "TrellisVersion": __version__,  # the one addition to Consul's struct (docs/agent.md)
        },
        "DebugConfig": debug_config,
        "Coord": None,
        "Member": member(ident),
        "Stats": stats,
        "Meta": meta,
    }
    if ident.grpc_port > 0:
        doc["xDS"] = {
            "SupportedProxies": {"envoy": SUPPORTED_ENVOY},
            "Port": ident.grpc_port,
            "Ports": {"Plaintext": ident.grpc_port, "TLS": -1},
        }
    return doc


def runtime_stats(revision: int, services: int, checks: int, *, waiters: int = 0,
                  wakeups: int = 0) -> dict[str, dict[str, str]]:
    """Consul's sections, plus ``view`` (trellis: parked watchers and how many writes woke)."""
    return {
        "view": {"revision": str(revision), "waiters": str(waiters), "wakeups": str(wakeups)},
        "agent": {"check_monitors": "0", "check_ttls": "0", "checks": str(checks), "services": str(services)},
        "runtime": {"arch": platform.machine(), "os": platform.system().lower(),
                    "version": f"python{platform.python_version()}"},
        "raft": {"state": "Leader", "last_log_index": str(revision), "applied_index": str(revision)},
        "consul": {"server": "true", "leader": "true", "known_datacenters": "1", "bootstrap": "true"},
        "build": {"prerelease": "", "revision": revision_string(), "version": CONSUL_API_VERSION,
                  "version_metadata": ""},
    }
