"""Run a compiled filter over one Consul-shaped JSON document (PascalCase keys).

``compile`` (compiler.py) turns each ``Match`` into a ``Leaf``: the path as ``Step``s,
the field type at its end, the operator and the already-coerced operand.

Rule 1 (missing data reads as Go's zero value): a struct member that is absent or
``null`` reads as ``""``, ``0``, ``false``, an empty list, an empty map or a struct of
zero values, as the Go struct Consul filters would hold. A value of the wrong JSON type
reads as the zero value too, so a document can never make ``match`` raise.
Rule 2 (missing map keys): when a map lacks the selected key, the operator decides
without looking further, as go-bexpr's ``NotPresentDisposition``: ``is empty`` is true,
``==``/``in``/``matches``/``is not empty`` are false, ``!=``/``not in``/``not matches``
are true.
Rule 3 (lists of structs): a path through a list of structs is tried on every element
and the match is true if it is true for ANY element (go-bexpr v0.1.2). The operator,
negated ones included, is applied per element: ``Checks.Status != "passing"`` means
"some check is not passing", ``not Checks.Status == "passing"`` means "no check is
passing", and every operator is false over an empty list.
Rule 4: pure, never mutates the document, loop-safe (no I/O, no shared state).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from trellis.filter.model import Expr, MatchOp
from trellis.filter.schema import Field, Kind


class StepKind(enum.Enum):
    MEMBER = "member"  # a struct member: absent reads as the zero value
    KEY = "key"  # a map key: absent decides by the operator (Rule 2)
    EACH = "each"  # every element of a list of structs (Rule 3)


@dataclass(frozen=True, slots=True)
class Step:
    kind: StepKind
    key: str = ""


@dataclass(frozen=True, slots=True)
class Leaf:
    """One compiled ``Match``: follow ``steps``, then apply ``op`` to the value found."""

    steps: tuple[Step, ...]
    field: Field
    op: MatchOp
    operand: Any = None  # str/int/float/bool, a compiled re2 pattern, or None


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Node


@dataclass(frozen=True, slots=True)
class AllOf:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Node, ...]


Node: TypeAlias = Leaf | Negate | AllOf | AnyOf


@dataclass(frozen=True, slots=True)
class Filter:
    """A filter expression checked against a schema, ready to run. Build with ``compile``."""

    expr: Expr
    schema: Field
    root: Node = field(repr=False, compare=False)

    def match(self, doc: Mapping[str, Any]) -> bool:
        """True when ``doc`` satisfies the expression. Pure; never raises for any JSON value."""
        return evaluate(self.root, doc)

    def select(self, docs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """The documents that match, in their original order. Pure."""
        return [doc for doc in docs if evaluate(self.root, doc)]


def evaluate(node: Node, doc: Any) -> bool:
    """Evaluate a compiled node against ``doc``. Pure."""
    if isinstance(node, Leaf):
        return _follow(node, 0, doc)
    if isinstance(node, Negate):
        return not evaluate(node.operand, doc)
    if isinstance(node, AllOf):
        return all(evaluate(item, doc) for item in node.items)
    return any(evaluate(item, doc) for item in node.items)


def _follow(leaf: Leaf, index: int, value: Any) -> bool:
    steps = leaf.steps
    while index < len(steps):
        step = steps[index]
        index += 1
        if step.kind is StepKind.EACH:
            return any(_follow(leaf, index, item) for item in _as_list(value))
        mapping = value if isinstance(value, Mapping) else {}
        if step.kind is StepKind.KEY and step.key not in mapping:
            return _ABSENT[leaf.op]
        value = mapping.get(step.key)
    return _apply(leaf, _read(value, leaf.field))


# go-bexpr's NotPresentDisposition: the answer for a key a map does not have.
_ABSENT = {
    MatchOp.EQUAL: False,
    MatchOp.NOT_EQUAL: True,
    MatchOp.IN: False,
    MatchOp.NOT_IN: True,
    MatchOp.IS_EMPTY: True,
    MatchOp.IS_NOT_EMPTY: False,
    MatchOp.MATCHES: False,
    MatchOp.NOT_MATCHES: True,
}


def _apply(leaf: Leaf, value: Any) -> bool:
    op = leaf.op
    if op in (MatchOp.EQUAL, MatchOp.NOT_EQUAL):
        result = _same(leaf.field.kind, value, leaf.operand)
    elif op in (MatchOp.IN, MatchOp.NOT_IN):
        result = _contains(leaf.field, value, leaf.operand)
    elif op in (MatchOp.IS_EMPTY, MatchOp.IS_NOT_EMPTY):
        result = len(value) == 0
    else:
        result = _search(leaf.operand, value)
    return not result if op.negated else result


def _contains(field_: Field, value: Any, operand: Any) -> bool:
    if field_.kind is Kind.STRING:
        return operand in value  # substring
    if field_.kind is Kind.MAP:
        return operand in value  # key present
    assert field_.elem is not None
    return any(_same(field_.elem.kind, item, operand) for item in value)


def _search(pattern: Any, value: str) -> bool:
    # Go's regexp.MatchString: true if the pattern matches anywhere (unanchored).
    try:
        return pattern.search(value) is not None
    except UnicodeEncodeError:
        # Lone surrogates cannot reach Go (its JSON decoder turns them into U+FFFD).
        cleaned = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
        return pattern.search(cleaned) is not None


def _same(kind: Kind, value: Any, operand: Any) -> bool:
    if kind is Kind.STRING:
        return isinstance(value, str) and value == operand
    if kind is Kind.BOOL:
        return isinstance(value, bool) and value is operand
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return bool(value == operand)


_ZERO: dict[Kind, Any] = {Kind.STRING: "", Kind.INT: 0, Kind.FLOAT: 0.0, Kind.BOOL: False}
_JSON_TYPES: dict[Kind, tuple[type, ...]] = {
    Kind.STRING: (str,),
    Kind.BOOL: (bool,),
    Kind.INT: (int, float),
    Kind.FLOAT: (int, float),
}


def _as_list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) else ()


def _read(value: Any, field_: Field) -> Any:
    """``value`` as the field's Go type would hold it (Rule 1)."""
    kind = field_.kind
    if kind is Kind.LIST:
        return _as_list(value)
    if kind in (Kind.MAP, Kind.STRUCT):
        return value if isinstance(value, Mapping) else {}
    if isinstance(value, _JSON_TYPES[kind]) and not (
        kind is not Kind.BOOL and isinstance(value, bool)
    ):
        return value
    return _ZERO[kind]
