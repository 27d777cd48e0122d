"""What the snapshot and the proxy config say about each Envoy resource (pure).

Rules (reference/envoy-xds.md §2.4-2.6, §2.12; DESIGN):
1. An upstream is served (gets a listener, a cluster and endpoints) unless the snapshot
   refuses it (``error``: another datacenter, a prepared query), it has no
   ``local_bind_port``, its bind address is not an IP literal (Envoy NACKs a hostname),
   or its address:port overlaps the public listener or an upstream listed before it
   (``0.0.0.0``/``::`` overlap every address on the same port): the same refusals as the
   built-in proxy (proxy/plan.py rule 3), so both data planes serve the same upstreams.
   ``select_upstreams`` says why each refused one is refused (problems.py reports it).
2. http, http2 and grpc are the HTTP-like protocols; anything else is served as tcp.
3. Timeouts: ``connect_timeout_ms`` (upstream) and ``local_connect_timeout_ms`` default to
   Envoy's 5000 ms, as in Consul (the built-in proxy has its own defaults).
4. Proxy-config maps are read the way Consul's mapstructure reads them: keys compare
   case-insensitively; numbers may be given as numeric strings; durations as Go text or
   nanoseconds. A value of the wrong type or out of range is left out, so Envoy's
   default applies (problems.py names each such value, as proxy/plan.py's warnings do
   for the built-in proxy).
5. ``limits`` -> circuit-breaker thresholds with only the given values
   (``max_concurrent_requests`` is Envoy's ``max_requests``); none given, none sent.
   ``passive_health_check`` -> outlier detection (``max_failures`` is
   ``consecutive_5xx``); an absent block leaves every field to Envoy.
6. The tables ``LIMITS``, ``OUTLIER`` and ``ROUTE_TIMEOUTS`` are the only place a knob's
   key, reader, expected shape and Envoy default are written: the translation reads
   ``limits`` and ``passive_health_check`` through them (``read_block``) and the route
   timeouts with their reader (``timeout_ms``); problems.py names the values they leave out.
7. The public listener is built unless ``public_refusal`` says why not: the local
   service has no port, the public port is not a port, or the public address is not an
   IP literal (Envoy would reject the listener).
8. A terminating gateway's linked service is served (a filter chain and a cluster) once
   it has a leaf and the snapshot has roots (``served_linked``); its listeners are the
   binds whose address is an IP literal, served linked service or not. A served
   linked service answers on its SNI and on each of its resolver's subsets' SNIs
   (``linked_snis``), each sent to its own cluster; its plain SNI goes to the default
   subset's cluster when the resolver names one.
9. ``envoy_dns_discovery_type`` (the gateway's Proxy.Config, Consul's key) picks how a
   linked service's cluster with host-name instances resolves them: ``STRICT_DNS``
   (every address of every instance, the default) or ``LOGICAL_DNS`` (one instance, the
   first address per connection), in any case; another value is left out.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from trellis.config.duration import decode_duration
from trellis.errors import TrellisError
from trellis.proxycfg.keys import lookup  # rule 4: one case-insensitive reader for every Proxy.Config key
from trellis.proxycfg.model import INGRESS_GATEWAY, ConnectProxySnapshot, LinkedServiceSnapshot, UpstreamSnapshot

HTTP_LIKE = frozenset({"http", "http2", "grpc"})
HTTP2_LIKE = frozenset({"http2", "grpc"})
DEFAULT_CONNECT_TIMEOUT_MS = 5000
WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::"})
_UINT32_MAX = 2**32 - 1
_MAX_TIMEOUT_MS = 315_576_000_000_000  # protobuf Duration's 10,000 years


@dataclass(frozen=True, slots=True)
class Refusal:
    upstream: UpstreamSnapshot
    reason: str


@dataclass(frozen=True, slots=True)
class Limits:
    """Rule 5: circuit-breaker thresholds; None means Envoy's default."""

    max_connections: int | None = None
    max_pending_requests: int | None = None
    max_requests: int | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.max_connections, self.max_pending_requests, self.max_requests))


@dataclass(frozen=True, slots=True)
class OutlierDetection:
    """Rule 5: Consul's ``passive_health_check``; durations in milliseconds; None: Envoy's default."""

    interval_ms: int | None = None
    consecutive_5xx: int | None = None
    enforcing_consecutive_5xx: int | None = None
    max_ejection_percent: int | None = None
    base_ejection_time_ms: int | None = None


def is_http(protocol: str) -> bool:
    """Rule 2."""
    return protocol in HTTP_LIKE


def is_http2(protocol: str) -> bool:
    return protocol in HTTP2_LIKE


