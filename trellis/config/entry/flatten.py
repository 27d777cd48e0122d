"""service-intentions entries -> the engine's ``Intention`` values (pure)."""

from __future__ import annotations

from trellis.config.entry.model import IntentionPermission, ServiceIntentions, SourceIntention
from trellis.config.entry.tables import StoredEntry
from trellis.connect.intentions.model import Action, HeaderMatch, HTTPMatch, Intention, Permission


def permission_of(p: IntentionPermission) -> Permission:
    http = p.http
    match = HTTPMatch() if http is None else HTTPMatch(
        path_exact=http.path_exact, path_prefix=http.path_prefix, path_regex=http.path_regex,
        headers=tuple(HeaderMatch(h.name, h.present, h.exact, h.prefix, h.suffix, h.contains, h.regex,
                                  h.invert, h.ignore_case) for h in http.header),
        methods=tuple(m.upper() for m in http.methods),
    )
    return Permission(Action(p.action), match)


def intention_of(entry: ServiceIntentions, s: SourceIntention, create_index: int = 0,
                 modify_index: int = 0) -> Intention:
    """One source of an entry as an intention. Legacy sources carry their own meta,
    others the entry's (Consul's ToIntention)."""
    return Intention(
        source_ns=s.namespace or entry.namespace, source_name=s.name,
        destination_ns=entry.namespace, destination_name=entry.name,
        action=Action(s.action) if s.action and not s.permissions else None,
        permissions=tuple(permission_of(p) for p in s.permissions), precedence=s.precedence,
        description=s.description, meta=dict(s.legacy_meta if s.legacy_id else entry.meta),
        source_type=s.type or "consul", legacy_id=s.legacy_id, created_at=s.legacy_create_time,
        updated_at=s.legacy_update_time, create_index=create_index, modify_index=modify_index,
    )


def intentions_of(row: StoredEntry) -> list[Intention]:
    entry: ServiceIntentions = row.entry
    return [intention_of(entry, s, row.create_index, row.modify_index) for s in entry.sources]
