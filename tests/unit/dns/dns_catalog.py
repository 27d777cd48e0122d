"""A tiny catalog builder for DNS tests: values -> store documents -> a loaded View.

view = (Catalog()
        .node("n1", "10.0.0.1", meta={"rack": "r1"})
        .service("n1", "web1", "web", port=8080, tags=("v1",))
        .check("n1", "web1:http", "passing", service_id="web1", service_name="web")
        .view())
"""

from __future__ import annotations

from typing import Any

from trellis.catalog import keys
from trellis.catalog.keys import CheckRef, ServiceRef
from trellis.catalog.model import Check, CheckStatus, Node, Service, ServiceKind, Weights
from trellis.catalog.tables import catalog_tables
from trellis.store import doc
from trellis.store.backend import Event, EventKind, KeyValue, WatchBatch
from trellis.store.view import View


def key_of(value: Node | Service | Check) -> str:
    match value:
        case Node():
            return keys.node_key(value.name)
        case Service():
            return keys.service_key(ServiceRef.of(value.node, value.namespace, value.id))
        case Check():
            return keys.check_key(CheckRef.of(value.node, value.namespace, value.check_id))
    raise TypeError(value)


class Catalog:
    def __init__(self) -> None:
        self.values: list[Node | Service | Check] = []

    def node(self, name: str, address: str, **kw: Any) -> Catalog:
        self.values.append(Node(name=name, address=address, **kw))
        return self

    def service(self, node: str, id: str, name: str | None = None, **kw: Any) -> Catalog:
        if "weights" in kw and isinstance(kw["weights"], tuple):
            kw["weights"] = Weights(*kw["weights"])
        if "kind" in kw:
            kw["kind"] = ServiceKind(kw["kind"])
        self.values.append(Service(node=node, id=id, name=name or id, **kw))
        return self

    def check(self, node: str, check_id: str, status: str, **kw: Any) -> Catalog:
        self.values.append(
            Check(node=node, check_id=check_id, name=check_id, status=CheckStatus(status), **kw)
        )
        return self

    def view(self, first_revision: int = 2) -> View:
        view = View(catalog_tables())
        items = [
            KeyValue(key_of(v), doc.encode(v), first_revision + i, first_revision + i)
            for i, v in enumerate(self.values)
        ]
        view.load(items, first_revision + len(items))
        return view


def put(view: View, *values: Node | Service | Check) -> int:
    """Apply one write of ``values`` to ``view`` as the backend's watch would; returns its revision."""
    rev = view.revision + 1
    events = tuple(Event(EventKind.PUT, key_of(v), doc.encode(v), rev) for v in values)
    view.apply(WatchBatch(rev, events))
    return rev


def delete(view: View, *values: Node | Service | Check) -> int:
    rev = view.revision + 1
    events = tuple(Event(EventKind.DELETE, key_of(v), None, rev) for v in values)
    view.apply(WatchBatch(rev, events))
    return rev
