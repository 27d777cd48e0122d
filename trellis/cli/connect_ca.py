"""``trellis connect ca get-config|set-config|rotate|roots|leaf``: the Connect CA (thin API client).

Flow: flags → (set-config: the file read and decoded here, ``decode_config_text``)
→ one request per thing (``leaf -out-dir``: the leaf, then the roots' PEM bundle)
→ a pure ``format_*`` → stdout. Files are written only after every request answered.

Rules:
1. ``get-config`` prints the configuration as Consul does: JSON indented with tabs,
   keys in the order the API gave them.
2. ``set-config`` files are JSON or HCL (``choose_format``: ``.hcl`` → HCL, ``.json``
   → JSON, otherwise JSON when the text opens with ``{`` or ``[``, else HCL). A syntax
   error names the file, line and column, and nothing is sent.
3. The file is sent as written, except that the top-level keys ``provider``,
   ``config``, ``state`` and ``force_without_cross_signing`` (any case, with or without
   underscores) take the API's names. ``Config``'s keys are left alone (the agent
   accepts snake_case there) and the agent, not this module, validates the content.
4. ``-force-without-cross-signing`` on the command line decides; without it the
   file's value is kept, else false. (Consul's flag always overwrites the file's.)
5. A 400 answer is the agent's explanation of bad input and is printed alone:
   ``Error setting CA configuration: Config.LeafCertTTL: ...``. Other failures read as
   in the other commands (``Unexpected response code: 403 (...)``, Go's dial errors).
6. ``leaf``: a 429 (the CA's CSR rate limit) prints the agent's message and its
   ``Retry-After``: ``Error fetching leaf certificate: <message> (retry after 2s)``.
7. ``leaf -out-dir`` writes ``cert.pem``, ``key.pem`` (mode 0600 from its creation)
   and ``roots.pem``, each through a temporary file renamed into place, so a reader
   sees the old file or the new one, never a part.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from typing import Any, Literal

from trellis.cli import http, output
from trellis.cli.flags import Flag, FlagSet, Kind, Parsed, UsageError
from trellis.cli.output import CommandError
from trellis.errors import InvalidInput, TrellisError

CONFIG_PATH = "/v1/connect/ca/configuration"
ROTATE_PATH = "/v1/connect/ca/rotate"
ROOTS_PATH = "/v1/connect/ca/roots"
LEAF_PATH = "/v1/agent/connect/ca/leaf/"

CERT_FILE, KEY_FILE, ROOTS_FILE = "cert.pem", "key.pem", "roots.pem"
CERT_MODE, KEY_MODE = 0o644, 0o600
STDIN = "-"
UPDATED = "Configuration updated!"

_PEM_CERT = "-----BEGIN CERTIFICATE-----"
# Folded spelling (lower case, no underscores) → the API's name (rule 3).
_TOP_KEYS = {"provider": "Provider", "config": "Config", "state": "State",
             "forcewithoutcrosssigning": "ForceWithoutCrossSigning"}
_FORCE = "ForceWithoutCrossSigning"

GET_CONFIG_FLAGS = FlagSet(
    usage="Usage: trellis connect ca get-config [options]",
    description="""
        Displays the current Connect Certificate Authority (CA) configuration, as
        JSON that "trellis connect ca set-config" accepts back.

            $ trellis connect ca get-config
    """,
    flags=(*http.CLIENT_FLAGS, *http.SERVER_FLAGS),
)

SET_CONFIG_FLAGS = FlagSet(
    usage="Usage: trellis connect ca set-config [options]",
    description="""
        Modifies the current Connect Certificate Authority (CA) configuration. The
        file is JSON or HCL (by its .hcl extension); -config-file=- reads stdin.
        A change of provider, key or imported root makes a new root, cross-signed
        by the current one; anything else keeps the active root.

            $ trellis connect ca set-config -config-file ca.json
    """,
    flags=(
        *http.CLIENT_FLAGS, *http.SERVER_FLAGS,
        Flag("config-file", metavar="string", help=(
            "The path to the config file to use (JSON or HCL); - reads it from stdin.")),
        Flag("force-without-cross-signing", Kind.BOOL, help=(
            "Indicates that the CA reconfiguration should go ahead even if the current CA is "
            "unable to cross sign certificates. This risks temporary connection failures during "
            "the rollout as new leafs will be rejected by proxies that have not yet observed the "
            "new root cert but is the only option if a CA that doesn't support cross signing "
            "needs to be reconfigured or migrated away from.")),
    ),
)

ROTATE_FLAGS = FlagSet(
    usage="Usage: trellis connect ca rotate [options]",
    description="""
        Replaces the active root with a newly generated one, cross-signed by the old
        root. The old root stays trusted until the last leaf it signed has expired;
        agents replace their leaves with ones from the new root. (A trellis command:
        Consul rotates only through set-config.)

            $ trellis connect ca rotate
    """,
    flags=(*http.CLIENT_FLAGS, *http.SERVER_FLAGS, output.FORMAT_FLAG),
)

ROOTS_FLAGS = FlagSet(
    usage="Usage: trellis connect ca roots [options]",
    description="""
        Lists the Connect CA's trusted roots, the active one among them.

            $ trellis connect ca roots
            $ trellis connect ca roots -pem > roots.pem
    """,
    flags=(
        *http.CLIENT_FLAGS, *http.SERVER_FLAGS, output.FORMAT_FLAG,
        Flag("pem", Kind.BOOL, help=(
            "Print every trusted root certificate (each followed by its intermediates) as one "
            "PEM bundle instead of the table.")),
    ),
)

LEAF_FLAGS = FlagSet(
    usage="Usage: trellis connect ca leaf -service NAME [options]",
    description="""
        Fetches the local agent's leaf certificate for a service. With -out-dir the
        certificate chain, its private key and the trusted roots are written as
        cert.pem, key.pem (mode 0600) and roots.pem.

            $ trellis connect ca leaf -service web
            $ trellis connect ca leaf -service web -out-dir ./certs
    """,
    flags=(
        *http.CLIENT_FLAGS, *http.MULTI_TENANCY_FLAGS, output.FORMAT_FLAG,
        Flag("service", metavar="string", help="The service whose leaf certificate to fetch (required)."),
        Flag("out-dir", metavar="string", help=(
            "Directory to write cert.pem, key.pem and roots.pem into; created if missing.")),
    ),
)


# --------------------------------------------------------------------------- commands


def get_config(argv: list[str]) -> int:
    parsed = GET_CONFIG_FLAGS.parse(argv)
    _no_args(parsed)
    try:
        config = http.client_for(parsed).get(CONFIG_PATH)
    except TrellisError as exc:
        return output.fail(f"Error retrieving CA configuration: {exc}")
    output.out(format_config(config))
    return 0


def set_config(argv: list[str]) -> int:
    parsed = SET_CONFIG_FLAGS.parse(argv)
    _no_args(parsed)
    if not parsed.config_file:
        return output.fail("The -config-file flag is required")
    name = display_name(parsed.config_file)
    doc = decode_config_text(read_config_file(parsed.config_file), filename=name)
    force = parsed.force_without_cross_signing if parsed.is_set("force-without-cross-signing") else None
    body = build_request_body(doc, force=force)
    try:
        http.client_for(parsed).put(CONFIG_PATH, body)
    except TrellisError as exc:
        return output.fail(f"Error setting CA configuration: {_reason(exc)}")
    output.out(UPDATED)
    return 0


def rotate(argv: list[str]) -> int:
    parsed = ROTATE_FLAGS.parse(argv)
    fmt = _start(parsed)
    try:
        answer = http.client_for(parsed).request("POST", ROTATE_PATH).json()
    except TrellisError as exc:
        return output.fail(f"Error rotating CA root: {_reason(exc)}")
    output.out(output.format_json(answer) if fmt == output.JSON else format_rotation(answer))
    return 0


def list_roots(argv: list[str]) -> int:
    parsed = ROOTS_FLAGS.parse(argv)
    fmt = _start(parsed)
    if parsed.pem and parsed.is_set("format"):
        return output.fail("Only one of -pem and -format may be given")
    client = http.client_for(parsed)
    try:
        if parsed.pem:
            output.out(_roots_pem(client).rstrip("\n"))
            return 0
        roots = client.get(ROOTS_PATH) or {}
    except TrellisError as exc:
        return output.fail(f"Error listing CA roots: {exc}")
    output.out(output.format_json(roots) if fmt == output.JSON else format_roots(roots))
    return 0


def get_leaf(argv: list[str]) -> int:
    parsed = LEAF_FLAGS.parse(argv)
    fmt = _start(parsed)
    if not parsed.service:
        exc = UsageError("The -service flag is required")
        exc.usage = LEAF_FLAGS.format_usage()
        raise exc
    client = http.client_for(parsed)
    leaf = fetch_leaf(client, parsed.service)
    if not parsed.out_dir:
        output.out(output.format_json(leaf) if fmt == output.JSON else format_leaf(leaf))
        return 0
    try:
        roots_pem = _roots_pem(client)
    except TrellisError as exc:
        return output.fail(f"Error fetching CA roots: {exc}")
    written = write_leaf_files(parsed.out_dir, leaf, roots_pem)
    output.out(output.format_json(written) if fmt == output.JSON else format_written(written))
    return 0


def _no_args(parsed: Parsed) -> None:
    if parsed.args:
        raise CommandError(f"Too many arguments (expected 0, got {len(parsed.args)})")


def _start(parsed: Parsed) -> str:
    """Common checks before any request; returns the output format."""
    _no_args(parsed)
    return output.check_format(parsed.format)


def _reason(exc: TrellisError) -> str:
    """Rule 5: a 400's plain-text body alone, anything else as the client words it."""
    if isinstance(exc, http.ApiError) and exc.status == 400 and exc.body:
        return exc.body
    return str(exc)


