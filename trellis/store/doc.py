"""Stored documents: frozen dataclasses <-> compact JSON bytes.

Rules:
1. Only fields that differ from their defaults are written, so adding a field
   with a default never needs a migration.
2. ``create_index``/``modify_index`` are never stored: they are the backend's
   revisions, filled in by the view.
3. Decoding ignores unknown keys (a newer writer) and is driven by type hints.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from functools import cache
from typing import Any, TypeVar

T = TypeVar("T")
_NOT_STORED = frozenset({"create_index", "modify_index"})


def to_data(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        out = {}
        for f in dataclasses.fields(value):
            if f.name in _NOT_STORED:
                continue
            v = getattr(value, f.name)
            if _is_default(f, v):
                continue
            out[f.name] = to_data(v)
        return out
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (tuple, list)):
        return [to_data(v) for v in value]
    if isinstance(value, dict):
        return {k: to_data(v) for k, v in value.items()}
    return value


def _is_default(f: dataclasses.Field, v: Any) -> bool:
    if f.default is not dataclasses.MISSING:
        return v == f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return v == f.default_factory()  # type: ignore[misc]
    return False


def encode(value: Any) -> bytes:
    return json.dumps(to_data(value), separators=(",", ":"), sort_keys=True).encode()


def decode(cls: type[T], raw: bytes, **extra: Any) -> T:
    """Decode ``raw`` into ``cls``; ``extra`` sets fields not stored (indexes)."""
    data = json.loads(raw)
    data.update(extra)
    return from_data(cls, data)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_data(tp: Any, data: Any) -> Any:
    if data is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return from_data(args[0], data)
    if dataclasses.is_dataclass(tp):
        hints = _hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        return tp(**{k: from_data(hints[k], v) for k, v in data.items() if k in names})
    if origin is tuple:
        (item, *_rest) = typing.get_args(tp)
        return tuple(from_data(item, v) for v in data)
    if origin is list:
        (item,) = typing.get_args(tp)
        return [from_data(item, v) for v in data]
    if origin is dict:
        _k, item = typing.get_args(tp)
        return {k: from_data(item, v) for k, v in data.items()}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(data)
    if tp is float and isinstance(data, int):
        return float(data)
    return data
