"""The incremental (delta) ADS protocol for one stream, as pure functions (sans-IO).

    Envoy's DeltaDiscoveryRequest ──▶ receive(state, request) ──▶ (state', Received)
    desired resources (versioned) ──▶ next_response(state, desired) ──▶ (state', response | None)
                                      in_sync(state, desired): everything Envoy wants is ACKed

The shell (server.py) calls ``receive`` for every request and ``next_response`` until it
returns ``None``; it logs what ``receive`` reports. Nothing here awaits, logs or reads a clock.

Rules:
1. What Envoy has is tracked per type and resource name (``TypeState.acked``): seeded from
   ``initial_resource_versions`` on a reconnect, committed by an ACK. Only resources whose
   version differs from it are sent, and only those Envoy is interested in: every name of a
   wildcard type (LDS/CDS: Envoy's first request names nothing, or names ``*``), the names
   it subscribed to for the others (EDS/RDS/SDS).
2. A resource's version is the SHA-256 of its deterministic serialization, so an unchanged
   resource has the same version across rebuilds and restarts (``version_resources``).
3. Make-before-break (DESIGN "Data planes", reference/envoy-xds.md §1.3): responses go out in
   the order of ``STAGES``: secret, cluster and endpoint upserts; listener and route upserts
   and removals; then cluster, endpoint and secret removals, each only once every earlier
   stage is sent and ACKed. Listener/route responses wait while a cluster/endpoint response
   is unacknowledged (``types.HELD_BEHIND``).
4. At most one unacknowledged response per type. Each response has its own nonce (a
   per-stream counter, 8 hex digits); its (name -> version) set is pending under it.
5. ACK (the nonce back, no ``error_detail``): the pending set becomes what Envoy has.
   NACK (``error_detail`` set): Envoy keeps its last good versions, so ``acked`` stays; the
   rejected (name -> version) pairs are remembered and not sent again until the desired
   version of that name changes (no NACK loop, reference/envoy-xds.md §9). A nonce that is
   not the pending one is stale and only its subscription changes count.
6. Re-sending a parent makes Envoy forget its children (Envoy issue 13009, Consul's
   ``agent/xds/delta.go``): sending a Cluster forgets Envoy's copy of its ClusterLoadAssignment,
   sending a Listener forgets the RouteConfigurations it names over RDS, so they go again,
   right behind the parent. NOTE: measured with Envoy 1.40: a re-sent EDS cluster whose
   endpoints do not follow stays warming, and Envoy holds that CDS ACK until the EDS fetch
   times out (15 s by default), so the children must not wait for the parent's ACK.
7. An explicit (re)subscription to a name forgets Envoy's copy of it: the xDS spec says the
   server must send it even if it believes the client has it.
8. CDS is answered once on every stream, empty if there is no cluster to send: Envoy asks
   for its listeners only once its first CDS request is answered, so a gateway with no
   cluster (a terminating gateway nothing is linked to yet) would otherwise never get
   its listeners. LDS is not: an empty answer would let Envoy call itself initialised (and
   ``/ready``) before the listeners it is waiting for exist. An Envoy reconnecting with
   ``initial_resource_versions`` has initialised already and is owed nothing.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from trellis.errors import InvalidInput
from trellis.xds.types import CLUSTER, ENDPOINT, HELD_BEHIND, LISTENER, ORDER, ROUTE, SECRET

WILDCARD = "*"
WILDCARD_TYPES = frozenset({LISTENER, CLUSTER})  # an empty first request means "everything"
ABSENT = ""  # the version of a removal in a pending or rejected set
SHORT = {SECRET: "sds", CLUSTER: "cds", ENDPOINT: "eds", LISTENER: "lds", ROUTE: "rds"}


class Part(enum.Enum):
    UPSERTS = "upserts"
    REMOVALS = "removals"
    BOTH = "both"


# Rule 3: the order responses go out in.
STAGES: tuple[tuple[str, Part], ...] = (
    (SECRET, Part.UPSERTS),
    (CLUSTER, Part.UPSERTS),
    (ENDPOINT, Part.UPSERTS),
    (LISTENER, Part.BOTH),
    (ROUTE, Part.BOTH),
    (CLUSTER, Part.REMOVALS),
    (ENDPOINT, Part.REMOVALS),
    (SECRET, Part.REMOVALS),
)


class Versioned(NamedTuple):
    """One desired resource: its version (rule 2) and the message to pack into an Any."""

    version: str
    message: Message


Desired = Mapping[str, Mapping[str, Versioned]]  # type URL -> name -> resource


@dataclass(frozen=True, slots=True)
class Pending:
    """A response Envoy has not answered yet: its nonce and what it carried (ABSENT: removed)."""

    nonce: str
    sent: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class TypeState:
    requested: bool = False  # Envoy has sent a request for this type on this stream
    answered: bool = False  # a response of this type has gone out on this stream (rule 8)
    wildcard: bool = False
    names: frozenset[str] = frozenset()  # explicit subscriptions
    acked: Mapping[str, str] = field(default_factory=dict)  # name -> version Envoy has
    rejected: Mapping[str, str] = field(default_factory=dict)  # name -> version Envoy NACKed
    pending: Pending | None = None

    def wants(self, name: str) -> bool:
        return self.wildcard or name in self.names


@dataclass(frozen=True, slots=True)
class StreamState:
    types: Mapping[str, TypeState] = field(default_factory=dict)
    nonce: int = 0  # the last nonce issued

    def of(self, type_url: str) -> TypeState:
        return self.types.get(type_url) or TypeState()


class Kind(enum.StrEnum):
    SUBSCRIBE = "subscribe"  # no nonce: only subscription changes
    ACK = "ack"
    NACK = "nack"
    STALE = "stale"  # a nonce that is not the pending one
    IGNORED = "ignored"  # a type trellis does not serve


@dataclass(frozen=True, slots=True)
class Received:
    """What a request meant, for the shell to log and report."""

    kind: Kind
    type_url: str
    nonce: str = ""
    names: tuple[str, ...] = ()  # the (N)ACKed names (removals included)
    error: str = ""  # Envoy's error_detail.message on a NACK


# -- versions ------------------------------------------------------------------------------


def version_of(message: Message) -> str:
    """Rule 2: hex SHA-256 of the deterministic serialization. Pure."""
    return hashlib.sha256(message.SerializeToString(deterministic=True)).hexdigest()


def versioned(message: Message) -> Versioned:
    return Versioned(version_of(message), message)


def version_resources(resources: Mapping[str, Mapping[str, Message]]) -> dict[str, dict[str, Versioned]]:
    """``{type URL: {name: message}}`` (what the translation returns) with a version each. Pure."""
    return {
        type_url: {name: versioned(msg) for name, msg in sorted(by_name.items())}
        for type_url, by_name in resources.items()
    }


# -- requests ------------------------------------------------------------------------------


def receive(state: StreamState, request: discovery_pb2.DeltaDiscoveryRequest) -> tuple[StreamState, Received]:
    """Apply one request: its (N)ACK first, then its subscription changes (rules 1, 5, 7).

    Raises InvalidInput for a request without a type URL (reference/envoy-xds.md §1.1).
    A type trellis does not serve is ignored. Pure.
    """
    type_url = request.type_url
    if not type_url:
        raise InvalidInput("type_url", "", "a delta discovery request must name its resource type")
    if type_url not in ORDER:
        return state, Received(Kind.IGNORED, type_url, request.response_nonce)
    ts, received = _answer(state.of(type_url), request)
    ts = _subscribe(ts, request)
    return replace(state, types={**state.types, type_url: ts}), received


def _answer(ts: TypeState, request: discovery_pb2.DeltaDiscoveryRequest) -> tuple[TypeState, Received]:
    nonce, type_url = request.response_nonce, request.type_url
    if not nonce:
        return ts, Received(Kind.SUBSCRIBE, type_url)
    if ts.pending is None or ts.pending.nonce != nonce:
        return ts, Received(Kind.STALE, type_url, nonce)
    sent = ts.pending.sent
    names = tuple(sorted(sent))
    if request.HasField("error_detail"):
        rejected = {**ts.rejected, **sent}
        return (replace(ts, pending=None, rejected=rejected),
                Received(Kind.NACK, type_url, nonce, names, request.error_detail.message))
    acked = dict(ts.acked)
    for name, version in sent.items():
        if version == ABSENT:
            acked.pop(name, None)
        elif ts.wants(name):  # an unsubscribe may have overtaken the ACK
            acked[name] = version
    rejected = {n: v for n, v in ts.rejected.items() if n not in sent}
    return replace(ts, pending=None, acked=acked, rejected=rejected), Received(Kind.ACK, type_url, nonce, names)


def _subscribe(ts: TypeState, request: discovery_pb2.DeltaDiscoveryRequest) -> TypeState:
    subscribe = set(request.resource_names_subscribe)
    unsubscribe = set(request.resource_names_unsubscribe)
    first = not ts.requested
    wildcard = ts.wildcard or WILDCARD in subscribe or (
        first and not subscribe and request.type_url in WILDCARD_TYPES)
    if WILDCARD in unsubscribe:
        wildcard = False
    subscribe.discard(WILDCARD)
    unsubscribe.discard(WILDCARD)
    names = (ts.names | subscribe) - unsubscribe
    initial = dict(request.initial_resource_versions) if first else {}
    acked = {n: v for n, v in ts.acked.items() if n not in subscribe and n not in unsubscribe}
    rejected = {n: v for n, v in ts.rejected.items() if n not in subscribe and n not in unsubscribe}
    acked.update((n, v) for n, v in initial.items() if wildcard or n in names)
    kept = replace(ts, requested=True, wildcard=wildcard, names=frozenset(names), acked=acked, rejected=rejected,
                   answered=ts.answered or bool(initial))  # rule 8: a reconnecting Envoy has initialised
    if not wildcard:  # names Envoy is no longer interested in (e.g. "*" unsubscribed)
        kept = replace(kept, acked={n: v for n, v in acked.items() if n in names},
                       rejected={n: v for n, v in rejected.items() if n in names})
    return kept


# -- responses -----------------------------------------------------------------------------


def diff(ts: TypeState, wanted: Mapping[str, Versioned]) -> tuple[list[str], list[str]]:
    """Names to send and names to remove for one type (rules 1 and 5), sorted. Pure."""
    acked, rejected = ts.acked, ts.rejected
    upserts = sorted(
        name for name, res in wanted.items()
        if acked.get(name) != res.version and ts.wants(name) and rejected.get(name) != res.version
    )
    removals = sorted(name for name in acked if name not in wanted and rejected.get(name) != ABSENT)
    return upserts, removals


def next_response(
    state: StreamState, desired: Desired, *, system_version: str = ""
) -> tuple[StreamState, discovery_pb2.DeltaDiscoveryResponse | None]:
    """The next response to send (rules 3-6), or ``None`` when nothing may go now.

    ``system_version`` (the snapshot's version) goes into ``system_version_info`` for
    debugging only. The returned state records the response as pending. Pure.
    """
    unsettled = False
    diffs: dict[str, tuple[list[str], list[str]]] = {}
    for type_url, part in STAGES:
        ts = state.of(type_url)
        found = diffs.get(type_url)
        if found is None:
            found = diffs[type_url] = diff(ts, desired.get(type_url, {}))
        upserts = found[0] if part is not Part.REMOVALS else []
        removals = found[1] if part is not Part.UPSERTS else []
        unanswered = type_url == CLUSTER and ts.wildcard and not ts.answered and part is Part.UPSERTS  # rule 8
        if upserts or removals or unanswered:
            blocked = (
                ts.pending is not None
                or (part is Part.REMOVALS and unsettled)
                or any(state.of(t).pending is not None for t in HELD_BEHIND.get(type_url, ()))
            )
            if not blocked:
                return _respond(state, type_url, desired, upserts, removals, system_version)
            unsettled = True
        elif ts.pending is not None:
            unsettled = True
    return state, None


def _respond(
    state: StreamState, type_url: str, desired: Desired, upserts: list[str], removals: list[str],
    system_version: str,
) -> tuple[StreamState, discovery_pb2.DeltaDiscoveryResponse]:
    wanted = desired.get(type_url, {})
    nonce = f"{state.nonce + 1:08x}"
    response = discovery_pb2.DeltaDiscoveryResponse(
        type_url=type_url, nonce=nonce, system_version_info=system_version, removed_resources=removals)
    for name in upserts:
        res = wanted[name]
        packed = any_pb2.Any()
        packed.Pack(res.message, deterministic=True)
        response.resources.add(name=name, version=res.version, resource=packed)
    sent = {name: wanted[name].version for name in upserts} | {name: ABSENT for name in removals}
    types = dict(state.types)
    types[type_url] = replace(state.of(type_url), pending=Pending(nonce, sent), answered=True)
    for child_type, child in _children(type_url, [wanted[n].message for n in upserts]):  # rule 6
        ts = types.get(child_type) or TypeState()
        if child in ts.acked:
            types[child_type] = replace(ts, acked={n: v for n, v in ts.acked.items() if n != child})
    return StreamState(types=types, nonce=state.nonce + 1), response


def _children(type_url: str, messages: list[Message]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for msg in messages:
        if type_url == CLUSTER:
            out.extend((ENDPOINT, n) for n in eds_names(msg))  # type: ignore[arg-type]
        elif type_url == LISTENER:
            out.extend((ROUTE, n) for n in rds_names(msg))  # type: ignore[arg-type]
    return out


def eds_names(cluster: cluster_pb2.Cluster) -> tuple[str, ...]:
    """The ClusterLoadAssignment an EDS cluster asks for (its service name, else its name). Pure."""
    if cluster.type != cluster_pb2.Cluster.EDS:
        return ()
    return (cluster.eds_cluster_config.service_name or cluster.name,)


def rds_names(listener: listener_pb2.Listener) -> tuple[str, ...]:
    """The RouteConfigurations a listener's HTTP connection managers name over RDS. Pure."""
    chains = list(listener.filter_chains)
    if listener.HasField("default_filter_chain"):
        chains.append(listener.default_filter_chain)
    names: list[str] = []
    hcm = http_connection_manager_pb2.HttpConnectionManager()
    for chain in chains:
        for f in chain.filters:
            if f.typed_config.Is(hcm.DESCRIPTOR) and f.typed_config.Unpack(hcm) and hcm.HasField("rds"):
                names.append(hcm.rds.route_config_name)
    return tuple(sorted(set(names)))


# -- summaries -----------------------------------------------------------------------------


def in_sync(state: StreamState, desired: Desired) -> bool:
    """True when Envoy has ACKed every desired resource it is interested in and holds
    nothing else, with no response outstanding. A wildcard type with desired resources
    that Envoy has not asked for yet counts as not in sync. Pure."""
    for type_url in ORDER:
        ts, wanted = state.of(type_url), desired.get(type_url, {})
        if ts.pending is not None or (type_url in WILDCARD_TYPES and wanted and not ts.requested):
            return False
        if any(ts.wants(n) and ts.acked.get(n) != r.version for n, r in wanted.items()):
            return False
        if any(n not in wanted for n in ts.acked):
            return False
    return True


def acked_counts(state: StreamState) -> dict[str, int]:
    """How many resources of each type Envoy has ACKed, by short name (``cds``...). Pure."""
    return {SHORT[t]: len(state.of(t).acked) for t in ORDER if state.of(t).requested}


def rejected_counts(state: StreamState) -> dict[str, int]:
    """How many resource versions of each type Envoy has rejected and still lacks. Pure."""
    return {SHORT[t]: len(state.of(t).rejected) for t in ORDER if state.of(t).rejected}


def pending_nonces(state: StreamState) -> list[str]:
    """The nonces of the responses still waiting for an (N)ACK. Pure."""
    return [ts.pending.nonce for ts in state.types.values() if ts.pending is not None]
