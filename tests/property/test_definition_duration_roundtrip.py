"""Go duration text: format/parse round trips (trellis/config/duration.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trellis.config.duration import (
    format_duration,
    format_duration_ns,
    parse_duration,
    parse_duration_ns,
)

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
UNITS = st.sampled_from(["ns", "us", "\u00b5s", "ms", "s", "m", "h"])
GROUP = st.tuples(st.integers(0, 9999), st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,9}", fullmatch=True)), UNITS)


@given(INT64)
def test_format_then_parse_gives_the_same_nanoseconds(ns: int) -> None:
    assert parse_duration_ns(format_duration_ns(ns)) == ns


@given(st.lists(GROUP, min_size=1, max_size=4), st.sampled_from(["", "-", "+"]))
def test_any_go_duration_text_reaches_a_fixed_point(groups: list[tuple[int, str, str]], sign: str) -> None:
    text = sign + "".join(f"{whole}{frac}{unit}" for whole, frac, unit in groups)
    ns = parse_duration_ns(text)
    canonical = format_duration_ns(ns)
    assert parse_duration_ns(canonical) == ns
    assert format_duration_ns(parse_duration_ns(canonical)) == canonical


# Float seconds resolve single nanoseconds only up to ~2.25e6 s (26 days); beyond
# that the float API rounds, while the integer-nanosecond one stays exact.
@given(st.integers(min_value=-(2**50), max_value=2**50))
def test_float_seconds_round_trip_at_nanosecond_precision(ns: int) -> None:
    seconds = ns / 1e9
    assert parse_duration(format_duration(seconds)) == seconds


@given(INT64)
def test_format_uses_only_go_units_and_no_trailing_zero_fraction(ns: int) -> None:
    text = format_duration_ns(ns)
    assert text[-1] == "s"
    for part in text.replace("h", " ").replace("m", " ").split():
        if "." in part:
            assert not part.rstrip("s\u00b5n").endswith("0")
