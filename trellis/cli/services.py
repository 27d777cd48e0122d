"""``trellis services register|deregister``: services on the local agent (thin API client).

Flow (register): flags or FILE arguments → every file read, parsed
(``trellis.config.hcl.parse_text``) and validated (``definition.decode_service_file``)
before the first request → one ``PUT /v1/agent/service/register`` per service.

Rules:
1. Files are agent-config shaped (``service {...}``, ``service [...]``,
   ``services [...]``), HCL or JSON, snake_case or CamelCase. A bad file fails
   locally, naming the file and the line/column (syntax) or key path (content),
   and nothing is sent.
2. A file's service object is sent as written, except where the config-file form
   and the API differ (``api_service_body``, as Consul's CLI re-encodes a decoded
   file): inside a service (and its ``connect.sidecar_service``) a check's ``id`` is
   sent as ``CheckID``, its ``token`` is dropped (Consul's ``CheckType`` has none),
   and repeated ``check`` blocks go to ``Checks``. Every other key keeps its spelling
   (the agent's decoder accepts both, catalog/definition.py rule 1).
3. Flags build the body Consul's Go client would send (empty fields omitted).
4. Messages are Consul's: ``Registered service: <name>``, ``Deregistered service: <id>``,
   ``Error registering service "<name>": <api error>``; errors exit 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from trellis.cli import http, output
from trellis.cli.flags import Flag, FlagSet, Kind, Parsed, go_quote
from trellis.cli.output import CommandError
from trellis.errors import InvalidInput, TrellisError

REGISTER_PATH = "/v1/agent/service/register"
DEREGISTER_PATH = "/v1/agent/service/deregister/"

REGISTER_FLAGS = FlagSet(
    usage="Usage: trellis services register [options] [FILE...]",
    description="""
        Register one or more services using the local agent API. Services can
        be registered from agent configuration files (HCL or JSON) or using flags.
        The service is registered and the command returns. The caller must
        remember to call "trellis services deregister" or a similar API to
        deregister the service when complete.

            $ trellis services register web.hcl

            $ trellis services register -name=web -port=8080 -tag=v1
    """,
    flags=(
        *http.CLIENT_FLAGS, *http.SERVER_FLAGS, *http.MULTI_TENANCY_FLAGS,
        Flag("id", metavar="string", help=(
            "ID of the service to register for arg-based registration. If this isn't set, "
            "it will default to the -name value.")),
        Flag("name", metavar="string", help="Name of the service to register for arg-based registration."),
        Flag("address", metavar="string", help=(
            "Address of the service to register for arg-based registration.")),
        Flag("port", Kind.INT, help="Port of the service to register for arg-based registration."),
        Flag("socket", metavar="string", help=(
            "Path to the Unix domain socket to register for arg-based registration "
            "(conflicts with address and port).")),
        Flag("meta", Kind.MAP, help=(
            "Metadata to set on the service, formatted as key=value. This flag may be "
            "specified multiple times to set multiple meta fields.")),
        Flag("tag", Kind.LIST, metavar="value", help=(
            "Tag to add to the service. This flag can be specified multiple times to set "
            "multiple tags.")),
        Flag("tagged-address", Kind.MAP, metavar="key=addr:port", help=(
            "Tagged address to set on the service, formatted as key=addr:port. This flag may "
            "be specified multiple times to set multiple addresses.")),
        Flag("kind", metavar="string", help="The service's kind (connect-proxy, mesh-gateway, ...)."),
    ),
)

DEREGISTER_FLAGS = FlagSet(
    usage="Usage: trellis services deregister [options] [FILE...]",
    description="""
        Deregister one or more services that were previously registered with
        the local agent.

            $ trellis services deregister web.hcl db.hcl

        The -id flag may be used to deregister a single service by ID:

            $ trellis services deregister -id=web

        Services are deregistered from the local agent catalog. This command must
        be run against the same agent where the service was registered.
    """,
    flags=(
        *http.CLIENT_FLAGS, *http.SERVER_FLAGS, *http.MULTI_TENANCY_FLAGS,
        Flag("id", metavar="string", help="ID to delete. This must not be set if arguments are given."),
    ),
)


@dataclass(frozen=True, slots=True)
class ServiceBody:
    """One service to send: its name and ID (for messages) and the JSON body."""

    name: str
    id: str
    body: Mapping[str, Any]
    namespace: str = ""

    @property
    def service_id(self) -> str:
        return self.id or self.name


def register(argv: list[str]) -> int:
    parsed = REGISTER_FLAGS.parse(argv)
    tagged = _tagged_addresses(parsed.tagged_address)
    if not parsed.args and not parsed.name:
        return output.fail("Service registration requires at least one argument or flags.")
    if parsed.args and parsed.name:
        return output.fail("Service registration requires arguments or -id, not both.")
    services = load_service_files(parsed.args) if parsed.args else [service_from_flags(parsed, tagged)]
    client = http.client_for(parsed)
    for svc in services:
        try:
            client.put(REGISTER_PATH, svc.body)
        except TrellisError as exc:
            return output.fail(f"Error registering service {go_quote(svc.name)}: {exc}")
        output.out(f"Registered service: {svc.name}")
    return 0


def deregister(argv: list[str]) -> int:
    parsed = DEREGISTER_FLAGS.parse(argv)
    if not parsed.args and not parsed.id:
        return output.fail("Service deregistration requires at least one argument or -id.")
    if parsed.args and parsed.id:
        return output.fail("Service deregistration requires arguments or -id, not both.")
    services = load_service_files(parsed.args) if parsed.args else [ServiceBody("", parsed.id, {})]
    client = http.client_for(parsed)
    for svc in services:
        if not svc.service_id:
            continue
        query = [("ns", svc.namespace)] if svc.namespace and not parsed.namespace else []
        try:
            client.put(DEREGISTER_PATH + svc.service_id, None, query)
        except TrellisError as exc:
            return output.fail(f"Error deregistering service {go_quote(svc.name or svc.service_id)}: {exc}")
        output.out(f"Deregistered service: {svc.service_id}")
    return 0


def service_from_flags(parsed: Parsed, tagged: Mapping[str, tuple[str, int]]) -> ServiceBody:
    """The body Consul's ``api.AgentServiceRegistration`` gives for the flags. Pure."""
    body: dict[str, Any] = {}
    for key, value in (
        ("Kind", parsed.kind), ("ID", parsed.id), ("Name", parsed.name), ("Tags", list(parsed.tag)),
        ("Port", parsed.port), ("Address", parsed.address), ("SocketPath", parsed.socket),
        ("TaggedAddresses", {k: {"Address": a, "Port": p} for k, (a, p) in tagged.items()}),
        ("Meta", dict(parsed.meta)),
    ):
        if value:
            body[key] = value
    return ServiceBody(parsed.name, parsed.id, body)


