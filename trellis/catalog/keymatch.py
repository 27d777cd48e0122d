"""Key matching for Consul-shaped objects, and the scalar readers built on it (pure).

Owns ``At`` (where a value sits, and the error located there), ``Schema``/``Field``
(one Go struct and the spellings that select its fields), ``match_fields``, and the
``read_*`` functions that turn one JSON value into a Python value or raise
InvalidDefinition. Knows nothing of services or checks: their structs are tables in
``schema.py`` and their readers are in ``decode.py``.

Rules (``definition.py`` rules 1 and 2, as this module enforces them):
1. A key selects a field when it equals, case-insensitively, the Go field name or
   its snake_case form. When both forms are given the Go form wins.
2. A key that selects no field is an error. ``origin="api"`` errors use Go's
   ``encoding/json`` text (``Request decode failed: json: ...``); ``origin="config"``
   errors are prefixed with the key path. JSON ``null`` means "not given".
3. Every reader takes ``(value, at)`` and either returns the value or raises an
   error located at ``at``; none of them mutates its input.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, NamedTuple

from trellis.catalog.errors import InvalidDefinition
from trellis.config.duration import DurationError, decode_duration
from trellis.errors import InvalidInput

Origin = Literal["api", "config"]


class At(NamedTuple):
    """Where a value sits: for config messages (``path``) and API ones (``go``)."""

    origin: str
    path: str  # services[0].checks[1].interval
    go: str  # CheckType.Interval

    def key(self, name: str, struct: str, go_field: str) -> At:
        path = f"{self.path}.{name}" if self.path else name
        return At(self.origin, path, f"{struct}.{go_field}")

    def item(self, index: int) -> At:
        return At(self.origin, f"{self.path}[{index}]", self.go)

    def entry(self, key: str) -> At:
        return At(self.origin, f"{self.path}[{json.dumps(key)}]", self.go)

    def fail(self, message: str, *, value: Any = None) -> InvalidDefinition:
        """An error located here: API messages verbatim, config ones prefixed."""
        if self.origin == "api" or not self.path:
            return InvalidDefinition(message, field=self.path, value=value)
        return InvalidDefinition(f"{self.path}: {message}", field=self.path, value=value)


class Field(NamedTuple):
    """One field of a Go struct as the decoder sees it."""

    attr: str
    go: str  # Go field name, matched case-insensitively ("" = not a Go field)
    gotype: str  # for API type-error messages
    snake: str | None = None  # snake_case spelling; None = derived from ``go``, "" = none


class Schema:
    """One Go struct: its fields and the lower-cased spellings that select them.

    ``lookup`` maps a spelling to ``(attr, is_go_form)``; the flag lets the Go
    spelling win when a body sends both (rule 1).
    """

    def __init__(self, struct: str, fields: list[Field | tuple[str, str, str]]) -> None:
        fields = [f if isinstance(f, Field) else Field(*f) for f in fields]
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

    def without(self, *attrs: str) -> Schema:
        return Schema(self.struct, [f for a, f in self.fields.items() if a not in attrs])


@functools.cache
def snake_of(go_name: str) -> str:
    """Go field name → snake_case, keeping acronyms together (``TLSSkipVerify`` → ``tls_skip_verify``)."""
    out = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", go_name)
    out = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", out)
    return out.lower()


def match_fields(at: At, data: Any, schema: Schema) -> dict[str, tuple[Any, At]]:
    """Select schema fields from ``data``: ``{attr: (value, at-of-value)}``; nulls dropped."""
    if not isinstance(data, Mapping):
        raise type_error(at, data, f"structs.{schema.struct}", "an object", whole="." not in at.go)
    chosen: dict[str, tuple[bool, Any]] = {}
    for key, value in data.items():
        hit = schema.lookup.get(key.lower()) if isinstance(key, str) else None
        if hit is None:
            raise unknown_field(at, key)
        attr, go_form = hit
        if value is None:
            continue
        previous = chosen.get(attr)
        if previous is None or go_form or not previous[0]:
            chosen[attr] = (go_form, value)
    return {attr: (value, at.key(schema.name(attr), schema.struct, schema.fields[attr].go or attr))
            for attr, (_, value) in chosen.items()}


def unknown_field(at: At, key: Any) -> InvalidDefinition:
    if at.origin == "api":
        return InvalidDefinition(f'Request decode failed: json: unknown field "{key}"', field=str(key))
    where = f"{at.path}: " if at.path else ""
    return InvalidDefinition(f'{where}unknown field "{key}"', field=f"{at.path}.{key}".lstrip("."))


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages. Pure."""
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


