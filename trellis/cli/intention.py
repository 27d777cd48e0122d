"""``trellis intention create|delete|get|list|check|match|apply``: intentions (thin API client).

Flow: flags + ``SRC DST`` (``parse_target``) → GET/POST/PUT/DELETE on
``/v1/connect/intentions*`` → a pure ``format_*`` → stdout. ``apply`` reads a rules
file (connect/intentions/rules.py), diffs it against the agent's intentions and
writes the difference through ``/exact``.

Rules:
1. ``SRC``/``DST`` are ``name``, ``ns/name`` (or ``default/ns/name``); ``*`` is a whole
   name. ``-source-namespace``/``-destination-namespace`` give the namespace of a bare
   name; a name that says another one is an error. A namespace given nowhere is the
   request's (``-namespace``/``CONSUL_NAMESPACE``), else ``default``; the CLI sends it
   filled in, so the agent never has to guess one side's namespace from the other.
2. Intentions print as Consul's ``Intention.String()``: ``web => db (allow)``,
   ``frontend/* => * (deny)``, ``web => db (2 permissions)``; a namespace shows only
   when it is not ``default``.
3. ``create`` looks the pair up (``GET /exact``) first. Absent: legacy ``POST``, as
   Consul does. Present and the same (L4, same action, and the description and meta
   the command gives, if it gives any): nothing is written and the command succeeds,
   so the seed's repeated ``create web api`` works after a ``-description`` one. Present and different: an error naming the
   existing intention, unless ``-replace``, which updates it (``PUT /:id`` for a
   legacy intention, ``PUT /exact`` for one from a config entry).
4. ``-dry-run`` sends the same write with ``?dry-run`` and prints the decisions it
   would change (``SOURCE DESTINATION BEFORE AFTER``); an agent that answers
   anything but ``{"DryRun": true, ...}`` is reported as an error.
5. Exit codes are Consul's: ``list`` 2 when there is none; ``check`` 0 allowed,
   1 denied, 2 for any error, bad flags included; ``match`` 2 for bad flags.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from trellis.cli import http, output
from trellis.cli.connect_ca import display_name, read_config_file
from trellis.cli.flags import Flag, FlagSet, Kind, Parsed, UsageError
from trellis.cli.output import CommandError
from trellis.connect.intentions import rules
from trellis.connect.intentions.model import WILDCARD, Action
from trellis.connect.intentions.names import DEFAULT_NAMESPACE, InvalidIntentionName, parse_name
from trellis.cli.intention_output import (
    NO_DECISION_CHANGES,
    body_ref,
    format_change,
    format_dry_run,
    format_get,
    format_intention,
    format_list,
    format_no_changes,
    format_pair,
    format_summary,
    intention_detail,
)
from trellis.connect.intentions.rules import Change, Op, Ref, Rule
from trellis.errors import InvalidInput, TrellisError

INTENTIONS_PATH = "/v1/connect/intentions"
EXACT_PATH = INTENTIONS_PATH + "/exact"
MATCH_PATH = INTENTIONS_PATH + "/match"
CHECK_PATH = INTENTIONS_PATH + "/check"
STDIN = "-"

NO_INTENTIONS = "There are no intentions."
NO_MATCH = "(no intention matched: default policy)"
EXIT_DENIED, EXIT_CHECK_ERROR, EXIT_EMPTY = 1, 2, 2

# -file bodies: Go decodes JSON keys case-insensitively; these are the ones worth sending.
_FILE_KEYS = {k.lower(): k for k in ("SourceNS", "SourceName", "SourcePartition", "DestinationNS",
                                      "DestinationName", "DestinationPartition", "SourceType", "Action",
                                      "Description", "Meta", "Permissions")}
# ...and these are read-only fields of an intention as the API prints it; dropped.
_READ_ONLY = frozenset(k.lower() for k in ("ID", "CreatedAt", "UpdatedAt", "Precedence", "Hash",
                                           "CreateIndex", "ModifyIndex"))

_HTTP = (*http.CLIENT_FLAGS, *http.SERVER_FLAGS, *http.MULTI_TENANCY_FLAGS)
_DRY_RUN = Flag("dry-run", Kind.BOOL, help=(
    "Ask the agent which decisions between registered services would change, print them, "
    "and write nothing."))

CREATE_FLAGS = FlagSet(
    usage="Usage: trellis intention create [options] SRC DST\n"
          "Usage: trellis intention create [options] -file FILE...",
    description="""
        Create one or more intentions. The data can be specified as a single
        source and destination pair or via a set of files when the "-file" flag
        is specified.

            $ trellis intention create web db
            $ trellis intention create -deny -source-namespace=frontend "*" "*"

        To consume data from a set of files:

            $ trellis intention create -file one.json two.json

        When specifying the "-file" flag, "-" may be used once to read from stdin:

            $ echo "{ ... }" | trellis intention create -file -

        An "allow" intention is created by default (allowlist). To create a
        "deny" intention, the "-deny" flag should be specified.

        Creating an intention that exists with the same action, description and
        metadata changes nothing. If a different intention exists for the pair,
        creation will fail. To replace it, specify the "-replace" flag: metadata
        and any other fields of the previous intention will not be preserved.
    """,
    flags=(
        *_HTTP, _DRY_RUN,
        Flag("allow", Kind.BOOL, help="Create an intention that allows when matched."),
        Flag("deny", Kind.BOOL, help="Create an intention that denies when matched."),
        Flag("file", Kind.BOOL, help="Read intention data from one or more files."),
        Flag("replace", Kind.BOOL, help="Replace matching intentions."),
        Flag("meta", Kind.MAP, help=(
            "Metadata to set on the intention, formatted as key=value. This flag may be "
            "specified multiple times to set multiple meta fields.")),
        Flag("description", metavar="string", help="A description of the intention."),
        Flag("source-namespace", metavar="string", help=(
            "The namespace of SRC when SRC names none. The default is the request's "
            "namespace, else \"default\".")),
        Flag("destination-namespace", metavar="string", help=(
            "The namespace of DST when DST names none. The default is the request's "
            "namespace, else \"default\".")),
    ),
)

DELETE_FLAGS = FlagSet(
    usage="Usage: trellis intention delete [options] SRC DST\nUsage: trellis intention delete [options] ID",
    description="""
        Delete an intention. This cannot be reversed. The intention can be looked
        up via an exact source/destination match or via the unique intention ID.

            $ trellis intention delete web db
    """,
    flags=_HTTP,
)

GET_FLAGS = FlagSet(
    usage="Usage: trellis intention get [options] SRC DST\nUsage: trellis intention get [options] ID",
    description="""
        Read and show the details about an intention. The intention can be looked
        up via an exact source/destination match or via the unique intention ID.

            $ trellis intention get web db
    """,
    flags=_HTTP,
)

LIST_FLAGS = FlagSet(
    usage="Usage: trellis intention list [options]",
    description="""
        List all intentions.

            $ trellis intention list
    """,
    flags=(*_HTTP, output.FORMAT_FLAG),
)

CHECK_FLAGS = FlagSet(
    usage="Usage: trellis intention check [options] SRC DST",
    description="""
        Check whether a connection between SRC and DST would be allowed by
        Connect given the current configuration. Exit 0 when allowed, 1 when
        denied, 2 on any error.

            $ trellis intention check web db
            $ trellis intention check -verbose web db
    """,
    flags=(
        *_HTTP,
        Flag("verbose", Kind.BOOL, help=(
            "Also print the intention that decides, as \"trellis intention get\" does, or say "
            "that none matched and the default policy decides.")),
    ),
)

MATCH_FLAGS = FlagSet(
    usage="Usage: trellis intention match [options] SRC|DST",
    description="""
        Show the list of intentions that would be enforced for a given source
        or destination. The intentions are listed in the order they would be
        evaluated.

            $ trellis intention match db
            $ trellis intention match -source web
    """,
    flags=(
        *_HTTP,
        Flag("source", Kind.BOOL, help="Match intentions with the given source."),
        Flag("destination", Kind.BOOL, help="Match intentions with the given destination."),
    ),
)

APPLY_FLAGS = FlagSet(
    usage="Usage: trellis intention apply [options] FILE",
    description="""
        Make the intentions of the services a rules file names what the file says
        (HCL or JSON; "-" reads stdin). The file owns every intention whose source
        is a service it names: missing ones are created, different ones changed,
        and ones the file does not ask for deleted. Others are left alone.

            service "web"   { policy = "write" intentions = ["api", "database"] }
            service "admin" { policy = "deny" }

            $ trellis intention apply -dry-run rules.hcl
            $ trellis intention apply rules.hcl
    """,
    flags=(
        *_HTTP,
        Flag("dry-run", Kind.BOOL, help="Print the changes and write nothing."),
    ),
)


# --------------------------------------------------------------------------- create


def create(argv: list[str]) -> int:
    parsed = CREATE_FLAGS.parse(argv)
    if parsed.allow and parsed.deny:
        return output.fail("Only one of -allow or -deny may be specified.")
    client = http.client_for(parsed)
    default_ns = client.config.namespace or DEFAULT_NAMESPACE
    try:
        if parsed.file:
            bodies = [body_from_file(_read_json(path), display_name(path), default_ns)
                      for path in _file_args(parsed.args)]
        else:
            bodies = [body_from_args(parsed, default_ns)]
    except InvalidInput as exc:
        return output.fail(f"Error: {exc}")
    for body in bodies:
        create_one(client, body, replace=parsed.replace, dry_run=parsed.dry_run, many=len(bodies) > 1)
    return 0


def _file_args(args: Sequence[str]) -> Sequence[str]:
    if not args:
        raise CommandError("Error: Must specify at least one file with -file")
    if list(args).count(STDIN) > 1:
        raise CommandError('Error: "-" (stdin) may be given only once')
    return args


def _read_json(path: str) -> dict[str, Any]:
    from trellis.config import hcl  # only -file needs it

    try:
        return hcl.parse_text(read_config_file(path), filename=display_name(path), fmt="json")
    except InvalidInput as exc:
        raise CommandError(str(exc)) from None  # "Error parsing <file>: line L, column C: ..."


def create_one(client: http.ApiClient, body: Mapping[str, Any], *, replace: bool, dry_run: bool,
               many: bool = False) -> None:
    """Rule 3 (and 4) for one intention (I/O). Raises CommandError on any failure."""
    shown = format_intention(body)
    source, destination = body_ref(body, "Source"), body_ref(body, "Destination")
    existing = find_exact(client, source, destination)
    if dry_run and many:
        output.out(f"{shown}:")
    if existing is not None and same_intention(existing, body):
        output.out(NO_DECISION_CHANGES if dry_run else f"Unchanged: {shown} (an identical intention exists)")
        return
    if existing is not None and not replace:
        raise CommandError(f"Error creating intention: an intention {format_pair(source, destination)} "
                           f"already exists ({intention_detail(existing)}); use -replace")
    if dry_run:
        output.out(format_dry_run(_dry_run(client, body, existing)))
        return
    try:
        if existing is None:
            client.request("POST", INTENTIONS_PATH, body=dict(body))
        elif existing.get("ID"):
            client.put(f"{INTENTIONS_PATH}/{existing['ID']}", dict(body))
        else:
            client.put(EXACT_PATH, exact_body(body), exact_params(source, destination))
    except TrellisError as exc:
        verb = "creating" if existing is None else "replacing"
        raise CommandError(f'Error {verb} intention "{shown}": {exc}') from None
    output.out(f"{'Created' if existing is None else 'Replaced'}: {shown}")


def _dry_run(client: http.ApiClient, body: Mapping[str, Any], existing: Mapping[str, Any] | None) -> Any:
    source, destination = body_ref(body, "Source"), body_ref(body, "Destination")
    try:
        if existing is None:
            answer = client.request("POST", INTENTIONS_PATH, [("dry-run", "")], body=dict(body)).json()
        else:
            answer = client.put(EXACT_PATH, exact_body(body), [*exact_params(source, destination), ("dry-run", "")])
    except TrellisError as exc:
        raise CommandError(f'Error checking intention "{format_intention(body)}": {exc}') from None
    if not isinstance(answer, dict) or answer.get("DryRun") is not True:
        raise CommandError(f"Error: the agent does not support -dry-run: it answered {json.dumps(answer)}, "
                           "so it may have written the intention")
    return answer


def find_exact(client: http.ApiClient, source: Ref, destination: Ref) -> dict[str, Any] | None:
    """The intention for the pair, or None (a 404). CommandError for other failures (I/O)."""
    try:
        return client.get(EXACT_PATH, exact_params(source, destination))
    except http.ApiError as exc:
        if exc.status == 404:
            return None
        raise CommandError(f"Error looking up intention {format_pair(source, destination)}: {exc}") from None
    except TrellisError as exc:
        raise CommandError(f"Error looking up intention {format_pair(source, destination)}: {exc}") from None


def body_from_args(parsed: Parsed, default_ns: str) -> dict[str, Any]:
    """The legacy create body for ``SRC DST`` and the flags. Pure; InvalidInput for bad args."""
    if len(parsed.args) != 2:
        raise InvalidInput("args", message="Must specify two arguments: source and destination")
    source = parse_target(parsed.args[0], parsed.source_namespace, default_ns, side="source")
    destination = parse_target(parsed.args[1], parsed.destination_namespace, default_ns, side="destination")
    return build_body(source, destination, Action.DENY if parsed.deny else Action.ALLOW,
                      description=parsed.description, meta=parsed.meta)


def build_body(source: Ref, destination: Ref, action: Action, *, description: str = "",
               meta: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A legacy ``POST /v1/connect/intentions`` body with both namespaces filled. Pure."""
    body: dict[str, Any] = {"SourceNS": source[0], "SourceName": source[1], "DestinationNS": destination[0],
                            "DestinationName": destination[1], "SourceType": "consul", "Action": action.value}
    if description:
        body["Description"] = description
    if meta:
        body["Meta"] = dict(meta)
    return body


