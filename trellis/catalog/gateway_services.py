"""The services each gateway fronts, and the ingress gateways in front of a service (pure).

Consul keeps a ``gateway-services`` table, filled when a gateway config entry is
written and patched when services register (``agent/consul/state/catalog.go``).
trellis derives the same rows from the entries and the catalog at read time, so
they are never stale and every read says which keys it depends on.

    ingress-gateway / terminating-gateway entry ──▶ explicit rows (one per listed service
              │                                      and listener port)
              └── Name "*" ──▶ wildcard rows: the namespace's services that qualify,
                                unless listed explicitly on that port (FromWildcard)

Rules (Consul's, unless marked):
1. Ingress: one row per (listener, service) with the listener's port and protocol and
   the service's hosts. ``*`` covers every service of its namespace that has a
   mesh-capable instance (a sidecar proxy or a native instance), except ``consul``.
2. Terminating: one row per listed service with its CAFile/CertFile/KeyFile/SNI and
   ``AutoHostRewrite`` (``not DisableAutoHostRewrite``). ``*`` covers every service of
   its namespace with a plain instance (typical kind, not native, not a gateway),
   except ``consul``, and every service-defaults entry there with a ``Destination``;
   wildcard rows copy the wildcard's TLS fields.
3. A terminating row's ``ServiceKind`` is ``service`` when an instance of that name is
   registered, else ``destination`` when its service-defaults has a ``Destination``,
   else empty. Consul computes it at write time and patches it on registration;
   trellis computes it on every read (the same answer, never stale).
4. ``gateway_services`` lists a gateway's rows sorted by service name and port, minus
   ingress wildcard rows whose service's protocol (service-defaults, else
   proxy-defaults, else tcp) differs from the listener's (Consul's
   ``checkProtocolMatch``).
5. ``ingress_instances`` (``/v1/health/ingress``, DNS ``.ingress``) finds the ingress
   entries with a row for the service (no protocol check, as Consul's
   ``serviceGatewayNodes``) and returns every instance of those gateways' services,
   whatever their registered kind, gateways sorted by name.
6. Rows carry the entry's CreateIndex/ModifyIndex (Consul: the row's own indexes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from trellis.catalog.model import Service, ServiceKind
from trellis.catalog.query import Instance, service_instances
from trellis.store.view import Result, View, WatchKey

WILDCARD = "*"
CONSUL_SERVICE = "consul"
INGRESS = ServiceKind.INGRESS_GATEWAY
TERMINATING = ServiceKind.TERMINATING_GATEWAY
SERVICE_DEFAULTS = "service-defaults"
PROXY_DEFAULTS = "proxy-defaults"


@dataclass(frozen=True, slots=True, order=True)
class ServiceName:
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class GatewayService:
    """One row: ``gateway`` fronts ``service`` (Consul's ``structs.GatewayService``)."""

    gateway: ServiceName
    service: ServiceName
    gateway_kind: ServiceKind
    port: int = 0
    protocol: str = ""
    hosts: tuple[str, ...] = ()
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    sni: str = ""
    from_wildcard: bool = False
    service_kind: str = ""  # terminating only: "service", "destination" or "" (rule 3)
    auto_host_rewrite: bool = False
    create_index: int = 0
    modify_index: int = 0


class _Reads:
    """The view, and every watch key read through it. A view without a config-entry
    table (some unit tests build one) has no entries."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.config: Any = view.tables.get("config")
        self.watch: list[WatchKey] = []

    def entry(self, kind: str, ns: str, name: str) -> Any:
        self.watch.append(("config-entry", kind, ns, name))
        return self.config.get(kind, ns, name) if self.config is not None else None

    def entries(self, kind: str) -> list[Any]:
        self.watch.append(("config-kind", kind))
        return self.config.of_kind(kind) if self.config is not None else []

    def named(self, ns: str, name: str) -> list[Service]:
        self.watch.append(("service", ns, name.lower()))
        return self.view["services"].named(ns, name)  # type: ignore[attr-defined]

    def has_mesh_instance(self, ns: str, name: str) -> bool:
        self.watch.append(("connect", ns, name.lower()))
        return bool(self.view["services"].connect_for(ns, name))  # type: ignore[attr-defined]

    def all_services(self, ns: str) -> list[Service]:
        self.watch.append(("services",))
        return [s for s in self.view["services"].rows.values() if s.namespace == ns]  # type: ignore[attr-defined]

    def protocol(self, ns: str, name: str) -> str:
        sd, pd = self.entry(SERVICE_DEFAULTS, ns, name), self.entry(PROXY_DEFAULTS, "default", "global")
        if sd is not None and sd.entry.protocol:
            return sd.entry.protocol
        given = (pd.entry.config or {}).get("protocol") if pd is not None else None
        return given.lower() if isinstance(given, str) and given else "tcp"


# -- the rows of one gateway ----------------------------------------------------------------


def gateway_services(view: View, namespace: str, gateway: str) -> Result[list[GatewayService]]:
    """``/v1/catalog/gateway-services/:gateway``: the rows of the gateway's entry (rule 4).

    An unknown gateway has no rows. Pure.
    """
    r = _Reads(view)
    rows: list[GatewayService] = []
    if (found := r.entry(INGRESS.value, namespace, gateway)) is not None:
        rows = [g for g in _ingress_rows(r, found) if not g.from_wildcard or _protocol_matches(r, g)]
    elif (found := r.entry(TERMINATING.value, namespace, gateway)) is not None:
        rows = _terminating_rows(r, found)
    rows.sort(key=lambda g: (g.service.name.lower(), g.service.namespace, g.port))
    return view.result(rows, r.watch, floor=("config",))


def _protocol_matches(r: _Reads, g: GatewayService) -> bool:
    return r.protocol(g.service.namespace, g.service.name) == g.protocol


def _row(stored: Any, kind: ServiceKind, service: ServiceName, **given: Any) -> GatewayService:
    e = stored.entry
    return GatewayService(gateway=ServiceName(e.namespace, e.name), service=service, gateway_kind=kind,
                          create_index=stored.create_index, modify_index=stored.modify_index, **given)


def _ingress_rows(r: _Reads, stored: Any) -> list[GatewayService]:
    """Rule 1."""
    e = stored.entry
    explicit: list[GatewayService] = []
    wildcards: list[GatewayService] = []
    for li in e.listeners:
        for s in li.services:
            row = _row(stored, INGRESS, ServiceName(s.namespace or e.namespace, s.name), port=li.port,
                       protocol=li.protocol, hosts=tuple(s.hosts))
            (wildcards if s.name == WILDCARD else explicit).append(row)
    return explicit + _expand(r, explicit, wildcards, _mesh_service_names)


def _terminating_rows(r: _Reads, stored: Any) -> list[GatewayService]:
    """Rules 2 and 3."""
    e = stored.entry
    explicit: list[GatewayService] = []
    wildcards: list[GatewayService] = []
    for s in e.services:
        service = ServiceName(s.namespace or e.namespace, s.name)
        row = _row(stored, TERMINATING, service, ca_file=s.ca_file, cert_file=s.cert_file, key_file=s.key_file,
                   sni=s.sni, auto_host_rewrite=not s.disable_auto_host_rewrite)
        if s.name == WILDCARD:
            wildcards.append(row)
        else:
            explicit.append(replace(row, service_kind=_linked_kind(r, service)))
    return explicit + _expand(r, explicit, wildcards, _plain_service_names)


Candidates = Callable[["_Reads", str], list[tuple[str, str]]]  # (reads, namespace) -> [(name, ServiceKind)]


def _expand(r: _Reads, explicit: Sequence[GatewayService], wildcards: Iterable[GatewayService],
            candidates: Candidates) -> list[GatewayService]:
    """Wildcard rows for the qualifying services a row of the same port does not list."""
    listed = {(g.service.namespace, g.service.name.lower(), g.port) for g in explicit}
    out = []
    for w in wildcards:
        for name, kind in candidates(r, w.service.namespace):
            if (w.service.namespace, name.lower(), w.port) not in listed:
                out.append(replace(w, service=ServiceName(w.service.namespace, name), from_wildcard=True,
                                   service_kind=kind if w.gateway_kind is TERMINATING else ""))
    return out


def _mesh_service_names(r: _Reads, ns: str) -> list[tuple[str, str]]:
    """Rule 1's candidates: names with a sidecar proxy or a native instance."""
    names: dict[str, str] = {}
    for s in r.all_services(ns):
        target = _mesh_target(s)
        if target and target.lower() != CONSUL_SERVICE:
            names.setdefault(target.lower(), target)
    return [(name, "") for name in names.values()]


def _mesh_target(s: Service) -> str:
    if s.kind is ServiceKind.CONNECT_PROXY and s.proxy is not None:
        return s.proxy.destination_service_name
    return s.name if s.connect.native else ""


def _is_plain(s: Service) -> bool:
    return (s.kind is ServiceKind.TYPICAL and not s.connect.native and not s.connect.gateway
            and s.name.lower() != CONSUL_SERVICE)


def _plain_service_names(r: _Reads, ns: str) -> list[tuple[str, str]]:
    """Rule 2's candidates with their ServiceKind: registered services, then destinations."""
    names: dict[str, tuple[str, str]] = {}
    for s in r.all_services(ns):
        if _is_plain(s):
            names.setdefault(s.name.lower(), (s.name, "service"))
    for stored in r.entries(SERVICE_DEFAULTS):
        e = stored.entry
        if e.namespace == ns and e.destination is not None:
            names.setdefault(e.name.lower(), (e.name, "destination"))
    return list(names.values())


def _linked_kind(r: _Reads, service: ServiceName) -> str:
    """Rule 3."""
    if r.named(service.namespace, service.name):
        return "service"
    sd = r.entry(SERVICE_DEFAULTS, service.namespace, service.name)
    return "destination" if sd is not None and sd.entry.destination is not None else ""


# -- the ingress gateways of one service --------------------------------------------------------


def ingress_instances(view: View, namespace: str, service: str, *,
                      tags: Sequence[str] = ()) -> Result[list[Instance]]:
    """The instances of every ingress gateway that exposes ``namespace/service`` (rule 5),
    unfiltered by health; ``tags`` filters the gateway instances. Pure."""
    r = _Reads(view)
    gateways = sorted({ServiceName(stored.entry.namespace, stored.entry.name)
                       for stored in r.entries(INGRESS.value) if _exposes(r, stored.entry, namespace, service)})
    watch = set(r.watch)
    found: list[Instance] = []
    for g in gateways:
        res = service_instances(view, g.namespace, g.name, tags=tags)
        watch |= res.watch
        found.extend(res.value)
    return view.result(found, watch, floor=("config",))


def _exposes(r: _Reads, entry: Any, namespace: str, service: str) -> bool:
    wanted = service.lower()
    for li in entry.listeners:
        for s in li.services:
            if (s.namespace or entry.namespace) != namespace:
                continue
            if s.name.lower() == wanted:
                return True
            if s.name == WILDCARD and wanted != CONSUL_SERVICE and r.has_mesh_instance(namespace, service):
                return True
    return False
