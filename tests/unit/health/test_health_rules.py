"""Tables for trellis.health.rules: the transition machine and Consul's output formats."""

from __future__ import annotations

import itertools

import pytest

from trellis.catalog.model import Check, CheckDefinition, CheckStatus, CheckType
from trellis.errors import InvalidInput
from trellis.health import rules
from trellis.health.model import CheckState, ProbeResult, ServiceKey, Thresholds

P, W, C = CheckStatus.PASSING, CheckStatus.WARNING, CheckStatus.CRITICAL


def state(status, output="", successes=0, failures=0, critical_since=None):
    return CheckState(CheckStatus(status), output, successes, failures, critical_since)


# --- observe: named cases -------------------------------------------------------------
# (thresholds (sbp, fbw, fbc), state before, result, now) -> (state after, write)
OBSERVE_CASES = {
    "first_pass_after_start_reports_at_once": (
        (3, 0, 0), state("critical", "", 3, 0), ("passing", "ok"), 1.0,
        state("passing", "ok", 3, 0), True,
    ),
    "first_failure_after_start_reports_at_once": (
        (0, 2, 3), state("passing", "ok", 0, 3), ("critical", "boom"), 1.0,
        state("critical", "boom", 0, 3, 1.0), True,
    ),
    "same_status_same_output_writes_nothing": (
        (0, 0, 0), state("passing", "ok"), ("passing", "ok"), 1.0,
        state("passing", "ok"), False,
    ),
    "same_status_new_output_writes": (
        (0, 0, 0), state("passing", "ok"), ("passing", "ok 2"), 1.0,
        state("passing", "ok 2"), True,
    ),
    "pass_below_success_threshold_keeps_status": (
        (2, 0, 0), state("critical", "down", 0, 1, 0.5), ("passing", "ok"), 1.0,
        state("critical", "down", 1, 0, 0.5), False,
    ),
    "pass_reaching_success_threshold_writes_passing": (
        (2, 0, 0), state("critical", "down", 1, 0, 0.5), ("passing", "ok"), 1.0,
        state("passing", "ok", 2, 0), True,
    ),
    "warning_counts_as_success_below_threshold": (
        (2, 0, 0), state("critical", "down", 0, 1), ("warning", "slow"), 1.0,
        state("critical", "down", 1, 0), False,
    ),
    "warning_at_success_threshold_writes_warning": (
        (2, 0, 0), state("critical", "down", 1, 0, 0.5), ("warning", "slow"), 1.0,
        state("warning", "slow", 2, 0), True,
    ),
    "failure_below_warning_threshold_keeps_status": (
        (0, 2, 3), state("passing", "ok", 0, 0), ("critical", "boom"), 1.0,
        state("passing", "ok", 0, 1), False,
    ),
    "failure_reaching_warning_threshold_writes_warning_with_probe_output": (
        (0, 2, 3), state("passing", "ok", 0, 1), ("critical", "boom"), 1.0,
        state("warning", "boom", 0, 2), True,
    ),
    "failure_between_warning_and_critical_repeats_warning_without_write": (
        (0, 2, 4), state("warning", "boom", 0, 2), ("critical", "boom"), 1.0,
        state("warning", "boom", 0, 3), False,
    ),
    "failure_reaching_critical_threshold_writes_critical": (
        (0, 2, 3), state("warning", "boom", 0, 2), ("critical", "boom"), 2.0,
        state("critical", "boom", 0, 3, 2.0), True,
    ),
    "warning_threshold_equal_to_critical_goes_straight_to_critical": (
        (0, 3, 3), state("passing", "ok", 0, 2), ("critical", "boom"), 2.0,
        state("critical", "boom", 0, 3, 2.0), True,
    ),
    "failure_resets_success_counter": (
        (3, 2, 2), state("critical", "down", 2, 0), ("critical", "down"), 1.0,
        state("critical", "down", 0, 1), False,
    ),
    "success_resets_failure_counter": (
        (0, 3, 3), state("passing", "ok", 0, 2), ("passing", "ok"), 1.0,
        state("passing", "ok", 0, 0), False,
    ),
    "repeated_critical_keeps_first_critical_time": (
        (0, 0, 0), state("critical", "boom", 0, 0, 5.0), ("critical", "boom"), 9.0,
        state("critical", "boom", 0, 0, 5.0), False,
    ),
    "critical_report_with_same_output_starts_critical_clock": (
        (0, 0, 0), state("critical", "boom"), ("critical", "boom"), 9.0,
        state("critical", "boom", 0, 0, 9.0), False,
    ),
    "non_critical_report_clears_critical_time": (
        (0, 0, 0), state("critical", "boom", 0, 0, 5.0), ("warning", "meh"), 9.0,
        state("warning", "meh"), True,
    ),
    "unreported_failure_does_not_start_critical_clock": (
        (0, 3, 3), state("critical", "registered", 0, 0), ("critical", "boom"), 9.0,
        state("critical", "registered", 0, 1), False,
    ),
    "counters_saturate_at_their_threshold": (
        (2, 1, 3), state("passing", "ok", 2, 0), ("passing", "ok"), 1.0,
        state("passing", "ok", 2, 0), False,
    ),
    "failure_counter_saturates_at_largest_failure_threshold": (
        (0, 1, 3), state("critical", "x", 0, 3, 1.0), ("critical", "x"), 2.0,
        state("critical", "x", 0, 3, 1.0), False,
    ),
}


