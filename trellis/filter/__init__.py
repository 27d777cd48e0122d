"""Consul's ``?filter=`` expression language (go-bexpr), as a pure core.

    text --parse--> Expr --compile(expr, schema)--> Filter --match(doc)--> bool
            ^                                                  (Consul-shaped JSON dict)
            +--format_expr--+

``parse`` follows go-bexpr's grammar, ``compile`` checks selectors, operators and values
against a typed schema (``schemas.py``) as go-bexpr v0.1.2 does for Consul, and
``Filter.match`` evaluates with go-bexpr's semantics. Everything here is pure and
loop-safe; every failure is a ``FilterError``. See docs/filter.md.
"""

from trellis.filter.compiler import compile
from trellis.filter.errors import FilterError, Position
from trellis.filter.evaluate import Filter
from trellis.filter.grammar import parse
from trellis.filter.model import And, Expr, Match, MatchOp, Not, Or, Selector
from trellis.filter.printer import format_expr, format_selector
from trellis.filter.schema import (
    BOOL,
    FLOAT,
    INT,
    STRING,
    Field,
    Kind,
    Member,
    extend,
    list_of,
    map_of,
    struct,
)
from trellis.filter.schemas import (
    CHECK_SERVICE_NODE,
    HEALTH_CHECK,
    MEMBER,
    NODE,
    NODE_SERVICE,
    SERVICE_NODE,
)

__all__ = [
    "BOOL",
    "CHECK_SERVICE_NODE",
    "FLOAT",
    "HEALTH_CHECK",
    "INT",
    "MEMBER",
    "NODE",
    "NODE_SERVICE",
    "SERVICE_NODE",
    "STRING",
    "And",
    "Expr",
    "Field",
    "Filter",
    "FilterError",
    "Kind",
    "Match",
    "MatchOp",
    "Member",
    "Not",
    "Or",
    "Position",
    "Selector",
    "compile",
    "extend",
    "format_expr",
    "format_selector",
    "list_of",
    "map_of",
    "parse",
    "struct",
]
