"""Discovery chains, router matches and intention permissions as short phrases, for
``connect trace`` (trace.py) and anyone else who shows them to a person (pure).

Rules:
1. A chain prints as its routers, then its splitters, then its resolvers, each kind in
   the order a walk from the start meets it: a router's routes (match → next node, the
   catch-all last), a splitter's splits (weight → next node), a resolver's target, its
   timeouts and its failover targets. A resolver that landed elsewhere than asked says
   so (``redirected from db to db-primary``, ``default subset v1``), as far as the
   compiled chain tells: for the chain's own start and for a router's routes.
2. The default path is build.py's ``default_target`` walk: a router's catch-all, a
   splitter's heaviest split (the first of equals).
3. A match or permission is its criteria joined by commas, methods first
   (``GET|HEAD, path prefix /admin, header x-debug not present``); one with no
   criteria is ``*`` (a match) or ``every request`` (a permission).
"""

from __future__ import annotations

from collections.abc import Iterable

from trellis.config.entry.chain import ChainNode, CompiledChain
from trellis.config.entry.model_chain import ServiceRouteDestination, ServiceRouteHTTPMatch
from trellis.connect.intentions.model import Permission


def shown_name(ns: str, name: str) -> str:
    """``name`` in the default namespace, else ``ns/name``. Pure."""
    return name if ns == "default" else f"{ns}/{name}"


def default_nodes(chain: CompiledChain) -> list[ChainNode]:
    """The nodes build.py's ``default_target`` walks through, start to resolver (rule 2). Pure."""
    node = chain.node(chain.start)
    nodes = [node]
    while node.resolver is None:
        nxt = node.routes[-1].next if node.kind == "router" else max(node.splits, key=lambda s: s.weight).next
        node = chain.node(nxt)
        nodes.append(node)
    return nodes


_KIND_ORDER = {"router": 0, "splitter": 1, "resolver": 2}


def chain_lines(chain: CompiledChain) -> Iterable[str]:
    """Rule 1: the chain as lines, every node reachable from the start once. Pure."""
    order, queue = [chain.start], [chain.start]
    while queue:
        node = chain.node(queue.pop(0))
        for nxt in [r.next for r in node.routes] + [s.next for s in node.splits]:
            if nxt not in order:
                order.append(nxt)
                queue.append(nxt)
    for name in sorted(order, key=lambda n: _KIND_ORDER[chain.node(n).kind]):
        yield from _node_lines(chain, chain.node(name))


def _node_lines(chain: CompiledChain, node: ChainNode) -> Iterable[str]:
    if node.kind == "router":
        yield f"router {_node_label(node.name)}"
        for i, route in enumerate(node.routes, start=1):
            via = _route_note(chain, route.destination, route.next)
            yield f"  route {i}: {describe_match(route.match)} → {_node_shown(route.next)}{via}"
    elif node.kind == "splitter":
        yield f"splitter {_node_label(node.name)}"
        for split in node.splits:
            yield f"  {split.weight:g}% → {_node_shown(split.next)}"
    else:
        r = node.resolver
        assert r is not None
        timeouts = f"connect timeout {r.connect_timeout:g}s" + (
            f", request timeout {r.request_timeout:g}s" if r.request_timeout else "")
        yield f"resolver {_node_label(node.name)}: target {r.target} ({timeouts})"
        if chain.start == node.name:
            yield from _landing(chain, chain.service, "", r.target)
        if r.failover:
            yield f"  failover, in order: {', '.join(r.failover)}"


def _route_note(chain: CompiledChain, d: ServiceRouteDestination | None, nxt: str) -> str:
    """A route that asked for another service or subset than its resolver serves."""
    node = chain.node(nxt)
    if node.resolver is None:
        return ""
    asked_service = (d.service if d else "") or chain.service
    asked_subset = d.service_subset if d else ""
    note = list(_landing(chain, asked_service, asked_subset, node.resolver.target))
    return f" ({note[0].strip()})" if note else ""


def _landing(chain: CompiledChain, asked_service: str, asked_subset: str, target_id: str) -> Iterable[str]:
    """Where a resolver landed, when it is not what was asked: a redirect, or the default subset."""
    t = chain.target(target_id)
    if t.service != asked_service:
        yield f"  redirected from {asked_service} to {t.service}"
    elif t.subset and not asked_subset:
        yield f"  default subset {t.subset}"


def _node_label(name: str) -> str:
    """A router's or splitter's service (``ns/name`` outside the default namespace); a
    resolver's target id."""
    kind, _, rest = name.partition(":")
    if kind == "resolver":
        return rest
    service, ns, _ = rest.rsplit(".", 2)
    return shown_name(ns, service)


def _node_shown(name: str) -> str:
    return f"{name.partition(':')[0]} {_node_label(name)}"


def describe_match(m: ServiceRouteHTTPMatch | None) -> str:
    """A router match as one phrase (``*`` matches everything). Pure."""
    if m is None:
        return "* (catch-all)"
    parts = ["|".join(m.methods)] if m.methods else []
    for text, shown in ((m.path_exact, "path = "), (m.path_prefix, "path prefix "), (m.path_regex, "path ~ ")):
        if text:
            parts.append(shown + text)
    if m.case_insensitive:
        parts.append("(case-insensitive)")
    for h in m.header:
        parts.append(f"header {h.name} {_criterion(h)}")
    for q in m.query_param:
        parts.append(f"query {q.name} {_criterion(q)}")
    return ", ".join(parts) or "*"


_CRITERIA = (("exact", "="), ("prefix", "prefix"), ("suffix", "suffix"), ("contains", "contains"), ("regex", "~"))


def _criterion(c: object) -> str:
    """A header or query criterion (router match or intention permission) as a phrase."""
    if getattr(c, "present", False):
        text = "present"
    else:
        text = next((f"{word} {getattr(c, key)}" for key, word in _CRITERIA if getattr(c, key, "")), "present")
    return f"not {text}" if getattr(c, "invert", False) else text


def describe_permission(p: Permission) -> str:
    """An L7 permission's criteria as one phrase. Pure."""
    m = p.http
    parts = ["|".join(m.methods)] if m.methods else []
    for text, shown in ((m.path_exact, "path = "), (m.path_prefix, "path prefix "), (m.path_regex, "path ~ ")):
        if text:
            parts.append(shown + text)
    parts += [f"header {h.name} {_criterion(h)}" for h in m.headers]
    return ", ".join(parts) or "every request"
