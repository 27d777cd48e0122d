"""The cross-entry rules of a config-entry write (pure): what a put or a delete would
break in the other entries. Consul's ``validateProposedConfigEntryInGraph``
(``agent/consul/state/config_entry.go``).

    write of kind K ──▶ which rules apply (table below) ──▶ chains to compile (chain.py),
                                                          gateways and intentions to re-check

| written (put or delete)            | checked                                                  |
|------------------------------------|----------------------------------------------------------|
| service-intentions (put)           | rule 1 for it                                            |
| service-defaults                   | rule 1 for its service; rules 3, 4 for what reaches it   |
| proxy-defaults                     | rule 1 for every entry; rules 3, 4 for every chain/gateway |
| service-router/splitter/resolver   | rules 3, 4 for what reaches the service                  |
| ingress-gateway (put)              | rule 2; rule 4 strict for its listeners                  |
| terminating-gateway (put)          | rule 2                                                   |

Rules:
1. L7 intentions need an HTTP-like protocol on their destination (validate.py rule 2).
2. A name is one gateway kind only: an ingress-gateway and a terminating-gateway entry
   cannot share a name (Consul's message).
3. Every discovery chain the write can change still compiles (chain.py): the chain of
   the written service and of every service whose router, splitter or resolver
   reaches it, directly or through others (Consul follows direct references only).
4. Each service an ingress listener names has the listener's protocol (its chain's
   protocol). Writing the gateway is strict; when a protocol changes under an
   existing gateway, a tcp listener may still front a non-tcp service whose chain
   starts with a resolver (Consul's one exception).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from trellis.config.entry import validate
from trellis.config.entry.chain import ChainSummary, check_chain
from trellis.config.entry.errors import InvalidEntry
from trellis.config.entry.fields import shown
from trellis.config.entry.keys import EntryRef
from trellis.config.entry.kinds import CHAIN_KINDS
from trellis.config.entry.model import ProxyDefaults, ServiceDefaults, ServiceIntentions
from trellis.config.entry.model_chain import ServiceResolver, ServiceRouter, ServiceSplitter
from trellis.config.entry.model_gateway import IngressGateway, TerminatingGateway

Service = tuple[str, str]  # (namespace, name)
_OTHER_GATEWAY = {IngressGateway.KIND: TerminatingGateway.KIND, TerminatingGateway.KIND: IngressGateway.KIND}


class Reader(Protocol):
    """The entries as they would be after the write; every read is remembered (write.py)."""

    def get(self, kind: str, ns: str, name: str) -> Any: ...

    def entries(self, kind: str) -> list[Any]: ...

    def protocol(self, ns: str, name: str) -> str: ...


def check_graph(r: Reader, ref: EntryRef, entry: Any, *, datacenter: str) -> None:
    """Raise ``InvalidEntry`` if writing ``entry`` at ``ref`` (None: deleting it) breaks a rule."""
    if ref.kind == ServiceIntentions.KIND:
        if entry is not None:
            validate.check_l7_protocol(ref.namespace, ref.name, r.protocol(ref.namespace, ref.name), entry)
        return
    if ref.kind in _OTHER_GATEWAY:
        if entry is not None:
            _gateway_clash(r, ref)
            if ref.kind == IngressGateway.KIND:
                _ingress_protocols(r, [entry], {}, datacenter, strict=True)
        return
    if ref.kind == ServiceDefaults.KIND:
        ixns = r.get(ServiceIntentions.KIND, ref.namespace, ref.name)
        validate.check_l7_protocol(ref.namespace, ref.name, r.protocol(ref.namespace, ref.name), ixns)
        _chains_reaching(r, {(ref.namespace, ref.name)}, datacenter)
    elif ref.kind == ProxyDefaults.KIND:
        for e in r.entries(ServiceIntentions.KIND):
            if e.name != "*":
                validate.check_l7_protocol(e.namespace, e.name, r.protocol(e.namespace, e.name), e)
        _every_chain(r, datacenter)
    elif ref.kind in CHAIN_KINDS:
        _chains_reaching(r, {(ref.namespace, ref.name)}, datacenter)


def _gateway_clash(r: Reader, ref: EntryRef) -> None:
    """Rule 2."""
    other = _OTHER_GATEWAY[ref.kind]
    if r.get(other, ref.namespace, ref.name) is not None:
        raise InvalidEntry("Name", f'cannot create a "{ref.kind}" config entry with name "{ref.name}", a "{other}" '
                                   "config entry with that name already exists")


def related(entry: Any) -> set[Service]:
    """The services an entry's chain step or gateway listener leads to (Consul's
    ``ListRelatedServices``, with the entry's own service for a router). Pure."""
    ns, name = entry.namespace, entry.name
    out: set[Service] = set()
    if isinstance(entry, ServiceRouter):
        out.add((ns, name))
        out.update(((d.namespace or ns), (d.service or name)) for rt in entry.routes if (d := rt.destination))
    elif isinstance(entry, ServiceSplitter):
        out.update(((s.namespace or ns), (s.service or name)) for s in entry.splits)
    elif isinstance(entry, ServiceResolver):
        if entry.redirect is not None:
            out.add((entry.redirect.namespace or ns, entry.redirect.service or name))
        for f in entry.failover.values():
            if not f.targets:
                out.add((f.namespace or ns, f.service or name))
            out.update(((t.namespace or f.namespace or ns), (t.service or name)) for t in f.targets)
    elif isinstance(entry, IngressGateway):
        out.update(((s.namespace or ns), s.name) for li in entry.listeners for s in li.services if s.name != "*")
    return out