@pytest.mark.parametrize(
    "thresholds, before, result, now, after, write",
    list(OBSERVE_CASES.values()),
    ids=list(OBSERVE_CASES),
)
def test_observe(thresholds, before, result, now, after, write):
    t = rules.observe(before, ProbeResult(CheckStatus(result[0]), result[1]), Thresholds(*thresholds), now)
    assert t.state == after
    assert t.write is write


# --- observe: every (state, input) pair against Consul's StatusHandler -----------------


def consul_status_handler(successes, failures, status, sbp, fbw, fbc):
    """A transcription of Consul's checks.StatusHandler.updateCheck (unbounded counters)."""
    if status in (P, W):
        successes, failures = successes + 1, 0
        return successes, failures, (status if successes >= sbp else None)
    successes, failures = 0, failures + 1
    if failures >= fbc:
        return successes, failures, status
    if failures >= fbw:
        return successes, failures, W
    return successes, failures, None


THRESHOLD_GRID = [t for t in itertools.product(range(3), range(3), range(3)) if t[1] <= t[2] or t[1] == 0]


@pytest.mark.parametrize("sbp, fbw, fbc", THRESHOLD_GRID, ids=lambda v: str(v))
def test_every_state_and_input_matches_consul(sbp, fbw, fbc):
    thresholds = Thresholds(sbp, fbw or fbc, fbc)
    for stored, successes, failures, probe_status, same_output in itertools.product(
        (P, W, C), range(thresholds.success_cap + 1), range(thresholds.failure_cap + 1), (P, W, C), (True, False)
    ):
        before = CheckState(stored, "old", successes, failures)
        output = "old" if same_output else "new"
        t = rules.observe(before, ProbeResult(probe_status, output), thresholds, 1.0)
        s, f, reported = consul_status_handler(successes, failures, probe_status, sbp, fbw or fbc, fbc)
        assert (t.state.successes, t.state.failures) == (min(s, thresholds.success_cap), min(f, thresholds.failure_cap))
        if reported is None:
            assert (t.state.status, t.state.output, t.write) == (stored, "old", False)
        else:
            assert (t.state.status, t.state.output) == (reported, output)
            assert t.write is ((reported, output) != (stored, "old"))


def test_initial_state_primes_counters_at_thresholds():
    t = Thresholds(3, 1, 2)
    assert rules.initial_state(C, "x", t) == CheckState(C, "x", 3, 2)


@pytest.mark.parametrize(
    "definition, expected",
    [
        (CheckDefinition(), Thresholds(0, 0, 0)),
        (CheckDefinition(failures_before_critical=3), Thresholds(0, 3, 3)),
        (CheckDefinition(failures_before_warning=1, failures_before_critical=3), Thresholds(0, 1, 3)),
        (CheckDefinition(success_before_passing=2), Thresholds(2, 0, 0)),
    ],
    ids=["zero", "warning_defaults_to_critical", "both_set", "success_only"],
)
def test_thresholds_from_definition(definition, expected):
    assert Thresholds.of(definition) == expected


# --- result mapping -------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, status",
    [(200, P), (204, P), (299, P), (429, W), (300, C), (301, C), (404, C), (500, C), (503, C), (199, C)],
)
def test_http_status_mapping(code, status):
    assert rules.status_of_http(code) is status


@pytest.mark.parametrize("code, status", [(0, P), (1, W), (2, C), (127, C), (-9, C)])
def test_script_exit_mapping(code, status):
    assert rules.status_of_exit(code) is status


# --- output formats -------------------------------------------------------------------


def test_http_output_is_consuls():
    out = rules.format_http_output("GET", "http://127.0.0.1:8080/health", 200, "OK", b"alive")
    assert out == "HTTP GET http://127.0.0.1:8080/health: 200 OK Output: alive"


