"""Check a parsed expression against a schema and build the runnable ``Filter``.

This is go-bexpr's validation pass (``validate.go`` in v0.1.2, which Consul runs when
it creates a filter), done once per request instead of once per document:

Rule 1: every selector must name a path of the schema: ``Selector "Service.Foo" is not
valid`` names the longest prefix that still failed.
Rule 2: the operator must be one the field's shape supports (schema.OPERATORS).
Rule 3: the value is coerced to the field's type with Go's strconv rules (coerce.py),
and a ``matches`` value is compiled as an RE2 regular expression, here, not per
document. Any failure is a ``FilterError`` that names the selector.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import re2

from trellis.filter.coerce import parse_bool, parse_float, parse_int
from trellis.filter.errors import FilterError
from trellis.filter.evaluate import AllOf, AnyOf, Filter, Leaf, Negate, Node, Step, StepKind
from trellis.filter.model import And, Expr, Match, MatchOp, Not, Or, Selector
from trellis.filter.printer import format_selector
from trellis.filter.schema import Field, Kind, operand_kind, operators

_COERCE: dict[Kind, Callable[[str], object]] = {
    Kind.STRING: str,
    Kind.INT: parse_int,
    Kind.FLOAT: parse_float,
    Kind.BOOL: parse_bool,
}
_REGEX_OPTIONS = re2.Options()
_REGEX_OPTIONS.log_errors = False  # errors are reported as FilterError, not on stderr


def compile(expr: Expr, schema: Field) -> Filter:
    """Validate ``expr`` against ``schema`` and return a ``Filter``.

    Pure; raises ``FilterError`` for an unknown selector, an operator the field does
    not support, a value that does not convert, or an invalid regular expression.
    """
    if schema.kind not in (Kind.STRUCT, Kind.MAP):
        raise ValueError(f"a filter schema is a struct or a map, not a {schema.describe()}")
    return Filter(expr=expr, schema=schema, root=_compile(expr, schema))


def resolve(selector: Selector, schema: Field) -> tuple[tuple[Step, ...], Field]:
    """The steps that reach ``selector`` in documents of ``schema``, and the field there."""
    steps: list[Step] = []
    here = schema
    for depth, segment in enumerate(selector.path):
        if here.is_struct_list:
            assert here.elem is not None
            steps.append(Step(StepKind.EACH))
            here = here.elem
        if here.kind is Kind.STRUCT and (member := here.member(segment)) is not None:
            steps.append(Step(StepKind.MEMBER, member.key))
            here = member.field
        elif here.kind is Kind.MAP:
            assert here.elem is not None
            steps.append(Step(StepKind.KEY, segment))
            here = here.elem
        else:
            shown = format_selector(Selector(selector.path[: depth + 1]))
            raise FilterError(f"Selector {_go_quote(shown)} is not valid", selector=shown)
    return tuple(steps), here


def _compile(expr: Expr, schema: Field) -> Node:
    if isinstance(expr, Match):
        return _compile_match(expr, schema)
    if isinstance(expr, Not):
        return Negate(_compile(expr.operand, schema))
    if isinstance(expr, And):
        return AllOf(tuple(_compile(item, schema) for item in expr.items))
    if isinstance(expr, Or):
        return AnyOf(tuple(_compile(item, schema) for item in expr.items))
    raise TypeError(f"not a filter expression: {expr!r}")


def _compile_match(match: Match, schema: Field) -> Leaf:
    steps, field = resolve(match.selector, schema)
    shown = format_selector(match.selector)
    allowed = operators(field)
    if match.op not in allowed:
        raise FilterError(_operator_reason(match.op, shown, field, allowed), selector=shown)
    operand = None
    if match.value is not None:
        operand = _coerce(match.value, operand_kind(field), shown)
        if match.op in (MatchOp.MATCHES, MatchOp.NOT_MATCHES):
            operand = _regex(match.value, shown)  # matches takes strings: no coercion
    return Leaf(steps=steps, field=field, op=match.op, operand=operand)


def _operator_reason(op: MatchOp, shown: str, field: Field, allowed: frozenset[MatchOp]) -> str:
    reason = f'Invalid match operator "{op.value}" for selector {_go_quote(shown)}'
    if not allowed:
        return f"{reason}: {_article(field)} takes no operators, select one of its members"
    listed = ", ".join(candidate.value for candidate in MatchOp if candidate in allowed)
    return f"{reason}: {_article(field)} supports {listed}"


def _article(field: Field) -> str:
    described = field.describe()
    return f"{'an' if described[0] in 'aeiou' else 'a'} {described}"


def _coerce(raw: str, kind: Kind, shown: str) -> object:
    try:
        return _COERCE[kind](raw)
    except ValueError as exc:
        raise FilterError(
            f"Failed to coerce value {_go_quote(raw)} for selector {_go_quote(shown)}: {exc}",
            selector=shown,
        ) from None


def _regex(pattern: str, shown: str) -> object:
    # go-bexpr compiles with Go's regexp (RE2 syntax) and tests with MatchString,
    # which is unanchored; evaluate.py calls search(), which is too.
    try:
        return re2.compile(pattern, options=_REGEX_OPTIONS)
    except (re2.error, UnicodeEncodeError, ValueError, TypeError) as exc:
        detail = str(exc)
        if isinstance(exc, re2.error) and exc.args and isinstance(exc.args[0], bytes):
            detail = exc.args[0].decode("utf-8", "replace")
        raise FilterError(
            f"Failed to compile regular expression {_go_quote(pattern)}: {detail}",
            selector=shown,
        ) from None


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)
