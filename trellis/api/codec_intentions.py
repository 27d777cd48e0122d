"""Consul's JSON for intentions (``/v1/connect/intentions*``) and their checks (pure).

Field order and omissions follow Consul's ``structs.Intention``: ``ID``, ``Description``,
``CreatedAt``/``UpdatedAt`` and ``Hash`` only where set (legacy intentions), ``Action``
only for L4, ``Permissions`` only for L7, ``Meta`` only when not empty.
"""

from __future__ import annotations

from typing import Any

from trellis.connect.intentions.model import Intention, Permission
from trellis.connect.intentions.precedence import precedence_of


def _permission(p: Permission) -> dict[str, Any]:
    http: dict[str, Any] = {}
    h = p.http
    for label, value in (("PathExact", h.path_exact), ("PathPrefix", h.path_prefix), ("PathRegex", h.path_regex)):
        if value:
            http[label] = value
    if h.headers:
        http["Header"] = [_header(x) for x in h.headers]
    if h.methods:
        http["Methods"] = list(h.methods)
    return {"Action": p.action.value, "HTTP": http}


def _header(x: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"Name": x.name}
    for label, value in (("Present", x.present), ("Exact", x.exact), ("Prefix", x.prefix), ("Suffix", x.suffix),
                         ("Contains", x.contains), ("Regex", x.regex), ("Invert", x.invert),
                         ("IgnoreCase", x.ignore_case)):
        if value:
            out[label] = value
    return out


def encode_intention(i: Intention) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if i.created_at:  # Consul's MarshalJSON puts the times first, legacy intentions only
        out["CreatedAt"] = i.created_at
    if i.updated_at:
        out["UpdatedAt"] = i.updated_at
    if i.legacy_id:
        out["ID"] = i.legacy_id
    if i.description:
        out["Description"] = i.description
    out.update(SourceNS=i.source_ns, SourceName=i.source_name, DestinationNS=i.destination_ns,
               DestinationName=i.destination_name, SourceType=i.source_type)
    if i.action is not None and not i.l7:
        out["Action"] = i.action.value
    if i.permissions:
        out["Permissions"] = [_permission(p) for p in i.permissions]
    if i.meta:
        out["Meta"] = dict(i.meta)
    out["Precedence"] = i.precedence or precedence_of(i)
    out["CreateIndex"] = i.create_index
    out["ModifyIndex"] = i.modify_index
    return out