def test_connect_outputs_are_consuls():
    assert rules.format_connect_output("TCP", "127.0.0.1:80") == "TCP connect 127.0.0.1:80: Success"
    assert rules.format_connect_output("UDP", "127.0.0.1:53") == "UDP connect 127.0.0.1:53: Success"
    assert rules.format_grpc_output("127.0.0.1:5/svc") == "gRPC check 127.0.0.1:5/svc: success"
    assert rules.format_grpc_not_serving("a:1", "NOT_SERVING") == "gRPC a:1 serving status: NOT_SERVING"
    assert rules.format_grpc_error("DEADLINE_EXCEEDED", "x") == "rpc error: code = DeadlineExceeded desc = x"


@pytest.mark.parametrize(
    "kept, chunk, limit, expected",
    [
        (b"", b"abc", 5, b"abc"),
        (b"abc", b"def", 5, b"bcdef"),
        (b"abcde", b"", 5, b"abcde"),
        (b"", b"0123456789", 4, b"6789"),
    ],
    ids=["fits", "overflows_keeps_last", "empty_chunk", "one_big_chunk"],
)
def test_keep_tail_is_a_circular_buffer(kept, chunk, limit, expected):
    assert rules.keep_tail(kept, chunk, limit) == expected


@pytest.mark.parametrize(
    "tail, total, expected",
    [
        (b"all of it", 9, "all of it"),
        (b"6789", 10, "Captured 4 of 10 bytes\n...\n6789"),
        (b"", 0, ""),
    ],
    ids=["complete", "truncated", "empty"],
)
def test_script_output(tail, total, expected):
    assert rules.format_script_output(tail, total) == expected


@pytest.mark.parametrize(
    "timeout, output, expected",
    [
        (30.0, "", "Timed out (30s) running check"),
        (0.2, "partial", "Timed out (200ms) running check\n\npartial"),
    ],
    ids=["no_output", "with_output"],
)
def test_script_timeout_output(timeout, output, expected):
    assert rules.format_script_timeout(timeout, output) == expected


@pytest.mark.parametrize(
    "output, limit, expected",
    [
        ("short", 10, "short"),
        ("exactly10!", 10, "exactly10!"),
        ("0123456789abc", 10, "0123456789 ... (captured 10 of 13 bytes)"),
        ("ééé", 3, "é ... (captured 3 of 6 bytes)"),
    ],
    ids=["under", "equal", "over", "multibyte_cut_on_a_boundary"],
)
def test_ttl_output_cap(output, limit, expected):
    assert rules.cap_ttl_output(output, limit) == expected


@pytest.mark.parametrize(
    "last, expected",
    [("", "TTL expired"), ("all good", "TTL expired (last output before timeout follows): all good")],
    ids=["never_updated", "keeps_last_output"],
)
def test_ttl_expired_output(last, expected):
    assert rules.ttl_expired_output(last) == expected


@pytest.mark.parametrize(
    "agent, check, expected",
    [(4096, 4096, 4096), (4096, 100, 100), (4096, 10_000, 4096), (4096, 0, 4096), (0, 0, 4096), (200, 300, 200)],
    ids=["defaults", "check_lowers", "check_cannot_raise", "check_unset", "agent_unset", "agent_lower"],
)
def test_output_limit(agent, check, expected):
    assert rules.output_limit(CheckDefinition(output_max_size=check), agent) == expected


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0s"), (30, "30s"), (1.5, "1.5s"), (0.2, "200ms"), (0.0015, "1.5ms"), (60, "1m0s"),
        (90, "1m30s"), (3600, "1h0m0s"), (3725.5, "1h2m5.5s"), (0.000001, "1µs"), (1e-9, "1ns"),
    ],
)
def test_format_duration_is_gos(seconds, text):
    assert rules.format_duration(seconds) == text


# --- addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address, expected",
    [("127.0.0.1:80", ("127.0.0.1", 80)), ("[::1]:8500", ("::1", 8500)), ("localhost:1", ("localhost", 1))],
)
def test_split_host_port(address, expected):
    assert rules.split_host_port(address) == expected


@pytest.mark.parametrize("address", ["127.0.0.1", "::1:80", "host:http", "host:0", "host:70000", ""])
def test_split_host_port_rejects(address):
    with pytest.raises(InvalidInput):
        rules.split_host_port(address)


@pytest.mark.parametrize(
    "target, expected",
    [("127.0.0.1:5000", ("127.0.0.1:5000", "")), ("127.0.0.1:5000/my.Svc", ("127.0.0.1:5000", "my.Svc"))],
)
def test_parse_grpc_target(target, expected):
    assert rules.parse_grpc_target(target) == expected


# --- scheduling -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "interval, minimum, expected",
    [(10.0, 1.0, 10.0), (0.05, 1.0, 1.0), (0.05, 0.0, 0.05), (0.0, 0.0, 1.0)],
    ids=["kept", "raised_to_minimum", "test_minimum", "never_busy_loops"],
)
def test_probe_interval(interval, minimum, expected):
    assert rules.probe_interval(CheckDefinition(interval=interval), minimum) == expected


