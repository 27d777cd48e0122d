"""flags.py: Go ``flag`` semantics, as tables of argument lists."""

from __future__ import annotations

import pytest

from trellis.cli.flags import HTTP_OPTIONS, Flag, FlagSet, HelpRequested, Kind, UsageError, parse_go_int

FLAGS = FlagSet(
    usage="Usage: trellis test [options] [FILE...]",
    description="A command used by the tests.",
    flags=(
        Flag("name", help="A name."),
        Flag("http-addr", metavar="address", group=HTTP_OPTIONS, help="Where."),
        Flag("port", Kind.INT, default=8500, help="A port."),
        Flag("tags", Kind.BOOL, help="Show tags."),
        Flag("tag", Kind.LIST, help="A tag."),
        Flag("meta", Kind.MAP, help="key=value."),
        Flag("interval", Kind.DURATION, help="How often."),
        Flag("status", default=".*", help="Regex."),
    ),
)


def values(argv: list[str]) -> tuple[dict, tuple[str, ...]]:
    parsed = FLAGS.parse(argv)
    return dict(parsed.values), parsed.args


DEFAULTS = {"name": "", "http-addr": "", "port": 8500, "tags": False, "tag": [], "meta": {},
            "interval": 0.0, "status": ".*"}

PARSE_CASES = [
    ("nothing", [], {}, ()),
    ("one-dash-space", ["-name", "web"], {"name": "web"}, ()),
    ("one-dash-equals", ["-name=web"], {"name": "web"}, ()),
    ("two-dash-space", ["--name", "web"], {"name": "web"}, ()),
    ("two-dash-equals", ["--name=web"], {"name": "web"}, ()),
    ("equals-in-value", ["-name=a=b"], {"name": "a=b"}, ()),
    ("empty-value-equals", ["-name="], {"name": ""}, ()),
    ("empty-value-space", ["-name", ""], {"name": ""}, ()),
    ("value-looks-like-flag", ["-name", "-tag"], {"name": "-tag"}, ()),
    ("dashed-name", ["-http-addr", "10.0.0.1:8500"], {"http-addr": "10.0.0.1:8500"}, ()),
    ("last-wins", ["-name", "a", "-name=b"], {"name": "b"}, ()),
    ("bool-bare", ["-tags"], {"tags": True}, ()),
    ("bool-two-dash", ["--tags"], {"tags": True}, ()),
    ("bool-false", ["-tags=false"], {"tags": False}, ()),
    ("bool-zero", ["-tags=0"], {"tags": False}, ()),
    ("bool-T", ["-tags=T"], {"tags": True}, ()),
    ("bool-space-is-positional", ["-tags", "false"], {"tags": True}, ("false",)),
    ("int-decimal", ["-port", "8080"], {"port": 8080}, ()),
    ("int-hex", ["-port=0x1F"], {"port": 31}, ()),
    ("int-octal-prefix", ["-port=0o17"], {"port": 15}, ()),
    ("int-leading-zero-octal", ["-port=010"], {"port": 8}, ()),
    ("int-binary", ["-port=0b101"], {"port": 5}, ()),
    ("int-underscore", ["-port=1_000"], {"port": 1000}, ()),
    ("int-negative", ["-port", "-5"], {"port": -5}, ()),
    ("list-appends", ["-tag", "a", "-tag=b", "--tag", "c"], {"tag": ["a", "b", "c"]}, ()),
    ("map-merges", ["-meta", "a=1", "-meta=b=2=3", "-meta", "c="], {"meta": {"a": "1", "b": "2=3", "c": ""}}, ()),
    ("duration", ["-interval", "1m30s"], {"interval": 90.0}, ()),
    ("duration-ms", ["-interval=250ms"], {"interval": 0.25}, ()),
    ("stops-at-positional", ["-name", "web", "file.hcl", "-tag", "x"], {"name": "web"}, ("file.hcl", "-tag", "x")),
    ("double-dash-consumed", ["-name", "web", "--", "-tag"], {"name": "web"}, ("-tag",)),
    ("single-dash-is-positional", ["-", "-tags"], {}, ("-", "-tags")),
    ("positionals-only", ["a.hcl", "b.json"], {}, ("a.hcl", "b.json")),
]


@pytest.mark.parametrize(("argv", "changed", "args"), [c[1:] for c in PARSE_CASES], ids=[c[0] for c in PARSE_CASES])
def test_parse_table(argv, changed, args):
    got, rest = values(argv)
    assert got == {**DEFAULTS, **changed}
    assert rest == args


