"""Agent configuration model: the frozen dataclasses a config becomes.

Owns ``AgentConfig`` (the resolved configuration, every default applied), its
sections (``Ports``, ``Addresses``, ``DNSConfig``, ``SOAConfig``, ``ConnectConfig``,
``ACLConfig``), ``ConfigFragment`` (what one source sets) and ``InvalidConfig``.
No decoding or merging here: see ``agent_schema`` and ``agent_config``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trellis.catalog.definition import CheckSpec, ServiceDefinition
from trellis.catalog.sidecar import PortPool
from trellis.errors import InvalidInput


class InvalidConfig(InvalidInput):
    """An agent configuration that cannot be used; the message names the file."""

    def __init__(self, filename: str, detail: str, *, key: str = "", value: Any = None) -> None:
        self.filename = filename
        self.key = key
        super().__init__(key, value, detail, message=f"{filename}: {detail}" if filename else detail)


# =========================================================================== resolved config


@dataclass(frozen=True, slots=True)
class Ports:
    """``ports {}``; -1 disables a listener."""

    http: int = 8500
    https: int = -1
    dns: int = 8600
    grpc: int = -1  # Consul: off unless set; `agent -dev` sets 8502
    grpc_tls: int = -1
    server: int = 8300
    serf_lan: int = 8301
    serf_wan: int = 8302
    sidecar_min_port: int = 21000
    sidecar_max_port: int = 21255
    expose_min_port: int = 21500
    expose_max_port: int = 21755

    def sidecar_pool(self, used: frozenset[int] = frozenset()) -> PortPool:
        return PortPool(self.sidecar_min_port, self.sidecar_max_port, used)


@dataclass(frozen=True, slots=True)
class Addresses:
    """``addresses {}``: per-listener bind addresses; ``""`` means ``client_addr``."""

    http: str = ""
    https: str = ""
    dns: str = ""
    grpc: str = ""
    grpc_tls: str = ""


@dataclass(frozen=True, slots=True)
class SOAConfig:
    """``dns_config.soa`` (seconds)."""

    min_ttl: int = 0
    refresh: int = 3600
    retry: int = 600
    expire: int = 86400


@dataclass(frozen=True, slots=True)
class DNSConfig:
    """``dns_config {}`` (durations in seconds); defaults from reference/consul-connect.md §4.6."""

    allow_stale: bool = True
    max_stale: float = 87600 * 3600.0
    node_ttl: float = 0.0
    service_ttl: dict[str, float] = field(default_factory=dict)
    udp_answer_limit: int = 3
    a_record_limit: int = 0
    only_passing: bool = False
    enable_truncate: bool = False
    enable_additional_node_meta_txt: bool = True
    soa: SOAConfig = SOAConfig()
    disable_compression: bool = False
    recursor_timeout: float = 2.0
    recursor_strategy: str = "sequential"
    use_cache: bool = False
    cache_max_age: float = 0.0


@dataclass(frozen=True, slots=True)
class ConnectConfig:
    """``connect {}``; ``ca_config`` keeps the file's keys (the CA translates them)."""

    enabled: bool = True
    ca_provider: str = "consul"
    ca_config: dict[str, Any] = field(default_factory=dict)
    leaf_renew_after: float = 0.6  # renew leaves at a random point of this window of their lifetime
    leaf_renew_before: float = 0.9
    root_change_jitter: float = 30.0  # seconds: a root change re-issues leaves spread over this
    root_prune_interval: float = 3600.0  # seconds between looks for rotated-out roots to drop


@dataclass(frozen=True, slots=True)
class ACLConfig:
    """``acl {}``: stored now, enforced by the ACL work."""

    enabled: bool = False
    default_policy: str = "allow"
    down_policy: str = "extend-cache"
    enable_token_persistence: bool = False
    enable_token_replication: bool = False
    token_ttl: float = 30.0
    policy_ttl: float = 30.0
    role_ttl: float = 30.0
    tokens: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """The agent's resolved configuration (every default applied)."""

    node_name: str = ""  # "" = the host name, decided by the agent
    node_id: str = ""
    datacenter: str = "dc1"
    primary_datacenter: str = ""
    data_dir: str = ""
    server: bool = False
    bootstrap: bool = False
    bootstrap_expect: int = 0
    client_addr: str = "127.0.0.1"
    bind_addr: str = "0.0.0.0"
    advertise_addr: str = ""
    domain: str = "consul."
    log_level: str = "info"
    log_json: bool = False
    ports: Ports = Ports()
    addresses: Addresses = Addresses()
    dns_config: DNSConfig = DNSConfig()
    enable_script_checks: bool = False
    enable_local_script_checks: bool = False
    enable_central_service_config: bool = True
    default_intention_policy: str = ""  # "" = follow acl.default_policy
    connect: ConnectConfig = ConnectConfig()
    acl: ACLConfig = ACLConfig()
    node_meta: dict[str, str] = field(default_factory=dict)
    recursors: tuple[str, ...] = ()
    retry_join: tuple[str, ...] = ()
    ui: bool = False
    services: tuple[ServiceDefinition, ...] = ()
    checks: tuple[CheckSpec, ...] = ()
    config_entries_bootstrap: tuple[dict[str, Any], ...] = ()
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConfigFragment:
    """What one source (a file, ``-hcl``, the flags, ``-dev`` defaults) sets (rule 1)."""

    source: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    services: tuple[ServiceDefinition, ...] = ()
    checks: tuple[CheckSpec, ...] = ()
    config_entries_bootstrap: tuple[dict[str, Any], ...] = ()
    sources: tuple[str, ...] = ()