@pytest.mark.parametrize(
    "check_type, timeout, expected",
    [(CheckType.HTTP, 0.0, 10.0), (CheckType.SCRIPT, 0.0, 30.0), (CheckType.TCP, 2.5, 2.5)],
    ids=["http_default", "script_default", "explicit"],
)
def test_probe_timeout(check_type, timeout, expected):
    assert rules.probe_timeout(check_type, CheckDefinition(timeout=timeout)) == expected


@pytest.mark.parametrize(
    "interval, max_stagger, fraction, expected",
    [(10.0, 1.0, 0.5, 0.5), (0.2, 1.0, 0.5, 0.1), (10.0, 0.0, 0.9, 0.0)],
    ids=["bounded_by_max", "bounded_by_interval", "disabled"],
)
def test_first_delay(interval, max_stagger, fraction, expected):
    assert rules.first_delay(interval, max_stagger, fraction) == pytest.approx(expected)


# --- alias ----------------------------------------------------------------------------


def chk(check_id, status, service_id="", node="n1", output="", namespace="default"):
    return Check(node=node, check_id=check_id, name=f"{check_id} check", status=CheckStatus(status),
                 service_id=service_id, output=output, namespace=namespace)


WEB = ServiceKey("default", "web")
ALIAS_CASES = {
    "all_passing": ([chk("a", "passing", "web"), chk("b", "passing", "web")], True,
                    ProbeResult(P, "All checks passing.")),
    "warning_wins_over_passing": ([chk("a", "warning", "web", output="slow"), chk("b", "passing", "web")], True,
                                  ProbeResult(W, 'Aliased check "a check" failing: slow')),
    "critical_wins_and_stops": ([chk("a", "warning", "web"), chk("b", "critical", "web", output="down"),
                                 chk("c", "warning", "web")], True,
                                ProbeResult(C, 'Aliased check "b check" failing: down')),
    "node_checks_count": ([chk("serfHealth", "critical", output="gone"), chk("a", "passing", "web")], True,
                          ProbeResult(C, 'Aliased check "serfHealth check" failing: gone')),
    "other_services_ignored": ([chk("x", "critical", "db"), chk("a", "passing", "web")], True,
                               ProbeResult(P, "All checks passing.")),
    "other_namespace_ignored": ([chk("x", "critical", "web", namespace="team"), chk("a", "passing", "web")], True,
                                ProbeResult(P, "All checks passing.")),
    "other_node_ignored": ([chk("x", "critical", "web", node="n2"), chk("a", "passing", "web")], True,
                           ProbeResult(P, "All checks passing.")),
    "service_without_checks": ([], True, ProbeResult(P, "No checks found.")),
    "missing_service": ([], False, ProbeResult(C, "Service web could not be found on node n1")),
}


@pytest.mark.parametrize("checks, exists, expected", list(ALIAS_CASES.values()), ids=list(ALIAS_CASES))
def test_alias_result(checks, exists, expected):
    assert rules.alias_result(checks, "n1", WEB, exists) == expected


# --- reaping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "after, minimum, expected",
    [(0.0, 60.0, 0.0), (30.0, 60.0, 60.0), (90.0, 60.0, 90.0), (0.5, 0.0, 0.5)],
    ids=["unset", "raised_to_minimum", "kept", "test_minimum"],
)
def test_reap_after(after, minimum, expected):
    assert rules.reap_after(CheckDefinition(deregister_critical_service_after=after), minimum) == expected


DB = ServiceKey("default", "db")
REAP_CASES = {
    "critical_longer_than_limit": ([(WEB, 0.0, 60.0)], 61.0, [WEB]),
    "exactly_the_limit_is_not_enough": ([(WEB, 0.0, 60.0)], 60.0, []),
    "not_critical": ([(WEB, None, 60.0)], 1000.0, []),
    "no_limit": ([(WEB, 0.0, 0.0)], 1000.0, []),
    "one_check_of_several_suffices_once": ([(WEB, 0.0, 60.0), (WEB, 0.0, 60.0), (WEB, None, 60.0)], 61.0, [WEB]),
    "node_checks_never_reap": ([(ServiceKey("default", ""), 0.0, 1.0)], 61.0, []),
    "several_services": ([(WEB, 0.0, 60.0), (DB, 50.0, 5.0)], 61.0, [WEB, DB]),
}


@pytest.mark.parametrize("candidates, now, expected", list(REAP_CASES.values()), ids=list(REAP_CASES))
def test_select_reapable(candidates, now, expected):
    assert rules.select_reapable(candidates, now) == expected
