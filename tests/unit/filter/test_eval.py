"""Table tests for compile + Filter.match over Consul-shaped JSON documents."""

from __future__ import annotations

import copy

import pytest

from trellis.errors import InvalidInput, TrellisError
from trellis.filter import (
    CHECK_SERVICE_NODE,
    FLOAT,
    HEALTH_CHECK,
    MEMBER,
    NODE,
    NODE_SERVICE,
    SERVICE_NODE,
    STRING,
    FilterError,
    compile,
    list_of,
    parse,
    struct,
)

# /v1/health/service/redis element (structs.CheckServiceNode as Consul renders it).
REDIS_ENTRY = {
    "Node": {
        "ID": "40e4a748-2192-161a-0510-9bf59fe950b5",
        "Node": "foobar",
        "Address": "10.1.10.12",
        "Datacenter": "dc1",
        "TaggedAddresses": {"lan": "10.1.10.12", "wan": "10.1.10.12"},
        "Meta": {"instance_type": "t2.medium", "env": "prod"},
    },
    "Service": {
        "ID": "redis",
        "Service": "redis",
        "Tags": ["primary", "v1"],
        "Address": "10.1.10.12",
        "TaggedAddresses": {"lan": {"Address": "10.1.10.12", "Port": 8000}},
        "Meta": {"redis_version": "4.0", "env": "prod"},
        "Port": 8000,
        "Weights": {"Passing": 10, "Warning": 1},
        "EnableTagOverride": False,
        "Proxy": {"MeshGateway": {}, "Expose": {}},
        "Connect": {},
    },
    "Checks": [
        {
            "Node": "foobar",
            "CheckID": "service:redis",
            "Name": "Service 'redis' check",
            "Status": "passing",
            "Notes": "",
            "Output": "",
            "ServiceID": "redis",
            "ServiceName": "redis",
            "ServiceTags": ["primary"],
            "Type": "ttl",
        },
        {
            "Node": "foobar",
            "CheckID": "serfHealth",
            "Name": "Serf Health Status",
            "Status": "critical",
            "Output": "Agent not live or unreachable",
            "ServiceID": "",
            "ServiceName": "",
            "ServiceTags": [],
            "Type": "",
        },
    ],
}

# A sidecar proxy instance with no checks.
SIDECAR_ENTRY = {
    "Node": {"Node": "n2", "Address": "10.0.0.2", "Datacenter": "dc1", "Meta": None},
    "Service": {
        "Kind": "connect-proxy",
        "ID": "web-sidecar-proxy",
        "Service": "web-sidecar-proxy",
        "Tags": [],
        "Port": 21000,
        "Proxy": {
            "DestinationServiceName": "web",
            "DestinationServiceID": "web",
            "LocalServicePort": 8080,
            "Mode": "transparent",
            "Upstreams": [
                {"DestinationType": "service", "DestinationName": "db", "LocalBindPort": 9191},
                {
                    "DestinationType": "prepared_query",
                    "DestinationName": "cache",
                    "Datacenter": "dc2",
                },
            ],
            "TransparentProxy": {"OutboundListenerPort": 15001},
        },
    },
    "Checks": [],
}

# /v1/catalog/service/foobar element (structs.ServiceNode).
CATALOG_FOOBAR = {
    "ID": "40e4a748-2192-161a-0510-9bf59fe950b5",
    "Node": "t2.320",
    "Address": "192.168.10.10",
    "Datacenter": "dc1",
    "TaggedAddresses": {"lan": "192.168.10.10", "wan": "10.0.10.10"},
    "NodeMeta": {"somekey": "somevalue"},
    "CreateIndex": 51,
    "ModifyIndex": 51,
    "ServiceAddress": "172.17.0.3",
    "ServiceEnableTagOverride": False,
    "ServiceID": "32a2a47f7992:nodea:5000",
    "ServiceName": "foobar",
    "ServiceKind": "",
    "ServicePort": 5000,
    "ServiceMeta": {"foobar_meta_value": "baz", "k-1": "x"},
    "ServiceWeights": {"Passing": 10, "Warning": 1},
    "ServiceTaggedAddresses": {"lan": {"Address": "172.17.0.3", "Port": 5000}},
    "ServiceTags": ["tacos", "primary"],
    "ServiceProxy": {},
    "ServiceConnect": {"Native": False},
}

