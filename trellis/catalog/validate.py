"""Consul's rules for service and check definitions, with Consul's messages (pure).

Owns every check a definition must pass before it is written: ``validate_service``
and ``validate_check`` (which raise, located at an ``At``), the ``*_problem(s)``
functions they are built from (which return Consul's message, or nothing), and what
Consul only logs (``definition_warnings``). Callers outside decoding use the problem
functions directly (agent config checks node meta with ``meta_problem``).

Rules:
1. The first failing rule raises, in the order Consul's ``AgentRegisterService``
   makes them (agent/agent_endpoint.go); the text is Consul's, and for config files
   it is prefixed with the key path (``At.fail``).
2. Rules that Consul collects (``NodeService.Validate``/``ValidateForAgent``) are
   collected too and reported as one go-multierror text (``format_multierror``).
3. Problem functions never raise; they return ``None`` or ``[]`` when all is well.
4. Where Consul iterates a Go map, keys are checked in sorted order so the message
   is deterministic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from trellis.catalog import sidecar
from trellis.catalog.address import ip_family, upstream_bind_address
from trellis.catalog.gateway import gateway_config_problem
from trellis.catalog.keymatch import At
from trellis.catalog.model import CheckStatus, Proxy, ServiceKind, Upstream, Weights
from trellis.catalog.spec import CheckSpec, ServiceDefinition

STATUS_ERROR = "Status for checks must 'passing', 'warning', 'critical'"
STATUSES = frozenset(s.value for s in CheckStatus)
META_MAX_PAIRS = 64
META_KEY_MAX = 128
META_VALUE_MAX = 512
_META_KEY = re.compile(r"^[a-zA-Z0-9_-]+$")
_MESH_GATEWAY_CONSUL_META = frozenset({"consul-wan-federation"})
_DNS_INVALID = re.compile(r"[^A-Za-z0-9\-]+")


# =========================================================================== services


def validate_service(defn: ServiceDefinition, at: At) -> None:
    """Consul's checks, in the order ``AgentRegisterService`` makes them."""
    if not defn.name:
        raise at.fail("Missing service name")
    if defn.address in ("0.0.0.0", "::", "[::]"):
        raise at.fail("Invalid service address", value=defn.address)
    if defn.weights is not None and (problem := weights_problem(defn.weights)):
        raise at.fail(f"Invalid Weights: {problem}")
    if problem := meta_problem(defn.meta, kind=defn.kind):
        raise at.fail(f"Invalid Service Meta: {problem}")
    if problems := service_problems(defn):
        raise at.fail(f"Validation failed: {format_multierror(problems)}")
    _validate_checks(defn.checks, at, "Invalid check")
    if defn.sidecar_service is not None:
        _validate_sidecar(defn, at)
    for problem in (tagged_address_problem(defn), _sidecar_tagged_address_problem(defn)):
        if problem:
            raise at.fail(problem)
    if defn.kind.is_gateway and defn.proxy is not None and (problem := gateway_config_problem(defn.proxy.config)):
        raise at.fail(f"Invalid Proxy.Config: {problem}")


def _validate_checks(checks: tuple[CheckSpec, ...], at: At, label: str) -> None:
    for spec in checks:
        if problem := check_problem(spec):
            raise at.fail(f"{label}: {problem}")
    for spec in checks:
        if spec.status and spec.status not in STATUSES:
            raise at.fail(STATUS_ERROR, value=spec.status)


def _validate_sidecar(defn: ServiceDefinition, at: At) -> None:
    sc = defn.sidecar_service
    assert sc is not None
    _validate_checks(sc.checks, at, "Invalid check in sidecar_service")
    if sc.meta and (problem := meta_problem(sc.meta, kind=sc.kind)):
        raise at.fail(f"Invalid SidecarService: {problem}")
    if sc.weights is not None and (problem := weights_problem(sc.weights)):
        raise at.fail(f"Invalid SidecarService: Invalid Weights: {problem}")
    expanded = sidecar.sidecar_definition(defn)
    if problems := agent_problems(expanded):
        raise at.fail(f"Failed Validation: {format_multierror(problems)}")


