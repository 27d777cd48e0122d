r"""Parse ``?filter=`` text into a syntax tree, following go-bexpr's grammar.

The grammar is go-bexpr v0.1.2's ``grammar.peg`` (the version behind Consul's typed
filters), re-expressed as a hand-written PEG parser. ``_`` is ``[ \t\r\n]+``, ``_?``
makes it optional::

    Input      <- _? Or _? EOF
    Or         <- And (_ "or" _ And)*
    And        <- Not (_ "and" _ Not)*
    Not        <- "not" _ Not / Group
    Group      <- "(" _? Or _? ")" / Match
    Match      <- Selector (_? "==" _? / _? "!=" _? / _ "contains" _ / _ "not" _ "contains" _
                            / _ "matches" _ / _ "not" _ "matches" _) Value
                / Selector (_ "is" _ "empty" / _ "is" _ "not" _ "empty")
                / Value (_ "in" _ / _ "not" _ "in" _) Selector
    Selector   <- Identifier ("." Identifier / "[" _? String _? "]")*
    Identifier <- [a-zA-Z] [a-zA-Z0-9_]*
    Value      <- Selector / Number / String      -- a bare selector is its dotted text
    Number     <- "-"? ("0" / [1-9][0-9]*) ("." [0-9]+)? &(_ / EOF / ")")
    String     <- '"' Go-escaped chars '"' / '`' raw chars '`'

Rule 1: ordered choice with backtracking, as PEG. A failed parse reports the farthest
offset any rule reached and everything that was expected there, in pigeon's words:
``1:11 (10): no match found, expected: "!=", "==", [ \t\r\n] or EOF``.
Rule 2: keywords are case-sensitive and need whitespace on both sides; ``not`` needs
whitespace after it, so ``not(a == b)`` is an error, exactly as in go-bexpr. A keyword
that cannot be an operator where it stands is an ordinary identifier (``not == 1``).
Rule 3: the dead ends go-bexpr names keep their names: "Unmatched parentheses",
"Invalid index", "Unclosed index expression", "Invalid number literal", "Unterminated
string literal", "Invalid selector".
Rule 4: more than ``MAX_DEPTH`` nested parentheses or ``not``s is a ``FilterError``;
``and``/``or`` chains are loops, so long filters never exhaust the Python stack.
"""

from __future__ import annotations

import string
from collections.abc import Callable

from trellis.filter.errors import FilterError, Position
from trellis.filter.literal import read_string
from trellis.filter.model import And, Expr, Match, MatchOp, Not, Or, Selector

MAX_DEPTH = 100

_WS = frozenset(" \t\r\n")
_WS_LABEL = r"[ \t\r\n]"
_LETTERS = frozenset(string.ascii_letters)
_IDENT_CHARS = frozenset(string.ascii_letters + string.digits + "_")
_DIGITS = frozenset(string.digits)
_NONZERO = frozenset("123456789")

# (operator, tokens) in go-bexpr's order of choice; "_" is required whitespace, "_?" optional.
_VALUE_OPERATORS: tuple[tuple[MatchOp, tuple[str, ...]], ...] = (
    (MatchOp.EQUAL, ("_?", "==", "_?")),
    (MatchOp.NOT_EQUAL, ("_?", "!=", "_?")),
    (MatchOp.IN, ("_", "contains", "_")),
    (MatchOp.NOT_IN, ("_", "not", "_", "contains", "_")),
    (MatchOp.MATCHES, ("_", "matches", "_")),
    (MatchOp.NOT_MATCHES, ("_", "not", "_", "matches", "_")),
)
_EMPTY_OPERATORS = (
    (MatchOp.IS_EMPTY, ("_", "is", "_", "empty")),
    (MatchOp.IS_NOT_EMPTY, ("_", "is", "_", "not", "_", "empty")),
)
_IN_OPERATORS = (
    (MatchOp.IN, ("_", "in", "_")),
    (MatchOp.NOT_IN, ("_", "not", "_", "in", "_")),
)


def parse(text: str) -> Expr:
    """Parse a filter expression. Pure; raises ``FilterError`` (with a ``position``)."""
    parser = _Parser(text)
    try:
        expr = parser.parse()
    except _DeadEnd as dead_end:
        raise FilterError(
            dead_end.reason, expression=text, position=Position.at(text, dead_end.offset)
        ) from None
    if expr is None:
        raise FilterError(
            parser.no_match(), expression=text, position=Position.at(text, parser.fail_at)
        )
    return expr


