"""DNS interface: Consul's names answered from the view.

    qname ──parse_query──▶ DnsQuery ──build_answer(view)──▶ Answer ──encode/assemble──▶ wire
    (parse.py, pure)                  (answer.py, pure)               (wire.py, pure; server.py: sockets)

See docs/dns.md.
"""

from trellis.dns.answer import answer, build_answer, format_answer, select
from trellis.dns.errors import OutsideDomain, ParseError, WireError
from trellis.dns.model import (
    AddrQuery,
    Answer,
    ApexQuery,
    DnsConfig,
    DnsQuery,
    Entry,
    LookupKind,
    NodeQuery,
    Record,
    ServiceQuery,
    SoaConfig,
)
from trellis.dns.parse import format_query, parse_query
from trellis.dns.server import DnsServer

__all__ = [
    "AddrQuery",
    "Answer",
    "ApexQuery",
    "DnsConfig",
    "DnsQuery",
    "DnsServer",
    "Entry",
    "LookupKind",
    "NodeQuery",
    "OutsideDomain",
    "ParseError",
    "Record",
    "ServiceQuery",
    "SoaConfig",
    "WireError",
    "answer",
    "build_answer",
    "format_answer",
    "format_query",
    "parse_query",
    "select",
]
