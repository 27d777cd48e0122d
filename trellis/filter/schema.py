"""Typed shapes of the documents a filter runs over, and which operators each shape takes.

A schema is a ``Field`` tree built from ``STRING``, ``INT``, ``FLOAT``, ``BOOL``,
``list_of``, ``map_of`` and ``struct``. It is the only thing ``compile`` consults to
validate selectors, so each filtered document type has exactly one schema
(``schemas.py``), written once next to its Consul Go struct.

Rule 1 (selectors): a struct member is selected by its exact name (go-bexpr compares
Go field names case-sensitively); a map is indexed by any key; a list of structs is
stepped through transparently, so ``Checks.Status`` reaches the ``Status`` of every
check. Lists of scalars and scalars cannot be stepped into.
Rule 2 (operators): ``OPERATORS`` is go-bexpr v0.1.2's table of supported operations,
plus ``is empty``/``is not empty`` on strings (later go-bexpr allows those):

    string           == != in/contains (substring) matches is-empty
    int float bool   == !=
    list of scalar   in/contains (membership) is-empty
    list of struct   is-empty (and step into its members)
    map              in/contains (key present) is-empty (and index it)
    struct           nothing (only step into its members)

The negated forms (``!=``, ``not in``, ``not matches``, ``is not empty``) go with their
positive forms.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass

from trellis.filter.model import MatchOp

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


class Kind(enum.StrEnum):
    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    LIST = "list"
    MAP = "map"
    STRUCT = "struct"

    @property
    def scalar(self) -> bool:
        return self in (Kind.STRING, Kind.INT, Kind.FLOAT, Kind.BOOL)


@dataclass(frozen=True, slots=True)
class Member:
    """A struct field: ``name`` is what selectors say, ``key`` the JSON key in documents."""

    name: str
    field: Field
    key: str = ""

    def __post_init__(self) -> None:
        if not _IDENTIFIER.match(self.name):
            raise ValueError(f"struct member name {self.name!r} is not a selector identifier")
        if not self.key:
            object.__setattr__(self, "key", self.name)


@dataclass(frozen=True, slots=True)
class Field:
    """The type of one place in a document.

    ``elem`` is the element type of a LIST or the value type of a MAP (keys are
    strings); ``members`` are a STRUCT's fields, in declaration order.
    """

    kind: Kind
    elem: Field | None = None
    members: tuple[Member, ...] = ()

    def __post_init__(self) -> None:
        if (self.elem is not None) != (self.kind in (Kind.LIST, Kind.MAP)):
            raise ValueError(
                f"a {self.kind} field {'needs' if self.elem is None else 'takes no'} elem"
            )
        if (
            self.kind is Kind.LIST
            and self.elem is not None
            and not (self.elem.kind.scalar or self.elem.kind is Kind.STRUCT)
        ):
            raise ValueError("a list holds scalars or structs")
        if self.members and self.kind is not Kind.STRUCT:
            raise ValueError("only a struct has members")
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate struct members in {names}")

    def member(self, name: str) -> Member | None:
        """The member called exactly ``name``, or None."""
        for candidate in self.members:
            if candidate.name == name:
                return candidate
        return None

    @property
    def is_struct_list(self) -> bool:
        return self.kind is Kind.LIST and self.elem is not None and self.elem.kind is Kind.STRUCT

    def describe(self) -> str:
        """Human wording used in error messages: ``list of string``, ``map of struct``."""
        if self.elem is not None:
            return f"{self.kind} of {self.elem.describe()}"
        return str(self.kind)


STRING = Field(Kind.STRING)
INT = Field(Kind.INT)
FLOAT = Field(Kind.FLOAT)
BOOL = Field(Kind.BOOL)


def list_of(elem: Field) -> Field:
    return Field(Kind.LIST, elem=elem)


def map_of(elem: Field) -> Field:
    """A JSON object with arbitrary string keys and values of type ``elem``."""
    return Field(Kind.MAP, elem=elem)


def struct(*members: Member, **fields: Field) -> Field:
    """A JSON object with known keys: ``struct(Node=STRING, Port=INT)``.

    Pass ``Member(name, field, key)`` for a member whose JSON key differs from its name.
    """
    return Field(Kind.STRUCT, members=members + tuple(Member(n, f) for n, f in fields.items()))


def extend(base: Field, *members: Member, **fields: Field) -> Field:
    """``base`` (a struct) with more members appended."""
    if base.kind is not Kind.STRUCT:
        raise ValueError("only a struct can be extended")
    extra = struct(*members, **fields).members
    return Field(Kind.STRUCT, members=base.members + extra)


_VALUE_OPS = frozenset({MatchOp.EQUAL, MatchOp.NOT_EQUAL})
_EMPTY_OPS = frozenset({MatchOp.IS_EMPTY, MatchOp.IS_NOT_EMPTY})
_IN_OPS = frozenset({MatchOp.IN, MatchOp.NOT_IN})
_MATCH_OPS = frozenset({MatchOp.MATCHES, MatchOp.NOT_MATCHES})

OPERATORS: dict[str, frozenset[MatchOp]] = {
    "string": _VALUE_OPS | _IN_OPS | _MATCH_OPS | _EMPTY_OPS,
    "scalar": _VALUE_OPS,
    "list of scalar": _IN_OPS | _EMPTY_OPS,
    "list of struct": _EMPTY_OPS,
    "map": _IN_OPS | _EMPTY_OPS,
    "struct": frozenset(),
}


def shape(field: Field) -> str:
    """The row of ``OPERATORS`` that applies to ``field``."""
    if field.kind is Kind.STRING:
        return "string"
    if field.kind.scalar:
        return "scalar"
    if field.kind is Kind.LIST:
        return "list of struct" if field.is_struct_list else "list of scalar"
    return str(field.kind)


def operators(field: Field) -> frozenset[MatchOp]:
    """The operators a selector ending at ``field`` may use."""
    return OPERATORS[shape(field)]


def operand_kind(field: Field) -> Kind:
    """The type a value is coerced to for ``field``: map keys are strings, list
    operands have the element's type, scalars their own."""
    if field.kind is Kind.MAP:
        return Kind.STRING
    if field.kind is Kind.LIST:
        assert field.elem is not None
        return field.elem.kind
    return field.kind


def walk(schema: Field, prefix: str = "") -> Iterator[tuple[str, Field]]:
    """Every selectable path of ``schema`` with its field, as Consul's docs list them
    (``Node.Meta``, ``Node.Meta.<any>``, ``Checks.Status``); for docs and tests."""
    if schema.kind is Kind.LIST and schema.elem is not None and schema.elem.kind is Kind.STRUCT:
        schema = schema.elem
    if schema.kind is Kind.STRUCT:
        for m in schema.members:
            path = f"{prefix}{m.name}"
            yield path, m.field
            yield from walk(m.field, f"{path}.")
    elif schema.kind is Kind.MAP and schema.elem is not None:
        path = f"{prefix}<any>"
        yield path, schema.elem
        yield from walk(schema.elem, f"{path}.")
