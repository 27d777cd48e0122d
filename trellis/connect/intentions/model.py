"""What the intentions engine decides over, in trellis's own terms (no JSON here).

A ``service-intentions`` config entry (one per destination, a list of sources) is
flattened into ``Intention`` values, one per (source, destination) pair; the engine
only ever sees these. ``*`` is the wildcard for a name or a namespace.

Rules:
1. An intention has either an ``action`` (L4) or ``permissions`` (L7), never both.
2. ``precedence`` is computed from how exact each side is (precedence.py), never given.
3. ``Decision.intention`` is None exactly when no intention matched and the default
   policy decided.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

WILDCARD = "*"


class Action(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class HeaderMatch:
    """One HTTP header criterion: exactly one of present/exact/prefix/suffix/contains/regex."""

    name: str
    present: bool = False
    exact: str = ""
    prefix: str = ""
    suffix: str = ""
    contains: str = ""
    regex: str = ""
    invert: bool = False
    ignore_case: bool = False


@dataclass(frozen=True, slots=True)
class HTTPMatch:
    """The criteria of one permission; all given criteria must hold (AND)."""

    path_exact: str = ""
    path_prefix: str = ""
    path_regex: str = ""
    headers: tuple[HeaderMatch, ...] = ()
    methods: tuple[str, ...] = ()  # upper case


@dataclass(frozen=True, slots=True)
class Permission:
    action: Action
    http: HTTPMatch


@dataclass(frozen=True, slots=True)
class Intention:
    source_ns: str
    source_name: str
    destination_ns: str
    destination_name: str
    action: Action | None = None  # None for an L7 intention
    permissions: tuple[Permission, ...] = ()
    precedence: int = 0
    description: str = ""
    meta: dict[str, str] = field(default_factory=dict)
    source_type: str = "consul"
    legacy_id: str = ""
    created_at: str = ""  # RFC 3339, legacy intentions only
    updated_at: str = ""
    create_index: int = 0
    modify_index: int = 0

    @property
    def l7(self) -> bool:
        return bool(self.permissions)

    @property
    def source(self) -> tuple[str, str]:
        return (self.source_ns, self.source_name)

    @property
    def destination(self) -> tuple[str, str]:
        return (self.destination_ns, self.destination_name)


@dataclass(frozen=True, slots=True)
class HTTPRequest:
    """What an L7 decision looks at. Header names are matched case-insensitively."""

    path: str
    method: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    intention: Intention | None  # rule 3
    reason: str  # Consul's authorize Reason text
    permission_index: int | None = None  # which L7 permission decided, if one did

    def describe(self) -> dict[str, Any]:
        return {"allowed": self.allowed, "reason": self.reason}
