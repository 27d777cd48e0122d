"""Decoders fail only with InvalidInput, whatever JSON-like data they are given."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trellis.catalog.definition import build_registration, decode_check, decode_service, decode_service_file
from trellis.catalog.sidecar import PortPool
from trellis.config.agent_config import decode_agent_config, merge
from trellis.config.hcl import parse_text
from trellis.errors import InvalidInput

# Keys the decoders know (in several spellings) so generated data reaches deep levels.
KEYS = st.sampled_from([
    "Name", "name", "ID", "Port", "port", "Tags", "Meta", "Address", "Kind", "kind", "Check", "Checks", "checks",
    "Connect", "connect", "SidecarService", "sidecar_service", "Proxy", "proxy", "Upstreams", "upstreams",
    "DestinationName", "destination_name", "LocalBindPort", "local_bind_port", "Config", "Weights", "Passing",
    "Warning", "TaggedAddresses", "HTTP", "http", "Interval", "interval", "TTL", "ttl", "Status", "Args", "args",
    "AliasService", "TCP", "GRPC", "Header", "Expose", "Paths", "ListenerPort", "Path", "Protocol", "MeshGateway",
    "Mode", "Native", "Gateway", "SocketPath", "LocalServicePort", "DestinationServiceName", "Datacenter",
    "DestinationType", "CheckID", "Locality", "EnvoyExtensions", "AccessLogs", "Type", "OutputMaxSize",
    "DeregisterCriticalServiceAfter", "H2PING", "Namespace", "Token", "service", "services", "ports",
    "dns_config", "acl", "node_meta", "recursors", "zzz",
])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(),
    st.text(max_size=6),
    st.sampled_from(["web", "10s", "0.0.0.0", "::1", "10.0.0.1", "connect-proxy", "mesh-gateway", "passing", "*",
                     "http://x", "consul-x", "1x", ""]),
)
JSON_LIKE = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.one_of(KEYS, st.text(max_size=4)), inner, max_size=6)),
    max_leaves=30,
)
DOCUMENTS = st.dictionaries(KEYS, JSON_LIKE, max_size=8)
ROBUST = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)


def only_invalid_input(call: Any) -> Any:
    try:
        return call()
    except InvalidInput:
        return None


@ROBUST
@given(DOCUMENTS, st.sampled_from(["api", "config"]))
def test_service_and_check_decoding_raise_only_invalid_input(data: dict, origin: str) -> None:
    defn = only_invalid_input(lambda: decode_service(data, origin=origin))  # type: ignore[arg-type]
    if defn is not None:
        only_invalid_input(lambda: build_registration(defn, node="n", datacenter="dc1", sidecar_ports=PortPool()))
    only_invalid_input(lambda: decode_check(data, origin=origin, in_service=True))  # type: ignore[arg-type]
    only_invalid_input(lambda: decode_check(data, origin=origin, in_service=False))  # type: ignore[arg-type]
    only_invalid_input(lambda: decode_service_file({"services": [data]}))


@ROBUST
@given(JSON_LIKE)
def test_any_value_as_a_body_raises_only_invalid_input(data: Any) -> None:
    only_invalid_input(lambda: decode_service(data, origin="api"))
    only_invalid_input(lambda: decode_service_file(data))


@ROBUST
@given(DOCUMENTS)
def test_agent_config_decoding_raises_only_invalid_input(data: dict) -> None:
    only_invalid_input(lambda: merge([decode_agent_config(data, "fuzz.json")]))


@settings(max_examples=150, deadline=None)  # each HCL parse builds pyhcl's tables (~20 ms)
@given(st.text(max_size=60), st.sampled_from(["x.json", "x.hcl"]))
def test_any_text_parses_or_raises_invalid_input(text: str, filename: str) -> None:
    only_invalid_input(lambda: parse_text(text, filename=filename))


JSON_DOCS = st.dictionaries(
    st.text(max_size=5),
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5),
                           st.floats(allow_nan=False, allow_infinity=False)),
                 lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3)),
                 max_leaves=10),
    max_size=5,
)


@ROBUST
@given(JSON_DOCS)
def test_json_documents_parse_to_themselves(doc: dict) -> None:
    assert parse_text(json.dumps(doc), filename="doc.json") == doc
