"""DNS errors. The server maps them by type to an rcode (STYLE §4):

| error          | rcode    | when                                                        |
|----------------|----------|-------------------------------------------------------------|
| `WireError`    | FORMERR  | the request bytes are not a well-formed DNS query           |
| `OutsideDomain`| REFUSED  | the name is not under our domain (no recursors yet)         |
| `ParseError`   | NXDOMAIN | the name is under our domain but is not a name we know      |

Any other exception while answering is a bug: SERVFAIL, logged.
"""

from __future__ import annotations

from trellis.errors import InvalidInput


class WireError(InvalidInput):
    """Malformed DNS message bytes (FORMERR)."""

    def __init__(self, reason: str) -> None:
        super().__init__("dns message", reason=reason, message=f"malformed DNS message: {reason}")


class OutsideDomain(InvalidInput):
    """The question is not under the served domain (REFUSED)."""

    def __init__(self, name: str, domain: str) -> None:
        super().__init__(
            "name", name, f"not under {domain}", message=f"{name} is not under the domain {domain}"
        )


class ParseError(InvalidInput):
    """A name under our domain that is no lookup we know (NXDOMAIN, as Consul)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__("name", name, reason)