# --------------------------------------------------------------------------- set-config files


def display_name(path: str) -> str:
    """How messages name the file: ``-`` is ``<stdin>``. Pure."""
    return "<stdin>" if path == STDIN else path


def read_config_file(path: str) -> str:
    """The file's text (stdin for ``-``); CommandError ``Error reading <file>: <why>``."""
    try:
        if path == STDIN:
            return sys.stdin.read()
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise CommandError(f"Error reading {display_name(path)}: {(exc.strerror or str(exc)).lower()}") from None
    except UnicodeDecodeError:
        raise CommandError(f"Error reading {display_name(path)}: not UTF-8 text") from None


def choose_format(filename: str, text: str) -> Literal["json", "hcl"]:
    """Rule 2: the extension, else JSON when the text opens like JSON, else HCL. Pure."""
    ext = os.path.splitext(filename)[1].lower()
    if ext in (".json", ".hcl"):
        return "json" if ext == ".json" else "hcl"
    return "json" if text.lstrip()[:1] in ("{", "[") else "hcl"


def decode_config_text(text: str, *, filename: str) -> dict[str, Any]:
    """A set-config file's document with the API's top-level names (rules 2, 3). Pure.

    Raises CommandError ``Error parsing <file>: line L, column C: ...`` for syntax, an
    empty document, or a top-level key given twice under two spellings.
    """
    from trellis.config import hcl  # only set-config needs pyhcl

    try:
        doc = hcl.parse_text(text, filename=filename, fmt=choose_format(filename, text))
    except InvalidInput as exc:
        raise CommandError(str(exc)) from None  # ConfigSyntaxError: "Error parsing <file>: line L, ..."
    if not doc:
        raise CommandError(f"Error parsing {filename}: the file is empty; expected Provider and Config")
    try:
        return api_top_level(doc)
    except InvalidInput as exc:
        raise CommandError(f"Error parsing {filename}: {exc}") from None


