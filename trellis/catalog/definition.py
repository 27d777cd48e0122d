"""Consul service and check definitions: decode, validate, build registrations (pure).

Data flow::

    JSON body / config file ──decode_service──▶ ServiceDefinition ──build_registration──▶ Registration
         (Mapping)              decode_check       (validated)          (+ sidecar.py)      Service + Checks
                                                                                            [+ sidecar Registration]

Rules:
1. Keys match case-insensitively on the Go field name *and* on the snake_case
   form, at every level and for both origins (``EnableTagOverride``,
   ``enabletagoverride``, ``enable_tag_override``). When a field is given in both
   forms the Go form wins (Consul: "CamelCase wins"). Free-form maps (``meta``,
   ``proxy.config``, upstream ``config``, check ``header``, tagged-address keys,
   ``connect.gateway``) keep their keys verbatim.
2. Unknown keys are errors at every level. ``origin="api"`` uses Consul's text
   (``Request decode failed: json: unknown field "xyz"``); ``origin="config"``
   names the key path (``services[0].connect.sidecar_service: unknown field "foo"``).
   JSON ``null`` means "not given", as in Go.
3. ``decode_service`` and ``decode_check`` return only values that pass every
   check Consul makes before it writes, in Consul's order and with Consul's
   messages (agent/agent_endpoint.go ``AgentRegisterService``). For config files
   the message is prefixed with the key path.
4. ``build_registration`` needs no validation of its own except the sidecar port
   (the only input that depends on agent state, passed in as a ``PortPool``).
5. Nested raw objects that trellis stores but does not model (``mesh_gateway``,
   ``transparent_proxy``, ``expose``, ``access_logs``, ``envoy_extensions``) are
   decoded strictly too and stored with canonical snake_case keys, only the keys given.
"""

from __future__ import annotations

import ipaddress
import json
import math
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from trellis.catalog.errors import InvalidDefinition
from trellis.catalog.model import (
    DEFAULT_NAMESPACE,
    Check,
    CheckDefinition,
    CheckStatus,
    CheckType,
    Connect,
    Proxy,
    Service,
    ServiceAddress,
    ServiceKind,
    Upstream,
    Weights,
)
from trellis.config.duration import DurationError, decode_duration
from trellis.errors import InvalidInput

if TYPE_CHECKING:
    from trellis.catalog.sidecar import PortPool

Origin = Literal["api", "config"]

STATUS_ERROR = "Status for checks must 'passing', 'warning', 'critical'"
MIN_CHECK_INTERVAL = 1.0  # seconds; Consul's runners raise shorter intervals to this
MIN_DEREGISTER_AFTER = 60.0  # seconds; Consul's reaper raises shorter values to this
META_MAX_PAIRS = 64
META_KEY_MAX = 128
META_VALUE_MAX = 512
_META_KEY = re.compile(r"^[a-zA-Z0-9_-]+$")
_MESH_GATEWAY_CONSUL_META = frozenset({"consul-wan-federation"})
_DNS_INVALID = re.compile(r"[^A-Za-z0-9\-]+")


# =========================================================================== types


@dataclass(frozen=True, slots=True)
class CheckSpec:
    """One decoded, validated check definition (before IDs and defaults are filled).

    ``check_id`` is ``CheckID`` inside a service, ``ID`` on /v1/agent/check/register;
    ``status`` is ``""`` (not given: checks start critical) or a CheckStatus value;
    ``service_id`` and ``token`` come only from standalone checks.
    """

    check_id: str = ""
    name: str = ""
    notes: str = ""
    status: str = ""
    service_id: str = ""
    token: str = ""
    type: CheckType = CheckType.NONE
    definition: CheckDefinition = CheckDefinition()

    @property
    def initial_status(self) -> CheckStatus:
        return CheckStatus(self.status) if self.status else CheckStatus.CRITICAL


@dataclass(frozen=True, slots=True)
class ServiceDefinition:
    """A decoded, validated service definition (Consul's ``structs.ServiceDefinition``).

    ``checks`` holds ``Check`` then ``Checks``; ``connect`` carries ``native`` and the
    raw ``gateway`` object; ``sidecar_service`` is the nested definition (validated
    as a sidecar: it has no ID and usually no name). ``namespace`` ``""`` means the
    default one.
    """

    name: str = ""
    id: str = ""
    kind: ServiceKind = ServiceKind.TYPICAL
    namespace: str = ""
    tags: tuple[str, ...] = ()
    address: str = ""
    tagged_addresses: dict[str, ServiceAddress] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    port: int = 0
    socket_path: str = ""
    weights: Weights | None = None
    enable_tag_override: bool = False
    proxy: Proxy | None = None
    connect: Connect = Connect()
    sidecar_service: ServiceDefinition | None = None
    checks: tuple[CheckSpec, ...] = ()
    locality: dict[str, str] | None = None
    token: str = ""

    @property
    def service_id(self) -> str:
        return self.id or self.name


@dataclass(frozen=True, slots=True)
class Registration:
    """What one registration writes: the service, its checks, and its sidecar's."""

    service: Service
    checks: tuple[Check, ...] = ()
    sidecar: Registration | None = None


# =========================================================================== key matching


class _At(NamedTuple):
    """Where a value sits: for config messages (``path``) and API ones (``go``)."""

    origin: str
    path: str  # services[0].checks[1].interval
    go: str  # CheckType.Interval

    def key(self, name: str, struct: str, go_field: str) -> _At:
        path = f"{self.path}.{name}" if self.path else name
        return _At(self.origin, path, f"{struct}.{go_field}")

    def item(self, index: int) -> _At:
        return _At(self.origin, f"{self.path}[{index}]", self.go)

    def entry(self, key: str) -> _At:
        return _At(self.origin, f"{self.path}[{json.dumps(key)}]", self.go)

    def fail(self, message: str, *, value: Any = None) -> InvalidDefinition:
        """An error located here: API messages verbatim, config ones prefixed."""
        if self.origin == "api" or not self.path:
            return InvalidDefinition(message, field=self.path, value=value)
        return InvalidDefinition(f"{self.path}: {message}", field=self.path, value=value)


class _F(NamedTuple):
    """One field of a Go struct as the decoder sees it."""

    attr: str
    go: str  # Go field name, matched case-insensitively ("" = not a Go field)
    gotype: str  # for API type-error messages
    snake: str | None = None  # snake_case spelling; None = derived from ``go``, "" = none


