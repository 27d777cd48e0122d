"""The syntax tree of a filter expression: what ``parse`` returns and ``format_expr`` prints.

Rule 1: the tree keeps meaning, not spelling. ``Tags contains "a"`` and ``"a" in Tags``
are the same ``Match``; a value keeps only its text (go-bexpr's ``MatchValue.Raw``),
whether it was written quoted, as a number or as a bare word. Parentheses leave no node.
Rule 2: ``and``/``or`` chains are n-ary (``And(items)``), one node per chain, in source
order. go-bexpr builds the same chain right-nested; the meaning is identical and n-ary
nodes keep every walk over the tree iterative for long chains.
Rule 3: two trees have no spelling of their own, because go-bexpr's grammar reads
their text as another, equivalent tree: ``Not(Not(e))`` (``not not e`` folds to ``e``)
and a ``not matches`` on a selector that is just ``not`` (``not not matches "x"`` reads
as ``Not(not matches "x")``). Hand-built trees may contain them; they evaluate as expected.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TypeAlias

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")


class MatchOp(enum.StrEnum):
    """The matching operators; the value is the operator's keyword(s)."""

    EQUAL = "=="
    NOT_EQUAL = "!="
    IN = "in"  # `<value> in <selector>`, also written `<selector> contains <value>`
    NOT_IN = "not in"  # `<value> not in <selector>` or `<selector> not contains <value>`
    IS_EMPTY = "is empty"
    IS_NOT_EMPTY = "is not empty"
    MATCHES = "matches"
    NOT_MATCHES = "not matches"

    @property
    def takes_value(self) -> bool:
        return self not in (MatchOp.IS_EMPTY, MatchOp.IS_NOT_EMPTY)

    @property
    def negated(self) -> bool:
        """True for the operators defined as ``not <positive operator>``."""
        return self in _NEGATED


_NEGATED = frozenset({MatchOp.NOT_EQUAL, MatchOp.NOT_IN, MatchOp.IS_NOT_EMPTY, MatchOp.NOT_MATCHES})


@dataclass(frozen=True, slots=True)
class Selector:
    """A path into a document: struct field names and map keys, outermost first.

    The first segment is always an identifier (``[A-Za-z][A-Za-z0-9_]*``); later ones
    may be any string (written ``["any key"]``).
    """

    path: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.path or not _IDENTIFIER.match(self.path[0]):
            raise ValueError(f"a selector starts with an identifier, not {self.path!r}")


@dataclass(frozen=True, slots=True)
class Match:
    """``<selector> <op> <value>``; ``value`` is None exactly for the emptiness checks."""

    selector: Selector
    op: MatchOp
    value: str | None = None

    def __post_init__(self) -> None:
        if self.op.takes_value != (self.value is not None):
            raise ValueError(f"operator {self.op.value!r} and value {self.value!r} do not fit")


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


@dataclass(frozen=True, slots=True)
class And:
    """True when every item is; ``items`` has at least two entries."""

    items: tuple[Expr, ...]

    def __post_init__(self) -> None:
        if len(self.items) < 2:
            raise ValueError("And needs at least two items")


@dataclass(frozen=True, slots=True)
class Or:
    """True when any item is; ``items`` has at least two entries."""

    items: tuple[Expr, ...]

    def __post_init__(self) -> None:
        if len(self.items) < 2:
            raise ValueError("Or needs at least two items")


Expr: TypeAlias = Match | Not | And | Or