def api_top_level(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` with the top-level keys of rule 3 renamed, order kept, values untouched. Pure.

    Raises InvalidInput naming both spellings when two keys fold to one name.
    """
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for key, value in doc.items():
        name = _TOP_KEYS.get(key.replace("_", "").lower(), key)
        if name in out:
            raise InvalidInput(name, message=f'"{given[name]}" and "{key}" are the same key ({name})')
        out[name], given[name] = value, key
    return out


def build_request_body(doc: Mapping[str, Any], *, force: bool | None) -> dict[str, Any]:
    """The PUT body: ``doc`` with ``ForceWithoutCrossSigning`` decided by rule 4. Pure."""
    body = dict(doc)
    if force is not None:
        body[_FORCE] = force
    else:
        body.setdefault(_FORCE, False)
    return body


def format_config(config: Any) -> str:
    """Rule 1: Go's ``json.MarshalIndent(v, "", "\\t")`` over the API's answer. Pure."""
    return json.dumps(config, indent="\t", ensure_ascii=False)


# --------------------------------------------------------------------------- rotate and roots


def format_rotation(answer: Mapping[str, Any]) -> str:
    """Two lines: the new active root, then what happens to the previous one. Pure.

    NOTE: the agent prunes a rotated-out root once no leaf it signed can still be
    valid, and for at least one leaf lifetime (connect/ca/rotation.py rule 2).
    """
    new, old = answer.get("ActiveRootID", ""), answer.get("PreviousRootID", "")
    return (f"Root rotated: {new} is now the active root.\n"
            f"The previous root {old} stays trusted until the last leaf it signed has expired "
            "(and for at least one leaf lifetime).")


def format_roots(roots: Mapping[str, Any]) -> str:
    """``ID Name Active NotAfter``, one row per root in the API's order. Pure."""
    rows = [["ID", "Name", "Active", "NotAfter"]]
    for r in roots.get("Roots") or ():
        rows.append([r.get("ID") or "", r.get("Name") or "", "true" if r.get("Active") else "false",
                     r.get("NotAfter") or ""])
    return output.columnize(rows)


def _roots_pem(client: http.ApiClient) -> str:
    return client.request("GET", ROOTS_PATH, [("pem", "true")]).text()


# --------------------------------------------------------------------------- leaf


def fetch_leaf(client: http.ApiClient, service: str) -> dict[str, Any]:
    """GET the service's leaf (I/O). CommandError for any failure, a 429 with its
    Retry-After (rule 6)."""
    what = "Error fetching leaf certificate"
    req = client.build_request("GET", LEAF_PATH + service)
    try:
        resp = http.send(client.config, req)
        if resp.status == 429:
            raise CommandError(f"{what}: {format_rate_limited(resp.text(), resp.headers.get('retry-after', ''))}")
        if not 200 <= resp.status < 300:
            raise http.ApiError(resp.status, resp.text().rstrip())
        leaf = resp.json()
    except CommandError:
        raise
    except TrellisError as exc:
        raise CommandError(f"{what}: {exc}") from None
    if not isinstance(leaf, dict) or not leaf.get("CertPEM"):
        raise CommandError(f"{what}: the agent's answer has no CertPEM")
    return leaf


def format_rate_limited(body: str, retry_after: str) -> str:
    """``<message> (retry after Ns)``; without a usable Retry-After, the message alone. Pure."""
    message = body.strip() or "rate limited"
    seconds = retry_after.strip()
    return f"{message} (retry after {seconds}s)" if seconds.isdigit() else message


def count_certs(pem: str) -> int:
    """How many certificates a PEM bundle holds. Pure."""
    return pem.count(_PEM_CERT)


def format_leaf(leaf: Mapping[str, Any]) -> str:
    """The leaf's identity and validity, two aligned columns (no PEM, no key). Pure."""
    keys = ["Service", "Namespace", "ServiceURI", "SerialNumber", "ValidAfter", "ValidBefore"]
    return output.columnize([[k, str(leaf[k])] for k in keys if leaf.get(k) not in (None, "")])


def write_leaf_files(out_dir: str, leaf: Mapping[str, Any], roots_pem: str) -> dict[str, Any]:
    """Write the three files into ``out_dir`` (created if missing) (I/O; rule 7).

    Returns what was written, as ``format_written`` reads it. CommandError naming the
    path on failure.
    """
    files = {
        "CertFile": (CERT_FILE, leaf.get("CertPEM") or "", CERT_MODE),
        "KeyFile": (KEY_FILE, leaf.get("PrivateKeyPEM") or "", KEY_MODE),
        "RootsFile": (ROOTS_FILE, roots_pem, CERT_MODE),
    }
    written: dict[str, Any] = {}
    try:
        os.makedirs(out_dir, exist_ok=True)
        for field, (name, text, mode) in files.items():
            path = os.path.join(out_dir, name)
            _write_atomic(path, text, mode)
            written[field] = path
    except OSError as exc:
        where = exc.filename or out_dir
        raise CommandError(f"Error writing leaf certificate files: {where}: "
                           f"{(exc.strerror or str(exc)).lower()}") from None
    written["CertCount"] = count_certs(leaf.get("CertPEM") or "")
    written["RootsCount"] = count_certs(roots_pem)
    for key in ("Service", "ServiceURI", "SerialNumber", "ValidBefore"):
        written[key] = leaf.get(key, "")
    return written


def _write_atomic(path: str, text: str, mode: int) -> None:
    """``text`` into ``path`` through a temporary file in the same directory.

    mkstemp creates the file 0600, so a key is never readable by others, not even
    briefly; the mode is then set before the rename.
    """
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") or not text else text + "\n")
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def format_written(written: Mapping[str, Any]) -> str:
    """What ``leaf -out-dir`` wrote, one file per line, then the leaf's identity. Pure."""
    extra = written.get("CertCount", 1) - 1
    chain = f" and {_plural(extra, 'intermediate')}" if extra > 0 else ""
    lines = [
        f"Wrote {written['CertFile']} (leaf certificate{chain})",
        f"Wrote {written['KeyFile']} (private key, mode {KEY_MODE:04o})",
        f"Wrote {written['RootsFile']} ({_plural(written.get('RootsCount', 0), 'trusted CA certificate')})",
    ]
    rows = [[k, str(written[k])] for k in ("ServiceURI", "SerialNumber", "ValidBefore") if written.get(k)]
    return "\n".join(lines) + ("\n" + output.columnize(rows) if rows else "")


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")

