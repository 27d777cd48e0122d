"""Go duration text: parse and Duration.String() format."""

from __future__ import annotations

import pytest

from trellis.config.duration import (
    DurationError,
    decode_duration,
    format_duration,
    format_duration_ns,
    parse_duration,
    parse_duration_ns,
)
from trellis.errors import InvalidInput

PARSE = {
    "seconds": ("10s", 10_000_000_000),
    "compound": ("1m30s", 90_000_000_000),
    "go-string-form": ("1h0m0.5s", 3_600_500_000_000),
    "fractional-hours": ("1.5h", 5_400_000_000_000),
    "milliseconds": ("300ms", 300_000_000),
    "micro-us": ("2us", 2_000),
    "micro-sign": ("2\u00b5s", 2_000),
    "micro-greek-mu": ("2\u03bcs", 2_000),
    "nanoseconds": ("7ns", 7),
    "zero": ("0", 0),
    "signed-zero": ("-0", 0),
    "negative": ("-1.5s", -1_500_000_000),
    "plus": ("+2s", 2_000_000_000),
    "leading-point": (".5s", 500_000_000),
    "trailing-point": ("5.s", 5_000_000_000),
    "fraction-truncates": ("1.0000000009s", 1_000_000_000),
    "max": ("9223372036854775807ns", 2**63 - 1),
    "min": ("-9223372036854775808ns", -(2**63)),
}


@pytest.mark.parametrize("text, ns", PARSE.values(), ids=PARSE.keys())
def test_parse(text: str, ns: int) -> None:
    assert parse_duration_ns(text) == ns


BAD = {
    "empty": ("", 'time: invalid duration ""'),
    "no-unit": ("10", 'time: missing unit in duration "10"'),
    "unknown-unit": ("1d", 'time: unknown unit "d" in duration "1d"'),
    "unit-only": ("s", 'time: invalid duration "s"'),
    "sign-only": ("-", 'time: invalid duration "-"'),
    "point-only": (".s", 'time: invalid duration ".s"'),
    "words": ("ten seconds", 'time: invalid duration "ten seconds"'),
    "overflow": ("9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'),
    "overflow-hours": ("2562048h", 'time: invalid duration "2562048h"'),
    "space": ("1 s", 'time: unknown unit " s" in duration "1 s"'),
}


@pytest.mark.parametrize("text, message", BAD.values(), ids=BAD.keys())
def test_parse_errors_use_gos_words(text: str, message: str) -> None:
    with pytest.raises(DurationError) as err:
        parse_duration_ns(text)
    assert str(err.value) == message
    assert isinstance(err.value, InvalidInput)


FORMAT = {
    "zero": (0, "0s"),
    "nanoseconds": (1, "1ns"),
    "micro": (1_500, "1.5\u00b5s"),
    "milli": (500_000_000, "500ms"),
    "second": (1_000_000_000, "1s"),
    "minute": (60_000_000_000, "1m0s"),
    "ninety-seconds": (90_000_000_000, "1m30s"),
    "hour": (3_600_000_000_000, "1h0m0s"),
    "three-days": (72 * 3_600_000_000_000, "72h0m0s"),
    "fraction": (1_500_000_000, "1.5s"),
    "negative": (-1_500_000_000, "-1.5s"),
    "min-int64": (-(2**63), "-2562047h47m16.854775808s"),
}


@pytest.mark.parametrize("ns, text", FORMAT.values(), ids=FORMAT.keys())
def test_format_is_gos_duration_string(ns: int, text: str) -> None:
    assert format_duration_ns(ns) == text


@pytest.mark.parametrize("seconds, text", [(60, "1m0s"), (0.5, "500ms"), (72 * 3600, "72h0m0s"), (10, "10s"),
                                           (0, "0s")], ids=["1m", "half-second", "72h", "10s", "zero"])
def test_format_duration_takes_float_seconds(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_parse_duration_returns_float_seconds() -> None:
    assert parse_duration("1m30s") == 90.0


@pytest.mark.parametrize("value, seconds", [("10s", 10.0), (10_000_000_000, 10.0), (1.5e9, 1.5), (0, 0.0)],
                         ids=["text", "int-ns", "float-ns", "zero"])
def test_decode_duration_takes_text_or_nanoseconds(value: object, seconds: float) -> None:
    assert decode_duration(value) == seconds


@pytest.mark.parametrize("value", [True, None, [], {}, float("nan"), float("inf"), 2**80],
                         ids=["bool", "null", "list", "object", "nan", "inf", "huge"])
def test_decode_duration_refuses_other_values(value: object) -> None:
    with pytest.raises(InvalidInput):
        decode_duration(value)
