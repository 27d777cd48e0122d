"""Value types of the check runners: keys, probe results, thresholds, per-check state.

Rules:
1. Everything here is frozen; the runner replaces a ``CheckState`` with the one
   ``rules.observe`` returns, it never edits one.
2. ``CheckState.status``/``output`` mirror what was last *written* through the
   runner's ``report`` callback (or adopted from the store by ``sync``); they are
   what an unchanged result is compared against.
3. Counters saturate at the largest threshold that reads them, so the state space
   is finite (Consul's counters grow without bound; only ``>=`` comparisons
   against the thresholds read them, so the behaviour is the same).
"""

from __future__ import annotations

from dataclasses import dataclass

from trellis.catalog.model import Check, CheckDefinition, CheckStatus


@dataclass(frozen=True, slots=True, order=True)
class CheckKey:
    """One check on the local agent: Consul's ``structs.CheckID`` (ID + namespace)."""

    namespace: str
    check_id: str

    @classmethod
    def of(cls, check: Check) -> CheckKey:
        return cls(check.namespace, check.check_id)


@dataclass(frozen=True, slots=True, order=True)
class ServiceKey:
    """One service instance on the local agent: Consul's ``structs.ServiceID``."""

    namespace: str
    service_id: str


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one run of a probe saw, before thresholds are applied."""

    status: CheckStatus
    output: str


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Consul's ``StatusHandler`` settings. All zero means "report every result as is"
    (what TTL and alias checks get)."""

    success_before_passing: int = 0
    failures_before_warning: int = 0
    failures_before_critical: int = 0

    @classmethod
    def of(cls, definition: CheckDefinition) -> Thresholds:
        # Consul agent.addCheckLocked: "FailuresBeforeWarning has to default to
        # same value as FailuresBeforeCritical".
        critical = max(definition.failures_before_critical, 0)
        warning = max(definition.failures_before_warning, 0) or critical
        return cls(max(definition.success_before_passing, 0), warning, critical)

    @property
    def success_cap(self) -> int:
        return self.success_before_passing

    @property
    def failure_cap(self) -> int:
        return max(self.failures_before_warning, self.failures_before_critical)


@dataclass(frozen=True, slots=True)
class CheckState:
    """The runner's memory of one check.

    ``successes``/``failures`` are the consecutive counters of Consul's
    ``StatusHandler``; ``critical_since`` is the clock reading when the check was
    first reported critical in its current critical run (Consul's
    ``CheckState.CriticalTime``), ``None`` while it is not critical.
    """

    status: CheckStatus
    output: str
    successes: int = 0
    failures: int = 0
    critical_since: float | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """The result of ``rules.observe``: the next state, and whether ``report`` must run."""

    state: CheckState
    write: bool
