"""The path a request from one proxy to a destination would take, read from the proxy's
snapshot, step by step, and the first step at which it breaks (pure).

    source snapshot ──▶ 1 proxy         found; which data plane serves it, in sync or not
    (+ the registry)    2 upstream      a listener for DST, not refused
                        3 chain         router ─▶ splitter ─▶ resolver, or the default chain
                        4 endpoints     each target's instances, their health, usable or not
                        5 certificates  the source's leaf and roots, what DST must present
                        6 intention     the one that decides source ─▶ DST, and why

Rules:
1. Every step reads the snapshots it is given, the values the data planes get, so a
   trace says what the proxies would do with what they hold, not what the catalog says
   this instant. Nothing here reads the clock: ``now`` comes in.
2. A step is ok, warning, failed or skipped. The verdict is the first failed step;
   warnings never break the path. A step that needs what an earlier one did not find
   (an upstream) is skipped, but the source's own certificates and the intention are
   still judged, since they decide too once the upstream exists.
3. The request traced takes the chain's default path (build.py ``default_target``: a
   router's catch-all, a splitter's heaviest split), the path an L4 request takes and
   the one the built-in proxy serves. Other routes and splits are listed; a target
   that only they reach warns when it cannot be served, it never fails the trace.
4. Health is model.py's rule (``usable_endpoints``): critical instances get no traffic.
   An instance that is not passing is shown with the checks that make it so.
   The default path without a usable instance fails, unless one of its resolver's
   failover targets has one: then it warns, since Envoy fails over (its aggregate
   cluster, xds/translate/chains.py). The built-in proxy does not fail over (and routes
   at L4 only), so with it that is a failure.
5. Certificates: the source's leaf exists, is valid at ``now``, names the source's
   service, and chains to its roots. What the destination must present is each
   target's SPIFFE ID. When a destination's sidecar snapshot is on this agent, its leaf
   must present that ID, be valid, chain to the source's roots, and the source's leaf
   must chain to the destination's roots (each side verifies the other).
6. The intention is ``decide``'s (the agent's engine over every intention) for the
   source's service and the service of each target; the default path's decides the
   step, the others warn. An L7 intention decides per request: a warning naming its
   permissions. A destination sidecar snapshot on this agent that decides otherwise
   (it has not caught up with the intentions yet) is a warning.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from trellis.catalog.model import Service, ServiceKind
from trellis.config.entry.chain import ChainResolver, CompiledChain
from trellis.connect import spiffe
from trellis.connect.ca.errors import InvalidCertificate
from trellis.connect.ca.verify import chain_problem, root_ids
from trellis.connect.intentions.decide import Default, decide as decide_over
from trellis.connect.intentions.model import Decision, Intention
from trellis.errors import InvalidInput, NotFound
from trellis.proxycfg.build import default_target
from trellis.proxycfg.describe import chain_lines, default_nodes, describe_permission, shown_name
from trellis.proxycfg.model import CRITICAL, ConnectProxySnapshot, Endpoint, UpstreamSnapshot, usable_endpoints

Name = tuple[str, str]  # (namespace, service)
Decide = Callable[[Name, Name], Decision]  # (source, destination) -> the engine's decision

PARTITION = "default"
STEPS = ("proxy", "upstream", "chain", "endpoints", "certificates", "intention")


class Status(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Step:
    name: str  # one of STEPS
    status: Status
    summary: str  # one line
    details: tuple[str, ...] = ()  # lines; two leading spaces per level of nesting


@dataclass(frozen=True, slots=True)
class Trace:
    source: str  # the source proxy's ID
    source_service: str
    namespace: str
    destination: str  # as asked: ``name`` or ``ns/name``
    steps: tuple[Step, ...]

    @property
    def failed(self) -> Step | None:
        """Rule 2: the verdict, the first failed step (None when the path works)."""
        return next((s for s in self.steps if s.status is Status.FAILED), None)

    @property
    def ok(self) -> bool:
        return self.failed is None


@dataclass(frozen=True, slots=True)
class ProxyState:
    """What the proxies registry knows of the data plane serving the source (watcher.py
    rule 3); ``data_plane`` is empty when nothing has fetched the snapshot yet."""

    data_plane: str = ""  # "envoy" | "builtin" | ""
    applied_version: str = ""
    in_sync: bool = False
    lag_seconds: float = 0.0
    stale: bool = False  # not applied within the agent's STALE_AFTER
    problems: tuple[str, ...] = ()  # what the data plane reported it left out


@dataclass(frozen=True, slots=True)
class _Target:
    """One place the upstream leads, with what the snapshot says about it."""

    id: str
    namespace: str
    service: str
    datacenter: str
    sni: str
    spiffe_id: str
    endpoints: tuple[Endpoint, ...]
    subset: str = ""
    filter: str = ""
    only_passing: bool = False

    @property
    def name(self) -> Name:
        return (self.namespace, self.service)


@dataclass(frozen=True, slots=True)
class _Path:
    """Rule 3: the default path's target and its resolver's failover targets, in order;
    ``others``: every target only another route or split reaches."""

    primary: _Target
    failover: tuple[_Target, ...]
    others: tuple[_Target, ...]

    @property
    def main(self) -> tuple[_Target, ...]:
        return (self.primary, *self.failover)


def parse_destination(text: str) -> tuple[str | None, str]:
    """``name`` or ``ns/name`` → (namespace or None, name). Pure; raises ``InvalidInput``."""
    parts = text.split("/")
    if not text or len(parts) > 2 or not all(parts):
        raise InvalidInput("destination", text, "expected a service name or namespace/name")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def source_service(proxy: Service) -> str:
    """The service a proxy speaks for: a sidecar's destination, a gateway's own name."""
    if proxy.kind is ServiceKind.CONNECT_PROXY and proxy.proxy is not None:
        return proxy.proxy.destination_service_name
    return proxy.name


def select_source(proxies: Iterable[Service], source: str) -> Service:
    """The local proxy a trace starts from: the one whose ID is ``source``, else the
    sidecar of the service instance with that ID (case-insensitive), else the proxy of
    the service with that name when exactly one local instance has one (the rule of
    ``connect proxy -sidecar-for``; an ingress gateway is its own service's proxy). Pure;
    raises ``NotFound``, or ``InvalidInput`` when the name has several proxies here."""
    proxies = [p for p in proxies if p.proxy is not None or p.kind is not ServiceKind.CONNECT_PROXY]
    exact = [p for p in proxies if p.id == source]
    by_id = [p for p in proxies if p.proxy is not None and p.proxy.destination_service_id.lower() == source.lower()]
    by_name = [p for p in proxies if source_service(p) == source]
    for found in (exact, by_id, by_name):
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            ids = ", ".join(sorted(p.id for p in found))
            raise InvalidInput("source", source, message=f"more than one sidecar proxy on this agent is for "
                                                         f"{source}: {ids}; give the proxy ID")
    raise NotFound(f"unknown source {source!r}: no proxy with that ID, and no sidecar for a service (ID or name) "
                   f"{source!r}, is registered with this agent")


def select_upstreams(snapshot: ConnectProxySnapshot, destination: str) -> tuple[UpstreamSnapshot, ...]:
    """The upstreams that lead to ``destination`` (by name; by namespace too when given),
    those in the source's namespace first. Pure; raises ``InvalidInput``."""
    ns, name = parse_destination(destination)
    found = [u for u in snapshot.upstreams if u.destination_name == name and ns in (None, u.destination_namespace)]
    return tuple(sorted(found, key=lambda u: u.destination_namespace != snapshot.namespace))


def trace(source: ConnectProxySnapshot, destination: str, *, decide: Decide, now: float,
          destination_snapshots: Iterable[ConnectProxySnapshot] = (), status: ProxyState | None = None) -> Trace:
    """Rules 1-6: every step of ``source`` → ``destination`` (``name`` or ``ns/name``).
    ``decide`` is the intentions engine for (source, destination) names; ``now`` is
    epoch seconds; ``destination_snapshots`` are other sidecar snapshots on this agent
    (those of the destination's services are used); ``status`` is the registry's
    record of the source. Pure; loop-safe; raises ``InvalidInput`` for a malformed
    ``destination``."""
    ns, name = parse_destination(destination)
    found = select_upstreams(source, destination)
    up = found[0] if found else None
    others = tuple(s for s in destination_snapshots if s.proxy_id != source.proxy_id)
    steps = [_proxy_step(source, status), _upstream_step(source, name, found)]
    if up is None or up.error:
        why = "no upstream to follow" if up is None else "the upstream is refused"
        steps += [Step("chain", Status.SKIPPED, why), Step("endpoints", Status.SKIPPED, why)]
        steps.append(_certificate_step(source, None, others, now))
        steps.append(_intention_step(source, [(ns or source.namespace, name)], decide, others))
        return _trace(source, destination, steps)
    path = _path(up)
    builtin = status is not None and status.data_plane == "builtin"
    steps.append(_chain_step(up, path, builtin))
    steps.append(_endpoint_step(source, path, builtin))
    steps.append(_certificate_step(source, path, others, now))
    names = list(dict.fromkeys(t.name for t in (*path.main, *path.others)))
    steps.append(_intention_step(source, names, decide, others))
    return _trace(source, destination, steps)


def trace_without_snapshot(proxy_id: str, service: str, namespace: str, destination: str, reason: str) -> Trace:
    """A registered proxy the agent has no snapshot for yet (its leaf not issued, the
    CA not ready): the first step fails and nothing else can be looked at. Pure."""
    steps = (Step("proxy", Status.FAILED, f"{proxy_id} (service {service}) has no snapshot yet: {reason}"),
             *(Step(name, Status.SKIPPED, "no snapshot to read") for name in STEPS[1:]))
    return Trace(proxy_id, service, namespace, destination, steps)


def _trace(source: ConnectProxySnapshot, destination: str, steps: list[Step]) -> Trace:
    return Trace(source.proxy_id, source.service, source.namespace, destination, tuple(steps))


# -- 1: the proxy ------------------------------------------------------------------------------
def _proxy_step(source: ConnectProxySnapshot, state: ProxyState | None) -> Step:
    p = source.public
    details = [f"service {source.service} in namespace {source.namespace}, datacenter {source.datacenter}",
               f"public listener {p.bind_address}:{p.bind_port} → local app {p.local_service_address}:"
               f"{p.local_service_port} ({p.protocol})",
               f"snapshot version {source.version or '-'} (index {source.index})"]
    head = f"{source.proxy_id} (service {source.service})"
    status = Status.OK
    if state is None or not state.data_plane:
        status, where = Status.WARNING, "no data plane has fetched its snapshot yet: traffic flows once one runs"
    elif state.in_sync:
        where = f"served by {state.data_plane}, in sync ({_seconds(state.lag_seconds)} to apply)"
    elif state.stale:
        status = Status.WARNING
        where = (f"served by {state.data_plane}, which has not applied the newest snapshot for "
                 f"{_seconds(state.lag_seconds)}: it still routes by version {state.applied_version or '-'}")
    else:
        where = f"served by {state.data_plane}, applying the newest snapshot ({_seconds(state.lag_seconds)})"
    if state is not None and state.problems:
        status = Status.WARNING
        details.append(f"{state.data_plane or 'the data plane'} reported what it left out:")
        details += [f"  {problem}" for problem in state.problems]
    if source.stop:
        status, where = Status.WARNING, where + "; the agent asked it to drain and stop"
    return Step("proxy", status, f"{head}: {where}", tuple(details))


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f}ms" if value < 1 else f"{value:.1f}s"


