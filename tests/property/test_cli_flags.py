"""Properties of trellis.cli.flags: every spelling of a flag means the same thing.

Go's ``flag`` package (and so Consul's CLI) accepts ``-f v``, ``-f=v``, ``--f v``
and ``--f=v`` alike; trellis must too, whatever the values and their order.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trellis.cli.flags import Flag, FlagSet, HelpRequested, Kind, UsageError, parse_go_int

FLAGS = FlagSet(usage="u", flags=(
    Flag("name"),
    Flag("http-addr"),
    Flag("port", Kind.INT),
    Flag("tag", Kind.LIST),
    Flag("meta", Kind.MAP),
    Flag("detailed", Kind.BOOL),
))

FORMS = ("-{n} {v}", "-{n}={v}", "--{n} {v}", "--{n}={v}")

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
meta_key = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="="), max_size=6)
int64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)

assignment = st.one_of(
    st.tuples(st.just("name"), text),
    st.tuples(st.just("http-addr"), text),
    st.tuples(st.just("port"), int64.map(str)),
    st.tuples(st.just("tag"), text),
    st.tuples(st.just("meta"), st.tuples(meta_key, text).map(lambda kv: f"{kv[0]}={kv[1]}")),
)


def render(name: str, value: str, form: str) -> list[str]:
    if form.endswith(" {v}"):
        return [form.split(" ")[0].format(n=name), value]
    return [form.format(n=name, v=value)]


def expected(assignments: list[tuple[str, str]]) -> dict:
    want: dict = {"name": "", "http-addr": "", "port": 0, "tag": [], "meta": {}, "detailed": False}
    for name, value in assignments:
        if name == "port":
            want["port"] = int(value)
        elif name == "tag":
            want["tag"] = [*want["tag"], value]
        elif name == "meta":
            key, _, val = value.partition("=")
            want["meta"] = {**want["meta"], key: val}
        else:
            want[name] = value
    return want


@given(st.lists(st.tuples(assignment, st.sampled_from(FORMS)), max_size=8))
def test_every_form_of_every_flag_parses_to_the_same_values(items):
    argv = [arg for (name, value), form in items for arg in render(name, value, form)]
    parsed = FLAGS.parse(argv)
    assert dict(parsed.values) == expected([a for a, _ in items])
    assert parsed.args == ()


@given(st.lists(st.tuples(assignment, st.sampled_from(FORMS)), max_size=5),
       st.lists(st.tuples(assignment, st.sampled_from(FORMS)), max_size=5))
def test_canonical_and_mixed_forms_agree(mixed, other_forms):
    canonical = [arg for (name, value), _ in mixed for arg in render(name, value, "-{n}={v}")]
    spelled = [arg for (name, value), form in mixed for arg in render(name, value, form)]
    assert FLAGS.parse(canonical).values == FLAGS.parse(spelled).values


first_positional = st.one_of(
    st.just("-"),
    text.filter(lambda s: not s.startswith("-")),
)


@given(st.lists(st.tuples(assignment, st.sampled_from(FORMS)), max_size=5), first_positional,
       st.lists(text, max_size=5))
def test_parsing_stops_at_the_first_positional(items, first, rest):
    flags = [arg for (name, value), form in items for arg in render(name, value, form)]
    parsed = FLAGS.parse([*flags, first, *rest])
    assert parsed.args == (first, *rest)
    assert dict(parsed.values) == expected([a for a, _ in items])


@given(st.lists(text, max_size=6))
def test_double_dash_ends_flags_and_is_consumed(rest):
    parsed = FLAGS.parse(["-detailed", "--", *rest])
    assert parsed.detailed is True
    assert parsed.args == tuple(rest)


TRUE = ["1", "t", "T", "TRUE", "true", "True"]
FALSE = ["0", "f", "F", "FALSE", "false", "False"]


@given(st.sampled_from(["-", "--"]), st.sampled_from([None, *TRUE, *FALSE]))
def test_bool_flag_forms(dashes, value):
    arg = f"{dashes}detailed" if value is None else f"{dashes}detailed={value}"
    assert FLAGS.parse([arg]).detailed is (value is None or value in TRUE)


@given(st.lists(text, max_size=8))
def test_any_argument_list_parses_or_raises_a_usage_error(argv):
    try:
        parsed = FLAGS.parse(argv)
    except (UsageError, HelpRequested) as exc:
        assert exc.usage.startswith("u")
    else:
        assert len(parsed.args) <= len(argv)


@given(int64)
def test_go_int_round_trips_decimal_hex_octal_binary(n):
    sign = "-" if n < 0 else ""
    for text_form in (str(n), f"{sign}0x{abs(n):x}", f"{sign}0o{abs(n):o}", f"{sign}0b{abs(n):b}"):
        assert parse_go_int(text_form) == n
