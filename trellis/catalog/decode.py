"""Decoding of Consul service and check definitions into validated values (pure).

Owns the public decoders (``decode_service``, ``decode_service_file``,
``decode_check``; re-exported by ``definition.py``) and the readers behind them: one
per Consul struct (service, connect, proxy, upstream, check, and the raw nested
objects of ``definition.py`` rule 5). Key matching is ``keymatch.py``, the structs'
fields are ``schema.py``, the rules a decoded value must pass are ``validate.py``.

Rules:
1. Reading and validating are separate steps: the readers only decode (types, key
   spellings, closed sets of values); each public decoder validates once, at the end,
   so messages come in Consul's order.
2. Fields are read in a fixed order (a service's checks and connect block first), so
   the first error reported for a bad body is always the same.
3. Go's defaults apply where Consul's decoder applies them: upstream
   ``DestinationType`` ``service``, ``H2PingUseTLS`` true with ``H2PING``,
   ``OutputMaxSize`` 0 → 4096; everything else is stored as given.
4. The seed's ``connect.gateway`` (not Consul's) holds only ``proxy``; that object is
   checked as gateway bind config and merged into ``proxy.config``, and the service
   is marked ``connect.gateway = True`` (catalog/gateway.py), so both registration
   shapes store the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from trellis.catalog import schema
from trellis.catalog.keymatch import (
    At,
    Get,
    Origin,
    Reader,
    Schema,
    getter,
    match_fields,
    one_object,
    one_of,
    read_bool,
    read_duration,
    read_free_map,
    read_int,
    read_objects,
    read_port,
    read_str,
    read_str_list,
    read_str_map,
    type_error,
)
from trellis.catalog.gateway import gateway_config_problem
from trellis.catalog.model import CheckDefinition, Connect, Proxy, ServiceAddress, ServiceKind, Upstream, Weights
from trellis.catalog.spec import CheckSpec, ServiceDefinition, detect_check_type
from trellis.catalog.validate import validate_check, validate_service


# =========================================================================== public decoders


def decode_service(data: Mapping[str, Any], *, origin: Origin, path: str = "") -> ServiceDefinition:
    """Decode and validate one service definition (the body of
    ``PUT /v1/agent/service/register``, or one ``service`` block of a config file).

    ``path`` locates the definition in config messages (default ``"service"``).
    Raises InvalidDefinition (an InvalidInput) with Consul's message. Pure.
    """
    at = _root(origin, path, "service")
    defn = _read_service(data, at)
    validate_service(defn, at)
    return defn


def decode_service_file(data: Mapping[str, Any], *, path: str = "") -> list[ServiceDefinition]:
    """The service definitions in an agent-config-shaped document: ``{"service": {...}}``,
    ``{"service": [...]}`` and/or ``{"services": [...]}`` (``consul services register
    FILE``). Keys are config-file keys; other top-level keys are errors. Pure.
    """
    at = At("config", path, "")
    if not isinstance(data, Mapping):
        raise type_error(at, data, "", "an object")
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
            raise type_error(block, value, "", "an object or a list of objects")
    return out


def decode_check(data: Mapping[str, Any], *, origin: Origin, in_service: bool, path: str = "") -> CheckSpec:
    """Decode and validate one check definition.

    ``in_service=True``: an element of a service's ``Check``/``Checks`` (``CheckID``).
    ``in_service=False``: ``PUT /v1/agent/check/register`` or a config ``check`` block
    (``ID``, ``ServiceID``, ``Token``; ``Name`` required). Raises InvalidDefinition. Pure.
    """
    at = _root(origin, path, "check")
    spec, status = _read_check(data, at, in_service=in_service)
    validate_check(spec, status, at, in_service=in_service)
    return replace(spec, status=status)


def _root(origin: str, path: str, default: str) -> At:
    if origin not in ("api", "config"):
        raise ValueError(f"origin must be 'api' or 'config', not {origin!r}")
    struct = "ServiceDefinition" if default == "service" else "CheckType"
    return At(origin, path or (default if origin == "config" else ""), struct)


# =========================================================================== services


def _read_service(data: Any, at: At) -> ServiceDefinition:
    f = match_fields(at, data, schema.SERVICE)
    get = getter(f)
    checks: list[CheckSpec] = []
    if "check" in f:
        checks.extend(_read_service_check_field(*f["check"]))
    if "checks" in f:
        checks.extend(read_objects(*f["checks"], _read_check_in_service))
    connect, sidecar, gateway_config = Connect(), None, None
    if "connect" in f:
        connect, sidecar, gateway_config = _read_connect(*f["connect"])
    defn = ServiceDefinition(
        name=get("name", read_str, ""),
        id=get("id", read_str, ""),
        kind=ServiceKind(get("kind", _kind, "")),
        namespace=get("namespace", read_str, ""),
        tags=get("tags", read_str_list, ()),
        address=get("address", read_str, ""),
        tagged_addresses=get("tagged_addresses", _tagged_addresses, {}),
        meta=get("meta", read_str_map, {}),
        port=get("port", read_port, 0),
        socket_path=get("socket_path", read_str, ""),
        weights=get("weights", _weights, None),
        enable_tag_override=get("enable_tag_override", read_bool, False),
        proxy=get("proxy", _proxy, None),
        connect=connect,
        sidecar_service=sidecar,
        checks=tuple(checks),
        locality=get("locality", _locality, None),
        token=get("token", read_str, ""),
    )
    if gateway_config is None:
        return defn
    return replace(defn, proxy=_with_gateway_config(defn.proxy, gateway_config, f["connect"][1]))


def _kind(value: Any, at: At) -> str:
    return one_of(read_str(value, at), at, schema.KINDS, "service kind")


def _read_service_check_field(value: Any, at: At) -> list[CheckSpec]:
    """``Check``: one object; an empty one is ignored (Consul's ``CheckType.Empty``).
    Config files may repeat the ``check`` block; each is a check."""
    if at.origin == "config" and isinstance(value, (list, tuple)):
        return list(read_objects(value, at, _read_check_in_service))
    if isinstance(value, Mapping) and all(v is None for v in value.values()):
        match_fields(at, value, schema.check_schema(at.origin, in_service=True))  # still reject unknown keys
        return []
    return [_read_check_in_service(value, at)]


def _read_check_in_service(value: Any, at: At) -> CheckSpec:
    spec, status = _read_check(value, at, in_service=True)
    return replace(spec, status=status)  # validated by validate_service


def _tagged_addresses(value: Any, at: At) -> dict[str, ServiceAddress]:
    if not isinstance(value, Mapping):
        raise type_error(at, value, "map[string]structs.ServiceAddress", "an object of addresses")
    out = {}
    for key, item in value.items():
        item_at = at.entry(str(key))
        f = match_fields(item_at, one_object(item, item_at), schema.SERVICE_ADDRESS)
        get = getter(f)
        out[str(key)] = ServiceAddress(address=get("address", read_str, ""), port=get("port", read_port, 0))
    return out


def _weights(value: Any, at: At) -> Weights:
    get = getter(match_fields(at, one_object(value, at), schema.WEIGHTS))
    # Go zero values: a Weights object that omits a field has it at 0.
    return Weights(passing=get("passing", read_int, 0), warning=get("warning", read_int, 0))


def _locality(value: Any, at: At) -> dict[str, str]:
    get = getter(match_fields(at, one_object(value, at), schema.LOCALITY))
    return {"region": get("region", read_str, ""), "zone": get("zone", read_str, "")}


def _read_connect(value: Any, at: At) -> tuple[Connect, ServiceDefinition | None, dict[str, Any] | None]:
    """``Connect``, the sidecar definition, and the seed's ``connect.gateway.proxy``
    object (None when ``gateway`` is not given; decode rule 4)."""
    f = match_fields(at, one_object(value, at), schema.CONNECT)
    get = getter(f)
    sidecar = None
    if "sidecar_service" in f:
        raw, sidecar_at = f["sidecar_service"]
        sidecar = _read_service(one_object(raw, sidecar_at), sidecar_at)
    gateway_config = get("gateway", _gateway_connect, None)
    connect = Connect(native=get("native", read_bool, False), gateway=gateway_config is not None)
    return connect, sidecar, gateway_config


def _gateway_connect(value: Any, at: At) -> dict[str, Any]:
    """The seed's ``connect.gateway``: ``{proxy: {...}}``, the proxy object checked as a
    gateway's bind config (catalog/gateway.py rule 5)."""
    f = match_fields(at, one_object(value, at), schema.GATEWAY_CONNECT)
    if "proxy" not in f:
        return {}
    raw, proxy_at = f["proxy"]
    config = read_free_map(one_object(raw, proxy_at), proxy_at)
    if problem := gateway_config_problem(config):
        where = "" if at.origin == "config" else "Connect.Gateway.Proxy."
        raise proxy_at.fail(f"Invalid gateway config: {where}{problem}")
    return config


def _with_gateway_config(proxy: Proxy | None, config: dict[str, Any], at: At) -> Proxy:
    """The proxy block with the seed's gateway config added to ``config``; a key set in
    both places is an error (which one would win is anyone's guess)."""
    proxy = proxy or Proxy()
    for key in sorted(config.keys() & proxy.config.keys()):
        if config[key] != proxy.config[key]:
            raise at.fail(f"{key} is set both in connect.gateway.proxy and in proxy.config")
    return replace(proxy, config={**proxy.config, **config})


def _proxy(value: Any, at: At) -> Proxy:
    get = getter(match_fields(at, one_object(value, at), schema.PROXY))
    return Proxy(
        destination_service_name=get("destination_service_name", read_str, ""),
        destination_service_id=get("destination_service_id", read_str, ""),
        local_service_address=get("local_service_address", read_str, ""),
        local_service_port=get("local_service_port", read_port, 0),
        local_service_socket_path=get("local_service_socket_path", read_str, ""),
        mode=get("mode", lambda v, a: one_of(read_str(v, a), a, schema.PROXY_MODES, "proxy mode"), ""),
        transparent_proxy=get("transparent_proxy", _transparent_proxy, {}),
        config=get("config", read_free_map, {}),
        upstreams=get("upstreams", lambda v, a: read_objects(v, a, _upstream), ()),
        mesh_gateway=get("mesh_gateway", _mesh_gateway, {}),
        expose=get("expose", _expose, {}),
        access_logs=get("access_logs", _access_logs, {}),
        envoy_extensions=get("envoy_extensions", lambda v, a: read_objects(v, a, _envoy_extension), ()),
    )


def _upstream(value: Any, at: At) -> Upstream:
    get = getter(match_fields(at, value, schema.UPSTREAM))
    return Upstream(
        destination_name=get("destination_name", read_str, ""),
        # Consul's ServiceDefinition.NodeService() defaults the type.
        destination_type=get("destination_type", read_str, "") or "service",
        destination_namespace=get("destination_namespace", read_str, ""),
        destination_partition=get("destination_partition", read_str, ""),
        destination_peer=get("destination_peer", read_str, ""),
        datacenter=get("datacenter", read_str, ""),
        local_bind_address=get("local_bind_address", read_str, ""),
        local_bind_port=get("local_bind_port", read_port, 0),
        local_bind_socket_path=get("local_bind_socket_path", read_str, ""),
        local_bind_socket_mode=get("local_bind_socket_mode", read_str, ""),
        config=get("config", read_free_map, {}),
        mesh_gateway=get("mesh_gateway", _mesh_gateway, {}),
        centrally_configured=get("centrally_configured", read_bool, False),
    )


def _snake_object(value: Any, at: At, struct: Schema, readers: dict[str, Reader]) -> dict:
    """A small struct stored as a dict with canonical snake_case keys (``definition.py`` rule 5)."""
    f = match_fields(at, one_object(value, at), struct)
    return {attr: readers[attr](raw, field_at) for attr, (raw, field_at) in f.items()}


def _mesh_gateway(value: Any, at: At) -> dict[str, Any]:
    mode = lambda v, a: one_of(read_str(v, a), a, schema.MESH_GATEWAY_MODES, "mesh gateway mode")  # noqa: E731
    return _snake_object(value, at, schema.MESH_GATEWAY, {"mode": mode})


def _transparent_proxy(value: Any, at: At) -> dict[str, Any]:
    return _snake_object(value, at, schema.TRANSPARENT_PROXY, {
        "outbound_listener_port": read_port, "dialed_directly": read_bool,
    })


def _expose(value: Any, at: At) -> dict[str, Any]:
    paths = lambda v, a: list(read_objects(v, a, _expose_path))  # noqa: E731
    return _snake_object(value, at, schema.EXPOSE, {"checks": read_bool, "paths": paths})


def _expose_path(value: Any, at: At) -> dict[str, Any]:
    return _snake_object(value, at, schema.EXPOSE_PATH, {
        "listener_port": read_int, "path": read_str, "local_path_port": read_port, "protocol": read_str,
        "parsed_from_check": read_bool,
    })


def _access_logs(value: Any, at: At) -> dict[str, Any]:
    log_type = lambda v, a: one_of(read_str(v, a), a, schema.ACCESS_LOG_TYPES, "access log type")  # noqa: E731
    return _snake_object(value, at, schema.ACCESS_LOGS, {
        "enabled": read_bool, "disable_listener_logs": read_bool, "type": log_type, "path": read_str,
        "json_format": read_str, "text_format": read_str,
    })


def _envoy_extension(value: Any, at: At) -> dict[str, Any]:
    return _snake_object(value, at, schema.ENVOY_EXTENSION, {
        "name": read_str, "required": read_bool, "arguments": read_free_map, "consul_version": read_str,
        "envoy_version": read_str,
    })


# =========================================================================== checks


def _read_check(data: Any, at: At, *, in_service: bool) -> tuple[CheckSpec, str]:
    """Decode a check without validating it; the raw status is returned separately."""
    f = match_fields(at, one_object(data, at), schema.check_schema(at.origin, in_service=in_service))
    get = getter(f)
    definition = _read_check_definition(get)
    spec = CheckSpec(
        check_id=get("check_id", read_str, "") or get("id", read_str, ""),
        name=get("name", read_str, ""),
        notes=get("notes", read_str, ""),
        # Consul tolerates ServiceID inside a service's checks and ignores it.
        service_id="" if in_service else get("service_id", read_str, ""),
        token=get("token", read_str, ""),
        type=detect_check_type(definition),
        definition=definition,
    )
    return spec, get("status", read_str, "")


def _read_check_definition(get: Get) -> CheckDefinition:
    """The runner fields of a check (Consul's ``CheckType`` minus ID, name and status)."""
    h2ping = get("h2ping", read_str, "")
    return CheckDefinition(
        http=get("http", read_str, ""),
        header=get("header", _header, {}),
        method=get("method", read_str, ""),
        body=get("body", read_str, ""),
        disable_redirects=get("disable_redirects", read_bool, False),
        tls_server_name=get("tls_server_name", read_str, ""),
        tls_skip_verify=get("tls_skip_verify", read_bool, False),
        tcp=get("tcp", read_str, ""),
        tcp_use_tls=get("tcp_use_tls", read_bool, False),
        udp=get("udp", read_str, ""),
        grpc=get("grpc", read_str, ""),
        grpc_use_tls=get("grpc_use_tls", read_bool, False),
        h2ping=h2ping,
        h2ping_use_tls=get("h2ping_use_tls", read_bool, bool(h2ping)),  # Consul: default true with H2PING
        os_service=get("os_service", read_str, ""),
        args=_script_args(get),
        shell=get("shell", read_str, ""),
        docker_container_id=get("docker_container_id", read_str, ""),
        alias_node=get("alias_node", read_str, ""),
        alias_service=get("alias_service", read_str, ""),
        interval=get("interval", read_duration, 0.0),
        timeout=get("timeout", read_duration, 0.0),
        ttl=get("ttl", read_duration, 0.0),
        deregister_critical_service_after=get("deregister_critical_service_after", read_duration, 0.0),
        success_before_passing=get("success_before_passing", read_int, 0),
        failures_before_warning=get("failures_before_warning", read_int, 0),
        failures_before_critical=get("failures_before_critical", read_int, 0),
        # 0 means the agent default (4096); a negative size fails validation.
        output_max_size=get("output_max_size", read_int, 0) or CheckDefinition().output_max_size,
    )


def _script_args(get: Get) -> tuple[str, ...]:
    # Consul: ScriptArgs, then args, then script_args — the first non-empty wins.
    for attr in ("script_args", "args", "script_args_snake"):
        if args := get(attr, read_str_list, ()):
            return args
    return ()


def _header(value: Any, at: At) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        raise type_error(at, value, "map[string][]string", "an object of string lists")
    return {str(k): read_str_list(v, at.entry(str(k))) for k, v in value.items()}

