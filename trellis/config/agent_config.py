"""Agent configuration files: decode, merge, resolve (pure) and load (reads files).

Data flow::

    file text ──parse_text──▶ dict ──decode_agent_config──▶ ConfigFragment ─┐
    (-hcl, -dev defaults, flags are fragments too)                          ├─combine──▶ ConfigFragment ──resolve──▶ AgentConfig
                                                           ConfigFragment ─┘

Rules:
1. A fragment holds only the keys its file sets, already type-checked and in
   canonical form; defaults are applied once, by ``resolve``.
2. Merging follows Consul: later fragments override scalars, lists append
   (``recursors``, ``retry_join``, services, checks, bootstrap config entries),
   maps merge key by key (``node_meta``, ``dns_config.service_ttl``,
   ``connect.ca_config``, ``acl.tokens``), sections merge field by field.
3. Keys match case-insensitively (Consul decodes with mapstructure); unknown keys,
   at any level, are errors naming the key path and the file. A section block
   repeated in HCL (two ``ports {}``) is merged like two files.
4. Durations are Go duration strings (``"10s"``) and become float seconds.
5. Only ``load_config_files`` touches the file system; everything else is pure.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from trellis.catalog.keymatch import json_type
from trellis.catalog.definition import CheckSpec, ServiceDefinition, decode_check, decode_service, meta_problem
from trellis.catalog.sidecar import PortPool
from trellis.config.duration import DurationError, parse_duration
from trellis.config.hcl import parse_text
from trellis.errors import InvalidInput


class InvalidConfig(InvalidInput):
    """An agent configuration that cannot be used; the message names the file."""

    def __init__(self, filename: str, detail: str, *, key: str = "", value: Any = None) -> None:
        self.filename = filename
        self.key = key
        super().__init__(key, value, detail, message=f"{filename}: {detail}" if filename else detail)


# =========================================================================== resolved config


@dataclass(frozen=True, slots=True)
class Ports:
    """``ports {}``; -1 disables a listener."""

    http: int = 8500
    https: int = -1
    dns: int = 8600
    grpc: int = -1  # Consul: off unless set; `agent -dev` sets 8502
    grpc_tls: int = -1
    server: int = 8300
    serf_lan: int = 8301
    serf_wan: int = 8302
    sidecar_min_port: int = 21000
    sidecar_max_port: int = 21255
    expose_min_port: int = 21500
    expose_max_port: int = 21755

    def sidecar_pool(self, used: frozenset[int] = frozenset()) -> PortPool:
        return PortPool(self.sidecar_min_port, self.sidecar_max_port, used)


@dataclass(frozen=True, slots=True)
class Addresses:
    """``addresses {}``: per-listener bind addresses; ``""`` means ``client_addr``."""

    http: str = ""
    https: str = ""
    dns: str = ""
    grpc: str = ""
    grpc_tls: str = ""


@dataclass(frozen=True, slots=True)
class SOAConfig:
    """``dns_config.soa`` (seconds)."""

    min_ttl: int = 0
    refresh: int = 3600
    retry: int = 600
    expire: int = 86400


@dataclass(frozen=True, slots=True)
class DNSConfig:
    """``dns_config {}`` (durations in seconds); defaults from reference/consul-connect.md §4.6."""

    allow_stale: bool = True
    max_stale: float = 87600 * 3600.0
    node_ttl: float = 0.0
    service_ttl: dict[str, float] = field(default_factory=dict)
    udp_answer_limit: int = 3
    a_record_limit: int = 0
    only_passing: bool = False
    enable_truncate: bool = False
    enable_additional_node_meta_txt: bool = True
    soa: SOAConfig = SOAConfig()
    disable_compression: bool = False
    recursor_timeout: float = 2.0
    recursor_strategy: str = "sequential"
    use_cache: bool = False
    cache_max_age: float = 0.0


@dataclass(frozen=True, slots=True)
class ConnectConfig:
    """``connect {}``; ``ca_config`` keeps the file's keys (the CA translates them)."""

    enabled: bool = True
    ca_provider: str = "consul"
    ca_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ACLConfig:
    """``acl {}``: stored now, enforced by the ACL work."""

    enabled: bool = False
    default_policy: str = "allow"
    down_policy: str = "extend-cache"
    enable_token_persistence: bool = False
    enable_token_replication: bool = False
    token_ttl: float = 30.0
    policy_ttl: float = 30.0
    role_ttl: float = 30.0
    tokens: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """The agent's resolved configuration (every default applied)."""

    node_name: str = ""  # "" = the host name, decided by the agent
    node_id: str = ""
    datacenter: str = "dc1"
    primary_datacenter: str = ""
    data_dir: str = ""
    server: bool = False
    bootstrap: bool = False
    bootstrap_expect: int = 0
    client_addr: str = "127.0.0.1"
    bind_addr: str = "0.0.0.0"
    advertise_addr: str = ""
    domain: str = "consul."
    log_level: str = "info"
    log_json: bool = False
    ports: Ports = Ports()
    addresses: Addresses = Addresses()
    dns_config: DNSConfig = DNSConfig()
    enable_script_checks: bool = False
    enable_local_script_checks: bool = False
    enable_central_service_config: bool = True
    default_intention_policy: str = ""  # "" = follow acl.default_policy
    connect: ConnectConfig = ConnectConfig()
    acl: ACLConfig = ACLConfig()
    node_meta: dict[str, str] = field(default_factory=dict)
    recursors: tuple[str, ...] = ()
    retry_join: tuple[str, ...] = ()
    ui: bool = False
    services: tuple[ServiceDefinition, ...] = ()
    checks: tuple[CheckSpec, ...] = ()
    config_entries_bootstrap: tuple[dict[str, Any], ...] = ()
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ConfigFragment:
    """What one source (a file, ``-hcl``, the flags, ``-dev`` defaults) sets (rule 1)."""

    source: str = ""
    values: dict[str, Any] = field(default_factory=dict)
    services: tuple[ServiceDefinition, ...] = ()
    checks: tuple[CheckSpec, ...] = ()
    config_entries_bootstrap: tuple[dict[str, Any], ...] = ()
    sources: tuple[str, ...] = ()