class _Schema:
    """One Go struct: its fields and the lower-cased spellings that select them.

    ``lookup`` maps a spelling to ``(attr, is_go_form)``; the flag lets the Go
    spelling win when a body sends both (rule 1).
    """

    def __init__(self, struct: str, fields: list[_F | tuple[str, str, str]]) -> None:
        fields = [f if isinstance(f, _F) else _F(*f) for f in fields]
        self.struct = struct
        self.fields = {f.attr: f for f in fields}
        self.lookup: dict[str, tuple[str, bool]] = {}
        for f in fields:
            snake = snake_of(f.go) if f.snake is None else f.snake
            if snake:
                self.lookup[snake] = (f.attr, snake == f.go.lower())
            if f.go:
                self.lookup[f.go.lower()] = (f.attr, True)

    def name(self, attr: str) -> str:
        f = self.fields[attr]
        return snake_of(f.go) if f.snake is None else (f.snake or f.go.lower())

    def without(self, *attrs: str) -> _Schema:
        return _Schema(self.struct, [f for a, f in self.fields.items() if a not in attrs])


@functools.cache
def snake_of(go_name: str) -> str:
    """Go field name → snake_case, keeping acronyms together (``TLSSkipVerify`` → ``tls_skip_verify``)."""
    out = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", go_name)
    out = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", out)
    return out.lower()


def _match(at: _At, data: Any, schema: _Schema) -> dict[str, tuple[Any, _At]]:
    """Select schema fields from ``data``: ``{attr: (value, at-of-value)}``; nulls dropped."""
    if not isinstance(data, Mapping):
        raise _type_error(at, data, f"structs.{schema.struct}", "an object", whole="." not in at.go)
    chosen: dict[str, tuple[bool, Any]] = {}
    for key, value in data.items():
        hit = schema.lookup.get(key.lower()) if isinstance(key, str) else None
        if hit is None:
            raise _unknown(at, key)
        attr, go_form = hit
        if value is None:
            continue
        previous = chosen.get(attr)
        if previous is None or go_form or not previous[0]:
            chosen[attr] = (go_form, value)
    return {attr: (value, at.key(schema.name(attr), schema.struct, schema.fields[attr].go or attr))
            for attr, (_, value) in chosen.items()}


def _unknown(at: _At, key: Any) -> InvalidDefinition:
    if at.origin == "api":
        return InvalidDefinition(f'Request decode failed: json: unknown field "{key}"', field=str(key))
    where = f"{at.path}: " if at.path else ""
    return InvalidDefinition(f'{where}unknown field "{key}"', field=f"{at.path}.{key}".lstrip("."))


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    return "null" if value is None else type(value).__name__


def _type_error(at: _At, value: Any, gotype: str, wanted: str, *, whole: bool = False) -> InvalidDefinition:
    jtype = _json_type(value)
    if at.origin == "api":
        shown = f"number {value}" if jtype == "number" else jtype
        target = f"Go value of type {gotype}" if whole else f"Go struct field {at.go} of type {gotype}"
        return InvalidDefinition(f"Request decode failed: json: cannot unmarshal {shown} into {target}",
                                 field=at.go, value=value)
    shown = f" {json.dumps(value)}" if jtype in ("number", "string", "bool") else ""
    where = f"{at.path}: " if at.path else ""
    return InvalidDefinition(f"{where}expected {wanted}, got {jtype}{shown}", field=at.path, value=value)


# =========================================================================== value readers


def _str(value: Any, at: _At) -> str:
    if not isinstance(value, str):
        raise _type_error(at, value, "string", "a string")
    return value


def _bool(value: Any, at: _At) -> bool:
    if not isinstance(value, bool):
        raise _type_error(at, value, "bool", "a boolean")
    return value


def _int(value: Any, at: _At) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(at, value, "int", "an integer")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise _type_error(at, value, "int", "an integer")
    return int(value)


def _port(value: Any, at: _At) -> int:
    port = _int(value, at)
    if not 0 <= port <= 65535:
        raise at.fail(f"Invalid port {port}: must be between 0 and 65535", value=port)
    return port


def _str_list(value: Any, at: _At) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise _type_error(at, value, "[]string", "a list of strings")
    return tuple(_str(v, at.item(i)) for i, v in enumerate(value))


def _str_map(value: Any, at: _At) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise _type_error(at, value, "map[string]string", "an object of strings")
    return {str(k): _str(v, at.entry(str(k))) for k, v in value.items()}


def _free_map(value: Any, at: _At) -> dict[str, Any]:
    """A free-form object (``proxy.config``, ``connect.gateway``): kept verbatim."""
    if not isinstance(value, Mapping):
        raise _type_error(at, value, "map[string]interface {}", "an object")
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _duration(value: Any, at: _At) -> float:
    try:
        return decode_duration(value)
    except DurationError as exc:
        if at.origin == "api":
            raise InvalidDefinition(f"Request decode failed: {exc.message}", field=at.go, value=value) from None
        raise at.fail(exc.message, value=value) from None
    except InvalidInput:
        raise _type_error(at, value, "time.Duration", "a duration such as \"10s\"") from None


def _objects(value: Any, at: _At, read: Callable[[Any, _At], Any]) -> tuple[Any, ...]:
    """A list of objects; in config files one HCL block (a dict) counts as a list of one."""
    if isinstance(value, Mapping) and at.origin == "config":
        return (read(value, at.item(0)),)
    if not isinstance(value, (list, tuple)):
        raise _type_error(at, value, "[]object", "a list of objects")
    return tuple(read(v, at.item(i)) for i, v in enumerate(value))


def _one_object(value: Any, at: _At) -> Any:
    """Config files: a repeated-once HCL block may arrive as a one-element list."""
    if at.origin == "config" and isinstance(value, (list, tuple)) and len(value) == 1:
        return value[0]
    return value


