"""Write a syntax tree back as filter text: the inverse of ``parse``.

Rule 1 (round trip): ``parse(format_expr(e)) == e`` for every tree ``parse`` can build;
the two shapes it cannot build (model.py, Rule 3) print as text that parses to an
equivalent tree.
Rule 2: one canonical spelling. Values are always quoted, ``in``/``not in`` are written
value-first (``"a" in Tags``), parentheses appear only where precedence
(``not`` > ``and`` > ``or``) or a nested chain of the same operator needs them.
"""

from __future__ import annotations

import re

from trellis.filter.literal import format_string
from trellis.filter.model import And, Expr, Match, MatchOp, Not, Or, Selector

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

# Binding strength of each node; a child weaker than its context gets parentheses.
_OR, _AND, _NOT, _ATOM = 0, 1, 2, 3


def format_expr(expr: Expr) -> str:
    """Filter text for ``expr``. Pure."""
    text, _ = _render(expr)
    return text


def format_selector(selector: Selector) -> str:
    """``Service.Meta["k-1"]``: dotted where a segment is an identifier, indexed otherwise."""
    head, *rest = selector.path
    parts = [head]
    for segment in rest:
        parts.append(f".{segment}" if _IDENTIFIER.match(segment) else f"[{format_string(segment)}]")
    return "".join(parts)


def _render(expr: Expr) -> tuple[str, int]:
    if isinstance(expr, Match):
        return _render_match(expr), _ATOM
    if isinstance(expr, Not):
        return f"not {_wrap(expr.operand, _NOT)}", _NOT
    if isinstance(expr, And):
        # An And inside an And needs parentheses to stay a separate node: hence _NOT.
        return " and ".join(_wrap(item, _NOT) for item in expr.items), _AND
    if isinstance(expr, Or):
        return " or ".join(_wrap(item, _AND) for item in expr.items), _OR
    raise TypeError(f"not a filter expression: {expr!r}")


def _wrap(expr: Expr, context: int) -> str:
    text, strength = _render(expr)
    return f"({text})" if strength < context else text


def _render_match(match: Match) -> str:
    selector = format_selector(match.selector)
    if match.value is None:
        return f"{selector} {match.op.value}"
    value = format_string(match.value)
    if match.op in (MatchOp.IN, MatchOp.NOT_IN):
        return f"{value} {match.op.value} {selector}"
    return f"{selector} {match.op.value} {value}"
