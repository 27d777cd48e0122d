"""Building a connect-proxy snapshot from the view (pure: the leaf and the default
decision come in; everything else is read from the view at one revision).

Rules:
1. ``build`` returns the snapshot and the watch keys it read, as a query does; the
   watcher rebuilds when any of them moves (or the leaf changes).
2. Protocol of a service (DESIGN): service-defaults ``Protocol``, else the proxy
   registration's ``Config.protocol``, else proxy-defaults ``Config.protocol``, else tcp.
3. An upstream's settings (``connect_timeout_ms``, ``limits``, ``passive_health_check``,
   ``protocol``): the registration's ``Config`` wins, key by key, over the downstream's
   service-defaults upstream override for that name, which wins over its upstream
   defaults; a timeout of 0 means the data plane's default.
4. An upstream in another datacenter, or a prepared query, is carried with ``error``
   set: that upstream is refused by the proxy, every other one served.
5. An upstream's endpoints are read once per view change and shared by every snapshot
   that has that upstream (View.shared), so one catalog change seen by a thousand proxies
   reads the catalog once, and their snapshots hold the same endpoint objects.
6. ``version`` hashes the ``repr`` of every other field: dataclasses, tuples, dicts and
   scalars only, so it is stable for equal content built the same way.
7. Every upstream's discovery chain is compiled (config/entry/chain.py) from the entries
   as they are, the entries it read joining the watch set, so a resolver, router or
   splitter written later rebuilds the snapshot. A default chain leaves the upstream as
   it always was; any other carries the chain and its targets (model.py rule 5), each
   target's instances being its service's mesh instances that pass the subset's filter
   (and are passing, with OnlyPassing). A chain that does not compile (entries written
   before a rule existed) refuses the upstream with the reason.
8. An ingress gateway's snapshot (model.py rule 6) comes from its ingress-gateway entry:
   each listener on the gateway's address, each service (``*``: the mesh services of the
   listener's protocol) resolved as a sidecar's upstream to it would be, with the
   listener's protocol, the service's limits (else the entry's ``Defaults``), its hosts
   (``<service>.ingress.*`` and ``...:<port>`` by default on http-like listeners) and its
   header changes, and its TLS (``listener_tls``: the gateway's ``TLS``, turned on or
   refined by the listener's; an SDS certificate there turns TLS on, served instead of
   the leaf). A service of an http-like listener with its own SDS certificate carries it
   (its cluster defaulting to the listener's), with the listener's versions and ciphers.
   A certificate says whether the gateway's bootstrap defines its SDS cluster, as far as
   ``envoy_extra_static_clusters_json`` (the registration's, else proxy-defaults') tells.
   No entry yet: no listeners.
9. A terminating gateway's snapshot (model.py rule 7) comes from its terminating-gateway
   entry, as /v1/catalog/gateway-services lists it (``*`` expanded): per linked service
   its leaf (from ``leaves``, which the watcher fills for ``linked_services``), the
   intentions that can decide for it, its external instances (the plain ones, not its
   mesh ones, shared like rule 5's), its protocol (service-defaults, else proxy-defaults)
   and the entry's TLS files, SNI and ``DisableAutoHostRewrite``. It listens on the
   gateway's address and port (unless ``envoy_gateway_no_default_bind``) and on each
   ``envoy_gateway_bind_addresses`` entry. No entry yet: no linked services.
10. A linked service's service-resolver (read through the view, so one written later
   rebuilds the gateway's snapshot) gives, as Consul's terminating gateway takes it:
   ``ConnectTimeout`` (else the gateway's ``connect_timeout_ms``), ``LoadBalancer``,
   ``RequestTimeout``, ``DefaultSubset``, and per subset the external instances that pass
   its filter (and are passing, with ``OnlyPassing``), shared like rule 5's. ``Redirect``
   and ``Failover`` are followed by the mesh clients' chains (rule 7), not the gateway.
11. A chain target's filter selects among the service's own mesh instances; a
   terminating gateway's instance stands for every subset of the services it links (it
   picks the subset's external instances by the SNI it is sent, rule 10), so the filter
   does not apply to it.
12. A proxy's or gateway's ``config`` is its registration's Proxy.Config over what
   central config gives its service (catalog/central.py, as Consul's agent merges it):
   proxy-defaults' Config with service-defaults' Protocol, LocalConnectTimeoutMs,
   LocalRequestTimeoutMs, MaxInboundConnections and BalanceInboundConnections over it,
   key by key, the registration winning. So ``local_request_timeout_ms`` in proxy-defaults
   reaches every sidecar, as in Consul; the entries read join the watch set.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

from trellis import filter as bexpr
from trellis.api.codec import encode_instance
from trellis.catalog import query
from trellis.catalog.errors import InvalidDefinition
from trellis.catalog.central import fill, resolved_defaults, upstream_config_keys
from trellis.catalog.gateway import parse_gateway_binds
from trellis.catalog.gateway_services import TERMINATING, GatewayService, gateway_services
from trellis.catalog.model import CheckStatus, Service, ServiceKind, Upstream
from trellis.config.entry.fields import HTTP_LIKE
from trellis.config.entry.model import ProxyDefaults, ServiceDefaults, UpstreamConfig
from trellis.config.entry.model_gateway import GatewayTLSSDSConfig, IngressGateway, IngressService, listener_tls
from trellis.config.entry.chain import ChainTarget, CompiledChain, compile_chain
from trellis.config.entry.model_chain import ServiceResolver
from trellis.connect import spiffe
from trellis.proxycfg.keys import lookup
from trellis.xds.bootstrap import EXTRA_CLUSTERS, parse_json_objects
from trellis.proxycfg.model import (
    CONNECT_PROXY,
    INGRESS_GATEWAY,
    TERMINATING_GATEWAY,
    ConnectProxySnapshot,
    DefaultDecision,
    Endpoint,
    GatewayBind,
    IngressListenerSnapshot,
    IngressServiceSnapshot,
    IngressTLS,
    LeafSnapshot,
    LinkedServiceSnapshot,
    LinkedSubsetSnapshot,
    PublicListener,
    SdsCertificate,
    TargetSnapshot,
    TerminatingSnapshot,
    UpstreamSnapshot,
)
from trellis.errors import InvalidInput
from trellis.store import doc
from trellis.store.view import Result, View

DEFAULT_NS = "default"


def sni_name(service: str, namespace: str, datacenter: str, trust_domain: str) -> str:
    """Consul's SNI / cluster name of a service (agent/connect/sni.go)."""
    return f"{service}.{namespace}.{datacenter}.internal.{trust_domain}"


