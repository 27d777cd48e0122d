"""Table tests: filter values convert like Go's strconv (ParseInt base 0, ParseFloat, ParseBool)."""

from __future__ import annotations

import math

import pytest

from trellis.filter.coerce import parse_bool, parse_float, parse_int

INTS = [
    ("42", 42, "decimal"),
    ("-7", -7, "negative"),
    ("+5", 5, "plus"),
    ("0x1F", 31, "hex"),
    ("0b101", 5, "binary"),
    ("0o17", 15, "octal-prefix"),
    ("017", 15, "leading-zero-is-octal"),
    ("1_000", 1000, "underscores"),
    ("0x_1f", 31, "underscore-after-prefix"),
    ("-9223372036854775808", -(2**63), "int64-min"),
    ("9223372036854775807", 2**63 - 1, "int64-max"),
]


@pytest.mark.parametrize(("text", "value"), [c[:2] for c in INTS], ids=[c[2] for c in INTS])
def test_parse_int_accepts_go_literals(text: str, value: int) -> None:
    assert parse_int(text) == value


BAD_INTS = [
    ("", "empty"),
    ("08", "bad-octal-digit"),
    ("1__0", "double-underscore"),
    ("_1", "leading-underscore"),
    ("1_", "trailing-underscore"),
    ("0x", "prefix-only"),
    ("1.0", "float"),
    (" 1", "space"),
    ("9223372036854775808", "overflow"),
]


@pytest.mark.parametrize("text", [c[0] for c in BAD_INTS], ids=[c[1] for c in BAD_INTS])
def test_parse_int_rejects_what_go_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_int(text)


FLOATS = [
    ("1", 1.0, "integer"),
    ("-1.5", -1.5, "negative"),
    (".5", 0.5, "leading-dot"),
    ("5.", 5.0, "trailing-dot"),
    ("1e3", 1000.0, "exponent"),
    ("0x1p-2", 0.25, "hex-float"),
    ("Inf", math.inf, "inf"),
    ("-infinity", -math.inf, "negative-infinity"),
]


@pytest.mark.parametrize(("text", "value"), [c[:2] for c in FLOATS], ids=[c[2] for c in FLOATS])
def test_parse_float_accepts_go_syntax(text: str, value: float) -> None:
    assert parse_float(text) == value


@pytest.mark.parametrize(
    "text", ["", "abc", "1e", "--1", "+nan", "1e400"], ids=lambda t: t or "empty"
)
def test_parse_float_rejects_what_go_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_float(text)


def test_parse_float_reads_nan() -> None:
    assert math.isnan(parse_float("NaN"))


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_parse_bool_true_spellings(text: str) -> None:
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_parse_bool_false_spellings(text: str) -> None:
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["yes", "tRUE", "", "2"], ids=lambda t: t or "empty")
def test_parse_bool_rejects_other_words(text: str) -> None:
    with pytest.raises(ValueError):
        parse_bool(text)
