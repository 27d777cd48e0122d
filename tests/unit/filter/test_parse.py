"""Table tests for the filter grammar (parse), its error messages and format_expr."""

from __future__ import annotations

import pytest

from trellis.filter import And, FilterError, Match, MatchOp, Not, Or, Selector, format_expr, parse
from trellis.filter.literal import format_string, read_string

EQ, NE, IN, NOT_IN = MatchOp.EQUAL, MatchOp.NOT_EQUAL, MatchOp.IN, MatchOp.NOT_IN
EMPTY, NOT_EMPTY = MatchOp.IS_EMPTY, MatchOp.IS_NOT_EMPTY
MATCHES, NOT_MATCHES = MatchOp.MATCHES, MatchOp.NOT_MATCHES


def m(selector: str | tuple[str, ...], op: MatchOp, value: str | None = None) -> Match:
    path = tuple(selector.split(".")) if isinstance(selector, str) else selector
    return Match(Selector(path), op, value)


PARSES = [
    # -- examples from Consul's filtering docs -----------------------------------------
    ('Service.Meta.env == "prod"', m("Service.Meta.env", EQ, "prod"), "docs-meta-equal"),
    ('"primary" in ServiceTags', m("ServiceTags", IN, "primary"), "docs-in-tags"),
    ('Checks.Status == "passing"', m("Checks.Status", EQ, "passing"), "docs-checks-status"),
    ('ServiceMeta["k-1"] == x', m(("ServiceMeta", "k-1"), EQ, "x"), "docs-index-bare-value"),
    (
        'not (ServiceName matches "^web")',
        Not(m("ServiceName", MATCHES, "^web")),
        "docs-not-matches",
    ),
    ("Service.Tags is empty", m("Service.Tags", EMPTY), "docs-is-empty"),
    ("Service.Tags is not empty", m("Service.Tags", NOT_EMPTY), "is-not-empty"),
    ('ServiceTags contains "primary"', m("ServiceTags", IN, "primary"), "contains-is-in"),
    ('ServiceTags not contains "x"', m("ServiceTags", NOT_IN, "x"), "not-contains-is-not-in"),
    ('"x" not in ServiceTags', m("ServiceTags", NOT_IN, "x"), "not-in"),
    ('Name not matches "^a"', m("Name", NOT_MATCHES, "^a"), "not-matches"),
    ("Port != 80", m("Port", NE, "80"), "not-equal-number"),
    ("Port==80", m("Port", EQ, "80"), "equal-needs-no-spaces"),
    # -- values ------------------------------------------------------------------------
    ("a == -1.5", m("a", EQ, "-1.5"), "negative-float"),
    ("a == 0", m("a", EQ, "0"), "zero"),
    ("a == true", m("a", EQ, "true"), "bare-word"),
    ("a == b.c", m("a", EQ, "b.c"), "selector-value-is-dotted-text"),
    ('a == b["x y"]', m("a", EQ, "b.x y"), "indexed-selector-value"),
    ("a == `raw\\n`", m("a", EQ, "raw\\n"), "backtick-is-raw"),
    ('a == "tab\\there"', m("a", EQ, "tab\there"), "escape-tab"),
    ('a == "\\u00e9\\xc3\\xa9\\101"', m("a", EQ, "ééA"), "unicode-byte-octal-escapes"),
    ('a == "say \\"hi\\""', m("a", EQ, 'say "hi"'), "escaped-double-quote"),
    ("(a == 1)", m("a", EQ, "1"), "outer-parens-leave-no-node"),
    ("\t\r\n a \t== x \n", m("a", EQ, "x"), "whitespace-anywhere"),
    # -- selectors -----------------------------------------------------------------------
    ('a["b"].c == 1', m(("a", "b", "c"), EQ, "1"), "index-then-dot"),
    ('a[ "b" ] == 1', m(("a", "b"), EQ, "1"), "spaces-inside-index"),
    ("a[`x.y`] == 1", m(("a", "x.y"), EQ, "1"), "backtick-index"),
    ("A_1.b2 == 1", m("A_1.b2", EQ, "1"), "identifier-chars"),
    # -- keywords are only keywords where an operator may stand --------------------------
    ("not == 1", m("not", EQ, "1"), "not-as-selector"),
    ("not in x", m("x", IN, "not"), "not-as-bare-value"),
    ("not not is empty", Not(m("not", EMPTY)), "not-before-not-selector"),
    ("and == or", m("and", EQ, "or"), "and-or-as-words"),
    ("notx == 1", m("notx", EQ, "1"), "not-prefix-of-identifier"),
    # -- boolean structure and precedence: not > and > or ----------------------------------
    ("a == 1 and b == 2", And((m("a", EQ, "1"), m("b", EQ, "2"))), "and"),
    (
        "a == 1 or b == 2 or c == 3",
        Or((m("a", EQ, "1"), m("b", EQ, "2"), m("c", EQ, "3"))),
        "or-chain",
    ),
    (
        "a == 1 or b == 2 and c == 3",
        Or((m("a", EQ, "1"), And((m("b", EQ, "2"), m("c", EQ, "3"))))),
        "and-binds-tighter-than-or",
    ),
    (
        "not a == 1 and b == 2",
        And((Not(m("a", EQ, "1")), m("b", EQ, "2"))),
        "not-binds-tighter-than-and",
    ),
    (
        "(a == 1 or b == 2) and c == 3",
        And((Or((m("a", EQ, "1"), m("b", EQ, "2"))), m("c", EQ, "3"))),
        "parens-override",
    ),
    (
        "(a == 1 and b == 2) and c == 3",
        And((And((m("a", EQ, "1"), m("b", EQ, "2"))), m("c", EQ, "3"))),
        "parenthesised-chain-stays-a-node",
    ),
    ("not not a == 1", m("a", EQ, "1"), "double-not-folds"),
    ("not (not a == 1)", m("a", EQ, "1"), "double-not-folds-through-parens"),
    ("not not not a == 1", Not(m("a", EQ, "1")), "triple-not"),
]


