"""Validation of ingress-gateway and terminating-gateway entries alone (pure).

Messages are Consul's (``agent/structs/config_entry_gateways.go``); the checks run in
Consul's order, so the first problem reported is the one Consul reports.

Rules:
1. Ingress listeners: ports unique and in 1..65535; protocol ``tcp``, ``http``,
   ``http2`` or ``grpc``; at least one service; a ``tcp`` listener has exactly one
   service, not ``*``, and no ``Hosts``.
2. Ingress services: a name; ``*`` without ``Hosts``; no wildcard namespace; each
   service once per listener; hosts unique per listener, valid DNS names, ``*`` only as
   the leftmost label (or the whole host, unless gateway TLS is on); header
   modifiers only on HTTP-like listeners; SDS certificates need a cluster at some level.
3. Terminating services: a name, listed once; ``CertFile`` or ``KeyFile`` needs all of
   ``CAFile``, ``CertFile`` and ``KeyFile`` (``CAFile`` alone is one-way TLS).
4. Limits are unsigned 32-bit integers; passive health checks as fields.py says.
"""

from __future__ import annotations

from trellis.config.entry import fields
from trellis.config.entry.errors import InvalidEntry
from trellis.config.entry.model_gateway import (
    GatewayTLSConfig,
    IngressGateway,
    IngressListener,
    IngressService,
    TerminatingGateway,
    tls_server_name,
)

WILDCARD = "*"
_MAX_PORT = 65535


def validate_ingress(e: IngressGateway) -> None:
    _name(e.name)
    _tls("TLS", e.tls)
    ports: set[int] = set()
    for i, listener in enumerate(e.listeners):
        _listener(e, listener, f"Listeners[{i}]", ports)
    if e.defaults is not None:
        for label in ("max_connections", "max_pending_requests", "max_concurrent_requests"):
            fields.non_negative(f"Defaults.{_camel(label)}", getattr(e.defaults, label), limit=fields.UINT32_MAX)
        fields.passive_health_check("Defaults.PassiveHealthCheck", e.defaults.passive_health_check)


def _name(name: str) -> None:
    if not name:
        raise InvalidEntry("Name", "Name is required")


def _camel(attr: str) -> str:
    return "".join(p.capitalize() for p in attr.split("_"))


def _tls(field: str, tls: GatewayTLSConfig | None) -> None:
    if tls is not None:
        fields.tls_config(field, tls.tls_min_version, tls.tls_max_version, tls.cipher_suites)


def _listener(e: IngressGateway, li: IngressListener, at: str, ports: set[int]) -> None:
    if li.port in ports:
        raise InvalidEntry(f"{at}.Port", f"port {li.port} declared on two listeners")
    ports.add(li.port)
    if not 1 <= li.port <= _MAX_PORT:
        raise InvalidEntry(f"{at}.Port", f"{at}.Port {li.port} is not a valid port (1-{_MAX_PORT})")
    if li.protocol not in fields.PROTOCOLS:
        raise InvalidEntry(f"{at}.Protocol", f"protocol must be 'tcp', 'http', 'http2', or 'grpc'. '{li.protocol}' "
                                             "is an unsupported protocol")
    if not li.services:
        raise InvalidEntry(f"{at}.Services", f"No service declared for listener with port {li.port}")
    if li.protocol not in fields.HTTP_LIKE and len(li.services) > 1:
        raise InvalidEntry(f"{at}.Services", "Multiple services per listener are only supported for L7 protocols, "
                                             f"'http', 'grpc' and 'http2' (listener on port {li.port})")
    _tls(f"{at}.TLS", li.tls)
    hosts: set[str] = set()
    names: set[tuple[str, str]] = set()
    for j, s in enumerate(li.services):
        _service(e, li, s, f"{at}.Services[{j}]", hosts, names)
    _own_certificate_names(e, li, at)


