"""``trellis connect trace SRC DST``: the request it sends, the step table, the verdict
line, and its exit codes (0 works, 1 broken, 2 no trace)."""

from __future__ import annotations

import json

import pytest

from trellis.cli.connect_trace import format_trace, format_verdict

PATH = "/v1/agent/connect/trace"


def answer(*steps: tuple[str, str, str, list[str]]) -> dict:
    failed = next((name for name, status, _, _ in steps if status == "failed"), "")
    return {"Source": "web-1-sidecar-proxy", "SourceService": "web", "Namespace": "default", "Destination": "api",
            "Ok": not failed, "FailedStep": failed,
            "Steps": [{"Step": n, "Name": name, "Status": status, "Summary": summary, "Details": details}
                      for n, (name, status, summary, details) in enumerate(steps, start=1)]}


WORKS = answer(
    ("proxy", "ok", "web-1-sidecar-proxy (service web): served by envoy, in sync (12ms to apply)", []),
    ("upstream", "ok", "api at 127.0.0.1:9191 (http)", ["listener 127.0.0.1:9191 (http)"]),
    ("endpoints", "warning", "no usable instance on the default path; Envoy fails over to b",
     ["a (default path): cluster a.x", "  10.0.0.1:21000  n1  a-1-sidecar-proxy  critical  no traffic"]),
)
BROKEN = answer(
    ("proxy", "ok", "web-1-sidecar-proxy (service web): served by envoy, in sync (12ms to apply)", []),
    ("upstream", "failed", "web has no upstream to api", ["its upstreams: db@127.0.0.1:9292"]),
    ("chain", "skipped", "no upstream to follow", []),
)


def test_the_table_marks_each_step_and_indents_its_details_under_the_summary():
    assert format_trace(WORKS) == "\n".join([
        "Trace web → api (from proxy web-1-sidecar-proxy)",
        "",
        "OK    1 proxy      web-1-sidecar-proxy (service web): served by envoy, in sync (12ms to apply)",
        "OK    2 upstream   api at 127.0.0.1:9191 (http)",
        "                   listener 127.0.0.1:9191 (http)",
        "WARN  3 endpoints  no usable instance on the default path; Envoy fails over to b",
        "                   a (default path): cluster a.x",
        "                     10.0.0.1:21000  n1  a-1-sidecar-proxy  critical  no traffic",
        "",
        "The path works, with 1 warning.",
    ])


@pytest.mark.parametrize(("body", "expected"), [
    (WORKS, "The path works, with 1 warning."),
    (answer(("proxy", "ok", "p", [])), "The path works."),
    (BROKEN, "Broken at step 2 (upstream): web has no upstream to api"),
], ids=["warned", "clean", "broken"])
def test_verdict(body, expected):
    assert format_verdict(body) == expected


def test_a_working_path_exits_0_and_sends_source_and_destination(agent, cli):
    agent.on("GET", PATH, WORKS)
    r = cli("connect", "trace", "web", "api")
    assert (r.code, r.err) == (0, "")
    assert r.out.endswith("The path works, with 1 warning.\n")
    assert agent.query() == [("source", "web"), ("destination", "api")]


def test_a_broken_path_exits_1_and_names_the_step(agent, cli):
    agent.on("GET", PATH, BROKEN)
    r = cli("connect", "trace", "web", "api")
    assert r.code == 1
    assert "FAIL  2 upstream  web has no upstream to api\n" in r.out
    assert r.out.endswith("Broken at step 2 (upstream): web has no upstream to api\n")


@pytest.mark.parametrize("argv", [
    ["-format=json", "web", "api"], ["web", "api", "-format=json"], ["web", "api", "-format", "json"],
], ids=["flag-first", "flag-last", "flag-last-spaced"])
def test_json_prints_the_api_object_wherever_the_flag_is(agent, cli, argv):
    agent.on("GET", PATH, BROKEN)
    r = cli("connect", "trace", *argv)
    assert r.code == 1
    assert json.loads(r.out) == BROKEN
    assert agent.query() == [("source", "web"), ("destination", "api")]


def test_an_unknown_name_exits_2_with_the_agents_message(agent, cli):
    agent.on("GET", PATH, "unknown destination 'nope': no upstream of web-1-sidecar-proxy and no service in the "
                          "catalog has that name", status=404)
    r = cli("connect", "trace", "web", "nope")
    assert (r.code, r.out) == (2, "")
    assert r.err == ("Error tracing web → nope: Unexpected response code: 404 (unknown destination 'nope': no "
                     "upstream of web-1-sidecar-proxy and no service in the catalog has that name)\n")


@pytest.mark.parametrize(("argv", "message"), [
    (["web"], "Error: command requires exactly two arguments: SRC and DST\n"),
    (["web", "api", "db"], "Error: command requires exactly two arguments: SRC and DST\n"),
    (["-format=xml", "web", "api"], "Unknown format: xml\n"),
], ids=["one-argument", "three-arguments", "bad-format"])
def test_usage_errors_exit_2_without_a_request(agent, cli, argv, message):
    r = cli("connect", "trace", *argv)
    assert (r.code, r.err) == (2, message)
    assert agent.requests == []


def test_an_unknown_flag_exits_2_with_the_usage(agent, cli):
    r = cli("connect", "trace", "-bogus", "web", "api")
    assert r.code == 2
    assert r.err.startswith("flag provided but not defined: -bogus\nUsage: trellis connect trace [options] SRC DST\n")
