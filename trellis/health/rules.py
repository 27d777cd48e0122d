"""Check status rules (pure): the per-check transition machine and Consul's output formats.

Rules that hold in this module:
1. Nothing here does I/O, reads a clock or draws a random number: ``now`` and the
   stagger fraction are arguments. Functions return new frozen values.
2. ``observe`` is Consul's ``checks.StatusHandler`` followed by ``local.State.UpdateCheck``:
   thresholds decide *which* status is reported; a report equal to what is stored
   (same status and same output) writes nothing.
3. Passing **and warning** probe results count as successes (Consul: ``status ==
   passing || status == warning``); only critical results count as failures.
4. A fresh state has its counters primed at the thresholds, so the first result
   after (re)start is reported at once, as Consul's ``NewStatusHandler`` does.
5. Output formats and truncation notes are Consul's, byte for byte where Consul
   is consistent (agent/checks/check.go): HTTP keeps the *last* ``limit`` bytes of
   the body without a note, scripts keep the last bytes with a ``Captured N of M
   bytes`` header, TTL updates keep the *first* bytes with a ``... (captured N of M
   bytes)`` suffix.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from trellis.catalog.model import Check, CheckDefinition, CheckStatus, CheckType
from trellis.errors import InvalidInput
from trellis.health.model import (
    CheckState,
    ProbeResult,
    ServiceKey,
    Thresholds,
    Transition,
)

DEFAULT_OUTPUT_MAX_SIZE = 4096  # Consul checks.DefaultBufSize
DEFAULT_TIMEOUT = 10.0  # http, tcp, udp, grpc (Consul: dialer/client default)
DEFAULT_SCRIPT_TIMEOUT = 30.0  # Consul CheckMonitor
MIN_INTERVAL = 1.0  # Consul checks.MinInterval
USER_AGENT = "Consul Health Check"
DEFAULT_ACCEPT = "text/plain, text/*, */*"
TTL_EXPIRED = "TTL expired"
SCRIPTS_DISABLED = (
    "Scripts are disabled on this agent; to enable, configure "
    "'enable_script_checks' or 'enable_local_script_checks' to true"
)

_PASSING, _WARNING, _CRITICAL = CheckStatus.PASSING, CheckStatus.WARNING, CheckStatus.CRITICAL


# --- the transition machine ---------------------------------------------------------


def initial_state(status: CheckStatus, output: str, thresholds: Thresholds) -> CheckState:
    """State of a check whose probe has just (re)started; stored status/output as given."""
    return CheckState(status, output, thresholds.success_cap, thresholds.failure_cap)


def observe(
    state: CheckState, result: ProbeResult, thresholds: Thresholds, now: float
) -> Transition:
    """Apply one probe result. Pure.

    Returns the next state and ``write=True`` exactly when the reported
    (status, output) differs from the stored one.
    """
    successes, failures, reported = _count(state, result, thresholds)
    if reported is None:
        return Transition(replace(state, successes=successes, failures=failures), False)
    if reported.status is _CRITICAL:
        since = now if state.critical_since is None else state.critical_since
    else:
        since = None
    new = CheckState(reported.status, reported.output, successes, failures, since)
    return Transition(new, (new.status, new.output) != (state.status, state.output))


def _count(
    state: CheckState, result: ProbeResult, t: Thresholds
) -> tuple[int, int, ProbeResult | None]:
    """Consul ``StatusHandler.updateCheck``: new counters and what to report (or None)."""
    if result.status is not _CRITICAL:
        successes = min(state.successes + 1, t.success_cap)
        if state.successes + 1 >= t.success_before_passing:
            return successes, 0, result
        return successes, 0, None
    failures = min(state.failures + 1, t.failure_cap)
    seen = state.failures + 1
    if seen >= t.failures_before_critical:
        return 0, failures, result
    if seen >= t.failures_before_warning:
        return 0, failures, ProbeResult(_WARNING, result.output)
    return 0, failures, None


def adopt_stored(state: CheckState, status: CheckStatus, output: str) -> CheckState:
    """The store says the check is (status, output): compare future results with that."""
    return replace(state, status=status, output=output)


# --- probe result mapping -----------------------------------------------------------


def status_of_http(code: int) -> CheckStatus:
    """2xx passing, 429 warning (RFC 6585 Too Many Requests), anything else critical."""
    if 200 <= code <= 299:
        return _PASSING
    return _WARNING if code == 429 else _CRITICAL


def status_of_exit(code: int) -> CheckStatus:
    """Nagios convention: exit 0 passing, 1 warning, anything else (or a signal) critical."""
    if code == 0:
        return _PASSING
    return _WARNING if code == 1 else _CRITICAL


# --- output ------------------------------------------------------------------------


def output_limit(definition: CheckDefinition, agent_limit: int = DEFAULT_OUTPUT_MAX_SIZE) -> int:
    """Consul: the agent's ``check_output_max_size``, lowered (never raised) by the check's."""
    limit = agent_limit if agent_limit > 0 else DEFAULT_OUTPUT_MAX_SIZE
    if definition.output_max_size > 0:
        limit = min(limit, definition.output_max_size)
    return limit


def keep_tail(kept: bytes, chunk: bytes, limit: int) -> bytes:
    """A circular buffer of ``limit`` bytes (Consul uses armon/circbuf): the last bytes win."""
    joined = kept + chunk
    return joined[-limit:] if len(joined) > limit else joined


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def format_http_output(method: str, url: str, status: int, reason: str, body_tail: bytes) -> str:
    """``HTTP GET http://x/health: 200 OK Output: <last bytes of the body>``."""
    status_line = f"{status} {reason}".rstrip()
    return f"HTTP {method} {url}: {status_line} Output: {_text(body_tail)}"


