"""Check definitions: spellings per endpoint, durations, type detection, Consul's rules."""

from __future__ import annotations

import pytest

from trellis.catalog.definition import (
    CheckSpec,
    check_problem,
    decode_check,
    deregister_after,
    detect_check_type,
)
from trellis.catalog.errors import InvalidDefinition
from trellis.catalog.model import CheckDefinition, CheckStatus, CheckType

# --------------------------------------------------------------------------- durations

DURATIONS = {
    "seconds": ("10s", 10.0),
    "minutes-and-seconds": ("1m30s", 90.0),
    "go-string-form": ("1m0s", 60.0),
    "milliseconds": ("500ms", 0.5),
    "hours": ("72h", 259200.0),
    "fraction": ("1.5s", 1.5),
    "nanoseconds-number": (10_000_000_000, 10.0),
    "nanoseconds-float": (1.5e9, 1.5),
    "zero-string": ("0", 0.0),
}


@pytest.mark.parametrize("value, seconds", DURATIONS.values(), ids=DURATIONS.keys())
def test_durations_are_go_strings_or_nanoseconds(value: object, seconds: float) -> None:
    spec = decode_check({"Name": "c", "HTTP": "http://x", "Interval": "1s", "Timeout": value},
                        origin="api", in_service=False)
    assert spec.definition.timeout == seconds


@pytest.mark.parametrize("value, message", [
    ("10", 'Request decode failed: time: missing unit in duration "10"'),
    ("ten", 'Request decode failed: time: invalid duration "ten"'),
    ("5y", 'Request decode failed: time: unknown unit "y" in duration "5y"'),
    (True, "Request decode failed: json: cannot unmarshal bool into Go struct field CheckType.TTL of type "
           "time.Duration"),
], ids=["no-unit", "garbage", "unknown-unit", "bool"])
def test_bad_durations_use_gos_words(value: object, message: str) -> None:
    with pytest.raises(InvalidDefinition) as err:
        decode_check({"Name": "c", "TTL": value}, origin="api", in_service=False)
    assert str(err.value) == message


# --------------------------------------------------------------------------- type detection

TYPES = {
    "grpc-before-http": ({"GRPC": "h:1", "HTTP": "http://x", "Interval": "1s"}, CheckType.GRPC),
    "http": ({"HTTP": "http://x", "Interval": "1s"}, CheckType.HTTP),
    "ttl": ({"TTL": "30s"}, CheckType.TTL),
    "tcp": ({"TCP": "h:1", "Interval": "1s"}, CheckType.TCP),
    "udp": ({"UDP": "h:1", "Interval": "1s"}, CheckType.UDP),
    "alias-service": ({"AliasService": "web"}, CheckType.ALIAS),
    "alias-node": ({"AliasNode": "n1"}, CheckType.ALIAS),
    "docker": ({"DockerContainerID": "c", "Args": ["x"], "Interval": "1s"}, CheckType.DOCKER),
    "script": ({"Args": ["x"], "Interval": "1s"}, CheckType.SCRIPT),
    "h2ping": ({"H2PING": "h:1", "Interval": "1s"}, CheckType.H2PING),
    "os-service": ({"OSService": "nginx", "Interval": "1s"}, CheckType.OS_SERVICE),
}


@pytest.mark.parametrize("body, kind", TYPES.values(), ids=TYPES.keys())
def test_type_detection_follows_consuls_order(body: dict, kind: CheckType) -> None:
    assert decode_check({"Name": "c", **body}, origin="api", in_service=False).type is kind


def test_runner_without_interval_has_no_type() -> None:
    assert detect_check_type(CheckDefinition(http="http://x")) is CheckType.NONE


# --------------------------------------------------------------------------- Consul's rules

