"""output.py: columnize as ryanuber/columnize's DefaultConfig prints, JSON, pairs."""

from __future__ import annotations

import pytest

from trellis.cli import output
from trellis.cli.output import CommandError

COLUMNIZE_CASES = [
    ("header-and-rows",
     [["Node", "Address", "Status"], ["n1", "127.0.0.1:8301", "alive"], ["node-two", "10.0.0.2:8301", "failed"]],
     "Node      Address         Status\n"
     "n1        127.0.0.1:8301  alive\n"
     "node-two  10.0.0.2:8301   failed"),
    ("last-column-not-padded",
     [["a", "long-last-value"], ["bbb", "x"]],
     "a    long-last-value\n"
     "bbb  x"),
    ("cells-are-trimmed",
     [[" a ", "b "], ["c", " d"]],
     "a  b\n"
     "c  d"),
    ("empty-cells-keep-their-column",
     [["Node", "ID", "DC"], ["n1", "", "dc1"]],
     "Node  ID  DC\n"
     "n1        dc1"),
    ("empty-middle-cell-pads-to-width",
     [["A", "B", "C"], ["x", "", ""]],
     "A  B  C\n"
     "x     "),
    ("short-row-uses-widths-of-others",
     [["a", "b", "c"], ["long"]],
     "a     b  c\n"
     "long"),
    ("single-column", [["x"], ["yy"]], "x\nyy"),
    ("unicode-counts-code-points", [["ñodo", "a"], ["n", "b"]], "ñodo  a\nn     b"),
    ("no-rows", [], ""),
]


@pytest.mark.parametrize(("rows", "expected"), [c[1:] for c in COLUMNIZE_CASES], ids=[c[0] for c in COLUMNIZE_CASES])
def test_columnize_table(rows, expected):
    assert output.columnize(rows) == expected


def test_columnize_glue_is_configurable():
    assert output.columnize([["a", "b"], ["cc", "d"]], glue=" | ") == "a  | b\ncc | d"


@pytest.mark.parametrize(("mapping", "joiner", "expected"), [
    ({"b": "2", "a": "1"}, ", ", "a=1, b=2"),
    ({"role": "consul", "dc": "dc1"}, ",", "dc=dc1,role=consul"),
    ({}, ", ", ""),
    (None, ", ", ""),
    ({"k": ""}, ",", "k="),
    ({"flag": True}, ",", "flag=true"),
], ids=["sorted", "comma", "empty", "none", "empty-value", "bool-as-go"])
def test_format_pairs(mapping, joiner, expected):
    assert output.format_pairs(mapping, joiner) == expected


def test_format_json_is_indented_four_spaces_without_trailing_newline():
    assert output.format_json({"a": [1], "é": "ü"}) == '{\n    "a": [\n        1\n    ],\n    "é": "ü"\n}'


@pytest.mark.parametrize("value", ["pretty", "json"])
def test_check_format_accepts_pretty_and_json(value):
    assert output.check_format(value) == value


def test_check_format_rejects_others_with_consul_text():
    with pytest.raises(CommandError) as info:
        output.check_format("yaml")
    assert str(info.value) == "Unknown format: yaml"
    assert info.value.code == 1


def test_out_and_err_go_to_stdout_and_stderr(capsys):
    output.out("result")
    assert output.fail("Error doing x: y", 3) == 3
    captured = capsys.readouterr()
    assert captured.out == "result\n"
    assert captured.err == "Error doing x: y\n"