def parse_target(text: str, namespace: str, default_ns: str, *, side: str) -> Ref:
    """Rule 1: ``name`` | ``ns/name`` | ``default/ns/name`` → (ns, name). Pure.

    ``namespace`` is the ``-source-namespace``/``-destination-namespace`` value ("" when
    not given). Raises InvalidInput ``Invalid intention source: ...`` (Consul's words).
    """
    try:
        ref = parse_name(text, namespace or default_ns)
    except InvalidIntentionName as exc:
        raise InvalidInput(side, text, message=f"Invalid intention {side}: {exc}") from None
    if namespace and "/" in text and ref[0] != namespace:
        raise InvalidInput(side, text, message=f'Invalid intention {side}: "{text}" is in namespace "{ref[0]}" '
                                               f'but -{side}-namespace is "{namespace}"')
    return ref


def body_from_file(doc: Mapping[str, Any], filename: str, default_ns: str) -> dict[str, Any]:
    """A ``-file`` JSON intention as a legacy create body (Consul's ``ixnFromFile``). Pure.

    Keys are matched in any case; the API's read-only fields are dropped; empty
    namespaces are filled (rule 1). Raises InvalidInput for an L7 intention (Consul's
    message) or an unknown key.
    """
    body: dict[str, Any] = {}
    for key, value in doc.items():
        folded = key.lower()
        if folded in _READ_ONLY:
            continue
        if folded not in _FILE_KEYS:
            raise InvalidInput(key, message=f'unknown key "{key}" in intention file "{filename}"')
        body[_FILE_KEYS[folded]] = value
    if body.get("Permissions"):
        raise InvalidInput("Permissions", message=f'cannot create L7 intention from file "{filename}" using '
                                                  "this CLI; use 'trellis config write' instead")
    body.pop("Permissions", None)
    for side in ("Source", "Destination"):
        body[f"{side}NS"] = body.get(f"{side}NS") or default_ns
    body.setdefault("SourceType", "consul")
    return body


