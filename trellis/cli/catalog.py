"""``trellis catalog datacenters|nodes|services``: list the catalog (thin API client).

Each command: parse flags → one GET → a pure ``format_*`` turns the API's JSON
into the lines Consul's ``consul catalog ...`` prints. Rules:
1. Nothing matched → a note on stderr and exit 0 (Consul), or the empty JSON value
   on stdout with ``-format=json``.
2. API errors → ``Error listing <what>: <api error>`` on stderr, exit 1.
3. Positionals are an error: ``Too many arguments (expected 0, got N)``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from trellis.cli import http, output
from trellis.cli.flags import Flag, FlagSet, Kind, Parsed
from trellis.cli.output import CommandError
from trellis.errors import TrellisError

NO_NODES = "No nodes match the given query - try expanding your search."
NO_SERVICES = "No services match the given query - try expanding your search."

_NODE_META = Flag("node-meta", Kind.MAP, metavar="key=value", help=(
    "Metadata to filter nodes with the given key=value pairs. This flag may be specified "
    "multiple times to filter on multiple sources of metadata."))

DATACENTERS_FLAGS = FlagSet(
    usage="Usage: trellis catalog datacenters [options]",
    description="""
        Retrieves the list of all known datacenters. The datacenters are sorted in
        ascending order based on the estimated median round trip time from the servers
        in this datacenter to the servers in the other datacenters.

        To retrieve the list of datacenters:

            $ trellis catalog datacenters
    """,
    flags=(*http.CLIENT_FLAGS, *http.SERVER_FLAGS, output.FORMAT_FLAG),
)

NODES_FLAGS = FlagSet(
    usage="Usage: trellis catalog nodes [options]",
    description="""
        Retrieves the list of nodes registered in a given datacenter. By default, the
        datacenter of the local agent is queried.

        To print detailed information including full node IDs, tagged addresses, and
        metadata information:

            $ trellis catalog nodes -detailed

        To list nodes which are running a particular service:

            $ trellis catalog nodes -service=web
    """,
    flags=(
        *http.CLIENT_FLAGS, *http.SERVER_FLAGS, http.PARTITION_FLAG, output.FORMAT_FLAG, _NODE_META,
        Flag("detailed", Kind.BOOL, help=(
            "Output detailed information about the nodes including their addresses and metadata.")),
        Flag("filter", metavar="string", help=(
            "Filter to use with the request; @file reads it from a file and - from stdin.")),
        Flag("near", metavar="string", help=(
            "Node name to sort the node list in ascending order based on estimated round-trip "
            'time from that node. Passing "_agent" will use this agent\'s node for sorting.')),
        Flag("service", metavar="id or name", help=(
            "Service id or name to filter nodes. Only nodes which are providing the given "
            "service will be returned.")),
    ),
)

SERVICES_FLAGS = FlagSet(
    usage="Usage: trellis catalog services [options]",
    description="""
        Retrieves the list of services registered in a given datacenter. By default,
        the datacenter of the local agent is queried.

        To include the services' tags in the output:

            $ trellis catalog services -tags

        To list services which run on a particular node:

            $ trellis catalog services -node=web
    """,
    flags=(
        *http.CLIENT_FLAGS, *http.SERVER_FLAGS, *http.MULTI_TENANCY_FLAGS, output.FORMAT_FLAG,
        _NODE_META,
        Flag("node", metavar="id or name", help="Node id or name for which to list services."),
        Flag("tags", Kind.BOOL, help=(
            "Display each service's tags as a comma-separated list beside each service entry.")),
    ),
)


def list_datacenters(argv: list[str]) -> int:
    parsed = DATACENTERS_FLAGS.parse(argv)
    fmt = _start(parsed)
    try:
        dcs = http.client_for(parsed).get("/v1/catalog/datacenters") or []
    except TrellisError as exc:
        return output.fail(f"Error listing datacenters: {exc}")
    output.out(output.format_json(dcs) if fmt == output.JSON else "\n".join(dcs))
    return 0


def list_nodes(argv: list[str]) -> int:
    parsed = NODES_FLAGS.parse(argv)
    fmt = _start(parsed)
    query = _query(parsed, filter=_load_filter(parsed.filter), near=parsed.near)
    client = http.client_for(parsed)
    try:
        if parsed.service:
            entries = client.get(f"/v1/catalog/service/{parsed.service}", query) or []
            nodes = [node_of_service_entry(e) for e in entries]
        else:
            nodes = client.get("/v1/catalog/nodes", query) or []
    except TrellisError as exc:
        what = "nodes for service" if parsed.service else "nodes"
        return output.fail(f"Error listing {what}: {exc}")
    if fmt == output.JSON:
        output.out(output.format_json(nodes))
    elif not nodes:
        output.err(NO_NODES)
    else:
        output.out(format_nodes(nodes, detailed=parsed.detailed))
    return 0


def list_services(argv: list[str]) -> int:
    parsed = SERVICES_FLAGS.parse(argv)
    fmt = _start(parsed)
    query = _query(parsed)
    client = http.client_for(parsed)
    try:
        if parsed.node:
            answer = client.get(f"/v1/catalog/node-services/{parsed.node}", query) or {}
            services = services_of_node(answer)
        else:
            services = client.get("/v1/catalog/services", query) or {}
    except TrellisError as exc:
        what = "services for node" if parsed.node else "services"
        return output.fail(f"Error listing {what}: {exc}")
    services = {name: sorted(set(tags or ())) for name, tags in sorted(services.items())}
    if fmt == output.JSON:
        output.out(output.format_json(services))
    elif not services:
        output.err(NO_SERVICES)
    else:
        output.out(format_services(services, tags=parsed.tags))
    return 0


def _start(parsed: Parsed) -> str:
    """Common checks before any request; returns the output format."""
    if parsed.args:
        raise CommandError(f"Too many arguments (expected 0, got {len(parsed.args)})")
    return output.check_format(parsed.format)


def _query(parsed: Parsed, **extra: str) -> list[tuple[str, str]]:
    query = [("node-meta", pair) for pair in http.query_pairs(parsed.node_meta)]
    query += [(k, v) for k, v in extra.items() if v]
    return query


def _load_filter(text: str) -> str:
    """Consul's ``LoadDataSource``: ``@path`` reads a file, ``-`` reads stdin, else literal."""
    try:
        if text.startswith("@"):
            with open(text[1:], encoding="utf-8") as f:
                return f.read()
        if text == "-":
            return sys.stdin.read()
    except OSError as exc:
        raise CommandError(f"Could not process filter argument: Failed to read file: {exc}") from None
    return text


