"""SPIFFE IDs: format and parse (trellis.connect.spiffe), Consul's URI shapes."""

from __future__ import annotations

import pytest

from trellis.connect import spiffe
from trellis.connect.spiffe import AgentID, InvalidSpiffeID, ServiceID, SigningID
from trellis.errors import InvalidInput

TD = "11111111-2222-3333-4444-555555555555.consul"


# --- trust domain -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cluster_id", "expected"),
    [
        ("11111111-2222-3333-4444-555555555555", TD),
        ("ABCDEF00-2222-3333-4444-555555555555", "abcdef00-2222-3333-4444-555555555555.consul"),
    ],
    ids=["uuid", "upper_case_is_lowered"],
)
def test_trust_domain_is_cluster_id_dot_consul_lower_case(cluster_id: str, expected: str) -> None:
    assert spiffe.trust_domain(cluster_id) == expected


# --- format --------------------------------------------------------------------------------
FORMAT_CASES = {
    "service": (ServiceID(TD, "default", "dc1", "web"), f"spiffe://{TD}/ns/default/dc/dc1/svc/web"),
    "signing_has_no_path": (SigningID(TD), f"spiffe://{TD}"),
    "agent": (AgentID(TD, "dc1", "node-1"), f"spiffe://{TD}/agent/client/dc/dc1/id/node-1"),
    "slash_in_name_is_escaped": (ServiceID(TD, "default", "dc1", "a/b"), f"spiffe://{TD}/ns/default/dc/dc1/svc/a%2Fb"),
    "percent_and_space_are_escaped": (
        ServiceID(TD, "default", "dc1", "50% off"), f"spiffe://{TD}/ns/default/dc/dc1/svc/50%25%20off"
    ),
    "unicode_is_utf8_escaped": (ServiceID(TD, "default", "dc1", "é"), f"spiffe://{TD}/ns/default/dc/dc1/svc/%C3%A9"),
}


@pytest.mark.parametrize(("sid", "uri"), list(FORMAT_CASES.values()), ids=list(FORMAT_CASES))
def test_format_id(sid: spiffe.SpiffeID, uri: str) -> None:
    assert spiffe.format_id(sid) == uri
    assert sid.uri == uri


def test_service_uri_helper() -> None:
    assert spiffe.service_uri(TD, "default", "dc2", "api") == f"spiffe://{TD}/ns/default/dc/dc2/svc/api"


# --- parse: accepted -----------------------------------------------------------------------
PARSE_OK = {
    "service": (f"spiffe://{TD}/ns/default/dc/dc1/svc/web", ServiceID(TD, "default", "dc1", "web")),
    "signing_no_path": (f"spiffe://{TD}", SigningID(TD)),
    "signing_bare_slash": (f"spiffe://{TD}/", SigningID(TD)),
    "agent": (f"spiffe://{TD}/agent/client/dc/dc1/id/node-1", AgentID(TD, "dc1", "node-1")),
    "default_partition": (
        f"spiffe://{TD}/ap/default/ns/default/dc/dc1/svc/web", ServiceID(TD, "default", "dc1", "web")
    ),
    "percent_decoded": (f"spiffe://{TD}/ns/default/dc/dc1/svc/a%2Fb%20c", ServiceID(TD, "default", "dc1", "a/b c")),
    "lower_case_percent_escape": (f"spiffe://{TD}/ns/default/dc/dc1/svc/a%2fb", ServiceID(TD, "default", "dc1", "a/b")),
    "host_lowered": (
        "spiffe://ABC.CONSUL/ns/default/dc/dc1/svc/Web", ServiceID("abc.consul", "default", "dc1", "Web")
    ),
    "upper_case_scheme_as_go_url_parse": (
        f"SPIFFE://{TD}/ns/default/dc/dc1/svc/web", ServiceID(TD, "default", "dc1", "web")
    ),
    "other_namespace": (f"spiffe://{TD}/ns/team-a/dc/dc1/svc/web", ServiceID(TD, "team-a", "dc1", "web")),
}