PROBLEMS = {
    "interval-and-ttl": (CheckDefinition(ttl=1, interval=1, http="x"), "Interval and TTL cannot both be specified"),
    "runner-needs-interval": (CheckDefinition(tcp="h:1"),
                              "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"),
    "negative-interval": (CheckDefinition(http="x", interval=-1),
                          "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"),
    "alias-with-runner": (CheckDefinition(alias_service="web", http="x", interval=1),
                          "Interval cannot be set for Alias checks"),
    "alias-with-interval": (CheckDefinition(alias_service="web", interval=1), "Interval cannot be set for Alias checks"),
    "alias-with-ttl": (CheckDefinition(alias_service="web", ttl=1), "TTL must be not be set for Alias checks"),
    "nothing-set": (CheckDefinition(), "TTL must be > 0 for TTL checks"),
    "negative-output-size": (CheckDefinition(ttl=1, output_max_size=-1), "MaxOutputMaxSize must be positive"),
    "failures-order": (CheckDefinition(ttl=1, failures_before_warning=3, failures_before_critical=2),
                       "FailuresBeforeWarning can't be higher than FailuresBeforeCritical"),
}


@pytest.mark.parametrize("definition, message", PROBLEMS.values(), ids=PROBLEMS.keys())
def test_check_problems(definition: CheckDefinition, message: str) -> None:
    assert check_problem(CheckSpec(definition=definition)) == message


STANDALONE_ERRORS = {
    "missing-name": ({"TTL": "10s"}, "Missing check name"),
    "bad-status": ({"Name": "c", "TTL": "10s", "Status": "ok"}, "Bad check status"),
    "invalid": ({"Name": "c", "HTTP": "http://x"},
                "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"),
    "check-id-spelling": ({"Name": "c", "CheckID": "x", "TTL": "1s"},
                          'Request decode failed: json: unknown field "CheckID"'),
    "old-script-field": ({"Name": "c", "Script": "x", "Interval": "1s"},
                         'Request decode failed: json: unknown field "Script"'),
}


@pytest.mark.parametrize("body, message", STANDALONE_ERRORS.values(), ids=STANDALONE_ERRORS.keys())
def test_agent_check_register_errors(body: dict, message: str) -> None:
    with pytest.raises(InvalidDefinition) as err:
        decode_check(body, origin="api", in_service=False)
    assert str(err.value) == message


def test_in_service_checks_report_status_with_consuls_service_text() -> None:
    with pytest.raises(InvalidDefinition) as err:
        decode_check({"TTL": "1s", "Status": "up"}, origin="api", in_service=True)
    assert str(err.value) == "Status for checks must 'passing', 'warning', 'critical'"


# --------------------------------------------------------------------------- spellings per endpoint

def test_check_register_takes_id_service_id_and_token() -> None:
    # consul.Agent.Check.register(): {"name", **check, "id", "notes", "serviceid"}
    spec = decode_check({"name": "mem", "ttl": "10s", "id": "mem-1", "notes": "n", "serviceid": "web",
                         "Token": "t", "Status": "passing"}, origin="api", in_service=False)
    assert (spec.check_id, spec.name, spec.notes, spec.service_id, spec.token) == ("mem-1", "mem", "n", "web", "t")
    assert spec.initial_status is CheckStatus.PASSING


def test_service_checks_take_check_id_and_ignore_service_id() -> None:
    spec = decode_check({"CheckID": "c1", "ServiceID": "other", "TTL": "1s"}, origin="api", in_service=True)
    assert (spec.check_id, spec.service_id) == ("c1", "")


@pytest.mark.parametrize("key", ["id", "check_id", "CheckID", "ID"])
def test_config_files_take_either_id_spelling(key: str) -> None:
    spec = decode_check({"name": "c", key: "x", "ttl": "1s"}, origin="config", in_service=False)
    assert spec.check_id == "x"


def test_config_check_errors_name_the_key_path() -> None:
    with pytest.raises(InvalidDefinition) as err:
        decode_check({"name": "c", "http": "http://x"}, origin="config", in_service=False, path="checks[2]")
    assert str(err.value) == ("checks[2]: Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP "
                              "or OSService checks")