def _own_certificate_names(e: IngressGateway, li: IngressListener, at: str) -> None:
    """A service with its own SDS certificate is chosen by the TLS server names of its hosts
    (lower-case, without a port): no other service of the listener may stand for one, or a
    client's SNI could not tell them apart (trellis's rule; Consul sends the hosts to Envoy
    as they are, so a host with a port never matches an SNI)."""
    owners: dict[str, list[int]] = {}
    for j, s in enumerate(li.services):
        for name in {tls_server_name(h) for h in s.hosts} - {""}:
            owners.setdefault(name, []).append(j)
    for j, s in enumerate(li.services):
        if s.tls is None or s.tls.sds is None or not s.tls.sds.cert_resource:
            continue
        for host in s.hosts:
            other = next((li.services[k] for k in owners.get(tls_server_name(host), ()) if k != j), None)
            if other is not None:
                mine, theirs = (fields.shown(x.namespace, x.name, e.namespace) for x in (s, other))
                raise InvalidEntry(f"{at}.Services[{j}].Hosts", f'host {host!r} of service "{mine}", which has its '
                                   f'own TLS certificate, is the same TLS server name as a host of service "{theirs}"; '
                                   f"clients could not be told apart by SNI (listener on port {li.port})")


def _service(e: IngressGateway, li: IngressListener, s: IngressService, at: str, hosts: set[str],
             names: set[tuple[str, str]]) -> None:
    port = li.port
    where = f'(service "{fields.shown(s.namespace, s.name, e.namespace)}" on listener on port {port})'
    for label, m in (("request", s.request_headers), ("response", s.response_headers)):
        problem = fields.header_modifiers_problem(m, li.protocol)
        if problem:
            raise InvalidEntry(f"{at}.{label.capitalize()}Headers", f"{label} headers {problem} {where}")
    if li.protocol == "tcp":
        if s.name == WILDCARD:
            raise InvalidEntry(f"{at}.Name", f"Wildcard service name is only valid for protocol = 'http' "
                                             f"(listener on port {port})")
        if s.hosts:
            raise InvalidEntry(f"{at}.Hosts", f"Associating hosts to a service is not supported for the "
                                              f"{li.protocol} protocol (listener on port {port})")
    if not s.name:
        raise InvalidEntry(f"{at}.Name", f"Service name cannot be blank (listener on port {port})")
    if s.name == WILDCARD and s.hosts:
        raise InvalidEntry(f"{at}.Hosts", f"Associating hosts to a wildcard service is not supported "
                                          f"(listener on port {port})")
    if s.namespace == WILDCARD:
        raise InvalidEntry(f"{at}.Namespace", f"Wildcard namespace is not supported for ingress services "
                                              f"(listener on port {port})")
    fields.namespace_name(f"{at}.Namespace", s.namespace)
    ident = (s.namespace or e.namespace, s.name)
    if ident in names:
        raise InvalidEntry(f"{at}.Name", f"Service {fields.shown(*ident)} cannot be added multiple times "
                                         f"(listener on port {port})")
    names.add(ident)
    _service_sds(e, li, s, at)
    for host in s.hosts:
        if host in hosts:
            raise InvalidEntry(f"{at}.Hosts", f"Hosts must be unique within a specific listener "
                                              f"(listener on port {port})")
        hosts.add(host)
        _host(f"{at}.Hosts", e.tls.enabled, host)
    for label in ("max_connections", "max_pending_requests", "max_concurrent_requests"):
        fields.non_negative(f"{at}.{_camel(label)}", getattr(s, label), limit=fields.UINT32_MAX)
    fields.passive_health_check(f"{at}.PassiveHealthCheck", s.passive_health_check)
    fields.validate_meta(s.meta, f"{at}.")


