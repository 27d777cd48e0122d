"""Stored documents: frozen dataclasses <-> compact JSON bytes.

Rules:
1. Only fields that differ from their defaults are written, so adding a field
   with a default never needs a migration.
2. ``create_index``/``modify_index`` are never stored: they are the backend's
   revisions, filled in by the view.
3. Decoding ignores unknown keys (a newer writer) and is driven by type hints.

Encoders and decoders are built once per type (every write and every applied
change goes through here, so this is on the hot path).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")
_NOT_STORED = frozenset({"create_index", "modify_index"})
_MISSING = object()


@cache
def _field_defaults(cls: type) -> tuple[tuple[str, Any], ...]:
    out = []
    for f in dataclasses.fields(cls):
        if f.name in _NOT_STORED:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = _MISSING
        out.append((f.name, default))
    return tuple(out)


def to_data(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value.value if isinstance(value, enum.Enum) else value
    if dataclasses.is_dataclass(value):
        out = {}
        for name, default in _field_defaults(type(value)):
            v = getattr(value, name)
            if default is not _MISSING and v == default:
                continue
            out[name] = to_data(v)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [to_data(v) for v in value]
    if isinstance(value, dict):
        return {k: to_data(v) for k, v in value.items()}
    return value


def encode(value: Any) -> bytes:
    return json.dumps(to_data(value), separators=(",", ":")).encode()  # field order is fixed


def decode(cls: type[T], raw: bytes, **extra: Any) -> T:
    """Decode ``raw`` into ``cls``; ``extra`` sets fields not stored (indexes)."""
    data = json.loads(raw)
    data.update(extra)
    return _decoder(cls)(data)


def from_data(tp: Any, data: Any) -> Any:
    return _decoder(tp)(data)


def _identity(data: Any) -> Any:
    return data


@cache
def _decoder(tp: Any) -> Callable[[Any], Any]:
    """A function turning JSON data into ``tp`` (None stays None)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _decoder(inner)
    if dataclasses.is_dataclass(tp):
        return _dataclass_decoder(tp)
    if origin is tuple:
        item = _decoder(typing.get_args(tp)[0])
        return lambda d: None if d is None else tuple(item(v) for v in d)
    if origin is list:
        item = _decoder(typing.get_args(tp)[0])
        return lambda d: None if d is None else [item(v) for v in d]
    if origin is dict:
        item = _decoder(typing.get_args(tp)[1])
        if item is _identity:
            return lambda d: None if d is None else dict(d)
        return lambda d: None if d is None else {k: item(v) for k, v in d.items()}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return lambda d: None if d is None else tp(d)
    if tp is float:
        return lambda d: float(d) if isinstance(d, int) and not isinstance(d, bool) else d
    return _identity


def _dataclass_decoder(cls: type) -> Callable[[Any], Any]:
    hints = typing.get_type_hints(cls)
    fields: dict[str, Callable[[Any], Any] | None] = {}

    def decode_one(data: Any) -> Any:
        if data is None:
            return None
        if not fields:  # filled lazily: nested types may refer back to cls
            for f in dataclasses.fields(cls):
                fields[f.name] = _decoder(hints[f.name])
        return cls(**{k: fields[k](v) for k, v in data.items() if k in fields})

    return decode_one
