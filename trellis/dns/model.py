"""DNS value types: the parsed query, the configuration, and the answer.

Rules:
1. Every value is frozen. Names inside queries are lower-case (DNS is
   case-insensitive, RFC 4343); the server echoes the client's spelling on the wire.
2. A record whose ``name`` is ``None`` is owned by the question name, whatever
   spelling of the query the client used (``web.service.consul`` and
   ``web.service.dc1.consul`` share one answer shape).
3. An ``Answer`` holds *entries*: one answer-section record (rarely several) with
   the additional records that belong to it. Shuffling, limits and truncation move
   whole entries, so the additional section always matches the answers.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dns.name
import dns.rcode
import dns.rdata

from trellis.catalog.model import DEFAULT_NAMESPACE
from trellis.config.agent_model import SOAConfig

if TYPE_CHECKING:
    from trellis.config.agent_config import AgentConfig

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# -- queries ----------------------------------------------------------------------


class LookupKind(enum.StrEnum):
    """The label that names what a service-like query asks for."""

    SERVICE = "service"
    CONNECT = "connect"  # mesh-capable instances: sidecar proxies and native services
    INGRESS = "ingress"  # the ingress gateways exposing the service


@dataclass(frozen=True, slots=True)
class ServiceQuery:
    """``[<tag>.]<name>.service``, ``_<name>._<tag>[.service]``, ``<name>.connect``,
    ``<name>.ingress``, each followed by an optional locality."""

    name: str
    datacenter: str
    kind: LookupKind = LookupKind.SERVICE
    tag: str = ""  # "" = no tag filter (also what `_tcp` means in the RFC 2782 form)
    namespace: str = DEFAULT_NAMESPACE
    # `_<name>._<tag>.<locality>` without the `.service` label: Consul only
    # accepts it for SRV questions, so the answer checks the question type.
    srv_short_form: bool = False


@dataclass(frozen=True, slots=True)
class NodeQuery:
    """``<node>.node[.<dc>]``; the node name may contain dots."""

    name: str
    datacenter: str


@dataclass(frozen=True, slots=True)
class AddrQuery:
    """``<hex>.addr[.<dc>]``: 8 hex digits decode to IPv4, 32 to IPv6."""

    address: IPAddress
    datacenter: str


@dataclass(frozen=True, slots=True)
class ApexQuery:
    """The domain itself (SOA and NS live here)."""


DnsQuery = ServiceQuery | NodeQuery | AddrQuery | ApexQuery


# -- configuration ------------------------------------------------------------------


# ``dns_config.soa`` (seconds; the SOA record's own TTL is ``min_ttl``): the agent config's type.
SoaConfig = SOAConfig


@dataclass(frozen=True, slots=True)
class DnsConfig:
    """What shapes answers (Consul's ``domain``, ``datacenter`` and ``dns_config``).

    ``service_ttl`` maps a service name to seconds: an exact key wins, else the
    longest key ending in ``*`` that prefixes the name (``"*"`` alone is the
    catch-all), else 0 (Consul's rule). ``udp_answer_limit`` caps the answers of
    a UDP reply without EDNS (``None``: only the 512-byte limit applies; DESIGN
    "DNS"). ``a_record_limit`` caps A/AAAA/ANY service answers (0: no cap).
    """

    domain: str = "consul."
    datacenter: str = "dc1"
    node_ttl: float = 0.0
    service_ttl: dict[str, float] = field(default_factory=dict)
    only_passing: bool = False
    a_record_limit: int = 0
    udp_answer_limit: int | None = None
    enable_additional_node_meta_txt: bool = True
    soa: SoaConfig = SoaConfig()

    @property
    def domain_name(self) -> dns.name.Name:
        return dns.name.from_text(self.domain.lower())

    @classmethod
    def from_agent_config(cls, cfg: AgentConfig) -> DnsConfig:
        """The agent's ``domain``, ``datacenter`` and ``dns_config``.

        NOTE: ``enable_truncate`` and ``disable_compression`` are not used: TC is
        always set when a UDP reply was cut, and names are always compressed
        (DESIGN "DNS"). ``udp_answer_limit`` applies only when set to something
        other than its default, since by default a UDP reply holds whatever fits.
        """
        d = cfg.dns_config
        default_udp_limit = type(d)().udp_answer_limit
        return cls(
            domain=cfg.domain,
            datacenter=cfg.datacenter,
            node_ttl=d.node_ttl,
            service_ttl=dict(d.service_ttl),
            only_passing=d.only_passing,
            a_record_limit=d.a_record_limit,
            udp_answer_limit=None if d.udp_answer_limit == default_udp_limit else d.udp_answer_limit,
            enable_additional_node_meta_txt=d.enable_additional_node_meta_txt,
            soa=d.soa,
        )


# -- answers --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record; ``name=None`` means the question name (rule 2)."""

    name: dns.name.Name | None
    ttl: int
    rdata: dns.rdata.Rdata


@dataclass(frozen=True, slots=True)
class Entry:
    """Answer records and the additional records that go with them (rule 3)."""

    answer: tuple[Record, ...]
    additional: tuple[Record, ...] = ()


@dataclass(frozen=True, slots=True)
class Answer:
    """A whole reply, before the transport's size limit.

    ``limit`` is how many entries a client may get (0 = all); the selection
    (shuffle, then cut) happens per query, so a cached answer keeps every entry.
    ``extra`` are additional records tied to the authority section (NS glue).
    ``watch`` is the union of the watch keys the view queries read.
    """

    rcode: dns.rcode.Rcode
    entries: tuple[Entry, ...] = ()
    authority: tuple[Record, ...] = ()
    extra: tuple[Record, ...] = ()
    limit: int = 0
    watch: frozenset = frozenset()
