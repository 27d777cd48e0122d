"""The bootstrap `trellis connect envoy` hands Envoy (pure): who it is, where its admin
listens, and how to reach the agent's xDS server; everything else comes over ADS.

Rules (reference/envoy-xds.md §6, DESIGN):
1. node.id = the proxy's service ID, node.cluster = its service (a sidecar's destination,
   a gateway's own name), metadata namespace and partition.
2. One static cluster, ``local_agent``: the agent's gRPC address, HTTP/2 (without it
   Envoy never leaves PRE_INITIALIZING), 1 s connect timeout.
3. ADS is ``DELTA_GRPC``, V3; LDS and CDS come over ADS with no initial fetch timeout;
   the token travels as ``x-consul-token`` metadata.
4. ``envoy_prometheus_bind_addr`` adds a static listener serving Envoy's Prometheus stats
   at ``/metrics`` through a ``self_admin`` cluster pointing at the admin listener.
5. RE2 programs may be large (RBAC regexes over many intentions): the runtime layer
   raises the limit, as Consul's template does.
6. ``ready_port`` adds a static listener answering ``/ready`` through ``self_admin``:
   an ingress gateway binds it on its registered address, so the gateway's TCP check
   passes before any listener arrives over xDS (Consul's ``envoy_ready_listener``).
7. The proxy's other bootstrap keys (``Proxy.Config``, reference/envoy-xds.md §6-7) are
   read by ``parse_bootstrap_config`` into a ``BootstrapConfig``, in Consul's order:
   clusters are ``local_agent``, the extra ones, then ``self_admin`` (left out when an
   extra cluster already has that name); listeners are the extra ones, then Prometheus,
   ``/stats``, ``/ready``. ``stats_sinks`` are statsd, dogstatsd, then the extra ones;
   ``envoy_stats_config_json`` replaces the ``stats_config`` ``envoy_stats_tags`` builds.
8. A key trellis cannot honour (``envoy_bootstrap_json_tpl``: a Go template) or a value
   that does not parse is an ``InvalidInput`` naming the key, never silently ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from trellis.errors import InvalidInput
from trellis.proxycfg.keys import lookup

LOCAL_AGENT = "local_agent"
SELF_ADMIN = "self_admin"
PROMETHEUS_LISTENER = "envoy_prometheus_metrics_listener"
STATS_LISTENER = "envoy_metrics_listener"
READY_LISTENER = "envoy_ready_listener"
EXTRA_CLUSTERS = "envoy_extra_static_clusters_json"


# -- Proxy.Config keys (rules 7 and 8) ------------------------------------------------------------

_PREFIX = "Error reading Proxy.Config key"
Resource = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class BootstrapConfig:
    """The bootstrap keys of a proxy's ``Proxy.Config``, parsed and checked; (host, 0) or
    empty values mean "not set". The JSON keys keep Envoy's field names verbatim."""

    prometheus_bind: tuple[str, int] = ("", 0)
    stats_bind: tuple[str, int] = ("", 0)
    extra_clusters: tuple[Resource, ...] = ()
    extra_listeners: tuple[Resource, ...] = ()
    stats_sinks: tuple[Resource, ...] = ()  # statsd, dogstatsd, then envoy_extra_stats_sinks_json
    stats_config: Resource | None = None
    stats_tags: tuple[tuple[str, str], ...] = ()
    stats_flush_interval: str = ""
    tracing: Resource | None = None


def parse_bootstrap_config(config: Mapping[str, Any], env: Mapping[str, str]) -> BootstrapConfig:
    """The bootstrap keys of ``config`` (a proxy's ``Proxy.Config``; other keys are xDS's
    and left alone). ``env`` is the environment ``$VAR`` URLs expand from. Pure; raises
    ``InvalidInput`` naming the first bad key (in key order) and what is wrong with it.

    An empty value is an unset key, as in Consul (``mapstructure`` leaves "" alone).
    """
    for key in sorted(_REFUSED):
        if not _unset(lookup(config, key)):
            raise InvalidInput(key, message=f"{_PREFIX} {key}: {_REFUSED[key]}")
    found: dict[str, Any] = {}
    sinks: dict[str, tuple[Resource, ...]] = {}
    for key in sorted(_KEYS):
        value = lookup(config, key)  # case-insensitive, as every Proxy.Config key (proxycfg/keys.py)
        if _unset(value):
            continue
        name, parse = _KEYS[key]
        try:
            parsed = parse(value, env)
        except ValueError as exc:
            raise InvalidInput(key, value, message=f"{_PREFIX} {key}: {exc}") from None
        if name == "stats_sinks":
            sinks[key] = parsed
        else:
            found[name] = parsed
    order = ("envoy_statsd_url", "envoy_dogstatsd_url", "envoy_extra_stats_sinks_json")
    found["stats_sinks"] = tuple(s for key in order for s in sinks.get(key, ()))
    return BootstrapConfig(**found)