# =========================================================================== schema


class _Leaf(NamedTuple):
    read: Callable[[Any, str], Any]  # (value, key path) -> typed value; raises _Bad
    merge: str = "replace"  # replace | append | update


class _Bad(Exception):
    """A value problem; turned into InvalidConfig with the file name."""

    def __init__(self, path: str, detail: str, *, located: bool = False) -> None:
        super().__init__(detail if located else f"{path}: {detail}")
        self.path = path


def _wrong(path: str, value: Any, wanted: str) -> _Bad:
    shown = f" {json.dumps(value)}" if isinstance(value, (str, int, float)) else ""
    return _Bad(path, f"expected {wanted}, got {json_type(value)}{shown}")


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _wrong(path, value, "a string")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _wrong(path, value, "a boolean")
    return value


def _int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()):
        raise _wrong(path, value, "an integer")
    return int(value)


def _natural(value: Any, path: str) -> int:
    number = _int(value, path)
    if number < 0:
        raise _Bad(path, f"must not be negative, got {number}")
    return number


def _port(value: Any, path: str) -> int:
    number = _int(value, path)
    if not -1 <= number <= 65535:
        raise _Bad(path, f"invalid port {number}: must be -1 (disabled) or 0-65535")
    return number


def _duration(value: Any, path: str) -> float:
    if not isinstance(value, str):
        raise _wrong(path, value, 'a duration string such as "10s"')
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise _Bad(path, exc.message) from None


