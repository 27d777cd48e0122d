"""Registrations from decoded definitions: Consul's agent defaults (pure).

Owns ``build_registration`` (a service, its checks and its sidecar's), ``build_check``
(a standalone check) and the defaults they fill: the service ID, weights, the
``lan_ipv4``/``wan_ipv4`` (or ``_ipv6``) tagged addresses, check IDs and names, and
initial check status.

Rules (``definition.py`` rule 4):
1. Input is a definition that ``decode_service``/``decode_check`` accepted; nothing
   here validates it again.
2. The only failure is the sidecar port (the one input that depends on agent state,
   passed in as a ``PortPool``): SidecarPortUnavailable.
3. A service's check IDs are ``service:<id>``, or ``service:<id>:<n>`` (from 1) when
   it has several; a standalone check's ID defaults to its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from trellis.catalog import sidecar
from trellis.catalog.address import ip_family
from trellis.catalog.model import DEFAULT_NAMESPACE, Check, Proxy, Service, ServiceAddress, ServiceKind, Weights
from trellis.catalog.sidecar import PortPool
from trellis.catalog.spec import CheckSpec, Registration, ServiceDefinition


def build_registration(
    defn: ServiceDefinition,
    *,
    node: str,
    datacenter: str,
    sidecar_ports: PortPool,
    existing_sidecar_port: int = 0,
    source: str = "",
) -> Registration:
    """The service, checks and sidecar one registration writes. Pure.

    Fills Consul's agent defaults: ID = name, Weights 1/1, ``lan_ipv4``/``wan_ipv4``
    (or ``_ipv6``) tagged addresses from Address, check IDs ``service:<id>`` (or
    ``service:<id>:<n>`` when there are several), check names, initial status
    (given, else critical). A ``sidecar_service`` is expanded by ``sidecar.py``; its
    port comes from ``sidecar_ports`` (reusing ``existing_sidecar_port``). ``source``
    goes to ``agent_source`` ("config" for config files). Expects a definition from
    ``decode_service``. Raises SidecarPortUnavailable.
    """
    service = _build_service(defn, node=node, datacenter=datacenter, source=source)
    checks = build_service_checks(defn.checks, service)
    if defn.sidecar_service is None:
        return Registration(service=service, checks=checks)
    expanded = sidecar.expand_sidecar(defn, sidecar_ports, existing_port=existing_sidecar_port)
    inner = build_registration(expanded, node=node, datacenter=datacenter, sidecar_ports=sidecar_ports,
                               source=source)
    proxy_service = replace(inner.service, agent_sidecar_of=service.id)
    return Registration(service=service, checks=checks,
                        sidecar=Registration(service=proxy_service, checks=inner.checks))


def _build_service(defn: ServiceDefinition, *, node: str, datacenter: str, source: str) -> Service:
    proxy = None
    if defn.kind is not ServiceKind.TYPICAL or defn.connect.gateway:  # a gateway's bind config lives here
        proxy = defn.proxy or Proxy()
    return Service(
        node=node,
        id=defn.service_id,
        name=defn.name,
        kind=defn.kind,
        namespace=defn.namespace or DEFAULT_NAMESPACE,
        tags=defn.tags,
        address=defn.address,
        tagged_addresses=default_tagged_addresses(defn.address, defn.port, defn.tagged_addresses),
        meta=dict(defn.meta),
        port=defn.port,
        socket_path=defn.socket_path,
        weights=defn.weights or Weights(),
        enable_tag_override=defn.enable_tag_override,
        proxy=proxy,
        connect=defn.connect,
        locality=dict(defn.locality) if defn.locality is not None else None,
        datacenter=datacenter,
        agent_token=defn.token,
        agent_source=source,
    )


def default_tagged_addresses(address: str, port: int,
                             given: Mapping[str, ServiceAddress]) -> dict[str, ServiceAddress]:
    """Consul's agent adds ``lan_ipv4``/``wan_ipv4`` (or ``lan_ipv6``/``wan_ipv6``) =
    {Address, Port} when Address is an IP and the key is not given. Pure."""
    out = dict(given)
    family = ip_family(address)
    if family:
        for key in (f"lan_ipv{family}", f"wan_ipv{family}"):
            out.setdefault(key, ServiceAddress(address=address, port=port))
    return out


def build_service_checks(specs: tuple[CheckSpec, ...], service: Service) -> tuple[Check, ...]:
    """Checks of a service registration with Consul's default IDs and names. Pure."""
    many = len(specs) > 1
    out = []
    for index, spec in enumerate(specs, start=1):
        default_id = f"service:{service.id}:{index}" if many else f"service:{service.id}"
        out.append(_build_check(spec, spec.check_id or default_id, node=service.node, service=service))
    return tuple(out)


def build_check(spec: CheckSpec, *, node: str, service: Service | None = None, source: str = "") -> Check:
    """A standalone check (/v1/agent/check/register, config ``check`` block): ID
    defaults to Name; ``service`` is the registered service named by ServiceID. Pure."""
    check = _build_check(spec, spec.check_id or spec.name, node=node, service=service)
    return replace(check, agent_token=spec.token, agent_source=source)


def _build_check(spec: CheckSpec, check_id: str, *, node: str, service: Service | None) -> Check:
    name = spec.name or (f"Service '{service.name}' check" if service is not None else "")
    return Check(
        node=node,
        check_id=check_id,
        name=name,
        status=spec.initial_status,
        notes=spec.notes,
        service_id=service.id if service is not None else "",
        service_name=service.name if service is not None else "",
        service_tags=service.tags if service is not None else (),
        type=spec.type,
        namespace=service.namespace if service is not None else DEFAULT_NAMESPACE,
        definition=spec.definition,
        agent_token=service.agent_token if service is not None else spec.token,
        agent_source=service.agent_source if service is not None else "",
    )