def _unset(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"want a string, got {type(value).__name__} {json.dumps(value)}")
    return value


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})") from None


def parse_json_objects(value: Any, _env: Mapping[str, str]) -> tuple[Resource, ...]:
    """One JSON object or several separated by commas (Consul pastes the text into a JSON
    array, so that is what the key means)."""
    text = _text(value)
    try:
        items = json.loads(f"[{text}]")
    except json.JSONDecodeError as exc:
        # the opening bracket we added shifts the first line by one column
        column = exc.colno - 1 if exc.lineno == 1 else exc.colno
        raise ValueError(f"invalid JSON: {exc.msg} (line {exc.lineno} column {column}); want one object "
                         "or objects separated by commas") from None
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"item {i + 1} is a {type(item).__name__}, not a JSON object")
    return tuple(items)


def parse_json_object(value: Any, _env: Mapping[str, str]) -> Resource:
    found = _json(_text(value))
    if not isinstance(found, dict):
        raise ValueError(f"want one JSON object, got a {type(found).__name__}")
    return found


def parse_bind_addr(value: Any, _env: Mapping[str, str]) -> tuple[str, int]:
    """``ip:port`` or ``[ipv6]:port`` (Go's ``net.SplitHostPort``); an empty host is 127.0.0.1."""
    host, sep, port = _text(value).rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"{value!r} is not host:port with a port from 1 to 65535")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise ValueError(f"{value!r}: an IPv6 address goes in brackets, as [::1]:9102")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_stats_tags(value: Any, _env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """A list, or one comma-separated string, of ``name=value``; a bare ``name`` is
    ``name=1`` and names are lower-cased (Consul's ``generateStatsTags``)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"want a list of name=value strings, got {json.dumps(value)}")
    tags = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        name, sep, tag_value = item.partition("=")
        if not name.strip():
            raise ValueError(f"tag {item!r} has no name")
        tags.append((name.strip().lower(), tag_value if sep else "1"))
    return tuple(tags)


_DURATION = re.compile(r"(\d+)(?:\.(\d{1,9}))?s")


def parse_flush_interval(value: Any, _env: Mapping[str, str]) -> str:
    """A protobuf JSON duration (``"5s"``, ``"1.5s"``); Envoy takes 1 ms to 300 s."""
    text = _text(value).strip()
    m = _DURATION.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not a duration in seconds like \"10s\" or \"1.5s\"")
    seconds = int(m[1]) + int((m[2] or "0").ljust(9, "0")) / 1e9
    if not 0.001 <= seconds <= 300:
        raise ValueError(f"{text!r} is out of Envoy's range (1ms to 300s)")
    return text


_HOST_IP_ONLY = re.compile(r"\$\{([^}]*)\}|\$(\w+)")


def expand_sink_url(text: str, env: Mapping[str, str]) -> str:
    """Consul's expansion: a whole value ``$NAME`` is that variable's value; otherwise only
    ``$HOST_IP``/``${HOST_IP}`` is expanded and every other ``$X`` is left as ``${X}``."""
    if len(text) > 2 and text.startswith("$"):
        name = text[1:]
        if not env.get(name):
            raise ValueError(f"environment variable {name} is not set")
        return env[name]

    def one(m: re.Match[str]) -> str:
        name = m[1] if m[1] is not None else m[2]
        return env.get(name, "") if name == "HOST_IP" else f"${{{name}}}"

    return _HOST_IP_ONLY.sub(one, text)


def _sink_address(value: Any, env: Mapping[str, str]) -> dict[str, Any]:
    """``udp://host:port`` or ``unix:///path`` as an Envoy ``Address``."""
    url = expand_sink_url(_text(value).strip(), env)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"cannot parse {url!r} as a URL: {exc}") from None
    if parts.scheme == "udp":
        if not parts.hostname or port is None:
            raise ValueError(f"{url!r} wants a host and a port, as udp://127.0.0.1:8125")
        return {"socket_address": {"address": parts.hostname, "port_value": port}}
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"{url!r} wants a socket path, as unix:///var/run/statsd.sock")
        return {"pipe": {"path": parts.path}}
    raise ValueError(f"unsupported address protocol {parts.scheme!r} in {url!r} (want udp:// or unix://)")