# -- 2: the upstream ---------------------------------------------------------------------------
def _upstream_step(source: ConnectProxySnapshot, name: str, found: Sequence[UpstreamSnapshot]) -> Step:
    if not found:
        return Step("upstream", Status.FAILED, f"{source.service} has no upstream to {name}",
                    tuple(_missing_upstream(source, name)))
    up = found[0]
    label = f"{shown_name(up.destination_namespace, up.destination_name)} at {up.key}"
    if up.error:
        return Step("upstream", Status.FAILED, f"{label} is refused: {up.error}")
    details = [f"listener {up.key} ({up.protocol}), cluster {up.sni}",
               f"connect timeout {up.connect_timeout_ms} ms" if up.connect_timeout_ms
               else "connect timeout: the data plane's default"]
    details += [f"also at {u.key} ({shown_name(u.destination_namespace, u.destination_name)})" for u in found[1:]]
    return Step("upstream", Status.OK, f"{label} ({up.protocol})", tuple(details))


def _missing_upstream(source: ConnectProxySnapshot, name: str) -> list[str]:
    lines = [f"its upstreams: {', '.join(f'{u.destination_name}@{u.key}' for u in source.upstreams)}"
             if source.upstreams else "it has no upstreams"]
    via = [u.destination_name for u in source.upstreams
           if u.chain is not None and any(t.service == name for t in u.chain.targets)]
    if via:
        lines.append(f"{name} is a target of the discovery chain of {', '.join(via)}: trace that instead")
    lines.append(f"add an upstream to {name} in the proxy's registration (Proxy.Upstreams)")
    return lines


