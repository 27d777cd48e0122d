"""Catalog and health queries over the view (pure: no I/O, no clock).

Each function reads the view's tables at one revision and returns a ``Result``:
the answer, the watch keys it read, and the index (highest revision among them).
Ordering follows Consul: nodes by name, instances by node name then service ID.
Services come out with their effective kind (catalog/gateway.py): a seed-style
``connect.gateway`` service shows the kind of its gateway config entry, and the
query watches that entry.

A connect query for a service (``/v1/health/connect/<service>``, a proxy's upstream
endpoints) also returns the instances of every terminating gateway linked to it, as
Consul's does: mesh clients reach an external service through those gateways.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from trellis.catalog.gateway import kind_watch, with_effective_kind
from trellis.catalog.model import Check, CheckStatus, Node, Service, ServiceKind
from trellis.catalog.tables import ChecksTable, NodesTable, ServicesTable
from trellis.store.view import Result, View


@dataclass(frozen=True, slots=True)
class Instance:
    """One service instance with its node and the checks that decide its health
    (the node-level checks of its node, then its own)."""

    node: Node
    service: Service
    checks: tuple[Check, ...]

    @property
    def status(self) -> CheckStatus:
        return aggregate_status(self.checks)


def aggregate_status(checks: Iterable[Check]) -> CheckStatus:
    """Any critical -> critical; else any warning -> warning; else passing."""
    return worst_status(c.status for c in checks)


def worst_status(statuses: Iterable[CheckStatus]) -> CheckStatus:
    worst = CheckStatus.PASSING
    for status in statuses:
        if status is CheckStatus.CRITICAL:
            return CheckStatus.CRITICAL
        if status is CheckStatus.WARNING:
            worst = CheckStatus.WARNING
    return worst


def _tables(view: View) -> tuple[NodesTable, ServicesTable, ChecksTable]:
    return view["nodes"], view["services"], view["checks"]  # type: ignore[return-value]


def _has_tags(s: Service, tags: Sequence[str]) -> bool:
    have = {t.lower() for t in s.tags}
    return all(t.lower() in have for t in tags)


def nodes(view: View) -> Result[list[Node]]:
    nt, _, _ = _tables(view)
    return view.result(sorted(nt.rows.values(), key=lambda n: n.name), [("nodes",)])


def node(view: View, name: str) -> Result[tuple[Node, list[Service]] | None]:
    nt, st, _ = _tables(view)
    n = nt.find(name)
    if n is None:
        return view.result(None, [("node", name.lower()), ("node-services", name.lower())], floor=("nodes",))
    name = n.name
    watch = [("node", name.lower()), ("node-services", name.lower())]
    services = sorted(st.on_node(name), key=lambda s: (s.namespace, s.id))
    return view.result((n, _effective_kinds(view, services, watch)), watch)


def _effective_kinds(view: View, services: Iterable[Service], watch: list[tuple]) -> list[Service]:
    """``services`` with their effective kinds; the keys read are added to ``watch``."""
    out = []
    for s in services:
        s, keys = with_effective_kind(view, s)
        watch.extend(keys)
        out.append(s)
    return out


def services(view: View, namespace: str | None) -> Result[dict[str, list[str]]]:
    """Service name -> sorted union of tags (``namespace=None``: every namespace)."""
    _, st, _ = _tables(view)
    out: dict[str, set[str]] = {}
    for s in st.rows.values():
        if namespace is None or s.namespace == namespace:
            out.setdefault(s.name, set()).update(s.tags)
    return view.result({k: sorted(v) for k, v in sorted(out.items())}, [("services",)])


def _instances(view: View, found: list[Service], watch: list[tuple]) -> list[Instance]:
    nt, _, ct = _tables(view)
    result = []
    for s in found:
        n = nt.get(s.node)
        if n is None:  # a service whose node is gone is not visible
            continue
        watch += [("node", s.node.lower()), ("node-level-checks", s.node.lower())]
        checks = sorted(ct.node_level(s.node), key=lambda c: c.check_id)
        checks += sorted(ct.of_service(s.node, s.namespace, s.id), key=lambda c: c.check_id)
        s, kind_keys = with_effective_kind(view, s)
        watch.extend(kind_keys)
        result.append(Instance(n, s, tuple(checks)))
    result.sort(key=lambda i: (i.node.name, i.service.id))
    return result


def service_instances(
    view: View,
    namespace: str,
    name: str,
    *,
    tags: Sequence[str] = (),
    connect: bool = False,
) -> Result[list[Instance]]:
    """Instances of ``name`` (``connect``: its mesh-capable instances and the instances of
    the terminating gateways linked to it), unfiltered by health."""
    _, st, _ = _tables(view)
    lname = name.lower()
    if connect:
        watch: list[tuple] = [("connect", namespace, lname)]
        found = [*st.connect_for(namespace, name), *_terminating_gateways(view, namespace, name, watch)]
        checks_key = None
    else:
        found = st.named(namespace, name)
        watch = [("service", namespace, lname)]
        checks_key = ("service-checks", namespace, lname)
    found = [s for s in found if _has_tags(s, tags)]
    if checks_key is not None:
        watch.append(checks_key)
    else:  # proxies have their own names: watch their checks too
        watch += [("service-checks", s.namespace, s.name.lower()) for s in found]
    return view.result(_instances(view, found, watch), watch, floor=("services",))


TERMINATING_KIND = ServiceKind.TERMINATING_GATEWAY.value


def _terminating_gateways(view: View, namespace: str, name: str, watch: list[tuple]) -> list[Service]:
    """The registrations of the terminating gateways whose entry links ``namespace/name``
    (by name, or by ``*`` when the service has a plain instance in the entry's namespace),
    whatever their registered kind when their effective kind is a terminating gateway
    (catalog/gateway.py rule 1). The keys read are added to ``watch``."""
    config = view.tables.get("config")
    watch.append(("config-kind", TERMINATING_KIND))
    if config is None:
        return []
    _, st, _ = _tables(view)
    lname = name.lower()
    out: list[Service] = []
    for stored in config.of_kind(TERMINATING_KIND):  # type: ignore[attr-defined]
        e = stored.entry
        linked = False
        for s in e.services:
            if (s.namespace or e.namespace) != namespace:
                continue
            if s.name.lower() == lname:
                linked = True
            elif s.name == "*" and lname != "consul":
                watch.append(("service", namespace, lname))
                linked = linked or any(_plain(x) for x in st.named(namespace, name))
        if not linked:
            continue
        watch.append(("service", e.namespace, e.name.lower()))
        for gw in st.named(e.namespace, e.name):
            effective, keys = with_effective_kind(view, gw)
            watch.extend(keys)
            if effective.kind is ServiceKind.TERMINATING_GATEWAY:
                out.append(gw)
    return out


def _plain(s: Service) -> bool:
    """A typical instance (not native, not a gateway): what a terminating ``*`` links."""
    return s.kind is ServiceKind.TYPICAL and not s.connect.native and not s.connect.gateway


def all_instances(view: View, namespace: str | None) -> Result[list[Instance]]:
    """Every service instance (``namespace=None``: in every namespace), for filters
    that span services."""
    _, st, _ = _tables(view)
    found = [s for s in st.rows.values() if namespace is None or s.namespace == namespace]
    watch: list[tuple] = [("services",), ("nodes",), ("checks",)]
    watch += [k for s in found for k in kind_watch(s)]  # the table keys cover nodes and checks
    return view.result(_instances(view, found, []), watch)


def passing_only(instances: Iterable[Instance]) -> list[Instance]:
    """``?passing``: every check exactly passing (warning excluded)."""
    return [i for i in instances if all(c.status is CheckStatus.PASSING for c in i.checks)]


def not_critical(instances: Iterable[Instance]) -> list[Instance]:
    """DNS's rule: any critical check removes the instance; warning stays."""
    return [i for i in instances if i.status is not CheckStatus.CRITICAL]


def node_checks(view: View, node_name: str) -> Result[list[Check]]:
    _, _, ct = _tables(view)
    found = sorted(ct.on_node(node_name), key=lambda c: (c.namespace, c.check_id))
    return view.result(found, [("node-checks", node_name.lower())], floor=("checks",))


def service_checks(view: View, namespace: str, name: str) -> Result[list[Check]]:
    _, _, ct = _tables(view)
    found = sorted(ct.for_service_name(namespace, name), key=lambda c: (c.node, c.check_id))
    return view.result(found, [("service-checks", namespace, name.lower())], floor=("checks",))


def checks_in_state(view: View, state: str) -> Result[list[Check]]:
    """``any|passing|warning|critical``; any other word gives ``[]`` as Consul does."""
    _, _, ct = _tables(view)
    if state == "any":
        found = list(ct.rows.values())
    elif state in CheckStatus.__members__.values():
        found = [c for c in ct.rows.values() if c.status.value == state]
    else:
        found = []
    found.sort(key=lambda c: (c.node, c.check_id))
    return view.result(found, [("checks",)])