def format_script_output(tail: bytes, total: int) -> str:
    """Captured stdout+stderr; when it overflowed, Consul's ``Captured N of M bytes`` header."""
    text = _text(tail)
    if total > len(tail):
        return f"Captured {len(tail)} of {total} bytes\n...\n{text}"
    return text


def format_script_timeout(timeout: float, output: str) -> str:
    message = f"Timed out ({format_duration(timeout)}) running check"
    return f"{message}\n\n{output}" if output else message


def cap_ttl_output(output: str, limit: int) -> str:
    """Consul ``CheckTTL.SetStatus``: keep the first ``limit`` bytes and say how many were cut."""
    data = output.encode("utf-8")
    if len(data) <= limit:
        return output
    head = data[:limit].decode("utf-8", errors="ignore")
    return f"{head} ... (captured {limit} of {len(data)} bytes)"


def ttl_expired_output(last_output: str) -> str:
    """Consul ``CheckTTL.getExpiredOutput``: keeps the last update's output, if any."""
    if not last_output:
        return TTL_EXPIRED
    return f"{TTL_EXPIRED} (last output before timeout follows): {last_output}"


def format_connect_output(kind: str, address: str) -> str:
    """``TCP connect 127.0.0.1:80: Success`` (kind is TCP, TCP+TLS or UDP)."""
    return f"{kind} connect {address}: Success"


def format_grpc_output(target: str) -> str:
    return f"gRPC check {target}: success"


def format_grpc_not_serving(target: str, status_name: str) -> str:
    return f"gRPC {target} serving status: {status_name}"


def format_grpc_error(code_name: str, details: str) -> str:
    """Go's ``rpc error: code = Unavailable desc = ...`` from a Python ``StatusCode`` name."""
    camel = "".join(part.capitalize() for part in code_name.split("_"))
    return f"rpc error: code = {camel} desc = {details}"


