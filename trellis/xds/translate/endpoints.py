"""Endpoints: one ClusterLoadAssignment per upstream cluster (pure).

Rules (DESIGN: one health rule; reference/envoy-xds.md §2.8):
1. The assignment is named as the cluster (the upstream's SNI name) and holds the
   upstream's usable endpoints (``proxycfg.model.usable_endpoints``): critical instances
   are left out, passing and warning ones are sent as HEALTHY, so a warning instance
   keeps its traffic (Consul's rule too).
2. The weight is the instance's passing weight, clamped to Envoy's 1..128.
3. An endpoint whose address is not an IP literal is left out: EDS addresses must be
   IPs, and one host name would make Envoy reject the whole assignment.
4. Endpoints are sorted by (address, port, service id): equal snapshots, equal bytes.
   With none left, the assignment is sent empty, so the cluster has no hosts (and
   connections to it fail fast) rather than waiting for an assignment.
5. When ``local_app`` is EDS (clusters.py rule 1) its assignment holds the one local
   service endpoint, with the intentions decision table as its ``trellis.intentions``
   metadata (rbac.py rules 8-9): an intention change is an EDS update of this one
   resource, which Envoy applies to the existing host, open connections included.
6. An upstream's assignment depends on its cluster name and endpoints only, so it is
   built once per distinct pair and the message shared (``assignment``): when one change
   moves an upstream that a thousand proxies have, it is translated once, not a thousand
   times.
7. An upstream with a discovery chain has one assignment per chain target, named by the
   target's cluster (chains.py rule 1).
8. A terminating gateway's live linked service (rbac.py rule 10) has one assignment per
   cluster (its own and each subset's), holding the usable external instances as rules
   1-4 do, each carrying the linked service's decision table as ``trellis.intentions``
   metadata, as rule 5's local app does.
"""

from __future__ import annotations

import functools

from envoy.config.core.v3 import base_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from google.protobuf import wrappers_pb2

from trellis.proxycfg.model import ConnectProxySnapshot, Endpoint, UpstreamSnapshot, usable_endpoints
from trellis.xds import types
from trellis.xds.translate import core, knobs, rbac

MAX_WEIGHT = 128


def build_endpoints(upstreams: tuple[UpstreamSnapshot, ...]) -> list[endpoint_pb2.ClusterLoadAssignment]:
    """Rules 1-4: one assignment per distinct cluster of ``upstreams`` (the served ones), sorted by name."""
    assignments: dict[str, endpoint_pb2.ClusterLoadAssignment] = {}
    for up in upstreams:
        for cluster, given in cluster_endpoints(up):
            if cluster not in assignments:
                assignments[cluster] = assignment(cluster, given)
    return [assignments[name] for name in sorted(assignments)]


def cluster_endpoints(up: UpstreamSnapshot) -> list[tuple[str, tuple[Endpoint, ...]]]:
    """(EDS cluster, endpoints) of an upstream: its own, or one per chain target (rule 7)."""
    if up.chain is not None:
        return [(t.sni, t.endpoints) for t in up.targets]
    return [(up.sni, up.endpoints)]


@functools.lru_cache(maxsize=4096)
def assignment(cluster: str, given: tuple[Endpoint, ...]) -> endpoint_pb2.ClusterLoadAssignment:
    """Rules 1-4 for one cluster. Rule 6: built once per (cluster, endpoints) and shared by
    every proxy with that upstream; callers must not modify it."""
    chosen = sorted((e for e in usable_endpoints(given) if knobs.is_ip(e.address)),
                    key=lambda e: (e.address, e.port, e.service_id))
    out = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster)
    if chosen:
        out.endpoints.append(endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[lb_endpoint(e) for e in chosen]))
    return out


def build_linked_assignments(snapshot: ConnectProxySnapshot) -> list[endpoint_pb2.ClusterLoadAssignment]:
    """Rule 8, for every served linked service that is live."""
    from trellis.xds.translate.listeners import linked_as_service  # listeners.py builds on this module

    out = []
    for ls in knobs.served_linked(snapshot):
        if not rbac.linked_live(ls):
            continue
        table = base_pb2.Metadata(filter_metadata={
            rbac.LIVE_METADATA: rbac.live_decisions(linked_as_service(snapshot, ls))})
        for name, given in ((ls.sni, ls.endpoints), *((sub.sni, sub.endpoints) for sub in ls.subsets)):
            found = endpoint_pb2.ClusterLoadAssignment()
            found.CopyFrom(assignment(name, given))  # shared: copied before the metadata goes in
            for locality in found.endpoints:
                for lb in locality.lb_endpoints:
                    lb.metadata.CopyFrom(table)
            out.append(found)
    return out


def lb_endpoint(e: Endpoint) -> endpoint_components_pb2.LbEndpoint:
    """Rules 1-2."""
    return endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=core.socket_address(e.address, e.port)),
        health_status=health_check_pb2.HEALTHY,
        load_balancing_weight=wrappers_pb2.UInt32Value(value=min(max(e.weight, 1), MAX_WEIGHT)),
    )


def build_local_app_assignment(snapshot: ConnectProxySnapshot) -> endpoint_pb2.ClusterLoadAssignment:
    """Rule 5."""
    p = snapshot.public
    endpoint = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(
            address=core.socket_address(rbac.local_app_address(snapshot), p.local_service_port)),
        metadata=base_pb2.Metadata(filter_metadata={rbac.LIVE_METADATA: rbac.live_decisions(snapshot)}),
    )
    return endpoint_pb2.ClusterLoadAssignment(cluster_name=types.LOCAL_APP, endpoints=[
        endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[endpoint])])
