"""The gateway config-entry kinds as typed values: ingress-gateway and terminating-gateway.

The entry's ``Name`` is the gateway's service name (the service registered with Kind
``ingress-gateway`` / ``terminating-gateway``); one name is one gateway kind only
(graph.py).

Rules (model.py rules hold):
1. Field order and output shape are Consul's ``agent/structs/config_entry_gateways.go``:
   the gateway ``TLS`` object is always printed, ``Listeners``, a listener's ``Services``,
   a service's ``Hosts`` and the terminating ``Services`` print ``null`` when empty,
   the ingress ``Defaults`` counts print even when 0.
2. ``Defaults`` fields have no snake_case alias in Consul (``MaxConnections`` only);
   the same fields on a listed service do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from trellis.config.entry.codec import key
from trellis.config.entry.model import DEFAULT_NS, HTTPHeaderModifiers, PassiveHealthCheck


@dataclass(frozen=True, slots=True)
class GatewayTLSSDSConfig:
    """A certificate from an SDS server instead of the mesh CA."""

    cluster_name: str = key("ClusterName", "", alias="cluster_name")
    cert_resource: str = key("CertResource", "", alias="cert_resource")


@dataclass(frozen=True, slots=True)
class GatewayTLSConfig:
    enabled: bool = key("Enabled", False, omitempty=False)
    sds: GatewayTLSSDSConfig | None = key("SDS", None)
    tls_min_version: str = key("TLSMinVersion", "", alias="tls_min_version")
    tls_max_version: str = key("TLSMaxVersion", "", alias="tls_max_version")
    cipher_suites: tuple[str, ...] = key("CipherSuites", (), alias="cipher_suites")


@dataclass(frozen=True, slots=True)
class GatewayServiceTLSConfig:
    sds: GatewayTLSSDSConfig | None = key("SDS", None)


@dataclass(frozen=True, slots=True)
class IngressServiceConfig:
    """``Defaults``: limits and outlier detection for every service of the gateway (rule 2)."""

    max_connections: int = key("MaxConnections", 0, omitempty=False)
    max_pending_requests: int = key("MaxPendingRequests", 0, omitempty=False)
    max_concurrent_requests: int = key("MaxConcurrentRequests", 0, omitempty=False)
    passive_health_check: PassiveHealthCheck | None = key("PassiveHealthCheck", None, alias="passive_health_check")


@dataclass(frozen=True, slots=True)
class IngressService:
    name: str = key("Name", "", omitempty=False)
    hosts: tuple[str, ...] = key("Hosts", (), omitempty=False)
    tls: GatewayServiceTLSConfig | None = key("TLS", None)
    request_headers: HTTPHeaderModifiers | None = key("RequestHeaders", None, alias="request_headers")
    response_headers: HTTPHeaderModifiers | None = key("ResponseHeaders", None, alias="response_headers")
    max_connections: int = key("MaxConnections", 0, alias="max_connections")
    max_pending_requests: int = key("MaxPendingRequests", 0, alias="max_pending_requests")
    max_concurrent_requests: int = key("MaxConcurrentRequests", 0, alias="max_concurrent_requests")
    passive_health_check: PassiveHealthCheck | None = key("PassiveHealthCheck", None, alias="passive_health_check")
    meta: dict[str, str] = key("Meta", factory=dict)
    namespace: str = key("Namespace", "")


@dataclass(frozen=True, slots=True)
class IngressListener:
    port: int = key("Port", 0, omitempty=False)
    protocol: str = key("Protocol", "", omitempty=False)  # "" is normalised to tcp
    tls: GatewayTLSConfig | None = key("TLS", None)
    services: tuple[IngressService, ...] = key("Services", (), omitempty=False)


@dataclass(frozen=True, slots=True)
class IngressGateway:
    KIND: ClassVar[str] = "ingress-gateway"
    name: str = key("Name", "", omitempty=False)
    namespace: str = key("Namespace", DEFAULT_NS, omit_value=DEFAULT_NS)
    tls: GatewayTLSConfig = key("TLS", factory=GatewayTLSConfig)
    listeners: tuple[IngressListener, ...] = key("Listeners", (), omitempty=False)
    defaults: IngressServiceConfig | None = key("Defaults", None)
    meta: dict[str, str] = key("Meta", factory=dict)


@dataclass(frozen=True, slots=True)
class LinkedService:
    """A service a terminating gateway reaches on the mesh's behalf (``*``: every
    service of the namespace)."""

    name: str = key("Name", "")
    ca_file: str = key("CAFile", "", alias="ca_file")
    cert_file: str = key("CertFile", "", alias="cert_file")
    key_file: str = key("KeyFile", "", alias="key_file")
    sni: str = key("SNI", "")
    disable_auto_host_rewrite: bool = key("DisableAutoHostRewrite", False)
    namespace: str = key("Namespace", "")


@dataclass(frozen=True, slots=True)
class TerminatingGateway:
    KIND: ClassVar[str] = "terminating-gateway"
    name: str = key("Name", "", omitempty=False)
    namespace: str = key("Namespace", DEFAULT_NS, omit_value=DEFAULT_NS)
    services: tuple[LinkedService, ...] = key("Services", (), omitempty=False)
    meta: dict[str, str] = key("Meta", factory=dict)


def tls_server_name(host: str) -> str:
    """The TLS server name (SNI) an ingress host stands for: lower-case, without a port
    (``*`` alone stands for none: ""). Pure."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return "" if name == "*" else name.lower()