# -- 3: the discovery chain --------------------------------------------------------------------
def _path(up: UpstreamSnapshot) -> _Path:
    """Rule 3 over the upstream's chain, or its plain default when it has none."""
    if up.chain is None:
        target_id = f"{up.destination_name}.{up.destination_namespace}.{PARTITION}.{up.datacenter}"
        plain = _Target(target_id, up.destination_namespace, up.destination_name, up.datacenter, up.sni,
                        up.spiffe_id, up.endpoints)
        return _Path(plain, (), ())
    chain = up.chain
    targets = {t.id: _chain_target(chain, t.id, t.sni, t.spiffe_id, t.endpoints) for t in up.targets}
    primary = default_target(chain)
    failover = _resolver_of(chain, primary).failover
    taken = {primary, *failover}
    return _Path(targets[primary], tuple(targets[t] for t in failover),
                 tuple(t for tid, t in sorted(targets.items()) if tid not in taken))


def _chain_target(chain: CompiledChain, tid: str, sni: str, spiffe_id: str, endpoints: tuple[Endpoint, ...]) -> _Target:
    t = chain.target(tid)
    return _Target(tid, t.namespace, t.service, t.datacenter, sni, spiffe_id, endpoints, t.subset, t.filter,
                   t.only_passing)


def _resolver_of(chain: CompiledChain, target_id: str) -> ChainResolver:
    return next(n.resolver for n in chain.nodes if n.resolver is not None and n.resolver.target == target_id)


