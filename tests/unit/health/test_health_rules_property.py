"""Hypothesis over the check status machine (h2's tests/test_state_machines.py style)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from trellis.catalog.model import CheckStatus
from trellis.health import rules
from trellis.health.model import ProbeResult, Thresholds

P, W, C = CheckStatus.PASSING, CheckStatus.WARNING, CheckStatus.CRITICAL

statuses = st.sampled_from([P, W, C])
results = st.builds(ProbeResult, statuses, st.sampled_from(["", "a", "b"]))


@st.composite
def thresholds(draw):
    critical = draw(st.integers(0, 4))
    warning = draw(st.integers(0, critical))
    return Thresholds(draw(st.integers(0, 4)), warning or critical, critical)


class ConsulModel:
    """Consul's StatusHandler + local.State.UpdateCheck, transcribed with unbounded counters."""

    def __init__(self, t: Thresholds, status: CheckStatus, output: str) -> None:
        self.t, self.status, self.output = t, status, output
        self.successes, self.failures = t.success_before_passing, t.failures_before_critical

    def update(self, result: ProbeResult) -> bool:
        if result.status in (P, W):
            self.successes, self.failures = self.successes + 1, 0
            reported = result.status if self.successes >= self.t.success_before_passing else None
        else:
            self.successes, self.failures = 0, self.failures + 1
            if self.failures >= self.t.failures_before_critical:
                reported = C
            elif self.failures >= self.t.failures_before_warning:
                reported = W
            else:
                reported = None
        if reported is None or (reported, result.output) == (self.status, self.output):
            return False
        self.status, self.output = reported, result.output
        return True


class StatusMachine(RuleBasedStateMachine):
    """Drive ``observe`` with arbitrary results; it must agree with Consul at every step."""

    @initialize(t=thresholds(), status=statuses)
    def start(self, t, status):
        self.t = t
        self.state = rules.initial_state(status, "registered", t)
        self.model = ConsulModel(t, status, "registered")
        self.now = 0.0
        self.streak: list[ProbeResult] = []

    @rule(result=results)
    def probe(self, result):
        self.now += 1.0
        before = self.state
        transition = rules.observe(before, result, self.t, self.now)
        self.state = transition.state
        assert transition.write is self.model.update(result)
        # a write happens exactly when the stored pair changes
        assert transition.write is ((before.status, before.output) != (self.state.status, self.state.output))
        self.streak = self.streak + [result] if self.streak and self.streak[-1].status == result.status else [result]

    @invariant()
    def agrees_with_consul(self):
        assert (self.state.status, self.state.output) == (self.model.status, self.model.output)

    @invariant()
    def counters_stay_bounded(self):
        assert 0 <= self.state.successes <= self.t.success_cap
        assert 0 <= self.state.failures <= self.t.failure_cap

    @invariant()
    def critical_clock_only_while_critical(self):
        if self.state.critical_since is not None:
            assert self.state.status is C

    @invariant()
    def enough_passes_mean_passing(self):
        needed = max(self.t.success_before_passing, 1)
        if len(self.streak) >= needed and self.streak[-1].status is P:
            assert self.state.status is P

    @invariant()
    def enough_failures_mean_critical(self):
        needed = max(self.t.failures_before_critical, 1)
        if len(self.streak) >= needed and self.streak[-1].status is C:
            assert self.state.status is C


TestStatusMachine = StatusMachine.TestCase
TestStatusMachine.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)


@settings(max_examples=300, deadline=None)
@given(t=thresholds(), sequence=st.lists(results, max_size=40))
def test_repeating_a_result_writes_at_most_once(t, sequence):
    """After any history, feeding one result over and over writes at most once."""
    state = rules.initial_state(C, "", t)
    for i, result in enumerate(sequence):
        state = rules.observe(state, result, t, float(i)).state
    last = ProbeResult(P, "steady")
    writes = 0
    for i in range(t.success_before_passing + t.failure_cap + 3):
        transition = rules.observe(state, last, t, float(i))
        writes += transition.write
        state = transition.state
    assert writes <= 1
    assert (state.status, state.output) == (P, "steady")


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 6), history=st.lists(results, max_size=20))
def test_n_passes_with_success_before_passing_n_make_passing(n, history):
    t = Thresholds(n, 0, 0)
    state = rules.initial_state(C, "", t)
    for i, result in enumerate(history):
        state = rules.observe(state, result, t, float(i)).state
    for i in range(n):
        state = rules.observe(state, ProbeResult(P, "ok"), t, 100.0 + i).state
    assert state.status is P


@settings(max_examples=300, deadline=None)
@given(t=thresholds(), history=st.lists(results, max_size=20))
def test_fewer_passes_than_threshold_after_a_failure_never_reach_passing(t, history):
    """Once a critical result has been seen, passing needs ``success_before_passing`` passes."""
    state = rules.initial_state(C, "", t)
    for i, result in enumerate(history + [ProbeResult(C, "down")]):
        state = rules.observe(state, result, t, float(i)).state
    was = state.status
    for i in range(max(t.success_before_passing - 1, 0)):
        state = rules.observe(state, ProbeResult(P, "ok"), t, 100.0 + i).state
    assert state.status is was
