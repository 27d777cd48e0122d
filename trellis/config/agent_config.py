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

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from trellis.catalog.keymatch import json_type
from trellis.catalog.definition import CheckSpec, ServiceDefinition, decode_check, decode_service
from trellis.config.agent_model import (
    ACLConfig,
    Addresses,
    AgentConfig,
    ConfigFragment,
    ConnectConfig,
    DNSConfig,
    InvalidConfig,
    Ports,
    SOAConfig,
)
from trellis.config.agent_schema import _BLOCKS, _TOP, _Bad, _Leaf, _Schema, _wrong
from trellis.config.hcl import parse_text
from trellis.errors import InvalidInput

__all__ = [
    "ACLConfig", "Addresses", "AgentConfig", "ConfigFragment", "ConnectConfig", "DNSConfig",
    "InvalidConfig", "Ports", "SOAConfig", "combine", "decode_agent_config", "load_config_files",
    "merge", "parse_agent_config", "resolve",
]


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
