"""The catalog's view tables: nodes, services and checks with their indexes.

Watch keys each table touches (all lower-cased where lookups are case-insensitive):

| table    | watch keys                                                               |
|----------|--------------------------------------------------------------------------|
| nodes    | ("nodes",) ("node", node)                                                |
| services | ("services",) ("service", ns, name) ("node-services", node)              |
|          | ("connect", ns, destination) for proxies and native services            |
| checks   | ("checks",) ("node-checks", node) ("service-checks", ns, service name)   |
|          | ("check-state", status) ("node-level-checks", node) for node checks                                                |

Rule: an update touches the keys of both the old and the new value, so a service
renamed from a to b wakes watchers of a and of b.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from trellis.catalog import keys
from trellis.catalog.keys import CheckRef, ServiceRef
from trellis.catalog.model import Check, Node, Service, ServiceKind
from trellis.store import doc
from trellis.store.backend import Event


class NodesTable:
    name = "nodes"
    prefix = keys.NODES

    def __init__(self) -> None:
        self.rows: dict[str, Node] = {}

    def clear(self) -> None:
        self.rows.clear()

    def get(self, name: str) -> Node | None:
        return self.rows.get(name.lower())

    def apply(self, event: Event, create_revision: int) -> Iterable[tuple]:
        lname = keys.parse_node_key(event.key)
        if event.kind == "put":
            assert event.value is not None
            self.rows[lname] = doc.decode(
                Node, event.value, create_index=create_revision, modify_index=event.mod_revision
            )
        else:
            self.rows.pop(lname, None)
        return [("node", lname)]


def _connect_target(s: Service) -> str | None:
    if s.kind is ServiceKind.CONNECT_PROXY and s.proxy is not None:
        return s.proxy.destination_service_name.lower()
    if s.connect.native:
        return s.name.lower()
    return None


class ServicesTable:
    name = "services"
    prefix = keys.SERVICES

    def __init__(self) -> None:
        self.rows: dict[ServiceRef, Service] = {}
        self.by_name: dict[tuple[str, str], set[ServiceRef]] = defaultdict(set)
        self.by_node: dict[str, set[ServiceRef]] = defaultdict(set)
        self.by_connect: dict[tuple[str, str], set[ServiceRef]] = defaultdict(set)

    def clear(self) -> None:
        self.rows.clear()
        self.by_name.clear()
        self.by_node.clear()
        self.by_connect.clear()

    def get(self, ref: ServiceRef) -> Service | None:
        return self.rows.get(ref)

    def named(self, namespace: str, name: str) -> list[Service]:
        refs = self.by_name.get((namespace, name.lower()), ())
        return [self.rows[r] for r in refs]

    def on_node(self, node: str) -> list[Service]:
        return [self.rows[r] for r in self.by_node.get(node.lower(), ())]

    def connect_for(self, namespace: str, name: str) -> list[Service]:
        return [self.rows[r] for r in self.by_connect.get((namespace, name.lower()), ())]

    def _index(self, ref: ServiceRef, s: Service, add: bool) -> list[tuple]:
        touched: list[tuple] = [("service", s.namespace, s.name.lower()), ("node-services", ref.node)]
        pairs: list[tuple[dict, object]] = [
            (self.by_name, (s.namespace, s.name.lower())),
            (self.by_node, ref.node),
        ]
        target = _connect_target(s)
        if target is not None:
            pairs.append((self.by_connect, (s.namespace, target)))
            touched.append(("connect", s.namespace, target))
        for index, k in pairs:
            if add:
                index[k].add(ref)
            else:
                bucket = index.get(k)
                if bucket is not None:
                    bucket.discard(ref)
                    if not bucket:
                        del index[k]
        return touched

    def apply(self, event: Event, create_revision: int) -> Iterable[tuple]:
        ref = keys.parse_service_key(event.key)
        touched: list[tuple] = []
        old = self.rows.pop(ref, None)
        if old is not None:
            touched += self._index(ref, old, add=False)
        if event.kind == "put":
            assert event.value is not None
            new = doc.decode(
                Service, event.value, create_index=create_revision, modify_index=event.mod_revision
            )
            self.rows[ref] = new
            touched += self._index(ref, new, add=True)
        return touched


class ChecksTable:
    name = "checks"
    prefix = keys.CHECKS

    def __init__(self) -> None:
        self.rows: dict[CheckRef, Check] = {}
        self.by_node: dict[str, set[CheckRef]] = defaultdict(set)
        self.by_service_name: dict[tuple[str, str], set[CheckRef]] = defaultdict(set)
        self.by_service: dict[tuple[str, str, str], set[CheckRef]] = defaultdict(set)

    def clear(self) -> None:
        self.rows.clear()
        self.by_node.clear()
        self.by_service_name.clear()
        self.by_service.clear()

    def get(self, ref: CheckRef) -> Check | None:
        return self.rows.get(ref)

    def on_node(self, node: str) -> list[Check]:
        return [self.rows[r] for r in self.by_node.get(node.lower(), ())]

    def node_level(self, node: str) -> list[Check]:
        return [self.rows[r] for r in self.by_service.get((node.lower(), "", ""), ())]

    def of_service(self, node: str, namespace: str, service_id: str) -> list[Check]:
        return [self.rows[r] for r in self.by_service.get((node.lower(), namespace, service_id), ())]

    def for_service_name(self, namespace: str, name: str) -> list[Check]:
        return [self.rows[r] for r in self.by_service_name.get((namespace, name.lower()), ())]

    def _index(self, ref: CheckRef, c: Check, add: bool) -> list[tuple]:
        touched: list[tuple] = [("node-checks", ref.node), ("check-state", c.status.value)]
        pairs: list[tuple[dict, object]] = [(self.by_node, ref.node)]
        if c.service_id:
            key = (c.namespace, c.service_name.lower())
            pairs.append((self.by_service_name, key))
            pairs.append((self.by_service, (ref.node, c.namespace, c.service_id)))
            touched.append(("service-checks", *key))
        else:
            pairs.append((self.by_service, (ref.node, "", "")))
            touched.append(("node-level-checks", ref.node))
        for index, k in pairs:
            if add:
                index[k].add(ref)
            else:
                bucket = index.get(k)
                if bucket is not None:
                    bucket.discard(ref)
                    if not bucket:
                        del index[k]
        return touched

    def apply(self, event: Event, create_revision: int) -> Iterable[tuple]:
        ref = keys.parse_check_key(event.key)
        touched: list[tuple] = []
        old = self.rows.pop(ref, None)
        if old is not None:
            touched += self._index(ref, old, add=False)
        if event.kind == "put":
            assert event.value is not None
            new = doc.decode(
                Check, event.value, create_index=create_revision, modify_index=event.mod_revision
            )
            self.rows[ref] = new
            touched += self._index(ref, new, add=True)
        return touched


def catalog_tables() -> list:
    return [NodesTable(), ServicesTable(), ChecksTable()]