def _tagged_addresses(values: Mapping[str, str]) -> dict[str, tuple[str, int]]:
    out = {}
    for key, text in values.items():
        try:
            out[key] = parse_service_address(text)
        except ValueError as exc:
            raise CommandError(f"Invalid Tagged Address: {exc}") from None
    return out


def parse_service_address(text: str) -> tuple[str, int]:
    """``addr:port`` → (addr, port), with Go's ``net.SplitHostPort`` errors. Pure."""
    host, port = split_host_port(text)
    if not port.lstrip("+-").isdigit():
        raise ValueError(f'strconv.Atoi: parsing {go_quote(port)}: invalid syntax')
    return host, int(port)


def split_host_port(text: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``; ValueError with its message. Pure."""

    def fail(why: str) -> ValueError:
        return ValueError(f"address {text}: {why}")

    i = text.rfind(":")
    if i < 0:
        raise fail("missing port in address")
    j = k = 0
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise fail("missing ']' in address")
        if end + 1 == len(text):
            raise fail("missing port in address")
        if end + 1 != i:
            raise fail("too many colons in address" if text[end + 1] == ":" else "missing port in address")
        host, j, k = text[1:end], 1, end + 1
    else:
        host = text[:i]
        if ":" in host:
            raise fail("too many colons in address")
    if "[" in text[j:]:
        raise fail("unexpected '[' in address")
    if "]" in text[k:]:
        raise fail("unexpected ']' in address")
    return host, text[i + 1:]


def load_service_files(paths: Sequence[str]) -> list[ServiceBody]:
    """Read, parse and validate every file, then return their services in order.

    Raises CommandError naming the file (and line/column or key path) at the first
    bad one; nothing has been sent by then.
    """
    out: list[ServiceBody] = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise CommandError(f"Error reading {path}: {(exc.strerror or str(exc)).lower()}") from None
        except UnicodeDecodeError:
            raise CommandError(f"Error reading {path}: not UTF-8 text") from None
        out.extend(decode_service_text(text, filename=path))
    return out


def decode_service_text(text: str, *, filename: str) -> list[ServiceBody]:
    """One file's services: parse (JSON or HCL by extension/content), validate. Pure.

    Raises CommandError ``Error parsing <file>: line L, column C: ...`` for syntax
    and ``Error decoding <file>: <key path>: ...`` for content.
    """
    from trellis.catalog import definition
    from trellis.config import hcl

    try:
        data = hcl.parse_text(text, filename=filename)
    except InvalidInput as exc:
        raise CommandError(str(exc)) from None  # ConfigSyntaxError: "Error parsing <file>: line L, ..."
    try:
        defns = definition.decode_service_file(data)
    except InvalidInput as exc:
        raise CommandError(f"Error decoding {filename}: {exc}") from None
    raws = _raw_services(data)
    assert len(raws) == len(defns), "decode_service_file and _raw_services disagree"
    return [ServiceBody(d.name, d.id, api_service_body(raw), d.namespace) for d, raw in zip(defns, raws)]


def _raw_services(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The service objects of a validated file, in ``decode_service_file``'s order."""
    out: list[Mapping[str, Any]] = []
    for value in data.values():
        if value is not None:
            out.extend([value] if isinstance(value, Mapping) else value)
    return out


# Lower-cased spellings (Go and snake_case) of the keys the API reads differently.
_CHECK_KEYS = frozenset({"check"})
_CHECKS_KEYS = frozenset({"checks"})
_CONNECT_KEYS = frozenset({"connect"})
_SIDECAR_KEYS = frozenset({"sidecar_service", "sidecarservice"})
_ID_KEYS = frozenset({"id"})
_CHECK_ID_KEYS = frozenset({"checkid", "check_id"})
_TOKEN_KEYS = frozenset({"token"})


def _spelled(key: Any, spellings: frozenset[str]) -> bool:
    return isinstance(key, str) and key.lower() in spellings


def api_service_body(service: Mapping[str, Any]) -> dict[str, Any]:
    """A config-file service object as ``PUT /v1/agent/service/register`` accepts it. Pure.

    The agent's API takes only ``CheckID`` inside a service's checks (as Consul's does);
    config files also allow ``id`` and ``token`` and may repeat the ``check`` block.
    So, in ``check``/``checks`` here and in ``connect.sidecar_service``: ``id`` becomes
    ``CheckID`` unless the check also has a ``CheckID``/``check_id`` (which then wins,
    as in the local decoder, and ``id`` is dropped); ``token`` is dropped; a repeated
    ``check`` (a list) is sent as ``Checks``, before any ``checks`` given. Keys match
    case-insensitively; everything else is copied as written; the input is not changed.
    """
    out: dict[str, Any] = {}
    repeated: list[Any] = []
    for key, value in service.items():
        if _spelled(key, _CHECK_KEYS) and isinstance(value, (list, tuple)):
            repeated.extend(_api_check(c) for c in value)
        elif _spelled(key, _CHECK_KEYS):
            out[key] = _api_check(value)
        elif _spelled(key, _CHECKS_KEYS) and isinstance(value, (list, tuple)):
            out[key] = [_api_check(c) for c in value]
        elif _spelled(key, _CHECKS_KEYS):
            out[key] = _api_check(value)
        elif _spelled(key, _CONNECT_KEYS) and isinstance(value, Mapping):
            out[key] = {k: api_service_body(v) if _spelled(k, _SIDECAR_KEYS) and isinstance(v, Mapping) else v
                        for k, v in value.items()}
        else:
            out[key] = value
    if repeated:
        # Extend the Checks given, if any (with two spellings the decoder keeps the last).
        given = [k for k in out if _spelled(k, _CHECKS_KEYS)]
        key = given[-1] if given else "Checks"
        current = out.get(key)
        rest = [] if current is None else list(current) if isinstance(current, (list, tuple)) else [current]
        out[key] = [*repeated, *rest]
    return out


def _api_check(check: Any) -> Any:
    """One check object with ``id`` → ``CheckID`` and no ``token`` (see ``api_service_body``).

    JSON null means "not given" (definition.py rule 2), so null ``id``/``CheckID`` keys count
    as absent and are not sent.
    """
    if not isinstance(check, Mapping):
        return check
    has_check_id = any(v is not None for k, v in check.items() if _spelled(k, _CHECK_ID_KEYS))
    out: dict[str, Any] = {}
    for key, value in check.items():
        if _spelled(key, _TOKEN_KEYS):
            continue
        if _spelled(key, _CHECK_ID_KEYS) and value is None:
            continue
        if _spelled(key, _ID_KEYS):
            if not has_check_id and value is not None:
                out["CheckID"] = value
            continue
        out[key] = value
    return out

