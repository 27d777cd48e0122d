"""Query-string helpers shared by route modules (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from multidict import MultiMapping

from trellis.catalog.model import DEFAULT_NAMESPACE
from trellis.errors import InvalidInput

_NS = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,62})$")
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def namespace(
    query: Mapping[str, str], headers: Mapping[str, str] | None = None, *, wildcard: bool = False
) -> str:
    """``?ns=`` (or ``X-Consul-Namespace``), default ``default``; ``*`` (every
    namespace) only where the endpoint lists across namespaces."""
    ns = query.get("ns") or (headers or {}).get("X-Consul-Namespace") or DEFAULT_NAMESPACE
    if wildcard and ns == "*":
        return ns
    if not _NS.match(ns):
        raise InvalidInput("ns", ns, message=f'Invalid query parameter: "ns" - namespace "{ns}" is not a valid name')
    return ns


def flag(query: Mapping[str, str], name: str, *, message: str | None = None) -> bool:
    """Presence means true (``?passing``); an explicit value must parse as Go's ParseBool."""
    if name not in query:
        return False
    value = query[name]
    if value == "" or value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidInput(name, value, message=message or f"Invalid value for ?{name}")


def tags(query: MultiMapping[str]) -> list[str]:
    return [t for t in query.getall("tag", []) if t]


def node_meta(query: MultiMapping[str]) -> dict[str, str]:
    out = {}
    for item in query.getall("node-meta", []):
        key, sep, value = item.partition(":")
        if not sep:
            raise InvalidInput("node-meta", item, message=f"Invalid node-meta filter {item!r}: expected key:value")
        out[key] = value
    return out


def meta_matches(meta: Mapping[str, Any], wanted: Mapping[str, str]) -> bool:
    return all(meta.get(k) == v for k, v in wanted.items())