class _Reader:
    def __init__(self, view: View) -> None:
        self.view = view
        self.watch: set[tuple] = set()

    def entry(self, kind: str, ns: str, name: str) -> Any:
        self.watch.add(("config-entry", kind, ns, name))
        row = self.view["config"].get(kind, ns, name)
        return row.entry if row else None

    def config(self, ns: str, service: str, registered: Mapping[str, Any]) -> dict[str, Any]:
        """Rule 12: the registration's Proxy.Config over what central config gives
        ``service`` (its service-defaults' keys over proxy-defaults' Config)."""
        pd = self.entry(ProxyDefaults.KIND, DEFAULT_NS, "global")
        sd = self.entry(ServiceDefaults.KIND, ns, service) if service else None
        return fill(dict(registered), resolved_defaults(pd, sd).config)

    def protocol(self, ns: str, name: str, registration_config: dict[str, Any] | None = None) -> str:
        sd = self.entry(ServiceDefaults.KIND, ns, name)
        if sd is not None and sd.protocol:
            return sd.protocol
        given = lookup(registration_config, "protocol")
        if isinstance(given, str) and given:
            return given.lower()
        pd = self.entry(ProxyDefaults.KIND, DEFAULT_NS, "global")
        given = (pd.config or {}).get("protocol") if pd is not None else None
        return given.lower() if isinstance(given, str) and given else "tcp"