def _service_sds(e: IngressGateway, li: IngressListener, s: IngressService, at: str) -> None:
    """Consul's ``validateServiceSDS``: a certificate needs an SDS cluster at some level."""
    gw = e.tls.sds
    if gw is not None and not gw.cluster_name and gw.cert_resource:
        raise InvalidEntry("TLS.SDS.ClusterName", "TLS.SDS.ClusterName is required if CertResource is set")
    gw_cluster = bool(gw and gw.cluster_name)
    gw_cert = bool(gw and gw.cert_resource)
    lis = li.tls.sds if li.tls is not None else None
    lis_cert, lis_cluster = bool(lis and lis.cert_resource), bool(lis and lis.cluster_name)
    port = li.port
    if gw_cluster and not gw_cert and not lis_cert:
        raise InvalidEntry("TLS.SDS.CertResource", "TLS.SDS.CertResource is required if ClusterName is set for "
                                                   f"gateway (listener on port {port})")
    if lis_cluster and not lis_cert:
        raise InvalidEntry(f"{at}.TLS.SDS.CertResource", "TLS.SDS.CertResource is required if ClusterName is set "
                                                         f"for listener (listener on port {port})")
    if lis_cert and not lis_cluster and not gw_cluster:
        raise InvalidEntry(f"{at}.TLS.SDS.ClusterName", "TLS.SDS.ClusterName is required if CertResource is set "
                                                        f"(listener on port {port})")
    svc = s.tls.sds if s.tls is not None else None
    if svc is None or not svc.cert_resource:
        return
    name = fields.shown(s.namespace, s.name, e.namespace)
    if not s.hosts:
        raise InvalidEntry(f"{at}.Hosts", "A service specifying TLS.SDS.CertResource must have at least one item "
                                          f'in Hosts (service "{name}" on listener on port {port})')
    if not svc.cluster_name and not lis_cluster and not gw_cluster:
        raise InvalidEntry(f"{at}.TLS.SDS.ClusterName", "TLS.SDS.ClusterName is required if CertResource is set "
                                                        f'(service "{name}" on listener on port {port})')


def _host(field: str, tls_enabled: bool, host: str) -> None:
    """Consul's ``validateHost`` (miekg/dns ``IsDomainName``: label lengths only)."""
    if host == WILDCARD:
        if tls_enabled:
            raise InvalidEntry(field, "Host '*' is not allowed when TLS is enabled, all hosts must be valid DNS "
                                      "records to add as a DNSSAN")
        return
    if not _is_domain_name(host):
        raise InvalidEntry(field, f'Host "{host}" must be a valid DNS hostname')
    if WILDCARD in host.removeprefix("*."):
        raise InvalidEntry(field, f'Host "{host}" is not valid, a wildcard specifier is only allowed as the '
                                  "leftmost label")


def _is_domain_name(host: str) -> bool:
    if not host or len(host.encode()) > 254 or host.startswith("."):
        return False
    labels = host.removesuffix(".").split(".")
    return all(0 < len(label.encode()) <= 63 and not any(c.isspace() for c in label) for label in labels)


# -- terminating-gateway -------------------------------------------------------------------------
def validate_terminating(e: TerminatingGateway) -> None:
    _name(e.name)
    seen: set[tuple[str, str]] = set()
    for i, s in enumerate(e.services):
        at = f"Services[{i}]"
        if not s.name:
            raise InvalidEntry(f"{at}.Name", "Service name cannot be blank.")
        if s.namespace == WILDCARD:
            raise InvalidEntry(f"{at}.Namespace", "Wildcard namespace is not supported for terminating gateway "
                                                  "services")
        fields.namespace_name(f"{at}.Namespace", s.namespace)
        ident = (s.namespace or e.namespace, s.name)
        if ident in seen:
            raise InvalidEntry(f"{at}.Name", f'Service "{fields.shown(*ident)}" was specified more than once within '
                                             "a namespace")
        seen.add(ident)
        if (s.cert_file or s.key_file) and not (s.ca_file and s.cert_file and s.key_file):
            raise InvalidEntry(at, f'Service "{s.name}" must have a CertFile, CAFile, and KeyFile specified for TLS '
                                   "origination")
