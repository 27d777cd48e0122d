"""``trellis config write|read|list|delete``: centralized config entries (thin API client).

Flow: flags (+ ``write``/``delete -filename``: the file read and decoded here,
``decode_entry_text``) → one request → a pure ``format_*`` → stdout.

Rules:
1. Files are HCL or JSON (``.hcl``/``.json``, else JSON when the text opens with ``{``),
   keys CamelCase or snake_case; ``-`` reads stdin. A syntax error names the file,
   line and column, and nothing is sent. The entry is sent as written: the agent,
   not this module, decodes and validates it (unknown keys, bad values).
2. An entry is named ``<kind>/<name>`` in every message. ``mesh`` entries have no
   ``Name`` and are called ``mesh``; a ``proxy-defaults`` entry without one is
   ``global``, the only name the agent accepts for it (``entry_ref``).
3. ``-cas`` sends ``?cas=<-modify-index>``; the agent answers ``false`` when the
   entry moved on (or, for ``-modify-index 0``, already exists), which is
   ``Config entry not updated|deleted: <kind>/<name>``, exit 1.
4. ``read`` prints the entry as Consul does, JSON indented four spaces; ``list``
   prints one name per line in the API's order.
5. API failures read ``Error <doing what> <kind>/<name>: <reason>``, the reason in
   Consul's words (``Unexpected response code: 400 (...)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trellis.cli import http, output
from trellis.cli.connect_ca import display_name, read_config_file
from trellis.cli.flags import Flag, FlagSet, Kind, Parsed, UsageError
from trellis.cli.output import CommandError
from trellis.errors import InvalidInput, TrellisError

CONFIG_PATH = "/v1/config"
MESH_KIND, MESH_NAME = "mesh", "mesh"
PROXY_DEFAULTS_KIND, PROXY_DEFAULTS_NAME = "proxy-defaults", "global"

_CAS_FLAGS = (
    Flag("cas", Kind.BOOL, help=(
        "Perform a Check-And-Set operation. Specifying this value also requires the "
        "-modify-index flag to be set. The default value is false.")),
    Flag("modify-index", Kind.INT, metavar="uint", help=(
        "Unsigned integer representing the ModifyIndex of the config entry. This is used "
        "in combination with the -cas flag.")),
)
_HTTP = (*http.CLIENT_FLAGS, *http.SERVER_FLAGS, *http.MULTI_TENANCY_FLAGS)

WRITE_FLAGS = FlagSet(
    usage="Usage: trellis config write [options] <configuration>",
    description="""
        Request a config entry to be created or updated. The configuration
        argument is either a file path or '-' to indicate that the config
        should be read from stdin. The data should be either in HCL or
        JSON form, with CamelCase or snake_case keys.

        Example (from file):

          $ trellis config write web.service.hcl

        Example (from stdin):

          $ trellis config write -
    """,
    flags=(*_HTTP, *_CAS_FLAGS),
)

READ_FLAGS = FlagSet(
    usage="Usage: trellis config read [options] -kind <config kind> -name <config name>",
    description="""
        Reads the config entry specified by the given kind and name and outputs its
        JSON representation.

        Example:

          $ trellis config read -kind proxy-defaults -name global
    """,
    flags=(
        *_HTTP,
        Flag("kind", metavar="string", help="The kind of configuration to read."),
        Flag("name", metavar="string", help="The name of configuration to read."),
    ),
)

LIST_FLAGS = FlagSet(
    usage="Usage: trellis config list [options] -kind <config kind>",
    description="""
        Lists all of the config entries for a given kind. The -kind parameter
        is required.

        Example:

          $ trellis config list -kind service-defaults
    """,
    flags=(
        *_HTTP,
        Flag("kind", metavar="string", help="The kind of configurations to list."),
        Flag("filter", metavar="string", help="Filter to use with the request."),
    ),
)

DELETE_FLAGS = FlagSet(
    usage="Usage: trellis config delete [options] ([-kind <config kind> -name <config name>] | [-filename FILENAME])",
    description="""
        Deletes the configuration entry specified by the kind and name.

        Example:

          $ trellis config delete -kind service-defaults -name web
          $ trellis config delete -filename service-defaults-web.hcl
    """,
    flags=(
        *_HTTP, *_CAS_FLAGS,
        Flag("filename", metavar="string", help="The filename of the config entry to delete"),
        Flag("kind", metavar="string", help="The kind of configuration to delete."),
        Flag("name", metavar="string", help="The name of configuration to delete."),
    ),
)


# --------------------------------------------------------------------------- commands


def write(argv: list[str]) -> int:
    parsed = WRITE_FLAGS.parse(argv)
    _check_modify_index(parsed, WRITE_FLAGS)
    if len(parsed.args) != 1:
        return output.fail("Must provide exactly one positional argument to specify the config entry to write")
    if parsed.is_set("modify-index") and not parsed.cas:
        return output.fail("Cannot specify -modify-index without -cas")
    path = parsed.args[0]
    doc = decode_entry_text(read_config_file(path), filename=display_name(path))
    kind, name = entry_ref(doc)
    params = [("cas", str(parsed.modify_index))] if parsed.cas else []
    try:
        written = http.client_for(parsed).put(CONFIG_PATH, doc, params)
    except TrellisError as exc:
        return output.fail(f"Error writing config entry {kind}/{name}: {exc}")
    if written is not True:
        return output.fail(f"Config entry not updated: {kind}/{name}")
    output.out(f"Config entry written: {kind}/{name}")
    return 0


def read(argv: list[str]) -> int:
    parsed = READ_FLAGS.parse(argv)
    _no_args(parsed)
    if not parsed.kind:
        return output.fail("Must specify the -kind parameter")
    if not parsed.name:
        return output.fail("Must specify the -name parameter")
    try:
        entry = http.client_for(parsed).get(entry_path(parsed.kind, parsed.name))
    except TrellisError as exc:
        return output.fail(f"Error reading config entry {parsed.kind}/{parsed.name}: {exc}")
    output.out(output.format_json(entry))
    return 0


def list_entries(argv: list[str]) -> int:
    parsed = LIST_FLAGS.parse(argv)
    _no_args(parsed)
    if not parsed.kind:
        return output.fail("Must specify the -kind parameter")
    params = [("filter", parsed.filter)] if parsed.filter else []
    try:
        entries = http.client_for(parsed).get(f"{CONFIG_PATH}/{parsed.kind}", params) or []
    except TrellisError as exc:
        return output.fail(f'Error listing config entries for kind "{parsed.kind}": {exc}')
    if entries:
        output.out(format_names(entries))
    return 0


def delete(argv: list[str]) -> int:
    parsed = DELETE_FLAGS.parse(argv)
    _no_args(parsed)
    _check_modify_index(parsed, DELETE_FLAGS)
    if problem := delete_args_problem(parsed.filename, parsed.kind, parsed.name, parsed.cas, parsed.modify_index):
        return output.fail(problem)
    kind, name = parsed.kind, parsed.name
    if parsed.filename:
        doc = decode_entry_text(read_config_file(parsed.filename), filename=display_name(parsed.filename))
        kind, name = entry_ref(doc)
    params = [("cas", str(parsed.modify_index))] if parsed.cas else []
    try:
        answer = http.client_for(parsed).request("DELETE", entry_path(kind, name), params).json()
    except TrellisError as exc:
        return output.fail(f"Error deleting config entry {kind}/{name}: {exc}")
    if parsed.cas and answer is not True:
        return output.fail(f"Config entry not deleted: {kind}/{name}")
    output.out(f"Config entry deleted: {kind}/{name}")
    return 0


def _no_args(parsed: Parsed) -> None:
    if parsed.args:
        raise CommandError(f"Too many arguments (expected 0, got {len(parsed.args)})")


def _check_modify_index(parsed: Parsed, flagset: FlagSet) -> None:
    """Go's Uint64Var refuses a negative number as a parse error of the flag."""
    if parsed.modify_index < 0:
        exc = UsageError(f'invalid value "{parsed.modify_index}" for flag -modify-index: parse error')
        exc.usage = flagset.format_usage()
        raise exc