def _sidecar_tagged_address_problem(defn: ServiceDefinition) -> str | None:
    return tagged_address_problem(defn.sidecar_service) if defn.sidecar_service is not None else None


# =========================================================================== checks


def validate_check(spec: CheckSpec, status: str, at: At, *, in_service: bool) -> None:
    """The rules ``decode_check`` applies, in Consul's order: standalone checks need a
    name and a known status first, then ``check_problem``, then the status text."""
    if not in_service and not spec.name:
        raise at.fail("Missing check name")
    if not in_service and status and status not in STATUSES:
        raise at.fail("Bad check status", value=status)
    if problem := check_problem(spec):
        raise at.fail(f"Invalid check: {problem}")
    if status and status not in STATUSES:
        raise at.fail(STATUS_ERROR, value=status)


def check_problem(spec: CheckSpec) -> str | None:
    """Consul's ``CheckType.Validate()`` message for a bad check, else None. Pure.

    One addition (reference/consul-http-api.md §2): an alias check may not set an
    ``Interval`` at all; Consul only refuses one together with a runner field.
    """
    d = spec.definition
    is_alias = bool(d.alias_node or d.alias_service)
    needs_interval = bool(d.args or d.http or d.tcp or d.udp or d.grpc or d.h2ping or d.os_service)
    if d.interval > 0 and d.ttl > 0:
        return "Interval and TTL cannot both be specified"
    if needs_interval and d.interval <= 0:
        return "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
    if is_alias and (needs_interval or d.interval > 0):
        return "Interval cannot be set for Alias checks"
    if is_alias and d.ttl > 0:
        return "TTL must be not be set for Alias checks"
    if not needs_interval and not is_alias and d.ttl <= 0:
        return "TTL must be > 0 for TTL checks"
    if d.output_max_size < 0:
        return "MaxOutputMaxSize must be positive"
    if d.failures_before_warning > d.failures_before_critical:
        return "FailuresBeforeWarning can't be higher than FailuresBeforeCritical"
    return None


# =========================================================================== fields, proxies, upstreams


def weights_problem(weights: Weights) -> str | None:
    """Consul's ``ValidateWeights`` message, else None. Pure."""
    if weights.passing < 1:
        return "Passing must be greater than 0"
    if weights.warning < 0:
        return "Warning must be greater or equal than 0"
    if weights.passing > 65535 or weights.warning > 65535:
        return "DNS Weight must be between 0 and 65535"
    return None


def meta_problem(meta: Mapping[str, str], *, kind: ServiceKind = ServiceKind.TYPICAL,
                 allow_consul_prefix: bool = False) -> str | None:
    """Consul's ``ValidateServiceMetadata`` (and node-meta) message, else None.

    Keys are checked in sorted order, so the message is deterministic (Go's map
    order is random). Pure.
    """
    if len(meta) > META_MAX_PAIRS:
        return f"Node metadata cannot contain more than {META_MAX_PAIRS} key/value pairs"
    allowed = _MESH_GATEWAY_CONSUL_META if kind is ServiceKind.MESH_GATEWAY else frozenset()
    for key in sorted(meta):
        if problem := _meta_pair_problem(key, meta[key], allow_consul_prefix, allowed):
            return f"Couldn't load metadata pair ('{key}', '{meta[key]}'): {problem}"
    return None


def _meta_pair_problem(key: str, value: str, allow_consul_prefix: bool, allowed: frozenset[str]) -> str | None:
    if key == "":
        return "Key cannot be blank"
    if not _META_KEY.match(key):
        return "Key contains invalid characters"
    if len(key) > META_KEY_MAX:
        return f"Key is too long (limit: {META_KEY_MAX} characters)"
    if key.startswith("consul-") and not allow_consul_prefix and key not in allowed:
        return "Key prefix 'consul-' is reserved for internal use"
    if len(value) > META_VALUE_MAX:
        return f"Value is too long (limit: {META_VALUE_MAX} characters)"
    return None