def _chain_entries(r: Reader) -> list[Any]:
    return [e for kind in CHAIN_KINDS for e in r.entries(kind)]


def _chains_reaching(r: Reader, changed: set[Service], datacenter: str) -> None:
    """Rules 3 and 4 for everything that reaches ``changed``."""
    referrers: dict[Service, set[Service]] = {}
    for e in _chain_entries(r):
        for svc in related(e):
            referrers.setdefault(svc, set()).add((e.namespace, e.name))
    roots, todo = set(changed), list(changed)
    while todo:
        for parent in referrers.get(todo.pop(), ()):
            if parent not in roots:
                roots.add(parent)
                todo.append(parent)
    summaries = _compile(r, sorted(changed), datacenter, {})  # the written service's chain speaks first
    _compile(r, roots, datacenter, summaries)
    gateways = [g for g in r.entries(IngressGateway.KIND) if related(g) & roots]
    _ingress_protocols(r, gateways, summaries, datacenter, strict=False)


def _every_chain(r: Reader, datacenter: str) -> None:
    roots = {(e.namespace, e.name) for e in _chain_entries(r)}
    summaries = _compile(r, roots, datacenter, {})
    _ingress_protocols(r, r.entries(IngressGateway.KIND), summaries, datacenter, strict=False)


def _compile(r: Reader, services: Iterable[Service], datacenter: str,
             done: dict[Service, ChainSummary]) -> dict[Service, ChainSummary]:
    for svc in sorted(services):
        if svc not in done:
            done[svc] = check_chain(r, svc[0], svc[1], datacenter)
    return done


def _ingress_protocols(r: Reader, gateways: Iterable[IngressGateway], summaries: dict[Service, ChainSummary],
                       datacenter: str, *, strict: bool) -> None:
    """Rule 4."""
    for g in gateways:
        _compile(r, related(g), datacenter, summaries)
        for i, li in enumerate(g.listeners):
            for j, s in enumerate(li.services):
                if s.name == "*":
                    continue
                svc = (s.namespace or g.namespace, s.name)
                chain = summaries[svc]
                if chain.protocol == li.protocol:
                    continue
                if strict or li.protocol != "tcp" or chain.top != "resolver":
                    raise InvalidEntry(f"Listeners[{i}].Services[{j}]",
                                       f'service "{shown(*svc)}" has protocol "{chain.protocol}", which does not '
                                       f'match defined listener protocol "{li.protocol}"')

