"""The values a service or check definition decodes to, and what follows from them (pure).

Owns ``ServiceDefinition`` and ``CheckSpec`` (decoded and validated, before agent
defaults are filled), ``Registration`` (what one registration writes), and the two
facts read off a check definition: its type (``detect_check_type``) and how long it
may stay critical before its service is reaped (``deregister_after``).

Rules:
1. Values are frozen; nothing here decodes or validates (``decode.py``, ``validate.py``).
2. A definition keeps what was given. Consul's clamps (``MIN_CHECK_INTERVAL``,
   ``MIN_DEREGISTER_AFTER``) apply where they act, not when a value is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trellis.catalog.model import (
    Check,
    CheckDefinition,
    CheckStatus,
    CheckType,
    Connect,
    Proxy,
    Service,
    ServiceAddress,
    ServiceKind,
    Weights,
)

MIN_CHECK_INTERVAL = 1.0  # seconds; Consul's runners raise shorter intervals to this
MIN_DEREGISTER_AFTER = 60.0  # seconds; Consul's reaper raises shorter values to this


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One decoded, validated check definition (before IDs and defaults are filled).

    ``check_id`` is ``CheckID`` inside a service, ``ID`` on /v1/agent/check/register;
    ``status`` is ``""`` (not given: checks start critical) or a CheckStatus value;
    ``service_id`` and ``token`` come only from standalone checks.
    """

    check_id: str = ""
    name: str = ""
    notes: str = ""
    status: str = ""
    service_id: str = ""
    token: str = ""
    type: CheckType = CheckType.NONE
    definition: CheckDefinition = CheckDefinition()

    @property
    def initial_status(self) -> CheckStatus:
        return CheckStatus(self.status) if self.status else CheckStatus.CRITICAL


@dataclass(frozen=True, slots=True)
class ServiceDefinition:
    """A decoded, validated service definition (Consul's ``structs.ServiceDefinition``).

    ``checks`` holds ``Check`` then ``Checks``; ``connect`` carries ``native`` and the
    raw ``gateway`` object; ``sidecar_service`` is the nested definition (validated
    as a sidecar: it has no ID and usually no name). ``namespace`` ``""`` means the
    default one.
    """

    name: str = ""
    id: str = ""
    kind: ServiceKind = ServiceKind.TYPICAL
    namespace: str = ""
    tags: tuple[str, ...] = ()
    address: str = ""
    tagged_addresses: dict[str, ServiceAddress] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    port: int = 0
    socket_path: str = ""
    weights: Weights | None = None
    enable_tag_override: bool = False
    proxy: Proxy | None = None
    connect: Connect = Connect()
    sidecar_service: ServiceDefinition | None = None
    checks: tuple[CheckSpec, ...] = ()
    locality: dict[str, str] | None = None
    token: str = ""

    @property
    def service_id(self) -> str:
        return self.id or self.name


@dataclass(frozen=True, slots=True)
class Registration:
    """What one registration writes: the service, its checks, and its sidecar's."""

    service: Service
    checks: tuple[Check, ...] = ()
    sidecar: Registration | None = None


def detect_check_type(d: CheckDefinition) -> CheckType:
    """Consul's ``CheckType.Type()``: grpc → http → ttl → tcp → udp → alias → docker →
    script → h2ping → os_service; runner types need an interval. Pure."""
    runs = d.interval > 0
    if d.grpc and runs:
        return CheckType.GRPC
    if d.http and runs:
        return CheckType.HTTP
    if d.ttl > 0:
        return CheckType.TTL
    if d.tcp and runs:
        return CheckType.TCP
    if d.udp and runs:
        return CheckType.UDP
    if d.alias_node or d.alias_service:
        return CheckType.ALIAS
    if d.args and d.docker_container_id and runs:
        return CheckType.DOCKER
    if d.args:
        return CheckType.SCRIPT
    if d.h2ping and runs:
        return CheckType.H2PING
    if d.os_service and runs:
        return CheckType.OS_SERVICE
    return CheckType.NONE


def deregister_after(definition: CheckDefinition) -> float:
    """Seconds a check may stay critical before its service is reaped; 0 = never.

    Consul keeps the configured value in the definition but its reaper raises
    anything below one minute to one minute (agent.go ``addCheck``).
    """
    value = definition.deregister_critical_service_after
    return max(value, MIN_DEREGISTER_AFTER) if value > 0 else 0.0