def service_problems(defn: ServiceDefinition) -> list[str]:
    """Consul's ``NodeService.Validate()`` messages (empty when valid). Pure."""
    problems = []
    if defn.kind is ServiceKind.CONNECT_PROXY and defn.port == 0 and not defn.socket_path:
        problems.append(f"Port or SocketPath must be set for a {defn.kind.value}")
    return problems + agent_problems(defn)


def agent_problems(defn: ServiceDefinition) -> list[str]:
    """Consul's ``NodeService.ValidateForAgent()`` messages (empty when valid). Pure."""
    proxy = defn.proxy or Proxy()
    problems: list[str] = []
    if defn.kind is ServiceKind.CONNECT_PROXY:
        problems += _connect_proxy_problems(defn, proxy)
    if defn.kind.is_gateway or defn.connect.gateway:
        problems += _gateway_problems(defn, proxy)
    if defn.sidecar_service is not None:
        if defn.sidecar_service.id:
            problems.append("A SidecarService cannot specify an ID as this is managed by the agent")
        if defn.sidecar_service.sidecar_service is not None:
            problems.append("A SidecarService cannot have a nested SidecarService")
    if defn.connect.native and defn.port == 0 and not defn.socket_path:
        problems.append("Port or SocketPath must be set for a Connect native service.")
    return problems


def _connect_proxy_problems(defn: ServiceDefinition, proxy: Proxy) -> list[str]:
    problems = []
    if not proxy.destination_service_name.strip():
        problems.append("Proxy.DestinationServiceName must be non-empty for Connect proxy services")
    if proxy.destination_service_name == "*":
        problems.append("Proxy.DestinationServiceName must not be a wildcard for Connect proxy services")
    if defn.connect.native:
        problems.append("A Proxy cannot also be Connect Native, only typical services")
    return problems + upstream_problems(proxy.upstreams) + _expose_problems(proxy.expose)


def upstream_problems(upstreams: tuple[Upstream, ...]) -> list[str]:
    """Per-upstream rules, duplicate destinations and clashing binds. Pure."""
    problems: list[str] = []
    keys: set[tuple[str, ...]] = set()
    binds: set[str] = set()
    for u in upstreams:
        if not u.destination_peer and u.datacenter and u.destination_partition not in ("", "default"):
            problems.append("upstreams cannot target another datacenter in non default partition")
            continue
        if problem := _upstream_problem(u):
            problems.append(problem)
            continue
        key = (u.destination_type, u.destination_name, u.destination_partition,
               u.destination_namespace, u.destination_peer, u.datacenter)
        if key in keys:
            problems.append("upstreams cannot contain duplicates of " + _upstream_key_text(key))
            continue
        keys.add(key)
        addr = upstream_bind_address(u)
        if addr in binds and not u.centrally_configured:
            problems.append("upstreams cannot contain duplicates by local bind address and port or unix path; "
                            f"{json.dumps(addr)} is specified twice")
            continue
        binds.add(addr)
    return problems


def _upstream_problem(u: Upstream) -> str | None:
    if u.destination_type not in ("service", "prepared_query", ""):
        return f"unknown upstream destination type: {json.dumps(u.destination_type)}"
    if not u.destination_name:
        return "upstream destination name cannot be empty"
    if u.destination_name == "*" and not u.centrally_configured:
        return "upstream destination name cannot be a wildcard"
    if u.destination_peer and u.datacenter:
        return "upstream cannot specify both destination peer and datacenter"
    if u.local_bind_port == 0 and not u.local_bind_socket_path and not u.centrally_configured:
        return "upstream local bind port or local socket path must be defined and nonzero"
    if u.local_bind_port and u.local_bind_socket_path and not u.centrally_configured:
        return "only one of upstream local bind port or local socket path can be defined and nonzero"
    return None


def _upstream_key_text(key: tuple[str, ...]) -> str:
    names = ("type", "name", "partition", "namespace", "peer", "datacenter")
    return "[" + ", ".join(f"{n}={json.dumps(v)}" for n, v in zip(names, key)) + "]"