def build(view: View, proxy: Service, *, datacenter: str, leaf: LeafSnapshot | None,
          default: DefaultDecision, stop: bool = False) -> Result[ConnectProxySnapshot]:
    """The snapshot of ``proxy`` (a connect-proxy service) and the keys it read."""
    r = _Reader(view)
    p = proxy.proxy
    assert p is not None, "build() takes a connect-proxy service"
    ca = view["ca"]
    service = p.destination_service_name
    # its own registration, the CA, and only the intention entries that can decide for it
    r.watch.update({("ca-roots",), ("ca-config",), ("service", proxy.namespace, proxy.name.lower())})
    r.watch.update(view["config"].intention_watch(proxy.namespace, service))
    td = ca.trust_domain
    config = r.config(proxy.namespace, service, p.config)
    public = PublicListener(
        bind_address=str(lookup(config, "bind_address") or proxy.address or "0.0.0.0"),
        bind_port=_port(lookup(config, "bind_port"), proxy.port),
        local_service_address=p.local_service_address or "127.0.0.1",
        local_service_port=p.local_service_port,
        protocol=r.protocol(proxy.namespace, service, config),
        local_connect_timeout_ms=_int(lookup(config, "local_connect_timeout_ms")),
    )
    candidates = view["config"].intention_index().candidates(proxy.namespace, service)
    given = dict(
        proxy_id=proxy.id, proxy_name=proxy.name, namespace=proxy.namespace, datacenter=datacenter,
        trust_domain=td, service=service, service_id=p.destination_service_id, public=public, leaf=leaf,
        roots=tuple(root.root_cert for root in ca.ordered_roots()), intentions=tuple(candidates),
        default=default,
        upstreams=tuple(_upstream(r, view, (proxy.namespace, service), u, datacenter, td) for u in p.upstreams),
        config=config, kind=CONNECT_PROXY, stop=stop, ingress=(), terminating=None,
    )
    return view.result(ConnectProxySnapshot(**given, version=_version(given)), r.watch)


def build_ingress(view: View, gateway: Service, *, datacenter: str, leaf: LeafSnapshot | None,
                  default: DefaultDecision, stop: bool = False) -> Result[ConnectProxySnapshot]:
    """Rule 8: the snapshot of an ingress gateway (its effective kind) and the keys it read."""
    r = _Reader(view)
    ca = view["ca"]
    td = ca.trust_domain
    r.watch.update({("ca-roots",), ("ca-config",), ("service", gateway.namespace, gateway.name.lower())})
    entry: IngressGateway | None = r.entry(IngressGateway.KIND, gateway.namespace, gateway.name)
    address = gateway.address or "0.0.0.0"
    config = r.config(gateway.namespace, gateway.name, gateway.proxy.config if gateway.proxy is not None else {})
    known = _bootstrap_clusters(config)
    listeners = []
    for li in entry.listeners if entry is not None else ():
        protocol = li.protocol or "tcp"
        services = []
        own = listener_tls(entry, li)
        sds = _sds_certificate(own.sds, None, known)
        tls = IngressTLS(own.tls_min_version, own.tls_max_version, own.cipher_suites, sds=sds)
        for svc in _listener_services(view, r, gateway, li):
            u = Upstream(destination_name=svc.name, destination_namespace=svc.namespace or gateway.namespace,
                         local_bind_address=address, local_bind_port=li.port,
                         config={"protocol": protocol, **_ingress_limits(svc, entry.defaults)})
            hosts = svc.hosts or ((f"{svc.name}.ingress.*", f"{svc.name}.ingress.*:{li.port}")
                                  if protocol in HTTP_LIKE else ())
            own_sds = _sds_certificate(svc.tls.sds if svc.tls is not None else None, own.sds, known)
            services.append(IngressServiceSnapshot(
                upstream=_upstream(r, view, (gateway.namespace, ""), u, datacenter, td), hosts=tuple(hosts),
                request_headers=svc.request_headers, response_headers=svc.response_headers,
                tls=replace(tls, sds=own_sds) if own_sds is not None and protocol in HTTP_LIKE else None))
        listeners.append(IngressListenerSnapshot(
            address=address, port=li.port, protocol=protocol, services=tuple(services),
            tls=tls if own.enabled or sds is not None else None))
    public = PublicListener(bind_address=address, bind_port=0, local_service_address="", local_service_port=0,
                            protocol="tcp", local_connect_timeout_ms=0)
    given = dict(
        proxy_id=gateway.id, proxy_name=gateway.name, namespace=gateway.namespace, datacenter=datacenter,
        trust_domain=td, service=gateway.name, service_id=gateway.id, public=public, leaf=leaf,
        roots=tuple(root.root_cert for root in ca.ordered_roots()), intentions=(), default=default,
        upstreams=tuple(s.upstream for li in listeners for s in li.services),
        config=config, kind=INGRESS_GATEWAY, stop=stop,
        ingress=tuple(listeners), terminating=None,
    )
    return view.result(ConnectProxySnapshot(**given, version=_version(given)), r.watch)