@pytest.mark.parametrize(("text", "expected"), [c[:2] for c in PARSES], ids=[c[2] for c in PARSES])
def test_parse_builds_the_expected_tree(text: str, expected) -> None:
    assert parse(text) == expected


ERRORS = [
    ("", "1:1 (0)", 'no match found, expected: "(", "-", "0"', "empty"),
    (
        "a ==",
        "1:5 (4)",
        'expected: "-", "0", "\\"", "`", [ \\t\\r\\n], [1-9] or [a-zA-Z]',
        "missing-value",
    ),
    ("a == 1 or", "1:10 (9)", "expected: [ \\t\\r\\n]", "dangling-or"),
    ("a == b c", "1:8 (7)", 'expected: "and", "or", [ \\t\\r\\n] or EOF', "trailing-word"),
    ("not(a == 1)", "1:4 (3)", 'expected: "!=", ".", "==", "["', "not-needs-space"),
    (
        "a AND b == 1",
        "1:3 (2)",
        'expected: "!=", "==", "contains", "in"',
        "keywords-are-case-sensitive",
    ),
    ("a == 1\n  or b ==", "2:10 (16)", "no match found", "position-on-second-line"),
    ("(a == 1", "1:8 (7)", "Unmatched parentheses", "unmatched-paren"),
    ("a[5] == 1", "1:3 (2)", "Invalid index", "index-needs-string"),
    ('a["x" == 1', "1:7 (6)", "Unclosed index expression", "unclosed-index"),
    ("a == 01", "1:7 (6)", "Invalid number literal", "leading-zero"),
    ("a == 1.", "1:7 (6)", "Invalid number literal", "dangling-dot"),
    ("a == 0x10", "1:7 (6)", "Invalid number literal", "hex-must-be-quoted"),
    ('a == "abc', "1:10 (9)", "Unterminated string literal", "unterminated-double"),
    ("a == `abc", "1:10 (9)", "Unterminated string literal", "unterminated-backtick"),
    ('"x" in 5', "1:8 (7)", "Invalid selector", "in-needs-selector"),
    ('a == "\\q"', "1:7 (6)", "Invalid escape sequence \\q", "bad-escape"),
    ('a == "\\\'"', "1:7 (6)", "Invalid escape sequence", "single-quote-escape-not-in-double"),
    ('a == "\\xff"', "1:7 (6)", "Invalid UTF-8", "byte-escape-not-utf8"),
    ('a == "\\ud800"', "1:7 (6)", "Invalid code point", "surrogate-escape"),
    ('a == "\\400"', "1:7 (6)", "Invalid octal escape", "octal-over-255"),
    ('a == "x\ny"', "1:8 (7)", "newline in double-quoted string", "raw-newline"),
    ("(" * 101 + "a == 1" + ")" * 101, "1:102 (101)", "nested too deeply", "too-deep"),
    ("not " * 101 + "a == 1", "1:405 (404)", "nested too deeply", "too-many-nots"),
]