def _expose_problems(expose: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    seen: set[int] = set()
    for path in expose.get("paths", ()):
        port = path.get("listener_port", 0)
        if not path.get("path"):
            problems.append("expose.paths: empty path exposed")
        if port in seen:
            problems.append("expose.paths: duplicate listener ports exposed")
        seen.add(port)
        if not 0 < port <= 65535:
            problems.append(f"expose.paths: invalid listener port: {port}")
        protocol = path.get("protocol", "").lower()
        if protocol not in ("", "http", "http2"):
            problems.append(f"protocol '{protocol}' not supported for path: {path.get('path', '')}, "
                            "must be in: [http http2]")
    return problems


def _gateway_problems(defn: ServiceDefinition, proxy: Proxy) -> list[str]:
    """Consul's gateway rules; a kind-less ``connect.gateway`` service is a "gateway" whose
    kind is not known yet (catalog/gateway.py rule 1), so the port rule, which differs by
    kind, waits for its kind."""
    if defn.connect.gateway and not (defn.kind.is_gateway or defn.kind is ServiceKind.TYPICAL):
        return [f"connect.gateway is only for gateways, not for a {defn.kind.value} service"]
    kind = defn.kind.value or "gateway"
    problems = []
    if defn.port == 0 and defn.kind not in (ServiceKind.INGRESS_GATEWAY, ServiceKind.API_GATEWAY,
                                            ServiceKind.TYPICAL):
        problems.append(f"Port must be non-zero for a {kind}")
    if defn.connect.gateway and defn.connect.native:
        problems.append(f"A {kind} cannot also be Connect Native")
    if defn.sidecar_service is not None:
        problems.append(f"A {kind} cannot have a sidecar service defined")
    for label, value in (
        ("DestinationServiceName", proxy.destination_service_name),
        ("DestinationServiceID", proxy.destination_service_id),
        ("LocalServiceAddress", proxy.local_service_address),
        ("LocalServicePort", proxy.local_service_port),
        ("LocalServiceSocketPath", proxy.local_service_socket_path),
        ("Upstreams", proxy.upstreams),
    ):
        if value:
            problems.append(f"The Proxy.{label} configuration is invalid for a {kind}")
    return problems


def tagged_address_problem(defn: ServiceDefinition) -> str | None:
    """Consul's agent check that ``lan_ipv4``/``wan_ipv4``/``lan_ipv6``/``wan_ipv6`` hold
    addresses of that family. Pure."""
    for key, want_v4 in (("lan_ipv4", True), ("wan_ipv4", True), ("lan_ipv6", False), ("wan_ipv6", False)):
        if key in defn.tagged_addresses and ip_family(defn.tagged_addresses[key].address) != (4 if want_v4 else 6):
            return f"Service tagged address {json.dumps(key)} must be a valid ipv{4 if want_v4 else 6} address"
    return None



# =========================================================================== reporting


def format_multierror(problems: list[str]) -> str:
    """hashicorp/go-multierror's text, which Consul puts in its 400 bodies."""
    if len(problems) == 1:
        return f"1 error occurred:\n\t* {problems[0]}\n\n"
    points = "\n\t".join(f"* {p}" for p in problems)
    return f"{len(problems)} errors occurred:\n\t{points}\n\n"


def definition_warnings(defn: ServiceDefinition) -> tuple[str, ...]:
    """What Consul logs (but accepts): names and tags DNS cannot serve. Pure."""
    warnings = []
    if _DNS_INVALID.search(defn.name):
        warnings.append(f"Service name {defn.name!r} will not be discoverable via DNS due to invalid "
                        "characters. Valid characters include all alpha-numerics and dashes.")
    elif len(defn.name) > 63:
        warnings.append(f"Service name {defn.name!r} will not be discoverable via DNS due to it being too "
                        "long. Valid lengths are between 1 and 63 bytes.")
    for tag in defn.tags:
        if _DNS_INVALID.search(tag) or len(tag) > 63:
            warnings.append(f"Service tag {tag!r} will not be discoverable via DNS")
    return tuple(warnings)