@functools.lru_cache(maxsize=65536)  # on every endpoint of every translation
def is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def select_upstreams(snapshot: ConnectProxySnapshot) -> tuple[tuple[UpstreamSnapshot, ...], tuple[Refusal, ...]]:
    """Rule 1: the upstreams that are served, in the snapshot's order, and the refused ones.
    An ingress gateway's upstreams are its listeners' services, which share their
    listener's port on purpose: only the snapshot's own refusals apply to them."""
    if snapshot.kind == INGRESS_GATEWAY:
        return (tuple(u for u in snapshot.upstreams if not u.error),
                tuple(Refusal(u, u.error) for u in snapshot.upstreams if u.error))
    taken = [(snapshot.public.bind_address, snapshot.public.bind_port, "the public listener")]
    served: list[UpstreamSnapshot] = []
    refused: list[Refusal] = []
    for up in snapshot.upstreams:
        reason = _refusal(up, taken)
        if reason:
            refused.append(Refusal(up, reason))
            continue
        taken.append((up.local_bind_address, up.local_bind_port, f"upstream {up.destination_name}"))
        served.append(up)
    return tuple(served), tuple(refused)


def served_upstreams(snapshot: ConnectProxySnapshot) -> tuple[UpstreamSnapshot, ...]:
    return select_upstreams(snapshot)[0]


def _refusal(up: UpstreamSnapshot, taken: list[tuple[str, int, str]]) -> str:
    if up.error:
        return up.error
    if up.local_bind_port <= 0:
        return f"upstream {up.destination_name} has no local_bind_port (unix sockets are not supported)"
    if not is_ip(up.local_bind_address):
        return f"upstream {up.destination_name}: local_bind_address {up.local_bind_address!r} is not an IP address"
    for address, port, owner in taken:
        if port == up.local_bind_port and _overlap(address, up.local_bind_address):
            return f"upstream {up.destination_name}: {up.key} clashes with {owner} on {address}:{port}"
    return ""


def _overlap(a: str, b: str) -> bool:
    return a == b or a in WILDCARD_ADDRESSES or b in WILDCARD_ADDRESSES


def connect_timeout_ms(given: int) -> int:
    """Rule 3."""
    return given if given > 0 else DEFAULT_CONNECT_TIMEOUT_MS


def count(value: Any, *, minimum: int = 0, maximum: int = _UINT32_MAX) -> int | None:
    """Rule 4: a whole number within bounds (``"10"`` too), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or value != int(value):
        return None
    number = int(value)
    return number if minimum <= number <= maximum else None


def millis(value: Any) -> int | None:
    """Rule 4: a positive duration (Go text or nanoseconds) in whole milliseconds, else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        seconds = decode_duration(value)
    except TrellisError:
        return None
    ms = round(seconds * 1000)
    return ms if ms > 0 else None


def timeout_ms(config: Mapping[str, Any] | None, key: str) -> int | None:
    """A ``*_ms`` knob (``local_request_timeout_ms``...): a positive number of milliseconds, else None."""
    return _positive_ms(lookup(config, key))


_positive_ms = functools.partial(count, minimum=1, maximum=_MAX_TIMEOUT_MS)
_percent = functools.partial(count, maximum=100)
_at_least_one = functools.partial(count, minimum=1)


@dataclass(frozen=True, slots=True)
class Knob:
    """Rule 6: one proxy-config value Envoy gets: its key (in ``block``, an object of the
    config, or at the top when ``block`` is empty), how it is read (None: absent or
    malformed, Envoy's default applies), what a good value looks like, and that default."""

    block: str
    name: str
    read: Callable[[Any], int | None]
    expected: str
    default: str

    @property
    def key(self) -> str:
        return f"{self.block}.{self.name}" if self.block else self.name

    def given(self, config: Mapping[str, Any] | None) -> Any:
        """The raw value (keys compared case-insensitively), or None."""
        return lookup(lookup(config, self.block) if self.block else config, self.name)


_WHOLE = "a whole number from 0 to 4294967295"
_PERCENT = "a whole number from 0 to 100"
_MS = "a positive whole number of milliseconds"
LIMITS_BLOCK, OUTLIER_BLOCK = "limits", "passive_health_check"

