"""JSON for ``GET /v1/agent/connect/trace`` (trellis's own endpoint, in Consul's
CamelCase style; pure).

    {"Source": "web-1-sidecar-proxy", "SourceService": "web", "Namespace": "default",
     "Destination": "api", "Ok": false, "FailedStep": "endpoints",
     "Steps": [{"Step": 1, "Name": "proxy", "Status": "ok", "Summary": "...", "Details": ["..."]}, ...]}

``FailedStep`` is the verdict (proxycfg/trace.py rule 2): the name of the first failed
step, ``""`` when the path works. ``Status`` is ``ok``, ``warning``, ``failed`` or
``skipped``. ``Details`` are display lines (two leading spaces per level of nesting).
"""

from __future__ import annotations

from typing import Any

from trellis.proxycfg.trace import Step, Trace


def encode_step(number: int, step: Step) -> dict[str, Any]:
    return {"Step": number, "Name": step.name, "Status": str(step.status), "Summary": step.summary,
            "Details": list(step.details)}


def encode_trace(t: Trace) -> dict[str, Any]:
    failed = t.failed
    return {
        "Source": t.source, "SourceService": t.source_service, "Namespace": t.namespace,
        "Destination": t.destination, "Ok": failed is None, "FailedStep": failed.name if failed else "",
        "Steps": [encode_step(n, s) for n, s in enumerate(t.steps, start=1)],
    }
