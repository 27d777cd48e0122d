"""Store keys of config entries: ``config/<kind>/<namespace>/<name>`` (components
percent-encoded, so a name with ``/`` stays one component)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote

PREFIX = "config/"


@dataclass(frozen=True, slots=True, order=True)
class EntryRef:
    kind: str
    namespace: str
    name: str


def entry_key(ref: EntryRef) -> str:
    return PREFIX + "/".join(quote(p, safe="") for p in (ref.kind, ref.namespace, ref.name))


def parse_entry_key(key: str) -> EntryRef:
    kind, ns, name = (unquote(p) for p in key[len(PREFIX):].split("/"))
    return EntryRef(kind, ns, name)
