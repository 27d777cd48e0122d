"""Static Envoy bootstraps holding translated resources, for ``envoy --mode validate`` and
for a live Envoy in tests.

Two forms of the same resources:

* ``served_bootstrap``: the resources exactly as the ADS server sends them (secrets and
  endpoints still referenced over ADS), listeners and clusters as static resources, with an
  ADS config pointing at a cluster nobody listens on. Envoy checks every proto, every
  filter config, every regex, listener addresses against each other.
* ``resolved_bootstrap``: the same, with each SDS reference pointed at a static secret of
  that name (``sds_config`` removed), each EDS cluster made STATIC with its
  ClusterLoadAssignment as ``load_assignment``, and each RDS reference replaced by its
  route configuration inline. Envoy then also loads the certificates and
  keys in their TLS contexts and the endpoints in their clusters, and can serve traffic.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from trellis.xds import types
from trellis.xds.bootstrap import grpc_cluster

ENVOY = Path(sys.executable).with_name("envoy")
_XDS_CLUSTER = "xds_unreachable"


def to_data(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _base(resources: dict) -> dict[str, Any]:
    return {
        "node": {"id": "web-sidecar-proxy", "cluster": "web"},
        "static_resources": {
            "listeners": [to_data(m) for m in resources[types.LISTENER].values()],
            "clusters": [to_data(m) for m in resources[types.CLUSTER].values()],
            "secrets": [to_data(m) for m in resources[types.SECRET].values()],
        },
    }


def _grpc_cluster(name: str) -> dict[str, Any]:
    """A static HTTP/2 cluster ``name`` to a port nobody listens on."""
    return grpc_cluster(name, "127.0.0.1", 1)


def operator_sds(data: Any) -> set[tuple[str, str]]:
    """The (cluster, secret) pairs of every SDS reference to an operator's SDS server
    (an ingress entry's ``TLS.SDS``), which the operator's bootstrap would define."""
    found: set[tuple[str, str]] = set()
    if isinstance(data, dict):
        source = data.get("sds_config", {}).get("api_config_source") if isinstance(data.get("sds_config"), dict) else None
        if source:
            found.add((source["grpc_services"][0]["envoy_grpc"]["cluster_name"], data["name"]))
        for value in data.values():
            found |= operator_sds(value)
    elif isinstance(data, list):
        for value in data:
            found |= operator_sds(value)
    return found


def served_bootstrap(resources: dict) -> dict[str, Any]:
    boot = _base(resources)
    boot["static_resources"]["clusters"].append(_grpc_cluster(_XDS_CLUSTER))
    boot["static_resources"]["clusters"] += [_grpc_cluster(c) for c in sorted(
        {c for c, _ in operator_sds(boot["static_resources"]["listeners"])})]
    boot["dynamic_resources"] = {"ads_config": {
        "api_type": "DELTA_GRPC", "transport_api_version": "V3",
        "grpc_services": [{"envoy_grpc": {"cluster_name": _XDS_CLUSTER}}]}}
    return boot


def resolved_bootstrap(resources: dict) -> dict[str, Any]:
    boot = _base(resources)
    fixtures = Path(__file__).resolve().parents[2] / "golden" / "xds" / "fixtures"
    boot["static_resources"]["secrets"] += [
        {"name": name, "tls_certificate": {"certificate_chain": {"filename": str(fixtures / "web.pem")},
                                           "private_key": {"filename": str(fixtures / "web-key.pem")}}}
        for name in sorted({n for _, n in operator_sds(boot["static_resources"]["listeners"])})]
    _drop_sds_sources(boot["static_resources"])
    _inline_routes(boot["static_resources"], {name: to_data(m) for name, m in resources[types.ROUTE].items()})
    assignments = {name: to_data(m) for name, m in resources[types.ENDPOINT].items()}
    for cluster in boot["static_resources"]["clusters"]:
        if cluster.get("type") == "EDS":
            cluster["type"] = "STATIC"
            del cluster["eds_cluster_config"]
            cluster["load_assignment"] = assignments[cluster["name"]]
    return boot


def _inline_routes(data: Any, routes: dict[str, Any]) -> None:
    """An HTTP connection manager's ``rds`` becomes its ``route_config``."""
    if isinstance(data, dict):
        if "rds" in data and isinstance(data["rds"], dict) and "route_config_name" in data["rds"]:
            data["route_config"] = routes[data.pop("rds")["route_config_name"]]
        for value in data.values():
            _inline_routes(value, routes)
    elif isinstance(data, list):
        for value in data:
            _inline_routes(value, routes)


def _drop_sds_sources(data: Any) -> None:
    """An ``SdsSecretConfig`` without ``sds_config`` names a static secret."""
    if isinstance(data, dict):
        if "sds_config" in data and "name" in data:
            del data["sds_config"]
        for value in data.values():
            _drop_sds_sources(value)
    elif isinstance(data, list):
        for value in data:
            _drop_sds_sources(value)


def write(boot: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(boot, indent=1, sort_keys=True))
    return path


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    """``envoy --mode validate``: exit 0, or non-zero with the reason on its output."""
    return subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(path), "--log-level", "warning", "--disable-hot-restart"],
        capture_output=True, text=True, timeout=60,
    )
