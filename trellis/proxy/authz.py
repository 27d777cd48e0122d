"""Who may connect to the public listener: a peer's certificate URI -> allow or deny (pure).

Rules:
1. The peer is the SPIFFE service ID in its certificate's URI SAN. No URI, several
   URIs, a URI that is not a service identity, or one in another trust domain: deny
   (the chain was already verified against the trust bundle by TLS).
2. Otherwise the intentions engine decides ``(peer ns, peer service) -> (ns, service)``
   over the snapshot's intentions and default, with no HTTP request: an L7 intention
   denies (fail closed; decide.py rule 4). This is exactly what
   ``/v1/agent/connect/authorize`` answers.
3. ``revoked`` re-decides open connections under a new ``Authorizer``: the ones now
   denied are returned (consul#6454: close them when intentions turn to deny).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from trellis.connect import spiffe
from trellis.connect.intentions.decide import Default
from trellis.connect.intentions.index import IntentionIndex
from trellis.connect.intentions.model import Intention
from trellis.proxycfg.model import ConnectProxySnapshot

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class PeerDecision:
    allowed: bool
    source: str  # "ns/name" for a service identity, else what the certificate said
    destination: str  # "ns/name"
    reason: str
    source_service: str = ""  # the name alone (metric label); "" when not a service

    def describe(self) -> str:
        """The log line: ``denied: <source> -> <destination> (<reason>)``."""
        verdict = "allowed" if self.allowed else "denied"
        return f"{verdict}: {self.source} -> {self.destination} ({self.reason})"


@dataclass(frozen=True, slots=True)
class AuthzInput:
    """Everything an Authorizer depends on; equal inputs, equal decisions."""

    trust_domain: str
    namespace: str
    service: str
    intentions: tuple[Intention, ...]
    default: Default


def authz_input(snapshot: ConnectProxySnapshot) -> AuthzInput:
    return AuthzInput(
        trust_domain=snapshot.trust_domain.lower(), namespace=snapshot.namespace, service=snapshot.service,
        intentions=snapshot.intentions,
        default=Default(allowed=snapshot.default.allowed, reason=snapshot.default.reason),
    )


class Authorizer:
    """Rules 1-2 for one snapshot's intentions. Immutable after construction; loop-safe."""

    __slots__ = ("input", "_index", "_destination")

    def __init__(self, given: AuthzInput) -> None:
        self.input = given
        self._index = IntentionIndex(given.intentions)
        self._destination = f"{given.namespace}/{given.service}"

    def decide(self, peer_uris: Iterable[str]) -> PeerDecision:
        uris = tuple(peer_uris)
        if len(uris) != 1:
            shown = ", ".join(uris) if uris else "no URI SAN"
            return self._deny(shown, f"the peer certificate must carry exactly one SPIFFE URI, found {len(uris)}")
        uri = uris[0]
        try:
            sid = spiffe.parse_id(uri)
        except spiffe.InvalidSpiffeID as exc:
            return self._deny(uri, exc.reason)
        if not isinstance(sid, spiffe.ServiceID):
            return self._deny(uri, "the peer certificate is not a service identity")
        if sid.trust_domain != self.input.trust_domain:
            return self._deny(uri, f"trust domain {sid.trust_domain!r} is not this cluster's {self.input.trust_domain!r}")
        decision = self._index.decide(
            (sid.namespace, sid.service), (self.input.namespace, self.input.service), default=self.input.default)
        return PeerDecision(allowed=decision.allowed, source=f"{sid.namespace}/{sid.service}",
                            destination=self._destination, reason=decision.reason, source_service=sid.service)

    def _deny(self, source: str, reason: str) -> PeerDecision:
        return PeerDecision(allowed=False, source=source, destination=self._destination, reason=reason)


def peer_uris(peercert: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The URI SANs of a certificate in ``ssl.SSLSocket.getpeercert()`` form."""
    if not peercert:
        return ()
    return tuple(value for kind, value in peercert.get("subjectAltName", ()) if kind == "URI")


def revoked(authorizer: Authorizer, peers: Mapping[K, tuple[str, ...]]) -> list[tuple[K, PeerDecision]]:
    """Rule 3: the open connections (key -> peer URIs) that ``authorizer`` now denies."""
    out = []
    for key, uris in peers.items():
        decision = authorizer.decide(uris)
        if not decision.allowed:
            out.append((key, decision))
    return out
