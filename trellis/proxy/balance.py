"""Choosing an upstream instance for a new connection, and passive ejection (no I/O).

A ``Balancer`` holds one upstream's selection state: a round-robin cursor, the open
connections per instance, and consecutive connect failures. It is deterministic: the
caller passes ``now`` (monotonic seconds) wherever time decides.

Rules:
1. Health (DESIGN, one rule for both data planes): critical instances get no traffic,
   warning instances do (``usable_endpoints``).
2. ``order`` returns every instance to try for one connection, best first; the shell
   tries the next one when a connect fails (retry order). Each call advances the
   round-robin cursor by one, so ties rotate.
3. ``round_robin``: usable instances in snapshot order, rotated by the cursor.
   ``least_conn``: fewest open connections first; ties keep the round-robin rotation.
4. ``max_failures`` consecutive connect failures eject an instance until
   ``now + base_time * n`` (n = ejections in a row, capped at ``max_time``); a success
   resets both counts. Ejected instances are left out of ``order`` ...
5. ... unless every usable instance is ejected ("panic", as Envoy's panic threshold):
   then all of them are tried, the one that comes back soonest first, so a single
   instance that was restarting is not shut out for the whole ejection time.
6. State is keyed by (address, port); ``retain`` forgets instances that left the
   snapshot, except for their open-connection counts (those connections still run).
"""

from __future__ import annotations

from dataclasses import dataclass

from trellis.proxy.plan import Ejection, Policy
from trellis.proxycfg.model import CRITICAL, Endpoint, usable_endpoints

EndpointKey = tuple[str, int]


def endpoint_key(ep: Endpoint) -> EndpointKey:
    return (ep.address, ep.port)


@dataclass(slots=True)
class _Record:
    failures: int = 0  # consecutive connect failures
    ejections: int = 0  # consecutive ejections
    ejected_until: float = 0.0
    active: int = 0


@dataclass(frozen=True, slots=True)
class Unusable:
    """Why ``order`` came back empty, for the log line."""

    total: int
    critical: int

    def describe(self) -> str:
        if self.total == 0:
            return "no instance is registered"
        return f"all {self.total} instance(s) are critical" if self.critical == self.total else "no usable instance"


class Balancer:
    """Selection state for one upstream (rules 1-6). Loop-safe; not thread-safe."""

    def __init__(self, policy: Policy = Policy.ROUND_ROBIN, ejection: Ejection = Ejection()) -> None:
        self.policy = policy
        self.ejection = ejection
        self._cursor = 0
        self._records: dict[EndpointKey, _Record] = {}

    def configure(self, policy: Policy, ejection: Ejection) -> None:
        """A new snapshot changed the knobs; the counts carry over."""
        self.policy, self.ejection = policy, ejection

    def order(self, endpoints: tuple[Endpoint, ...], now: float) -> tuple[Endpoint, ...]:
        """Rules 1-5: the instances to try, first choice first; empty when none is usable."""
        usable = usable_endpoints(endpoints)
        if not usable:
            return ()
        start = self._cursor % len(usable)
        self._cursor += 1
        rotated = usable[start:] + usable[:start]
        ready = [ep for ep in rotated if not self.ejected(ep, now)]
        if not ready:  # rule 5
            return tuple(sorted(rotated, key=lambda ep: self._record(ep).ejected_until))
        if self.policy is Policy.LEAST_CONN:
            ready.sort(key=lambda ep: self._record(ep).active)  # stable: ties keep the rotation
        return tuple(ready)

    def ejected(self, ep: Endpoint, now: float) -> bool:
        record = self._records.get(endpoint_key(ep))
        return record is not None and record.ejected_until > now

    def active(self, ep: Endpoint) -> int:
        record = self._records.get(endpoint_key(ep))
        return record.active if record else 0

    def failed(self, ep: Endpoint, now: float) -> bool:
        """Rule 4: count a connect failure; True when this one ejects the instance."""
        record = self._record(ep)
        record.failures += 1
        if record.failures < self.ejection.max_failures:
            return False
        record.failures = 0
        record.ejections += 1
        hold = min(self.ejection.base_time * record.ejections, max(self.ejection.max_time, self.ejection.base_time))
        record.ejected_until = now + hold
        return True

    def succeeded(self, ep: Endpoint) -> None:
        record = self._record(ep)
        record.failures = record.ejections = 0
        record.ejected_until = 0.0

    def opened(self, ep: Endpoint) -> None:
        self._record(ep).active += 1

    def closed(self, ep: Endpoint) -> None:
        record = self._records.get(endpoint_key(ep))
        if record is not None and record.active > 0:
            record.active -= 1

    def retain(self, endpoints: tuple[Endpoint, ...]) -> None:
        """Rule 6: forget the instances no longer in the snapshot (but not their open connections)."""
        keep = {endpoint_key(ep) for ep in endpoints}
        for key in list(self._records):
            record = self._records[key]
            if key not in keep:
                if record.active:
                    record.failures = record.ejections = 0
                    record.ejected_until = 0.0
                else:
                    del self._records[key]

    def _record(self, ep: Endpoint) -> _Record:
        key = endpoint_key(ep)
        record = self._records.get(key)
        if record is None:
            record = self._records[key] = _Record()
        return record


def why_unusable(endpoints: tuple[Endpoint, ...]) -> Unusable:
    """Pure: the figures for an empty ``order``."""
    return Unusable(total=len(endpoints), critical=sum(1 for ep in endpoints if ep.health == CRITICAL))
