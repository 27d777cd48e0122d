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
from typing import Any

from trellis import CONSUL_API_VERSION, __version__

SERF_LAN_PORT = 8301
SERVER_RPC_PORT = 8300
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


def member(*, node: str, address: str, datacenter: str, node_id: str, server: bool, grpc_port: int) -> dict[str, Any]:
    tags = {
        "build": build_string(),
        "dc": datacenter,
        "id": node_id,
        "role": "consul" if server else "node",
        "segment": "",
        "vsn": "2",
        "vsn_max": "3",
        "vsn_min": "2",
        "ft_fs": "1",
        "ft_si": "1",
    }
    if server:
        tags.update(port=str(SERVER_RPC_PORT), bootstrap="1", raft_vsn="3", expect="0", acls="0",
                    wan_join_port="8302", use_tls="0")
        if grpc_port > 0:
            tags["grpc_port"] = str(grpc_port)
    return {
        "Name": node, "Addr": address, "Port": SERF_LAN_PORT, "Tags": tags, "Status": 1,
        "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
        "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4,
    }


def self_doc(
    *, node: str, node_id: str, datacenter: str, server: bool, address: str, grpc_port: int,
    debug_config: dict[str, Any], meta: dict[str, str], stats: dict[str, dict[str, str]],
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "Config": {
            "Datacenter": datacenter,
            "PrimaryDatacenter": datacenter,
            "NodeName": node,
            "NodeID": node_id,
            "Revision": revision_string(),
            "Server": server,
            "Version": CONSUL_API_VERSION,
            "BuildDate": "2026-11-26T00:00:00Z",
            "TrellisVersion": __version__,  # the one addition to Consul's struct (docs/agent.md)
        },
        "DebugConfig": debug_config,
        "Coord": None,
        "Member": member(node=node, address=address, datacenter=datacenter, node_id=node_id,
                         server=server, grpc_port=grpc_port),
        "Stats": stats,
        "Meta": meta,
    }
    if grpc_port > 0:
        doc["xDS"] = {
            "SupportedProxies": {"envoy": SUPPORTED_ENVOY},
            "Port": grpc_port,
            "Ports": {"Plaintext": grpc_port, "TLS": -1},
        }
    return doc


def runtime_stats(revision: int, services: int, checks: int) -> dict[str, dict[str, str]]:
    return {
        "agent": {"check_monitors": "0", "check_ttls": "0", "checks": str(checks), "services": str(services)},
        "runtime": {"arch": platform.machine(), "os": platform.system().lower(),
                    "version": f"python{platform.python_version()}"},
        "raft": {"state": "Leader", "last_log_index": str(revision), "applied_index": str(revision)},
        "consul": {"server": "true", "leader": "true", "known_datacenters": "1", "bootstrap": "true"},
        "build": {"prerelease": "", "revision": revision_string(), "version": CONSUL_API_VERSION,
                  "version_metadata": ""},
    }