class _DeadEnd(Exception):
    """A named syntax error found mid-parse; ends the parse at once."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(reason)
        self.offset = offset
        self.reason = reason


def _quote(literal: str) -> str:
    return '"' + literal.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Parser:
    """One parse of one text. Each rule takes an offset and returns ``(result, end)``
    or None; primitives record what they expected where they failed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.fail_at = 0
        self.expected: set[str] = set()
        self.depth = 0

    # -- failure bookkeeping -------------------------------------------------------

    def fail(self, at: int, wanted: str) -> None:
        if at > self.fail_at:
            self.fail_at, self.expected = at, {wanted}
        elif at == self.fail_at:
            self.expected.add(wanted)

    def no_match(self) -> str:
        items = sorted(self.expected - {"EOF"}) + (["EOF"] if "EOF" in self.expected else [])
        if len(items) > 1:
            listed = ", ".join(items[:-1]) + " or " + items[-1]
        else:
            listed = "".join(items)
        return f"no match found, expected: {listed}"

    def enter(self, at: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _DeadEnd(at, f"Expression nested too deeply (more than {MAX_DEPTH} levels)")

    # -- primitives ----------------------------------------------------------------

    def literal(self, at: int, word: str) -> int | None:
        if self.text.startswith(word, at):
            return at + len(word)
        self.fail(at, _quote(word))
        return None

    def char(self, at: int, chars: frozenset[str], label: str) -> int | None:
        if at < len(self.text) and self.text[at] in chars:
            return at + 1
        self.fail(at, label)
        return None

    def chars(self, at: int, chars: frozenset[str], label: str) -> int:
        """Zero or more of ``chars``."""
        while (nxt := self.char(at, chars, label)) is not None:
            at = nxt
        return at

    def space(self, at: int) -> int | None:
        first = self.char(at, _WS, _WS_LABEL)
        return None if first is None else self.chars(first, _WS, _WS_LABEL)

    def tokens(self, at: int | None, tokens: tuple[str, ...]) -> int | None:
        for token in tokens:
            if at is None:
                return None
            if token == "_":
                at = self.space(at)
            elif token == "_?":
                at = self.chars(at, _WS, _WS_LABEL)
            else:
                at = self.literal(at, token)
        return at

    def eof(self, at: int) -> int | None:
        if at == len(self.text):
            return at
        self.fail(at, "EOF")
        return None

    # -- boolean structure -----------------------------------------------------------

    def parse(self) -> Expr | None:
        result = self.or_expr(self.chars(0, _WS, _WS_LABEL))
        if result is None:
            return None
        expr, end = result
        return expr if self.eof(self.chars(end, _WS, _WS_LABEL)) is not None else None

    def chain(
        self,
        at: int,
        keyword: str,
        item: Callable[[int], tuple[Expr, int] | None],
        node: Callable[[tuple[Expr, ...]], Expr],
    ) -> tuple[Expr, int] | None:
        """``item (_ keyword _ item)*``: one item alone, or a ``node`` of all of them."""
        first = item(at)
        if first is None:
            return None
        items, end = [first[0]], first[1]
        while (after := self.tokens(end, ("_", keyword, "_"))) is not None:
            nxt = item(after)
            if nxt is None:
                break
            items.append(nxt[0])
            end = nxt[1]
        return (items[0] if len(items) == 1 else node(tuple(items))), end

    def or_expr(self, at: int) -> tuple[Expr, int] | None:
        return self.chain(at, "or", self.and_expr, Or)

    def and_expr(self, at: int) -> tuple[Expr, int] | None:
        return self.chain(at, "and", self.not_expr, And)

    def not_expr(self, at: int) -> tuple[Expr, int] | None:
        after = self.tokens(at, ("not", "_"))
        if after is not None:
            self.enter(after)
            inner = self.not_expr(after)
            self.depth -= 1
            if inner is not None:
                expr, end = inner
                # go-bexpr folds `not not e` into `e`.
                return (expr.operand if isinstance(expr, Not) else Not(expr)), end
        return self.group(at)

    def group(self, at: int) -> tuple[Expr, int] | None:
        opened = self.literal(at, "(")
        if opened is None:
            return self.match(at)
        self.enter(opened)
        inner = self.or_expr(self.chars(opened, _WS, _WS_LABEL))
        self.depth -= 1
        if inner is None:
            return None
        expr, end = inner
        end = self.chars(end, _WS, _WS_LABEL)
        if self.literal(end, ")") is None:
            raise _DeadEnd(end, "Unmatched parentheses")
        return expr, end + 1

    # -- matching expressions ----------------------------------------------------------

    def match(self, at: int) -> tuple[Expr, int] | None:
        return self.selector_op_value(at) or self.selector_op(at) or self.value_op_selector(at)

    def selector_op_value(self, at: int) -> tuple[Match, int] | None:
        sel = self.selector(at)
        if sel is None:
            return None
        for op, tokens in _VALUE_OPERATORS:
            after = self.tokens(sel[1], tokens)
            if after is not None:
                value = self.value(after)
                return None if value is None else (Match(sel[0], op, value[0]), value[1])
        return None

    def selector_op(self, at: int) -> tuple[Match, int] | None:
        sel = self.selector(at)
        if sel is None:
            return None
        for op, tokens in _EMPTY_OPERATORS:
            after = self.tokens(sel[1], tokens)
            if after is not None:
                return Match(sel[0], op), after
        return None

    def value_op_selector(self, at: int) -> tuple[Match, int] | None:
        value = self.value(at)
        if value is None:
            return None
        for op, tokens in _IN_OPERATORS:
            after = self.tokens(value[1], tokens)
            if after is not None:
                sel = self.selector(after)
                if sel is None:
                    raise _DeadEnd(after, "Invalid selector")
                return Match(sel[0], op, value[0]), sel[1]
        return None

    # -- selectors and values ------------------------------------------------------------

    def identifier(self, at: int) -> tuple[str, int] | None:
        first = self.char(at, _LETTERS, "[a-zA-Z]")
        if first is None:
            return None
        end = self.chars(first, _IDENT_CHARS, "[a-zA-Z0-9_]")
        return self.text[at:end], end

    def selector(self, at: int) -> tuple[Selector, int] | None:
        head = self.identifier(at)
        if head is None:
            return None
        path, end = [head[0]], head[1]
        while (segment := self.dotted(end) or self.index(end)) is not None:
            path.append(segment[0])
            end = segment[1]
        return Selector(tuple(path)), end

    def dotted(self, at: int) -> tuple[str, int] | None:
        dot = self.literal(at, ".")
        return None if dot is None else self.identifier(dot)

    def index(self, at: int) -> tuple[str, int] | None:
        opened = self.literal(at, "[")
        if opened is None:
            return None
        start = self.chars(opened, _WS, _WS_LABEL)
        key = self.string(start)
        if key is None:
            raise _DeadEnd(start, "Invalid index")
        end = self.chars(key[1], _WS, _WS_LABEL)
        if self.literal(end, "]") is None:
            raise _DeadEnd(end, "Unclosed index expression")
        return key[0], end + 1

    def value(self, at: int) -> tuple[str, int] | None:
        sel = self.selector(at)
        if sel is not None:
            return ".".join(sel[0].path), sel[1]
        return self.number(at) or self.string(at)

    def number(self, at: int) -> tuple[str, int] | None:
        start = self.literal(at, "-") or at
        end = self.literal(start, "0")
        if end is None:
            end = self.char(start, _NONZERO, "[1-9]")
            if end is None:
                return None
            end = self.chars(end, _DIGITS, "[0-9]")
        dot = self.literal(end, ".")
        if dot is not None and (frac := self.char(dot, _DIGITS, "[0-9]")) is not None:
            end = self.chars(frac, _DIGITS, "[0-9]")
        if (
            self.char(end, _WS, _WS_LABEL) is None
            and self.eof(end) is None
            and self.literal(end, ")") is None
        ):
            raise _DeadEnd(end, "Invalid number literal")
        return self.text[at:end], end

    def string(self, at: int) -> tuple[str, int] | None:
        if at < len(self.text) and self.text[at] in '"`':
            try:
                return read_string(self.text, at)
            except ValueError as exc:
                offset, reason = exc.args
                raise _DeadEnd(offset, reason) from None
        self.fail(at, _quote('"'))
        self.fail(at, _quote("`"))
        return None