def _sink(name: str, proto: str) -> Callable[[Any, Mapping[str, str]], tuple[Resource, ...]]:
    def parse(value: Any, env: Mapping[str, str]) -> tuple[Resource, ...]:
        return ({"name": name, "typed_config": {"@type": f"type.googleapis.com/envoy.config.metrics.v3.{proto}",
                                                "address": _sink_address(value, env)}},)
    return parse


# key -> (BootstrapConfig field, parser); the docs' table lists the same keys
_KEYS: dict[str, tuple[str, Callable[[Any, Mapping[str, str]], Any]]] = {
    "envoy_prometheus_bind_addr": ("prometheus_bind", parse_bind_addr),
    "envoy_stats_bind_addr": ("stats_bind", parse_bind_addr),
    EXTRA_CLUSTERS: ("extra_clusters", parse_json_objects),
    "envoy_extra_static_listeners_json": ("extra_listeners", parse_json_objects),
    "envoy_statsd_url": ("stats_sinks", _sink("envoy.stat_sinks.statsd", "StatsdSink")),
    "envoy_dogstatsd_url": ("stats_sinks", _sink("envoy.stat_sinks.dog_statsd", "DogStatsdSink")),
    "envoy_extra_stats_sinks_json": ("stats_sinks", parse_json_objects),
    "envoy_stats_config_json": ("stats_config", parse_json_object),
    "envoy_stats_tags": ("stats_tags", parse_stats_tags),
    "envoy_stats_flush_interval": ("stats_flush_interval", parse_flush_interval),
    "envoy_tracing_json": ("tracing", parse_json_object),
}

# keys Consul honours that trellis cannot: refused rather than ignored (rule 8)
_REFUSED = {
    "envoy_bootstrap_json_tpl": "trellis does not render Go templates, so it cannot replace the bootstrap "
                                "with this one; remove the key and use the envoy_extra_* / envoy_stats_* / "
                                "envoy_tracing_json keys instead",
    "envoy_telemetry_collector_bind_socket_dir": "the Consul telemetry collector is not supported by trellis; "
                                                 "remove the key",
}

BOOTSTRAP_KEYS = tuple(sorted([*_KEYS, *_REFUSED]))


@dataclass(frozen=True, slots=True)
class BootstrapArgs:
    proxy_id: str
    service: str
    namespace: str
    admin_host: str
    admin_port: int
    agent_host: str
    agent_port: int
    token: str = ""
    node_name: str = ""
    prometheus_path: str = "/metrics"
    ready_host: str = ""
    ready_port: int = 0
    datacenter: str = ""
    config: BootstrapConfig = field(default_factory=BootstrapConfig)


def _address(host: str, port: int) -> dict[str, Any]:
    return {"socket_address": {"address": host, "port_value": port}}


def build_bootstrap(a: BootstrapArgs) -> dict[str, Any]:
    """The bootstrap as JSON-ready data (Envoy reads JSON as YAML). Pure; raises
    ``InvalidInput`` naming the key when an extra cluster or listener reuses a name."""
    metadata = {"namespace": a.namespace, "partition": "default"}
    if a.node_name:
        metadata["node_name"] = a.node_name
    boot: dict[str, Any] = {
        "admin": {"address": _address(a.admin_host, a.admin_port)},
        "node": {"id": a.proxy_id, "cluster": a.service, "metadata": metadata},
        "layered_runtime": {"layers": [{"name": "base", "static_layer": {
            "re2.max_program_size.error_level": 1048576}}]},
        "static_resources": {"clusters": [_agent_cluster(a)], "listeners": []},
        "dynamic_resources": {
            "lds_config": {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"},
            "cds_config": {"ads": {}, "initial_fetch_timeout": "0s", "resource_api_version": "V3"},
            "ads_config": {
                "api_type": "DELTA_GRPC", "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": LOCAL_AGENT},
                                   "initial_metadata": [{"key": "x-consul-token", "value": a.token}]}],
            },
        },
    }
    _add_static_resources(boot["static_resources"], a)
    _add_stats_and_tracing(boot, a)
    return boot