def listener_tls(entry: IngressGateway, listener: IngressListener) -> GatewayTLSConfig:
    """The TLS an ingress listener serves: the gateway's, with what the listener's ``TLS``
    sets on top (Consul's ``resolveListenerTLSConfig``: a listener can turn TLS on, not off;
    its versions and cipher suites, and each of its SDS fields, replace the gateway's when
    given)."""
    gw, own = entry.tls, listener.tls
    if own is None:
        return gw
    sds = gw.sds
    if own.sds is not None:
        base = gw.sds or GatewayTLSSDSConfig()
        sds = GatewayTLSSDSConfig(cluster_name=own.sds.cluster_name or base.cluster_name,
                                  cert_resource=own.sds.cert_resource or base.cert_resource)
    return GatewayTLSConfig(
        enabled=gw.enabled or own.enabled, sds=sds,
        tls_min_version=own.tls_min_version or gw.tls_min_version,
        tls_max_version=own.tls_max_version or gw.tls_max_version,
        cipher_suites=own.cipher_suites or gw.cipher_suites)


def tls_dns_sans(entry: IngressGateway, *, datacenter: str, domain: str) -> tuple[str, ...]:
    """The DNS SANs the gateway's Connect leaf carries when TLS is enabled on the gateway or
    on any listener (Consul's ``generateIngressDNSSANs``), else none: ``*.ingress.<domain>``
    and ``*.ingress.<dc>.<domain>`` (``*.ingress.<ns>.…`` for a service of another
    namespace), then every service's ``Hosts`` (without a port; ``*`` alone is no name).
    Lower-case, without duplicates, in that order. Pure."""
    if not any(listener_tls(entry, li).enabled for li in entry.listeners) and not entry.tls.enabled:
        return ()
    domain = domain.rstrip(".").lower()
    names: list[str] = []
    namespaces = sorted({s.namespace or entry.namespace for li in entry.listeners for s in li.services}
                        or {entry.namespace}, key=lambda ns: (ns != DEFAULT_NS, ns))
    for ns in namespaces:
        label = "" if ns == DEFAULT_NS else f"{ns.lower()}."
        names += [f"*.ingress.{label}{domain}", f"*.ingress.{label}{datacenter.lower()}.{domain}"]
    for li in entry.listeners:
        for s in li.services:
            for host in s.hosts:
                name = (host.rsplit(":", 1)[0] if host.count(":") == 1 else host).rstrip(".").lower()
                if name and name != "*":
                    names.append(name)
    return tuple(dict.fromkeys(names))
