"""Check runner (shell): runs the agent's checks as tasks and reports status changes.

    sync(checks) ──► one entry per check {CheckKey: _Entry(check, state, task)}
                         │   one task each, owned by run()'s TaskGroup:
                         │   probe loop (http/tcp/udp/grpc/script) | TTL timer | alias loop
                         ▼
    ProbeResult ──► rules.observe(state, result, thresholds, clock()) ──► write? ──► await report(key, status, output)
    reaper, every reap_interval ──► rules.select_reapable(...) ──► await deregister(service)

Rules that hold in this module:
1. ``report`` is awaited only when ``rules.observe`` says so, under the check's
   lock, so one check's writes happen one at a time and in order. The new state
   is kept only once ``report`` returned; if it raised, the stored status/output
   are kept so the next result writes again.
2. Every task has an owner: the TaskGroup inside ``run()``. ``sync`` may be called
   at any time; before ``run()`` (or after it ends) it only records the checks,
   and ``run()`` starts them. A stopped or restarted check's task is cancelled;
   a cancelled script probe kills its process group before it finishes.
3. The clock passed in decides TTL deadlines and how long a check has been
   critical; it must advance with the event loop's time (the default,
   ``time.monotonic``, does) because waits are real ``asyncio`` sleeps.
4. No mesh rule lives here: thresholds, output formats and reaping are in ``rules``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import Any

from trellis.catalog.model import Check, CheckStatus, CheckType
from trellis.health import probe, rules
from trellis.health.errors import NotTTLCheck
from trellis.health.model import CheckKey, CheckState, ProbeResult, ServiceKey, Thresholds

log = logging.getLogger(__name__)

Report = Callable[[CheckKey, CheckStatus, str], Awaitable[None]]
# alias_status(node, service_id) -> (CheckStatus, output), or an awaitable of it.
# node "" means this agent's node. (The alias check's namespace is not passed.)
AliasStatus = Callable[[str, str], Any]
# deregister(service_id, namespace) -> None, or an awaitable of None.
Deregister = Callable[[str, str], Any]
Probe = Callable[[], Awaitable[ProbeResult]]

_NOT_RUN = frozenset({CheckType.NONE, CheckType.MAINTENANCE})  # status set only through the API
_UNTHRESHOLDED = frozenset({CheckType.TTL, CheckType.ALIAS})  # Consul notifies these directly
ALIAS_TIMEOUT = rules.DEFAULT_TIMEOUT


def _spec(check: Check) -> tuple[object, ...]:
    """What, when it changes, restarts a check's probe (status and output do not)."""
    return (check.type, check.definition, check.service_id)


@dataclass(eq=False)
class _Entry:
    check: Check
    thresholds: Thresholds
    state: CheckState
    limit: int
    reap_after: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    deadline: float | None = None  # TTL: when it expires; None once expired
    last_output: str = ""  # TTL: output of the last update

    @property
    def key(self) -> CheckKey:
        return CheckKey.of(self.check)

    @property
    def service(self) -> ServiceKey | None:
        if not self.check.service_id:
            return None
        return ServiceKey(self.check.namespace, self.check.service_id)


