"""Precedence (Consul's nine levels, namespaces included) and evaluation order."""

from __future__ import annotations

import pytest

from trellis.connect.intentions.model import Action, Intention
from trellis.connect.intentions.precedence import (
    LEVELS,
    count_exact,
    precedence,
    precedence_of,
    sort_key,
    sorted_intentions,
    with_precedence,
)


def ixn(source: str, destination: str) -> Intention:
    sns, sname = source.split("/")
    dns, dname = destination.split("/")
    return Intention(sns, sname, dns, dname, action=Action.ALLOW)


# --- the table: consul-connect.md §3.2, in every namespace shape ------------------------------
PRECEDENCE = {
    # the nine levels in the default namespace
    "9_exact_to_exact": ("default/web", "default/db", 9),
    "8_ns_wildcard_name_to_exact": ("default/*", "default/db", 8),
    "7_any_to_exact": ("*/*", "default/db", 7),
    "6_exact_to_ns_wildcard_name": ("default/web", "default/*", 6),
    "5_ns_wildcard_to_ns_wildcard": ("default/*", "default/*", 5),
    "4_any_to_ns_wildcard_name": ("*/*", "default/*", 4),
    "3_exact_to_any": ("default/web", "*/*", 3),
    "2_ns_wildcard_name_to_any": ("default/*", "*/*", 2),
    "1_any_to_any": ("*/*", "*/*", 1),
    # the same levels across namespaces: the namespace's name never matters, only its shape
    "9_across_namespaces": ("team-a/web", "team-b/db", 9),
    "8_other_namespace_wildcard_name": ("team-a/*", "team-b/db", 8),
    "7_any_to_other_namespace": ("*/*", "team-b/db", 7),
    "6_to_other_namespace_wildcard": ("team-a/web", "team-b/*", 6),
    "5_namespace_wildcards_both_sides": ("team-a/*", "team-b/*", 5),
    "4_any_to_other_namespace_wildcard": ("*/*", "team-b/*", 4),
    "3_other_namespace_to_any": ("team-a/web", "*/*", 3),
    "2_other_namespace_wildcard_to_any": ("team-a/*", "*/*", 2),
    # CE only ever shows four values: the namespace is always exact there
    "ce_web_to_db": ("default/web", "default/db", 9),
    "ce_any_service_to_db": ("default/*", "default/db", 8),
    "ce_web_to_any_service": ("default/web", "default/*", 6),
    "ce_any_to_any_service": ("default/*", "default/*", 5),
    # a wildcard namespace scores 0 whatever follows it (validation refuses */web)
    "wildcard_namespace_scores_zero_on_source": ("*/web", "default/db", 7),
    "wildcard_namespace_scores_zero_on_destination": ("default/web", "*/db", 3),
}


@pytest.mark.parametrize(("source", "destination", "expected"), list(PRECEDENCE.values()), ids=list(PRECEDENCE))
def test_precedence(source: str, destination: str, expected: int) -> None:
    sns, sname = source.split("/")
    dns, dname = destination.split("/")
    assert precedence(sns, sname, dns, dname) == expected
    assert precedence_of(ixn(source, destination)) == expected


def test_levels_table_is_consuls_nine_levels_most_specific_first() -> None:
    assert [level for _, _, level in LEVELS] == [9, 8, 7, 6, 5, 4, 3, 2, 1]
    assert LEVELS[0] == ("exact/exact", "exact/exact", 9)
    assert LEVELS[2] == ("*/*", "exact/exact", 7)
    assert LEVELS[3] == ("exact/exact", "exact/*", 6)


@pytest.mark.parametrize(
    ("ns", "name", "expected"),
    [("default", "web", 2), ("team-a", "*", 1), ("*", "*", 0), ("*", "web", 0)],
    ids=["exact", "namespace_wildcard_name", "any", "wildcard_namespace_exact_name"],
)
def test_count_exact(ns: str, name: str, expected: int) -> None:
    assert count_exact(ns, name) == expected


def test_destination_outweighs_source() -> None:
    # */* => default/db (7) is evaluated before default/web => default/* (6)
    assert precedence("*", "*", "default", "db") > precedence("default", "web", "default", "*")


# --- order: precedence descending, then SourceNS, SourceName, DestinationNS, DestinationName ---
ORDER = {
    "precedence_descending": (
        ["*/* -> */*", "default/web -> default/*", "default/web -> default/db"],
        ["default/web -> default/db", "default/web -> default/*", "*/* -> */*"],
    ),
    "ties_by_source_namespace_first": (
        ["team-b/api -> default/db", "team-a/web -> default/db"],
        ["team-a/web -> default/db", "team-b/api -> default/db"],
    ),
    "then_source_name": (
        ["default/web -> default/db", "default/api -> default/db"],
        ["default/api -> default/db", "default/web -> default/db"],
    ),
    "then_destination_namespace": (
        ["default/web -> team-b/db", "default/web -> team-a/db"],
        ["default/web -> team-a/db", "default/web -> team-b/db"],
    ),
    "then_destination_name": (
        ["default/web -> default/zed", "default/web -> default/api"],
        ["default/web -> default/api", "default/web -> default/zed"],
    ),
    "wildcard_sorts_before_letters_within_a_level": (
        ["default/web -> default/db", "*/* -> */*", "team-a/* -> default/db", "default/* -> default/db"],
        ["default/web -> default/db", "default/* -> default/db", "team-a/* -> default/db", "*/* -> */*"],
    ),
}


@pytest.mark.parametrize(("given", "expected"), list(ORDER.values()), ids=list(ORDER))
def test_sorted_intentions(given: list[str], expected: list[str]) -> None:
    intentions = [ixn(*text.split(" -> ")) for text in given]
    result = sorted_intentions(intentions)
    assert [f"{i.source_ns}/{i.source_name} -> {i.destination_ns}/{i.destination_name}" for i in result] == expected
    assert [i.destination for i in intentions] == [ixn(*t.split(" -> ")).destination for t in given]  # input unchanged


def test_sort_key_ignores_the_stored_precedence_field() -> None:
    stale = Intention("default", "web", "default", "db", action=Action.ALLOW, precedence=1)
    assert sort_key(stale)[0] == -9


@pytest.mark.parametrize(
    ("source", "destination", "expected"),
    [("default/web", "default/db", 9), ("*/*", "team-a/*", 4)],
    ids=["exact", "namespaced_wildcard"],
)
def test_with_precedence_stamps_the_field(source: str, destination: str, expected: int) -> None:
    stamped = with_precedence(ixn(source, destination))
    assert stamped.precedence == expected
    assert with_precedence(stamped) is stamped