def _str_list(value: Any, path: str) -> tuple[str, ...]:
    if isinstance(value, str):  # a single value where Consul takes a list
        return (value,)
    if not isinstance(value, (list, tuple)):
        raise _wrong(path, value, "a list of strings")
    return tuple(_str(v, f"{path}[{i}]") for i, v in enumerate(value))


def _str_map(value: Any, path: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise _wrong(path, value, "an object of strings")
    return {str(k): _str(v, f"{path}.{k}") for k, v in value.items()}


def _duration_map(value: Any, path: str) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise _wrong(path, value, "an object of durations")
    return {str(k): _duration(v, f"{path}.{k}") for k, v in value.items()}


def _free_map(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _wrong(path, value, "an object")
    return dict(value)


def _one_of(*allowed: str, fold: bool = False) -> Callable[[Any, str], str]:
    def read(value: Any, path: str) -> str:
        text = _str(value, path)
        if (text.lower() if fold else text) not in allowed:
            choices = ", ".join(json.dumps(a) for a in allowed)
            raise _Bad(path, f"invalid value {json.dumps(text)}: must be one of {choices}")
        return text.lower() if fold else text

    return read


def _node_meta(value: Any, path: str) -> dict[str, str]:
    meta = _str_map(value, path)
    if problem := meta_problem(meta):
        raise _Bad(path, problem)
    return meta


def _domain(value: Any, path: str) -> str:
    text = _str(value, path).strip()
    if not text.strip("."):
        raise _Bad(path, "must not be empty")
    return text if text.endswith(".") else text + "."


def _datacenter(value: Any, path: str) -> str:
    text = _str(value, path).lower()  # Consul lower-cases the datacenter
    if not re.fullmatch(r"[a-z0-9_-]+", text):
        raise _Bad(path, "datacenter can only contain lowercase alphanumeric, - or _ characters.")
    return text


_Schema = dict  # key -> _Leaf | nested _Schema

_PORTS: _Schema = {name: _Leaf(_port) for name in (
    "http", "https", "dns", "grpc", "grpc_tls", "server", "serf_lan", "serf_wan",
    "sidecar_min_port", "sidecar_max_port", "expose_min_port", "expose_max_port")}
_ADDRESSES: _Schema = {name: _Leaf(_str) for name in ("http", "https", "dns", "grpc", "grpc_tls")}
_SOA: _Schema = {name: _Leaf(_natural) for name in ("min_ttl", "refresh", "retry", "expire")}
_DNS: _Schema = {
    "allow_stale": _Leaf(_bool),
    "max_stale": _Leaf(_duration),
    "node_ttl": _Leaf(_duration),
    "service_ttl": _Leaf(_duration_map, "update"),
    "udp_answer_limit": _Leaf(_natural),
    "a_record_limit": _Leaf(_natural),
    "only_passing": _Leaf(_bool),
    "enable_truncate": _Leaf(_bool),
    "enable_additional_node_meta_txt": _Leaf(_bool),
    "soa": _SOA,
    "disable_compression": _Leaf(_bool),
    "recursor_timeout": _Leaf(_duration),
    "recursor_strategy": _Leaf(_one_of("sequential", "random")),
    "use_cache": _Leaf(_bool),
    "cache_max_age": _Leaf(_duration),
}
_CONNECT: _Schema = {
    "enabled": _Leaf(_bool),
    "ca_provider": _Leaf(_one_of("consul", "vault", "aws-pca")),
    "ca_config": _Leaf(_free_map, "update"),
}
_ACL_TOKENS = ("initial_management", "master", "default", "agent", "agent_recovery", "agent_master",
               "replication", "dns", "config_file_service_registration")


def _acl_tokens(value: Any, path: str) -> dict[str, str]:
    tokens = _str_map(value, path)
    for key in tokens:
        if key not in _ACL_TOKENS:
            raise _Bad(f"{path}.{key}", f'invalid config key "{path}.{key}"', located=True)
    return tokens


_ACL: _Schema = {
    "enabled": _Leaf(_bool),
    "default_policy": _Leaf(_one_of("allow", "deny")),
    "down_policy": _Leaf(_one_of("allow", "deny", "extend-cache", "async-cache")),
    "enable_token_persistence": _Leaf(_bool),
    "enable_token_replication": _Leaf(_bool),
    "token_ttl": _Leaf(_duration),
    "policy_ttl": _Leaf(_duration),
    "role_ttl": _Leaf(_duration),
    "tokens": _Leaf(_acl_tokens, "update"),
}
_UI_CONFIG: _Schema = {"enabled": _Leaf(_bool), "dir": _Leaf(_str), "content_path": _Leaf(_str)}
_LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "err", "error", "off")
_TOP: _Schema = {
    "node_name": _Leaf(_str),
    "node_id": _Leaf(_str),
    "datacenter": _Leaf(_datacenter),
    "primary_datacenter": _Leaf(_datacenter),
    "data_dir": _Leaf(_str),
    "server": _Leaf(_bool),
    "bootstrap": _Leaf(_bool),
    "bootstrap_expect": _Leaf(_natural),
    "client_addr": _Leaf(_str),
    "bind_addr": _Leaf(_str),
    "advertise_addr": _Leaf(_str),
    "domain": _Leaf(_domain),
    "log_level": _Leaf(_one_of(*_LOG_LEVELS, fold=True)),
    "log_json": _Leaf(_bool),
    "ports": _PORTS,
    "addresses": _ADDRESSES,
    "dns_config": _DNS,
    "enable_script_checks": _Leaf(_bool),
    "enable_local_script_checks": _Leaf(_bool),
    "enable_central_service_config": _Leaf(_bool),
    "default_intention_policy": _Leaf(_one_of("", "allow", "deny")),
    "connect": _CONNECT,
    "acl": _ACL,
    "node_meta": _Leaf(_node_meta, "update"),
    "recursors": _Leaf(_str_list, "append"),
    "retry_join": _Leaf(_str_list, "append"),
    "ui": _Leaf(_bool),
    "ui_config": _UI_CONFIG,
}
_BLOCKS = ("service", "services", "check", "checks", "config_entries")


# =========================================================================== decode


def decode_agent_config(data: Mapping[str, Any], filename: str) -> ConfigFragment:
    """Type-check one parsed config document (rule 1). Pure.

    Raises InvalidConfig naming ``filename`` and the key path (unknown keys, wrong
    types, bad values, invalid service/check definitions).
    """
    if not isinstance(data, Mapping):
        raise InvalidConfig(filename, f"expected an object, got {json_type(data)}")
    plain = {k: v for k, v in data.items() if not (isinstance(k, str) and k.lower() in _BLOCKS)}
    try:
        values = _section(plain, _TOP, "")
        services, checks, entries = _blocks(data)
    except _Bad as exc:
        raise InvalidConfig(filename, str(exc), key=exc.path) from None
    except InvalidInput as exc:
        raise InvalidConfig(filename, exc.message, key=exc.field, value=exc.value) from None
    return ConfigFragment(source=filename, values=values, services=services, checks=checks,
                          config_entries_bootstrap=entries, sources=(filename,) if filename else ())


def parse_agent_config(text: str, *, filename: str, fmt: str | None = None) -> ConfigFragment:
    """``parse_text`` then ``decode_agent_config`` (for files and ``-hcl`` fragments). Pure."""
    return decode_agent_config(parse_text(text, filename=filename, fmt=fmt), filename)


def _section(data: Any, schema: _Schema, path: str) -> dict[str, Any]:
    if isinstance(data, (list, tuple)) and path and all(isinstance(d, Mapping) for d in data):
        out: dict[str, Any] = {}
        for item in data:  # a section block repeated in HCL: merge, in order
            out = _merge_values(out, _section(item, schema, path), schema)
        return out
    if not isinstance(data, Mapping):
        raise _wrong(path, data, "an object")
    out = {}
    for key, value in data.items():
        name = key.lower() if isinstance(key, str) else key
        key_path = f"{path}.{key}" if path else str(key)
        spec = schema.get(name)
        if spec is None:
            raise _Bad(key_path, f'invalid config key "{key_path}"', located=True)
        if name in out:
            raise _Bad(key_path, "set twice (keys are case-insensitive)")
        if value is None:
            continue
        out[name] = _section(value, spec, key_path) if isinstance(spec, dict) else spec.read(value, key_path)
    return out


def _blocks(data: Mapping[str, Any]) -> tuple[tuple[ServiceDefinition, ...], tuple[CheckSpec, ...], tuple]:
    services: list[ServiceDefinition] = []
    checks: list[CheckSpec] = []
    entries: list[dict[str, Any]] = []
    for key, value in data.items():
        name = key.lower() if isinstance(key, str) else key
        if name not in _BLOCKS or value is None:
            continue
        if name in ("service", "services"):
            services += [decode_service(item, origin="config", path=p) for p, item in _items(value, name)]
        elif name in ("check", "checks"):
            checks += [decode_check(item, origin="config", in_service=False, path=p) for p, item in _items(value, name)]
        else:
            entries += _bootstrap_entries(value)
    return tuple(services), tuple(checks), tuple(entries)


def _items(value: Any, name: str) -> list[tuple[str, Any]]:
    """``service {...}`` (one block) or a list of them, with their key paths."""
    if isinstance(value, Mapping):
        return [(name, value)]
    if not isinstance(value, (list, tuple)):
        raise _wrong(name, value, "an object or a list of objects")
    return [(f"{name}[{i}]", item) for i, item in enumerate(value)]


def _bootstrap_entries(value: Any) -> list[dict[str, Any]]:
    """``config_entries { bootstrap = [...] }``: kept raw for the config-entry work."""
    merged = _section(value, {"bootstrap": _Leaf(lambda v, p: v)}, "config_entries")
    raw = merged.get("bootstrap", [])
    items = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(items, (list, tuple)):
        raise _wrong("config_entries.bootstrap", raw, "a list of config entries")
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise _wrong(f"config_entries.bootstrap[{i}]", item, "an object")
    return [dict(item) for item in items]


# =========================================================================== merge


def combine(*fragments: ConfigFragment) -> ConfigFragment:
    """Merge fragments in order (rule 2) into one. Pure and associative."""
    values: dict[str, Any] = {}
    for fragment in fragments:
        values = _merge_values(values, fragment.values, _TOP)
    return ConfigFragment(
        source=fragments[0].source if len(fragments) == 1 else "",
        values=values,
        services=tuple(s for f in fragments for s in f.services),
        checks=tuple(c for f in fragments for c in f.checks),
        config_entries_bootstrap=tuple(e for f in fragments for e in f.config_entries_bootstrap),
        sources=tuple(s for f in fragments for s in f.sources),
    )


def _merge_values(base: Mapping[str, Any], over: Mapping[str, Any], schema: _Schema) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        spec = schema[key]
        if isinstance(spec, dict):
            out[key] = _merge_values(out.get(key, {}), value, spec)
        elif spec.merge == "append" and key in out:
            out[key] = tuple(out[key]) + tuple(value)
        elif spec.merge == "update" and key in out:
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def resolve(fragment: ConfigFragment) -> AgentConfig:
    """Apply every default and the cross-field checks. Pure; raises InvalidConfig."""
    v = fragment.values
    _check_combinations(v, fragment.source)
    ui_config = v.get("ui_config", {})
    plain = {k: x for k, x in v.items() if not isinstance(_TOP[k], dict)}
    plain.pop("ui", None)
    return AgentConfig(
        **plain,
        ports=Ports(**v.get("ports", {})),
        addresses=Addresses(**v.get("addresses", {})),
        dns_config=_dns_config(v.get("dns_config", {})),
        connect=ConnectConfig(**v.get("connect", {})),
        acl=ACLConfig(**v.get("acl", {})),
        ui=ui_config.get("enabled", v.get("ui", False)),
        services=fragment.services,
        checks=fragment.checks,
        config_entries_bootstrap=fragment.config_entries_bootstrap,
        sources=fragment.sources,
    )


def _dns_config(values: Mapping[str, Any]) -> DNSConfig:
    rest = {k: x for k, x in values.items() if k != "soa"}
    return DNSConfig(**rest, soa=SOAConfig(**values.get("soa", {})))


def _check_combinations(v: Mapping[str, Any], source: str) -> None:
    server = v.get("server", False)
    if v.get("bootstrap_expect", 0) > 0 and v.get("bootstrap", False):
        raise InvalidConfig(source, "'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive")
    if v.get("bootstrap_expect", 0) > 0 and not server:
        raise InvalidConfig(source, "'bootstrap_expect > 0' requires 'server = true'")
    if v.get("bootstrap", False) and not server:
        raise InvalidConfig(source, "'bootstrap = true' requires 'server = true'")
    ports = Ports(**v.get("ports", {}))
    if ports.sidecar_min_port > 0 and ports.sidecar_max_port > 0 and ports.sidecar_min_port > ports.sidecar_max_port:
        raise InvalidConfig(source, "ports.sidecar_min_port must be less than or equal to ports.sidecar_max_port")
    if ports.expose_min_port > 0 and ports.expose_max_port > 0 and ports.expose_min_port > ports.expose_max_port:
        raise InvalidConfig(source, "ports.expose_min_port must be less than or equal to ports.expose_max_port")


def merge(fragments: Iterable[ConfigFragment]) -> AgentConfig:
    """``resolve(combine(*fragments))``: the config that fragments give, in order. Pure."""
    return resolve(combine(*fragments))


# =========================================================================== files


def load_config_files(
    paths: Sequence[str | os.PathLike[str]] = (),
    dirs: Sequence[str | os.PathLike[str]] = (),
    *,
    fmt: str | None = None,
    before: Sequence[ConfigFragment] = (),
    after: Sequence[ConfigFragment] = (),
) -> AgentConfig:
    """Read ``-config-file`` paths, then ``-config-dir`` directories, and merge them
    between ``before`` (e.g. ``-dev`` defaults) and ``after`` (e.g. flags).

    A path that is a directory is read as one (Consul does the same), so callers
    that must keep the command-line order may pass everything in ``paths``. A
    directory contributes its ``*.json`` and ``*.hcl`` files in lexical order, not
    its subdirectories. ``fmt`` forces the format of every file (``-config-format``).
    Reads files (not loop-safe: call via ``asyncio.to_thread`` from async code).
    Raises InvalidConfig.
    """
    fragments = list(before)
    for path in paths:
        fragments += _load_path(os.fspath(path), fmt)
    for directory in dirs:
        fragments += _load_dir(os.fspath(directory), fmt)
    return merge([*fragments, *after])


def _load_path(path: str, fmt: str | None) -> list[ConfigFragment]:
    if os.path.isdir(path):
        return _load_dir(path, fmt)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidConfig(path, f"Error reading config file: {getattr(exc, 'strerror', None) or exc}") from None
    return [parse_agent_config(text, filename=path, fmt=fmt)]


def _load_dir(directory: str, fmt: str | None) -> list[ConfigFragment]:
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise InvalidConfig(directory, f"Error reading config dir: {exc.strerror or exc}") from None
    fragments = []
    for name in names:
        path = os.path.join(directory, name)
        if name.endswith((".json", ".hcl")) and not os.path.isdir(path):
            fragments += _load_path(path, fmt)
    return fragments