def type_error(at: At, value: Any, gotype: str, wanted: str, *, whole: bool = False) -> InvalidDefinition:
    jtype = json_type(value)
    if at.origin == "api":
        shown = f"number {value}" if jtype == "number" else jtype
        target = f"Go value of type {gotype}" if whole else f"Go struct field {at.go} of type {gotype}"
        return InvalidDefinition(f"Request decode failed: json: cannot unmarshal {shown} into {target}",
                                 field=at.go, value=value)
    shown = f" {json.dumps(value)}" if jtype in ("number", "string", "bool") else ""
    where = f"{at.path}: " if at.path else ""
    return InvalidDefinition(f"{where}expected {wanted}, got {jtype}{shown}", field=at.path, value=value)


# =========================================================================== value readers

Reader = Callable[[Any, At], Any]  # (value, at) -> decoded value, or raises
Get = Callable[[str, Reader, Any], Any]  # get(attr, read, default), see ``getter``


def read_str(value: Any, at: At) -> str:
    if not isinstance(value, str):
        raise type_error(at, value, "string", "a string")
    return value


def read_bool(value: Any, at: At) -> bool:
    if not isinstance(value, bool):
        raise type_error(at, value, "bool", "a boolean")
    return value


def read_int(value: Any, at: At) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise type_error(at, value, "int", "an integer")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise type_error(at, value, "int", "an integer")
    return int(value)


def read_port(value: Any, at: At) -> int:
    port = read_int(value, at)
    if not 0 <= port <= 65535:
        raise at.fail(f"Invalid port {port}: must be between 0 and 65535", value=port)
    return port


def read_str_list(value: Any, at: At) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise type_error(at, value, "[]string", "a list of strings")
    return tuple(read_str(v, at.item(i)) for i, v in enumerate(value))


def read_str_map(value: Any, at: At) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise type_error(at, value, "map[string]string", "an object of strings")
    return {str(k): read_str(v, at.entry(str(k))) for k, v in value.items()}


def read_free_map(value: Any, at: At) -> dict[str, Any]:
    """A free-form object (``proxy.config``, ``connect.gateway.proxy``): kept verbatim."""
    if not isinstance(value, Mapping):
        raise type_error(at, value, "map[string]interface {}", "an object")
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def read_duration(value: Any, at: At) -> float:
    try:
        return decode_duration(value)
    except DurationError as exc:
        if at.origin == "api":
            raise InvalidDefinition(f"Request decode failed: {exc.message}", field=at.go, value=value) from None
        raise at.fail(exc.message, value=value) from None
    except InvalidInput:
        raise type_error(at, value, "time.Duration", "a duration such as \"10s\"") from None


def read_objects(value: Any, at: At, read: Reader) -> tuple[Any, ...]:
    """A list of objects; in config files one HCL block (a dict) counts as a list of one."""
    if isinstance(value, Mapping) and at.origin == "config":
        return (read(value, at.item(0)),)
    if not isinstance(value, (list, tuple)):
        raise type_error(at, value, "[]object", "a list of objects")
    return tuple(read(v, at.item(i)) for i, v in enumerate(value))


def one_object(value: Any, at: At) -> Any:
    """Config files: a repeated-once HCL block may arrive as a one-element list."""
    if at.origin == "config" and isinstance(value, (list, tuple)) and len(value) == 1:
        return value[0]
    return value


def one_of(value: str, at: At, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        shown = ", ".join(json.dumps(a) for a in allowed)
        raise at.fail(f"Invalid {what} {json.dumps(value)}: must be one of {shown}", value=value)
    return value


def getter(f: dict[str, tuple[Any, At]]) -> Get:
    """``get(attr, read, default)`` over ``match_fields`` output: ``read`` the value if given."""
    def get(attr: str, read: Reader, default: Any) -> Any:
        if attr not in f:
            return default
        value, at = f[attr]
        return read(value, at)

    return get