def format_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()``: ``30s``, ``1m0s``, ``1.5s``, ``100ms``."""
    ns = round(seconds * 1e9)
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns == 0:
        return "0s"
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_fraction(ns, 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_fraction(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = f"{_fraction(rest, 1_000_000_000)}s"
    if hours:
        text = f"{hours}h{minutes}m{text}"
    elif minutes:
        text = f"{minutes}m{text}"
    return sign + text


def _fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


# --- addresses ---------------------------------------------------------------------


def split_host_port(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port); raises ``InvalidInput`` like Go's
    ``net.SplitHostPort`` would refuse it."""
    host, sep, port = address.rpartition(":")
    if not sep:
        raise InvalidInput(message=f"address {address}: missing port in address")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise InvalidInput(message=f"address {address}: too many colons in address")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(message=f"address {address}: invalid port")
    return host, int(port)


def parse_grpc_target(target: str) -> tuple[str, str]:
    """``host:port[/service]`` → (``host:port``, service); service ``""`` means the server."""
    address, _, service = target.partition("/")
    return address, service


# --- scheduling --------------------------------------------------------------------


def probe_interval(definition: CheckDefinition, min_interval: float = MIN_INTERVAL) -> float:
    """The check's interval, raised to ``min_interval`` (Consul logs and clamps to 1 s).

    An interval that is still not positive (only possible with ``min_interval=0``)
    becomes 1 s rather than a busy loop.
    """
    interval = max(definition.interval, min_interval)
    return interval if interval > 0 else 1.0


def probe_timeout(check_type: CheckType, definition: CheckDefinition) -> float:
    if definition.timeout > 0:
        return definition.timeout
    return DEFAULT_SCRIPT_TIMEOUT if check_type is CheckType.SCRIPT else DEFAULT_TIMEOUT


def first_delay(interval: float, max_stagger: float, fraction: float) -> float:
    """Delay before the first probe: ``fraction`` (drawn in [0, 1) by the caller) of
    ``min(interval, max_stagger)``. Consul staggers over the whole interval; we
    bound it so a new check reports promptly."""
    return max(0.0, fraction) * max(0.0, min(interval, max_stagger))


# --- alias -------------------------------------------------------------------------


def alias_result(
    checks: Iterable[Check], node: str, service: ServiceKey, service_exists: bool
) -> ProbeResult:
    """Consul ``CheckAlias.processChecks`` over the checks of the aliased node.

    Node-level checks of that node count too; the first critical check decides;
    a missing service with no checks is critical.
    """
    status, output, found = _PASSING, "No checks found.", False
    for check in checks:
        if node and check.node.lower() != node.lower():
            continue
        matches = (check.namespace, check.service_id) == (service.namespace, service.service_id)
        if check.service_id and not matches:
            continue
        found = found or matches
        if check.status in (_CRITICAL, _WARNING):
            status = check.status
            output = f'Aliased check "{check.name}" failing: {check.output}'
            if status is _CRITICAL:
                break
        elif status is _PASSING:
            output = "All checks passing."
    if not found and not service_exists:
        status = _CRITICAL
        output = f"Service {service.service_id} could not be found on node {node}"
    return ProbeResult(status, output)


# --- deregister_critical_service_after ---------------------------------------------


def reap_after(definition: CheckDefinition, minimum: float) -> float:
    """Seconds a service check may stay critical before its service is deregistered;
    0 means never. Consul raises it to ``check_deregister_interval_min`` (1 min)."""
    after = definition.deregister_critical_service_after
    return max(after, minimum) if after > 0 else 0.0


def select_reapable(
    candidates: Iterable[tuple[ServiceKey, float | None, float]], now: float
) -> list[ServiceKey]:
    """Services to deregister: any of their checks critical for longer than its limit.

    ``candidates`` are ``(service, critical_since, reap_after)`` per service check.
    Consul ``reapServicesInternal``: strictly longer, each service once.
    """
    chosen: list[ServiceKey] = []
    for service, since, after in candidates:
        if not service.service_id or service in chosen:
            continue
        if after > 0 and since is not None and now - since > after:
            chosen.append(service)
    return chosen
