"""The listener plan: what the built-in proxy listens on and how, from one snapshot (pure).

    ConnectProxySnapshot ─▶ build_plan ─▶ ListenerPlan
                                           public: PublicSpec (bind, local app, timeouts)
                                           upstreams: one UpstreamSpec per servable upstream
                                           refused: the upstreams that are not served, and why
                                           warnings: config values that were ignored
                                           settings: proxy-wide knobs (drain, close-on-deny, metrics)
    (old plan, new plan) ─▶ diff_plans ─▶ listeners to start, stop and update in place

Rules:
1. Every knob comes from ``Proxy.Config`` (proxy-wide) or the upstream's ``Config``
   (that upstream only; it wins over the proxy-wide value). ``CONFIG_KEYS`` is the
   table of keys and defaults; docs/proxy.md lists the same table.
2. A value of the wrong type or out of range is ignored with a warning and the
   default applies: a typo never stops the proxy (issue 5: "keeps serving everyone else").
3. An upstream is refused, with a message naming it, when the snapshot says so
   (``error``: another datacenter, a prepared query), when it has no bind port, or when
   its bind address:port overlaps the public listener or an upstream listed before it
   (``0.0.0.0``/``::`` overlap every address on the same port).
4. Times in specs are float seconds; the keys are milliseconds (Consul's names).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from trellis.config.duration import decode_duration
from trellis.errors import TrellisError
from trellis.proxycfg.model import ConnectProxySnapshot, Endpoint, UpstreamSnapshot

WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", ""})
MAX_EJECTION_TIME = 300.0  # Envoy's outlier_detection max_ejection_time default


class Policy(enum.StrEnum):
    """How an upstream picks an endpoint for a new connection (key ``balancer``)."""

    ROUND_ROBIN = "round_robin"
    LEAST_CONN = "least_conn"


# Rule 1: (key, where it is read, default, meaning). docs/proxy.md carries the same table.
CONFIG_KEYS: tuple[tuple[str, str, str, str], ...] = (
    ("bind_address", "Proxy.Config", "the proxy service's Address, else 0.0.0.0",
     "public listener address (applied by the agent when it builds the snapshot)"),
    ("bind_port", "Proxy.Config", "the proxy service's Port", "public listener port (idem)"),
    ("local_connect_timeout_ms", "Proxy.Config", "1000", "connect timeout to the local service"),
    ("handshake_timeout_ms", "Proxy.Config", "10000",
     "inbound: first byte + TLS handshake; also bounds a plaintext /health request"),
    ("connect_timeout_ms", "upstream Config", "10000", "per attempt: TCP connect + TLS handshake to one instance"),
    ("balancer", "upstream Config, else Proxy.Config", "round_robin", "round_robin | least_conn"),
    ("passive_health_check.max_failures", "upstream Config", "5",
     "consecutive connect failures that eject an instance"),
    ("passive_health_check.base_ejection_time", "upstream Config", "30s",
     "first ejection; the n-th in a row lasts n times as long, at most 300s"),
    ("close_denied_connections", "Proxy.Config", "true",
     "close open inbound connections that changed intentions now deny"),
    ("drain_timeout_ms", "Proxy.Config", "10000", "on stop: how long open connections may take to finish"),
    ("envoy_prometheus_bind_addr", "Proxy.Config", '"" (off)',
     "host:port serving /metrics (the -metrics-addr argument wins)"),
)

DEFAULT_LOCAL_CONNECT_MS = 1000
DEFAULT_HANDSHAKE_MS = 10000
DEFAULT_CONNECT_MS = 10000
DEFAULT_MAX_FAILURES = 5
DEFAULT_BASE_EJECTION = 30.0
DEFAULT_DRAIN_MS = 10000


class PlanError(TrellisError):
    """The snapshot cannot be served at all (no public port, no local service)."""


@dataclass(frozen=True, slots=True)
class Ejection:
    """Passive health: eject after ``max_failures`` consecutive connect failures."""

    max_failures: int = DEFAULT_MAX_FAILURES
    base_time: float = DEFAULT_BASE_EJECTION
    max_time: float = MAX_EJECTION_TIME


@dataclass(frozen=True, slots=True)
class PublicSpec:
    bind_address: str
    bind_port: int
    local_service_address: str
    local_service_port: int
    local_connect_timeout: float
    handshake_timeout: float

    @property
    def key(self) -> str:
        return _key(self.bind_address, self.bind_port)


@dataclass(frozen=True, slots=True)
class UpstreamSpec:
    destination: str
    namespace: str
    bind_address: str
    bind_port: int
    sni: str
    spiffe_id: str
    connect_timeout: float
    policy: Policy
    ejection: Ejection
    endpoints: tuple[Endpoint, ...]  # all of them, with their health (balance.py filters)

    @property
    def key(self) -> str:
        return _key(self.bind_address, self.bind_port)


@dataclass(frozen=True, slots=True)
class Refused:
    destination: str
    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class Settings:
    close_denied_connections: bool = True
    drain_timeout: float = DEFAULT_DRAIN_MS / 1000
    metrics_addr: str = ""


@dataclass(frozen=True, slots=True)
class ListenerPlan:
    public: PublicSpec
    upstreams: tuple[UpstreamSpec, ...] = ()
    refused: tuple[Refused, ...] = ()
    warnings: tuple[str, ...] = ()
    settings: Settings = field(default_factory=Settings)

    def upstream(self, key: str) -> UpstreamSpec | None:
        return next((u for u in self.upstreams if u.key == key), None)


@dataclass(frozen=True, slots=True)
class PlanChange:
    """What to do to the running listeners to go from one plan to the next."""

    rebind_public: bool
    start: tuple[UpstreamSpec, ...] = ()
    stop: tuple[str, ...] = ()  # keys
    update: tuple[UpstreamSpec, ...] = ()  # same key, something else changed


def _key(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


class _Config:
    """Reads typed knobs from a config map, noting every ignored value (rule 2)."""

    def __init__(self, where: str, values: dict[str, Any], warnings: list[str]) -> None:
        self.where = where
        self.values = values
        self.warnings = warnings

    def _bad(self, key: str, value: Any, expected: str) -> None:
        self.warnings.append(f"{self.where}: ignoring {key} = {value!r}: expected {expected}")

    def millis(self, key: str, default: int) -> float:
        value = self.values.get(key)
        if value is None or value == "" or value == 0:
            return default / 1000
        number = _number(value)
        if number is None or number <= 0:
            self._bad(key, value, "a positive number of milliseconds")
            return default / 1000
        return number / 1000

    def flag(self, key: str, default: bool) -> bool:
        value = self.values.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self._bad(key, value, "true or false")
        return default

    def text(self, key: str) -> str:
        value = self.values.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            self._bad(key, value, "a string")
            return ""
        return value.strip()

    def policy(self, fallback: Policy) -> Policy:
        value = self.values.get("balancer")
        if value is None or value == "":
            return fallback
        try:
            return Policy(str(value).lower())
        except ValueError:
            self._bad("balancer", value, " or ".join(p.value for p in Policy))
            return fallback


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def build_plan(snapshot: ConnectProxySnapshot) -> ListenerPlan:
    """The listeners ``snapshot`` asks for (rules 1-4). Pure; raises PlanError when the
    public listener cannot be built (no bind port or no local service port)."""
    warnings: list[str] = []
    proxy_cfg = _Config("Proxy.Config", snapshot.config or {}, warnings)
    public = _public(snapshot, proxy_cfg)
    proxy_policy = proxy_cfg.policy(Policy.ROUND_ROBIN)
    settings = Settings(
        close_denied_connections=proxy_cfg.flag("close_denied_connections", True),
        drain_timeout=proxy_cfg.millis("drain_timeout_ms", DEFAULT_DRAIN_MS),
        metrics_addr=proxy_cfg.text("envoy_prometheus_bind_addr"),
    )
    taken: list[tuple[str, int, str]] = [(public.bind_address, public.bind_port, "the public listener")]
    served: list[UpstreamSpec] = []
    refused: list[Refused] = []
    for up in snapshot.upstreams:
        reason = _refusal(up, taken)
        if reason:
            refused.append(Refused(up.destination_name, up.key, reason))
            continue
        taken.append((up.local_bind_address, up.local_bind_port, f"upstream {up.destination_name}"))
        served.append(_upstream(up, proxy_policy, warnings))
    return ListenerPlan(public=public, upstreams=tuple(served), refused=tuple(refused),
                        warnings=tuple(warnings), settings=settings)


def _public(snapshot: ConnectProxySnapshot, cfg: _Config) -> PublicSpec:
    p = snapshot.public
    if p.bind_port <= 0:
        raise PlanError(f"proxy {snapshot.proxy_id} has no public port (set the registration's Port or bind_port)")
    if p.local_service_port <= 0:
        raise PlanError(f"proxy {snapshot.proxy_id} has no local service port "
                        f"(LocalServicePort of the registration, or the service's Port)")
    local_ms = p.local_connect_timeout_ms or DEFAULT_LOCAL_CONNECT_MS
    return PublicSpec(
        bind_address=p.bind_address or "0.0.0.0", bind_port=p.bind_port,
        local_service_address=p.local_service_address or "127.0.0.1", local_service_port=p.local_service_port,
        local_connect_timeout=local_ms / 1000, handshake_timeout=cfg.millis("handshake_timeout_ms", DEFAULT_HANDSHAKE_MS),
    )


def _refusal(up: UpstreamSnapshot, taken: list[tuple[str, int, str]]) -> str:
    """Rule 3: why ``up`` cannot be served, or ``""``."""
    if up.error:
        return up.error
    if up.local_bind_port <= 0:
        return f"upstream {up.destination_name} has no local_bind_port (unix sockets are not supported)"
    for address, port, owner in taken:
        if port == up.local_bind_port and _overlap(address, up.local_bind_address):
            return (f"upstream {up.destination_name}: {up.key} clashes with {owner} "
                    f"on {_key(address, port)}")
    return ""


def _overlap(a: str, b: str) -> bool:
    return a == b or a in WILDCARD_ADDRESSES or b in WILDCARD_ADDRESSES


def _upstream(up: UpstreamSnapshot, proxy_policy: Policy, warnings: list[str]) -> UpstreamSpec:
    cfg = _Config(f"upstream {up.destination_name}", up.config or {}, warnings)
    connect_ms = up.connect_timeout_ms or DEFAULT_CONNECT_MS
    return UpstreamSpec(
        destination=up.destination_name, namespace=up.destination_namespace, bind_address=up.local_bind_address,
        bind_port=up.local_bind_port, sni=up.sni, spiffe_id=up.spiffe_id, connect_timeout=connect_ms / 1000,
        policy=cfg.policy(proxy_policy), ejection=_ejection(cfg), endpoints=up.endpoints,
    )


def _ejection(cfg: _Config) -> Ejection:
    phc = cfg.values.get("passive_health_check")
    if phc is None:
        return Ejection()
    if not isinstance(phc, dict):
        cfg._bad("passive_health_check", phc, "an object")
        return Ejection()
    max_failures = DEFAULT_MAX_FAILURES
    raw = phc.get("max_failures")
    if raw is not None:
        number = _number(raw)
        if number is None or number < 1 or number != int(number):
            cfg._bad("passive_health_check.max_failures", raw, "a whole number of at least 1")
        else:
            max_failures = int(number)
    base = DEFAULT_BASE_EJECTION
    raw = phc.get("base_ejection_time")
    if raw is not None:
        try:
            base = decode_duration(raw)
        except TrellisError:
            base = -1
        if base <= 0:
            cfg._bad("passive_health_check.base_ejection_time", raw, 'a positive duration such as "30s"')
            base = DEFAULT_BASE_EJECTION
    return Ejection(max_failures=max_failures, base_time=base, max_time=max(MAX_EJECTION_TIME, base))


def diff_plans(old: ListenerPlan | None, new: ListenerPlan) -> PlanChange:
    """The listener changes from ``old`` (None: nothing runs yet) to ``new``. Pure."""
    if old is None:
        return PlanChange(rebind_public=True, start=new.upstreams)
    before = {u.key: u for u in old.upstreams}
    after = {u.key: u for u in new.upstreams}
    return PlanChange(
        rebind_public=old.public.key != new.public.key,
        start=tuple(u for k, u in after.items() if k not in before),
        stop=tuple(k for k in before if k not in after),
        update=tuple(u for k, u in after.items() if k in before and before[k] != u),
    )
