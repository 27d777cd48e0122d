r"""String literals in filter text: reading them as Go's ``strconv.Unquote`` does, and
writing any string back so that reading it gives the same string.

Rule 1: a backtick string is raw: no escapes, ends at the next backtick, and carriage
returns inside it are dropped (Go).
Rule 2: a double-quoted string takes Go's escapes: ``\a \b \f \n \r \t \v \\ \"``,
``\xHH``, ``\ooo`` (bytes; a run of them must spell UTF-8), ``\uHHHH``, ``\UHHHHHHHH``
(code points, no surrogates). ``\'`` and unknown escapes are errors; so is a raw
newline.
Rule 3 (a difference, documented in docs/filter.md): ``\"`` is accepted inside a
double-quoted string. go-bexpr's grammar ends the string at the first ``"``, so there
a double quote can only appear inside backticks.

Errors are ``ValueError(offset, reason)``; the grammar turns them into ``FilterError``.
"""

from __future__ import annotations

import string

_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
}
_HEX = frozenset(string.hexdigits)
_OCTAL = frozenset("01234567")
_UNESCAPES = {v: k for k, v in _SIMPLE_ESCAPES.items() if k not in "abfv"}


def read_string(text: str, at: int) -> tuple[str, int]:
    """Read the literal opening at ``text[at]`` (a ``"`` or a backtick).

    Returns the string's value and the offset just past its closing quote. Pure.
    """
    if text[at] == "`":
        close = text.find("`", at + 1)
        if close < 0:
            raise ValueError(len(text), "Unterminated string literal")
        return text[at + 1 : close].replace("\r", ""), close + 1
    return _read_quoted(text, at + 1)


def format_string(value: str) -> str:
    """Write ``value`` as a literal ``read_string`` reads back unchanged. Pure.

    Backticks when that needs no escapes and avoids ``\"`` (so go-bexpr reads it too),
    double quotes with escapes otherwise.
    """
    if '"' in value and "`" not in value and "\r" not in value:
        return f"`{value}`"
    return '"' + "".join(_escape_char(ch) for ch in value) + '"'


def _escape_char(ch: str) -> str:
    if ch in _UNESCAPES:
        return "\\" + _UNESCAPES[ch]
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"\\x{ord(ch):02x}"
    return ch


class _Decoder:
    """Collects the pieces of a double-quoted string; byte escapes wait in ``pending``
    until the next character so that a multi-byte UTF-8 sequence decodes as one."""

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.pending = bytearray()
        self.pending_at = 0

    def add_byte(self, value: int, at: int) -> None:
        if not self.pending:
            self.pending_at = at
        self.pending.append(value)

    def add_text(self, text: str) -> None:
        self.flush()
        self.pieces.append(text)

    def flush(self) -> None:
        if not self.pending:
            return
        try:
            self.pieces.append(self.pending.decode("utf-8"))
        except UnicodeDecodeError:
            raise ValueError(self.pending_at, "Invalid UTF-8 in string escapes") from None
        self.pending.clear()

    def result(self) -> str:
        self.flush()
        return "".join(self.pieces)


def _read_quoted(text: str, at: int) -> tuple[str, int]:
    decoder = _Decoder()
    while at < len(text):
        ch = text[at]
        if ch == '"':
            return decoder.result(), at + 1
        if ch == "\n":
            raise ValueError(at, "Invalid string literal: newline in double-quoted string")
        if ch != "\\":
            decoder.add_text(ch)
            at += 1
            continue
        value, end = _read_escape(text, at)
        if isinstance(value, int):
            decoder.add_byte(value, at)
        else:
            decoder.add_text(value)
        at = end
    raise ValueError(len(text), "Unterminated string literal")


def _read_escape(text: str, at: int) -> tuple[int | str, int]:
    """The escape starting with the backslash at ``at``: a byte (int) or text (str)."""
    if at + 1 >= len(text):
        raise ValueError(len(text), "Unterminated string literal")
    kind = text[at + 1]
    if kind in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[kind], at + 2
    if kind == "x":
        return _digits(text, at + 2, 2, _HEX, 16, at), at + 4
    if kind in _OCTAL:
        value = _digits(text, at + 1, 3, _OCTAL, 8, at)
        if value > 0xFF:
            raise ValueError(at, f"Invalid octal escape \\{text[at + 1 : at + 4]}")
        return value, at + 4
    if kind in "uU":
        width = 4 if kind == "u" else 8
        point = _digits(text, at + 2, width, _HEX, 16, at)
        if point > 0x10FFFF or 0xD800 <= point <= 0xDFFF:
            raise ValueError(
                at, f"Invalid code point in escape \\{kind}{text[at + 2 : at + 2 + width]}"
            )
        return chr(point), at + 2 + width
    raise ValueError(at, f"Invalid escape sequence \\{kind}")


def _digits(text: str, start: int, count: int, allowed: frozenset[str], base: int, at: int) -> int:
    digits = text[start : start + count]
    if len(digits) != count or not set(digits) <= allowed:
        raise ValueError(at, f"Invalid escape sequence {text[at : start + count]}")
    return int(digits, base)