def _chain_step(up: UpstreamSnapshot, path: _Path, builtin: bool) -> Step:
    chain = up.chain
    if chain is None:
        return Step("chain", Status.OK, f"default chain: straight to {path.primary.id}",
                    ("no service-router, service-splitter or service-resolver shapes it",))
    kinds = " → ".join(n.kind for n in default_nodes(chain))
    summary = f"{kinds}; the default path ends at {path.primary.id}"
    details = tuple(chain_lines(chain))
    if builtin and any(n.kind != "resolver" for n in chain.nodes):
        return Step("chain", Status.WARNING, f"{summary}; the built-in proxy routes at L4 only and sends every "
                                             "request there", details)
    return Step("chain", Status.OK, summary, details)


# -- 4: endpoints ------------------------------------------------------------------------------
def _endpoint_step(source: ConnectProxySnapshot, path: _Path, builtin: bool) -> Step:
    details: list[str] = []
    roles = [(path.primary, "default path")]
    roles += [(t, f"failover {i}") for i, t in enumerate(path.failover, start=1)]
    roles += [(t, "other route or split") for t in path.others]
    for target, role in roles:
        details += _target_lines(target, role, source.datacenter)
    primary = path.primary
    if usable_endpoints(primary.endpoints):
        status, summary = Status.OK, f"{_usable(primary)} on the default path ({primary.id})"
    else:
        status, summary = _no_primary(source, path, builtin)
    broken = [t.id for t in path.others if not usable_endpoints(t.endpoints)]
    if broken and status is Status.OK:
        status = Status.WARNING
        summary += f"; nothing usable at {', '.join(broken)}, which other routes or splits lead to"
    return Step("endpoints", status, summary, tuple(details))


def _no_primary(source: ConnectProxySnapshot, path: _Path, builtin: bool) -> tuple[Status, str]:
    why = _empty_reason(path.primary, source.datacenter)
    backup = next((t for t in path.failover if usable_endpoints(t.endpoints)), None)
    if backup is None:
        return Status.FAILED, f"no usable instance on the default path: {why}" + (
            "; no failover target has one either" if path.failover else "")
    if builtin:
        return Status.FAILED, (f"no usable instance on the default path ({why}); failover target {backup.id} has "
                               "one, but the built-in proxy does not fail over")
    return Status.WARNING, f"no usable instance on the default path ({why}); Envoy fails over to {backup.id}"


def _usable(target: _Target) -> str:
    n, total = len(usable_endpoints(target.endpoints)), len(target.endpoints)
    return f"{n} of {total} instance{'s' if total != 1 else ''} usable"


