"""IntentionIndex: candidates, Consul's /match, listing order, and cached decisions."""

from __future__ import annotations

import pytest

from trellis.connect.intentions.decide import ACL_DEFAULT_REASON, Default
from trellis.connect.intentions.index import IntentionIndex, patterns
from trellis.connect.intentions.model import Action, HTTPMatch, HTTPRequest, Intention, Permission
from trellis.errors import InvalidInput

DENY = Default(False, ACL_DEFAULT_REASON)


def L4(text: str, action: str = "allow") -> Intention:
    """``"sns/sname => dns/dname"`` as an L4 intention."""
    source, destination = text.split(" => ")
    return Intention(*source.split("/"), *destination.split("/"), action=Action(action))


def names(intentions: tuple[Intention, ...]) -> list[str]:
    return [f"{i.source_ns}/{i.source_name} => {i.destination_ns}/{i.destination_name}" for i in intentions]


# A small mesh with every shape, given in no particular order.
MESH = [
    L4("*/* => */*", "deny"),
    L4("default/web => default/db"),
    L4("team-a/* => default/db"),
    L4("*/* => default/db", "deny"),
    L4("default/web => default/*"),
    L4("default/api => team-a/cache"),
    L4("team-a/web => team-a/*"),
    L4("default/* => team-a/cache"),
    L4("default/web => */*"),
]


# --- candidates / match by destination --------------------------------------------------------------
CANDIDATES = {
    "exact_destination_collects_every_covering_pattern": (
        ("default", "db"),
        [
            "default/web => default/db",
            "team-a/* => default/db",
            "*/* => default/db",
            "default/web => default/*",
            "default/web => */*",
            "*/* => */*",
        ],
    ),
    "other_service_in_default_namespace": (
        ("default", "search"),
        ["default/web => default/*", "default/web => */*", "*/* => */*"],
    ),
    "other_namespace": (
        ("team-a", "cache"),
        [
            "default/api => team-a/cache",
            "default/* => team-a/cache",
            "team-a/web => team-a/*",
            "default/web => */*",
            "*/* => */*",
        ],
    ),
    "unknown_namespace_gets_only_the_any_patterns": (("team-z", "x"), ["default/web => */*", "*/* => */*"]),
    "namespace_wildcard_query": (("default", "*"), ["default/web => default/*", "default/web => */*", "*/* => */*"]),
}


@pytest.mark.parametrize(("destination", "expected"), list(CANDIDATES.values()), ids=list(CANDIDATES))
def test_candidates_are_the_covering_intentions_in_order(destination: tuple[str, str], expected: list[str]) -> None:
    index = IntentionIndex(MESH)
    assert names(index.candidates(*destination)) == expected
    assert names(index.candidates(*destination)) == expected  # the cached answer is the same
    assert index.match("destination", *destination) == index.candidates(*destination)


# --- match by source -------------------------------------------------------------------------------
BY_SOURCE = {
    "exact_source": (
        ("default", "web"),
        [
            "default/web => default/db",
            "default/* => team-a/cache",
            "*/* => default/db",
            "default/web => default/*",
            "default/web => */*",
            "*/* => */*",
        ],
    ),
    "source_namespace_wildcard": (
        ("default", "api"),
        ["default/api => team-a/cache", "default/* => team-a/cache", "*/* => default/db", "*/* => */*"],
    ),
    "other_namespace": (
        ("team-a", "web"),
        ["team-a/* => default/db", "*/* => default/db", "team-a/web => team-a/*", "*/* => */*"],
    ),
}


@pytest.mark.parametrize(("source", "expected"), list(BY_SOURCE.values()), ids=list(BY_SOURCE))
def test_match_by_source(source: tuple[str, str], expected: list[str]) -> None:
    assert names(IntentionIndex(MESH).match("source", *source)) == expected


def test_match_refuses_other_by_with_consuls_text() -> None:
    with pytest.raises(InvalidInput) as info:
        IntentionIndex(MESH).match("sideways", "default", "web")
    assert str(info.value) == "'by' parameter must be one of 'source' or 'destination'"