def _choice(value: str, at: _At, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        shown = ", ".join(json.dumps(a) for a in allowed)
        raise at.fail(f"Invalid {what} {json.dumps(value)}: must be one of {shown}", value=value)
    return value


# =========================================================================== schemas

_SERVICE = _Schema("ServiceDefinition", [
    ("kind", "Kind", "structs.ServiceKind"),
    ("id", "ID", "string"),
    ("name", "Name", "string"),
    ("namespace", "Namespace", "string"),
    ("tags", "Tags", "[]string"),
    ("address", "Address", "string"),
    ("tagged_addresses", "TaggedAddresses", "map[string]structs.ServiceAddress"),
    ("meta", "Meta", "map[string]string"),
    ("port", "Port", "int"),
    ("socket_path", "SocketPath", "string"),
    ("check", "Check", "structs.CheckType"),
    ("checks", "Checks", "structs.CheckTypes"),
    ("weights", "Weights", "structs.Weights"),
    ("token", "Token", "string"),
    ("enable_tag_override", "EnableTagOverride", "bool"),
    ("proxy", "Proxy", "structs.ConnectProxyConfig"),
    ("connect", "Connect", "structs.ServiceConnect"),
    ("locality", "Locality", "structs.Locality"),
])
_CONNECT = _Schema("ServiceConnect", [
    ("native", "Native", "bool"),
    ("sidecar_service", "SidecarService", "structs.ServiceDefinition"),
    ("gateway", "Gateway", "map[string]interface {}"),  # trellis: the seed's connect.gateway
])
_PROXY = _Schema("ConnectProxyConfig", [
    ("destination_service_name", "DestinationServiceName", "string"),
    ("destination_service_id", "DestinationServiceID", "string"),
    ("local_service_address", "LocalServiceAddress", "string"),
    ("local_service_port", "LocalServicePort", "int"),
    ("local_service_socket_path", "LocalServiceSocketPath", "string"),
    ("mode", "Mode", "structs.ProxyMode"),
    ("transparent_proxy", "TransparentProxy", "structs.TransparentProxyConfig"),
    ("config", "Config", "map[string]interface {}"),
    ("upstreams", "Upstreams", "structs.Upstreams"),
    ("mesh_gateway", "MeshGateway", "structs.MeshGatewayConfig"),
    ("expose", "Expose", "structs.ExposeConfig"),
    ("access_logs", "AccessLogs", "structs.AccessLogsConfig"),
    ("envoy_extensions", "EnvoyExtensions", "[]structs.EnvoyExtension"),
])
_UPSTREAM = _Schema("Upstream", [
    ("destination_type", "DestinationType", "string"),
    ("destination_namespace", "DestinationNamespace", "string"),
    ("destination_partition", "DestinationPartition", "string"),
    ("destination_peer", "DestinationPeer", "string"),
    ("destination_name", "DestinationName", "string"),
    ("datacenter", "Datacenter", "string"),
    ("local_bind_address", "LocalBindAddress", "string"),
    ("local_bind_port", "LocalBindPort", "int"),
    ("local_bind_socket_path", "LocalBindSocketPath", "string"),
    ("local_bind_socket_mode", "LocalBindSocketMode", "string"),
    ("config", "Config", "map[string]interface {}"),
    ("mesh_gateway", "MeshGateway", "structs.MeshGatewayConfig"),
    ("centrally_configured", "CentrallyConfigured", "bool"),
])
_SERVICE_ADDRESS = _Schema("ServiceAddress", [("address", "Address", "string"), ("port", "Port", "int")])
_WEIGHTS = _Schema("Weights", [("passing", "Passing", "int"), ("warning", "Warning", "int")])
_LOCALITY = _Schema("Locality", [("region", "Region", "string"), ("zone", "Zone", "string")])
_MESH_GATEWAY = _Schema("MeshGatewayConfig", [("mode", "Mode", "structs.MeshGatewayMode")])
_TRANSPARENT_PROXY = _Schema("TransparentProxyConfig", [
    ("outbound_listener_port", "OutboundListenerPort", "int"),
    ("dialed_directly", "DialedDirectly", "bool"),
])
_EXPOSE = _Schema("ExposeConfig", [("checks", "Checks", "bool"), ("paths", "Paths", "[]structs.ExposePath")])
_EXPOSE_PATH = _Schema("ExposePath", [
    ("listener_port", "ListenerPort", "int"),
    ("path", "Path", "string"),
    ("local_path_port", "LocalPathPort", "int"),
    ("protocol", "Protocol", "string"),
    ("parsed_from_check", "ParsedFromCheck", "bool"),
])
_ACCESS_LOGS = _Schema("AccessLogsConfig", [
    ("enabled", "Enabled", "bool"),
    ("disable_listener_logs", "DisableListenerLogs", "bool"),
    ("type", "Type", "structs.LogSinkType"),
    ("path", "Path", "string"),
    ("json_format", "JSONFormat", "string"),
    ("text_format", "TextFormat", "string"),
])
_ENVOY_EXTENSION = _Schema("EnvoyExtension", [
    ("name", "Name", "string"),
    ("required", "Required", "bool"),
    ("arguments", "Arguments", "map[string]interface {}"),
    ("consul_version", "ConsulVersion", "string"),
    ("envoy_version", "EnvoyVersion", "string"),
])
_CHECK_ALL = _Schema("CheckType", [
    ("check_id", "CheckID", "types.CheckID"),
    ("id", "ID", "string"),
    ("name", "Name", "string"),
    ("notes", "Notes", "string"),
    ("status", "Status", "string"),
    ("service_id", "ServiceID", "string"),
    ("token", "Token", "string"),
    # Consul reads ScriptArgs, then `args`, then `script_args`; the first non-empty wins.
    _F("script_args", "ScriptArgs", "[]string", snake=""),
    ("args", "Args", "[]string"),
    _F("script_args_snake", "", "[]string", snake="script_args"),
    ("http", "HTTP", "string"),
    ("header", "Header", "map[string][]string"),
    ("method", "Method", "string"),
    ("body", "Body", "string"),
    ("disable_redirects", "DisableRedirects", "bool"),
    ("tcp", "TCP", "string"),
    ("tcp_use_tls", "TCPUseTLS", "bool"),
    ("udp", "UDP", "string"),
    ("grpc", "GRPC", "string"),
    ("grpc_use_tls", "GRPCUseTLS", "bool"),
    _F("h2ping", "H2PING", "string", snake=""),
    _F("h2ping_use_tls", "H2PingUseTLS", "bool", snake="h2ping_use_tls"),
    ("os_service", "OSService", "string"),
    ("docker_container_id", "DockerContainerID", "string"),
    ("shell", "Shell", "string"),
    ("alias_node", "AliasNode", "string"),
    ("alias_service", "AliasService", "string"),
    ("interval", "Interval", "time.Duration"),
    ("timeout", "Timeout", "time.Duration"),
    ("ttl", "TTL", "time.Duration"),
    ("deregister_critical_service_after", "DeregisterCriticalServiceAfter", "time.Duration"),
    ("tls_server_name", "TLSServerName", "string"),
    ("tls_skip_verify", "TLSSkipVerify", "bool"),
    ("success_before_passing", "SuccessBeforePassing", "int"),
    ("failures_before_warning", "FailuresBeforeWarning", "int"),
    ("failures_before_critical", "FailuresBeforeCritical", "int"),
    ("output_max_size", "OutputMaxSize", "int"),
])
# Consul: CheckID inside service definitions, ID on /v1/agent/check/register; each
# endpoint rejects the other spelling. Config files accept both (and `id` is usual).
_CHECK_IN_SERVICE = _CHECK_ALL.without("id", "token")
_CHECK_STANDALONE = _CHECK_ALL.without("check_id")
_CHECK_CONFIG = _CHECK_ALL

_KINDS = tuple(k.value for k in ServiceKind)
_PROXY_MODES = ("", "direct", "transparent")
_MESH_GATEWAY_MODES = ("", "none", "local", "remote")
_ACCESS_LOG_TYPES = ("", "file", "stderr", "stdout")


# =========================================================================== decoding


def decode_service(data: Mapping[str, Any], *, origin: Origin, path: str = "") -> ServiceDefinition:
    """Decode and validate one service definition (the body of
    ``PUT /v1/agent/service/register``, or one ``service`` block of a config file).

    ``path`` locates the definition in config messages (default ``"service"``).
    Raises InvalidDefinition (an InvalidInput) with Consul's message. Pure.
    """
    at = _root(origin, path, "service")
    defn = _read_service(data, at)
    _validate_service(defn, at)
    return defn


def decode_service_file(data: Mapping[str, Any], *, path: str = "") -> list[ServiceDefinition]:
    """The service definitions in an agent-config-shaped document: ``{"service": {...}}``,
    ``{"service": [...]}`` and/or ``{"services": [...]}`` (``consul services register
    FILE``). Keys are config-file keys; other top-level keys are errors. Pure.
    """
    at = _At("config", path, "")
    if not isinstance(data, Mapping):
        raise _type_error(at, data, "", "an object")
    out: list[ServiceDefinition] = []
    for key, value in data.items():
        name = key.lower() if isinstance(key, str) else key
        if name not in ("service", "services"):
            raise at.fail(f'unknown field "{key}" (a service file holds "service" or "services")')
        if value is None:
            continue
        block = at.key(name, "", "")
        if isinstance(value, Mapping):
            out.append(decode_service(value, origin="config", path=block.path))
        elif isinstance(value, (list, tuple)):
            out += [decode_service(item, origin="config", path=block.item(i).path) for i, item in enumerate(value)]
        else:
            raise _type_error(block, value, "", "an object or a list of objects")
    return out


def decode_check(data: Mapping[str, Any], *, origin: Origin, in_service: bool, path: str = "") -> CheckSpec:
    """Decode and validate one check definition.

    ``in_service=True``: an element of a service's ``Check``/``Checks`` (``CheckID``).
    ``in_service=False``: ``PUT /v1/agent/check/register`` or a config ``check`` block
    (``ID``, ``ServiceID``, ``Token``; ``Name`` required). Raises InvalidDefinition. Pure.
    """
    at = _root(origin, path, "check")
    spec, status = _read_check(data, at, in_service=in_service)
    if not in_service and not spec.name:
        raise at.fail("Missing check name")
    if not in_service and status and status not in _STATUSES:
        raise at.fail("Bad check status", value=status)
    if problem := check_problem(spec):
        raise at.fail(f"Invalid check: {problem}")
    if status and status not in _STATUSES:
        raise at.fail(STATUS_ERROR, value=status)
    return replace(spec, status=status)


def _root(origin: str, path: str, default: str) -> _At:
    if origin not in ("api", "config"):
        raise ValueError(f"origin must be 'api' or 'config', not {origin!r}")
    struct = "ServiceDefinition" if default == "service" else "CheckType"
    return _At(origin, path or (default if origin == "config" else ""), struct)


def _read_service(data: Any, at: _At) -> ServiceDefinition:
    f = _match(at, data, _SERVICE)
    get = _getter(f)
    checks: list[CheckSpec] = []
    if "check" in f:
        checks.extend(_read_service_check_field(*f["check"]))
    if "checks" in f:
        checks.extend(_objects(*f["checks"], _read_check_in_service))
    connect, sidecar = Connect(), None
    if "connect" in f:
        connect, sidecar = _read_connect(*f["connect"])
    return ServiceDefinition(
        name=get("name", _str, ""),
        id=get("id", _str, ""),
        kind=ServiceKind(get("kind", _kind, "")),
        namespace=get("namespace", _str, ""),
        tags=get("tags", _str_list, ()),
        address=get("address", _str, ""),
        tagged_addresses=get("tagged_addresses", _tagged_addresses, {}),
        meta=get("meta", _str_map, {}),
        port=get("port", _port, 0),
        socket_path=get("socket_path", _str, ""),
        weights=get("weights", _weights, None),
        enable_tag_override=get("enable_tag_override", _bool, False),
        proxy=get("proxy", _proxy, None),
        connect=connect,
        sidecar_service=sidecar,
        checks=tuple(checks),
        locality=get("locality", _locality, None),
        token=get("token", _str, ""),
    )


def _getter(f: dict[str, tuple[Any, _At]]) -> Callable[[str, Callable[[Any, _At], Any], Any], Any]:
    def get(attr: str, read: Callable[[Any, _At], Any], default: Any) -> Any:
        if attr not in f:
            return default
        value, at = f[attr]
        return read(value, at)

    return get


def _kind(value: Any, at: _At) -> str:
    return _choice(_str(value, at), at, _KINDS, "service kind")


def _read_service_check_field(value: Any, at: _At) -> list[CheckSpec]:
    """``Check``: one object; an empty one is ignored (Consul's ``CheckType.Empty``).
    Config files may repeat the ``check`` block; each is a check."""
    if at.origin == "config" and isinstance(value, (list, tuple)):
        return list(_objects(value, at, _read_check_in_service))
    if isinstance(value, Mapping) and all(v is None for v in value.values()):
        _match(at, value, _check_schema(at.origin, in_service=True))  # still reject unknown keys
        return []
    return [_read_check_in_service(value, at)]


def _read_check_in_service(value: Any, at: _At) -> CheckSpec:
    spec, status = _read_check(value, at, in_service=True)
    return replace(spec, status=status)  # validated by _validate_service


def _tagged_addresses(value: Any, at: _At) -> dict[str, ServiceAddress]:
    if not isinstance(value, Mapping):
        raise _type_error(at, value, "map[string]structs.ServiceAddress", "an object of addresses")
    out = {}
    for key, item in value.items():
        item_at = at.entry(str(key))
        f = _match(item_at, _one_object(item, item_at), _SERVICE_ADDRESS)
        get = _getter(f)
        out[str(key)] = ServiceAddress(address=get("address", _str, ""), port=get("port", _port, 0))
    return out


def _weights(value: Any, at: _At) -> Weights:
    get = _getter(_match(at, _one_object(value, at), _WEIGHTS))
    # Go zero values: a Weights object that omits a field has it at 0.
    return Weights(passing=get("passing", _int, 0), warning=get("warning", _int, 0))


def _locality(value: Any, at: _At) -> dict[str, str]:
    get = _getter(_match(at, _one_object(value, at), _LOCALITY))
    return {"region": get("region", _str, ""), "zone": get("zone", _str, "")}


def _read_connect(value: Any, at: _At) -> tuple[Connect, ServiceDefinition | None]:
    f = _match(at, _one_object(value, at), _CONNECT)
    get = _getter(f)
    sidecar = None
    if "sidecar_service" in f:
        raw, sidecar_at = f["sidecar_service"]
        sidecar = _read_service(_one_object(raw, sidecar_at), sidecar_at)
    return Connect(native=get("native", _bool, False), gateway=get("gateway", _free_map, {})), sidecar


def _proxy(value: Any, at: _At) -> Proxy:
    get = _getter(_match(at, _one_object(value, at), _PROXY))
    return Proxy(
        destination_service_name=get("destination_service_name", _str, ""),
        destination_service_id=get("destination_service_id", _str, ""),
        local_service_address=get("local_service_address", _str, ""),
        local_service_port=get("local_service_port", _port, 0),
        local_service_socket_path=get("local_service_socket_path", _str, ""),
        mode=get("mode", lambda v, a: _choice(_str(v, a), a, _PROXY_MODES, "proxy mode"), ""),
        transparent_proxy=get("transparent_proxy", _transparent_proxy, {}),
        config=get("config", _free_map, {}),
        upstreams=get("upstreams", lambda v, a: _objects(v, a, _upstream), ()),
        mesh_gateway=get("mesh_gateway", _mesh_gateway, {}),
        expose=get("expose", _expose, {}),
        access_logs=get("access_logs", _access_logs, {}),
        envoy_extensions=get("envoy_extensions", lambda v, a: _objects(v, a, _envoy_extension), ()),
    )


def _upstream(value: Any, at: _At) -> Upstream:
    get = _getter(_match(at, value, _UPSTREAM))
    return Upstream(
        destination_name=get("destination_name", _str, ""),
        # Consul's ServiceDefinition.NodeService() defaults the type.
        destination_type=get("destination_type", _str, "") or "service",
        destination_namespace=get("destination_namespace", _str, ""),
        destination_partition=get("destination_partition", _str, ""),
        destination_peer=get("destination_peer", _str, ""),
        datacenter=get("datacenter", _str, ""),
        local_bind_address=get("local_bind_address", _str, ""),
        local_bind_port=get("local_bind_port", _port, 0),
        local_bind_socket_path=get("local_bind_socket_path", _str, ""),
        local_bind_socket_mode=get("local_bind_socket_mode", _str, ""),
        config=get("config", _free_map, {}),
        mesh_gateway=get("mesh_gateway", _mesh_gateway, {}),
        centrally_configured=get("centrally_configured", _bool, False),
    )


def _snake_object(value: Any, at: _At, schema: _Schema, readers: dict[str, Callable[[Any, _At], Any]]) -> dict:
    """A small struct stored as a dict with canonical snake_case keys (rule 5)."""
    f = _match(at, _one_object(value, at), schema)
    return {attr: readers[attr](raw, field_at) for attr, (raw, field_at) in f.items()}


def _mesh_gateway(value: Any, at: _At) -> dict[str, Any]:
    mode = lambda v, a: _choice(_str(v, a), a, _MESH_GATEWAY_MODES, "mesh gateway mode")  # noqa: E731
    return _snake_object(value, at, _MESH_GATEWAY, {"mode": mode})


def _transparent_proxy(value: Any, at: _At) -> dict[str, Any]:
    return _snake_object(value, at, _TRANSPARENT_PROXY, {"outbound_listener_port": _port, "dialed_directly": _bool})


def _expose(value: Any, at: _At) -> dict[str, Any]:
    paths = lambda v, a: list(_objects(v, a, _expose_path))  # noqa: E731
    return _snake_object(value, at, _EXPOSE, {"checks": _bool, "paths": paths})


def _expose_path(value: Any, at: _At) -> dict[str, Any]:
    return _snake_object(value, at, _EXPOSE_PATH, {
        "listener_port": _int, "path": _str, "local_path_port": _port, "protocol": _str, "parsed_from_check": _bool,
    })


def _access_logs(value: Any, at: _At) -> dict[str, Any]:
    log_type = lambda v, a: _choice(_str(v, a), a, _ACCESS_LOG_TYPES, "access log type")  # noqa: E731
    return _snake_object(value, at, _ACCESS_LOGS, {
        "enabled": _bool, "disable_listener_logs": _bool, "type": log_type, "path": _str,
        "json_format": _str, "text_format": _str,
    })


def _envoy_extension(value: Any, at: _At) -> dict[str, Any]:
    return _snake_object(value, at, _ENVOY_EXTENSION, {
        "name": _str, "required": _bool, "arguments": _free_map, "consul_version": _str, "envoy_version": _str,
    })


# --------------------------------------------------------------------------- checks


def _read_check(data: Any, at: _At, *, in_service: bool) -> tuple[CheckSpec, str]:
    """Decode a check without validating it; the raw status is returned separately."""
    f = _match(at, _one_object(data, at), _check_schema(at.origin, in_service=in_service))
    get = _getter(f)
    h2ping = get("h2ping", _str, "")
    definition = CheckDefinition(
        http=get("http", _str, ""),
        header=get("header", _header, {}),
        method=get("method", _str, ""),
        body=get("body", _str, ""),
        disable_redirects=get("disable_redirects", _bool, False),
        tls_server_name=get("tls_server_name", _str, ""),
        tls_skip_verify=get("tls_skip_verify", _bool, False),
        tcp=get("tcp", _str, ""),
        tcp_use_tls=get("tcp_use_tls", _bool, False),
        udp=get("udp", _str, ""),
        grpc=get("grpc", _str, ""),
        grpc_use_tls=get("grpc_use_tls", _bool, False),
        h2ping=h2ping,
        h2ping_use_tls=get("h2ping_use_tls", _bool, bool(h2ping)),  # Consul: default true with H2PING
        os_service=get("os_service", _str, ""),
        args=_script_args(get),
        shell=get("shell", _str, ""),
        docker_container_id=get("docker_container_id", _str, ""),
        alias_node=get("alias_node", _str, ""),
        alias_service=get("alias_service", _str, ""),
        interval=get("interval", _duration, 0.0),
        timeout=get("timeout", _duration, 0.0),
        ttl=get("ttl", _duration, 0.0),
        deregister_critical_service_after=get("deregister_critical_service_after", _duration, 0.0),
        success_before_passing=get("success_before_passing", _int, 0),
        failures_before_warning=get("failures_before_warning", _int, 0),
        failures_before_critical=get("failures_before_critical", _int, 0),
        # 0 means the agent default (4096); a negative size fails validation.
        output_max_size=get("output_max_size", _int, 0) or CheckDefinition().output_max_size,
    )
    check_id = get("check_id", _str, "") or get("id", _str, "")
    spec = CheckSpec(
        check_id=check_id,
        name=get("name", _str, ""),
        notes=get("notes", _str, ""),
        # Consul tolerates ServiceID inside a service's checks and ignores it.
        service_id="" if in_service else get("service_id", _str, ""),
        token=get("token", _str, ""),
        type=detect_check_type(definition),
        definition=definition,
    )
    return spec, get("status", _str, "")


def _check_schema(origin: str, *, in_service: bool) -> _Schema:
    if origin == "config":
        return _CHECK_CONFIG
    return _CHECK_IN_SERVICE if in_service else _CHECK_STANDALONE


def _script_args(get: Callable[[str, Callable[[Any, _At], Any], Any], Any]) -> tuple[str, ...]:
    # Consul: ScriptArgs, then args, then script_args — the first non-empty wins.
    for attr in ("script_args", "args", "script_args_snake"):
        if args := get(attr, _str_list, ()):
            return args
    return ()


def _header(value: Any, at: _At) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        raise _type_error(at, value, "map[string][]string", "an object of string lists")
    return {str(k): _str_list(v, at.entry(str(k))) for k, v in value.items()}


def detect_check_type(d: CheckDefinition) -> CheckType:
    """Consul's ``CheckType.Type()``: grpc → http → ttl → tcp → udp → alias → docker →
    script → h2ping → os_service; runner types need an interval. Pure."""
    runs = d.interval > 0
    if d.grpc and runs:
        return CheckType.GRPC
    if d.http and runs:
        return CheckType.HTTP
    if d.ttl > 0:
        return CheckType.TTL
    if d.tcp and runs:
        return CheckType.TCP
    if d.udp and runs:
        return CheckType.UDP
    if d.alias_node or d.alias_service:
        return CheckType.ALIAS
    if d.args and d.docker_container_id and runs:
        return CheckType.DOCKER
    if d.args:
        return CheckType.SCRIPT
    if d.h2ping and runs:
        return CheckType.H2PING
    if d.os_service and runs:
        return CheckType.OS_SERVICE
    return CheckType.NONE


_STATUSES = frozenset(s.value for s in CheckStatus)


def check_problem(spec: CheckSpec) -> str | None:
    """Consul's ``CheckType.Validate()`` message for a bad check, else None. Pure.

    One addition (reference/consul-http-api.md §2): an alias check may not set an
    ``Interval`` at all; Consul only refuses one together with a runner field.
    """
    d = spec.definition
    is_alias = bool(d.alias_node or d.alias_service)
    needs_interval = bool(d.args or d.http or d.tcp or d.udp or d.grpc or d.h2ping or d.os_service)
    if d.interval > 0 and d.ttl > 0:
        return "Interval and TTL cannot both be specified"
    if needs_interval and d.interval <= 0:
        return "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"
    if is_alias and (needs_interval or d.interval > 0):
        return "Interval cannot be set for Alias checks"
    if is_alias and d.ttl > 0:
        return "TTL must be not be set for Alias checks"
    if not needs_interval and not is_alias and d.ttl <= 0:
        return "TTL must be > 0 for TTL checks"
    if d.output_max_size < 0:
        return "MaxOutputMaxSize must be positive"
    if d.failures_before_warning > d.failures_before_critical:
        return "FailuresBeforeWarning can't be higher than FailuresBeforeCritical"
    return None


def deregister_after(definition: CheckDefinition) -> float:
    """Seconds a check may stay critical before its service is reaped; 0 = never.

    Consul keeps the configured value in the definition but its reaper raises
    anything below one minute to one minute (agent.go ``addCheck``).
    """
    value = definition.deregister_critical_service_after
    return max(value, MIN_DEREGISTER_AFTER) if value > 0 else 0.0


# =========================================================================== validation


def _validate_service(defn: ServiceDefinition, at: _At) -> None:
    """Consul's checks, in the order ``AgentRegisterService`` makes them."""
    if not defn.name:
        raise at.fail("Missing service name")
    if defn.address in ("0.0.0.0", "::", "[::]"):
        raise at.fail("Invalid service address", value=defn.address)
    if defn.weights is not None and (problem := weights_problem(defn.weights)):
        raise at.fail(f"Invalid Weights: {problem}")
    if problem := meta_problem(defn.meta, kind=defn.kind):
        raise at.fail(f"Invalid Service Meta: {problem}")
    if problems := service_problems(defn):
        raise at.fail(f"Validation failed: {format_multierror(problems)}")
    _validate_checks(defn.checks, at, "Invalid check")
    if defn.sidecar_service is not None:
        _validate_sidecar(defn, at)
    for problem in (tagged_address_problem(defn), _sidecar_tagged_address_problem(defn)):
        if problem:
            raise at.fail(problem)


def _validate_checks(checks: tuple[CheckSpec, ...], at: _At, label: str) -> None:
    for spec in checks:
        if problem := check_problem(spec):
            raise at.fail(f"{label}: {problem}")
    for spec in checks:
        if spec.status and spec.status not in _STATUSES:
            raise at.fail(STATUS_ERROR, value=spec.status)


def _validate_sidecar(defn: ServiceDefinition, at: _At) -> None:
    from trellis.catalog import sidecar  # NOTE: sidecar.py imports this module's types

    sc = defn.sidecar_service
    assert sc is not None
    _validate_checks(sc.checks, at, "Invalid check in sidecar_service")
    if sc.meta and (problem := meta_problem(sc.meta, kind=sc.kind)):
        raise at.fail(f"Invalid SidecarService: {problem}")
    if sc.weights is not None and (problem := weights_problem(sc.weights)):
        raise at.fail(f"Invalid SidecarService: Invalid Weights: {problem}")
    expanded = sidecar.sidecar_definition(defn)
    if problems := agent_problems(expanded):
        raise at.fail(f"Failed Validation: {format_multierror(problems)}")


def _sidecar_tagged_address_problem(defn: ServiceDefinition) -> str | None:
    return tagged_address_problem(defn.sidecar_service) if defn.sidecar_service is not None else None


def weights_problem(weights: Weights) -> str | None:
    """Consul's ``ValidateWeights`` message, else None. Pure."""
    if weights.passing < 1:
        return "Passing must be greater than 0"
    if weights.warning < 0:
        return "Warning must be greater or equal than 0"
    if weights.passing > 65535 or weights.warning > 65535:
        return "DNS Weight must be between 0 and 65535"
    return None


def meta_problem(meta: Mapping[str, str], *, kind: ServiceKind = ServiceKind.TYPICAL,
                 allow_consul_prefix: bool = False) -> str | None:
    """Consul's ``ValidateServiceMetadata`` (and node-meta) message, else None.

    Keys are checked in sorted order, so the message is deterministic (Go's map
    order is random). Pure.
    """
    if len(meta) > META_MAX_PAIRS:
        return f"Node metadata cannot contain more than {META_MAX_PAIRS} key/value pairs"
    allowed = _MESH_GATEWAY_CONSUL_META if kind is ServiceKind.MESH_GATEWAY else frozenset()
    for key in sorted(meta):
        if problem := _meta_pair_problem(key, meta[key], allow_consul_prefix, allowed):
            return f"Couldn't load metadata pair ('{key}', '{meta[key]}'): {problem}"
    return None


def _meta_pair_problem(key: str, value: str, allow_consul_prefix: bool, allowed: frozenset[str]) -> str | None:
    if key == "":
        return "Key cannot be blank"
    if not _META_KEY.match(key):
        return "Key contains invalid characters"
    if len(key) > META_KEY_MAX:
        return f"Key is too long (limit: {META_KEY_MAX} characters)"
    if key.startswith("consul-") and not allow_consul_prefix and key not in allowed:
        return "Key prefix 'consul-' is reserved for internal use"
    if len(value) > META_VALUE_MAX:
        return f"Value is too long (limit: {META_VALUE_MAX} characters)"
    return None


def service_problems(defn: ServiceDefinition) -> list[str]:
    """Consul's ``NodeService.Validate()`` messages (empty when valid). Pure."""
    problems = []
    if defn.kind is ServiceKind.CONNECT_PROXY and defn.port == 0 and not defn.socket_path:
        problems.append(f"Port or SocketPath must be set for a {defn.kind.value}")
    return problems + agent_problems(defn)


def agent_problems(defn: ServiceDefinition) -> list[str]:
    """Consul's ``NodeService.ValidateForAgent()`` messages (empty when valid). Pure."""
    proxy = defn.proxy or Proxy()
    problems: list[str] = []
    if defn.kind is ServiceKind.CONNECT_PROXY:
        problems += _connect_proxy_problems(defn, proxy)
    if defn.kind.is_gateway:
        problems += _gateway_problems(defn, proxy)
    if defn.sidecar_service is not None:
        if defn.sidecar_service.id:
            problems.append("A SidecarService cannot specify an ID as this is managed by the agent")
        if defn.sidecar_service.sidecar_service is not None:
            problems.append("A SidecarService cannot have a nested SidecarService")
    if defn.connect.native and defn.port == 0 and not defn.socket_path:
        problems.append("Port or SocketPath must be set for a Connect native service.")
    return problems


def _connect_proxy_problems(defn: ServiceDefinition, proxy: Proxy) -> list[str]:
    problems = []
    if not proxy.destination_service_name.strip():
        problems.append("Proxy.DestinationServiceName must be non-empty for Connect proxy services")
    if proxy.destination_service_name == "*":
        problems.append("Proxy.DestinationServiceName must not be a wildcard for Connect proxy services")
    if defn.connect.native:
        problems.append("A Proxy cannot also be Connect Native, only typical services")
    return problems + upstream_problems(proxy.upstreams) + _expose_problems(proxy.expose)


def upstream_problems(upstreams: tuple[Upstream, ...]) -> list[str]:
    """Per-upstream rules, duplicate destinations and clashing binds. Pure."""
    problems: list[str] = []
    keys: set[tuple[str, ...]] = set()
    binds: set[str] = set()
    for u in upstreams:
        if not u.destination_peer and u.datacenter and u.destination_partition not in ("", "default"):
            problems.append("upstreams cannot target another datacenter in non default partition")
            continue
        if problem := _upstream_problem(u):
            problems.append(problem)
            continue
        key = (u.destination_type, u.destination_name, u.destination_partition,
               u.destination_namespace, u.destination_peer, u.datacenter)
        if key in keys:
            problems.append("upstreams cannot contain duplicates of " + _upstream_key_text(key))
            continue
        keys.add(key)
        addr = upstream_bind_address(u)
        if addr in binds and not u.centrally_configured:
            problems.append("upstreams cannot contain duplicates by local bind address and port or unix path; "
                            f"{json.dumps(addr)} is specified twice")
            continue
        binds.add(addr)
    return problems


def _upstream_problem(u: Upstream) -> str | None:
    if u.destination_type not in ("service", "prepared_query", ""):
        return f"unknown upstream destination type: {json.dumps(u.destination_type)}"
    if not u.destination_name:
        return "upstream destination name cannot be empty"
    if u.destination_name == "*" and not u.centrally_configured:
        return "upstream destination name cannot be a wildcard"
    if u.destination_peer and u.datacenter:
        return "upstream cannot specify both destination peer and datacenter"
    if u.local_bind_port == 0 and not u.local_bind_socket_path and not u.centrally_configured:
        return "upstream local bind port or local socket path must be defined and nonzero"
    if u.local_bind_port and u.local_bind_socket_path and not u.centrally_configured:
        return "only one of upstream local bind port or local socket path can be defined and nonzero"
    return None


def _upstream_key_text(key: tuple[str, ...]) -> str:
    names = ("type", "name", "partition", "namespace", "peer", "datacenter")
    return "[" + ", ".join(f"{n}={json.dumps(v)}" for n, v in zip(names, key)) + "]"


def upstream_bind_address(u: Upstream) -> str:
    """Consul's ``UpstreamAddressToString``: the socket path, or host:port (127.0.0.1 default)."""
    if u.local_bind_port == 0 and not u.local_bind_address and u.local_bind_socket_path:
        return u.local_bind_socket_path
    return join_host_port(u.local_bind_address or "127.0.0.1", u.local_bind_port)


def join_host_port(host: str, port: int) -> str:
    """Go's ``net.JoinHostPort``: IPv6 literals get brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _expose_problems(expose: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    seen: set[int] = set()
    for path in expose.get("paths", ()):
        port = path.get("listener_port", 0)
        if not path.get("path"):
            problems.append("expose.paths: empty path exposed")
        if port in seen:
            problems.append("expose.paths: duplicate listener ports exposed")
        seen.add(port)
        if not 0 < port <= 65535:
            problems.append(f"expose.paths: invalid listener port: {port}")
        protocol = path.get("protocol", "").lower()
        if protocol not in ("", "http", "http2"):
            problems.append(f"protocol '{protocol}' not supported for path: {path.get('path', '')}, "
                            "must be in: [http http2]")
    return problems


def _gateway_problems(defn: ServiceDefinition, proxy: Proxy) -> list[str]:
    kind = defn.kind.value
    problems = []
    if defn.port == 0 and defn.kind not in (ServiceKind.INGRESS_GATEWAY, ServiceKind.API_GATEWAY):
        problems.append(f"Port must be non-zero for a {kind}")
    if defn.sidecar_service is not None:
        problems.append(f"A {kind} cannot have a sidecar service defined")
    for label, value in (
        ("DestinationServiceName", proxy.destination_service_name),
        ("DestinationServiceID", proxy.destination_service_id),
        ("LocalServiceAddress", proxy.local_service_address),
        ("LocalServicePort", proxy.local_service_port),
        ("LocalServiceSocketPath", proxy.local_service_socket_path),
        ("Upstreams", proxy.upstreams),
    ):
        if value:
            problems.append(f"The Proxy.{label} configuration is invalid for a {kind}")
    return problems


def tagged_address_problem(defn: ServiceDefinition) -> str | None:
    """Consul's agent check that ``lan_ipv4``/``wan_ipv4``/``lan_ipv6``/``wan_ipv6`` hold
    addresses of that family. Pure."""
    for key, want_v4 in (("lan_ipv4", True), ("wan_ipv4", True), ("lan_ipv6", False), ("wan_ipv6", False)):
        if key in defn.tagged_addresses and ip_family(defn.tagged_addresses[key].address) != (4 if want_v4 else 6):
            return f"Service tagged address {json.dumps(key)} must be a valid ipv{4 if want_v4 else 6} address"
    return None


@functools.lru_cache(maxsize=4096)
def ip_family(address: str) -> int:
    """4 or 6 as Go's ``net.ParseIP(...).To4()`` sees it (v4-mapped v6 counts as 4); 0 otherwise."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return 0
    if isinstance(ip, ipaddress.IPv6Address):
        return 4 if ip.ipv4_mapped is not None else 6
    return 4


def format_multierror(problems: list[str]) -> str:
    """hashicorp/go-multierror's text, which Consul puts in its 400 bodies."""
    if len(problems) == 1:
        return f"1 error occurred:\n\t* {problems[0]}\n\n"
    points = "\n\t".join(f"* {p}" for p in problems)
    return f"{len(problems)} errors occurred:\n\t{points}\n\n"


def definition_warnings(defn: ServiceDefinition) -> tuple[str, ...]:
    """What Consul logs (but accepts): names and tags DNS cannot serve. Pure."""
    warnings = []
    if _DNS_INVALID.search(defn.name):
        warnings.append(f"Service name {defn.name!r} will not be discoverable via DNS due to invalid "
                        "characters. Valid characters include all alpha-numerics and dashes.")
    elif len(defn.name) > 63:
        warnings.append(f"Service name {defn.name!r} will not be discoverable via DNS due to it being too "
                        "long. Valid lengths are between 1 and 63 bytes.")
    for tag in defn.tags:
        if _DNS_INVALID.search(tag) or len(tag) > 63:
            warnings.append(f"Service tag {tag!r} will not be discoverable via DNS")
    return tuple(warnings)


# =========================================================================== registration


def build_registration(
    defn: ServiceDefinition,
    *,
    node: str,
    datacenter: str,
    sidecar_ports: PortPool,
    existing_sidecar_port: int = 0,
    source: str = "",
) -> Registration:
    """The service, checks and sidecar one registration writes. Pure.

    Fills Consul's agent defaults: ID = name, Weights 1/1, ``lan_ipv4``/``wan_ipv4``
    (or ``_ipv6``) tagged addresses from Address, check IDs ``service:<id>`` (or
    ``service:<id>:<n>`` when there are several), check names, initial status
    (given, else critical). A ``sidecar_service`` is expanded by ``sidecar.py``; its
    port comes from ``sidecar_ports`` (reusing ``existing_sidecar_port``). ``source``
    goes to ``agent_source`` ("config" for config files). Expects a definition from
    ``decode_service``. Raises SidecarPortUnavailable.
    """
    service = _build_service(defn, node=node, datacenter=datacenter, source=source)
    checks = build_service_checks(defn.checks, service)
    if defn.sidecar_service is None:
        return Registration(service=service, checks=checks)
    from trellis.catalog import sidecar  # NOTE: sidecar.py imports this module's types

    expanded = sidecar.expand_sidecar(defn, sidecar_ports, existing_port=existing_sidecar_port)
    inner = build_registration(expanded, node=node, datacenter=datacenter, sidecar_ports=sidecar_ports,
                               source=source)
    proxy_service = replace(inner.service, agent_sidecar_of=service.id)
    return Registration(service=service, checks=checks,
                        sidecar=Registration(service=proxy_service, checks=inner.checks))


def _build_service(defn: ServiceDefinition, *, node: str, datacenter: str, source: str) -> Service:
    proxy = None
    if defn.kind is not ServiceKind.TYPICAL:
        proxy = defn.proxy or Proxy()
    return Service(
        node=node,
        id=defn.service_id,
        name=defn.name,
        kind=defn.kind,
        namespace=defn.namespace or DEFAULT_NAMESPACE,
        tags=defn.tags,
        address=defn.address,
        tagged_addresses=default_tagged_addresses(defn.address, defn.port, defn.tagged_addresses),
        meta=dict(defn.meta),
        port=defn.port,
        socket_path=defn.socket_path,
        weights=defn.weights or Weights(),
        enable_tag_override=defn.enable_tag_override,
        proxy=proxy,
        connect=defn.connect,
        locality=dict(defn.locality) if defn.locality is not None else None,
        datacenter=datacenter,
        agent_token=defn.token,
        agent_source=source,
    )


def default_tagged_addresses(address: str, port: int,
                             given: Mapping[str, ServiceAddress]) -> dict[str, ServiceAddress]:
    """Consul's agent adds ``lan_ipv4``/``wan_ipv4`` (or ``lan_ipv6``/``wan_ipv6``) =
    {Address, Port} when Address is an IP and the key is not given. Pure."""
    out = dict(given)
    family = ip_family(address)
    if family:
        for key in (f"lan_ipv{family}", f"wan_ipv{family}"):
            out.setdefault(key, ServiceAddress(address=address, port=port))
    return out


def build_service_checks(specs: tuple[CheckSpec, ...], service: Service) -> tuple[Check, ...]:
    """Checks of a service registration with Consul's default IDs and names. Pure."""
    many = len(specs) > 1
    out = []
    for index, spec in enumerate(specs, start=1):
        default_id = f"service:{service.id}:{index}" if many else f"service:{service.id}"
        out.append(_build_check(spec, spec.check_id or default_id, node=service.node, service=service))
    return tuple(out)


def build_check(spec: CheckSpec, *, node: str, service: Service | None = None, source: str = "") -> Check:
    """A standalone check (/v1/agent/check/register, config ``check`` block): ID
    defaults to Name; ``service`` is the registered service named by ServiceID. Pure."""
    check = _build_check(spec, spec.check_id or spec.name, node=node, service=service)
    return replace(check, agent_token=spec.token, agent_source=source)


def _build_check(spec: CheckSpec, check_id: str, *, node: str, service: Service | None) -> Check:
    name = spec.name or (f"Service '{service.name}' check" if service is not None else "")
    return Check(
        node=node,
        check_id=check_id,
        name=name,
        status=spec.initial_status,
        notes=spec.notes,
        service_id=service.id if service is not None else "",
        service_name=service.name if service is not None else "",
        service_tags=service.tags if service is not None else (),
        type=spec.type,
        namespace=service.namespace if service is not None else DEFAULT_NAMESPACE,
        definition=spec.definition,
        agent_token=service.agent_token if service is not None else spec.token,
        agent_source=service.agent_source if service is not None else "",
    )
