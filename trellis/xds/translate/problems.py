"""Why a piece of a proxy's Envoy configuration was left out or defaulted (pure).

    ConnectProxySnapshot ──problems──▶ ("upstream db (127.0.0.1:9192): no instance ...", ...)
                                       one sentence per fault, for the xDS shell to log once
                                       and to report to the proxies registry (connect proxy -list)

A fault never stops the translation (issue 6, "Faults"): the bad piece is left out, or
Envoy's default applies, and this module says which and why. It decides nothing itself:
every verdict comes from the function the translation uses (knobs.py's
``select_upstreams``, ``public_refusal`` and knob tables, ``usable_endpoints``), so a
problem is reported exactly when the resources lack the piece.

Rules:
1. Order: the proxy as a whole (leaf and roots, the public listener, Proxy.Config values),
   then each upstream in the snapshot's order. Equal snapshots, equal problems.
2. A sentence names where the value is (``Proxy.Config``, ``upstream <name> (<addr:port>)
   Config``), the key, the value as JSON, what is wrong with it, and what applies or is
   left out instead.
3. A refused upstream (knobs.py rule 1) is one problem, its refusal; its settings and
   endpoints are not examined, since nothing is built for it.
4. A served upstream whose cluster has no endpoints says whether no mesh instance is
   registered (the snapshot cannot tell "not registered at all" from "registered without a
   sidecar") or every instance is critical; one whose instances have host names says EDS
   leaves them out (endpoints.py rule 3).
5. Values proxycfg parses into the snapshot (``bind_port``, ``local_connect_timeout_ms``,
   ``connect_timeout_ms``, read by their exact key as proxycfg reads them) are judged
   against what the snapshot carries: a problem when the given value is not what took
   effect. Absent, empty and zero mean "the default" (Consul's reading), never a problem.
6. Two upstreams to one service share its cluster (clusters.py rule 4): a later one with
   other settings is told that the first one's apply.
7. A terminating gateway: a linked service without a leaf yet is not served; one with no
   usable external instance gets a cluster with no hosts; a bind address that is no IP gets no
   listener; with no linked service served the listener only closes connections. A subset of its
   resolver with no usable external instance gets a cluster with no hosts. An
   ``envoy_dns_discovery_type`` that is neither type is left out; with LOGICAL_DNS, a
   cluster of host names with several usable instances sends to the first only.
8. An ingress service with its own SDS certificate but no host a client can name by SNI
   (only ``*``) gets no filter chain of its own (listeners.py rule 6): it is served on
   the listener's chain, with the listener's certificate. An SDS certificate whose
   cluster the gateway's bootstrap keys do not define is named: Envoy would wait for it
   without a word (measured: the listener stays warming, no NACK).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from trellis.proxycfg.keys import lookup
from trellis.proxycfg.model import CONNECT_PROXY, ConnectProxySnapshot, UpstreamSnapshot, usable_endpoints
from trellis.xds.translate import knobs
from trellis.xds.translate.listeners import own_certificates

PROTOCOLS = ("tcp", "http", "http2", "grpc")  # knobs.py rule 2: tcp and HTTP_LIKE
_BLOCKS = ((knobs.LIMITS_BLOCK, knobs.LIMITS), (knobs.OUTLIER_BLOCK, knobs.OUTLIER))
_SHOWN_HOSTS = 3
_VALUE_LIMIT = 80


def problems(snapshot: ConnectProxySnapshot) -> tuple[str, ...]:
    """Rules 1-6: every reason a piece of ``snapshot``'s Envoy config is left out or
    defaulted; empty when Envoy gets everything asked for. Pure; loop-safe; never raises
    for a snapshot proxycfg built."""
    served, refused = knobs.select_upstreams(snapshot)
    found = [*_proxy_problems(snapshot)]
    first_by_cluster: dict[str, UpstreamSnapshot] = {}
    next_served, next_refused = 0, 0  # select_upstreams keeps the snapshot's order in both
    for up in snapshot.upstreams:
        if next_served < len(served) and served[next_served] is up:
            next_served += 1
            found += _upstream_problems(up, first_by_cluster.setdefault(up.sni, up))
        else:
            found.append(f"{refused[next_refused].reason}; no listener for it")
            next_refused += 1
    return tuple(found)


def _terminating_problems(snapshot: ConnectProxySnapshot) -> Iterator[str]:
    """Rule 7."""
    t = snapshot.terminating
    if t is None:
        return
    served = knobs.served_linked(snapshot)
    dns = knobs.dns_discovery_type(snapshot.config)
    given = lookup(snapshot.config, knobs.DNS_DISCOVERY_TYPE)
    if given is not None and dns is None:
        yield (f"Proxy.Config {knobs.DNS_DISCOVERY_TYPE} {_shown(given)} is not one of "
               f"{' or '.join(knobs.DNS_DISCOVERY_TYPES)}; host names resolve with STRICT_DNS")
    for ls in t.services:
        if ls.leaf is None:
            yield f"linked service {ls.name}: no leaf certificate for it yet; not served until it is issued"
        elif not usable_endpoints(ls.endpoints):
            yield (f"linked service {ls.name}: no external instance registered, or every one is critical; "
                   "connections to it fail")
        if ls.leaf is not None and dns == "LOGICAL_DNS":
            for label, eps in ((ls.name, ls.endpoints), *((f"{ls.name} subset {s.name}", s.endpoints)
                                                           for s in ls.subsets)):
                usable = usable_endpoints(eps)
                if len(usable) > 1 and not all(knobs.is_ip(e.address) for e in usable):
                    first = min(usable, key=lambda e: (e.address, e.port, e.service_id))  # clusters.py's order
                    yield (f"linked service {label}: LOGICAL_DNS takes one instance, and {len(usable)} are "
                           f"usable; only {first.address}:{first.port} gets traffic")
        if ls.leaf is not None:
            for sub in ls.subsets:
                if not usable_endpoints(sub.endpoints):
                    yield (f"linked service {ls.name}: no usable external instance passes the filter of its "
                           f"subset {sub.name}; connections to that subset fail")
    for b in t.binds:
        if not knobs.is_ip(b.address):
            yield f"gateway bind {b.name} address {b.address!r} is not an IP address; no listener for it"
    if not t.binds:
        yield "the gateway has no address and port to listen on (its Port, or envoy_gateway_bind_addresses)"
    elif not served:
        yield ("no linked service is served yet (none linked, or no leaf or roots yet); the gateway accepts "
               "connections and closes them")


# -- the proxy as a whole --------------------------------------------------------------------
def _proxy_problems(snapshot: ConnectProxySnapshot) -> Iterator[str]:
    if snapshot.leaf is None:
        yield (f"no leaf certificate for service {snapshot.service} yet; no public listener and no upstream "
               "listeners until it is issued")
    elif not snapshot.roots:
        yield "no trusted CA roots yet; no public listener and no upstream listeners until there are"
    for li in snapshot.ingress:
        for sds in dict.fromkeys(s.tls.sds for s in (li, *li.services) if s.tls is not None and s.tls.sds):
            if not sds.defined:
                yield (f"ingress listener {li.port}: its SDS certificate {sds.resource!r} comes from cluster "
                       f"{sds.cluster!r}, which the gateway's envoy_extra_static_clusters_json (Proxy.Config, else "
                       "proxy-defaults) does not define; Envoy keeps the listener from serving until it can fetch it")
        owned = {id(o.service) for o in own_certificates(li)}
        for svc in li.services:
            if svc.tls is not None and id(svc) not in owned:
                yield (f"ingress listener {li.port}: service {svc.upstream.destination_name} has its own SDS "
                       f"certificate but no TLS server name of its own to be chosen by (Hosts {list(svc.hosts)}: "
                       "only *, or names an earlier service's certificate has); it is served with the listener's")
    yield from _terminating_problems(snapshot)
    if snapshot.kind != CONNECT_PROXY:
        return  # a gateway has no public listener or local app, and other Proxy.Config keys
    if reason := knobs.public_refusal(snapshot):
        yield f"{reason}; no public listener"
    p, config = snapshot.public, snapshot.config
    yield from _parsed_int("Proxy.Config", config, "bind_port", p.bind_port,
                           expected="a port number (1-65535)", applies=f"the public listener uses port {p.bind_port}",
                           maximum=65535)
    yield from _parsed_int("Proxy.Config", config, "local_connect_timeout_ms", p.local_connect_timeout_ms,
                           expected="a whole number of milliseconds",
                           applies=_timeout_applies(p.local_connect_timeout_ms))
    given = knobs.lookup(config, "protocol")
    if _is_given(given) and not isinstance(given, str):
        yield f"Proxy.Config protocol = {_shown(given)}: not a string; ignored"
    if p.protocol not in PROTOCOLS:
        yield (f"service {snapshot.service}: protocol {_shown(p.protocol)} is not {_one_of()}; the public "
               "listener serves tcp")
    for knob in (*knobs.ROUTE_TIMEOUTS, knobs.INBOUND_LIMIT):
        yield from _knob("Proxy.Config", config, knob)
    yield from _balance("Proxy.Config", config, "balance_inbound_connections")
    yield from _escape_hatches("Proxy.Config", config, knobs.ESCAPE_HATCHES)


def _balance(where: str, config: Mapping[str, Any] | None, key: str) -> Iterator[str]:
    given = knobs.lookup(config, key)
    if _is_given(given) and not knobs.balanced(config, key):
        yield f"{where} {key} = {_shown(given)}: not {knobs.EXACT_BALANCE!r}; Envoy's default balancing applies"


def _escape_hatches(where: str, config: Mapping[str, Any] | None, keys: tuple[str, ...]) -> Iterator[str]:
    """Envoy resources given whole: not spliced in (knobs.ESCAPE_HATCHES), so said, not dropped silently."""
    for key in keys:
        if _is_given(knobs.lookup(config, key)):
            yield (f"{where} {key}: escape hatches are not supported (trellis does not splice user Envoy JSON "
                   "into what it generates); ignored")


# -- upstreams -------------------------------------------------------------------------------
def _upstream_problems(up: UpstreamSnapshot, first: UpstreamSnapshot) -> Iterator[str]:
    """Rules 2, 4 and 6 for a served upstream (``first``: the one whose cluster it uses)."""
    label = f"upstream {up.destination_name} ({up.key})"
    if first is not up and _settings(first) != _settings(up):
        yield (f"{label}: shares cluster {up.sni} with upstream {first.destination_name} ({first.key}), whose "
               "protocol, connect timeout, limits and passive health check apply")
    yield from _parsed_int(f"{label} Config", up.config, "connect_timeout_ms", up.connect_timeout_ms,
                           expected="a whole number of milliseconds", applies=_timeout_applies(up.connect_timeout_ms))
    if up.protocol not in PROTOCOLS:
        yield f"{label}: protocol {_shown(up.protocol)} is not {_one_of()}; served as tcp"
    yield from _balance(f"{label} Config", up.config, "balance_outbound_connections")
    yield from _escape_hatches(f"{label} Config", up.config, knobs.UPSTREAM_ESCAPE_HATCHES)
    for block, table in _BLOCKS:
        given = knobs.lookup(up.config, block) if up.config else None
        if given is not None and not isinstance(given, Mapping):
            yield f"{label} Config {block} = {_shown(given)}: not an object; Envoy's defaults apply"
        elif given:
            for _, knob in table:
                yield from _knob(f"{label} Config", up.config, knob)
    yield from _endpoint_problems(label, up)


def _settings(up: UpstreamSnapshot) -> tuple:
    return up.protocol, up.connect_timeout_ms, knobs.upstream_limits(up), knobs.outlier_detection(up)


def _endpoint_problems(label: str, up: UpstreamSnapshot) -> Iterator[str]:
    """Rule 4."""
    usable = usable_endpoints(up.endpoints)
    if not up.endpoints:
        yield (f"{label}: no instance of service {_service(up)} is in the mesh yet (registered with a sidecar "
               "proxy or Connect-native); its cluster has no endpoints until one is")
        return
    if not usable:
        yield (f"{label}: {_instances(len(up.endpoints), _service(up))} critical; its cluster has no endpoints "
               "until one passes")
        return
    hosts = [e for e in usable if not knobs.is_ip(e.address)]
    if hosts:
        service = _service(up)
        shown = ", ".join(f"{e.service_id} on {e.node} ({_shown(e.address)})" for e in hosts[:_SHOWN_HOSTS])
        more = f" and {len(hosts) - _SHOWN_HOSTS} more" if len(hosts) > _SHOWN_HOSTS else ""
        left = "; its cluster has no endpoints" if len(hosts) == len(usable) else ""
        counted = f"{len(hosts)} instance{'s' if len(hosts) > 1 else ''}"
        yield (f"{label}: EDS leaves out {counted} of service {service} addressed by a host name, not an IP: "
               f"{shown}{more}{left}")


def _instances(n: int, service: str) -> str:
    return f"the one instance of service {service} is" if n == 1 else f"{n} instances of service {service} are"


def _service(up: UpstreamSnapshot) -> str:
    name = json.dumps(up.destination_name)
    return name if up.destination_namespace == "default" else f"{name} in namespace {up.destination_namespace}"


# -- values ----------------------------------------------------------------------------------
def _knob(where: str, config: Mapping[str, Any] | None, knob: knobs.Knob) -> Iterator[str]:
    """Rule 2 for a value read through a knob table: given but read as nothing."""
    given = knob.given(config)
    if _is_given(given) and knob.read(given) is None:
        yield f"{where} {knob.key} = {_shown(given)}: not {knob.expected}; Envoy's default ({knob.default}) applies"


def _parsed_int(where: str, config: Mapping[str, Any], key: str, applied: int, *, expected: str, applies: str,
                maximum: int = 2**63) -> Iterator[str]:
    """Rule 5: ``config[key]`` (case-insensitive, as proxycfg reads it) against what the snapshot carries."""
    given = knobs.lookup(config, key)
    if not _is_given(given):
        return
    if knobs.count(given, maximum=maximum) == applied:
        return
    yield f"{where} {key} = {_shown(given)}: not {expected}; {applies}"


def _timeout_applies(applied_ms: int) -> str:
    if applied_ms > 0:
        return f"{applied_ms} ms applies"
    return f"Envoy's default ({knobs.DEFAULT_CONNECT_TIMEOUT_MS} ms) applies"


def _is_given(value: Any) -> bool:
    """Absent, empty and zero all mean "Envoy's default", as in Consul."""
    return value is not None and value != "" and knobs.count(value) != 0


def _one_of() -> str:
    return ", ".join(PROTOCOLS[:-1]) + f" or {PROTOCOLS[-1]}"


def _shown(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= _VALUE_LIMIT else text[:_VALUE_LIMIT - 3] + "..."
