"""The CA's view table: the configuration, the roots and the issued marks.

Watch keys: ("ca-config",) when the configuration changes, ("ca-roots",) when any
root changes, ("ca-issued", root id) when a mark moves (model.py rule 2).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote

from trellis.connect import spiffe
from trellis.connect.ca import model
from trellis.connect.ca.model import CAConfigDoc, CARoot, IssuedMark
from trellis.store import doc
from trellis.store.backend import Event


class CATable:
    name = "ca"
    prefix = model.PREFIX

    def __init__(self) -> None:
        self.config: CAConfigDoc | None = None
        self.roots: dict[str, CARoot] = {}
        self.marks: dict[str, IssuedMark] = {}

    def clear(self) -> None:
        self.config = None
        self.roots.clear()
        self.marks.clear()

    # -- reads -------------------------------------------------------------------
    @property
    def trust_domain(self) -> str:
        return spiffe.trust_domain(self.config.cluster_id) if self.config else ""

    def active_root(self) -> CARoot | None:
        return next((r for r in self.roots.values() if r.active), None)

    def ordered_roots(self) -> list[CARoot]:
        return sorted(self.roots.values(), key=lambda r: (r.create_index, r.id))

    # -- applying ------------------------------------------------------------------
    def apply(self, event: Event, create_revision: int) -> Iterable[tuple]:
        key = event.key
        put = event.kind == "put"
        if key == model.CONFIG_KEY:
            self.config = doc.decode(CAConfigDoc, event.value, create_index=create_revision,
                                     modify_index=event.mod_revision) if put else None
            return [("ca-config",)]
        if key.startswith(model.ROOTS):
            rid = unquote(key[len(model.ROOTS):])
            if put:
                self.roots[rid] = doc.decode(CARoot, event.value, create_index=create_revision,
                                             modify_index=event.mod_revision)
            else:
                self.roots.pop(rid, None)
            return [("ca-roots",)]
        if key.startswith(model.ISSUED):
            rid = unquote(key[len(model.ISSUED):])
            if put:
                self.marks[rid] = doc.decode(IssuedMark, event.value, modify_index=event.mod_revision)
            else:
                self.marks.pop(rid, None)
            return [("ca-issued", rid)]
        return []
