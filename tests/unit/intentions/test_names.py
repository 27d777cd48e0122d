"""Intention names: Consul's wildcard and required-name rules, and parsing ns/name arguments."""

from __future__ import annotations

import pytest

from trellis.connect.intentions.model import Action, Intention
from trellis.connect.intentions.names import (
    InvalidIntentionName,
    format_name,
    legacy_name_problems,
    name_problems,
    parse_name,
    validate_intention_names,
    validate_legacy_names,
    validate_name,
)
from trellis.errors import InvalidInput

# --- validate_name: accepted shapes -------------------------------------------------------------
VALID = {
    "exact": ("default", "web"),
    "namespaced_exact": ("team-a", "web"),
    "namespace_wildcard_name": ("team-a", "*"),
    "any": ("*", "*"),
    "dots_and_dashes": ("default", "web-v2.internal"),
}


@pytest.mark.parametrize(("ns", "name"), list(VALID.values()), ids=list(VALID))
def test_valid_names(ns: str, name: str) -> None:
    validate_name(ns, name)
    assert name_problems(ns, name) == ()


# --- validate_name: refused, with Consul's text ---------------------------------------------------
INVALID = {
    "partial_wildcard_name": ("default", "web*", "", "Name: wildcard character '*' cannot be used with partial values"),
    "wildcard_inside_name": ("default", "w*b", "", "Name: wildcard character '*' cannot be used with partial values"),
    "partial_wildcard_namespace": (
        "team-*", "*", "", "Namespace: wildcard character '*' cannot be used with partial values",
    ),
    "exact_name_in_wildcard_namespace": ("*", "web", "", "Name: exact value cannot follow wildcard namespace"),
    "empty_name": ("default", "", "", "Name is required"),
    "empty_namespace": ("", "web", "", "Namespace is required"),
    "source_prefix": ("*", "web", "Sources[0].", "Sources[0].Name: exact value cannot follow wildcard namespace"),
    "source_empty_name": ("default", "", "Sources[3].", "Sources[3].Name is required"),
}


@pytest.mark.parametrize(("ns", "name", "prefix", "message"), list(INVALID.values()), ids=list(INVALID))
def test_invalid_names(ns: str, name: str, prefix: str, message: str) -> None:
    with pytest.raises(InvalidIntentionName) as info:
        validate_name(ns, name, prefix=prefix)
    assert str(info.value) == message
    assert isinstance(info.value, InvalidInput)


def test_name_problems_lists_every_problem_first_is_consuls() -> None:
    assert name_problems("a*", "b*") == (
        "Namespace: wildcard character '*' cannot be used with partial values",
        "Name: wildcard character '*' cannot be used with partial values",
    )


def test_invalid_name_error_names_the_field_and_value() -> None:
    with pytest.raises(InvalidIntentionName) as info:
        validate_name("team-*", "*")
    assert (info.value.field, info.value.value) == ("Namespace", "team-*")


# --- a whole intention ------------------------------------------------------------------------------
INTENTIONS = {
    "destination_checked_first": (
        Intention("*", "web", "default", "db*", action=Action.ALLOW),
        "Name: wildcard character '*' cannot be used with partial values",
    ),
    "source_reported_as_sources_0": (
        Intention("*", "web", "default", "db", action=Action.ALLOW),
        "Sources[0].Name: exact value cannot follow wildcard namespace",
    ),
}


@pytest.mark.parametrize(("intention", "message"), list(INTENTIONS.values()), ids=list(INTENTIONS))
def test_validate_intention_names(intention: Intention, message: str) -> None:
    with pytest.raises(InvalidIntentionName) as info:
        validate_intention_names(intention)
    assert str(info.value) == message


def test_valid_intention_passes() -> None:
    validate_intention_names(Intention("team-a", "*", "default", "db", action=Action.DENY))


# --- legacy API wording: SourceNS / SourceName / DestinationNS / DestinationName ----------------------
LEGACY = {
    "valid": (("default", "web", "default", "db"), ()),
    "source_name_missing": (("default", "", "default", "db"), ("SourceName must be set",)),
    "partial_source_name": (
        ("default", "web*", "default", "db"),
        ("SourceName: wildcard character '*' cannot be used with partial values",),
    ),
    "exact_destination_in_wildcard_namespace": (
        ("default", "web", "*", "db"),
        ("DestinationName: exact value cannot follow wildcard namespace",),
    ),
    "every_problem_in_consuls_order": (
        ("", "w*", "d*", "db"),
        (
            "SourceNS must be set",
            "SourceName: wildcard character '*' cannot be used with partial values",
            "DestinationNS: wildcard character '*' cannot be used with partial values",
        ),
    ),
}


@pytest.mark.parametrize(("names", "problems"), list(LEGACY.values()), ids=list(LEGACY))
def test_legacy_name_problems(names: tuple[str, str, str, str], problems: tuple[str, ...]) -> None:
    intention = Intention(*names, action=Action.ALLOW)
    assert legacy_name_problems(intention) == problems
    if problems:
        with pytest.raises(InvalidIntentionName) as info:
            validate_legacy_names(intention)
        assert str(info.value) == problems[0]
    else:
        validate_legacy_names(intention)


# --- parse_name ---------------------------------------------------------------------------------------
PARSE_OK = {
    "name_takes_default_namespace": ("web", "default", ("default", "web")),
    "name_takes_given_default": ("web", "team-a", ("team-a", "web")),
    "namespace_and_name": ("team-a/web", "default", ("team-a", "web")),
    "default_partition": ("default/team-a/web", "default", ("team-a", "web")),
    "empty_partition": ("/team-a/web", "default", ("team-a", "web")),
    "empty_namespace_is_default": ("/web", "team-b", ("team-b", "web")),
    "wildcards_are_not_judged_here": ("*/*", "default", ("*", "*")),
    "partial_wildcard_is_not_judged_here": ("web*", "default", ("default", "web*")),
}


@pytest.mark.parametrize(("text", "default_ns", "expected"), list(PARSE_OK.values()), ids=list(PARSE_OK))
def test_parse_name(text: str, default_ns: str, expected: tuple[str, str]) -> None:
    assert parse_name(text, default_ns) == expected


PARSE_BAD = {
    "empty": ("", "service name is required"),
    "trailing_slash": ("team-a/", "service name is required"),
    "too_many_slashes": ("a/b/c/d", "input can contain at most two '/'"),
    "other_partition": ("part-1/default/web", 'partition "part-1" is not supported'),
    "peer": ("peer:other/web", "cannot specify a peer here"),
}


@pytest.mark.parametrize(("text", "message"), list(PARSE_BAD.values()), ids=list(PARSE_BAD))
def test_parse_name_refuses(text: str, message: str) -> None:
    with pytest.raises(InvalidIntentionName) as info:
        parse_name(text)
    assert str(info.value).startswith(message)


def test_format_name_is_read_back_by_parse_name() -> None:
    assert format_name("team-a", "web") == "team-a/web"
    assert parse_name(format_name("team-a", "*")) == ("team-a", "*")


def test_legacy_error_names_the_field_and_value() -> None:
    with pytest.raises(InvalidIntentionName) as info:
        validate_legacy_names(Intention("default", "web", "*", "db", action=Action.ALLOW))
    assert (info.value.field, info.value.value) == ("DestinationName", "db")
