"""The intention APIs as changes to service-intentions entries (pure plans over the view).

    POST /v1/connect/intentions         ─▶ plan_legacy_create  (a source with a LegacyID)
    PUT|DELETE /v1/connect/intentions/ID ─▶ plan_legacy_update / plan_legacy_delete
    PUT|DELETE .../exact?source=&destination= ─▶ plan_exact_put / plan_exact_delete

Rules (Consul 1.9+, agent/consul/intention_endpoint.go):
1. One entry per destination holds every source; the APIs add, replace or remove one
   source and the entry goes when its last source does.
2. Legacy writes (create, update and delete by ID) refuse a destination whose entry was
   written as a config entry (a source without LegacyID): Consul's message.
3. ``exact`` writes never assign IDs; ``Meta`` there is the entry's and may be given
   only unchanged on an existing entry.
4. The whole resulting entry is validated (validate.py) before it is planned, and the
   plan compares on the entry it changed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from trellis.config.entry import codec, validate, write
from trellis.config.entry.codec import key
from trellis.config.entry.keys import EntryRef
from trellis.config.entry.model import IntentionPermission, ServiceIntentions, SourceIntention
from trellis.config.entry.normalize import normalize
from trellis.config.entry.tables import ConfigEntriesTable
from trellis.connect.intentions import names
from trellis.errors import InvalidInput, NotFound
from trellis.store.view import View
from trellis.store.writer import Plan

KIND = ServiceIntentions.KIND


@dataclass(frozen=True, slots=True)
class IntentionBody:
    """A ``/v1/connect/intentions`` request body (CamelCase keys only, any case)."""

    id: str = key("ID", "")
    description: str = key("Description", "")
    source_partition: str = key("SourcePartition", "")
    source_ns: str = key("SourceNS", "")
    source_name: str = key("SourceName", "")
    destination_partition: str = key("DestinationPartition", "")
    destination_ns: str = key("DestinationNS", "")
    destination_name: str = key("DestinationName", "")
    source_peer: str = key("SourcePeer", "")
    source_type: str = key("SourceType", "")
    action: str = key("Action", "")
    permissions: tuple[IntentionPermission, ...] = key("Permissions", ())
    meta: dict[str, str] = key("Meta", factory=dict)
    precedence: int = key("Precedence", 0)
    created_at: str = key("CreatedAt", "")
    updated_at: str = key("UpdatedAt", "")
    hash: Any = key("Hash", None)
    create_index: int = key("CreateIndex", 0)
    modify_index: int = key("ModifyIndex", 0)


def decode_body(data: Any) -> IntentionBody:
    try:
        body = codec.decode(IntentionBody, data)
    except InvalidInput as exc:
        raise InvalidInput("body", message=f"Failed to decode request body: {exc}") from None
    for side, value in (("source", body.source_partition), ("destination", body.destination_partition)):
        if value not in ("", "default"):
            raise InvalidInput(f"{side}Partition", value,
                               message=f"Cannot specify a {side} partition with this endpoint")
    if body.source_peer:
        raise InvalidInput("SourcePeer", body.source_peer,
                           message="SourcePeer field is not supported on this endpoint. Use config entries instead")
    return body


def _table(view: View) -> ConfigEntriesTable:
    return view["config"]  # type: ignore[return-value]


def _entry(view: View, ns: str, name: str) -> tuple[ServiceIntentions | None, int]:
    row = _table(view).get(KIND, ns, name)
    return (row.entry, row.modify_index) if row else (None, 0)


def find_legacy(view: View, legacy_id: str) -> tuple[ServiceIntentions, SourceIntention] | None:
    """The entry and source that carry ``legacy_id``."""
    for row in _table(view).of_kind(KIND, None):
        for s in row.entry.sources:
            if s.legacy_id == legacy_id:
                return row.entry, s
    return None


def _source_from(body: IntentionBody, default_ns: str, *, legacy_id: str = "", now: str = "",
                 created: str = "") -> SourceIntention:
    return SourceIntention(
        name=body.source_name, namespace=body.source_ns or default_ns, action=body.action.lower(),
        permissions=body.permissions, type=body.source_type or "consul", description=body.description,
        legacy_id=legacy_id, legacy_meta=dict(body.meta) if legacy_id else {},
        legacy_create_time=(created or now) if legacy_id else "", legacy_update_time=now if legacy_id else "",
    )


def _replace_source(entry: ServiceIntentions, source: SourceIntention, *, key_of: Any) -> ServiceIntentions:
    kept = [s for s in entry.sources if key_of(s) != key_of(source)]
    return dataclasses.replace(entry, sources=(*kept, source))


def _plan(view: View, new: ServiceIntentions, revision: int) -> Plan:
    """Validate the whole entry and plan it; an entry left with no source is deleted."""
    if not new.sources:
        return write.plan_delete(view, EntryRef(KIND, new.namespace, new.name))
    new = normalize(new)
    if any(s.legacy_id for s in new.sources):  # sources the legacy API made keep their IDs
        validate.validate_legacy_intentions(new)
    else:
        validate.validate_entry(new)
    p = write.plan_put_valid(view, new)
    p.expect(write.entry_key(write.ref_of(new)), revision)
    return p


def _refuse_config_entry_edits(entry: ServiceIntentions | None, dest: str) -> None:
    """Rule 2."""
    if entry is not None and any(not s.legacy_id for s in entry.sources):
        raise InvalidInput("DestinationName", dest, message=f'cannot use legacy intention API to edit intentions '
                                                            f'with a destination of "{dest}" after editing them via '
                                                            'a service-intentions config entry')


def _legacy_checks(body: IntentionBody) -> None:
    """Consul's legacy ``Intention.Validate`` (the first problem, with its words)."""
    for label, value in (("SourceName", body.source_name), ("DestinationName", body.destination_name)):
        if not value:
            raise InvalidInput(label, message=f"{label} must be set")
    for label, ns, name in (("Source", body.source_ns or "x", body.source_name),
                            ("Destination", body.destination_ns or "x", body.destination_name)):
        problems = names.name_problems(ns, name)
        if problems:
            raise InvalidInput(f"{label}Name", name, message=label + problems[0].replace("Namespace", "NS", 1))
    if len(body.description) > validate.DESCRIPTION_MAX:
        raise InvalidInput("Description", message=f"Description exceeds maximum length {validate.DESCRIPTION_MAX}")
    validate.validate_meta(body.meta)
    if body.action.lower() not in ("allow", "deny"):
        raise InvalidInput("Action", body.action, message="Action must be set to 'allow' or 'deny'")
    if body.permissions:
        raise InvalidInput("Permissions", message="Permissions must not be set when using the legacy APIs")
    if body.source_type not in ("", "consul"):
        raise InvalidInput("SourceType", body.source_type, message="SourceType must be set to 'consul'")