def _sds_certificate(given: GatewayTLSSDSConfig | None, outer: GatewayTLSSDSConfig | None,
                     known: frozenset[str] | None) -> SdsCertificate | None:
    """Rule 8: the SDS certificate ``given`` names, its cluster defaulting to ``outer``'s
    (a service's to its listener's, as validation allows), and whether the gateway's
    bootstrap defines that cluster (``known``; None: cannot tell). None without a resource
    or a cluster (validation refuses that; an entry stored before the rule may have it)."""
    if given is None or not given.cert_resource:
        return None
    cluster = given.cluster_name or (outer.cluster_name if outer is not None else "")
    if not cluster:
        return None
    return SdsCertificate(cluster=cluster, resource=given.cert_resource, defined=known is None or cluster in known)


def _bootstrap_clusters(config: Mapping[str, Any]) -> frozenset[str] | None:
    """Rule 8: the static clusters ``connect envoy`` adds to the gateway's bootstrap from
    ``envoy_extra_static_clusters_json`` (of the merged config, rule 12: the registration's,
    else proxy-defaults'), by name; None when the value does not parse (``connect envoy``
    refuses it and says why)."""
    value = lookup(config, EXTRA_CLUSTERS)
    if value is None or (isinstance(value, str) and not value.strip()):
        return frozenset()
    try:
        return frozenset(str(c.get("name", "")) for c in parse_json_objects(value, {}))
    except ValueError:
        return None


def linked_services(view: View, gateway: Service) -> Result[list[GatewayService]]:
    """Rule 9: the services a terminating gateway links (its entry's rows, ``*`` expanded)."""
    rows = gateway_services(view, gateway.namespace, gateway.name)
    return view.result([g for g in rows.value if g.gateway_kind is TERMINATING], rows.watch)


def build_terminating(view: View, gateway: Service, *, datacenter: str, leaf: LeafSnapshot | None,
                      default: DefaultDecision, stop: bool = False,
                      leaves: Mapping[tuple[str, str], LeafSnapshot] | None = None) -> Result[ConnectProxySnapshot]:
    """Rule 9: the snapshot of a terminating gateway (its effective kind) and the keys it read.
    ``leaves``: the linked services' leaves by (namespace, name); a missing one is carried as None."""
    r = _Reader(view)
    ca = view["ca"]
    td = ca.trust_domain
    r.watch.update({("ca-roots",), ("ca-config",), ("service", gateway.namespace, gateway.name.lower())})
    rows = linked_services(view, gateway)
    r.watch.update(rows.watch)
    config = r.config(gateway.namespace, gateway.name, gateway.proxy.config if gateway.proxy is not None else {})
    timeout = _int(lookup(config, "connect_timeout_ms"))
    index = view["config"].intention_index()
    linked = []
    for g in rows.value:
        ns, name = g.service.namespace, g.service.name
        r.watch.update(view["config"].intention_watch(ns, name))
        endpoints = _shared_external(view, r, ns, name, "", False)
        sni = sni_name(name, ns, datacenter, td)
        linked.append(LinkedServiceSnapshot(
            name=name, namespace=ns, sni=sni,
            spiffe_id=spiffe.service_uri(td, ns, datacenter, name), leaf=(leaves or {}).get((ns, name)),
            intentions=tuple(index.candidates(ns, name)), endpoints=endpoints, protocol=r.protocol(ns, name),
            ca_file=g.ca_file, cert_file=g.cert_file, key_file=g.key_file, tls_sni=g.sni,
            auto_host_rewrite=g.auto_host_rewrite,
            **_linked_resolver(view, r, r.entry(ServiceResolver.KIND, ns, name), sni, timeout)))
    address = gateway.address or "0.0.0.0"
    public = PublicListener(bind_address=address, bind_port=0, local_service_address="", local_service_port=0,
                            protocol="tcp", local_connect_timeout_ms=0)
    terminating = TerminatingSnapshot(binds=_binds(address, gateway.port, config),
                                      services=tuple(sorted(linked, key=lambda s: s.sni)))
    given = dict(
        proxy_id=gateway.id, proxy_name=gateway.name, namespace=gateway.namespace, datacenter=datacenter,
        trust_domain=td, service=gateway.name, service_id=gateway.id, public=public, leaf=leaf,
        roots=tuple(root.root_cert for root in ca.ordered_roots()), intentions=(), default=default, upstreams=(),
        config=config, kind=TERMINATING_GATEWAY, stop=stop, ingress=(), terminating=terminating,
    )
    return view.result(ConnectProxySnapshot(**given, version=_version(given)), r.watch)