def _add_static_resources(static: dict[str, Any], a: BootstrapArgs) -> None:
    """Rules 4, 6 and 7: the extra clusters and listeners, then the admin-backed ones."""
    c = a.config
    static["clusters"] += [dict(x) for x in c.extra_clusters]
    static["listeners"] += [dict(x) for x in c.extra_listeners]
    admin_backed = [
        (PROMETHEUS_LISTENER, "envoy_prometheus_metrics", c.prometheus_bind[0], c.prometheus_bind[1],
         {"path": a.prometheus_path}, "/stats/prometheus"),
        (STATS_LISTENER, "envoy_metrics", c.stats_bind[0], c.stats_bind[1], {"prefix": "/stats"}, "/stats"),
        (READY_LISTENER, "envoy_ready", a.ready_host, a.ready_port, {"path": "/ready"}, "/ready"),
    ]
    wanted = [spec for spec in admin_backed if spec[3]]
    if wanted and all(x.get("name") != SELF_ADMIN for x in c.extra_clusters):
        static["clusters"].append({
            "name": SELF_ADMIN, "type": "STATIC", "connect_timeout": "5s",
            "load_assignment": {"cluster_name": SELF_ADMIN, "endpoints": [{"lb_endpoints": [
                {"endpoint": {"address": _address(a.admin_host, a.admin_port)}}]}]},
        })
    static["listeners"] += [_admin_listener(*spec) for spec in wanted]
    _require_unique(static["clusters"], EXTRA_CLUSTERS, "cluster")
    _require_unique(static["listeners"], "envoy_extra_static_listeners_json", "listener")


def _require_unique(resources: list[dict[str, Any]], key: str, what: str) -> None:
    """Envoy refuses two static resources of one name; say which key brought the clash."""
    seen: set[str] = set()
    for r in resources:
        name = r.get("name", "")
        if name in seen:
            raise InvalidInput(key, name, message=f"{_PREFIX} {key}: a {what} named {name!r} is already in the "
                                                  "bootstrap (names must be unique)")
        seen.add(name)


def _add_stats_and_tracing(boot: dict[str, Any], a: BootstrapArgs) -> None:
    c = a.config
    if c.stats_sinks:
        boot["stats_sinks"] = [dict(x) for x in c.stats_sinks]
    if c.stats_config is not None:
        boot["stats_config"] = dict(c.stats_config)
    elif c.stats_tags:
        boot["stats_config"] = {"stats_tags": _fixed_tags(a), "use_all_default_tags": True}
    if c.stats_flush_interval:
        boot["stats_flush_interval"] = c.stats_flush_interval
    if c.tracing is not None:
        boot["tracing"] = dict(c.tracing)


def _fixed_tags(a: BootstrapArgs) -> list[dict[str, str]]:
    """``envoy_stats_tags`` first, then Consul's source tags the user did not set."""
    given = dict(a.config.stats_tags)
    defaults = [("local_cluster", a.service), ("consul.source.service", a.service),
                ("consul.source.namespace", a.namespace or "default"), ("consul.source.partition", "default"),
                ("consul.source.datacenter", a.datacenter)]
    tags = [*a.config.stats_tags, *((k, v) for k, v in defaults if v and k not in given)]
    return [{"tag_name": k, "fixed_value": v} for k, v in tags]


def _agent_cluster(a: BootstrapArgs) -> dict[str, Any]:
    return grpc_cluster(LOCAL_AGENT, a.agent_host, a.agent_port)


def grpc_cluster(name: str, host: str, port: int) -> dict[str, Any]:
    """A static cluster speaking HTTP/2 (gRPC) to ``host:port``, 1 s connect timeout: the
    agent's (rule 2), or an SDS server's an operator adds with envoy_extra_static_clusters_json."""
    return {
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}}}},
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": _address(host, port)}}]}]},
    }


def _admin_listener(name: str, stat_prefix: str, host: str, port: int, match: dict[str, str],
                    rewrite: str) -> dict[str, Any]:
    """A static listener exposing one admin path or prefix (rewritten) and 404 for anything else."""
    routes = [
        {"match": match, "route": {"cluster": SELF_ADMIN, "prefix_rewrite": rewrite}},
        {"match": {"prefix": "/"}, "direct_response": {"status": 404}},
    ]
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": stat_prefix, "codec_type": "HTTP1",
        "route_config": {"name": "self_admin_route", "virtual_hosts": [
            {"name": SELF_ADMIN, "domains": ["*"], "routes": routes}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    return {"name": name, "address": _address(host, port),
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": hcm}]}]}


def parse_version(text: str) -> tuple[int, int, int] | None:
    """The x.y.z in ``envoy --version``'s output (``.../1.40.0/Clean/RELEASE/BoringSSL``)."""
    import re

    m = re.search(r"/(\d+)\.(\d+)\.(\d+)/", text) or re.search(r"\b(\d+)\.(\d+)\.(\d+)\b", text)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


MIN_ENVOY = (1, 28, 0)  # a minimum, never a closed list (consul#16493)
