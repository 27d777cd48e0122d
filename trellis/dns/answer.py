"""Query + view -> answer (pure: no sockets, no clock; randomness comes in as ``rng``).

Rules (Consul's, consul-connect.md §4, unless marked):
1. Service lookups use the instances ``/v1/health/service`` would list (with the
   tag filter; ``.connect`` as ``/v1/health/connect``, ``.ingress`` as
   ``/v1/health/ingress``: the instances of the ingress gateways exposing the service,
   answered with the gateway's address and its registered port, as Consul does),
   minus any with a critical check (warning counts as healthy unless
   ``only_passing``). None left, or an unknown node or datacenter: NXDOMAIN with
   the SOA in the authority section. Something found but nothing of the asked
   type: NODATA (NOERROR, empty, SOA in authority).
2. An instance's address is the service address, else the node's. A answers take
   IPv4 addresses, AAAA IPv6, ANY both; a hostname becomes a CNAME, and only one
   CNAME is given, and only when no instance has an address of the asked type.
3. SRV is ``1 <weight> <port> <target>``: the weight is ``Weights.Warning`` for a
   warning instance, else ``Weights.Passing``; the target is
   ``<node>.node.<dc>.<domain>`` when the instance uses its node's address, else
   ``<hex>.addr.<dc>.<domain>``; its A/AAAA (and the node-meta TXT records when
   ``enable_additional_node_meta_txt``) go to the additional section.
4. ``build_answer`` keeps every entry in catalog order; ``select`` shuffles and
   applies ``limit`` (``a_record_limit``, or 1 for CNAMEs). The server caches the
   first and runs the second on every query (DESIGN "DNS").
5. SOA serial = the answer's index (highest revision of what it read), not the
   clock as in Consul, so the answer stays pure and cacheable.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TypeVar

import dns.exception
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.NS import NS
from dns.rdtypes.ANY.SOA import SOA
from dns.rdtypes.ANY.TXT import TXT
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.IN.SRV import SRV

from trellis.catalog.model import DEFAULT_NAMESPACE, CheckStatus
from trellis.catalog.gateway_services import ingress_instances
from trellis.catalog.query import Instance, not_critical, passing_only, service_instances
from trellis.dns.lookup import node_only
from trellis.dns.model import (
    AddrQuery,
    Answer,
    ApexQuery,
    DnsConfig,
    DnsQuery,
    Entry,
    IPAddress,
    LookupKind,
    NodeQuery,
    Record,
    ServiceQuery,
)
from trellis.dns.parse import encode_hex_ip
from trellis.store.view import View

T = TypeVar("T")
IN = dns.rdataclass.IN
RT = dns.rdatatype.RdataType
NOERROR, NXDOMAIN = dns.rcode.Rcode.NOERROR, dns.rcode.Rcode.NXDOMAIN
_ADDRESS_TYPES = frozenset({RT.A, RT.AAAA, RT.ANY})
_MAX_NAME_SERVERS = 3  # Consul answers NS with at most three servers
CONSUL_SERVICE = "consul"


def answer(query: DnsQuery, qtype: int, view: View, config: DnsConfig, rng: random.Random) -> Answer:
    """The reply to ``qtype`` for ``query``, shuffled and cut to its limit. Pure."""
    return select(build_answer(query, qtype, view, config), rng)


def select(ans: Answer, rng: random.Random) -> Answer:
    """``ans`` with its entries shuffled and cut to ``ans.limit`` (rule 4)."""
    return replace(ans, entries=tuple(select_entries(ans.entries, ans.limit, rng)), limit=0)


def select_entries(entries: Sequence[T], limit: int, rng: random.Random) -> list[T]:
    """Fisher-Yates shuffle of a copy, then the first ``limit`` (0: all)."""
    out = list(entries)
    if len(out) > 1:
        rng.shuffle(out)
    if limit:
        del out[limit:]
    return out


def build_answer(query: DnsQuery, qtype: int, view: View, config: DnsConfig) -> Answer:
    """Every entry of the reply, unshuffled (rule 4). Pure; reads ``view`` once."""
    if qtype in (RT.AXFR, RT.IXFR):
        return Answer(dns.rcode.Rcode.NOTIMP)
    match query:
        case ServiceQuery():
            return _service_answer(query, qtype, view, config)
        case NodeQuery():
            return _node_answer(query, qtype, view, config)
        case AddrQuery():
            return _addr_answer(query, qtype, view, config)
        case ApexQuery():
            return _apex_answer(qtype, view, config)
    raise TypeError(f"not a DNS query: {query!r}")


# -- services -----------------------------------------------------------------------


def _service_answer(q: ServiceQuery, qtype: int, view: View, cfg: DnsConfig) -> Answer:
    if q.datacenter != cfg.datacenter.lower():  # no WAN federation yet
        return _negative(NXDOMAIN, frozenset(), view, cfg)
    if q.srv_short_form and qtype != RT.SRV:
        return _negative(NXDOMAIN, frozenset(), view, cfg)
    if q.kind is LookupKind.INGRESS:
        found = ingress_instances(view, q.namespace, q.name)
    else:
        found = service_instances(
            view, q.namespace, q.name, tags=(q.tag,) if q.tag else (), connect=q.kind is LookupKind.CONNECT
        )
    healthy = passing_only(found.value) if cfg.only_passing else not_critical(found.value)
    if not healthy:
        return _negative(NXDOMAIN, found.watch, view, cfg)
    ttl = service_ttl(cfg, q.name)
    limit = 0
    if qtype == RT.SRV:
        entries = [e for e in (_srv_entry(i, ttl, q.datacenter, cfg) for i in healthy) if e is not None]
    elif qtype in _ADDRESS_TYPES:
        entries, limit = _address_entries(healthy, qtype, ttl, cfg)
    else:
        entries = []
    if not entries:
        return _negative(NOERROR, found.watch, view, cfg)
    return Answer(NOERROR, _dedupe(entries), limit=limit, watch=found.watch)


def service_ttl(cfg: DnsConfig, service: str) -> int:
    """Exact key, else the longest ``prefix*`` key, else 0 (Consul's TTLStrict/TTLRadix)."""
    name = service.lower()
    rules = {k.lower(): v for k, v in cfg.service_ttl.items()}
    if name in rules:
        return int(rules[name])
    best = max((k for k in rules if k.endswith("*") and name.startswith(k[:-1])), key=len, default=None)
    return int(rules[best]) if best is not None else 0


def _instance_address(inst: Instance) -> str:
    return inst.service.address or inst.node.address


def _srv_entry(inst: Instance, ttl: int, dc: str, cfg: DnsConfig) -> Entry | None:
    weights = inst.service.weights
    weight = weights.warning if inst.status is CheckStatus.WARNING else weights.passing
    address = _instance_address(inst)
    ip = _ip(address)
    if ip is None:  # a hostname: it is the target (no recursors to resolve it yet)
        host = _hostname(address)
        if host is None:
            return None
        target, additional = host, ()
    else:
        own = inst.service.address and inst.service.address != inst.node.address
        target = _addr_target(ip, dc, cfg) if own else _node_target(inst.node.name, ip, dc, cfg)
        additional = (_ip_record(target, ttl, ip),)
        if cfg.enable_additional_node_meta_txt:
            additional += tuple(_meta_txt(target, inst.node.meta, ttl))
    srv = SRV(IN, RT.SRV, 1, weight, inst.service.port, target)
    return Entry((Record(None, ttl, srv),), additional)


def _address_entries(
    instances: Iterable[Instance], qtype: int, ttl: int, cfg: DnsConfig
) -> tuple[list[Entry], int]:
    ips: list[Entry] = []
    cnames: list[Entry] = []
    for inst in instances:
        address = _instance_address(inst)
        ip = _ip(address)
        if ip is None:
            host = _hostname(address)
            if host is not None:
                cnames.append(Entry((Record(None, ttl, CNAME(IN, RT.CNAME, host)),)))
        elif _type_matches(ip, qtype):
            ips.append(Entry((_ip_record(None, ttl, ip),)))
    if ips:
        return ips, cfg.a_record_limit
    return cnames, 1


def _dedupe(entries: Iterable[Entry]) -> tuple[Entry, ...]:
    """Drop entries whose answer records repeat an earlier one (same node:address:port)."""
    seen: set[tuple[Record, ...]] = set()
    out = []
    for e in entries:
        if e.answer not in seen:
            seen.add(e.answer)
            out.append(e)
    return tuple(out)


# -- nodes, addresses, the apex ------------------------------------------------------


def _node_answer(q: NodeQuery, qtype: int, view: View, cfg: DnsConfig) -> Answer:
    if q.datacenter != cfg.datacenter.lower():
        return _negative(NXDOMAIN, frozenset(), view, cfg)
    found = node_only(view, q.name)
    node = found.value
    if node is None:
        return _negative(NXDOMAIN, found.watch, view, cfg)
    ttl = _seconds(cfg.node_ttl)
    ip = _ip(node.address)
    if ip is None:
        host = _hostname(node.address)
        wants = qtype in _ADDRESS_TYPES and host is not None
        addresses = [Record(None, ttl, CNAME(IN, RT.CNAME, host))] if wants else []  # type: ignore[arg-type]
    else:
        addresses = [_ip_record(None, ttl, ip)] if _type_matches(ip, qtype) else []
    txt = _meta_txt(None, node.meta, ttl)
    additional: list[Record] = []
    if qtype == RT.TXT:
        answers = txt
    elif qtype == RT.ANY:
        answers = addresses + txt
    elif qtype in (RT.A, RT.AAAA):
        answers = addresses
        if addresses and cfg.enable_additional_node_meta_txt:
            additional = txt
    else:
        answers = []
    if not answers:
        return _negative(NOERROR, found.watch, view, cfg)
    return Answer(NOERROR, (Entry(tuple(answers), tuple(additional)),), watch=found.watch)


def _addr_answer(q: AddrQuery, qtype: int, view: View, cfg: DnsConfig) -> Answer:
    # The address is in the name: no lookup, any datacenter (as Consul).
    if not _type_matches(q.address, qtype):
        return _negative(NOERROR, frozenset(), view, cfg)
    record = _ip_record(None, _seconds(cfg.node_ttl), q.address)
    return Answer(NOERROR, (Entry((record,)),))


def _apex_answer(qtype: int, view: View, cfg: DnsConfig) -> Answer:
    servers = service_instances(view, DEFAULT_NAMESPACE, CONSUL_SERVICE)
    watch = servers.watch
    ns_entries = _name_server_entries(not_critical(servers.value), cfg)
    soa = _soa(cfg, view.index_of(watch))
    ns = tuple(r for e in ns_entries for r in e.answer)
    glue = tuple(r for e in ns_entries for r in e.additional)
    if qtype == RT.SOA:
        return Answer(NOERROR, (Entry((soa,)),), authority=ns, extra=glue, watch=watch)
    if qtype == RT.NS and ns_entries:
        return Answer(NOERROR, tuple(ns_entries), watch=watch)
    if qtype == RT.ANY:
        return Answer(NOERROR, (Entry((soa, *ns), glue),), watch=watch)
    return _negative(NOERROR, watch, view, cfg)


def _name_server_entries(servers: list[Instance], cfg: DnsConfig) -> list[Entry]:
    """NS ``<node>.node.<dc>.<domain>`` for up to three healthy ``consul`` instances, with glue."""
    ttl = _seconds(cfg.node_ttl)
    domain = cfg.domain_name
    entries: list[Entry] = []
    nodes: set[str] = set()
    for inst in servers:
        ip = _ip(inst.node.address)
        if ip is None or inst.node.name in nodes:
            continue
        nodes.add(inst.node.name)
        target = _node_target(inst.node.name, ip, cfg.datacenter.lower(), cfg)
        entries.append(Entry((Record(domain, ttl, NS(IN, RT.NS, target)),), (_ip_record(target, ttl, ip),)))
        if len(entries) == _MAX_NAME_SERVERS:
            break
    return entries


# -- records --------------------------------------------------------------------------


def negative_answer(view: View, config: DnsConfig) -> Answer:
    """NXDOMAIN with the SOA: for names that parse to no query, and denied queries."""
    return _negative(NXDOMAIN, frozenset(), view, config)


def _negative(rcode: dns.rcode.Rcode, watch: frozenset, view: View, cfg: DnsConfig) -> Answer:
    return Answer(rcode, authority=(_soa(cfg, view.index_of(watch)),), watch=watch)


def _soa(cfg: DnsConfig, serial: int) -> Record:
    domain = cfg.domain_name
    soa = SOA(
        IN,
        RT.SOA,
        dns.name.Name([b"ns", *domain.labels]),
        dns.name.Name([b"hostmaster", *domain.labels]),
        serial & 0xFFFFFFFF,
        cfg.soa.refresh,
        cfg.soa.retry,
        cfg.soa.expire,
        cfg.soa.min_ttl,
    )
    return Record(domain, cfg.soa.min_ttl, soa)


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _type_matches(ip: IPAddress, qtype: int) -> bool:
    wanted = RT.A if ip.version == 4 else RT.AAAA
    return qtype in (wanted, RT.ANY)


def _ip_record(name: dns.name.Name | None, ttl: int, ip: IPAddress) -> Record:
    rdata = A(IN, RT.A, str(ip)) if ip.version == 4 else AAAA(IN, RT.AAAA, str(ip))
    return Record(name, ttl, rdata)


def _hostname(address: str) -> dns.name.Name | None:
    """An address that is no IP, as an absolute name; ``None`` when it is no DNS name
    either (such an instance cannot be answered and is left out)."""
    try:
        return dns.name.from_text(address)
    except dns.exception.DNSException:
        return None


def _addr_target(ip: IPAddress, dc: str, cfg: DnsConfig) -> dns.name.Name:
    return dns.name.Name([encode_hex_ip(ip).encode(), b"addr", dc.encode(), *cfg.domain_name.labels])


def _node_target(node: str, ip: IPAddress, dc: str, cfg: DnsConfig) -> dns.name.Name:
    """``<node>.node.<dc>.<domain>``; a node name that is no valid DNS name falls
    back to the ``.addr`` form so the SRV record always resolves."""
    try:
        return dns.name.Name(
            [*(p.encode() for p in node.split(".")), b"node", dc.encode(), *cfg.domain_name.labels]
        )
    except (dns.exception.DNSException, UnicodeEncodeError):
        return _addr_target(ip, dc, cfg)


def _meta_txt(name: dns.name.Name | None, meta: dict[str, str], ttl: int) -> list[Record]:
    """One TXT per node-meta key, sorted; ``rfc1035-`` keys give their raw value."""
    out = []
    for key, value in sorted(meta.items()):
        text = value if key.lower().startswith("rfc1035-") else encode_rfc1464(key, value)
        raw = text.encode()
        chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
        out.append(Record(name, ttl, TXT(IN, RT.TXT, chunks)))
    return out


def encode_rfc1464(key: str, value: str) -> str:
    """``key=value`` with RFC 1464 escaping: backquote `` ` `` and ``=`` in the key,
    its leading and trailing spaces, and `` ` `` in the value (Consul's encoder)."""
    key = key.replace("`", "``").replace("=", "`=")
    core = key.strip(" ")
    lead = len(key) - len(key.lstrip(" "))
    trail = len(key) - len(key.rstrip(" ")) if core else 0
    return f"{'` ' * lead}{core}{'` ' * trail}={value.replace('`', '``')}"


def _seconds(value: float) -> int:
    return max(0, int(value))


# -- text form (golden files, debugging) -----------------------------------------------


def format_answer(ans: Answer, qname: dns.name.Name | str) -> str:
    """Zone-file-like text of ``ans``, records owned by the question shown as ``qname``."""
    owner = qname if isinstance(qname, dns.name.Name) else dns.name.from_text(qname)
    lines = [f";; rcode {dns.rcode.to_text(ans.rcode)}"]
    if ans.limit:
        lines.append(f";; limit {ans.limit}")
    sections = {
        "answer": [r for e in ans.entries for r in e.answer],
        "authority": list(ans.authority),
        "additional": [r for e in ans.entries for r in e.additional] + list(ans.extra),
    }
    for title, records in sections.items():
        if records:
            lines.append(f";; {title}")
            lines += [_record_text(r, owner) for r in records]
    return "\n".join(lines) + "\n"


def _record_text(r: Record, owner: dns.name.Name) -> str:
    name = owner if r.name is None else r.name
    return f"{name.to_text()} {r.ttl} IN {dns.rdatatype.to_text(r.rdata.rdtype)} {r.rdata.to_text()}"