def exact_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The ``PUT /exact`` body for a create body: action, type, description, meta. Pure.

    ``Meta`` goes only when given: on ``/exact`` it is the config entry's, which the agent
    refuses to change there.
    """
    out = {k: body[k] for k in ("Action", "SourceType", "Description") if body.get(k)}
    if body.get("Meta"):
        out["Meta"] = dict(body["Meta"])
    return out


def exact_params(source: Ref, destination: Ref) -> list[tuple[str, str]]:
    """``?source=ns/name&destination=ns/name``. Pure."""
    return [("source", f"{source[0]}/{source[1]}"), ("destination", f"{destination[0]}/{destination[1]}")]


def same_intention(existing: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """Rule 3: ``existing`` is L4 with the same action, and the description and meta
    that ``body`` gives (a create that names neither leaves the existing ones be). Pure."""
    return (not existing.get("Permissions")
            and str(existing.get("Action") or "").lower() == str(body.get("Action") or "").lower()
            and (not body.get("Description") or existing.get("Description") == body["Description"])
            and (not body.get("Meta") or dict(existing.get("Meta") or {}) == dict(body["Meta"])))


# --------------------------------------------------------------------------- delete and get


def delete(argv: list[str]) -> int:
    parsed = DELETE_FLAGS.parse(argv)
    client = http.client_for(parsed)
    args = parsed.args
    try:
        if len(args) == 1:
            client.request("DELETE", f"{INTENTIONS_PATH}/{args[0]}")
        elif len(args) == 2:
            client.request("DELETE", EXACT_PATH, [("source", args[0]), ("destination", args[1])])
        else:
            return output.fail("command requires exactly 1 or 2 arguments")
    except TrellisError as exc:
        return output.fail(f"Error deleting the intention: {exc}")
    output.out("Intention deleted.")
    return 0


def get(argv: list[str]) -> int:
    parsed = GET_FLAGS.parse(argv)
    client = http.client_for(parsed)
    ixn = fetch_intention(client, parsed.args)
    output.out(format_get(ixn))
    return 0


def fetch_intention(client: http.ApiClient, args: Sequence[str]) -> dict[str, Any]:
    """By ID (one argument) or exact pair (two), Consul's ``GetFromArgs`` (I/O).

    CommandError ``Error reading the intention: ...`` when it fails or is not there.
    """
    if len(args) == 1:
        path, params, missing = f"{INTENTIONS_PATH}/{args[0]}", [], f'with ID "{args[0]}"'
    elif len(args) == 2:
        path, params = EXACT_PATH, [("source", args[0]), ("destination", args[1])]
        missing = f'with source "{args[0]}" and destination "{args[1]}"'
    else:
        raise CommandError("command requires exactly 1 or 2 arguments")
    try:
        return client.get(path, params)
    except http.ApiError as exc:
        reason = f"Intention not found {missing}" if exc.status == 404 else str(exc)
        raise CommandError(f"Error reading the intention: {reason}") from None
    except TrellisError as exc:
        raise CommandError(f"Error reading the intention: {exc}") from None


# --------------------------------------------------------------------------- list, check, match


def list_intentions(argv: list[str]) -> int:
    parsed = LIST_FLAGS.parse(argv)
    fmt = output.check_format(parsed.format)
    if parsed.args:
        return output.fail(f"Too many arguments (expected 0, got {len(parsed.args)})")
    try:
        ixns = http.client_for(parsed).get(INTENTIONS_PATH) or []
    except TrellisError as exc:
        return output.fail(f"Failed to retrieve the intentions list: {exc}")
    if fmt == output.JSON:
        output.out(output.format_json(ixns))
        return 0
    if not ixns:
        return output.fail(NO_INTENTIONS, EXIT_EMPTY)
    output.out(format_list(ixns))
    return 0


def check(argv: list[str]) -> int:
    parsed = _parse_or_exit(CHECK_FLAGS, argv, EXIT_CHECK_ERROR)
    if len(parsed.args) != 2:
        return output.fail("Error: command requires exactly two arguments: src and dst", EXIT_CHECK_ERROR)
    source, destination = parsed.args
    try:
        client = http.client_for(parsed)
    except CommandError as exc:
        return output.fail(str(exc), EXIT_CHECK_ERROR)
    try:
        answer = client.get(CHECK_PATH, [("source", source), ("destination", destination)]) or {}
        matches = _deciders(client, source, destination) if parsed.verbose else None
    except TrellisError as exc:
        return output.fail(f"Error checking the connection: {exc}", EXIT_CHECK_ERROR)
    allowed = answer.get("Allowed") is True
    output.out("Allowed" if allowed else "Denied")
    if parsed.verbose:
        default_ns = client.config.namespace or DEFAULT_NAMESPACE
        try:
            decider = select_decider(matches or [], parse_name(source, default_ns))
        except InvalidInput as exc:
            return output.fail(f"Error checking the connection: {exc}", EXIT_CHECK_ERROR)
        output.out(NO_MATCH if decider is None else format_get(decider))
    return 0 if allowed else EXIT_DENIED


def _deciders(client: http.ApiClient, source: str, destination: str) -> list[dict[str, Any]]:
    """The intentions for ``destination``, in the order they are evaluated (I/O)."""
    answer = client.get(MATCH_PATH, [("by", "destination"), ("name", destination)]) or {}
    return answer.get(destination) or []


def select_decider(matches: Iterable[Mapping[str, Any]], source: Ref) -> Mapping[str, Any] | None:
    """The first of ``matches`` (precedence order, as ``/match`` gives them) whose source
    covers ``source``, exactly or by wildcard; None when the default policy decides. Pure."""
    ns, name = source
    for ixn in matches:
        src_ns, src_name = body_ref(ixn, "Source")
        if src_ns in (WILDCARD, ns) and src_name in (WILDCARD, name):
            return ixn
    return None


def match(argv: list[str]) -> int:
    parsed = _parse_or_exit(MATCH_FLAGS, argv, 2)
    if len(parsed.args) != 1:
        return output.fail("Error: command requires exactly one argument: src or dst")
    if parsed.source and parsed.destination:
        return output.fail("Error: only one of -source or -destination may be specified")
    name = parsed.args[0]
    by = "source" if parsed.source else "destination"
    try:
        answer = http.client_for(parsed).get(MATCH_PATH, [("by", by), ("name", name)]) or {}
    except TrellisError as exc:
        return output.fail(f"Error matching the connection: {exc}")
    found = answer.get(name) or []
    if found:
        output.out("\n".join(format_intention(ixn) for ixn in found))
    return 0


def _parse_or_exit(flagset: FlagSet, argv: list[str], code: int) -> Parsed:
    """``flagset.parse``, but a flag error exits ``code`` (Consul's check and match exit 2)."""
    try:
        return flagset.parse(argv)
    except UsageError as exc:
        output.err(str(exc))
        raise CommandError(exc.usage.rstrip("\n"), code) from None


# --------------------------------------------------------------------------- apply


def apply(argv: list[str]) -> int:
    parsed = APPLY_FLAGS.parse(argv)
    if len(parsed.args) != 1:
        return output.fail("Must specify exactly one rules file (or - for stdin)")
    path = parsed.args[0]
    name = display_name(path)
    client = http.client_for(parsed)
    text = read_config_file(path)
    try:
        ruleset = rules.parse_rules(text, filename=name, default_ns=client.config.namespace or DEFAULT_NAMESPACE)
    except rules.RulesError as exc:
        return output.fail(f"Error in {name}: {exc}")
    except InvalidInput as exc:
        return output.fail(str(exc))  # "Error parsing <file>: line L, column C: ..."
    try:
        current = [rule_from_api(ixn) for ixn in client.get(INTENTIONS_PATH) or []]
    except TrellisError as exc:
        return output.fail(f"Failed to retrieve the intentions list: {exc}")
    plan = rules.diff(ruleset, current)
    if not plan.changes:
        output.out(format_no_changes(plan, name))
        return 0
    for change in plan.changes:
        if not parsed.dry_run:
            try:
                apply_change(client, change)
            except TrellisError as exc:
                return output.fail(f"Error applying {name}: {format_change(change)}: {exc}")
        output.out(format_change(change))
    output.out(format_summary(plan, name, dry_run=parsed.dry_run))
    return 0


def apply_change(client: http.ApiClient, change: Change) -> None:
    """One change through ``/exact`` (I/O): PUT for create and change, DELETE for delete."""
    params = exact_params(change.source, change.destination)
    if change.op is Op.DELETE:
        client.request("DELETE", EXACT_PATH, params)
    else:
        client.put(EXACT_PATH, {"Action": change.after, "SourceType": "consul"}, params)


def rule_from_api(ixn: Mapping[str, Any]) -> Rule:
    """An API intention as a rules.Rule (action, or the permission count for L7). Pure."""
    permissions = ixn.get("Permissions") or []
    text = str(ixn.get("Action") or "").lower()
    action = Action(text) if not permissions and text in (Action.ALLOW, Action.DENY) else None
    return Rule(body_ref(ixn, "Source"), body_ref(ixn, "Destination"), action, len(permissions))
