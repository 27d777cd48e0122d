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

import abc
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

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

    def find(self, name_or_id: str) -> Node | None:
        """By name, else by node ID (Consul resolves either)."""
        found = self.rows.get(name_or_id.lower())
        if found is None and len(name_or_id) == 36:
            found = next((n for n in self.rows.values() if n.id.lower() == name_or_id.lower()), None)
        return found

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


Bucket = tuple[dict, object]  # (an index, the key in it)


class _IndexedTable(abc.ABC):
    """Rows by ref plus secondary indexes (key -> set of refs) kept in step.

    Subclasses say, for one row, which index buckets hold it and which watch keys
    it touches; add/remove and the old-and-new rule live here once.
    """

    row_type: type
    parse_key: Callable[[str], Any]

    def __init__(self) -> None:
        self.rows: dict[Any, Any] = {}

    @abc.abstractmethod
    def _indexes(self) -> list[dict]:
        """Every secondary index, so ``clear`` empties them all."""

    @abc.abstractmethod
    def _placement(self, ref: Any, row: Any) -> tuple[list[Bucket], list[tuple]]:
        """The index buckets holding ``row`` and the watch keys it touches."""

    def clear(self) -> None:
        self.rows.clear()
        for index in self._indexes():
            index.clear()

    def get(self, ref: Any) -> Any:
        return self.rows.get(ref)

    def _index(self, ref: Any, row: Any, add: bool) -> list[tuple]:
        buckets, touched = self._placement(ref, row)
        for index, key in buckets:
            if add:
                index[key].add(ref)
                continue
            bucket = index.get(key)
            if bucket is not None:
                bucket.discard(ref)
                if not bucket:
                    del index[key]
        return touched

    def apply(self, event: Event, create_revision: int) -> Iterable[tuple]:
        ref = type(self).parse_key(event.key)
        touched: list[tuple] = []
        old = self.rows.pop(ref, None)
        if old is not None:
            touched += self._index(ref, old, add=False)
        if event.kind == "put":
            assert event.value is not None
            new = doc.decode(self.row_type, event.value, create_index=create_revision,
                             modify_index=event.mod_revision)
            self.rows[ref] = new
            touched += self._index(ref, new, add=True)
        return touched


class ServicesTable(_IndexedTable):
    name = "services"
    prefix = keys.SERVICES
    row_type = Service
    parse_key = staticmethod(keys.parse_service_key)

    def __init__(self) -> None:
        super().__init__()
        self.by_name: dict[tuple[str, str], set[ServiceRef]] = defaultdict(set)
        self.by_node: dict[str, set[ServiceRef]] = defaultdict(set)
        self.by_connect: dict[tuple[str, str], set[ServiceRef]] = defaultdict(set)

    def _indexes(self) -> list[dict]:
        return [self.by_name, self.by_node, self.by_connect]

    def named(self, namespace: str, name: str) -> list[Service]:
        refs = self.by_name.get((namespace, name.lower()), ())
        return [self.rows[r] for r in refs]

    def on_node(self, node: str) -> list[Service]:
        return [self.rows[r] for r in self.by_node.get(node.lower(), ())]

    def connect_for(self, namespace: str, name: str) -> list[Service]:
        return [self.rows[r] for r in self.by_connect.get((namespace, name.lower()), ())]

    def _placement(self, ref: ServiceRef, s: Service) -> tuple[list[Bucket], list[tuple]]:
        name_key = (s.namespace, s.name.lower())
        buckets: list[Bucket] = [(self.by_name, name_key), (self.by_node, ref.node)]
        touched: list[tuple] = [("service", *name_key), ("node-services", ref.node)]
        target = _connect_target(s)
        if target is not None:
            buckets.append((self.by_connect, (s.namespace, target)))
            touched.append(("connect", s.namespace, target))
        return buckets, touched


class ChecksTable(_IndexedTable):
    name = "checks"
    prefix = keys.CHECKS
    row_type = Check
    parse_key = staticmethod(keys.parse_check_key)

    def __init__(self) -> None:
        super().__init__()
        self.by_node: dict[str, set[CheckRef]] = defaultdict(set)
        self.by_service_name: dict[tuple[str, str], set[CheckRef]] = defaultdict(set)
        self.by_service: dict[tuple[str, str, str], set[CheckRef]] = defaultdict(set)

    def _indexes(self) -> list[dict]:
        return [self.by_node, self.by_service_name, self.by_service]

    def on_node(self, node: str) -> list[Check]:
        return [self.rows[r] for r in self.by_node.get(node.lower(), ())]

    def node_level(self, node: str) -> list[Check]:
        return [self.rows[r] for r in self.by_service.get((node.lower(), "", ""), ())]

    def of_service(self, node: str, namespace: str, service_id: str) -> list[Check]:
        return [self.rows[r] for r in self.by_service.get((node.lower(), namespace, service_id), ())]

    def for_service_name(self, namespace: str, name: str) -> list[Check]:
        return [self.rows[r] for r in self.by_service_name.get((namespace, name.lower()), ())]

    def _placement(self, ref: CheckRef, c: Check) -> tuple[list[Bucket], list[tuple]]:
        buckets: list[Bucket] = [(self.by_node, ref.node)]
        touched: list[tuple] = [("node-checks", ref.node), ("check-state", c.status.value)]
        if c.service_id:
            key = (c.namespace, c.service_name.lower())
            buckets += [(self.by_service_name, key), (self.by_service, (ref.node, c.namespace, c.service_id))]
            touched.append(("service-checks", *key))
        else:
            buckets.append((self.by_service, (ref.node, "", "")))
            touched.append(("node-level-checks", ref.node))
        return buckets, touched


def catalog_tables() -> list:
    return [NodesTable(), ServicesTable(), ChecksTable()]