def test_all_is_in_evaluation_order() -> None:
    index = IntentionIndex(MESH)
    assert names(index.all()) == [
        "default/api => team-a/cache",  # 9, source name api < web
        "default/web => default/db",  # 9
        "default/* => team-a/cache",  # 8, source namespace default < team-a
        "team-a/* => default/db",  # 8
        "*/* => default/db",  # 7
        "default/web => default/*",  # 6
        "team-a/web => team-a/*",  # 6
        "default/web => */*",  # 3
        "*/* => */*",  # 1
    ]
    assert len(index) == len(MESH)


def test_empty_index_decides_by_default() -> None:
    index = IntentionIndex()
    assert index.all() == () and len(index) == 0
    assert index.candidates("default", "db") == ()
    assert index.decide(("default", "web"), ("default", "db"), default=DENY) == DENY.decision()


# --- decisions --------------------------------------------------------------------------------------
DECIDE = {
    "exact_pair": (("default", "web"), ("default", "db"), "default/web => default/db"),
    "namespace_wildcard_source": (("team-a", "x"), ("default", "db"), "team-a/* => default/db"),
    "any_source_to_db": (("team-b", "x"), ("default", "db"), "*/* => default/db"),
    "destination_namespace_wildcard": (("default", "web"), ("default", "search"), "default/web => default/*"),
    "to_any": (("default", "web"), ("team-z", "x"), "default/web => */*"),
    "last_resort": (("team-z", "x"), ("team-y", "y"), "*/* => */*"),
}


@pytest.mark.parametrize(("source", "destination", "decider"), list(DECIDE.values()), ids=list(DECIDE))
def test_decide_picks_the_first_covering_intention(
    source: tuple[str, str], destination: tuple[str, str], decider: str
) -> None:
    index = IntentionIndex(MESH)
    decision = index.decide(source, destination, default=DENY)
    assert decision.intention is not None
    assert names((decision.intention,)) == [decider]
    assert index.all()[index.first_rank(source, destination)] is decision.intention


def test_first_rank_is_minus_one_without_a_match() -> None:
    assert IntentionIndex([L4("default/web => default/db")]).first_rank(("default", "api"), ("default", "db")) == -1


def test_decisions_without_request_are_built_once() -> None:
    index = IntentionIndex(MESH)
    first = index.decide(("default", "web"), ("default", "db"), default=DENY)
    again = index.decide(("default", "web"), ("default", "db"), default=Default(True, "other"))
    assert first is again  # an L4 decision does not depend on the default
    empty = IntentionIndex()
    assert empty.decide(("a", "b"), ("c", "d"), default=DENY) is empty.decide(("e", "f"), ("g", "h"), default=DENY)


def test_l7_decisions_with_a_request_are_not_shared_between_requests() -> None:
    permissions = (
        Permission(Action.DENY, HTTPMatch(path_prefix="/admin")),
        Permission(Action.ALLOW, HTTPMatch(path_prefix="/")),
    )
    index = IntentionIndex([Intention("default", "web", "default", "db", permissions=permissions)])
    source, destination = ("default", "web"), ("default", "db")
    admin = index.decide(source, destination, default=DENY, request=HTTPRequest("/admin", "GET"))
    other = index.decide(source, destination, default=DENY, request=HTTPRequest("/", "GET"))
    at_l4 = index.decide(source, destination, default=DENY)
    assert (admin.allowed, admin.permission_index) == (False, 0)
    assert (other.allowed, other.permission_index) == (True, 1)
    assert (at_l4.allowed, at_l4.permission_index) == (False, None)


def test_default_decisions_follow_the_default_given() -> None:
    index = IntentionIndex([L4("default/web => default/db")])
    allow = Default(True, "Default intention policy")
    assert index.decide(("default", "api"), ("default", "db"), default=allow).allowed is True
    assert index.decide(("default", "api"), ("default", "db"), default=DENY).allowed is False


def test_patterns_cover_a_name_four_ways() -> None:
    assert patterns("team-a", "web") == (("team-a", "web"), ("team-a", "*"), ("*", "web"), ("*", "*"))


def test_invalid_wildcard_namespace_with_name_still_agrees_with_the_scan() -> None:
    # */web is refused by validation; if it gets here anyway the index matches it as the scan does
    index = IntentionIndex([L4("*/web => default/db", "deny"), L4("default/* => default/db")])
    decision = index.decide(("default", "web"), ("default", "db"), default=DENY)
    assert decision.intention is not None and decision.intention.source_name == "*"  # precedence 8 beats 7
