"""A config entry from a request body or a user's file (plain data) -> a normalised
typed entry (pure). Validation is validate.py's."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from trellis.config.entry import codec
from trellis.config.entry.codec import EntryDecodeError
from trellis.config.entry.kinds import KINDS
from trellis.config.entry.model import ServiceIntentions
from trellis.config.entry.normalize import normalize

_IGNORED = frozenset({"kind", "createindex", "modifyindex", "hash", "create_index", "modify_index"})


def kind_of(data: Any) -> str:
    """The ``Kind``/``kind`` of a body, checked (Consul's messages)."""
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, Mapping):
        raise EntryDecodeError("", "Payload is not a JSON object")
    value = data.get("Kind", data.get("kind"))
    if value is None:
        raise EntryDecodeError("Kind", "Payload does not contain a kind/Kind key at the top level")
    if not isinstance(value, str):
        raise EntryDecodeError("Kind", "Kind value in payload is not a string")
    check_kind(value)
    return value


def check_kind(kind: str) -> type:
    cls = KINDS.get(kind)
    if cls is None:
        raise EntryDecodeError("Kind", f"invalid config entry kind: {kind}")
    return cls


def decode_entry(data: Any, *, namespace: str = "default") -> Any:
    """Decode, fill the namespace (the body's, else ``namespace``) and normalise."""
    cls = check_kind(kind_of(data))
    entry = codec.decode(cls, data, ignore=_IGNORED)
    given = isinstance(data, Mapping) and any(k.lower() == "namespace" for k in data)
    if not given:
        entry = dataclasses.replace(entry, namespace=namespace)
    if isinstance(entry, ServiceIntentions):  # Consul drops these silently on config-entry writes
        entry = dataclasses.replace(entry, sources=tuple(
            dataclasses.replace(s, legacy_id="", legacy_create_time="", legacy_update_time="") for s in entry.sources))
    return normalize(entry)