# Rule 6: (field of Limits / OutlierDetection, knob); the defaults are Envoy's.
LIMITS: tuple[tuple[str, Knob], ...] = (
    ("max_connections", Knob(LIMITS_BLOCK, "max_connections", count, _WHOLE, "1024")),
    ("max_pending_requests", Knob(LIMITS_BLOCK, "max_pending_requests", count, _WHOLE, "1024")),
    ("max_requests", Knob(LIMITS_BLOCK, "max_concurrent_requests", count, _WHOLE, "1024")),
)
OUTLIER: tuple[tuple[str, Knob], ...] = (
    ("interval_ms", Knob(OUTLIER_BLOCK, "interval", millis, 'a positive duration such as "10s"', "10s")),
    ("consecutive_5xx", Knob(OUTLIER_BLOCK, "max_failures", _at_least_one, "a whole number of at least 1", "5")),
    ("enforcing_consecutive_5xx", Knob(OUTLIER_BLOCK, "enforcing_consecutive_5xx", _percent, _PERCENT, "100")),
    ("max_ejection_percent", Knob(OUTLIER_BLOCK, "max_ejection_percent", _percent, _PERCENT, "10")),
    ("base_ejection_time_ms", Knob(OUTLIER_BLOCK, "base_ejection_time", millis, 'a positive duration such as "30s"',
                                   "30s")),
)
# Proxy.Config knobs of the public listener (listeners.py rule 8): service-defaults'
# MaxInboundConnections arrives here as max_inbound_connections (proxycfg build.py rule 12).
INBOUND_LIMIT = Knob("", "max_inbound_connections", _at_least_one, "a whole number of at least 1", "no limit")
EXACT_BALANCE = "exact_balance"  # the one balance_*_connections value Consul accepts
# Escape hatches: Envoy resources given whole in Proxy.Config (or an upstream's Config). trellis
# does not splice user JSON into what it generates; they are reported, never silently dropped.
ESCAPE_HATCHES = ("envoy_public_listener_json", "envoy_local_cluster_json", "envoy_listener_tracing_json")
UPSTREAM_ESCAPE_HATCHES = ("envoy_listener_json", "envoy_cluster_json")


def balanced(config: Mapping[str, Any] | None, key: str) -> bool:
    """``balance_inbound_connections`` / ``balance_outbound_connections`` = exact_balance."""
    given = lookup(config, key)
    return isinstance(given, str) and given.strip().lower() == EXACT_BALANCE


# Proxy.Config knobs of the public HTTP route (listeners.py rule 2).
ROUTE_TIMEOUTS: tuple[Knob, ...] = (
    Knob("", "local_request_timeout_ms", _positive_ms, _MS, "15 s"),
    Knob("", "local_idle_timeout_ms", _positive_ms, _MS, "the connection manager's 5 min stream idle timeout"),
)


def read_block(config: Mapping[str, Any] | None, block: str,
               table: tuple[tuple[str, Knob], ...]) -> dict[str, int | None]:
    """Rule 6: ``{field: value}`` of one block's knobs; ``{}`` when the block is absent or
    not an object (every field is Envoy's default)."""
    found = lookup(config, block) if config else None
    if not isinstance(found, Mapping):
        return {}
    return {name: knob.read(lookup(found, knob.name)) for name, knob in table}


def upstream_limits(up: UpstreamSnapshot) -> Limits:
    """Rule 5 for ``limits``."""
    return Limits(**read_block(up.config, LIMITS_BLOCK, LIMITS))


def outlier_detection(up: UpstreamSnapshot) -> OutlierDetection:
    """Rule 5 for ``passive_health_check``."""
    return OutlierDetection(**read_block(up.config, OUTLIER_BLOCK, OUTLIER))


DNS_DISCOVERY_TYPE = "envoy_dns_discovery_type"
DNS_DISCOVERY_TYPES = ("STRICT_DNS", "LOGICAL_DNS")


def dns_discovery_type(config: Mapping[str, Any] | None) -> str | None:
    """Rule 9: ``STRICT_DNS`` or ``LOGICAL_DNS``; None when absent or malformed (the default applies)."""
    given = lookup(config, DNS_DISCOVERY_TYPE)
    chosen = given.strip().upper() if isinstance(given, str) else None
    return chosen if chosen in DNS_DISCOVERY_TYPES else None


def served_linked(snapshot: ConnectProxySnapshot) -> tuple[LinkedServiceSnapshot, ...]:
    """Rule 8: the terminating gateway's linked services that are served, by SNI."""
    if snapshot.terminating is None or not snapshot.roots:
        return ()
    return tuple(s for s in snapshot.terminating.services if s.leaf is not None)


def linked_snis(ls: LinkedServiceSnapshot) -> tuple[tuple[str, str], ...]:
    """Rule 8: each SNI the gateway answers for ``ls`` and the cluster it sends to."""
    return ((ls.sni, ls.cluster), *((sub.sni, sub.sni) for sub in ls.subsets))


def public_refusal(snapshot: ConnectProxySnapshot) -> str:
    """Rule 7: why the public listener cannot be built, or ``""``."""
    p = snapshot.public
    if p.local_service_port <= 0:
        return ("the local service has no port (the registration's LocalServicePort, else the service's "
                "Port), so there is no local_app cluster")
    if not 0 < p.bind_port <= 65535:
        return f"the public port {p.bind_port} is not a port (set the registration's Port or bind_port)"
    address = p.bind_address or "0.0.0.0"
    if not is_ip(address):
        return (f"the public bind address {address!r} is not an IP address (set Proxy.Config bind_address "
                "to one); Envoy cannot listen on it")
    return ""