def _linked_resolver(view: View, r: _Reader, resolver: ServiceResolver | None, sni: str,
                     timeout_ms: int) -> dict[str, Any]:
    """Rule 10: a linked service's resolver settings, as LinkedServiceSnapshot fields."""
    if resolver is None:
        return {"connect_timeout_ms": timeout_ms}
    subsets = tuple(
        LinkedSubsetSnapshot(name=sub, sni=f"{sub}.{sni}", endpoints=_shared_external(
            view, r, resolver.namespace, resolver.name, given.filter, given.only_passing))
        for sub, given in sorted(resolver.subsets.items()))
    return dict(connect_timeout_ms=round(resolver.connect_timeout * 1000) if resolver.connect_timeout else timeout_ms,
                subsets=subsets, default_subset=resolver.default_subset, load_balancer=resolver.load_balancer,
                request_timeout=resolver.request_timeout)


def _shared_external(view: View, r: _Reader, ns: str, name: str, filter_text: str,
                     only_passing: bool) -> tuple[Endpoint, ...]:
    """Rules 9-10: the external instances of ``ns/name`` passing a subset's filter (shared)."""
    endpoints, watch = view.shared(("external-endpoints", ns, name, filter_text, only_passing),
                                   lambda: _external_endpoints(view, ns, name, filter_text, only_passing))
    r.watch.update(watch)
    return endpoints


def _binds(address: str, port: int, config: dict[str, Any]) -> tuple[GatewayBind, ...]:
    """Rule 9: where a gateway listens. Bind keys that do not parse (registration refuses
    them; an old row may have them) leave only the default bind."""
    try:
        binds = parse_gateway_binds(config)
    except InvalidDefinition:
        binds = parse_gateway_binds({})
    out = [] if binds.no_default_bind or not port else [GatewayBind("default", address, port)]
    out += [GatewayBind(name, a.address, a.port) for name, a in sorted(binds.addresses.items())]
    return tuple(out)


def _external_endpoints(view: View, ns: str, name: str, filter_text: str = "",
                        only_passing: bool = False) -> tuple[tuple[Endpoint, ...], frozenset]:
    """Rules 9-10: the plain instances of ``ns/name`` (the external service), those passing
    ``filter_text`` (and passing, with ``only_passing``), as endpoints."""
    found = query.service_instances(view, ns, name)
    chosen = [i for i in found.value if i.service.kind is ServiceKind.TYPICAL
              and not i.service.connect.native and not i.service.connect.gateway]
    if filter_text:
        match = _filter(filter_text).match
        chosen = [i for i in chosen if match(encode_instance(i))]
    if only_passing:
        chosen = query.passing_only(chosen)
    return tuple(_endpoint(i) for i in chosen), frozenset(found.watch)


def _listener_services(view: View, r: _Reader, gateway: Service, li: Any) -> list[Any]:
    """Rule 8: a listener's services, ``*`` expanded to the mesh services of its protocol
    as /v1/catalog/gateway-services lists them."""
    explicit = [s for s in li.services if s.name != "*"]
    if len(explicit) == len(li.services):
        return explicit
    rows = gateway_services(view, gateway.namespace, gateway.name)
    r.watch.update(rows.watch)
    named = {(s.namespace or gateway.namespace, s.name) for s in explicit}
    wild = [IngressService(name=g.service.name, namespace=g.service.namespace) for g in rows.value
            if g.from_wildcard and g.port == li.port and (g.service.namespace, g.service.name) not in named]
    return explicit + wild


def _ingress_limits(svc: Any, defaults: Any) -> dict[str, Any]:
    """An ingress service's limits and outlier detection (its own, else the gateway's
    ``Defaults``), as the upstream ``Config`` keys the translation reads."""
    out: dict[str, Any] = {}
    limits = {}
    for key in ("max_connections", "max_pending_requests", "max_concurrent_requests"):
        value = getattr(svc, key) or (getattr(defaults, key) if defaults is not None else 0)
        if value:
            limits[key] = value
    if limits:
        out["limits"] = limits
    phc = svc.passive_health_check or (defaults.passive_health_check if defaults is not None else None)
    if phc is not None:
        out.update({k: v for k, v in upstream_config_keys(UpstreamConfig(passive_health_check=phc)).items()
                    if k == "passive_health_check"})
    return out


