"""``trellis connect trace SRC DST``: the path a request from SRC's proxy to DST would
take, as the agent computes it from the snapshot the proxy gets (trellis's own command;
``GET /v1/agent/connect/trace``, proxycfg/trace.py).

Rules:
1. SRC is a proxy ID, or the ID or name of a service whose sidecar runs on the agent, or
   an ingress gateway registered with it; DST is a service name or ``ns/name``. Flags may come before or after them.
2. The pretty output is one line per step, ``OK``/``WARN``/``FAIL``/``SKIP`` first,
   each step's details indented under its summary, then the verdict on its own line.
   ``-format=json`` prints the API's object.
3. Exit 0 when the path works (warnings included), 1 when a step fails (the verdict
   line names it), 2 when there is no trace: bad flags or arguments, an agent that
   does not answer, an unknown SRC or DST (as ``intention check`` exits 2 on errors).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trellis.cli import http, output
from trellis.cli.flags import FlagSet, Parsed, UsageError
from trellis.cli.output import CommandError
from trellis.errors import TrellisError

TRACE_PATH = "/v1/agent/connect/trace"
EXIT_BROKEN, EXIT_ERROR = 1, 2
MARKERS = {"ok": "OK", "warning": "WARN", "failed": "FAIL", "skipped": "SKIP"}
_MARKER_WIDTH = max(len(m) for m in MARKERS.values())

FLAGS = FlagSet(
    usage="Usage: trellis connect trace [options] SRC DST",
    description="""
        Prints the path a request from SRC to DST would take through the mesh, computed
        from the snapshot SRC's proxy gets: the proxy and its data plane, the upstream,
        the discovery chain (router, splitter, resolver), each target's instances and
        their health, the certificates each side presents, and the intention that
        decides. It says at which step the path breaks.

        SRC is a proxy ID, or the ID or name of a service whose sidecar runs on the
        agent, or an ingress gateway registered with it; DST is a service name or
        namespace/name.

            $ trellis connect trace web api
            $ trellis connect trace web-1-sidecar-proxy api -format=json
            $ trellis connect trace ingress-gateway web

        Exit 0 when the path works, 1 when a step fails, 2 on errors.
    """,
    flags=(*http.CLIENT_FLAGS, output.FORMAT_FLAG),
)


def run(argv: list[str]) -> int:
    parsed = _parse(argv)
    if len(parsed.args) != 2:
        return output.fail("Error: command requires exactly two arguments: SRC and DST", EXIT_ERROR)
    source, destination = parsed.args
    try:
        fmt = output.check_format(parsed.format)
        client = http.client_for(parsed)
        answer = client.get(TRACE_PATH, [("source", source), ("destination", destination)]) or {}
    except CommandError as exc:
        return output.fail(str(exc), EXIT_ERROR)
    except TrellisError as exc:
        return output.fail(f"Error tracing {source} → {destination}: {exc}", EXIT_ERROR)
    output.out(output.format_json(answer) if fmt == output.JSON else format_trace(answer))
    return 0 if answer.get("Ok") else EXIT_BROKEN


def _parse(argv: list[str]) -> Parsed:
    """Rule 1: Go's parse stops at SRC; flags after DST are parsed by moving SRC and DST
    to the end. A flag error exits 2 (rule 3)."""
    try:
        parsed = FLAGS.parse(argv)
        rest = list(parsed.args)
        if len(rest) > 2 and rest[2].startswith("-"):
            leading = list(argv[:len(argv) - len(rest)])
            parsed = FLAGS.parse([*leading, *rest[2:], *rest[:2]])
        return parsed
    except UsageError as exc:
        output.err(str(exc))
        raise CommandError(exc.usage.rstrip("\n"), EXIT_ERROR) from None


def format_trace(answer: Mapping[str, Any]) -> str:
    """Rule 2 over the API's object. Pure."""
    steps: Sequence[Mapping[str, Any]] = answer.get("Steps") or []
    width = max((len(s.get("Name", "")) for s in steps), default=0)
    indent = " " * (_MARKER_WIDTH + 2 + len(str(len(steps))) + 1 + width + 2)
    head = f"Trace {answer.get('SourceService', '')} → {answer.get('Destination', '')} " \
           f"(from proxy {answer.get('Source', '')})"
    lines = [head, ""]
    for s in steps:
        marker = MARKERS.get(s.get("Status", ""), "?")
        lines.append(f"{marker.ljust(_MARKER_WIDTH)}  {s.get('Step', '')} {s.get('Name', '').ljust(width)}  "
                     f"{s.get('Summary', '')}")
        lines += [indent + d for d in s.get("Details") or []]
    lines += ["", format_verdict(answer)]
    return "\n".join(lines)


def format_verdict(answer: Mapping[str, Any]) -> str:
    """``The path works.``, with the warnings counted, or the first failed step. Pure."""
    steps: Sequence[Mapping[str, Any]] = answer.get("Steps") or []
    failed = next((s for s in steps if s.get("Status") == "failed"), None)
    if failed is not None:
        return f"Broken at step {failed.get('Step')} ({failed.get('Name')}): {failed.get('Summary')}"
    warnings = sum(1 for s in steps if s.get("Status") == "warning")
    return "The path works." if not warnings else \
        f"The path works, with {warnings} warning{'s' if warnings > 1 else ''}."
