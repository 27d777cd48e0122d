"""Config entries: Consul's JSON (and the same shapes from HCL) <-> typed values (pure).

Each entry type is a frozen dataclass whose fields carry their Consul name in
``key(...)`` metadata; one generic decoder and one encoder walk them, so a new kind
is a dataclass, not new parsing code.

Rules (Consul's config-entry decoder, ``lib/decode`` + mapstructure):
1. A key matches a field by its Consul name, case-insensitively, or by its
   snake_case alias. When both spellings are present, the Consul name wins.
2. An unknown key is refused naming its path: ``invalid config key "Sources[0].Nmae"``.
3. Free-form maps (``Meta``, proxy ``Config``) are kept as given: no translation.
4. A field typed as a struct accepts a one-element list (an HCL block) and a list
   field accepts a single object, as Consul's ``HookWeakDecodeFromSlice`` does.
5. Durations are Go duration strings or integer nanoseconds; inside they are
   seconds. Output: nanoseconds, unless the field says ``duration="text"``.
6. Output keys are Consul's, in field order. ``omitempty`` drops zero values; a
   nested struct without ``Optional`` is always printed (Go never omits a struct).
7. Output values print as Go's ``encoding/json`` does: an empty list that is not
   ``omitempty`` is ``null`` (a nil slice: ``"Hosts": null``), map keys are sorted,
   and a whole float prints without a fraction (``"Weight": 90``).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, NewType

from trellis.catalog.keymatch import json_type
from trellis.config.duration import (
    DurationError,
    format_duration,
    parse_duration_ns,
    seconds_to_ns,
)
from trellis.errors import InvalidInput

Duration = NewType("Duration", float)  # seconds
FreeMap = NewType("FreeMap", dict)  # rule 3: kept as given

_META = "trellis.entry"


@dataclasses.dataclass(frozen=True, slots=True)
class KeySpec:
    json: str
    alias: str | None
    omitempty: bool
    duration: str  # "ns" | "text"
    omit_value: Any = None  # also left out when equal to this (a namespace: "default")


def key(json: str, default: Any = dataclasses.MISSING, *, alias: str | None = None, omitempty: bool = True,
        factory: Callable[[], Any] | None = None, duration: str = "ns", omit_value: Any = None) -> Any:
    """A field with its Consul name, snake_case alias and output rule."""
    spec = KeySpec(json, alias, omitempty, duration, omit_value)
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={_META: spec})
    return dataclasses.field(default=default, metadata={_META: spec})


class EntryDecodeError(InvalidInput):
    """A config entry that cannot be decoded; the message names the key path."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(path, None, detail, message=f"Request decoding failed: {detail}")


def _spec(f: dataclasses.Field) -> KeySpec:
    spec = f.metadata.get(_META)
    if spec is None:
        raise TypeError(f"field {f.name} has no key() metadata")
    return spec


@cache
def _fields(cls: type) -> tuple[tuple[dataclasses.Field, KeySpec, Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f, _spec(f), hints[f.name]) for f in dataclasses.fields(cls) if f.init and _META in f.metadata)


@cache
def _lookup(cls: type) -> tuple[dict[str, str], dict[str, str]]:
    """(lower Consul name -> attr, lower alias -> attr) for a dataclass."""
    names, aliases = {}, {}
    for f, spec, _ in _fields(cls):
        names[spec.json.lower()] = f.name
        if spec.alias:
            aliases[spec.alias.lower()] = f.name
    return names, aliases


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# -- decoding ------------------------------------------------------------------------------
def decode(cls: type, data: Any, path: str = "", *, ignore: frozenset[str] = frozenset()) -> Any:
    """Decode ``data`` (plain JSON/HCL data) into the dataclass ``cls``. Pure; raises
    EntryDecodeError. Keys in ``ignore`` (lower case) are skipped (indexes on input)."""
    data = _one(data, path)
    if not isinstance(data, Mapping):
        raise EntryDecodeError(path, f"{path or 'the entry'}: expected an object, got {json_type(data)}")
    names, aliases = _lookup(cls)
    chosen: dict[str, tuple[bool, str, Any]] = {}  # attr -> (by Consul name?, key as given, value)
    for raw_key, value in data.items():
        if not isinstance(raw_key, str):
            raise EntryDecodeError(path, f"invalid config key {raw_key!r}")
        low = raw_key.lower()
        if low in ignore:
            continue
        attr, canonical = names.get(low), True
        if attr is None:
            attr, canonical = aliases.get(low), False
        if attr is None:
            raise EntryDecodeError(_join(path, raw_key), f'invalid config key "{_join(path, raw_key)}"')
        previous = chosen.get(attr)
        if previous is not None and (previous[0] or not canonical):
            if previous[0] == canonical:
                raise EntryDecodeError(_join(path, raw_key), f'config key "{_join(path, raw_key)}" is given twice')
            continue  # rule 1: the Consul name wins over the alias
        chosen[attr] = (canonical, raw_key, value)
    kwargs = {}
    types_by_attr = {f.name: (tp, spec) for f, spec, tp in _fields(cls)}
    for attr, (_, given, value) in chosen.items():
        tp, spec = types_by_attr[attr]
        kwargs[attr] = _value(tp, value, _join(path, spec.json if given.lower() == spec.json.lower() else given))
    return cls(**kwargs)