def node_of_service_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A ``/v1/catalog/service`` entry as a node (Consul's ``catalog nodes -service``). Pure."""
    return {
        "ID": entry.get("ID", ""),
        "Node": entry.get("Node", ""),
        "Address": entry.get("Address", ""),
        "Datacenter": entry.get("Datacenter", ""),
        "TaggedAddresses": entry.get("TaggedAddresses"),
        "Meta": entry.get("NodeMeta"),
        "CreateIndex": entry.get("CreateIndex", 0),
        "ModifyIndex": entry.get("ModifyIndex", 0),
    }


def services_of_node(answer: Mapping[str, Any]) -> dict[str, list[str]]:
    """``/v1/catalog/node-services/:node`` → service name → tags. Unknown node → {}. Pure."""
    out: dict[str, list[str]] = {}
    for service in answer.get("Services") or ():
        out.setdefault(service.get("Service", ""), []).extend(service.get("Tags") or ())
    return out


def format_nodes(nodes: Sequence[Mapping[str, Any]], *, detailed: bool) -> str:
    """``Node ID Address DC`` (+ ``TaggedAddresses Meta``) as Consul prints them. Pure.

    Without -detailed the ID is cut at its first dash (``40e4a748``).
    """
    header = ["Node", "ID", "Address", "DC"]
    rows: list[list[str]] = [header + ["TaggedAddresses", "Meta"] if detailed else header]
    for n in nodes:
        node_id = n.get("ID") or ""
        if not detailed and node_id.find("-") > 0:
            node_id = node_id[: node_id.find("-")]
        row = [n.get("Node") or "", node_id, n.get("Address") or "", n.get("Datacenter") or ""]
        if detailed:
            row += [output.format_pairs(n.get("TaggedAddresses"), ", "), output.format_pairs(n.get("Meta"), ", ")]
        rows.append(row)
    return output.columnize(rows)


def format_services(services: Mapping[str, Sequence[str]], *, tags: bool) -> str:
    """Service names sorted, one per line; with ``tags``, Consul's tabwriter layout. Pure.

    NOTE: ``-tags`` output comes from Go's ``tabwriter`` (padding 6), not
    ``columnize``: names are padded to the longest name + 6, then the sorted tags
    joined by commas; the whole block is whitespace-trimmed at both ends.
    """
    names = sorted(services)
    if not tags:
        return "\n".join(names)
    width = max(len(n) for n in names) + 6
    return "\n".join(f"{n.ljust(width)}{','.join(sorted(services[n]))}" for n in names).strip()