ERROR_CASES = [
    ("unknown-one-dash", ["-x"], "flag provided but not defined: -x"),
    ("unknown-two-dash-with-value", ["--nope=1"], "flag provided but not defined: -nope"),
    ("missing-argument", ["-name"], "flag needs an argument: -name"),
    ("missing-argument-list", ["-tag", "a", "-tag"], "flag needs an argument: -tag"),
    ("int-not-a-number", ["-port", "abc"], 'invalid value "abc" for flag -port: parse error'),
    ("int-empty", ["-port="], 'invalid value "" for flag -port: parse error'),
    ("int-space", ["-port", " 5"], 'invalid value " 5" for flag -port: parse error'),
    ("int-bad-octal", ["-port=08"], 'invalid value "08" for flag -port: parse error'),
    ("int-too-big", ["-port", "9223372036854775808"],
     'invalid value "9223372036854775808" for flag -port: value out of range'),
    ("bool-bad", ["-tags=maybe"], 'invalid boolean value "maybe" for -tags: parse error'),
    ("bool-empty", ["-tags="], 'invalid boolean value "" for -tags: parse error'),
    ("three-dashes", ["---name", "x"], "bad flag syntax: ---name"),
    ("dash-equals", ["-=x"], "bad flag syntax: -=x"),
    ("map-without-equals", ["-meta", "novalue"],
     'invalid value "novalue" for flag -meta: Missing "=" value in argument: novalue'),
    ("duration-without-unit", ["-interval", "5"], 'invalid value "5" for flag -interval: parse error'),
    ("quote-escaped", ["-port", 'a"b'], 'invalid value "a\\"b" for flag -port: parse error'),
]


@pytest.mark.parametrize(("argv", "message"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_parse_errors_use_go_wording(argv, message):
    with pytest.raises(UsageError) as info:
        FLAGS.parse(argv)
    assert str(info.value) == message
    assert info.value.usage.startswith("Usage: trellis test [options] [FILE...]")


@pytest.mark.parametrize("arg", ["-h", "-help", "--help", "--h"])
def test_help_flags_raise_help_requested_with_usage(arg):
    with pytest.raises(HelpRequested) as info:
        FLAGS.parse(["-name", "x", arg])
    assert "Command Options" in info.value.usage


def test_help_is_not_seen_after_a_positional():
    assert FLAGS.parse(["file", "-h"]).args == ("file", "-h")


def test_parsed_reads_by_attribute_name_and_by_flag_name():
    parsed = FLAGS.parse(["-http-addr", "h:1", "-tags"])
    assert parsed.http_addr == "h:1"
    assert parsed["http-addr"] == "h:1"
    assert parsed.get("missing", "d") == "d"
    with pytest.raises(AttributeError):
        _ = parsed.no_such_flag


def test_is_set_tells_explicit_from_default():
    parsed = FLAGS.parse(["-port", "8500"])
    assert parsed.is_set("port")
    assert not parsed.is_set("status")
    assert parsed.status == ".*"


def test_list_and_map_defaults_are_not_shared_between_parses():
    first = FLAGS.parse(["-tag", "a", "-meta", "k=v"])
    second = FLAGS.parse([])
    assert first.tag == ["a"] and second.tag == []
    assert second.meta == {}


def test_usage_lists_http_options_first_then_command_options_sorted():
    usage = FLAGS.format_usage()
    assert usage.startswith("Usage: trellis test [options] [FILE...]\n\n  A command used by the tests.\n\n")
    assert usage.index("HTTP API Options") < usage.index("Command Options")
    assert "  -http-addr=<address>\n     Where." in usage
    assert "  -tags\n     Show tags." in usage  # bool flags take no value
    assert "  -port=<int>" in usage
    opts = usage[usage.index("Command Options"):]
    names = [line.split("=")[0].strip() for line in opts.splitlines() if line.startswith("  -")]
    assert names == sorted(names)


def test_redefined_flag_is_a_programming_error():
    with pytest.raises(AssertionError):
        FlagSet(usage="u", flags=(Flag("a"), Flag("a")))


@pytest.mark.parametrize(("text", "value"), [
    ("0", 0), ("-0", 0), ("+7", 7), ("0x_1f", 31), ("0X1F", 31), ("017", 15), ("0b1_0", 2),
    ("-9223372036854775808", -(1 << 63)),
])
def test_parse_go_int_accepts_go_literals(text, value):
    assert parse_go_int(text) == value


@pytest.mark.parametrize("text", ["", "1_", "_1", "1__0", "0x", "1.5", "1e3", "٣"])
def test_parse_go_int_rejects_what_go_rejects(text):
    with pytest.raises(ValueError):
        parse_go_int(text)
