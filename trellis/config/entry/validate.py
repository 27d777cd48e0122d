"""Validation of config entries: each kind alone, then against the others (pure).

    decode ─▶ normalize ─▶ validate_entry (the entry alone) ─▶ graph.check_graph (with
                                                                 the entries it would join)

``validate_entry`` checks the kinds of this module (service-defaults, proxy-defaults,
service-intentions, mesh) and dispatches the gateway kinds to validate_gateway.py and
the discovery-chain kinds to validate_chain.py.

Rules:
1. Messages are Consul's where it has one; every error is an ``InvalidEntry`` (a 400,
   where Consul answers 500, per DESIGN) and names the field.
2. The protocol of a service is its service-defaults ``Protocol``, else proxy-defaults
   ``Config.protocol``, else ``tcp`` (DESIGN). L7 intentions need ``http``, ``http2``
   or ``grpc`` on their destination, checked both when the intentions are written and
   when a protocol changes under existing L7 intentions (graph.py).
3. Regular expressions are RE2 (google-re2), so nothing accepted here is refused by
   Envoy later.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from trellis.config.entry.errors import InvalidEntry
from trellis.config.entry.fields import HTTP_LIKE, METHODS, PROTOCOLS, TLS_VERSIONS as _TLS_VERSIONS, validate_meta
from trellis.config.entry.fields import one_of as _one_of
from trellis.config.entry.fields import regex as _regex
from trellis.config.entry.model import (
    DEFAULT_NS,
    IntentionPermission,
    Mesh,
    ProxyDefaults,
    ServiceDefaults,
    ServiceIntentions,
    SourceIntention,
    UpstreamConfig,
)
from trellis.config.entry.model_chain import ServiceResolver, ServiceRouter, ServiceSplitter
from trellis.config.entry.model_gateway import IngressGateway, TerminatingGateway
from trellis.config.entry.validate_chain import validate_resolver, validate_router, validate_splitter
from trellis.config.entry.validate_gateway import validate_ingress, validate_terminating
from trellis.connect.intentions import names

__all__ = ["HTTP_LIKE", "PROTOCOLS", "InvalidEntry", "validate_entry", "validate_legacy_intentions",
           "validate_meta"]

MODES = ("", "direct", "transparent")
MESH_GATEWAY_MODES = ("", "none", "local", "remote")
MUTUAL_TLS_MODES = ("", "strict", "permissive")
BALANCE = ("", "exact_balance")
DESCRIPTION_MAX = 512
_NAMESPACE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,62})$")
_HOST = re.compile(r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?$")


def validate_entry(entry: Any) -> None:
    """The entry alone (rule 1). Pure."""
    check = _CHECKS.get(type(entry))
    if check is not None:
        check(entry)
    validate_meta(entry.meta)
    wildcard_ok = isinstance(entry, ServiceIntentions) and entry.namespace == "*"
    if not wildcard_ok and not _NAMESPACE.match(entry.namespace):
        raise InvalidEntry("Namespace", f'Namespace: "{entry.namespace}" is not a valid namespace name')


# -- service-defaults and proxy-defaults -----------------------------------------------------------
def _proxy_shared(e: ServiceDefaults | ProxyDefaults) -> None:
    _one_of("Mode", e.mode, MODES, "mode")
    _one_of("MeshGateway.Mode", e.mesh_gateway.mode, MESH_GATEWAY_MODES, "mesh gateway mode")
    if e.mutual_tls_mode not in MUTUAL_TLS_MODES:
        raise InvalidEntry("MutualTLSMode", f'Invalid MutualTLSMode "{e.mutual_tls_mode}". Must be one of "", '
                                            '"strict", or "permissive".')
    ports = set()
    for i, p in enumerate(e.expose.paths):
        field = f"Expose.Paths[{i}]"
        if not p.path:
            raise InvalidEntry(field, "Path is required for each exposed path")
        if not p.path.startswith("/"):
            raise InvalidEntry(field, f"Path {p.path!r} must start with '/'")
        if not 1 <= p.listener_port <= 65535:
            raise InvalidEntry(field, f"invalid ListenerPort {p.listener_port}: must be 1-65535")
        if p.listener_port in ports:
            raise InvalidEntry(field, f"duplicate listener ports exposed: {p.listener_port}")
        ports.add(p.listener_port)
        if p.protocol and p.protocol not in ("http", "http2"):
            raise InvalidEntry(field, f"protocol {p.protocol!r} not supported for path: {p.path}, "
                                      "must be http or http2")


def _upstream(u: UpstreamConfig, field: str, *, named: bool) -> None:
    where = f"error in upstream override for {u.name}:" if named else "error in upstream defaults:"

    def bad(message: str) -> InvalidEntry:
        return InvalidEntry(field, f"{where} {message}")

    if named and not u.name:
        raise bad("Name is required")
    if named and u.name == "*":
        raise bad("Wildcard name is not supported")
    if not named and u.name:
        raise bad("Name must be empty")
    if not named and u.namespace:
        raise bad("Namespace must be empty")
    if u.protocol:
        _one_of(f"{field}.Protocol", u.protocol, PROTOCOLS, "protocol")
    phc = u.passive_health_check
    if phc is not None:
        if phc.interval < 0:
            raise bad("passive health check interval cannot be negative")
        for attr in ("enforcing_consecutive_5xx", "max_ejection_percent"):
            value = getattr(phc, attr)
            if value is not None and not 0 <= value <= 100:
                raise bad(f"passive health check {attr} must be a percentage between 0 and 100")
        if phc.base_ejection_time is not None and phc.base_ejection_time < 0:
            raise bad("passive health check base_ejection_time cannot be negative")
        if phc.max_failures < 0:
            raise bad("passive health check max_failures cannot be negative")
    if u.limits is not None:
        for attr in ("max_connections", "max_pending_requests", "max_concurrent_requests"):
            value = getattr(u.limits, attr)
            if value is not None and value < 0:
                raise bad(f"{attr.replace('_', ' ')} cannot be negative")
    _one_of(f"{field}.MeshGateway.Mode", u.mesh_gateway.mode, MESH_GATEWAY_MODES, "mesh gateway mode")
    if u.balance_outbound_connections not in BALANCE:
        raise bad(f"invalid value for balance_outbound_connections: {u.balance_outbound_connections}")


def _camel(attr: str) -> str:
    return "".join(p.capitalize() if p != "5xx" else p for p in attr.split("_"))


def _service_defaults(e: ServiceDefaults) -> None:
    if not e.name:
        raise InvalidEntry("Name", "Name is required")
    if e.name == "*":
        raise InvalidEntry("Name", "service-defaults name must be the name of a service, and not a wildcard")
    _one_of("Protocol", e.protocol, ("", *PROTOCOLS), "protocol")
    _one_of("BalanceInboundConnections", e.balance_inbound_connections, BALANCE, "balance_inbound_connections")
    _proxy_shared(e)
    if e.upstream_config is not None and e.destination is not None:
        raise InvalidEntry("Destination", "UpstreamConfig and Destination are mutually exclusive for service defaults")
    if e.upstream_config is not None:
        for i, o in enumerate(e.upstream_config.overrides):
            _upstream(o, f"UpstreamConfig.Overrides[{i}]", named=True)
        if e.upstream_config.defaults is not None:
            _upstream(e.upstream_config.defaults, "UpstreamConfig.Defaults", named=False)
    if e.destination is not None:
        _destination(e)
    for attr in ("max_inbound_connections", "local_connect_timeout_ms", "local_request_timeout_ms"):
        if getattr(e, attr) < 0:
            raise InvalidEntry(_camel(attr), f"{_camel(attr)} must be >= 0")


def _destination(e: ServiceDefaults) -> None:
    d = e.destination
    assert d is not None
    if not d.addresses:
        raise InvalidEntry("Destination.Addresses", "Destination must contain at least one valid address")
    seen = set()
    for address in d.addresses:
        if address in seen:
            raise InvalidEntry("Destination.Addresses", f"Duplicate address '{address}' is not allowed")
        seen.add(address)
        if not _ip_or_host(address):
            raise InvalidEntry("Destination.Addresses", f"Destination address '{address}' is invalid Could not "
                                                        f"validate address {address} as an IP or Hostname")
    if not 1 <= d.port <= 65535:
        raise InvalidEntry("Destination.Port", f"Invalid Port number {d.port}")


def _ip_or_host(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
        return True
    except ValueError:
        return "*" not in address and bool(_HOST.match(address))


def _proxy_defaults(e: ProxyDefaults) -> None:
    if e.name != "global":
        raise InvalidEntry("Name", f'invalid name ("{e.name}"), only "global" is supported')
    _proxy_shared(e)
    protocol = (e.config or {}).get("protocol")
    if protocol is not None and (not isinstance(protocol, str) or protocol.lower() not in PROTOCOLS):
        raise InvalidEntry("Config.protocol", f"invalid value for protocol: {protocol}")
    logs = e.access_logs
    if logs.type not in ("", "file", "stderr", "stdout"):
        raise InvalidEntry("AccessLogs.Type", f"invalid access log type: {logs.type}")
    if logs.json_format and logs.text_format:
        raise InvalidEntry("AccessLogs", "cannot specify both access log JSONFormat and TextFormat")
    if logs.type != "file" and logs.path:
        raise InvalidEntry("AccessLogs.Path", "path is only valid for file type access logs")
    if logs.type == "file" and not logs.path:
        raise InvalidEntry("AccessLogs.Path", "path must be specified when using file type access logs")


# -- service-intentions ------------------------------------------------------------------------------
def _intentions(e: ServiceIntentions, *, legacy: bool = False) -> None:
    names.validate_name(e.namespace, e.name)
    if legacy and e.meta:
        raise InvalidEntry("Meta", "Meta must be omitted for legacy intention writes")
    if not e.sources:
        raise InvalidEntry("Sources", "At least one source is required")
    seen: set[tuple[str, str]] = set()
    for i, s in enumerate(e.sources):
        _source(e, s, i, legacy=legacy)
        ident = (s.namespace, s.name)
        if ident in seen:
            shown = s.name if s.namespace == e.namespace else f"{s.namespace}/{s.name}"
            raise InvalidEntry(f"Sources[{i}]", f'Sources[{i}] defines "{shown}" more than once')
        seen.add(ident)


def _source(e: ServiceIntentions, s: SourceIntention, i: int, *, legacy: bool) -> None:
    at = f"Sources[{i}]"
    if not s.name:
        raise InvalidEntry(f"{at}.Name", f"{at}.Name is required")
    if s.sameness_group:
        raise InvalidEntry(f"{at}.SamenessGroup", f"{at}.SamenessGroup: Sameness groups are a Consul Enterprise feature.")
    names.validate_name(s.namespace, s.name, prefix=f"{at}.")
    if s.peer:
        raise InvalidEntry(f"{at}.Peer", f"{at}.Peer: cluster peering is not supported by trellis")
    if len(s.description) > DESCRIPTION_MAX:
        raise InvalidEntry(f"{at}.Description", f"{at}.Description exceeds maximum length {DESCRIPTION_MAX}")
    if legacy:
        validate_meta(s.legacy_meta, f"{at}.")
        for attr, label in (("legacy_create_time", "LegacyCreateTime"), ("legacy_update_time", "LegacyUpdateTime")):
            if s.legacy_id and not getattr(s, attr):
                raise InvalidEntry(f"{at}.{label}", f"{at}.{label} must be set")
    elif s.legacy_meta:
        raise InvalidEntry(f"{at}.LegacyMeta", f"{at}.LegacyMeta must be omitted")
    if (legacy and s.legacy_id) or not s.permissions:
        if s.action not in ("allow", "deny"):
            raise InvalidEntry(f"{at}.Action", f"{at}.Action must be set to 'allow' or 'deny'")
    if s.permissions:
        if s.action:
            raise InvalidEntry(f"{at}.Action", f"{at}.Action must be omitted if Permissions are specified")
        if e.name == "*" or e.namespace == "*":
            raise InvalidEntry(f"{at}.Permissions", f"{at}.Permissions cannot be specified on intentions with "
                                                    "wildcarded destinations")
    if s.type != "consul":
        raise InvalidEntry(f"{at}.Type", f"{at}.Type must be set to 'consul'")
    for j, p in enumerate(s.permissions):
        _permission(p, f"{at}.Permissions[{j}]")


def _permission(p: IntentionPermission, at: str) -> None:
    if p.action not in ("allow", "deny"):
        raise InvalidEntry(f"{at}.Action", f"{at}.Action must be set to 'allow' or 'deny'")
    h = p.http
    if h is None:
        raise InvalidEntry(f"{at}.HTTP", f"{at}.HTTP is required")
    for label, value in (("PathExact", h.path_exact), ("PathPrefix", h.path_prefix)):
        if value and not value.startswith("/"):
            raise InvalidEntry(f"{at}.HTTP.{label}", f"{at}.HTTP.{label} doesn't start with '/': \"{value}\"")
    if sum(map(bool, (h.path_exact, h.path_prefix, h.path_regex))) > 1:
        raise InvalidEntry(f"{at}.HTTP", f"{at}.HTTP should only contain at most one of PathExact, PathPrefix, "
                                         "or PathRegex")
    if h.path_regex:
        _regex(f"{at}.HTTP.PathRegex", h.path_regex)
    for k, hdr in enumerate(h.header):
        _header(hdr, f"{at}.HTTP.Header[{k}]")
    seen = set()
    for m in h.methods:
        if m not in METHODS:
            raise InvalidEntry(f"{at}.HTTP.Methods", f'{at}.HTTP.Methods contains an invalid method "{m}"')
        if m in seen:
            raise InvalidEntry(f"{at}.HTTP.Methods", f'{at}.HTTP.Methods contains "{m}" more than once')
        seen.add(m)
    if not (h.path_exact or h.path_prefix or h.path_regex or h.header or h.methods):
        raise InvalidEntry(f"{at}.HTTP", f"{at}.HTTP should not be empty")


def _header(hdr: Any, at: str) -> None:
    if not hdr.name:
        raise InvalidEntry(at, f"{at} missing required Name field")
    given = sum(map(bool, (hdr.present, hdr.exact, hdr.prefix, hdr.suffix, hdr.contains, hdr.regex)))
    if given != 1:
        raise InvalidEntry(at, f"{at} should only contain one of Present, Exact, Prefix, Suffix, Contains, or Regex")
    if hdr.ignore_case and (hdr.present or hdr.regex):
        raise InvalidEntry(at, f"{at} should set one of Exact, Prefix, Suffix, or Contains when using IgnoreCase")
    if hdr.regex:
        _regex(at + ".Regex", hdr.regex)


_ESCAPED_SLASHES = ("IMPLEMENTATION_SPECIFIC_DEFAULT", "KEEP_UNCHANGED", "REJECT_REQUEST", "UNESCAPE_AND_REDIRECT",
                    "UNESCAPE_AND_FORWARD")
_UNDERSCORES = ("ALLOW", "REJECT_REQUEST", "DROP_HEADER")


def _mesh(e: Mesh) -> None:
    for side in ("incoming", "outgoing"):
        tls = getattr(e.tls, side) if e.tls else None
        if tls is None:
            continue
        for v in (tls.tls_min_version, tls.tls_max_version):
            if v and v not in _TLS_VERSIONS:
                raise InvalidEntry(f"TLS.{side.capitalize()}", f"error in {side} TLS configuration: no matching TLS "
                                   f"version found for {v}, please specify one of [{', '.join(_TLS_VERSIONS)}]")
    rn = e.http.incoming.request_normalization if e.http and e.http.incoming else None
    if rn is not None:
        for value, allowed, label in ((rn.path_with_escaped_slashes_action, _ESCAPED_SLASHES,
                                       "PathWithEscapedSlashesAction"),
                                      (rn.headers_with_underscores_action, _UNDERSCORES, "HeadersWithUnderscoresAction")):
            if value and value not in allowed:
                raise InvalidEntry(f"HTTP.Incoming.RequestNormalization.{label}",
                                   "error in HTTP incoming request normalization configuration: no matching "
                                   f"{label} value found for {value}, please specify one of [{', '.join(allowed)}]")


_CHECKS: dict[type, Callable[[Any], None]] = {
    ServiceDefaults: _service_defaults, ProxyDefaults: _proxy_defaults, ServiceIntentions: _intentions, Mesh: _mesh,
    IngressGateway: validate_ingress, TerminatingGateway: validate_terminating,
    ServiceResolver: validate_resolver, ServiceRouter: validate_router, ServiceSplitter: validate_splitter,
}


def validate_legacy_intentions(e: ServiceIntentions) -> None:
    """An entry written through the legacy intention API: LegacyID and friends allowed."""
    _intentions(e, legacy=True)
    validate_meta(e.meta)


# -- against the other entries (rule 2) --------------------------------------------------------------
def protocol_of(service_defaults: ServiceDefaults | None, proxy_defaults: ProxyDefaults | None) -> str:
    if service_defaults is not None and service_defaults.protocol:
        return service_defaults.protocol
    if proxy_defaults is not None:
        p = (proxy_defaults.config or {}).get("protocol")
        if isinstance(p, str) and p:
            return p.lower()
    return "tcp"


def check_l7_protocol(destination_ns: str, destination: str, protocol: str,
                      intentions: ServiceIntentions | None) -> None:
    """Raise when ``intentions`` on ``destination`` has L7 permissions but ``protocol`` is not HTTP-like."""
    if intentions is None or protocol in HTTP_LIKE:
        return
    if any(s.permissions for s in intentions.sources):
        name = destination if destination_ns == DEFAULT_NS else f"{destination_ns}/{destination}"
        raise InvalidEntry("Protocol", f'service "{name}" has protocol "{protocol}", which is incompatible with '
                                       "L7 intentions permissions")
