"""Question name -> typed query, and back (pure).

Rules:
1. Labels are read right to left, after the domain: the first label that names a
   kind (``service``, ``connect``, ``ingress``, ``node``, ``addr``) splits the name
   into the parts before it and the locality after it, as Consul's
   ``agent/dns/router_query.go`` does. A label starting with ``_`` ends the scan
   too: the RFC 2782 form ``_<service>._<tag>`` may omit ``.service``.
2. The locality is empty, one label (the datacenter), or ``<value>.<key>`` pairs
   with keys ``ns``, ``ap`` (only ``default``: trellis has no partitions) and
   ``dc`` (Consul Enterprise's form; ``ns`` only for service-like kinds).
3. Everything is lower-cased. A name under the domain that fits no form raises
   ``ParseError`` (NXDOMAIN); a name outside it raises ``OutsideDomain`` (REFUSED).
4. ``parse_query(format_query(q)) == q`` for every query (tests/property).
"""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.name

from trellis.catalog.model import DEFAULT_NAMESPACE
from trellis.dns.errors import OutsideDomain, ParseError
from trellis.dns.model import (
    AddrQuery,
    ApexQuery,
    DnsQuery,
    LookupKind,
    NodeQuery,
    ServiceQuery,
)

_KINDS = frozenset({"service", "connect", "ingress", "node", "addr"})
# Kinds Consul answers that trellis does not (yet): NXDOMAIN, like an unknown name.
_UNSUPPORTED = {
    "virtual": "virtual IP lookups are not supported",
    "query": "prepared queries are not supported",
    "workload": "workload lookups are not supported",
    "port": "port lookups are not supported",
}
_LOCALITY_KEYS = frozenset({"ns", "ap", "dc"})


def _as_name(value: dns.name.Name | str) -> dns.name.Name:
    if isinstance(value, dns.name.Name):
        return value
    try:
        return dns.name.from_text(value)
    except dns.exception.DNSException as e:
        raise ParseError(value, f"not a DNS name ({e})") from None


def parse_query(qname: dns.name.Name | str, domain: dns.name.Name | str, datacenter: str) -> DnsQuery:
    """Parse a question name under ``domain``; ``datacenter`` fills an absent locality.

    Pure. Raises ``OutsideDomain`` or ``ParseError`` (see rule 3).
    """
    name, dom = _as_name(qname), _as_name(domain)
    if not name.is_subdomain(dom):
        raise OutsideDomain(name.to_text(), dom.to_text())
    try:
        labels = [lab.decode("ascii").lower() for lab in name.relativize(dom).labels]
    except UnicodeDecodeError:
        raise ParseError(name.to_text(), "labels must be ASCII") from None
    if not labels:
        return ApexQuery()
    text = name.to_text().lower()
    for i in range(len(labels) - 1, -1, -1):
        label = labels[i]
        if label in _UNSUPPORTED:
            raise ParseError(text, _UNSUPPORTED[label])
        if label in _KINDS:
            return _parse_kind(text, label, labels[:i], labels[i + 1 :], datacenter.lower())
        if label.startswith("_"):
            return _parse_srv_short(text, labels[: i + 1], labels[i + 1 :], datacenter.lower())
    raise ParseError(text, "no lookup kind (service, connect, ingress, node, addr)")


def _parse_kind(text: str, kind: str, parts: list[str], suffix: list[str], dc: str) -> DnsQuery:
    if not parts:
        raise ParseError(text, f"nothing before .{kind}")
    service_like = kind in ("service", "connect", "ingress")
    ns, dc = _parse_locality(text, suffix, dc, allow_namespace=service_like)
    if kind == "node":
        return NodeQuery(".".join(parts), dc)
    if kind == "addr":
        if len(parts) != 1:
            raise ParseError(text, "addr takes one hex label")
        return AddrQuery(_decode_hex_ip(text, parts[0]), dc)
    if kind == "service":
        return _service(text, parts, ns, dc, short=False)
    if len(parts) != 1:
        raise ParseError(text, f".{kind} takes no tag")
    return ServiceQuery(parts[0], dc, LookupKind(kind), namespace=ns)