# /v1/catalog/nodes element, /v1/health/state element, /v1/agent/members element,
# /v1/agent/services value.
NODE_DOC = {
    "ID": "n-1",
    "Node": "web-1",
    "Address": "10.0.0.1",
    "Datacenter": "dc1",
    "Meta": {"rack": "r1"},
}
CHECK_DOC = {
    "Node": "web-1",
    "CheckID": "mem",
    "Name": "Memory",
    "Status": "warning",
    "ServiceTags": ["a"],
}
MEMBER_DOC = {
    "Name": "server-1",
    "Addr": "10.0.0.9",
    "Port": 8301,
    "Tags": {"role": "consul", "dc": "dc1"},
    "Status": 1,
}
AGENT_SERVICE = {
    "ID": "web",
    "Service": "web",
    "Tags": ["v2"],
    "Port": 80,
    "Weights": {"Passing": 1, "Warning": 1},
}

SCORED = struct(Score=FLOAT, Names=list_of(STRING))

MATCHES = [
    # -- examples from Consul's filtering docs -----------------------------------------
    (CHECK_SERVICE_NODE, REDIS_ENTRY, 'Service.Meta.env == "prod"', True, "docs-service-meta"),
    (SERVICE_NODE, CATALOG_FOOBAR, '"primary" in ServiceTags', True, "docs-in-service-tags"),
    (
        CHECK_SERVICE_NODE,
        REDIS_ENTRY,
        'Checks.Status == "passing"',
        True,
        "docs-checks-any-passing",
    ),
    (SERVICE_NODE, CATALOG_FOOBAR, 'ServiceMeta["k-1"] == x', True, "docs-index-bare-value"),
    (SERVICE_NODE, CATALOG_FOOBAR, 'not (ServiceName matches "^web")', True, "docs-not-matches"),
    (CHECK_SERVICE_NODE, SIDECAR_ENTRY, "Service.Tags is empty", True, "docs-tags-empty"),
    (CHECK_SERVICE_NODE, REDIS_ENTRY, "Service.Tags is empty", False, "docs-tags-not-empty"),
    # -- equality and coercion ----------------------------------------------------------------
    (SERVICE_NODE, CATALOG_FOOBAR, "ServicePort == 5000", True, "int-equal"),
    (SERVICE_NODE, CATALOG_FOOBAR, 'ServicePort == "0x1388"', True, "int-hex-string"),
    (SERVICE_NODE, CATALOG_FOOBAR, "ServicePort != 5000", False, "int-not-equal"),
    (SERVICE_NODE, CATALOG_FOOBAR, "ServiceEnableTagOverride == false", True, "bool-false"),
    (SERVICE_NODE, CATALOG_FOOBAR, "ServiceEnableTagOverride == T", False, "bool-go-spelling"),
    (SERVICE_NODE, CATALOG_FOOBAR, "ServiceWeights.Passing == 10", True, "nested-struct-int"),
    (SERVICE_NODE, CATALOG_FOOBAR, "ServiceKind == ``", True, "empty-string-equal"),
    (SCORED, {"Score": 0.5}, "Score == 0.5", True, "float-equal"),
    (SCORED, {"Score": 1}, 'Score == "1e0"', True, "float-from-json-int"),
    # -- missing data reads as Go's zero value ---------------------------------------------------
    (SERVICE_NODE, {}, "ServicePort == 0", True, "missing-int-is-zero"),
    (SERVICE_NODE, {"ServiceName": None}, "ServiceName is empty", True, "null-string-is-empty"),
    (SERVICE_NODE, {}, "ServiceTags is empty", True, "missing-list-is-empty"),
    (SERVICE_NODE, {}, "ServiceProxy.Upstreams is empty", True, "missing-struct-holds-zeros"),
    (
        CHECK_SERVICE_NODE,
        REDIS_ENTRY,
        "Service.Proxy.DestinationServiceName is empty",
        True,
        "zero-member",
    ),
    (SERVICE_NODE, {"ServicePort": "5000"}, "ServicePort == 0", True, "wrong-json-type-is-zero"),
    (
        SERVICE_NODE,
        {"ServiceEnableTagOverride": 1},
        "ServiceEnableTagOverride == true",
        False,
        "int-is-not-bool",
    ),
    # -- maps: key presence, exact keys, missing keys ------------------------------------------------
    (CHECK_SERVICE_NODE, REDIS_ENTRY, "env in Node.Meta", True, "map-key-present"),
    (CHECK_SERVICE_NODE, REDIS_ENTRY, 'Node.Meta contains "ENV"', False, "map-keys-exact-case"),
    (CHECK_SERVICE_NODE, REDIS_ENTRY, '"rack" not in Node.Meta', True, "map-key-not-present"),
    (SERVICE_NODE, CATALOG_FOOBAR, 'ServiceMeta["K-1"] == x', False, "map-key-lookup-exact"),
    (SERVICE_NODE, CATALOG_FOOBAR, "ServiceMeta.nope == x", False, "missing-key-equal-false"),
    (SERVICE_NODE, CATALOG_FOOBAR, "ServiceMeta.nope != x", True, "missing-key-not-equal-true"),
    (SERVICE_NODE, CATALOG_FOOBAR, "ServiceMeta.nope is empty", True, "missing-key-is-empty"),
    (
        SERVICE_NODE,
        CATALOG_FOOBAR,
        "ServiceMeta.nope is not empty",
        False,
        "missing-key-not-empty-false",
    ),
    (SERVICE_NODE, CATALOG_FOOBAR, "x in ServiceMeta.nope", False, "missing-key-in-false"),
    (SERVICE_NODE, CATALOG_FOOBAR, "x not in ServiceMeta.nope", True, "missing-key-not-in-true"),
    (
        SERVICE_NODE,
        CATALOG_FOOBAR,
        "ServiceMeta.nope matches x",
        False,
        "missing-key-matches-false",
    ),
    (
        SERVICE_NODE,
        CATALOG_FOOBAR,
        "ServiceMeta.nope not matches x",
        True,
        "missing-key-not-matches-true",
    ),
    (CHECK_SERVICE_NODE, SIDECAR_ENTRY, "Node.Meta.rack != r1", True, "null-map-has-no-keys"),
    (
        SERVICE_NODE,
        CATALOG_FOOBAR,
        "ServiceTaggedAddresses.lan.Port == 5000",
        True,
        "map-of-struct",
    ),
    (
        SERVICE_NODE,
        CATALOG_FOOBAR,
        "ServiceTaggedAddresses.wan.Port == 0",
        False,
        "missing-key-before-member",
    ),
    (
        SERVICE_NODE,
        CATALOG_FOOBAR,
        "ServiceTaggedAddresses.wan.Port != 5000",
        True,
        "missing-key-decides-early",
    ),
    (SERVICE_NODE, CATALOG_FOOBAR, "lan in ServiceTaggedAddresses", True, "map-of-struct-key"),
    (SERVICE_NODE, CATALOG_FOOBAR, "ServiceMeta is not empty", True, "map-not-empty"),
    # -- lists of scalars: membership, exact --------------------------------------------------------
    (SERVICE_NODE, CATALOG_FOOBAR, '"taco" in ServiceTags', False, "list-membership-is-exact"),
    (SERVICE_NODE, CATALOG_FOOBAR, 'ServiceTags not contains "taco"', True, "list-not-contains"),
    (SCORED, {"Names": ["a", 1, None]}, '"1" in Names', False, "list-elements-type-checked"),
    # -- strings: substring, regex (unanchored RE2) --------------------------------------------------
    (SERVICE_NODE, CATALOG_FOOBAR, '"oba" in ServiceName', True, "string-substring"),
    (SERVICE_NODE, CATALOG_FOOBAR, 'ServiceName not contains "oba"', False, "string-not-contains"),
    (SERVICE_NODE, CATALOG_FOOBAR, 'ServiceName matches "oba"', True, "matches-is-unanchored"),
    (SERVICE_NODE, CATALOG_FOOBAR, 'ServiceName matches "^oba"', False, "matches-anchor"),
    (SERVICE_NODE, CATALOG_FOOBAR, 'ServiceName matches "(?i)^FOO"', True, "matches-flags"),
    (SERVICE_NODE, CATALOG_FOOBAR, "ServiceID matches `:\\d+$`", True, "matches-raw-backtick"),
    (SERVICE_NODE, CATALOG_FOOBAR, 'ServiceName not matches "bar$"', False, "not-matches"),
    (SERVICE_NODE, CATALOG_FOOBAR, "ServiceAddress is not empty", True, "string-not-empty"),
    # -- lists of structs: ANY element, operator applied per element ------------------------------------
    (CHECK_SERVICE_NODE, REDIS_ENTRY, 'Checks.Status == "warning"', False, "checks-none-warning"),
    (
        CHECK_SERVICE_NODE,
        REDIS_ENTRY,
        'Checks.Status != "passing"',
        True,
        "checks-some-not-passing",
    ),
    (
        CHECK_SERVICE_NODE,
        REDIS_ENTRY,
        'not Checks.Status == "critical"',
        False,
        "checks-not-any-critical",
    ),
    (CHECK_SERVICE_NODE, REDIS_ENTRY, '"crit" in Checks.Status', True, "checks-substring-any"),
    (CHECK_SERVICE_NODE, REDIS_ENTRY, '"primary" in Checks.ServiceTags', True, "checks-tags-any"),
    (
        CHECK_SERVICE_NODE,
        REDIS_ENTRY,
        '"primary" not in Checks.ServiceTags',
        True,
        "checks-not-in-per-element",
    ),
    (CHECK_SERVICE_NODE, REDIS_ENTRY, "Checks.Notes is empty", True, "checks-empty-member"),
    (CHECK_SERVICE_NODE, REDIS_ENTRY, 'Checks.Output matches "not live"', True, "checks-matches"),
    (
        CHECK_SERVICE_NODE,
        SIDECAR_ENTRY,
        'Checks.Status != "passing"',
        False,
        "no-checks-negated-false",
    ),
    (CHECK_SERVICE_NODE, SIDECAR_ENTRY, "Checks.Notes is empty", False, "no-checks-is-empty-false"),
    (CHECK_SERVICE_NODE, SIDECAR_ENTRY, "Checks is empty", True, "checks-list-empty"),
    (CHECK_SERVICE_NODE, REDIS_ENTRY, "Checks is not empty", True, "checks-list-not-empty"),
    (
        CHECK_SERVICE_NODE,
        SIDECAR_ENTRY,
        'Service.Proxy.Upstreams.DestinationName == "db"',
        True,
        "upstream-any",
    ),
    (
        CHECK_SERVICE_NODE,
        SIDECAR_ENTRY,
        'Service.Proxy.Upstreams.DestinationType == "service" and Service.Proxy.Upstreams.Datacenter == "dc2"',
        True,
        "each-match-picks-its-own-element",
    ),
    (
        CHECK_SERVICE_NODE,
        SIDECAR_ENTRY,
        "Service.Proxy.TransparentProxy.OutboundListenerPort == 15001",
        True,
        "tproxy",
    ),
    # -- boolean structure ---------------------------------------------------------------------------------
    (
        CHECK_SERVICE_NODE,
        REDIS_ENTRY,
        'Service.Service == redis and (Service.Port == 1 or "v1" in Service.Tags)',
        True,
        "and-or-parens",
    ),
    (CHECK_SERVICE_NODE, REDIS_ENTRY, "Service.Port == 1 or Service.Port == 2", False, "or-false"),
    (
        CHECK_SERVICE_NODE,
        REDIS_ENTRY,
        "not Service.Port == 1 and Service.Port == 8000",
        True,
        "not-and",
    ),
    # -- the other schemas -------------------------------------------------------------------------------------
    (NODE, NODE_DOC, 'Meta.rack == "r1" and Datacenter == dc1', True, "node"),
    (HEALTH_CHECK, CHECK_DOC, 'Status == warning and "a" in ServiceTags', True, "health-check"),
    (MEMBER, MEMBER_DOC, "Tags.role == consul and Status == 1 and Port == 8301", True, "member"),
    (
        NODE_SERVICE,
        AGENT_SERVICE,
        "Proxy.DestinationServiceName is empty and Weights.Passing == 1",
        True,
        "agent-svc",
    ),
]