@pytest.mark.parametrize(
    ("text", "where", "what"), [c[:3] for c in ERRORS], ids=[c[3] for c in ERRORS]
)
def test_syntax_error_names_position_and_expectation(text: str, where: str, what: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse(text)
    message = str(caught.value)
    assert message.startswith(f"Failed to create boolean expression evaluator: {where}: ")
    assert what in message
    assert str(caught.value.position) == where
    assert caught.value.expression == text


def test_nesting_at_the_limit_parses() -> None:
    assert parse("(" * 100 + "a == 1" + ")" * 100) == m("a", EQ, "1")


def test_long_chains_do_not_recurse() -> None:
    text = " and ".join(f"a == {i}" for i in range(3000))
    tree = parse(text)
    assert isinstance(tree, And) and len(tree.items) == 3000


FORMATS = [
    (m("Service.Meta.env", EQ, "prod"), 'Service.Meta.env == "prod"', "dotted"),
    (m(("ServiceMeta", "k-1"), EQ, "x"), 'ServiceMeta["k-1"] == "x"', "indexed-key"),
    (m(("M", ""), EMPTY), 'M[""] is empty', "empty-key"),
    (m("Tags", IN, "a"), '"a" in Tags', "in-is-value-first"),
    (m("Tags", NOT_IN, "a"), '"a" not in Tags', "not-in"),
    (m("a", EQ, 'say "hi"'), 'a == `say "hi"`', "quote-uses-backticks"),
    (m("a", EQ, 'x"`\n'), 'a == "x\\"`\\n"', "quote-and-backtick-escaped"),
    (m("a", EQ, "\x01\t"), 'a == "\\x01\\t"', "control-chars-escaped"),
    (Not(And((m("a", EMPTY), m("b", EMPTY)))), "not (a is empty and b is empty)", "not-over-and"),
    (
        And((Or((m("a", EMPTY), m("b", EMPTY))), m("c", EMPTY))),
        "(a is empty or b is empty) and c is empty",
        "or-inside-and",
    ),
    (
        Or((And((m("a", EMPTY), m("b", EMPTY))), m("c", EMPTY))),
        "a is empty and b is empty or c is empty",
        "and-inside-or-needs-no-parens",
    ),
    (
        Or((Or((m("a", EMPTY), m("b", EMPTY))), m("c", EMPTY))),
        "(a is empty or b is empty) or c is empty",
        "nested-chain-keeps-parens",
    ),
]


@pytest.mark.parametrize(("tree", "text"), [c[:2] for c in FORMATS], ids=[c[2] for c in FORMATS])
def test_format_expr_writes_canonical_text_that_parses_back(tree, text: str) -> None:
    assert format_expr(tree) == text
    assert parse(text) == tree


STRINGS = [
    ('"plain"', "plain", "plain"),
    ('"\\a\\b\\f\\n\\r\\t\\v\\\\\\""', '\a\b\f\n\r\t\v\\"', "simple-escapes"),
    ('"\\U0001F600"', "\U0001f600", "big-u"),
    ("`a\r\nb`", "a\nb", "raw-drops-carriage-return"),
    ("`\\n`", "\\n", "raw-keeps-backslash"),
]


@pytest.mark.parametrize(
    ("literal", "value"), [c[:2] for c in STRINGS], ids=[c[2] for c in STRINGS]
)
def test_read_string_follows_go_unquote(literal: str, value: str) -> None:
    assert read_string(literal, 0) == (value, len(literal))
    assert read_string(format_string(value), 0)[0] == value


def test_not_matches_on_a_selector_named_not_reads_as_negation() -> None:
    # go-bexpr's grammar tries `not <expr>` first, so this text has only one reading.
    tree = m("not", NOT_MATCHES, "x")
    assert parse(format_expr(tree)) == Not(m("not", MATCHES, "x"))
