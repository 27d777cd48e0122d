"""CheckRunner as a shell, with a scripted probe in place of the network (no sockets).

The scripted probe hands out one result per call from a queue, so every test
decides exactly which results the runner sees, and in what order.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import pytest

from trellis.catalog.model import Check, CheckDefinition, CheckStatus, CheckType
from trellis.health import CheckKey, CheckRunner, NotTTLCheck, ServiceKey, probe
from trellis.health.model import ProbeResult

P, W, C = CheckStatus.PASSING, CheckStatus.WARNING, CheckStatus.CRITICAL


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Writes:
    """A ``report`` callback that records every write; can be told to fail."""

    def __init__(self) -> None:
        self.items: list[tuple[CheckKey, CheckStatus, str]] = []
        self.fail_next = 0

    async def __call__(self, key: CheckKey, status: CheckStatus, output: str) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("store unavailable")
        self.items.append((key, status, output))

    def statuses(self) -> list[CheckStatus]:
        return [status for _, status, _ in self.items]


class Gone(list):
    """A ``deregister`` callback that records (namespace, service_id) as a ServiceKey."""

    def __call__(self, service_id: str, namespace: str) -> None:
        self.append(ServiceKey(namespace, service_id))


class ScriptedProbe:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[ProbeResult | Exception] = asyncio.Queue()
        self.calls = 0

    async def __call__(self, definition: CheckDefinition, *, timeout: float) -> ProbeResult:
        self.calls += 1
        item = await self.queue.get()
        if isinstance(item, Exception):
            raise item
        return item

    async def feed(self, *items: ProbeResult | Exception) -> None:
        """Hand out each item and wait until the runner has applied it (it asked again)."""
        for item in items:
            calls = self.calls
            await self.queue.put(item)
            await eventually(lambda: self.calls > calls)


async def eventually(predicate, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


@pytest.fixture
def scripted(monkeypatch) -> ScriptedProbe:
    fake = ScriptedProbe()
    monkeypatch.setattr(probe, "probe_tcp", fake)
    return fake


@asynccontextmanager
async def running(runner: CheckRunner):
    task = asyncio.create_task(runner.run())
    try:
        yield runner
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def tcp_check(check_id="web-tcp", service_id="web", status=C, output="", **definition) -> Check:
    definition.setdefault("tcp", "127.0.0.1:9")
    definition.setdefault("interval", 0.001)
    return Check(node="n1", check_id=check_id, name=check_id, status=status, output=output,
                 service_id=service_id, type=CheckType.TCP, definition=CheckDefinition(**definition))


def ttl_check(check_id="web-ttl", ttl=30.0, service_id="web", **definition) -> Check:
    return Check(node="n1", check_id=check_id, name=check_id, service_id=service_id, type=CheckType.TTL,
                 definition=CheckDefinition(ttl=ttl, **definition))


def make_runner(writes: Writes, **kwargs) -> CheckRunner:
    kwargs.setdefault("min_interval", 0.0)
    kwargs.setdefault("max_stagger", 0.0)
    return CheckRunner(writes, **kwargs)


KEY = CheckKey("default", "web-tcp")


async def test_unchanged_definition_keeps_counters_across_sync(scripted):
    writes = Writes()
    runner = make_runner(writes)
    check = tcp_check(success_before_passing=3)
    runner.sync([check])
    async with running(runner):
        await scripted.feed(ProbeResult(C, "down"), ProbeResult(P, "up"), ProbeResult(P, "up"))
        assert writes.statuses() == [C]  # first result is reported at once; then 2 of 3 passes
        runner.sync([tcp_check(success_before_passing=3, status=C, output="down")])
        await scripted.feed(ProbeResult(P, "up"))
        assert writes.statuses() == [C, P]
        assert runner.state(KEY).successes == 3


async def test_changed_definition_restarts_with_fresh_counters(scripted):
    writes = Writes()
    runner = make_runner(writes)
    runner.sync([tcp_check(success_before_passing=3)])
    async with running(runner):
        await scripted.feed(ProbeResult(C, "down"), ProbeResult(P, "up"))
        runner.sync([tcp_check(success_before_passing=3, timeout=2.0, status=C, output="down")])
        assert runner.state(KEY).successes == 3  # primed again: the next result counts at once
        await scripted.feed(ProbeResult(P, "up"))
        assert writes.statuses() == [C, P]


async def test_sync_adopts_the_stored_status_of_unchanged_checks(scripted):
    writes = Writes()
    runner = make_runner(writes)
    runner.sync([tcp_check()])
    async with running(runner):
        await scripted.feed(ProbeResult(P, "up"))
        runner.sync([tcp_check(status=C, output="set by someone else")])
        await scripted.feed(ProbeResult(P, "up"))
        assert writes.statuses() == [P, P]


async def test_removed_check_stops_and_is_forgotten(scripted):
    writes = Writes()
    runner = make_runner(writes)
    runner.sync([tcp_check()])
    async with running(runner):
        await scripted.feed(ProbeResult(P, "up"))
        runner.sync([])
        assert runner.keys() == frozenset()
        await scripted.queue.put(ProbeResult(C, "late"))
        await asyncio.sleep(0.01)  # give a (wrongly) surviving task a chance to write
        assert writes.statuses() == [P]


async def test_failed_report_is_retried_on_the_next_result(scripted):
    writes = Writes()
    runner = make_runner(writes)
    runner.sync([tcp_check(status=P)])
    async with running(runner):
        writes.fail_next = 1
        await scripted.feed(ProbeResult(C, "down"))
        assert writes.items == [] and runner.state(KEY).status is P
        await scripted.feed(ProbeResult(C, "down"))
        assert writes.statuses() == [C]


async def test_a_probe_that_raises_reports_critical_and_keeps_running(scripted):
    writes = Writes()
    runner = make_runner(writes)
    runner.sync([tcp_check(status=P)])
    async with running(runner):
        await scripted.feed(ValueError("bug"), ProbeResult(P, "up"))
        assert writes.items == [(KEY, C, "Check failed: bug"), (KEY, P, "up")]


async def test_checks_without_a_runner_are_not_run():
    runner = make_runner(Writes())
    maintenance = Check(node="n1", check_id="_node_maintenance", name="m", type=CheckType.MAINTENANCE)
    plain = Check(node="n1", check_id="serfHealth", name="s", type=CheckType.NONE)
    runner.sync([maintenance, plain])
    assert runner.keys() == frozenset()


async def test_unsupported_type_reports_critical_once():
    writes = Writes()
    runner = make_runner(writes)
    docker = Check(node="n1", check_id="d", name="d", status=P, type=CheckType.DOCKER,
                   definition=CheckDefinition(docker_container_id="x", interval=0.001))
    runner.sync([docker])
    async with running(runner):
        await eventually(lambda: writes.items)
        await asyncio.sleep(0.02)
    assert writes.items == [(CheckKey("default", "d"), C, "Check type 'docker' is not supported by this agent")]


# --- TTL without the loop ----------------------------------------------------------


async def test_ttl_update_of_unknown_check_raises_not_ttl():
    runner = make_runner(Writes())
    with pytest.raises(NotTTLCheck, match='^CheckID "nope" does not have associated TTL$'):
        await runner.ttl_update(CheckKey("default", "nope"), P, "")


async def test_ttl_update_of_a_non_ttl_check_raises_not_ttl(scripted):
    runner = make_runner(Writes())
    runner.sync([tcp_check()])
    with pytest.raises(NotTTLCheck) as err:
        await runner.ttl_update(KEY, P, "")
    assert err.value.error_status_hint == 500


async def test_ttl_update_reports_only_changes_and_caps_output():
    writes = Writes()
    runner = make_runner(writes)
    runner.sync([ttl_check(output_max_size=10)])
    key = CheckKey("default", "web-ttl")
    assert await runner.ttl_update(key, P, "ok") == "ok"
    assert await runner.ttl_update(key, P, "ok") == "ok"
    stored = await runner.ttl_update(key, W, "0123456789abc")
    assert stored == "0123456789 ... (captured 10 of 13 bytes)"
    assert writes.items == [(key, P, "ok"), (key, W, stored)]


async def test_ttl_update_propagates_a_failed_write_and_keeps_stored_status():
    writes = Writes()
    runner = make_runner(writes)
    runner.sync([ttl_check()])
    key = CheckKey("default", "web-ttl")
    writes.fail_next = 1
    with pytest.raises(RuntimeError):
        await runner.ttl_update(key, P, "ok")
    assert runner.state(key).status is C
    await runner.ttl_update(key, P, "ok")
    assert writes.items == [(key, P, "ok")]


# --- reaping with a fake clock -----------------------------------------------------


async def test_reaper_deregisters_a_service_critical_past_its_limit_once():
    clock, writes, gone = FakeClock(), Writes(), Gone()
    runner = make_runner(writes, clock=clock, deregister=gone, deregister_min=0.0)
    runner.sync([ttl_check(deregister_critical_service_after=60.0), ttl_check("other", service_id="db")])
    key = CheckKey("default", "web-ttl")
    await runner.ttl_update(key, C, "down")
    clock.now += 60.0
    assert await runner.reap() == []  # not strictly longer yet
    clock.now += 0.5
    assert await runner.reap() == [ServiceKey("default", "web")]
    assert await runner.reap() == []  # handed over once
    assert gone == [ServiceKey("default", "web")]


async def test_reaper_forgets_a_service_that_recovered():
    clock, gone = FakeClock(), Gone()
    runner = make_runner(Writes(), clock=clock, deregister=gone, deregister_min=0.0)
    runner.sync([ttl_check(deregister_critical_service_after=10.0)])
    key = CheckKey("default", "web-ttl")
    await runner.ttl_update(key, C, "down")
    clock.now += 5.0
    await runner.ttl_update(key, P, "up")
    await runner.ttl_update(key, C, "down again")
    clock.now += 6.0
    assert await runner.reap() == []


async def test_reaper_applies_the_minimum_limit():
    clock, gone = FakeClock(), Gone()
    runner = make_runner(Writes(), clock=clock, deregister=gone)  # deregister_min=60 s
    runner.sync([ttl_check(deregister_critical_service_after=1.0)])
    await runner.ttl_update(CheckKey("default", "web-ttl"), C, "down")
    clock.now += 30.0
    assert await runner.reap() == []
    clock.now += 31.0
    assert await runner.reap() == [ServiceKey("default", "web")]


async def test_reaper_retries_when_deregister_fails():
    clock, calls = FakeClock(), []

    async def deregister(service_id: str, namespace: str) -> None:
        calls.append((namespace, service_id))
        if len(calls) == 1:
            raise RuntimeError("store unavailable")

    runner = make_runner(Writes(), clock=clock, deregister=deregister, deregister_min=0.0)
    runner.sync([ttl_check(deregister_critical_service_after=1.0)])
    await runner.ttl_update(CheckKey("default", "web-ttl"), C, "down")
    clock.now += 2.0
    assert await runner.reap() == []
    assert await runner.reap() == [ServiceKey("default", "web")]
    assert len(calls) == 2


async def test_reaper_task_runs_on_its_period():
    clock, gone = FakeClock(), Gone()
    runner = make_runner(Writes(), clock=clock, deregister=gone, deregister_min=0.0, reap_interval=0.01)
    runner.sync([ttl_check(deregister_critical_service_after=1.0)])
    await runner.ttl_update(CheckKey("default", "web-ttl"), C, "down")
    clock.now += 2.0
    async with running(runner):
        await eventually(lambda: gone)
    assert gone == [ServiceKey("default", "web")]


async def test_run_twice_at_once_is_refused():
    runner = make_runner(Writes())
    async with running(runner):
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError):
            await runner.run()


async def test_reaper_passes_the_namespace_of_the_service():
    clock, gone = FakeClock(), Gone()
    runner = make_runner(Writes(), clock=clock, deregister=gone, deregister_min=0.0)
    team_check = Check(node="n1", check_id="web-ttl", name="t", service_id="web", namespace="team",
                       type=CheckType.TTL, definition=CheckDefinition(ttl=30.0, deregister_critical_service_after=1.0))
    runner.sync([team_check])
    await runner.ttl_update(CheckKey("team", "web-ttl"), C, "down")
    clock.now += 2.0
    await runner.reap()
    assert gone == [ServiceKey("team", "web")]
