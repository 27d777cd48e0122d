"""A sidecar proxy or gateway as Consul's agent serves it: its registration merged with
central config, proxy-defaults ``global`` and service-defaults (pure).

    registration ──┐
    proxy-defaults ├─ resolved_defaults ─▶ merge_service ─▶ the service /v1/agent/service(s) show
    service-defaults┘  (Consul's ComputeResolvedServiceConfig)   (Consul's MergeServiceConfig)

Consul's agent does this for every sidecar proxy and gateway it registers (with central
config on, its default) and answers ``/v1/agent/service/:id`` with the result, so tools that
read a proxy's config there (``consul connect envoy`` reading ``envoy_*`` bootstrap keys, for
one) see proxy-defaults' keys as if they had been registered. trellis keeps the registration
as given and merges when the agent endpoints read it.

Rules:
1. Only connect proxies and gateways (their effective kind, catalog/gateway.py) are merged;
   any other service is returned as it is.
2. The service-defaults that apply: a proxy's destination service's; a gateway's own.
3. Defaults: proxy-defaults' ``Config`` (a copy), ``Mode``, ``TransparentProxy``,
   ``MeshGateway``, ``Expose`` and ``AccessLogs``; then service-defaults: ``Protocol``,
   ``BalanceInboundConnections``, ``MaxInboundConnections``, ``LocalConnectTimeoutMs`` and
   ``LocalRequestTimeoutMs`` into the config under their snake_case keys, ``Expose.Checks``
   when true and ``Expose.Paths`` when given, ``MeshGateway.Mode``, ``Mode`` and the
   ``TransparentProxy`` fields when set.
4. The registration wins wherever it has a value: ``Config`` key by key (keys compared
   case-insensitively, as every Proxy.Config reader does), ``Mode`` and ``MeshGateway.Mode``
   when empty, ``TransparentProxy`` fields when zero, ``Expose.Checks`` when false and
   ``Expose.Paths`` when empty, ``AccessLogs`` fields when unset.
5. Each upstream of type service gets, under its own ``Config`` (its keys win): ``protocol``
   from proxy-defaults, replaced by the upstream service's service-defaults ``Protocol``,
   then the downstream's ``UpstreamConfig.Defaults``, then its ``Overrides`` entry for that
   name (Consul's upstream ``MergeInto`` keys). Mesh gateway modes, which need more than one
   datacenter, are left alone.
6. ``resolved`` returns the watch keys it read, so a blocking query wakes when an entry changes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from trellis.catalog.model import Proxy, Service, ServiceKind, Upstream
from trellis.config.duration import format_duration
from trellis.config.entry.model import DEFAULT_NS, ProxyDefaults, ServiceDefaults, UpstreamConfig
from trellis.proxycfg.keys import lookup
from trellis.store.view import View, WatchKey

MERGED_KINDS = frozenset({ServiceKind.CONNECT_PROXY, ServiceKind.INGRESS_GATEWAY, ServiceKind.TERMINATING_GATEWAY,
                          ServiceKind.MESH_GATEWAY, ServiceKind.API_GATEWAY})


def resolved(view: View, service: Service) -> tuple[Service, tuple[WatchKey, ...]]:
    """Rules 1-6: ``service`` (with its effective kind already) merged with central config,
    and the config-entry keys read."""
    if service.kind not in MERGED_KINDS or service.proxy is None:
        return service, ()
    proxy = service.proxy
    target = proxy.destination_service_name if service.kind is ServiceKind.CONNECT_PROXY else service.name
    watch: list[WatchKey] = []

    def entry(kind: str, ns: str, name: str) -> Any:
        watch.append(("config-entry", kind, ns, name))
        table = view.tables.get("config")
        row = table.get(kind, ns, name) if table is not None else None  # type: ignore[attr-defined]
        return row.entry if row else None

    pd: ProxyDefaults | None = entry(ProxyDefaults.KIND, DEFAULT_NS, "global")
    sd: ServiceDefaults | None = entry(ServiceDefaults.KIND, service.namespace, target) if target else None
    defaults = resolved_defaults(pd, sd)
    upstreams = tuple(_upstream(u, pd, sd, entry(ServiceDefaults.KIND, u.destination_namespace or service.namespace,
                                                 u.destination_name))
                      if u.destination_type in ("", "service") else u for u in proxy.upstreams)
    return replace(service, proxy=merge_proxy(replace(proxy, upstreams=upstreams), defaults)), tuple(watch)


def resolved_defaults(pd: ProxyDefaults | None, sd: ServiceDefaults | None) -> Proxy:
    """Rule 3: what central config gives a proxy, as a Proxy (Consul's ServiceConfigResponse). Pure."""
    config = dict(pd.config or {}) if pd is not None else {}
    mode = pd.mode if pd is not None else ""
    tp = _transparent(pd.transparent_proxy) if pd is not None else {}
    mgw = {"mode": pd.mesh_gateway.mode} if pd is not None and pd.mesh_gateway.mode else {}
    expose = _expose(pd.expose) if pd is not None else {}
    access_logs = _access_logs(pd) if pd is not None else {}
    if sd is not None:
        if sd.expose.checks:
            expose["checks"] = True
        if sd.expose.paths:
            expose["paths"] = _expose(sd.expose)["paths"]
        if sd.mesh_gateway.mode:
            mgw = {"mode": sd.mesh_gateway.mode}
        tp.update(_transparent(sd.transparent_proxy))
        mode = sd.mode or mode
        for key, value in (("protocol", sd.protocol), ("balance_inbound_connections", sd.balance_inbound_connections),
                           ("max_inbound_connections", sd.max_inbound_connections),
                           ("local_connect_timeout_ms", sd.local_connect_timeout_ms),
                           ("local_request_timeout_ms", sd.local_request_timeout_ms)):
            if value:
                config[key] = value
    return Proxy(mode=mode, transparent_proxy=tp, config=config, mesh_gateway=mgw, expose=expose,
                 access_logs=access_logs)


def merge_proxy(registered: Proxy, defaults: Proxy) -> Proxy:
    """Rule 4: ``registered`` with ``defaults`` filling what it leaves unset. Pure."""
    return replace(
        registered,
        config=fill(registered.config, defaults.config),
        mode=registered.mode or defaults.mode,
        mesh_gateway=registered.mesh_gateway if registered.mesh_gateway.get("mode") else (
            {**registered.mesh_gateway, **defaults.mesh_gateway}),
        transparent_proxy=_fill_zero(registered.transparent_proxy, defaults.transparent_proxy),
        expose=_fill_zero(registered.expose, defaults.expose),
        access_logs=_fill_zero(registered.access_logs, defaults.access_logs),
    )


def fill(registered: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Rules 4-5: ``registered`` plus every key of ``defaults`` it lacks (case-insensitively). Pure."""
    out = dict(registered)
    for key, value in defaults.items():
        if lookup(registered, key) is None:
            out[key] = value
    return out


def _upstream(u: Upstream, pd: ProxyDefaults | None, sd: ServiceDefaults | None,
              upstream_sd: ServiceDefaults | None) -> Upstream:
    """Rule 5."""
    central: dict[str, Any] = {}
    protocol = lookup(pd.config, "protocol") if pd is not None else None
    if upstream_sd is not None and upstream_sd.protocol:
        protocol = upstream_sd.protocol
    if protocol:
        central["protocol"] = protocol
    uc = sd.upstream_config if sd is not None else None
    if uc is not None:
        override = next((o for o in uc.overrides if o.name == u.destination_name), None)
        for chosen in (uc.defaults, override):
            if chosen is not None:
                central.update(upstream_config_keys(chosen))
    return replace(u, config=fill(u.config, central)) if central else u


def upstream_config_keys(u: UpstreamConfig) -> dict[str, Any]:
    """The ``Proxy.Config``-style keys an UpstreamConfig sets (Consul's ``MergeInto``), the
    mesh gateway aside (rule 5). Pure."""
    out: dict[str, Any] = {}
    for key, value in (("envoy_listener_json", u.envoy_listener_json), ("envoy_cluster_json", u.envoy_cluster_json),
                       ("protocol", u.protocol), ("connect_timeout_ms", u.connect_timeout_ms),
                       ("balance_outbound_connections", u.balance_outbound_connections)):
        if value:
            out[key] = value
    if u.limits is not None:
        limits = {k: v for k, v in (("max_connections", u.limits.max_connections),
                                    ("max_pending_requests", u.limits.max_pending_requests),
                                    ("max_concurrent_requests", u.limits.max_concurrent_requests)) if v is not None}
        if limits:
            out["limits"] = limits
    phc = u.passive_health_check
    if phc is not None:
        block: dict[str, Any] = {}
        if phc.interval:
            block["interval"] = format_duration(phc.interval)
        if phc.max_failures:
            block["max_failures"] = phc.max_failures
        for key in ("enforcing_consecutive_5xx", "max_ejection_percent"):
            if getattr(phc, key) is not None:
                block[key] = getattr(phc, key)
        if phc.base_ejection_time is not None:
            block["base_ejection_time"] = format_duration(phc.base_ejection_time)
        out["passive_health_check"] = block
    return out


def _fill_zero(registered: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    out = dict(registered)
    for key, value in defaults.items():
        if not out.get(key):
            out[key] = value
    return out


def _transparent(tp: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if tp.outbound_listener_port:
        out["outbound_listener_port"] = tp.outbound_listener_port
    if tp.dialed_directly:
        out["dialed_directly"] = True
    return out


def _expose(expose: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if expose.checks:
        out["checks"] = True
    if expose.paths:
        out["paths"] = [{k: v for k, v in (("listener_port", p.listener_port), ("path", p.path),
                                           ("local_path_port", p.local_path_port), ("protocol", p.protocol)) if v}
                        for p in expose.paths]
    return out


def _access_logs(pd: ProxyDefaults) -> dict[str, Any]:
    a = pd.access_logs
    return {k: v for k, v in (("enabled", a.enabled), ("disable_listener_logs", a.disable_listener_logs),
                              ("type", a.type), ("path", a.path), ("json_format", a.json_format),
                              ("text_format", a.text_format)) if v}
