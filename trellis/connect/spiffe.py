"""SPIFFE IDs of the mesh: build, format and parse (pure).

Rules (Consul's ``agent/connect/uri*.go``):
1. The trust domain is ``<cluster-id>.consul``, lower-cased, whatever the DNS domain.
2. A service is ``spiffe://<td>/ns/<ns>/dc/<dc>/svc/<name>``; a CA is ``spiffe://<td>``
   with no path. Path components are percent-encoded on the way out and decoded on
   the way in, so ``format_id(parse_id(u)) == u`` for every well-formed ``u``.
3. Only the service name and namespace take part in authorization; the datacenter
   is the one of the agent that asked for the certificate.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

from trellis.errors import InvalidInput

SCHEME = "spiffe"
TRUST_DOMAIN_SUFFIX = ".consul"


def trust_domain(cluster_id: str) -> str:
    return f"{cluster_id}{TRUST_DOMAIN_SUFFIX}".lower()


@dataclass(frozen=True, slots=True)
class ServiceID:
    trust_domain: str
    namespace: str
    datacenter: str
    service: str

    @property
    def uri(self) -> str:
        return format_id(self)


@dataclass(frozen=True, slots=True)
class SigningID:
    """The identity of a CA certificate: the trust domain alone."""

    trust_domain: str

    @property
    def uri(self) -> str:
        return format_id(self)


@dataclass(frozen=True, slots=True)
class AgentID:
    trust_domain: str
    datacenter: str
    node: str

    @property
    def uri(self) -> str:
        return format_id(self)


SpiffeID = ServiceID | SigningID | AgentID


class InvalidSpiffeID(InvalidInput):
    def __init__(self, uri: str, reason: str) -> None:
        super().__init__("SPIFFE ID", uri, reason, message=f"{uri!r} is not a valid Connect identifier: {reason}")


def _q(part: str) -> str:
    return quote(part, safe="")


def format_id(sid: SpiffeID) -> str:
    """The URI text of an identity. Pure."""
    base = f"{SCHEME}://{sid.trust_domain}"
    if isinstance(sid, ServiceID):
        return f"{base}/ns/{_q(sid.namespace)}/dc/{_q(sid.datacenter)}/svc/{_q(sid.service)}"
    if isinstance(sid, AgentID):
        return f"{base}/agent/client/dc/{_q(sid.datacenter)}/id/{_q(sid.node)}"
    return base


def parse_id(uri: str) -> SpiffeID:
    """Parse a SPIFFE URI into a typed identity. Pure; raises InvalidSpiffeID.

    A path with a partition (``/ap/default/ns/...``) is accepted when the partition
    is ``default``, the only one trellis has.
    """
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise InvalidSpiffeID(uri, str(exc)) from None
    if parts.scheme.lower() != SCHEME:
        raise InvalidSpiffeID(uri, "the scheme must be spiffe")
    if not parts.netloc or "?" in uri or "#" in uri or "@" in parts.netloc or ":" in parts.netloc:
        raise InvalidSpiffeID(uri, "it needs a trust domain (no port or user) and nothing but a path after it")
    td = parts.netloc.lower()
    if parts.path in ("", "/"):
        return SigningID(td)
    segs = [unquote(s) for s in parts.path[1:].split("/")]
    if len(segs) == 8 and segs[0] == "ap" and segs[2] == "ns":
        if segs[1] != "default":
            raise InvalidSpiffeID(uri, f"partition {segs[1]!r} does not exist (only 'default')")
        segs = segs[2:]
    if len(segs) == 6 and (segs[0], segs[2], segs[4]) == ("ns", "dc", "svc") and all(segs[1::2]):
        return ServiceID(td, segs[1], segs[3], segs[5])
    if len(segs) == 6 and segs[:2] == ["agent", "client"] and (segs[2], segs[4]) == ("dc", "id") and all(segs[3::2]):
        return AgentID(td, segs[3], segs[5])
    raise InvalidSpiffeID(uri, "the path is not /ns/<namespace>/dc/<datacenter>/svc/<service>")


def service_uri(td: str, namespace: str, datacenter: str, service: str) -> str:
    return format_id(ServiceID(td, namespace, datacenter, service))
