"""parse_id ∘ format_id is the identity on SPIFFE IDs (STYLE §6: every parser/formatter pair).

Names are arbitrary unicode (no lone surrogates, which have no UTF-8 form), with the
characters that need escaping in a path ('/', '%', ' ', '?', '#') drawn often.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trellis.connect import spiffe
from trellis.connect.spiffe import AgentID, InvalidSpiffeID, ServiceID, SigningID

_TRICKY = st.sampled_from(list("/% ?#@:;.~\\\t\n") + ["%2F", "%25", "..", "é", "名", "\u0000", "\ufffd"])
names = st.lists(st.one_of(_TRICKY, st.characters(exclude_categories=("Cs",))), min_size=1, max_size=16).map("".join)
trust_domains = st.from_regex(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", fullmatch=True).map(spiffe.trust_domain)
service_ids = st.builds(ServiceID, trust_domains, names, names, names)
agent_ids = st.builds(AgentID, trust_domains, names, names)
ids = st.one_of(service_ids, agent_ids, st.builds(SigningID, trust_domains))


def _path(*segments: str) -> str:
    return "".join("/" + quote(s, safe="") for s in segments)


@given(ids)
def test_parse_inverts_format(sid: spiffe.SpiffeID) -> None:
    assert spiffe.parse_id(spiffe.format_id(sid)) == sid


@given(ids)
def test_format_inverts_parse_on_formatted_uris(sid: spiffe.SpiffeID) -> None:
    uri = spiffe.format_id(sid)
    assert spiffe.format_id(spiffe.parse_id(uri)) == uri


@given(service_ids)
def test_formatted_service_uri_has_exactly_the_six_path_segments(sid: ServiceID) -> None:
    uri = sid.uri
    assert uri.startswith(f"spiffe://{sid.trust_domain}/ns/")
    assert uri.count("/") == 2 + 6
    assert "?" not in uri and "#" not in uri


@given(service_ids)
def test_default_partition_is_accepted_and_dropped(sid: ServiceID) -> None:
    path = _path("ns", sid.namespace, "dc", sid.datacenter, "svc", sid.service)
    uri = f"spiffe://{sid.trust_domain}/ap/default" + path
    assert spiffe.parse_id(uri) == sid


@given(service_ids, names.filter(lambda p: p != "default"))
def test_other_partitions_are_refused(sid: ServiceID, partition: str) -> None:
    uri = f"spiffe://{sid.trust_domain}" + _path("ap", partition, "ns", sid.namespace, "dc", sid.datacenter,
                                                  "svc", sid.service)
    with pytest.raises(InvalidSpiffeID, match="partition"):
        spiffe.parse_id(uri)


@given(ids, st.from_regex(r"[a-z][a-z0-9+.-]{0,10}", fullmatch=True).filter(lambda s: s != "spiffe"))
def test_wrong_scheme_is_refused(sid: spiffe.SpiffeID, scheme: str) -> None:
    uri = scheme + spiffe.format_id(sid)[len("spiffe"):]
    with pytest.raises(InvalidSpiffeID, match="scheme"):
        spiffe.parse_id(uri)


@given(ids, st.sampled_from("?#"), st.text("abcxyz019=&-_.", min_size=1, max_size=10))
def test_query_or_fragment_is_refused(sid: spiffe.SpiffeID, sep: str, tail: str) -> None:
    with pytest.raises(InvalidSpiffeID):
        spiffe.parse_id(spiffe.format_id(sid) + sep + tail)


_LABELS = st.sampled_from(["ns", "dc", "svc", "ap", "agent", "client", "id", "default"])
segments = st.one_of(_LABELS, names)


@st.composite
def unknown_paths(draw: st.DrawFn) -> list[str]:
    """Segment lists that are none of /ns/_/dc/_/svc/_, /ap/_/ns/..., /agent/client/dc/_/id/_."""
    segs = draw(st.lists(segments, min_size=1, max_size=10))
    if len(segs) == 8 and segs[0] == "ap" and segs[2] == "ns":
        segs = segs[2:] if segs[1] == "default" else segs
    is_service = len(segs) == 6 and (segs[0], segs[2], segs[4]) == ("ns", "dc", "svc")
    is_agent = len(segs) == 6 and segs[:2] == ["agent", "client"] and (segs[2], segs[4]) == ("dc", "id")
    if is_service or is_agent:
        segs = [*segs, draw(segments)]  # one segment too many
    return segs


@given(trust_domains, unknown_paths())
def test_unknown_paths_are_refused(td: str, segs: list[str]) -> None:
    with pytest.raises(InvalidSpiffeID):
        spiffe.parse_id(f"spiffe://{td}" + _path(*segs))