@pytest.mark.parametrize(("uri", "expected"), list(PARSE_OK.values()), ids=list(PARSE_OK))
def test_parse_id_accepts(uri: str, expected: spiffe.SpiffeID) -> None:
    assert spiffe.parse_id(uri) == expected


# --- parse: refused ----------------------------------------------------------------------------
PARSE_BAD = {
    "https_scheme": (f"https://{TD}/ns/default/dc/dc1/svc/web", "scheme"),
    "no_scheme": (f"{TD}/ns/default/dc/dc1/svc/web", "scheme"),
    "empty": ("", "scheme"),
    "no_trust_domain": ("spiffe:///ns/default/dc/dc1/svc/web", "trust domain"),
    "query": (f"spiffe://{TD}/ns/default/dc/dc1/svc/web?x=1", "trust domain"),
    "fragment": (f"spiffe://{TD}/ns/default/dc/dc1/svc/web#frag", "trust domain"),
    "empty_query": (f"spiffe://{TD}/ns/default/dc/dc1/svc/web?", None),
    "empty_fragment": (f"spiffe://{TD}/ns/default/dc/dc1/svc/web#", None),
    "userinfo": (f"spiffe://user@{TD}/ns/default/dc/dc1/svc/web", "trust domain"),
    "other_partition": (f"spiffe://{TD}/ap/team/ns/default/dc/dc1/svc/web", "partition 'team'"),
    "empty_partition": (f"spiffe://{TD}/ap//ns/default/dc/dc1/svc/web", "partition"),
    "unknown_path": (f"spiffe://{TD}/foo/bar", "path"),
    "gateway_path": (f"spiffe://{TD}/gateway/mesh/dc/dc1", "path"),
    "server_agent_path": (f"spiffe://{TD}/agent/server/dc/dc1", "path"),
    "missing_service": (f"spiffe://{TD}/ns/default/dc/dc1/svc", "path"),
    "empty_service": (f"spiffe://{TD}/ns/default/dc/dc1/svc/", "path"),
    "empty_namespace": (f"spiffe://{TD}/ns//dc/dc1/svc/web", "path"),
    "empty_datacenter": (f"spiffe://{TD}/ns/default/dc//svc/web", "path"),
    "trailing_slash": (f"spiffe://{TD}/ns/default/dc/dc1/svc/web/", "path"),
    "double_slash": (f"spiffe://{TD}//ns/default/dc/dc1/svc/web", "path"),
    "swapped_labels": (f"spiffe://{TD}/dc/dc1/ns/default/svc/web", "path"),
    "extra_segments": (f"spiffe://{TD}/ns/default/dc/dc1/svc/web/extra", "path"),
    "agent_empty_node": (f"spiffe://{TD}/agent/client/dc/dc1/id/", "path"),
    "bad_ipv6_host": ("spiffe://[::1/ns/default/dc/dc1/svc/web", None),
    "port_in_trust_domain": (f"spiffe://{TD}:8443/ns/default/dc/dc1/svc/web", "no port"),
}


@pytest.mark.parametrize(("uri", "reason_has"), list(PARSE_BAD.values()), ids=list(PARSE_BAD))
def test_parse_id_refuses(uri: str, reason_has: str | None) -> None:
    with pytest.raises(InvalidSpiffeID) as err:
        spiffe.parse_id(uri)
    assert isinstance(err.value, InvalidInput)
    assert repr(uri) in str(err.value)
    assert "is not a valid Connect identifier" in str(err.value)
    if reason_has is not None:
        assert reason_has in err.value.reason


@pytest.mark.parametrize(
    "sid",
    [
        ServiceID(TD, "default", "dc1", "web"),
        ServiceID(TD, "default", "dc1", "a/b%c d"),
        SigningID(TD),
        AgentID(TD, "dc1", "node/1"),
    ],
    ids=["service", "service_escaped", "signing", "agent_escaped"],
)
def test_parse_inverts_format(sid: spiffe.SpiffeID) -> None:
    assert spiffe.parse_id(spiffe.format_id(sid)) == sid