def _one(data: Any, path: str) -> Any:
    """Rule 4: an HCL block arrives as a list of one object."""
    if isinstance(data, list) and len(data) == 1 and isinstance(data[0], Mapping):
        return data[0]
    return data


def _value(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return None if value is None else _value(inner[0], value, path)
    if tp is Duration:
        return _duration(value, path)
    if tp is FreeMap:
        value = _one(value, path)
        if not isinstance(value, Mapping):
            raise _wrong(path, value, "an object")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return decode(tp, value, path)
    if origin in (list, tuple):
        item = typing.get_args(tp)[0]
        if value is None:
            return ()
        if not isinstance(value, list):
            value = [value]  # rule 4, the other way round
        return tuple(_value(item, v, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        value = _one(value, path)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise _wrong(path, value, "an object")
        item = typing.get_args(tp)[1]
        return {str(k): _value(item, v, f"{path}.{k}") for k, v in value.items()}
    return _scalar(tp, value, path)


def _scalar(tp: Any, value: Any, path: str) -> Any:
    if tp is str:
        if isinstance(value, str):
            return value
        raise _wrong(path, value, "a string")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _wrong(path, value, "true or false")
    if tp is int:
        if isinstance(value, str):  # weak typing, as mapstructure
            try:
                value = float(value)
            except ValueError:
                raise _wrong(path, value, "a whole number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not float(value).is_integer():
            raise _wrong(path, value, "a whole number")
        return int(value)
    if tp is float:
        if isinstance(value, str):  # weak typing, as mapstructure
            try:
                value = float(value)
            except ValueError:
                raise _wrong(path, value, "a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _wrong(path, value, "a number")
        return float(value)
    if tp is Any:
        return value
    raise TypeError(f"no decoder for {tp!r}")


def _duration(value: Any, path: str) -> Duration:
    if isinstance(value, str):
        try:
            return Duration(parse_duration_ns(value) / 1e9)
        except DurationError as exc:
            raise EntryDecodeError(path, f"{path}: {exc}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        return Duration(value / 1e9)  # nanoseconds, as Go's JSON
    raise _wrong(path, value, 'a duration such as "5s"')


def _wrong(path: str, value: Any, wanted: str) -> EntryDecodeError:
    shown = f" {value!r}" if isinstance(value, (str, int, float)) and not isinstance(value, bool) else ""
    return EntryDecodeError(path, f"{path}: expected {wanted}, got {json_type(value)}{shown}")


# -- encoding ------------------------------------------------------------------------------
def encode(value: Any) -> dict[str, Any]:
    """A dataclass as Consul's JSON object (rule 6). Pure."""
    out: dict[str, Any] = {}
    for f, spec, tp in _fields(type(value)):
        v = getattr(value, f.name)
        if (spec.omitempty and _empty(v)) or (spec.omit_value is not None and v == spec.omit_value):
            continue
        out[spec.json] = _out(tp, v, spec)
    return out


def _empty(v: Any) -> bool:
    if dataclasses.is_dataclass(v):
        return False  # a struct is never omitted
    return v is None or v == 0 or v == "" or v is False or (isinstance(v, (tuple, list, dict)) and not v)


def _out(tp: Any, v: Any, spec: KeySpec) -> Any:
    if v is None:
        return None
    if dataclasses.is_dataclass(v):
        return encode(v)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    if tp is Duration:
        return format_duration(v) if spec.duration == "text" else seconds_to_ns(v)
    if isinstance(v, tuple):
        if not v and not spec.omitempty:
            return None  # rule 7: Go's nil slice
        item = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        return [_out(item, x, spec) for x in v]
    if isinstance(v, dict) and tp is not FreeMap:
        args = typing.get_args(tp)
        item = args[1] if args else Any
        return {k: _out(item, v[k], spec) for k in sorted(v)}
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v
