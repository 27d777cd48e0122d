"""What the snapshot and the proxy config say about each Envoy resource (pure).

Rules (reference/envoy-xds.md §2.4-2.6, §2.12; DESIGN):
1. An upstream is served (gets a listener, a cluster and endpoints) unless the snapshot
   refuses it (``error``: another datacenter, a prepared query), it has no
   ``local_bind_port``, its bind address is not an IP literal (Envoy NACKs a hostname),
   or its address:port overlaps the public listener or an upstream listed before it
   (``0.0.0.0``/``::`` overlap every address on the same port): the same refusals as the
   built-in proxy (proxy/plan.py rule 3), so both data planes serve the same upstreams.
   ``select_upstreams`` says why each refused one is refused, for the shell to log.
2. http, http2 and grpc are the HTTP-like protocols; anything else is served as tcp.
3. Timeouts: ``connect_timeout_ms`` (upstream) and ``local_connect_timeout_ms`` default to
   Envoy's 5000 ms, as in Consul (the built-in proxy has its own defaults).
4. Proxy-config maps are read the way Consul's mapstructure reads them: keys compare
   case-insensitively; numbers may be given as numeric strings; durations as Go text or
   nanoseconds. A value of the wrong type or out of range is left out, so Envoy's
   default applies (proxy/plan.py reports such values as warnings for the operator).
5. ``limits`` -> circuit-breaker thresholds with only the given values
   (``max_concurrent_requests`` is Envoy's ``max_requests``); none given, none sent.
   ``passive_health_check`` -> outlier detection (``max_failures`` is
   ``consecutive_5xx``); an absent block leaves every field to Envoy.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trellis.config.duration import decode_duration
from trellis.errors import TrellisError
from trellis.proxycfg.model import ConnectProxySnapshot, UpstreamSnapshot

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
    """Rule 1: the upstreams that are served, in the snapshot's order, and the refused ones."""
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


def lookup(config: Mapping[str, Any] | None, key: str) -> Any:
    """Rule 4: ``config[key]`` with the key compared case-insensitively, or None."""
    if not isinstance(config, Mapping):
        return None
    if key in config:
        return config[key]
    wanted = key.lower()
    return next((v for k, v in config.items() if isinstance(k, str) and k.lower() == wanted), None)


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
    return count(lookup(config, key), minimum=1, maximum=_MAX_TIMEOUT_MS)


def upstream_limits(up: UpstreamSnapshot) -> Limits:
    """Rule 5 for ``limits``."""
    block = lookup(up.config, "limits")
    return Limits(
        max_connections=count(lookup(block, "max_connections")),
        max_pending_requests=count(lookup(block, "max_pending_requests")),
        max_requests=count(lookup(block, "max_concurrent_requests")),
    )


def outlier_detection(up: UpstreamSnapshot) -> OutlierDetection:
    """Rule 5 for ``passive_health_check``."""
    block = lookup(up.config, "passive_health_check")
    if not isinstance(block, Mapping):
        return OutlierDetection()
    failures = count(lookup(block, "max_failures"), minimum=1)
    return OutlierDetection(
        interval_ms=millis(lookup(block, "interval")),
        consecutive_5xx=failures,
        enforcing_consecutive_5xx=count(lookup(block, "enforcing_consecutive_5xx"), maximum=100),
        max_ejection_percent=count(lookup(block, "max_ejection_percent"), maximum=100),
        base_ejection_time_ms=millis(lookup(block, "base_ejection_time")),
    )