def _target_lines(target: _Target, role: str, datacenter: str) -> list[str]:
    head = f"{target.id} ({role}): cluster {target.sni}"
    if target.subset:
        head += f", subset {target.subset}" + (f" where {target.filter}" if target.filter else "") + (
            ", passing only" if target.only_passing else "")
    if not target.endpoints:
        return [head, f"  none: {_empty_reason(target, datacenter)}"]
    rows = [(f"{e.address}:{e.port}", e.node, e.service_id, e.health,
             ("no traffic" if e.health == CRITICAL else "usable") + _failing(e)) for e in target.endpoints]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return [head, *("  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths)) + "  " + r[4] for r in rows)]


def _failing(e: Endpoint) -> str:
    """Rule 4: which of an instance's checks put it at its status."""
    if not e.failing:
        return ""
    return f" ({e.health}: {', '.join(repr(name) for name in e.failing)})"


def _empty_reason(target: _Target, datacenter: str) -> str:
    if target.datacenter != datacenter:
        return f"it is in datacenter {target.datacenter}, which is not served yet (only {datacenter})"
    if target.endpoints:
        n = len(target.endpoints)
        where = f"{target.service} in subset {target.subset}" if target.subset else target.service
        return f"the one instance of {where} is critical" if n == 1 else f"all {n} instances of {where} are critical"
    if target.subset:
        what = f"the filter {target.filter!r}" if target.filter else "its definition"
        return (f"no instance of {target.service} in the mesh matches subset {target.subset} ({what}"
                + (", passing only)" if target.only_passing else ")"))
    return f"no instance of {target.service} is in the mesh (registered with a sidecar proxy or Connect-native)"


# -- 5: certificates ---------------------------------------------------------------------------
def _certificate_step(source: ConnectProxySnapshot, path: _Path | None,
                      others: Sequence[ConnectProxySnapshot], now: float) -> Step:
    failures: list[str] = []
    warnings: list[str] = []
    details = _source_lines(source, now, failures)
    if path is not None:
        details += _destination_lines(source, path, others, now, failures, warnings)
    if failures:
        return Step("certificates", Status.FAILED, failures[0], tuple(details + [f"also: {f}" for f in failures[1:]]))
    if warnings:
        return Step("certificates", Status.WARNING, warnings[0], tuple(details))
    assert source.leaf is not None  # a missing leaf is a failure
    summary = f"{source.service}'s leaf is valid until {_utc(source.leaf.valid_before)} and chains to the trust bundle"
    return Step("certificates", Status.OK, summary, tuple(details))


def _source_lines(source: ConnectProxySnapshot, now: float, failures: list[str]) -> list[str]:
    """Rule 5 for the source's leaf and trust bundle; appends to ``failures``."""
    lines: list[str] = []
    leaf = source.leaf
    if leaf is None:
        failures.append(f"{source.service} has no leaf certificate yet")
    else:
        lines.append(f"{source.service} presents {leaf.service_uri} (serial {leaf.serial}, "
                     f"NotAfter {_utc(leaf.valid_before)})")
        want = spiffe.service_uri(source.trust_domain, source.namespace, source.datacenter, source.service)
        failures += _leaf_problems(source.service, leaf.cert_pem, leaf.service_uri, want, leaf.valid_before,
                                   source.roots, now)
    try:
        ids = root_ids(source.roots)
    except InvalidCertificate as exc:
        failures.append(f"the trust bundle does not parse: {exc}")
        return lines
    if not ids:
        failures.append("there are no trusted roots")
    lines.append(f"trusted roots ({len(ids)}): {', '.join(ids)}" if ids else "trusted roots: none")
    return lines


def _leaf_problems(service: str, cert_pem: str, uri: str, want: str, valid_before: float, roots: Sequence[str],
                   now: float) -> list[str]:
    if valid_before <= now:
        return [f"{service}'s leaf expired at {_utc(valid_before)}"]
    if uri != want:
        return [f"{service}'s leaf names {uri}, not {want}"]
    problem = chain_problem(cert_pem, roots, now=now)
    return [f"{service}'s leaf does not verify against its own trust bundle: {problem}"] if problem else []


def _destination_lines(source: ConnectProxySnapshot, path: _Path, others: Sequence[ConnectProxySnapshot],
                       now: float, failures: list[str], warnings: list[str]) -> list[str]:
    """Rule 5 for the destination side; appends to ``failures`` and ``warnings``."""
    lines: list[str] = []
    main = {t.name for t in path.main}
    targets = (*path.main, *path.others)
    for name in dict.fromkeys(t.name for t in targets):
        ids = [t.id for t in targets if t.name == name]
        spiffe_id = next(t.spiffe_id for t in targets if t.name == name)
        lines.append(f"{shown_name(*name)} ({', '.join(ids)}) must present {spiffe_id}")
        found = [s for s in others if (s.namespace, s.service) == name]
        if not found:
            lines.append(f"  no sidecar of {shown_name(*name)} on this agent: its leaf is checked where it runs")
        for snap in found:
            line, problems = _peer(source, snap, spiffe_id, now)
            lines.append(line)
            (failures if name in main else warnings).extend(problems)
    return lines


def _peer(source: ConnectProxySnapshot, peer: ConnectProxySnapshot, want: str, now: float) -> tuple[str, list[str]]:
    """One destination sidecar's leaf, checked both ways (rule 5)."""
    leaf = peer.leaf
    if leaf is None:
        return f"  {peer.proxy_id}: no leaf yet", [f"{peer.proxy_id} has no leaf certificate yet"]
    shown = "it" if leaf.service_uri == want else leaf.service_uri
    line = f"  {peer.proxy_id} presents {shown} (serial {leaf.serial}, NotAfter {_utc(leaf.valid_before)})"
    problems = []
    if leaf.valid_before <= now:
        problems.append(f"{peer.proxy_id}'s leaf expired at {_utc(leaf.valid_before)}")
    elif leaf.service_uri != want:
        problems.append(f"{peer.proxy_id} presents {leaf.service_uri}, but {source.service} expects {want}")
    elif why := chain_problem(leaf.cert_pem, source.roots, now=now):
        problems.append(f"{source.service} would not accept {peer.proxy_id}'s leaf: {why}")
    if source.leaf is not None and (why := chain_problem(source.leaf.cert_pem, peer.roots, now=now)):
        problems.append(f"{peer.proxy_id} would not accept {source.service}'s leaf: {why}")
    if not problems:
        line += "; each side's leaf chains to the other's roots"
    return line, problems


def _utc(epoch: float) -> str:
    return f"{dt.datetime.fromtimestamp(epoch, dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC"


# -- 6: the intention --------------------------------------------------------------------------
def _intention_step(source: ConnectProxySnapshot, names: Sequence[Name], decide: Decide,
                    others: Sequence[ConnectProxySnapshot]) -> Step:
    me: Name = (source.namespace, source.service)
    primary = names[0]
    decision = decide(me, primary)
    details = [f"{source.service} → {shown_name(*primary)}: {_why(decision)}"]
    if decision.intention is not None and decision.intention.l7:
        status = Status.WARNING
        summary = f"depends on the request: {decision.reason}"
        details += _permission_lines(decision.intention, source)
    elif decision.allowed:
        status, summary = Status.OK, f"allowed: {_why(decision)}"
    else:
        status, summary = Status.FAILED, f"denied: {_why(decision)}"
    for name in names[1:]:
        other = decide(me, name)
        details.append(f"{source.service} → {shown_name(*name)}: {'allowed' if other.allowed else 'denied'}, "
                       f"{_why(other)}")
        if not other.allowed and not (other.intention is not None and other.intention.l7) and status is Status.OK:
            status = Status.WARNING
            summary += f"; but requests routed to {shown_name(*name)} are denied"
    lag = _enforcer_disagrees(me, primary, decision, others)
    details += lag
    if lag and status is Status.OK:
        status, summary = Status.WARNING, summary + "; a destination sidecar still enforces older intentions"
    return Step("intention", status, summary, tuple(details))


def _why(decision: Decision) -> str:
    """The engine's reason; when no intention matched, saying so before the default's reason."""
    if decision.intention is None:
        return f"no intention matches, so the default decides ({decision.reason})"
    return decision.reason


def _permission_lines(ixn: Intention, source: ConnectProxySnapshot) -> list[str]:
    lines = [f"  permission {i}: {str(p.action)} {describe_permission(p)}" for i, p in enumerate(ixn.permissions)]
    default = "allow" if source.default.allowed else "deny"
    lines.append(f"  no permission matches: {default} ({source.default.reason})")
    return lines


def _enforcer_disagrees(me: Name, destination: Name, decision: Decision,
                        others: Sequence[ConnectProxySnapshot]) -> list[str]:
    """Rule 6: destination sidecars here whose own snapshot decides otherwise."""
    lines = []
    for snap in others:
        if (snap.namespace, snap.service) != destination:
            continue
        theirs = decide_over(snap.intentions, me, default=Default(snap.default.allowed, snap.default.reason))
        if (theirs.allowed, theirs.reason) != (decision.allowed, decision.reason):
            lines.append(f"{snap.proxy_id}'s snapshot decides otherwise: {theirs.reason}")
    return lines
