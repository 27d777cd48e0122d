"""Intention decisions: invariants over random sets (STYLE §6: exact beats wildcard, order never matters).

Names come from small pools so that random intentions overlap and wildcards collide
with exact names often. The oracle is a plain linear scan over every intention in
evaluation order, written here from consul-connect.md §3.4, not taken from the engine.
"""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from trellis.connect.intentions.decide import Default, conclude, decide, destination_matches
from trellis.connect.intentions.index import IntentionIndex
from trellis.connect.intentions.model import (
    WILDCARD,
    Action,
    Decision,
    HeaderMatch,
    HTTPMatch,
    HTTPRequest,
    Intention,
    Permission,
)
from trellis.connect.intentions.names import format_name, parse_name
from trellis.connect.intentions.precedence import precedence_of, sorted_intentions

NAMESPACES = ["default", "team-a", "team-b"]
SERVICES = ["web", "api", "db", "cache"]

exact = st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(SERVICES))
side = st.one_of(
    exact,
    st.sampled_from(NAMESPACES).map(lambda ns: (ns, WILDCARD)),
    st.just((WILDCARD, WILDCARD)),
)
http_matches = st.sampled_from(
    [
        HTTPMatch(path_prefix="/"),
        HTTPMatch(path_prefix="/admin"),
        HTTPMatch(path_exact="/health"),
        HTTPMatch(path_regex="/api/v[0-9]+"),
        HTTPMatch(methods=("GET",)),
        HTTPMatch(headers=(HeaderMatch(name="x-env", exact="prod", ignore_case=True),)),
        HTTPMatch(headers=(HeaderMatch(name="x-env", present=True, invert=True),)),
    ]
)
permissions = st.lists(st.builds(Permission, st.sampled_from(Action), http_matches), min_size=1, max_size=3).map(tuple)
requests = st.one_of(
    st.none(),
    st.builds(
        HTTPRequest,
        path=st.sampled_from(["/", "/admin/x", "/health", "/health?x=1", "/api/v2", "/api/v2/x"]),
        method=st.sampled_from(["GET", "POST", "get"]),
        headers=st.sampled_from([(), (("x-env", "PROD"),), (("X-Env", "dev"),)]),
    ),
)
defaults = st.builds(
    Default, st.booleans(), st.sampled_from(["Default intention policy", "Default behavior configured by ACLs"])
)


@st.composite
def intentions(draw: st.DrawFn, sources: st.SearchStrategy = side, destinations: st.SearchStrategy = side) -> Intention:
    source, destination = draw(sources), draw(destinations)
    if draw(st.booleans()):
        return Intention(*source, *destination, action=draw(st.sampled_from(Action)))
    return Intention(*source, *destination, permissions=draw(permissions))


intention_sets = st.lists(intentions(), unique_by=lambda i: (i.source, i.destination), max_size=30)
queries = st.tuples(exact, exact, requests, defaults)


def linear_scan(
    all_intentions: list[Intention], source: tuple[str, str], destination: tuple[str, str],
    default: Default, request: HTTPRequest | None,
) -> Decision:
    """The oracle: walk every intention in evaluation order; the first covering both sides decides."""
    for ixn in sorted_intentions(all_intentions):
        covers_destination = ixn.destination_name in (destination[1], WILDCARD) and ixn.destination_ns in (
            destination[0], WILDCARD,
        )
        covers_source = ixn.source_name in (source[1], WILDCARD) and ixn.source_ns in (source[0], WILDCARD)
        if covers_destination and covers_source:
            return conclude(ixn, default=default, request=request)
    return default.decision()


@given(intention_sets, st.lists(queries, min_size=1, max_size=5))
def test_index_agrees_with_a_linear_scan(given: list[Intention], asked: list) -> None:
    index = IntentionIndex(given)
    for source, destination, request, default in asked:
        expected = linear_scan(given, source, destination, default, request)
        assert index.decide(source, destination, default=default, request=request) == expected
        candidates = index.candidates(*destination)
        assert decide(candidates, source, default=default, request=request) == expected


@given(intention_sets, st.data())
def test_order_given_never_matters(given: list[Intention], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(given))
    source, destination, request, default = data.draw(queries)
    one, other = IntentionIndex(given), IntentionIndex(shuffled)
    assert one.all() == other.all()
    assert one.decide(source, destination, default=default, request=request) == other.decide(
        source, destination, default=default, request=request
    )
    assert linear_scan(given, source, destination, default, request) == linear_scan(
        shuffled, source, destination, default, request
    )


@given(intention_sets, queries)
def test_the_deciding_intention_is_the_most_specific_that_covers_the_pair(given: list[Intention], query: tuple) -> None:
    source, destination, request, default = query
    decision = IntentionIndex(given).decide(source, destination, default=default, request=request)
    covering = [
        ixn for ixn in given
        if destination_matches(ixn, destination) and ixn.source_name in (source[1], WILDCARD)
        and ixn.source_ns in (source[0], WILDCARD)
    ]
    if not covering:
        assert decision == default.decision()
        return
    assert decision.intention is not None
    assert precedence_of(decision.intention) == max(precedence_of(ixn) for ixn in covering)


@given(intention_sets, exact, exact, st.sampled_from(Action), defaults)
def test_an_exact_pair_beats_every_wildcard(
    given: list[Intention], source: tuple[str, str], destination: tuple[str, str], action: Action, default: Default
) -> None:
    exact_pair = Intention(*source, *destination, action=action)
    rest = [ixn for ixn in given if (ixn.source, ixn.destination) != (source, destination)]
    decision = IntentionIndex([*rest, exact_pair]).decide(source, destination, default=default)
    assert decision.intention == exact_pair
    assert decision.allowed is (action == Action.ALLOW)


@given(intention_sets, queries, st.data())
def test_an_intention_for_an_unrelated_pair_changes_no_decision(
    given: list[Intention], query: tuple, data: st.DataObject
) -> None:
    # unrelated: exact on both sides, and not the pair asked about (another source, or another
    # destination, or both); wildcards are what relate an intention to other pairs
    source, destination, request, default = query
    unrelated = data.draw(intentions(sources=exact, destinations=exact))
    assume((unrelated.source, unrelated.destination) != (source, destination))
    assume(all((ixn.source, ixn.destination) != (unrelated.source, unrelated.destination) for ixn in given))
    before = IntentionIndex(given).decide(source, destination, default=default, request=request)
    after = IntentionIndex([*given, unrelated]).decide(source, destination, default=default, request=request)
    assert after == before


@given(intention_sets, exact)
def test_match_is_the_covering_intentions_in_order(given: list[Intention], target: tuple[str, str]) -> None:
    index = IntentionIndex(given)
    ordered = sorted_intentions(given)
    by_destination = [ixn for ixn in ordered if destination_matches(ixn, target)]
    by_source = [
        ixn for ixn in ordered if ixn.source_name in (target[1], WILDCARD) and ixn.source_ns in (target[0], WILDCARD)
    ]
    assert list(index.match("destination", *target)) == by_destination
    assert list(index.match("source", *target)) == by_source


segment = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/"), min_size=1, max_size=12)


@given(segment, segment)
def test_parse_name_inverts_format_name(ns: str, name: str) -> None:
    assume(not ns.startswith("peer:"))
    assert parse_name(format_name(ns, name)) == (ns, name)