class CheckRunner:
    """Runs the local agent's checks; reports each status change through ``report``.

    Loop-safe only from the loop that runs ``run()``; not thread-safe.
    """

    def __init__(
        self,
        report: Report,
        *,
        clock: Callable[[], float] = time.monotonic,
        enable_script_checks: bool = False,
        alias_status: AliasStatus | None = None,
        deregister: Deregister | None = None,
        output_max_size: int = rules.DEFAULT_OUTPUT_MAX_SIZE,
        min_interval: float = rules.MIN_INTERVAL,
        max_stagger: float = 1.0,
        alias_interval: float = 1.0,
        reap_interval: float = 30.0,
        deregister_min: float = 60.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._report = report
        self._clock = clock
        self._scripts = enable_script_checks
        self._alias_status = alias_status
        self._deregister = deregister
        self._output_max_size = output_max_size
        self._min_interval = min_interval
        self._max_stagger = max_stagger
        self._alias_interval = alias_interval
        self._reap_interval = reap_interval
        self._deregister_min = deregister_min
        self._rand = rand
        self._entries: dict[CheckKey, _Entry] = {}
        self._reaped: set[ServiceKey] = set()
        self._tg: asyncio.TaskGroup | None = None

    # --- public surface ------------------------------------------------------------

    def sync(self, checks: Iterable[Check]) -> None:
        """Make the running checks match ``checks``.

        New checks start, missing ones stop, ones whose type, definition or service
        changed restart with fresh counters; unchanged ones keep running and keep
        their counters, and adopt the given status/output as the stored value.
        Checks of type none/maintenance are not run. Never raises for a bad check:
        it runs and reports critical.
        """
        wanted = {CheckKey.of(c): c for c in checks if c.type not in _NOT_RUN}
        for key in [k for k in self._entries if k not in wanted]:
            self._stop(self._entries.pop(key))
        for key, check in wanted.items():
            entry = self._entries.get(key)
            if entry is not None and _spec(entry.check) == _spec(check):
                entry.check = check
                entry.state = rules.adopt_stored(entry.state, check.status, check.output)
                continue
            if entry is not None:
                self._stop(entry)
            self._entries[key] = entry = self._new_entry(check)
            self._start(entry)
        self._reaped &= {e.service for e in self._entries.values() if e.service}

    async def run(self) -> None:
        """Own every check task (and the reaper) until cancelled."""
        if self._tg is not None:
            raise RuntimeError("CheckRunner.run() is already running")
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            try:
                for entry in self._entries.values():
                    self._start(entry)
                if self._deregister is not None:
                    tg.create_task(self._run_reaper(), name="health-reaper")
                await asyncio.Event().wait()
            finally:
                self._tg = None

    async def ttl_update(self, key: CheckKey, status: CheckStatus, output: str) -> str:
        """Record a TTL check's status, reset its deadline, report it if it changed.

        Returns the output as stored (capped like Consul's). Raises ``NotTTLCheck``
        when ``key`` is not a TTL check this runner knows, and whatever ``report``
        raised when the write failed (the deadline is reset all the same).
        """
        entry = self._entries.get(key)
        if entry is None or entry.check.type is not CheckType.TTL:
            raise NotTTLCheck(key)
        output = rules.cap_ttl_output(output, entry.limit)
        async with entry.lock:
            entry.last_output = output
            entry.deadline = self._clock() + entry.check.definition.ttl
            entry.wake.set()
            await self._apply(entry, ProbeResult(status, output), propagate=True)
        return output

    def poke_alias(self) -> None:
        """Re-evaluate every alias check now (call when any check status changed)."""
        for entry in self._entries.values():
            if entry.check.type is CheckType.ALIAS:
                entry.wake.set()

    async def reap(self) -> list[ServiceKey]:
        """One reaper pass: deregister services whose check stayed critical too long.

        The reaper task calls this every ``reap_interval``; a service is handed to
        ``deregister`` once (until ``sync`` no longer lists its checks).
        """
        if self._deregister is None:
            return []
        candidates = [
            (e.service, e.state.critical_since, e.reap_after)
            for e in self._entries.values()
            if e.service is not None
        ]
        done: list[ServiceKey] = []
        for service in rules.select_reapable(candidates, self._clock()):
            if service in self._reaped:
                continue
            try:
                await _maybe_await(self._deregister(service.service_id, service.namespace))
            except Exception:
                log.exception("deregistering critical service %s failed", service)
                continue
            log.info("service %s was critical for too long; deregistered", service)
            self._reaped.add(service)
            done.append(service)
        return done

    def state(self, key: CheckKey) -> CheckState | None:
        """The runner's state of one check, or None when it does not run it."""
        entry = self._entries.get(key)
        return entry.state if entry is not None else None

    def keys(self) -> frozenset[CheckKey]:
        return frozenset(self._entries)

    # --- entries and tasks ---------------------------------------------------------

    def _new_entry(self, check: Check) -> _Entry:
        definition = check.definition
        if check.type in _UNTHRESHOLDED:
            thresholds = Thresholds()
        else:
            thresholds = Thresholds.of(definition)
        reap_after = rules.reap_after(definition, self._deregister_min) if check.service_id else 0.0
        entry = _Entry(
            check=check,
            thresholds=thresholds,
            state=rules.initial_state(check.status, check.output, thresholds),
            limit=rules.output_limit(definition, self._output_max_size),
            reap_after=reap_after,
        )
        if check.type is CheckType.TTL and definition.ttl > 0:
            entry.deadline = self._clock() + definition.ttl
        return entry

    def _start(self, entry: _Entry) -> None:
        if self._tg is None or (entry.task is not None and not entry.task.done()):
            return
        entry.task = self._tg.create_task(self._drive(entry), name=f"check:{entry.check.check_id}")

    @staticmethod
    def _stop(entry: _Entry) -> None:
        if entry.task is not None:
            entry.task.cancel()
            entry.task = None

    async def _drive(self, entry: _Entry) -> None:
        kind = entry.check.type
        if kind is CheckType.TTL:
            await self._run_ttl(entry)
        elif kind is CheckType.ALIAS:
            await self._run_alias(entry)
        else:
            await self._run_probe(entry, self._probe_for(entry))

    def _probe_for(self, entry: _Entry) -> Probe:
        check, definition, limit = entry.check, entry.check.definition, entry.limit
        timeout = rules.probe_timeout(check.type, definition)
        if check.type is CheckType.HTTP:
            return lambda: probe.probe_http(definition, timeout=timeout, limit=limit)
        if check.type is CheckType.TCP:
            return lambda: probe.probe_tcp(definition, timeout=timeout)
        if check.type is CheckType.UDP:
            return lambda: probe.probe_udp(definition, timeout=timeout)
        if check.type is CheckType.GRPC:
            return lambda: probe.probe_grpc(definition, timeout=timeout)
        if check.type is CheckType.SCRIPT and self._scripts:
            return lambda: probe.probe_script(definition, timeout=timeout, limit=limit)
        if check.type is CheckType.SCRIPT:
            return _constant(ProbeResult(CheckStatus.CRITICAL, rules.SCRIPTS_DISABLED))
        what = f"Check type {check.type.value!r} is not supported by this agent"
        return _constant(ProbeResult(CheckStatus.CRITICAL, what))

    # --- the three loops -----------------------------------------------------------

    async def _run_probe(self, entry: _Entry, run_probe: Probe) -> None:
        interval = rules.probe_interval(entry.check.definition, self._min_interval)
        await self._pause(entry, rules.first_delay(interval, self._max_stagger, self._rand()))
        while True:
            try:
                result = await run_probe()
            except Exception as exc:  # a probe bug must not end the runner
                log.exception("check %s: probe failed", entry.key)
                result = ProbeResult(CheckStatus.CRITICAL, f"Check failed: {exc}")
            await self._observe(entry, result)
            await self._pause(entry, interval)

    @staticmethod
    async def _pause(entry: _Entry, seconds: float) -> None:
        """Sleep until the next probe, or until ``probe_now`` asks for it earlier."""
        entry.wake.clear()
        try:
            async with asyncio.timeout(seconds):
                await entry.wake.wait()
        except TimeoutError:
            pass

    def probe_now(self, service: ServiceKey) -> int:
        """Run the probes of ``service``'s checks now instead of at their next interval
        (a proxy that just came up need not wait 10 s to be seen listening). Returns
        how many were woken."""
        woken = 0
        for entry in self._entries.values():
            if entry.service == service and entry.check.type not in (CheckType.TTL, CheckType.ALIAS):
                entry.wake.set()
                woken += 1
        return woken

    async def _run_ttl(self, entry: _Entry) -> None:
        while True:
            entry.wake.clear()
            if entry.deadline is None:
                await entry.wake.wait()
                continue
            remaining = entry.deadline - self._clock()
            if remaining > 0:
                with suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await entry.wake.wait()
                continue
            async with entry.lock:  # an update may have landed while we waited for the lock
                if entry.deadline is not None and entry.deadline <= self._clock():
                    entry.deadline = None
                    expired = rules.ttl_expired_output(entry.last_output)
                    await self._apply(entry, ProbeResult(CheckStatus.CRITICAL, expired))

    async def _run_alias(self, entry: _Entry) -> None:
        while True:
            entry.wake.clear()
            await self._observe(entry, await self._alias(entry.check))
            with suppress(TimeoutError):
                async with asyncio.timeout(self._alias_interval):
                    await entry.wake.wait()

    async def _alias(self, check: Check) -> ProbeResult:
        if self._alias_status is None:
            return ProbeResult(CheckStatus.CRITICAL, "Alias checks are not available on this agent")
        definition = check.definition
        try:
            async with asyncio.timeout(ALIAS_TIMEOUT):
                status, output = await _maybe_await(
                    self._alias_status(definition.alias_node, definition.alias_service)
                )
            return ProbeResult(CheckStatus(status), output)
        except Exception as exc:
            return ProbeResult(CheckStatus.CRITICAL, f"Failure checking aliased node or service: {exc}")

    async def _run_reaper(self) -> None:
        while True:
            await asyncio.sleep(self._reap_interval)
            await self.reap()

    # --- applying results ----------------------------------------------------------

    async def _observe(self, entry: _Entry, result: ProbeResult) -> None:
        async with entry.lock:
            await self._apply(entry, result)

    async def _apply(self, entry: _Entry, result: ProbeResult, *, propagate: bool = False) -> None:
        """Transition and, when the rules say so, write. Caller holds ``entry.lock``.

        A failed write keeps the stored status/output (so the next result writes
        again); it is logged, or re-raised when ``propagate``.
        """
        before = entry.state
        transition = rules.observe(before, result, entry.thresholds, self._clock())
        if transition.write:
            try:
                await self._report(entry.key, transition.state.status, transition.state.output)
            except Exception:
                entry.state = replace(transition.state, status=before.status, output=before.output)
                if propagate:
                    raise
                log.exception("check %s: reporting %s failed", entry.key, transition.state.status)
                return
            log.debug("check %s is now %s", entry.key, transition.state.status)
        entry.state = transition.state


def _constant(result: ProbeResult) -> Probe:
    async def run() -> ProbeResult:
        return result

    return run


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
