"""Turn a filter value's text into the typed value a field holds, the way Go's strconv does.

go-bexpr coerces every value with ``strconv`` (``ParseInt(s, 0, 64)``, ``ParseFloat(s, 64)``,
``ParseBool``); these functions accept the same spellings, so ``Port == 0x50`` and
``EnableTagOverride == T`` mean what they mean in Consul.

Rule: each function is pure and raises ``ValueError`` whose text says why; the compiler
turns that into a ``FilterError`` naming the selector.
"""

from __future__ import annotations

import math
import re

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# strconv.ParseInt with base 0: optional sign; 0x/0b/0o prefixes; a leading 0 means
# octal; `_` may only sit between digits or right after a base prefix.
_INT = re.compile(
    r"[+-]?(?:0[xX](?:_?[0-9a-fA-F])+|0[bB](?:_?[01])+|0[oO](?:_?[0-7])+"
    r"|0(?:_?[0-7])*|[1-9](?:_?[0-9])*)\Z"
)
_DIGITS = r"[0-9](?:_?[0-9])*"
_DECIMAL_FLOAT = re.compile(
    rf"[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?\Z"
)
_HEX_FLOAT = re.compile(
    r"[+-]?0[xX](?:[0-9a-fA-F_]+(?:\.[0-9a-fA-F_]*)?|\.[0-9a-fA-F_]+)[pP][+-]?[0-9_]+\Z"
)
_SPECIAL_FLOAT = {"inf": math.inf, "infinity": math.inf, "nan": math.nan}

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def parse_int(text: str) -> int:
    """A 64-bit signed integer in Go syntax: ``42``, ``-7``, ``0x2a``, ``052``, ``1_000``."""
    if not _INT.match(text):
        raise ValueError("not an integer")
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-").replace("_", "")
    if body[:2].lower() in ("0x", "0b", "0o"):
        magnitude = int(body, 0)
    elif len(body) > 1 and body.startswith("0"):
        magnitude = int(body, 8)
    else:
        magnitude = int(body, 10)
    value = sign * magnitude
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise ValueError("out of range for a 64-bit integer")
    return value


def parse_float(text: str) -> float:
    """A float64 in Go syntax: decimal, hex (``0x1p-2``), ``Inf``/``Infinity``/``NaN``."""
    unsigned = text[1:] if text[:1] in ("+", "-") else text
    special = _SPECIAL_FLOAT.get(unsigned.lower())
    if special is not None and (special == math.inf or unsigned == text):  # no signed NaN
        return -special if text.startswith("-") else special
    if _DECIMAL_FLOAT.match(text):
        value = float(text.replace("_", ""))
    elif _HEX_FLOAT.match(text):
        value = float.fromhex(text.replace("_", ""))
    else:
        raise ValueError("not a number")
    if math.isinf(value):
        raise ValueError("out of range for a 64-bit float")
    return value


def parse_bool(text: str) -> bool:
    """``1 t T TRUE true True`` or ``0 f F FALSE false False``, as strconv.ParseBool."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("not a boolean")