SCRIPT_ARGS = {
    "ScriptArgs": ({"ScriptArgs": ["a"]}, ("a",)),
    "Args": ({"Args": ["b"]}, ("b",)),
    "args": ({"args": ["c"]}, ("c",)),
    "script_args": ({"script_args": ["d"]}, ("d",)),
    "ScriptArgs-wins": ({"script_args": ["d"], "args": ["c"], "ScriptArgs": ["a"]}, ("a",)),
    "args-before-script_args": ({"script_args": ["d"], "args": ["c"]}, ("c",)),
    "first-non-empty": ({"ScriptArgs": [], "script_args": ["d"]}, ("d",)),
}


@pytest.mark.parametrize("body, args", SCRIPT_ARGS.values(), ids=SCRIPT_ARGS.keys())
def test_script_args_spellings(body: dict, args: tuple[str, ...]) -> None:
    spec = decode_check({"Name": "c", "Interval": "1s", **body}, origin="api", in_service=False)
    assert spec.definition.args == args


SNAKE_FIELDS = {
    "tls": ({"tls_server_name": "s", "tls_skip_verify": True}, {"tls_server_name": "s", "tls_skip_verify": True}),
    "grpc": ({"grpc_use_tls": True}, {"grpc_use_tls": True}),
    "tcp": ({"tcp_use_tls": True}, {"tcp_use_tls": True}),
    "redirects": ({"disable_redirects": True}, {"disable_redirects": True}),
    "deregister": ({"deregister_critical_service_after": "1m"}, {"deregister_critical_service_after": 60.0}),
    "docker": ({"docker_container_id": "c"}, {"docker_container_id": "c"}),
    "counters": ({"success_before_passing": 2, "failures_before_warning": 1, "failures_before_critical": 3},
                 {"success_before_passing": 2, "failures_before_warning": 1, "failures_before_critical": 3}),
    "output": ({"output_max_size": 100}, {"output_max_size": 100}),
}


@pytest.mark.parametrize("body, expected", SNAKE_FIELDS.values(), ids=SNAKE_FIELDS.keys())
def test_snake_case_check_fields(body: dict, expected: dict) -> None:
    spec = decode_check({"name": "c", "http": "http://x", "interval": "1s", **body}, origin="api", in_service=False)
    for attr, value in expected.items():
        assert getattr(spec.definition, attr) == value


def test_h2ping_uses_tls_unless_told_otherwise() -> None:
    base = {"Name": "c", "H2PING": "h:1", "Interval": "1s"}
    assert decode_check(base, origin="api", in_service=False).definition.h2ping_use_tls is True
    off = decode_check({**base, "H2PingUseTLS": False}, origin="api", in_service=False)
    assert off.definition.h2ping_use_tls is False
    assert decode_check({"Name": "c", "TTL": "1s"}, origin="api", in_service=False).definition.h2ping_use_tls is False


def test_output_max_size_zero_means_the_agent_default() -> None:
    assert decode_check({"Name": "c", "TTL": "1s"}, origin="api", in_service=False).definition.output_max_size == 4096


def test_status_defaults_to_critical() -> None:
    assert decode_check({"Name": "c", "TTL": "1s"}, origin="api", in_service=False).initial_status is \
        CheckStatus.CRITICAL


# --------------------------------------------------------------------------- deregistration

@pytest.mark.parametrize("given, effective", [
    (0.0, 0.0), (30.0, 60.0), (60.0, 60.0), (5400.0, 5400.0),
], ids=["never", "clamped-up", "minimum", "kept"])
def test_deregister_after_is_clamped_to_a_minute_but_stored_as_given(given: float, effective: float) -> None:
    definition = CheckDefinition(ttl=1, deregister_critical_service_after=given)
    assert deregister_after(definition) == effective
    assert definition.deregister_critical_service_after == given
