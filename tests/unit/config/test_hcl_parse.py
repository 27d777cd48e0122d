"""parse_text: JSON and HCL1 into plain data, with pyhcl's shapes normalised."""

from __future__ import annotations

import pytest

from trellis.config.hcl import ConfigSyntaxError, detect_format, parse_text
from trellis.errors import InvalidInput

SHAPES = {
    "attributes": ('a = 1\nb = "x"\nc = true\nd = 1.5', {"a": 1, "b": "x", "c": True, "d": 1.5}),
    "block-once-is-a-dict": ("ports { http = 8500 }", {"ports": {"http": 8500}}),
    "block-twice-is-a-list": ('service { name = "a" }\nservice { name = "b" }',
                              {"service": [{"name": "a"}, {"name": "b"}]}),
    "object-attribute-is-a-block": ('service = { name = "a" }', {"service": {"name": "a"}}),
    "labelled-block": ('service "web" { port = 80 }', {"service": {"web": {"port": 80}}}),
    "two-labels": ('service "web" { port = 80 }\nservice "db" { port = 5432 }',
                   {"service": {"web": {"port": 80}, "db": {"port": 5432}}}),
    "repeated-label-merges": ('service "web" { port = 80 }\nservice "web" { tags = ["v1"] }',
                              {"service": {"web": {"port": 80, "tags": ["v1"]}}}),
    "nested-labels": ('a "b" "c" { k = 1 }\na "b" "d" { k = 2 }', {"a": {"b": {"c": {"k": 1}, "d": {"k": 2}}}}),
    "quoted-keys": ('ports { "grpc" = 8502 }', {"ports": {"grpc": 8502}}),
    "null": ("a = null\nb = [1, null]", {"a": None, "b": [1, None]}),
    "quoted-null-is-a-string": ('a = "null"', {"a": "null"}),
    "empty-block": ("connect { sidecar_service {} }", {"connect": {"sidecar_service": {}}}),
    "empty-object": ("meta = {}", {"meta": {}}),
    "list-of-objects": ('upstreams = [{ a = 1 }, { a = 2 }]', {"upstreams": [{"a": 1}, {"a": 2}]}),
    "comments": ("# one\n// two\n/* three */\na = 1", {"a": 1}),
    "interpolation-kept": ('a = "${var.x}"', {"a": "${var.x}"}),
    "empty-file": ("", {}),
    "keys-keep-case": ("Kind = 1\nkind = 2", {"Kind": 1, "kind": 2}),
}


@pytest.mark.parametrize("text, expected", SHAPES.values(), ids=SHAPES.keys())
def test_hcl_shapes_are_normalised(text: str, expected: dict) -> None:
    assert parse_text(text, filename="agent.hcl") == expected


def test_result_holds_plain_python_types() -> None:
    data = parse_text('k = v\nx "lbl" { y = "z" }', filename="agent.hcl")
    assert type(data["k"]) is str and type(next(iter(data["x"]))) is str


HCL_ERRORS = {
    "duplicate-attribute": ("a = 1\na = 2", 2, 1, 'duplicate attribute "a"'),
    "duplicate-in-block": ("s {\n  port = 1\n  port = 2\n}", 3, 3, 'duplicate attribute "port"'),
    "duplicate-across-merged-labels": ('s "w" { x = 1 }\ns "w" {\n  x = 2\n}', 3, 3, 'duplicate attribute "x"'),
    "block-and-attribute": ("c {}\nc = 1", 2, 1, '"c" is used both as a block and as an attribute'),
    "unexpected-token": ("a = 1\n  b = }", 2, 7, 'unexpected "}"'),
    "unterminated-block": ("a {", 1, 4, "unexpected end of file"),
    "illegal-character": ("a = 1 @", 1, 7, "Illegal character '@'"),
    "unterminated-string": ('a = "x', 1, 7, "EOF before closing string quote"),
}


@pytest.mark.parametrize("text, line, column, detail", HCL_ERRORS.values(), ids=HCL_ERRORS.keys())
def test_hcl_errors_name_file_line_and_column(text: str, line: int, column: int, detail: str) -> None:
    with pytest.raises(ConfigSyntaxError) as err:
        parse_text(text, filename="/etc/trellis/agent.hcl")
    assert (err.value.line, err.value.column, err.value.detail) == (line, column, detail)
    assert str(err.value) == f"Error parsing /etc/trellis/agent.hcl: line {line}, column {column}: {detail}"
    assert isinstance(err.value, InvalidInput)


JSON_ERRORS = {
    "missing-value": ('{\n  "a":\n}', 3, 1, "Expecting value"),
    "trailing-comma": ('{"a": 1,}', 1, 9, "Expecting property name enclosed in double quotes"),
    "unterminated": ('{"a": 1', 1, 8, "Expecting ',' delimiter"),
}


@pytest.mark.parametrize("text, line, column, detail", JSON_ERRORS.values(), ids=JSON_ERRORS.keys())
def test_json_errors_name_file_line_and_column(text: str, line: int, column: int, detail: str) -> None:
    with pytest.raises(ConfigSyntaxError) as err:
        parse_text(text, filename="web.json")
    assert (err.value.line, err.value.column, err.value.detail) == (line, column, detail)
    assert str(err.value).startswith(f"Error parsing web.json: line {line}, column {column}: ")


@pytest.mark.parametrize("text, detail", [
    ('{"port": 1, "port": 2}', 'duplicate key "port"'),
    ("[1, 2]", "top level must be an object, not an array"),
    ('{"a": NaN}', "invalid number NaN"),
], ids=["duplicate-key", "not-an-object", "nan"])
def test_json_documents_that_are_refused(text: str, detail: str) -> None:
    with pytest.raises(ConfigSyntaxError) as err:
        parse_text(text, filename="web.json")
    assert err.value.detail == detail


FORMATS = {
    "json-extension": ("a.json", "a = 1", None, "json"),
    "hcl-extension": ("a.hcl", '{"a": 1}', None, "hcl"),
    "sniffed-json": ("a.conf", '  {"a": 1}', None, "json"),
    "sniffed-hcl": ("a.conf", "a = 1", None, "hcl"),
    "forced": ("a.json", "a = 1", "hcl", "hcl"),
}


@pytest.mark.parametrize("filename, text, fmt, expected", FORMATS.values(), ids=FORMATS.keys())
def test_format_detection(filename: str, text: str, fmt: str | None, expected: str) -> None:
    assert detect_format(filename, text, fmt) == expected


def test_unknown_forced_format_is_refused() -> None:
    with pytest.raises(InvalidInput):
        parse_text("a = 1", filename="a", fmt="yaml")


def test_forced_hcl_reads_a_json_named_file() -> None:
    assert parse_text('a = "b"', filename="x.json", fmt="hcl") == {"a": "b"}
