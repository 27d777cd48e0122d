"""``connect.sidecar_service`` expansion (pure): Consul's agent/sidecar_service.go.

Rules (reference/consul-connect.md §2, DESIGN.md decisions):
1. The sidecar's ID is always ``<parent id>-sidecar-proxy``; its name defaults to
   ``<parent name>-sidecar-proxy``, kind to ``connect-proxy``; tags, meta, address,
   locality and token are the parent's unless the sidecar sets its own; the
   namespace is always the parent's.
2. ``Proxy.DestinationServiceName``/``ID`` default to the parent's; when the sidecar
   gives no local socket and lacks a local address or port, the parent's socket
   path is used, else ``127.0.0.1`` and the parent's port.
3. Port: the sidecar's own, else the sidecar's current port when re-registering
   (if still inside the range), else the lowest free port of ``PortPool``.
4. Checks (trellis decision, differs from Consul): a sidecar always gets the alias
   check on its parent instance, so an app going critical takes its proxy out of
   rotation; when it defines no checks of its own it also gets the TCP
   ``Connect Sidecar Listening`` check (10s), listed first, as Consul does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from trellis.catalog.address import join_host_port
from trellis.catalog.errors import SidecarPortUnavailable
from trellis.catalog.model import CheckDefinition, Proxy, ServiceKind
from trellis.catalog.spec import CheckSpec, ServiceDefinition, detect_check_type

SIDECAR_SUFFIX = "-sidecar-proxy"
DEFAULT_SIDECAR_MIN_PORT = 21000
DEFAULT_SIDECAR_MAX_PORT = 21255
LISTENING_CHECK_NAME = "Connect Sidecar Listening"
LISTENING_CHECK_INTERVAL = 10.0


@dataclass(frozen=True, slots=True)
class PortPool:
    """The agent's ``ports.sidecar_min_port``..``sidecar_max_port`` (inclusive) and the
    ports other local services already hold. A bound below 1 disables assignment."""

    min_port: int = DEFAULT_SIDECAR_MIN_PORT
    max_port: int = DEFAULT_SIDECAR_MAX_PORT
    used: frozenset[int] = frozenset()

    @property
    def enabled(self) -> bool:
        return self.min_port > 0 and self.max_port > 0


def sidecar_id(service_id: str) -> str:
    return service_id + SIDECAR_SUFFIX


def allocate_sidecar_port(pool: PortPool, *, existing_port: int = 0) -> int:
    """Rule 3 without the sidecar's own port. Pure; raises SidecarPortUnavailable
    with Consul's text."""
    if pool.enabled and pool.max_port >= pool.min_port:
        if pool.min_port <= existing_port <= pool.max_port:
            return existing_port
        for port in range(pool.min_port, pool.max_port + 1):
            if port not in pool.used:
                return port
    if not pool.enabled:
        raise SidecarPortUnavailable(
            "no port provided for sidecar_service and auto-assignment disabled in config")
    raise SidecarPortUnavailable(
        "no port provided for sidecar_service and none left in the configured range "
        f"[{pool.min_port}, {pool.max_port}]")


def sidecar_definition(parent: ServiceDefinition) -> ServiceDefinition:
    """Rules 1–2: the parent's ``sidecar_service`` with every default filled except the
    port and the checks (used to validate it, and by ``expand_sidecar``). Pure."""
    sidecar = parent.sidecar_service
    if sidecar is None:
        raise ValueError(f"service {parent.service_id!r} has no sidecar_service")
    return replace(
        sidecar,
        id=sidecar_id(parent.service_id),
        name=sidecar.name or parent.name + SIDECAR_SUFFIX,
        kind=sidecar.kind or ServiceKind.CONNECT_PROXY,
        namespace=parent.namespace,
        tags=sidecar.tags or parent.tags,
        meta=dict(sidecar.meta or parent.meta),
        address=sidecar.address or parent.address,
        proxy=_proxy_defaults(parent, sidecar.proxy or Proxy()),
        locality=sidecar.locality if sidecar.locality is not None else parent.locality,
        token=sidecar.token or parent.token,
    )


def _proxy_defaults(parent: ServiceDefinition, proxy: Proxy) -> Proxy:
    proxy = replace(
        proxy,
        destination_service_name=proxy.destination_service_name or parent.name,
        destination_service_id=proxy.destination_service_id or parent.service_id,
    )
    if proxy.local_service_socket_path or (proxy.local_service_address and proxy.local_service_port >= 1):
        return proxy
    if parent.socket_path:
        return replace(proxy, local_service_socket_path=parent.socket_path)
    return replace(
        proxy,
        local_service_address=proxy.local_service_address or "127.0.0.1",
        local_service_port=proxy.local_service_port if proxy.local_service_port >= 1 else parent.port,
    )


def expand_sidecar(parent: ServiceDefinition, pool: PortPool, *, existing_port: int = 0) -> ServiceDefinition:
    """The full sidecar definition to register for ``parent`` (rules 1–4). Pure;
    raises SidecarPortUnavailable."""
    sidecar = sidecar_definition(parent)
    port = sidecar.port or allocate_sidecar_port(pool, existing_port=existing_port)
    sidecar = replace(sidecar, port=port)
    return replace(sidecar, checks=sidecar_checks(sidecar, parent.service_id))


def sidecar_checks(sidecar: ServiceDefinition, parent_id: str) -> tuple[CheckSpec, ...]:
    """Rule 4: the sidecar's own checks plus the alias check (unless it already has
    one on the parent), or the listening TCP check and the alias check. Pure."""
    alias = _spec(f"Connect Sidecar Aliasing {parent_id}", CheckDefinition(alias_service=parent_id))
    if sidecar.checks:
        has_alias = any(c.definition.alias_service == parent_id and not c.definition.alias_node
                        for c in sidecar.checks)
        return sidecar.checks if has_alias else (*sidecar.checks, alias)
    assert sidecar.proxy is not None
    address = sidecar.address or sidecar.proxy.local_service_address
    listening = _spec(LISTENING_CHECK_NAME, CheckDefinition(tcp=join_host_port(address, sidecar.port),
                                                            interval=LISTENING_CHECK_INTERVAL))
    return (listening, alias)


def _spec(name: str, definition: CheckDefinition) -> CheckSpec:
    definition = replace(definition, h2ping_use_tls=False)  # as decode_check leaves non-h2ping checks
    return CheckSpec(name=name, type=detect_check_type(definition), definition=definition)