def _port(value: Any, fallback: int) -> int:
    """``bind_port``: a port number (or its text), else ``fallback`` (the registration's
    Port): a typo never stops the snapshot; xds/translate/problems.py says why."""
    try:
        port = int(value)
    except (TypeError, ValueError):
        return fallback
    return port if 0 < port <= 65535 else fallback


def _int(value: Any) -> int:
    if value is None:
        return 0
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _upstream(r: _Reader, view: View, downstream: tuple[str, str], u: Any, datacenter: str,
              td: str) -> UpstreamSnapshot:
    """One upstream of ``downstream`` (namespace, service whose service-defaults may set
    upstream settings; no service for a gateway)."""
    ns = u.destination_namespace or downstream[0]
    dc = u.datacenter or datacenter
    name = u.destination_name
    config = {**_central(r, downstream, name), **u.config}  # rule 3: the registration wins
    endpoints: tuple[Endpoint, ...] = ()
    targets: tuple[TargetSnapshot, ...] = ()
    chain: CompiledChain | str | None = None
    error = ""
    if u.destination_type not in ("", "service"):
        error = f"upstream {name}: prepared-query upstreams are not supported yet"
    elif dc != datacenter:
        error = (f"upstream {name} is in datacenter {dc!r}: only this datacenter ({datacenter!r}) is served "
                 f"until multi-datacenter support exists")
    else:
        chain, watch = view.shared(("chain", ns, name, dc), lambda: _chain(view, ns, name, dc))
        r.watch.update(watch)
        if isinstance(chain, str):
            error = f"upstream {name}: its discovery chain does not compile: {chain}"
        elif chain.default:
            chain = None
            endpoints, watch = view.shared(("connect-endpoints", ns, name), lambda: _endpoints(view, ns, name))
            r.watch.update(watch)
        else:
            targets = tuple(_target(view, r, t, td, datacenter) for t in chain.targets)
            endpoints = next(t.endpoints for t in targets if t.id == default_target(chain))
    return UpstreamSnapshot(
        destination_name=name, destination_namespace=ns, datacenter=dc,
        local_bind_address=u.local_bind_address or "127.0.0.1", local_bind_port=u.local_bind_port,
        protocol=str(lookup(config, "protocol") or "").lower() or r.protocol(ns, name),
        connect_timeout_ms=_int(lookup(config, "connect_timeout_ms")), sni=sni_name(name, ns, dc, td),
        spiffe_id=spiffe.service_uri(td, ns, dc, name), config=config, endpoints=endpoints, error=error,
        chain=chain if not isinstance(chain, str) else None, targets=targets,
    )


class _ChainEntries:
    """config/entry/chain.py's reader over the view, recording the keys it reads."""

    def __init__(self, r: _Reader) -> None:
        self.r = r

    def get(self, kind: str, ns: str, name: str) -> Any:
        return self.r.entry(kind, ns, name)

    def protocol(self, ns: str, name: str) -> str:
        return self.r.protocol(ns, name)


def _chain(view: View, ns: str, name: str, dc: str) -> tuple[CompiledChain | str, frozenset]:
    """Rule 7: the compiled chain of ``ns/name`` (or why it does not compile) and the
    entries read; shared by every snapshot with that upstream until the view changes."""
    r = _Reader(view)
    try:
        return compile_chain(_ChainEntries(r), ns, name, dc), frozenset(r.watch)
    except InvalidInput as exc:
        return exc.message, frozenset(r.watch)


def default_target(chain: CompiledChain) -> str:
    """Model rule 5: the target of the chain's default path (a router's catch-all, a
    splitter's heaviest split, the first of equals), for an L4-only data plane."""
    node = chain.node(chain.start)
    while node.resolver is None:
        nxt = node.routes[-1].next if node.kind == "router" else max(node.splits, key=lambda s: s.weight).next
        node = chain.node(nxt)
    return node.resolver.target


def _target(view: View, r: _Reader, t: ChainTarget, td: str, datacenter: str) -> TargetSnapshot:
    """Rule 7: a chain target's cluster name, identity and instances (its subset's filter
    and OnlyPassing applied; none in another datacenter, which is not served yet)."""
    endpoints: tuple[Endpoint, ...] = ()
    if t.datacenter == datacenter:
        key = ("connect-target", t.namespace, t.service, t.filter, t.only_passing)
        endpoints, watch = view.shared(key, lambda: _subset_endpoints(view, t))
        r.watch.update(watch)
    return target_snapshot(t, td, endpoints)