# --------------------------------------------------------------------------- pure parts


def delete_args_problem(filename: str, kind: str, name: str, cas: bool, modify_index: int) -> str:
    """Consul's ``config delete`` argument checks, in its order and words; "" when fine. Pure."""
    given = sum(1 for v in (filename, kind, name) if v)
    if given == 0:
        return "Must specify the -kind or -filename parameter"
    if filename and given > 1:
        return "filename can't be used with kind or name"
    if not filename and not kind:
        return "Must specify the -kind parameter"
    if not filename and not name:
        return "Must specify the -name parameter"
    if cas and modify_index == 0:
        return "Must specify a -modify-index greater than 0 with -cas"
    if modify_index != 0 and not cas:
        return "Cannot specify -modify-index without -cas"
    return ""


def decode_entry_text(text: str, *, filename: str) -> dict[str, Any]:
    """A config-entry file's document, checked only for syntax and a kind (rule 1). Pure.

    Raises CommandError ``Error parsing <file>: line L, column C: ...``, or naming the
    file when it is empty or has no string ``Kind``.
    """
    from trellis.config import hcl  # only the file-reading commands need pyhcl

    try:
        doc = hcl.parse_text(text, filename=filename)
    except InvalidInput as exc:
        raise CommandError(str(exc)) from None  # ConfigSyntaxError: "Error parsing <file>: line L, ..."
    if not doc:
        raise CommandError(f"Error parsing {filename}: the file is empty; expected a config entry with a Kind")
    kind = _field(doc, "kind")
    if kind is None:
        raise CommandError(f"Error parsing {filename}: Payload does not contain a kind/Kind key at the top level")
    if not isinstance(kind, str) or not kind:
        raise CommandError(f"Error parsing {filename}: Kind value in payload is not a string")
    return doc


def entry_ref(doc: Mapping[str, Any]) -> tuple[str, str]:
    """``(kind, name)`` of a decoded entry, as messages name it (rule 2). Pure."""
    kind = str(_field(doc, "kind"))
    if kind == MESH_KIND:
        return kind, MESH_NAME
    name = _field(doc, "name")
    if kind == PROXY_DEFAULTS_KIND and not name:
        return kind, PROXY_DEFAULTS_NAME
    return kind, "" if name is None else str(name)


def _field(doc: Mapping[str, Any], folded: str) -> Any:
    """A top-level value by name in any case (``Kind``, ``kind``, ``KIND``); None when absent."""
    for key, value in doc.items():
        if key.replace("_", "").lower() == folded:
            return value
    return None


def entry_path(kind: str, name: str) -> str:
    """``/v1/config/<kind>/<name>``. Pure."""
    return f"{CONFIG_PATH}/{kind}/{name}"


def entry_name(entry: Mapping[str, Any]) -> str:
    """An API entry's name: ``Name``, or ``mesh`` for the mesh entry. Pure."""
    if entry.get("Kind") == MESH_KIND:
        return MESH_NAME
    return str(entry.get("Name") or "")


def format_names(entries: list[Mapping[str, Any]]) -> str:
    """Rule 4: one name per line, in the API's order. Pure."""
    return "\n".join(entry_name(e) for e in entries)
