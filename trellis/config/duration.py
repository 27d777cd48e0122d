"""Go ``time.Duration`` text: parse and format, exactly as Go does (pure).

Rules:
1. The exact unit is the integer nanosecond: ``parse_duration_ns`` and
   ``format_duration_ns`` are inverse for every int64 (``format`` then ``parse``
   gives the same integer back).
2. Inside trellis durations are float seconds (catalog/model.py rule 3);
   ``parse_duration``/``format_duration`` are thin float wrappers that round to
   the nanosecond.
3. JSON bodies may carry a duration as a number, meaning nanoseconds (Consul's
   check ``Interval``/``TTL``/... ``UnmarshalJSON``); ``decode_duration`` accepts
   both shapes.

Grammar (Go ``time.ParseDuration``): an optional sign, then one or more
``<decimal><unit>`` groups; units ``ns``, ``us``/``µs``/``μs``, ``ms``, ``s``,
``m``, ``h``; ``"0"`` alone is allowed. ``format`` is Go's ``Duration.String()``:
``60s`` → ``"1m0s"``, ``0.5s`` → ``"500ms"``, ``72h`` → ``"72h0m0s"``, ``0`` → ``"0s"``.
"""

from __future__ import annotations

import math

from trellis.errors import InvalidInput

NANOSECOND = 1
MICROSECOND = 1_000
MILLISECOND = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

_MAX_NS = (1 << 63) - 1  # Go's Duration is an int64

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,  # µ micro sign
    "\u03bcs": MICROSECOND,  # μ Greek small letter mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}


class DurationError(InvalidInput):
    """Text that is not a Go duration; the message is Go's own wording."""

    def __init__(self, text: str, detail: str = "invalid duration") -> None:
        super().__init__("duration", text, detail, message=f'time: {detail} "{text}"')


def parse_duration_ns(text: str) -> int:
    """Parse Go duration text into integer nanoseconds. Pure; raises DurationError."""
    if not isinstance(text, str):
        raise DurationError(str(text))
    rest, negative = text, False
    if rest[:1] in ("-", "+"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise DurationError(text)
    total = 0
    while rest:
        whole, rest = _take_digits(rest)
        frac = ""
        if rest.startswith("."):
            frac, rest = _take_digits(rest[1:])
        if not whole and not frac:
            raise DurationError(text)  # "." alone, or a unit with no number
        unit_len = _unit_length(rest)
        unit = rest[:unit_len]
        rest = rest[unit_len:]
        if not unit:
            raise DurationError(text, "missing unit in duration")
        if unit not in _UNITS:
            raise DurationError(text, f'unknown unit "{unit}" in duration')
        total += _group_value(whole, frac, _UNITS[unit], text)
        if total > _MAX_NS + (1 if negative else 0):
            raise DurationError(text)
    return -total if negative else total


def _take_digits(text: str) -> tuple[str, str]:
    i = 0
    while i < len(text) and "0" <= text[i] <= "9":
        i += 1
    return text[:i], text[i:]


def _unit_length(text: str) -> int:
    i = 0
    while i < len(text) and text[i] != "." and not ("0" <= text[i] <= "9"):
        i += 1
    return i


def _group_value(whole: str, frac: str, unit: int, text: str) -> int:
    value = int(whole or "0") * unit
    if frac:
        # Go truncates the fraction towards zero at nanosecond precision.
        value += int(frac) * unit // 10 ** len(frac)
    if value > _MAX_NS + 1:
        raise DurationError(text)
    return value


def format_duration_ns(ns: int) -> str:
    """Go's ``Duration.String()`` for integer nanoseconds. Pure."""
    if ns == 0:
        return "0s"
    sign, u = ("-", -ns) if ns < 0 else ("", ns)
    if u < SECOND:
        if u < MICROSECOND:
            return f"{sign}{u}ns"
        if u < MILLISECOND:
            return f"{sign}{_fixed(u, 3)}\u00b5s"
        return f"{sign}{_fixed(u, 6)}ms"
    hours, rem = divmod(u, HOUR)
    minutes, rem = divmod(rem, MINUTE)
    seconds = _fixed(rem, 9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return f"{sign}{seconds}"


def _fixed(value: int, precision: int) -> str:
    """``value / 10**precision`` with trailing zeros (and a bare point) dropped."""
    whole, frac = divmod(value, 10**precision)
    digits = str(frac).rjust(precision, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def parse_duration(text: str) -> float:
    """Parse Go duration text into float seconds. Pure; raises DurationError."""
    return parse_duration_ns(text) / SECOND


def format_duration(seconds: float) -> str:
    """Float seconds as Go's ``Duration.String()`` (rounded to the nanosecond)."""
    return format_duration_ns(seconds_to_ns(seconds))


def seconds_to_ns(seconds: float) -> int:
    if not math.isfinite(seconds):
        raise InvalidInput("duration", seconds, "must be finite")
    return round(seconds * SECOND)


def decode_duration(value: object) -> float:
    """A JSON duration: Go text, or a number of nanoseconds. Returns float seconds.

    Raises DurationError for bad text and InvalidInput for any other type (bools
    included). Pure.
    """
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput("duration", value, "expected a duration string or a number of nanoseconds")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput("duration", value, "must be finite")
    if not -_MAX_NS - 1 <= value <= _MAX_NS:
        raise InvalidInput("duration", value, "out of range for a duration")
    return int(value) / SECOND  # Go converts float64 → Duration by truncation