def target_snapshot(t: ChainTarget, td: str, endpoints: tuple[Endpoint, ...]) -> TargetSnapshot:
    """A chain target's cluster name (Consul's SNI, the subset first) and identity."""
    sni = sni_name(t.service, t.namespace, t.datacenter, td)
    return TargetSnapshot(id=t.id, sni=f"{t.subset}.{sni}" if t.subset else sni,
                          spiffe_id=spiffe.service_uri(td, t.namespace, t.datacenter, t.service), endpoints=endpoints)


def _subset_endpoints(view: View, t: ChainTarget) -> tuple[tuple[Endpoint, ...], frozenset]:
    found = query.service_instances(view, t.namespace, t.service, connect=True)
    chosen = found.value
    if t.filter:  # rule 11: not over a terminating gateway's instances
        match = _filter(t.filter).match
        chosen = [i for i in chosen if i.service.kind is ServiceKind.TERMINATING_GATEWAY or match(encode_instance(i))]
    if t.only_passing:
        chosen = query.passing_only(chosen)
    return tuple(_endpoint(i) for i in chosen), frozenset(found.watch)


@functools.lru_cache(maxsize=1024)
def _filter(text: str) -> bexpr.Filter:
    return bexpr.compile(bexpr.parse(text), bexpr.CHECK_SERVICE_NODE)


def _endpoint(i: Any) -> Endpoint:
    address, port = i.service.address or i.node.address, i.service.port
    if not port and i.service.proxy is not None:  # a gateway registered without a port (the seed's egress)
        address, port = _gateway_bind(i.service.proxy.config, address)
    health = query.aggregate_status(i.checks)
    failing = () if health is CheckStatus.PASSING else tuple(sorted(c.name or c.check_id for c in i.checks
                                                                    if c.status is health))
    return Endpoint(address=address, port=port, node=i.node.name, service_id=i.service.id, health=health.value,
                    weight=i.service.weights.passing, failing=failing)


def _gateway_bind(config: dict[str, Any], address: str) -> tuple[str, int]:
    """Where a gateway registered without a port listens: its first ``envoy_gateway_bind_
    addresses`` entry (by name), at the service's own address when that entry binds all
    addresses; no bind address: port 0, which no data plane sends to."""
    try:
        binds = parse_gateway_binds(config).addresses
    except InvalidInput:
        return address, 0
    if not binds:
        return address, 0
    bind = binds[min(binds)]
    return (address if bind.address in ("", "0.0.0.0", "::") else bind.address), bind.port


def _endpoints(view: View, ns: str, name: str) -> tuple[tuple[Endpoint, ...], frozenset]:
    """Rule 5: the mesh endpoints of ``ns/name`` and the keys read; shared by every proxy
    with that upstream until the view changes (View.shared)."""
    found = query.service_instances(view, ns, name, connect=True)
    return tuple(_endpoint(i) for i in found.value), frozenset(found.watch)


def _central(r: _Reader, downstream: tuple[str, str], name: str) -> dict[str, Any]:
    """The downstream's service-defaults settings for upstream ``name`` (rule 3), as
    ``Proxy.Config``-style keys: the override for that name over the defaults."""
    ns, service = downstream
    sd = r.entry(ServiceDefaults.KIND, ns, service) if service else None
    uc = sd.upstream_config if sd is not None else None
    if uc is None:
        return {}
    out: dict[str, Any] = {}
    override = next((o for o in uc.overrides if o.name == name), None)
    for chosen in (uc.defaults, override):  # the override, later, wins
        if chosen is not None:
            out.update(upstream_config_keys(chosen))
    return out


_HASHED = tuple(f.name for f in fields(ConnectProxySnapshot) if f.name not in ("version", "index"))


def version_of(snapshot: ConnectProxySnapshot) -> str:
    """Rule 3 of model.py, rule 6 here: a content hash (version and index left out)."""
    return _version({name: getattr(snapshot, name) for name in _HASHED})


def _version(given: dict[str, Any]) -> str:
    return hashlib.sha256(repr([given[name] for name in _HASHED]).encode()).hexdigest()[:16]


def to_json(snapshot: ConnectProxySnapshot) -> Any:
    return doc.to_data(snapshot)


def from_json(data: Any) -> ConnectProxySnapshot:
    return doc.from_data(ConnectProxySnapshot, data)
