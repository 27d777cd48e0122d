"""Would a service's discovery chain compile? The cross-entry check of routers,
splitters and resolvers (pure).

    router (the service's own) ──▶ splitters (recursively) ──▶ resolvers
                                                               (redirect, default subset,
                                                                failover targets)

Consul compiles the chain of every service a write can affect and refuses the write
when one breaks (``agent/consul/discoverychain/compile.go``). ``check_chain`` walks the
same path over the entries (as they would be after the write) without building the
graph, and raises ``InvalidEntry`` with Consul's message.

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
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol

from trellis.config.entry.errors import InvalidEntry
from trellis.config.entry.fields import HTTP_LIKE, shown
from trellis.config.entry.model import ServiceDefaults
from trellis.config.entry.model_chain import ServiceResolver, ServiceRouter, ServiceSplitter

PARTITION = "default"


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
class ChainSummary:
    protocol: str
    top: str  # "router" | "splitter" | "resolver": the chain's first step


def check_chain(entries: Entries, namespace: str, name: str, datacenter: str) -> ChainSummary:
    """Raise ``InvalidEntry`` if the chain of ``namespace/name`` does not compile. Pure."""
    return _Walk(entries, namespace, name, datacenter).run()


def _node(kind: str, ns: str, name: str) -> str:
    return f"{kind}:{name}.{ns}.{PARTITION}"


class _Walk:
    def __init__(self, entries: Entries, ns: str, name: str, dc: str) -> None:
        self.entries, self.ns, self.name, self.dc = entries, ns, name, dc
        self.protocol = ""
        self.advanced = False
        self.splitters_done: set[tuple[str, str]] = set()
        self.resolved: set[str] = set()
        self.loop: str = ""  # the first splitter loop found (rule 2 comes after rule 4, as in Consul)

    def run(self) -> ChainSummary:
        self._record(self.ns, self.name)  # rule 1
        router: ServiceRouter | None = self.entries.get(ServiceRouter.KIND, self.ns, self.name)
        if router is not None:
            self.advanced = True
            top = "router"
            path = [_node("router", self.ns, self.name)]
            for route in router.routes:
                d = route.destination
                svc = (d.service if d else "") or self.name
                ns = (d.namespace if d else "") or self.ns
                if d is not None and d.service_subset:
                    self._resolver(Target(svc, ns, self.dc, d.service_subset))
                else:
                    self._splitter_or_resolver(svc, ns, path)
            self._splitter_or_resolver(self.name, self.ns, path)  # the implicit catch-all route
        else:
            has_splitter = self.entries.get(ServiceSplitter.KIND, self.ns, self.name) is not None
            top = "splitter" if has_splitter else "resolver"
            self._splitter_or_resolver(self.name, self.ns, [])
        if self.loop:
            raise InvalidEntry("Splits", f"detected circular reference: [{self.loop}]")
        if self.advanced and self.protocol not in HTTP_LIKE:
            raise InvalidEntry("Protocol", f'discovery chain "{self.name}" uses a protocol "{self.protocol}" that '
                                           "does not permit advanced routing or splitting behavior")
        return ChainSummary(self.protocol, top)

    def _record(self, ns: str, name: str) -> None:
        protocol = self.entries.protocol(ns, name)
        if not self.protocol:
            self.protocol = protocol
        elif protocol != self.protocol:
            raise InvalidEntry("Protocol", f'discovery chain "{self.name}" uses inconsistent protocols; service '
                                           f'"{shown(ns, name)}" has "{protocol}" which is not "{self.protocol}"')

    def _splitter_or_resolver(self, svc: str, ns: str, path: list[str]) -> None:
        splitter: ServiceSplitter | None = self.entries.get(ServiceSplitter.KIND, ns, svc)
        if splitter is None:
            self._resolver(Target(svc, ns, self.dc))
            return
        self.advanced = True
        node = _node("splitter", ns, svc)
        if node in path:
            self.loop = self.loop or " -> ".join((*path, node))
            return
        if (ns, svc) in self.splitters_done:
            return
        self.splitters_done.add((ns, svc))
        for split in splitter.splits:
            target_svc, target_ns = split.service or svc, split.namespace or ns
            if (target_svc, target_ns) != (svc, ns) and not split.service_subset:
                self._splitter_or_resolver(target_svc, target_ns, [*path, node])
            else:
                self._resolver(Target(target_svc, target_ns, self.dc, split.service_subset))

    def _resolver(self, target: Target, *, for_failover: bool = False) -> None:
        history: list[str] = []
        while True:
            if target.id in self.resolved:
                return
            self._record(target.namespace, target.service)
            resolver: ServiceResolver | None = self.entries.get(ServiceResolver.KIND, target.namespace,
                                                                target.service)
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
        if for_failover:
            return
        self.resolved.add(target.id)
        if resolver is not None and resolver.failover:
            for t in self._failover_targets(target, resolver):
                self._resolver(t, for_failover=True)

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
