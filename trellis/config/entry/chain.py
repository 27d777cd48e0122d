"""A service's discovery chain, compiled from its routers, splitters and resolvers, and
the cross-entry check that it compiles at all (pure).

    router (the service's own) ──▶ splitters (recursively) ──▶ resolvers
                                                               (redirect, default subset,
                                                                failover targets)

``compile_chain`` builds the graph the data planes route by (``CompiledChain``: nodes by
name, and the targets the resolvers land on), as Consul's
``agent/consul/discoverychain/compile.go`` does. Writes use the same walk through
``check_chain``: Consul compiles the chain of every service a write can affect and
refuses the write when one breaks; the refusal is an ``InvalidEntry`` with Consul's
message.

Rules:
1. Every service the chain reaches has the chain's protocol, which is the protocol of
   the service itself (recorded first): else ``discovery chain "web" uses inconsistent
   protocols; service "api" has "tcp" which is not "http"``. (Consul records the
   service's own protocol only when a router or resolver of it is on the path; trellis
   always does, so a splitter on a tcp service is refused even when it sends
   everything elsewhere.)
2. A chain with a router or a splitter needs an HTTP-like protocol: ``discovery chain
   "web" uses a protocol "tcp" that does not permit advanced routing or splitting behavior``.
3. A subset named by a route, a split, a redirect, a default subset or a failover
   must be defined by the resolver of the service it lands on (after redirects):
   ``service "web" does not have a subset named "v3"``.
4. Loops are refused: redirects (``detected circular resolver redirect: [a -> b -> a]``)
   and splitters sending to each other (``detected circular reference: [...]``).
5. A service with an ``ExternalSNI`` (service-defaults) has no redirect, subsets or
   failover.
6. Failover applies to the subset in use (or ``*``), as in Consul: targets are
   resolved like redirects and checked by rules 1, 3 and 5.
7. Nodes are named as Consul names them: ``router:<svc>.<ns>.<partition>``,
   ``splitter:<svc>.<ns>.<partition>``, ``resolver:<target id>``. A router's routes keep
   their entry order and end with the implicit catch-all to the service; a route's or a
   split's ``next`` is the node it leads to. A split to the splitter's own service (no
   subset) goes to that service's resolver, not back to the splitter.
8. A resolver node holds its target (after redirects and the default subset), the
   failover targets in order (empty without failover), its timeouts (``ConnectTimeout``
   defaults to 5 s when unset, Consul's compile-time default; ``RequestTimeout`` 0 means
   the data plane's) and its load balancer. A target carries the subset's ``Filter`` and
   ``OnlyPassing``, which select its instances, and the ``ConnectTimeout`` and load
   balancer of the resolver where it landed (a failover target's own, not the failing
   one's).
9. ``default`` is true when the chain is just the implicit resolver of the service
   itself: no router, no splitter, and no resolver entry anywhere on it. Such a chain
   needs nothing beyond the plain upstream the data planes already build.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

from trellis.config.entry.errors import InvalidEntry
from trellis.config.entry.fields import HTTP_LIKE, shown
from trellis.config.entry.model import ServiceDefaults
from trellis.config.entry.model_chain import (
    LoadBalancer,
    ServiceResolver,
    ServiceRouteDestination,
    ServiceRouteHTTPMatch,
    ServiceRouter,
    ServiceSplitter,
)
from trellis.config.entry.model import HTTPHeaderModifiers

PARTITION = "default"
DEFAULT_CONNECT_TIMEOUT = 5.0  # seconds (rule 8)


class Entries(Protocol):
    """The entries as they would be after the write (graph.py's reader)."""

    def get(self, kind: str, ns: str, name: str) -> Any: ...

    def protocol(self, ns: str, name: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Target:
    """Where a chain step lands: a service (subset) in a namespace and datacenter."""

    service: str
    namespace: str
    datacenter: str
    subset: str = ""

    @property
    def id(self) -> str:
        """Consul's target ID: ``[subset.]service.namespace.partition.dc``."""
        base = f"{self.service}.{self.namespace}.{PARTITION}.{self.datacenter}"
        return f"{self.subset}.{base}" if self.subset else base

    def rewrite(self, service: str = "", subset: str = "", namespace: str = "", datacenter: str = "") -> Target:
        """Consul's ``rewriteTarget``: another service drops the subset; empty keeps a value."""
        t = self
        if service and service != t.service:
            t = replace(t, service=service, subset="")
        if subset:
            t = replace(t, subset=subset)
        if namespace:
            t = replace(t, namespace=namespace)
        if datacenter:
            t = replace(t, datacenter=datacenter)
        return t


@dataclass(frozen=True, slots=True)
class ChainTarget:
    """Rule 8: instances of ``service`` (the subset's, when ``subset`` is set) in a namespace
    and datacenter."""

    id: str
    service: str
    namespace: str
    datacenter: str
    subset: str = ""
    filter: str = ""  # the subset's ?filter expression over the health-service shape
    only_passing: bool = False
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT  # seconds, from the target's own resolver
    load_balancer: LoadBalancer | None = None  # the target's own resolver's


@dataclass(frozen=True, slots=True)
class ChainRoute:
    """One route of a router node: ``match`` None matches everything."""

    match: ServiceRouteHTTPMatch | None
    destination: ServiceRouteDestination | None  # timeouts, retries, rewrite, headers
    next: str


@dataclass(frozen=True, slots=True)
class ChainSplit:
    weight: float  # percent, two decimals
    next: str
    request_headers: HTTPHeaderModifiers | None = None
    response_headers: HTTPHeaderModifiers | None = None


@dataclass(frozen=True, slots=True)
class ChainResolver:
    target: str  # target id
    failover: tuple[str, ...] = ()  # target ids, in order
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT  # seconds
    request_timeout: float = 0.0  # seconds; 0: the data plane's default
    load_balancer: LoadBalancer | None = None


@dataclass(frozen=True, slots=True)
class ChainNode:
    kind: str  # "router" | "splitter" | "resolver"
    name: str
    routes: tuple[ChainRoute, ...] = ()
    splits: tuple[ChainSplit, ...] = ()
    resolver: ChainResolver | None = None


@dataclass(frozen=True, slots=True)
class CompiledChain:
    service: str
    namespace: str
    datacenter: str
    protocol: str
    start: str  # the first node's name
    nodes: tuple[ChainNode, ...]  # sorted by name
    targets: tuple[ChainTarget, ...]  # sorted by id
    default: bool = False  # rule 9

    def node(self, name: str) -> ChainNode:
        return next(n for n in self.nodes if n.name == name)

    def target(self, target_id: str) -> ChainTarget:
        return next(t for t in self.targets if t.id == target_id)


@dataclass(frozen=True, slots=True)
class ChainSummary:
    protocol: str
    top: str  # "router" | "splitter" | "resolver": the chain's first step


def check_chain(entries: Entries, namespace: str, name: str, datacenter: str) -> ChainSummary:
    """Raise ``InvalidEntry`` if the chain of ``namespace/name`` does not compile. Pure."""
    chain = compile_chain(entries, namespace, name, datacenter)
    return ChainSummary(chain.protocol, chain.start.split(":", 1)[0])


def compile_chain(entries: Entries, namespace: str, name: str, datacenter: str) -> CompiledChain:
    """The chain of ``namespace/name`` as seen from ``datacenter`` (rules 1-9); raises
    ``InvalidEntry`` when it does not compile. Pure."""
    return _Walk(entries, namespace, name, datacenter).run()


def _node(kind: str, ns: str, name: str) -> str:
    return f"{kind}:{name}.{ns}.{PARTITION}"


class _Walk:
    def __init__(self, entries: Entries, ns: str, name: str, dc: str) -> None:
        self.entries, self.ns, self.name, self.dc = entries, ns, name, dc
        self.protocol = ""
        self.advanced = False
        self.customized = False  # rule 9: a resolver entry was met
        self.nodes: dict[str, ChainNode] = {}
        self.targets: dict[str, ChainTarget] = {}
        self.resolved: dict[str, str] = {}  # requested target id -> its resolver node
        self.loop: str = ""  # the first splitter loop found (rule 2 comes after rule 4, as in Consul)

    def run(self) -> CompiledChain:
        self._record(self.ns, self.name)  # rule 1
        router: ServiceRouter | None = self.entries.get(ServiceRouter.KIND, self.ns, self.name)
        if router is not None:
            self.advanced = True
            start = _node("router", self.ns, self.name)
            path = [start]
            routes = []
            for route in router.routes:
                d = route.destination
                svc = (d.service if d else "") or self.name
                ns = (d.namespace if d else "") or self.ns
                if d is not None and d.service_subset:
                    nxt = self._resolver(Target(svc, ns, self.dc, d.service_subset))
                else:
                    nxt = self._splitter_or_resolver(svc, ns, path)
                routes.append(ChainRoute(route.match.http if route.match else None, d, nxt))
            routes.append(ChainRoute(None, None, self._splitter_or_resolver(self.name, self.ns, path)))  # catch-all
            self.nodes[start] = ChainNode("router", start, routes=tuple(routes))
        else:
            start = self._splitter_or_resolver(self.name, self.ns, [])
        if self.loop:
            raise InvalidEntry("Splits", f"detected circular reference: [{self.loop}]")
        if self.advanced and self.protocol not in HTTP_LIKE:
            raise InvalidEntry("Protocol", f'discovery chain "{self.name}" uses a protocol "{self.protocol}" that '
                                           "does not permit advanced routing or splitting behavior")
        return CompiledChain(
            service=self.name, namespace=self.ns, datacenter=self.dc, protocol=self.protocol, start=start,
            nodes=tuple(self.nodes[n] for n in sorted(self.nodes)),
            targets=tuple(self.targets[t] for t in sorted(self.targets)),
            default=not self.advanced and not self.customized,
        )

    def _record(self, ns: str, name: str) -> None:
        protocol = self.entries.protocol(ns, name)
        if not self.protocol:
            self.protocol = protocol
        elif protocol != self.protocol:
            raise InvalidEntry("Protocol", f'discovery chain "{self.name}" uses inconsistent protocols; service '
                                           f'"{shown(ns, name)}" has "{protocol}" which is not "{self.protocol}"')

    def _splitter_or_resolver(self, svc: str, ns: str, path: list[str]) -> str:
        splitter: ServiceSplitter | None = self.entries.get(ServiceSplitter.KIND, ns, svc)
        if splitter is None:
            return self._resolver(Target(svc, ns, self.dc))
        self.advanced = True
        node = _node("splitter", ns, svc)
        if node in path:
            self.loop = self.loop or " -> ".join((*path, node))
            return node
        if node in self.nodes:
            return node
        self.nodes[node] = ChainNode("splitter", node)  # placeholder: a loop back here is caught above
        splits = []
        for split in splitter.splits:
            target_svc, target_ns = split.service or svc, split.namespace or ns
            if (target_svc, target_ns) != (svc, ns) and not split.service_subset:
                nxt = self._splitter_or_resolver(target_svc, target_ns, [*path, node])
            else:
                nxt = self._resolver(Target(target_svc, target_ns, self.dc, split.service_subset))
            splits.append(ChainSplit(split.weight, nxt, split.request_headers, split.response_headers))
        self.nodes[node] = ChainNode("splitter", node, splits=tuple(splits))
        return node

    def _resolver(self, target: Target) -> str:
        """The resolver node for ``target`` (rules 3-8)."""
        requested = target.id
        if requested in self.resolved:
            return self.resolved[requested]
        target, resolver = self._land(target)
        name = self.resolved[requested] = f"resolver:{target.id}"
        if name in self.nodes:
            return name
        failover = [self._land(t)[0].id for t in (self._failover_targets(target, resolver) if resolver else ())]
        self.nodes[name] = ChainNode("resolver", name, resolver=ChainResolver(
            target=target.id, failover=tuple(failover),
            connect_timeout=(resolver.connect_timeout if resolver and resolver.connect_timeout
                             else DEFAULT_CONNECT_TIMEOUT),
            request_timeout=resolver.request_timeout if resolver else 0.0,
            load_balancer=resolver.load_balancer if resolver else None,
        ))
        return name

    def _land(self, target: Target) -> tuple[Target, ServiceResolver | None]:
        """Where ``target`` lands after redirects and the default subset, checked (rules 1,
        3-5) and recorded as a chain target, with the resolver entry that decides there."""
        history: list[str] = []
        while True:
            self._record(target.namespace, target.service)
            resolver: ServiceResolver | None = self.entries.get(ServiceResolver.KIND, target.namespace,
                                                                target.service)
            if resolver is not None:
                self.customized = True
            if target.id in history:
                loop = " -> ".join((*history, target.id))
                raise InvalidEntry("Redirect", f"detected circular resolver redirect: [{loop}]")
            history.append(target.id)
            r = resolver.redirect if resolver is not None else None
            if r is not None:
                moved = target.rewrite(r.service, r.service_subset, r.namespace, r.datacenter)
                if moved != target:
                    target = moved
                    continue
            if not target.subset and resolver is not None and resolver.default_subset:
                target = target.rewrite(subset=resolver.default_subset)
                continue
            break
        if target.subset and (resolver is None or target.subset not in resolver.subsets):
            raise InvalidEntry("ServiceSubset", f'service "{target.service}" does not have a subset named '
                                                f'"{target.subset}"')
        self._external(target, resolver)
        self._add_target(target, resolver)
        return target, resolver

    def _add_target(self, target: Target, resolver: ServiceResolver | None) -> None:
        subset = resolver.subsets.get(target.subset) if (resolver is not None and target.subset) else None
        self.targets[target.id] = ChainTarget(
            id=target.id, service=target.service, namespace=target.namespace, datacenter=target.datacenter,
            subset=target.subset, filter=subset.filter if subset else "",
            only_passing=subset.only_passing if subset else False,
            connect_timeout=(resolver.connect_timeout if resolver is not None and resolver.connect_timeout
                             else DEFAULT_CONNECT_TIMEOUT),
            load_balancer=resolver.load_balancer if resolver is not None else None,
        )

    def _external(self, target: Target, resolver: ServiceResolver | None) -> None:
        """Rule 5."""
        sd: ServiceDefaults | None = self.entries.get(ServiceDefaults.KIND, target.namespace, target.service)
        if sd is None or not sd.external_sni or resolver is None:
            return
        for what, present in (("redirects", resolver.redirect), ("subsets", resolver.subsets),
                              ("failover", resolver.failover)):
            if present:
                raise InvalidEntry("ExternalSNI", f'service "{target.service}" has an external SNI set; cannot '
                                                  f"define {what} for external services")

    @staticmethod
    def _failover_targets(target: Target, resolver: ServiceResolver) -> list[Target]:
        """Rule 6 (Consul's choice of failover definition)."""
        f = resolver.failover.get(target.subset) or resolver.failover.get("*")
        if f is None:
            return []
        if f.datacenters:
            found = [target.rewrite(f.service, f.service_subset, f.namespace, dc) for dc in f.datacenters]
        elif f.targets:
            found = [target.rewrite(t.service, t.service_subset, t.namespace, t.datacenter) for t in f.targets]
        else:
            found = [target.rewrite(f.service, f.service_subset, f.namespace)]
        return [t for t in found if t != target]
