"""Properties of the filter language: printing round-trips, double negation, De Morgan,
and total error handling (any text either parses or raises FilterError, never anything else)."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from trellis.filter import (
    And,
    Field,
    FilterError,
    Kind,
    Match,
    MatchOp,
    Not,
    Or,
    Selector,
    compile,
    format_expr,
    parse,
)
from trellis.filter.schema import operand_kind, operators, walk
from trellis.filter.schemas import BY_NAME

KEYWORDS = ["not", "and", "or", "in", "is", "empty", "contains", "matches"]
VALUE_OPS = [op for op in MatchOp if op.takes_value]
EMPTY_OPS = [op for op in MatchOp if not op.takes_value]

# -- untyped trees: anything the grammar can express ------------------------------------------

identifiers = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,5}", fullmatch=True) | st.sampled_from(
    KEYWORDS
)
selectors = st.builds(
    lambda head, rest: Selector((head, *rest)),
    identifiers,
    st.lists(identifiers | st.text(max_size=5), max_size=3),
)
matches = (
    st.builds(Match, selectors, st.sampled_from(VALUE_OPS), st.text(max_size=8))
    | st.builds(Match, selectors, st.sampled_from(EMPTY_OPS))
).filter(
    # `not not matches "x"` reads as Not(not matches "x") in go-bexpr's grammar (model.py, Rule 3).
    lambda m: not (m.selector.path == ("not",) and m.op is MatchOp.NOT_MATCHES)
)


def negate(expr):
    return expr.operand if isinstance(expr, Not) else Not(expr)


def combine(children):
    pairs = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(children.map(negate), pairs.map(And), pairs.map(Or))


# Trees the parser can build: never Not directly inside Not (it folds `not not e`).
trees = st.recursive(matches, combine, max_leaves=8)


@given(trees)
def test_format_then_parse_gives_the_same_tree(tree) -> None:
    assert parse(format_expr(tree)) == tree


@given(trees)
def test_not_not_parses_to_the_expression_itself(tree) -> None:
    assert parse(f"not not ({format_expr(tree)})") == tree


@given(trees)
def test_every_prefix_parses_or_raises_filter_error(tree) -> None:
    text = format_expr(tree)
    for end in range(len(text)):
        with contextlib.suppress(FilterError):
            parse(text[:end])


# -- typed trees and documents for one schema -------------------------------------------------

MAP_KEYS = ["env", "k-1", "lan", ""]
SAMPLE_VALUES = {
    Kind.STRING: ["", "a", "prod", "passing", "critical", "web"],
    Kind.INT: ["0", "80", "-1", "0x50"],
    Kind.FLOAT: ["0", "1.5"],
    Kind.BOOL: ["true", "false", "1"],
}
PATTERNS = ["^w", "a", "g$", ".*", "(?i)PROD", "^$"]


def typed_matches(schema: Field):
    paths = [(path, field) for path, field in walk(schema) if operators(field)]

    def build(choice):
        path, field = choice
        segments = st.tuples(
            *[st.sampled_from(MAP_KEYS) if s == "<any>" else st.just(s) for s in path.split(".")]
        )
        ops = sorted(operators(field), key=list(MatchOp).index)
        return st.tuples(segments, st.sampled_from(ops)).flatmap(
            lambda so: _typed_match(so[0], so[1], field)
        )

    return st.sampled_from(paths).flatmap(build)


def _typed_match(path, op, field):
    if not op.takes_value:
        return st.just(Match(Selector(path), op))
    if op in (MatchOp.MATCHES, MatchOp.NOT_MATCHES):
        values = st.sampled_from(PATTERNS)
    else:
        values = st.sampled_from(SAMPLE_VALUES[operand_kind(field)])
    return values.map(lambda value: Match(Selector(path), op, value))


def documents(field: Field, depth: int = 0):
    """Consul-shaped JSON for ``field``: members may be absent or null."""
    if field.kind is Kind.STRUCT:
        optional = {m.key: documents(m.field, depth + 1) | st.none() for m in field.members}
        return st.fixed_dictionaries({}, optional=optional)
    if field.kind is Kind.LIST:
        return st.lists(documents(field.elem, depth + 1), max_size=3)
    if field.kind is Kind.MAP:
        return st.dictionaries(
            st.sampled_from(MAP_KEYS), documents(field.elem, depth + 1), max_size=3
        )
    if field.kind is Kind.BOOL:
        return st.booleans()
    if field.kind is Kind.INT:
        return st.sampled_from([0, 1, 80, -1])
    if field.kind is Kind.FLOAT:
        return st.sampled_from([0.0, 1.5])
    return st.sampled_from(SAMPLE_VALUES[Kind.STRING])


def typed_trees(schema: Field):
    return st.recursive(typed_matches(schema), combine, max_leaves=6)


schemas = st.sampled_from(sorted(BY_NAME.items())).map(lambda item: item[1])


@st.composite
def schema_cases(draw, count: int = 1):
    schema = draw(schemas)
    exprs = [draw(typed_trees(schema)) for _ in range(count)]
    return schema, exprs, draw(documents(schema))


def run(expr, schema, doc) -> bool:
    return compile(expr, schema).match(doc)


@settings(deadline=None)
@given(schema_cases(count=2))
def test_de_morgan_holds_on_evaluation(case) -> None:
    schema, (a, b), doc = case
    assert run(Not(And((a, b))), schema, doc) == run(Or((Not(a), Not(b))), schema, doc)
    assert run(Not(Or((a, b))), schema, doc) == run(And((Not(a), Not(b))), schema, doc)


@settings(deadline=None)
@given(schema_cases())
def test_double_negation_evaluates_like_the_expression(case) -> None:
    schema, (expr,), doc = case
    assert run(Not(Not(expr)), schema, doc) == run(expr, schema, doc)


@settings(deadline=None)
@given(schema_cases())
def test_printed_typed_filters_evaluate_the_same(case) -> None:
    schema, (expr,), doc = case
    assert run(parse(format_expr(expr)), schema, doc) == run(expr, schema, doc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(deadline=None)
@given(schemas.flatmap(lambda s: st.tuples(st.just(s), typed_trees(s))), json_values)
def test_match_never_raises_on_any_json(schema_and_expr, doc) -> None:
    schema, expr = schema_and_expr
    assert isinstance(compile(expr, schema).match(doc), bool)


# -- arbitrary text ------------------------------------------------------------------------------

TOKENS = [
    *KEYWORDS,
    *'( ) == != . [ ] " ` \\ - 0 1.5 01 x Checks Service Meta Status'.split(),
    *[" ", "\n", '"a"', "`b`", '["k"]', "not not", "is not empty"],
]
token_soup = st.lists(st.sampled_from(TOKENS), max_size=12).map("".join) | st.lists(
    st.sampled_from(TOKENS), max_size=12
).map(" ".join)


def check_total(text: str) -> None:
    try:
        tree = parse(text)
    except FilterError as error:
        assert error.position is not None
        return
    assert parse(format_expr(tree)) == tree
    try:
        compile(tree, BY_NAME["CHECK_SERVICE_NODE"])
    except FilterError as error:
        assert error.selector


@given(st.text())
def test_arbitrary_text_only_ever_raises_filter_error(text: str) -> None:
    check_total(text)


@given(token_soup)
def test_token_soup_only_ever_raises_filter_error(text: str) -> None:
    check_total(text)