def plan_legacy_create(view: View, body: IntentionBody, *, new_id: str, now: str, namespace: str = "default") -> Plan:
    """``namespace`` (the request's) fills an empty SourceNS or DestinationNS."""
    if body.id:
        raise InvalidInput("ID", body.id, message="ID must be empty when creating a new intention")
    _legacy_checks(body)
    dest_ns = body.destination_ns or namespace
    entry, revision = _entry(view, dest_ns, body.destination_name)
    _refuse_config_entry_edits(entry, body.destination_name)
    source = _source_from(body, namespace, legacy_id=new_id, now=now)
    base = entry or ServiceIntentions(name=body.destination_name, namespace=dest_ns)
    new = dataclasses.replace(base, sources=(*base.sources, source))  # a duplicate is refused by validation
    return _plan(view, new, revision)


def plan_legacy_update(view: View, legacy_id: str, body: IntentionBody, *, now: str,
                       namespace: str = "default") -> Plan:
    found = find_legacy(view, legacy_id)
    if found is None:
        raise NotFound(f"Cannot modify non-existent intention: '{legacy_id}'")
    entry, old = found
    _legacy_checks(body)
    dest_ns = body.destination_ns or namespace
    if (dest_ns, body.destination_name) != (entry.namespace, entry.name):
        raise InvalidInput("DestinationName", body.destination_name,
                           message="Cannot modify Destination partition/namespace/name for an intention once it exists.")
    _, revision = _entry(view, entry.namespace, entry.name)
    source = _source_from(body, namespace, legacy_id=legacy_id, now=now, created=old.legacy_create_time)
    kept = tuple(source if s.legacy_id == legacy_id else s for s in entry.sources)
    return _plan(view, dataclasses.replace(entry, sources=kept), revision)


def plan_legacy_delete(view: View, legacy_id: str) -> Plan:
    found = find_legacy(view, legacy_id)
    if found is None:
        raise InvalidInput("id", legacy_id, message=f"Cannot delete non-existent intention: '{legacy_id}'")
    entry, _ = found
    _, revision = _entry(view, entry.namespace, entry.name)
    kept = tuple(s for s in entry.sources if s.legacy_id != legacy_id)
    return _plan(view, dataclasses.replace(entry, sources=kept), revision)


def plan_exact_put(view: View, source: tuple[str, str], destination: tuple[str, str], body: IntentionBody) -> Plan:
    if body.id:
        raise InvalidInput("ID", body.id, message="ID must not be specified")
    entry, revision = _entry(view, *destination)
    if body.meta:
        if entry is None:
            raise InvalidInput("Meta", message="Meta must not be specified")
        if body.meta != entry.meta:
            raise InvalidInput("Meta", message="Meta must not be specified, or should be unchanged during an update.")
    changed = dataclasses.replace(body, source_ns=source[0], source_name=source[1])
    new_source = _source_from(changed, destination[0])
    base = entry or ServiceIntentions(name=destination[1], namespace=destination[0])
    new = _replace_source(base, new_source, key_of=lambda s: (s.namespace or destination[0], s.name))
    return _plan(view, new, revision)


def plan_exact_delete(view: View, source: tuple[str, str], destination: tuple[str, str]) -> Plan:
    entry, revision = _entry(view, *destination)
    if entry is None:
        return Plan()
    kept = tuple(s for s in entry.sources if (s.namespace or entry.namespace, s.name) != source)
    if len(kept) == len(entry.sources):
        return Plan()
    return _plan(view, dataclasses.replace(entry, sources=kept), revision)


def intentions_after(view: View, plan: Plan) -> list:
    """Every intention as it would be once ``plan`` is committed (for dry runs)."""
    from trellis.config.entry import keys
    from trellis.config.entry.flatten import intention_of
    from trellis.config.entry.keys import entry_key
    from trellis.store import doc

    out = []
    for row in _table(view).of_kind(KIND, None):
        k = entry_key(EntryRef(KIND, row.entry.namespace, row.entry.name))
        if k in plan.deletes or k in plan.puts:
            continue
        out += [intention_of(row.entry, s) for s in row.entry.sources]
    prefix = f"{keys.PREFIX}{KIND}/"
    for k, raw in plan.puts.items():
        if k.startswith(prefix):
            entry = doc.decode(ServiceIntentions, raw)
            out += [intention_of(entry, s) for s in entry.sources]
    return out
