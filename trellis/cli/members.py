"""``trellis members``: the cluster's members as Consul's ``consul members`` prints them.

Flow: GET /v1/agent/members (``?wan=1``, ``?segment=``, ``?filter=``) → ``annotate``
(Consul fills the ``partition`` and ``segment`` tags) → keep those whose status
matches ``-status`` → ``sort_members`` → a columnized table. Rules:
1. No member left after filtering → exit 2 and no output (``[]`` with -format=json).
2. Status is serf's word for the API's integer: none, alive, leaving, left, failed.
3. Sorted servers first, then default-partition members, by segment, partition, name.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from trellis.cli import http, output
from trellis.cli.flags import Flag, FlagSet, Kind
from trellis.cli.output import CommandError
from trellis.errors import TrellisError

ALL_SEGMENTS = "_all"  # Consul's api.AllSegments
EXIT_NO_MEMBERS = 2
STATUS = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}

FLAGS = FlagSet(
    usage="Usage: trellis members [options]",
    description="""
        Outputs the members of a running trellis agent.
    """,
    flags=(
        *http.CLIENT_FLAGS, http.PARTITION_FLAG, output.FORMAT_FLAG,
        Flag("detailed", Kind.BOOL, help="Provides detailed information about nodes."),
        Flag("wan", Kind.BOOL, help=(
            "If the agent is in server mode, this can be used to return the other peers in "
            "the WAN pool.")),
        Flag("status", default=".*", metavar="string", help=(
            "If provided, output is filtered to only nodes matching the regular expression "
            "for status.")),
        Flag("segment", default=ALL_SEGMENTS, metavar="string", help=(
            "(Enterprise-only) If provided, output is filtered to only nodes in the given "
            "segment.")),
        Flag("filter", metavar="string", help="Filter to use with the request."),
    ),
)


def run(argv: list[str]) -> int:
    parsed = FLAGS.parse(argv)
    fmt = output.check_format(parsed.format)
    try:
        status_re = re.compile(parsed.status)
    except re.error as exc:
        raise CommandError(f"Failed to compile status regexp: {exc}") from None
    query = []
    if parsed.wan:
        query.append(("wan", "1"))
    if parsed.segment != ALL_SEGMENTS:
        query.append(("segment", parsed.segment))
    if parsed.filter:
        query.append(("filter", parsed.filter))
    client = http.client_for(parsed)
    try:
        members = client.get("/v1/agent/members", query) or []
    except TrellisError as exc:
        return output.fail(f"Error retrieving members: {exc}")
    members = [m for m in members if status_re.search(status_name(m.get("Status")))]
    all_segments = parsed.segment == ALL_SEGMENTS
    if fmt == output.JSON:
        # The API's own objects (without display tags), in display order.
        members = sorted(members, key=lambda m: sort_key(annotate(m, all_segments=all_segments)))
        output.out(output.format_json(members))
        return 0 if members else EXIT_NO_MEMBERS
    members = sort_members([annotate(m, all_segments=all_segments) for m in members])
    if members:
        output.out(format_detailed(members) if parsed.detailed else format_standard(members))
    return 0 if members else EXIT_NO_MEMBERS


def status_name(status: Any) -> str:
    return STATUS.get(status, "unknown") if isinstance(status, int) else str(status or "none")


def annotate(member: Mapping[str, Any], *, all_segments: bool) -> dict[str, Any]:
    """A copy with Consul's display tags: ``partition`` (default) and ``segment``. Pure.

    Servers show segment ``<all>`` when every segment was asked for; others with
    none show ``<default>``.
    """
    tags = dict(member.get("Tags") or {})
    tags["partition"] = tags.get("partition") or "default"
    if tags["partition"] == "default":
        if all_segments and tags.get("role") == "consul":
            tags["segment"] = "<all>"
        elif not tags.get("segment"):
            tags["segment"] = "<default>"
    else:
        tags["segment"] = ""
    return {**member, "Tags": tags}


def sort_members(members: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Servers first, default partition next, then segment, partition, name. Pure."""
    return sorted(members, key=sort_key)


def sort_key(member: Mapping[str, Any]) -> tuple[bool, bool, str, str, str]:
    """Consul's ``ByMemberNamePartitionAndSegment`` order for an annotated member. Pure."""
    tags = member.get("Tags") or {}
    partition = tags.get("partition", "")
    return (
        tags.get("role") != "consul",
        partition not in ("", "default"),
        tags.get("segment", ""),
        partition,
        member.get("Name", ""),
    )


def format_address(addr: str, port: Any) -> str:
    """Go's ``net.TCPAddr.String()``: ``ip:port``, ``[v6]:port``, ``:port`` if not an IP. Pure."""
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return f":{port}"
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def format_standard(members: Sequence[Mapping[str, Any]]) -> str:
    """``Node Address Status Type Build Protocol DC Partition Segment``. Pure."""
    rows = [["Node", "Address", "Status", "Type", "Build", "Protocol", "DC", "Partition", "Segment"]]
    for m in members:
        tags = m.get("Tags") or {}
        head = [m.get("Name", ""), format_address(m.get("Addr", ""), m.get("Port", 0)), status_name(m.get("Status"))]
        kind = {"consul": "server", "node": "client"}.get(tags.get("role", ""))
        if kind is None:
            rows.append([*head, "unknown", "", "", "", "", ""])
            continue
        build = tags.get("build", "")
        build = build.partition(":")[0] if build else "< 0.3"
        rows.append([*head, kind, build, tags.get("vsn", ""), tags.get("dc", ""),
                     tags.get("partition", ""), tags.get("segment", "")])
    return output.columnize(rows)


def format_detailed(members: Sequence[Mapping[str, Any]]) -> str:
    """``Node Address Status Tags`` with every tag as ``k=v`` sorted by key. Pure."""
    rows = [["Node", "Address", "Status", "Tags"]]
    for m in members:
        rows.append([
            m.get("Name", ""),
            format_address(m.get("Addr", ""), m.get("Port", 0)),
            status_name(m.get("Status")),
            output.format_pairs(m.get("Tags"), ","),
        ])
    return output.columnize(rows)
