"""The view table of config entries, with the intentions flattened out of them.

Watch keys: ("config-entry", kind, ns, name) for one entry, ("config-kind", kind) for
a kind's list, ("intentions",) whenever a service-intentions entry changes (a list or
a match depends on all of them), and ("intentions-for", ns, name) for the entry of one
destination pattern: the intentions that can decide for service ns/name all come from
the entries ns/name, ns/* and */* (a proxy snapshot watches just those three).

Rules:
1. Rows keep the typed entry and its create/modify revisions.
2. The flattened intentions and their index are rebuilt lazily, at most once per
   change of the service-intentions entries, and shared by every reader.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from trellis.config.entry import keys
from trellis.config.entry.keys import EntryRef
from trellis.store import doc
from trellis.store.backend import Event

INTENTIONS_KIND = "service-intentions"


@dataclass(frozen=True, slots=True)
class StoredEntry:
    entry: Any
    create_index: int
    modify_index: int


class ConfigEntriesTable:
    name = "config"
    prefix = keys.PREFIX

    def __init__(self) -> None:
        self.rows: dict[EntryRef, StoredEntry] = {}
        self._by_kind: dict[str, set[EntryRef]] = {}
        self._intentions_version = 0
        self._index: tuple[int, Any] | None = None
        self._flat: dict[EntryRef, list] = {}  # each intentions entry flattened once, when it changes

    def clear(self) -> None:
        self.rows.clear()
        self._by_kind.clear()
        self._flat.clear()
        self._intentions_version += 1

    # -- reads ------------------------------------------------------------------------
    def get(self, kind: str, namespace: str, name: str) -> StoredEntry | None:
        return self.rows.get(EntryRef(kind, namespace, name))

    def of_kind(self, kind: str, namespace: str | None = None) -> list[StoredEntry]:
        """A kind's entries sorted by namespace and name (``namespace`` None: all)."""
        refs = sorted(r for r in self._by_kind.get(kind, ()) if namespace in (None, "*", r.namespace))
        return [self.rows[r] for r in refs]

    @staticmethod
    def intention_watch(namespace: str, name: str) -> list[tuple]:
        """The watch keys of the entries whose intentions can decide for ``namespace/name``."""
        return [("intentions-for", namespace, name), ("intentions-for", namespace, "*"), ("intentions-for", "*", "*")]

    def intention_index(self) -> Any:
        """Every intention of every service-intentions entry, indexed (rule 2)."""
        from trellis.config.entry.flatten import intentions_of
        from trellis.connect.intentions.index import IntentionIndex

        if self._index is None or self._index[0] != self._intentions_version:
            flat = []
            for ref in self._by_kind.get(INTENTIONS_KIND, ()):
                found = self._flat.get(ref)
                if found is None:
                    found = self._flat[ref] = intentions_of(self.rows[ref])
                flat.extend(found)
            self._index = (self._intentions_version, IntentionIndex(flat))
        return self._index[1]

    # -- applying ---------------------------------------------------------------------------
    def apply(self, event: Event, create_revision: int) -> Iterable[tuple]:
        from trellis.config.entry.kinds import KINDS

        ref = keys.parse_entry_key(event.key)
        if event.kind == "put":
            assert event.value is not None
            entry = doc.decode(KINDS[ref.kind], event.value)
            self.rows[ref] = StoredEntry(entry, create_revision, event.mod_revision)
            self._by_kind.setdefault(ref.kind, set()).add(ref)
        else:
            self.rows.pop(ref, None)
            self._by_kind.get(ref.kind, set()).discard(ref)
        touched = [("config-entry", ref.kind, ref.namespace, ref.name), ("config-kind", ref.kind)]
        if ref.kind == INTENTIONS_KIND:
            self._intentions_version += 1
            self._flat.pop(ref, None)
            touched += [("intentions",), ("intentions-for", ref.namespace, ref.name)]
        return touched