def _parse_srv_short(text: str, parts: list[str], suffix: list[str], dc: str) -> ServiceQuery:
    if len(parts) != 2 or not parts[0].startswith("_"):
        raise ParseError(text, "the RFC 2782 form is _<service>._<tag>")
    ns, dc = _parse_locality(text, suffix, dc, allow_namespace=True)
    return _service(text, parts, ns, dc, short=True)


def _service(text: str, parts: list[str], ns: str, dc: str, short: bool) -> ServiceQuery:
    if len(parts) == 2 and parts[0].startswith("_") and parts[1].startswith("_"):
        name, tag = parts[0][1:], parts[1][1:]
        if not name:
            raise ParseError(text, "empty service name")
        # `_tcp` (and only tcp) means "no tag" (RFC 2782 protocol label).
        return ServiceQuery(name, dc, tag="" if tag == "tcp" else tag, namespace=ns, srv_short_form=short)
    # `<tag>.<name>.service`: the tag may contain dots (Consul re-joins the labels).
    return ServiceQuery(parts[-1], dc, tag=".".join(parts[:-1]), namespace=ns)


def _parse_locality(text: str, suffix: list[str], dc: str, allow_namespace: bool) -> tuple[str, str]:
    if not suffix:
        return DEFAULT_NAMESPACE, dc
    if len(suffix) == 1:
        return DEFAULT_NAMESPACE, suffix[0]
    if len(suffix) % 2:
        raise ParseError(text, "locality is <dc> or <value>.<ns|ap|dc> pairs")
    seen: dict[str, str] = {}
    for value, key in zip(suffix[::2], suffix[1::2], strict=True):
        if key == "peer":
            raise ParseError(text, "cluster peering is not supported")
        if key not in _LOCALITY_KEYS or key in seen:
            raise ParseError(text, f"unexpected locality label {key!r}")
        seen[key] = value
    if "ns" in seen and not allow_namespace:
        raise ParseError(text, "only service lookups take a namespace")
    if seen.get("ap", "default") != "default":
        raise ParseError(text, "admin partitions are not supported")
    return seen.get("ns", DEFAULT_NAMESPACE), seen.get("dc", dc)


def _decode_hex_ip(text: str, label: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if len(label) not in (8, 32):
        raise ParseError(text, "addr label is 8 (IPv4) or 32 (IPv6) hex digits")
    try:
        raw = bytes.fromhex(label)
    except ValueError:
        raise ParseError(text, "addr label is not hex") from None
    return ipaddress.ip_address(raw)


def encode_hex_ip(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The ``<hex>`` label of an ``.addr`` name (Consul's ``encodeIPAsFqdn``)."""
    return address.packed.hex()


def format_query(query: DnsQuery, domain: dns.name.Name | str) -> dns.name.Name:
    """The canonical name of ``query`` under ``domain`` (datacenter always written)."""
    dom = _as_name(domain)
    match query:
        case ApexQuery():
            labels: list[str] = []
        case NodeQuery(name=name, datacenter=dc):
            labels = [*name.split("."), "node", dc]
        case AddrQuery(address=address, datacenter=dc):
            labels = [encode_hex_ip(address), "addr", dc]
        case ServiceQuery():
            labels = _format_service(query)
    return dns.name.Name([lab.encode("ascii") for lab in labels] + list(dom.labels))


def _format_service(q: ServiceQuery) -> list[str]:
    if q.srv_short_form:
        head = [f"_{q.name}", f"_{q.tag or 'tcp'}"]
    elif q.kind is LookupKind.SERVICE:
        head = [*(q.tag.split(".") if q.tag else []), q.name, "service"]
    else:
        head = [q.name, q.kind.value]
    if q.namespace != DEFAULT_NAMESPACE:
        return [*head, q.namespace, "ns", q.datacenter, "dc"]
    return [*head, q.datacenter]