@pytest.mark.parametrize(
    ("schema", "doc", "text", "expected"), [c[:4] for c in MATCHES], ids=[c[4] for c in MATCHES]
)
def test_filter_matches_like_go_bexpr(schema, doc, text: str, expected: bool) -> None:
    before = copy.deepcopy(doc)
    assert compile(parse(text), schema).match(doc) is expected
    assert doc == before


COMPILE_ERRORS = [
    (
        CHECK_SERVICE_NODE,
        "Service.Foo == 1",
        'Selector "Service.Foo" is not valid',
        "unknown-member",
    ),
    (
        CHECK_SERVICE_NODE,
        "Service.Foo.Bar == 1",
        'Selector "Service.Foo" is not valid',
        "names-failing-prefix",
    ),
    (
        SERVICE_NODE,
        "servicename == x",
        'Selector "servicename" is not valid',
        "member-names-case-sensitive",
    ),
    (
        SERVICE_NODE,
        "ServicePort.x == 1",
        'Selector "ServicePort.x" is not valid',
        "scalar-has-no-members",
    ),
    (
        SERVICE_NODE,
        "ServiceTags.x == 1",
        'Selector "ServiceTags.x" is not valid',
        "scalar-list-has-no-members",
    ),
    (
        SERVICE_NODE,
        'ServiceMeta["a b"].c == 1',
        'Selector "ServiceMeta[\\"a b\\"].c" is not valid',
        "shows-index",
    ),
    (
        SERVICE_NODE,
        "ServiceWeights == 1",
        'Invalid match operator "==" for selector "ServiceWeights"',
        "eq-struct",
    ),
    (SERVICE_NODE, "ServiceTags == x", "a list of string supports in, not in, is empty", "eq-list"),
    (SERVICE_NODE, "ServiceMeta == x", "a map of string supports in, not in", "eq-map"),
    (SERVICE_NODE, "ServicePort contains 1", "an int supports ==, !=", "contains-int"),
    (SERVICE_NODE, "ServiceTags matches x", 'Invalid match operator "matches"', "matches-list"),
    (SERVICE_NODE, "ServicePort matches x", 'Invalid match operator "matches"', "matches-int"),
    (SERVICE_NODE, "ServicePort is empty", 'Invalid match operator "is empty"', "empty-int"),
    (
        CHECK_SERVICE_NODE,
        "Checks contains x",
        "a list of struct supports is empty",
        "contains-struct-list",
    ),
    (
        SERVICE_NODE,
        'ServicePort == "abc"',
        'Failed to coerce value "abc" for selector "ServicePort"',
        "bad-int",
    ),
    (SERVICE_NODE, "ServicePort == 9223372036854775808", "out of range", "int-overflow"),
    (SERVICE_NODE, "ServicePort == 1.5", "not an integer", "float-for-int"),
    (SERVICE_NODE, "ServiceEnableTagOverride == yes", "not a boolean", "bad-bool"),
    (SCORED, "Score == abc", "not a number", "bad-float"),
    (
        SERVICE_NODE,
        'ServiceName matches "("',
        'Failed to compile regular expression "(": missing )',
        "bad-regex",
    ),
    (
        SERVICE_NODE,
        'ServiceMeta.x not matches "a**"',
        "bad repetition operator",
        "bad-regex-negated",
    ),
    (
        SERVICE_NODE,
        'ServiceName matches "(?<=a)b"',
        "Failed to compile regular expression",
        "no-lookbehind-in-re2",
    ),
]


