"""Writes of config entries as plans over the view (pure): put and delete, with
Consul's check-and-set and the cross-entry rules.

Rules:
1. ``cas`` (when given) compares with the entry's current ModifyIndex (0: absent); a
   mismatch raises ``CasFailed`` and nothing is written (the API answers ``false``).
2. A write is validated whole before anything is planned: the entry alone
   (validate.py), then against the entries it would join (graph.py). The plan
   compares on every entry it read for that, so a concurrent change to one of them
   re-plans.
3. ``datacenter`` (the agent's) only names targets in messages (chain.py).
"""

from __future__ import annotations

from typing import Any

from trellis.config.entry import graph, validate
from trellis.config.entry.keys import EntryRef, entry_key
from trellis.config.entry.model import DEFAULT_NS, ProxyDefaults, ServiceDefaults, name_of
from trellis.config.entry.tables import ConfigEntriesTable, StoredEntry
from trellis.store.view import View
from trellis.store.writer import Plan


class CasFailed(Exception):
    """A check-and-set lost (not an error: Consul answers ``false``)."""


def ref_of(entry: Any) -> EntryRef:
    return EntryRef(entry.KIND, entry.namespace, name_of(entry))


def table(view: View) -> ConfigEntriesTable:
    return view["config"]  # type: ignore[return-value]


class _Reader:
    """Reads entries for the graph checks, remembering each one's revision for the plan."""

    def __init__(self, t: ConfigEntriesTable, replacing: EntryRef, replacement: Any) -> None:
        self.t = t
        self.replacing = replacing
        self.replacement = replacement  # None: deleted
        self.read: dict[EntryRef, int] = {}

    def get(self, kind: str, ns: str, name: str) -> Any:
        ref = EntryRef(kind, ns, name)
        if ref == self.replacing:
            return self.replacement
        row = self.t.rows.get(ref)
        self.read[ref] = row.modify_index if row else 0
        return row.entry if row else None

    def rows(self, kind: str) -> list[StoredEntry]:
        out = []
        for row in self.t.of_kind(kind):
            ref = ref_of(row.entry)
            if ref == self.replacing:
                continue
            self.read[ref] = row.modify_index
            out.append(row)
        return out

    def entries(self, kind: str) -> list[Any]:
        """Every entry of ``kind`` as it would be after the write."""
        found = [row.entry for row in self.rows(kind)]
        if self.replacing.kind == kind and self.replacement is not None:
            found.append(self.replacement)
        return found

    def protocol(self, ns: str, name: str) -> str:
        sd = self.get(ServiceDefaults.KIND, ns, name)
        pd = self.get(ProxyDefaults.KIND, DEFAULT_NS, "global")
        return validate.protocol_of(sd, pd)


def _cas(t: ConfigEntriesTable, ref: EntryRef, cas: int | None) -> StoredEntry | None:
    current = t.rows.get(ref)
    if cas is not None and (current.modify_index if current else 0) != cas:
        raise CasFailed()
    return current


def plan_put(view: View, entry: Any, *, cas: int | None = None, datacenter: str = "dc1") -> Plan:
    """Store ``entry`` (validated here: rule 2). Raises CasFailed or InvalidEntry."""
    validate.validate_entry(entry)
    return plan_put_valid(view, entry, cas=cas, datacenter=datacenter)


def plan_put_valid(view: View, entry: Any, *, cas: int | None = None, datacenter: str = "dc1") -> Plan:
    """Like ``plan_put`` for an entry already validated alone (the legacy intention API
    validates with its own rules first)."""
    t = table(view)
    ref = ref_of(entry)
    current = _cas(t, ref, cas)
    reader = _Reader(t, ref, entry)
    graph.check_graph(reader, ref, entry, datacenter=datacenter)
    p = Plan()
    for other, revision in reader.read.items():
        p.expect(entry_key(other), revision)
    p.put(entry_key(ref), entry, expected=current.modify_index if current else 0)
    return p


def plan_delete(view: View, ref: EntryRef, *, cas: int | None = None, datacenter: str = "dc1") -> Plan:
    """Delete an entry (absent: nothing to do). Raises CasFailed or InvalidEntry when
    the deletion would leave another entry invalid (an L7 intention losing its HTTP
    protocol, a router losing the subset it routes to...)."""
    t = table(view)
    current = _cas(t, ref, cas)
    p = Plan()
    if current is None:
        return p
    reader = _Reader(t, ref, None)
    graph.check_graph(reader, ref, None, datacenter=datacenter)
    for other, revision in reader.read.items():
        p.expect(entry_key(other), revision)
    p.delete(entry_key(ref), expected=current.modify_index)
    return p
