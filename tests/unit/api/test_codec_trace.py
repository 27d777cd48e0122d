"""JSON of ``GET /v1/agent/connect/trace``: field names and order, and the verdict."""

from __future__ import annotations

from trellis.api.codec_trace import encode_trace
from trellis.proxycfg.trace import Status, Step, Trace


def _trace(*statuses: Status) -> Trace:
    names = ("proxy", "upstream", "chain")
    steps = tuple(Step(n, s, f"{n} says {s}", (f"{n} detail", "  nested")) for n, s in zip(names, statuses))
    return Trace("web-1-sidecar-proxy", "web", "default", "api", steps)


def test_a_working_trace_has_no_failed_step():
    out = encode_trace(_trace(Status.OK, Status.WARNING, Status.OK))
    assert list(out) == ["Source", "SourceService", "Namespace", "Destination", "Ok", "FailedStep", "Steps"]
    assert (out["Ok"], out["FailedStep"]) == (True, "")
    assert out["Steps"][1] == {"Step": 2, "Name": "upstream", "Status": "warning", "Summary": "upstream says warning",
                               "Details": ["upstream detail", "  nested"]}


def test_the_first_failed_step_is_the_verdict():
    out = encode_trace(_trace(Status.OK, Status.FAILED, Status.FAILED))
    assert (out["Ok"], out["FailedStep"]) == (False, "upstream")
    assert [s["Status"] for s in out["Steps"]] == ["ok", "failed", "failed"]