@pytest.mark.parametrize(
    ("schema", "text", "fragment"),
    [c[:3] for c in COMPILE_ERRORS],
    ids=[c[3] for c in COMPILE_ERRORS],
)
def test_compile_rejects_what_go_bexpr_rejects(schema, text: str, fragment: str) -> None:
    with pytest.raises(FilterError) as caught:
        compile(parse(text), schema)
    message = str(caught.value)
    assert message.startswith("Failed to create boolean expression evaluator: ")
    assert fragment in message
    assert caught.value.selector


def test_filter_error_is_an_invalid_input() -> None:
    with pytest.raises(FilterError) as caught:
        parse("a ==")
    assert isinstance(caught.value, InvalidInput)
    assert isinstance(caught.value, TrellisError)
    assert caught.value.field == "filter"


def test_select_keeps_matching_documents_in_order() -> None:
    nodes = [
        {"Node": "a", "Meta": {"env": "prod"}},
        {"Node": "b"},
        {"Node": "c", "Meta": {"env": "prod"}},
    ]
    selected = compile(parse('Meta.env == "prod"'), NODE).select(nodes)
    assert [n["Node"] for n in selected] == ["a", "c"]


def test_filters_compare_by_expression_and_schema() -> None:
    text = '"primary" in ServiceTags'
    assert compile(parse(text), SERVICE_NODE) == compile(parse(text), SERVICE_NODE)


def test_compile_needs_a_document_schema() -> None:
    with pytest.raises(ValueError):
        compile(parse("a == 1"), STRING)
