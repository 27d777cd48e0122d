"""The Consul schemas expose the selectors Consul documents, with go-bexpr's operator sets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trellis.filter import (
    CHECK_SERVICE_NODE,
    MEMBER,
    NODE,
    SERVICE_NODE,
    STRING,
    MatchOp,
    Member,
    struct,
)
from trellis.filter.schema import OPERATORS, Field, extend, list_of, operators, walk
from trellis.filter.schemas import BY_NAME

VALUE = {MatchOp.EQUAL, MatchOp.NOT_EQUAL}
IN_EMPTY = {MatchOp.IN, MatchOp.NOT_IN, MatchOp.IS_EMPTY, MatchOp.IS_NOT_EMPTY}
EMPTY = {MatchOp.IS_EMPTY, MatchOp.IS_NOT_EMPTY}
STRING_OPS = VALUE | IN_EMPTY | {MatchOp.MATCHES, MatchOp.NOT_MATCHES}

DOCUMENTED = [
    (CHECK_SERVICE_NODE, "Checks", EMPTY),
    (CHECK_SERVICE_NODE, "Checks.CheckID", STRING_OPS),
    (CHECK_SERVICE_NODE, "Checks.Status", STRING_OPS),
    (CHECK_SERVICE_NODE, "Checks.ServiceTags", IN_EMPTY),
    (CHECK_SERVICE_NODE, "Node.Meta", IN_EMPTY),
    (CHECK_SERVICE_NODE, "Node.Meta.<any>", STRING_OPS),
    (CHECK_SERVICE_NODE, "Node.TaggedAddresses.<any>", STRING_OPS),
    (CHECK_SERVICE_NODE, "Service.Port", VALUE),
    (CHECK_SERVICE_NODE, "Service.Weights.Passing", VALUE),
    (CHECK_SERVICE_NODE, "Service.EnableTagOverride", VALUE),
    (CHECK_SERVICE_NODE, "Service.Connect.Native", VALUE),
    (CHECK_SERVICE_NODE, "Service.Proxy.DestinationServiceName", STRING_OPS),
    (CHECK_SERVICE_NODE, "Service.Proxy.Upstreams", EMPTY),
    (CHECK_SERVICE_NODE, "Service.Proxy.Upstreams.DestinationName", STRING_OPS),
    (CHECK_SERVICE_NODE, "Service.Proxy.Upstreams.LocalBindPort", VALUE),
    (CHECK_SERVICE_NODE, "Service.Proxy.MeshGateway.Mode", STRING_OPS),
    (CHECK_SERVICE_NODE, "Service.TaggedAddresses.<any>.Port", VALUE),
    (SERVICE_NODE, "ServiceTags", IN_EMPTY),
    (SERVICE_NODE, "ServiceTaggedAddresses.<any>.Address", STRING_OPS),
    (SERVICE_NODE, "ServiceProxy.Expose.Paths.Path", STRING_OPS),
    (SERVICE_NODE, "ServiceConnect.Native", VALUE),
    (NODE, "TaggedAddresses", IN_EMPTY),
    (MEMBER, "Tags.<any>", STRING_OPS),
    (MEMBER, "Status", VALUE),
]


@pytest.mark.parametrize(
    ("schema", "selector", "ops"), DOCUMENTED, ids=[f"{s}" for _, s, _ in DOCUMENTED]
)
def test_documented_selector_has_go_bexpr_operators(schema: Field, selector: str, ops: set) -> None:
    fields = dict(walk(schema))
    assert selector in fields
    assert operators(fields[selector]) == ops


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_no_schema_exposes_bexpr_hidden_fields(name: str) -> None:
    paths = {path.rsplit(".", 1)[-1] for path, _ in walk(BY_NAME[name])}
    assert not paths & {
        "CreateIndex",
        "ModifyIndex",
        "Definition",
        "Config",
        "Namespace",
        "Locality",
    }


def test_extend_appends_members_and_keeps_json_keys() -> None:
    base = struct(Name=STRING)
    wider = extend(base, Member("Kind", STRING, key="kind"), Tags=list_of(STRING))
    assert [(m.name, m.key) for m in wider.members] == [
        ("Name", "Name"),
        ("Kind", "kind"),
        ("Tags", "Tags"),
    ]


@pytest.mark.parametrize(
    "build",
    [
        lambda: struct(Member("not-ident", STRING)),
        lambda: struct(Member("A", STRING), A=STRING),
        lambda: list_of(list_of(STRING)),
        lambda: Field(STRING.kind, elem=STRING),
    ],
    ids=["bad-member-name", "duplicate-member", "list-of-list", "scalar-with-elem"],
)
def test_schema_constructors_reject_unselectable_shapes(build) -> None:
    with pytest.raises(ValueError):
        build()


def test_docs_operator_table_matches_the_schema_table() -> None:
    doc = (Path(__file__).parents[3] / "docs" / "filter.md").read_text()
    table = doc.split("<!-- operators:begin -->")[1].split("<!-- operators:end -->")[0]
    rows = [line.strip("|").split("|") for line in table.strip().splitlines()[2:]]
    documented = {
        shape.strip(): {MatchOp(op) for op in re.findall(r"`([^`]+)`", ops)} for shape, ops in rows
    }
    assert documented == {shape: set(ops) for shape, ops in OPERATORS.items()}
