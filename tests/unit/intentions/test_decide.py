"""The decision: Consul's evaluation (consul-connect.md §3.4), run against the engine and the index.

One table drives both ``decide`` (over the destination's candidates, sorted) and
``IntentionIndex.decide``; they must agree with the expected answer and with each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from trellis.connect.intentions.decide import (
    ACL_DEFAULT_REASON,
    DEFAULT_POLICY_REASON,
    Default,
    decide,
    destination_matches,
    format_intention,
    select_default,
)
from trellis.connect.intentions.index import IntentionIndex
from trellis.connect.intentions.model import (
    Action,
    Decision,
    HeaderMatch,
    HTTPMatch,
    HTTPRequest,
    Intention,
    Permission,
)
from trellis.connect.intentions.precedence import sorted_intentions
from trellis.errors import InvalidInput

ACL_DENY = Default(False, ACL_DEFAULT_REASON)
ACL_ALLOW = Default(True, ACL_DEFAULT_REASON)
POLICY_ALLOW = Default(True, DEFAULT_POLICY_REASON)
POLICY_DENY = Default(False, DEFAULT_POLICY_REASON)


def _split(text: str) -> tuple[str, str]:
    ns, _, name = text.rpartition("/")
    return (ns or "default", name)


def _http(spec: dict[str, Any]) -> HTTPMatch:
    headers = tuple(
        HeaderMatch(
            name=h["Name"], present=h.get("Present", False), exact=h.get("Exact", ""), prefix=h.get("Prefix", ""),
            suffix=h.get("Suffix", ""), contains=h.get("Contains", ""), regex=h.get("Regex", ""),
            invert=h.get("Invert", False), ignore_case=h.get("IgnoreCase", False),
        )
        for h in spec.get("Header", [])
    )
    return HTTPMatch(
        path_exact=spec.get("PathExact", ""), path_prefix=spec.get("PathPrefix", ""),
        path_regex=spec.get("PathRegex", ""), headers=headers, methods=tuple(spec.get("Methods", [])),
    )


def L4(source: str, destination: str, action: str, legacy_id: str = "") -> Intention:
    """An L4 intention: ``ns/name`` (or ``name`` in default) on both sides."""
    return Intention(*_split(source), *_split(destination), action=Action(action), legacy_id=legacy_id)


def L7(source: str, destination: str, permissions: list[dict[str, Any]]) -> Intention:
    """An L7 intention; ``permissions`` as in a Consul ``service-intentions`` source."""
    perms = tuple(Permission(action=Action(p["Action"]), http=_http(p["HTTP"])) for p in permissions)
    return Intention(*_split(source), *_split(destination), permissions=perms)


def GET(path: str, *headers: tuple[str, str]) -> HTTPRequest:
    return HTTPRequest(path=path, method="GET", headers=tuple(headers))


def POST(path: str, *headers: tuple[str, str]) -> HTTPRequest:
    return HTTPRequest(path=path, method="POST", headers=tuple(headers))


ADMIN_THEN_API = [
    {"Action": "deny", "HTTP": {"PathPrefix": "/admin"}},
    {"Action": "allow", "HTTP": {"PathPrefix": "/"}},
]
API_ONLY = [{"Action": "allow", "HTTP": {"PathPrefix": "/api", "Methods": ["GET"]}}]


def l4(text: str) -> str:
    return f"Matched L4 intention: {text}"


def l7(text: str) -> str:
    return f"Matched L7 intention: {text}"


# Every case: intentions, source, destination, request, default, (allowed, reason, permission_index).
CASES: dict[str, tuple[list[Intention], str, str, HTTPRequest | None, Default, tuple[bool, str, int | None]]] = {
    # --- L4 basics ----------------------------------------------------------------------------------
    "exact_allow": (
        [L4("web", "db", "allow")], "web", "db", None, ACL_DENY,
        (True, l4("default/web => default/db (Precedence: 9, Action: ALLOW)"), None),
    ),
    "exact_deny_over_default_allow": (
        [L4("web", "db", "deny")], "web", "db", None, ACL_ALLOW,
        (False, l4("default/web => default/db (Precedence: 9, Action: DENY)"), None),
    ),
    "exact_source_beats_wildcard_source": (
        [L4("default/*", "db", "deny"), L4("web", "db", "allow")], "web", "db", None, ACL_DENY,
        (True, l4("default/web => default/db (Precedence: 9, Action: ALLOW)"), None),
    ),
    "wildcard_source_covers_the_others": (
        [L4("default/*", "db", "deny"), L4("web", "db", "allow")], "api", "db", None, ACL_ALLOW,
        (False, l4("default/* => default/db (Precedence: 8, Action: DENY)"), None),
    ),
    "exact_destination_outweighs_exact_source": (
        [L4("web", "default/*", "allow"), L4("*/*", "db", "deny")], "web", "db", None, ACL_ALLOW,
        (False, l4("*/* => default/db (Precedence: 7, Action: DENY)"), None),
    ),
    "first_match_decides_no_fall_through": (
        [L4("web", "db", "deny"), L4("*/*", "*/*", "allow")], "web", "db", None, ACL_ALLOW,
        (False, l4("default/web => default/db (Precedence: 9, Action: DENY)"), None),
    ),
    "any_to_any": (
        [L4("*/*", "*/*", "allow")], "team-z/x", "team-y/y", None, ACL_DENY,
        (True, l4("*/* => */* (Precedence: 1, Action: ALLOW)"), None),
    ),
    # --- namespaces: each adjacent pair of levels, and what a namespace does not cover ---------------
    "9_beats_8_in_a_namespace": (
        [L4("team-a/web", "default/db", "allow"), L4("team-a/*", "default/db", "deny")],
        "team-a/web", "default/db", None, ACL_DENY,
        (True, l4("team-a/web => default/db (Precedence: 9, Action: ALLOW)"), None),
    ),
    "8_covers_its_namespace": (
        [L4("team-a/web", "default/db", "allow"), L4("team-a/*", "default/db", "deny")],
        "team-a/api", "default/db", None, ACL_ALLOW,
        (False, l4("team-a/* => default/db (Precedence: 8, Action: DENY)"), None),
    ),
    "8_beats_7": (
        [L4("team-a/*", "default/db", "allow"), L4("*/*", "default/db", "deny")],
        "team-a/api", "default/db", None, ACL_DENY,
        (True, l4("team-a/* => default/db (Precedence: 8, Action: ALLOW)"), None),
    ),
    "7_covers_other_namespaces": (
        [L4("team-a/*", "default/db", "allow"), L4("*/*", "default/db", "deny")],
        "team-b/api", "default/db", None, ACL_ALLOW,
        (False, l4("*/* => default/db (Precedence: 7, Action: DENY)"), None),
    ),
    "7_beats_6": (
        [L4("*/*", "default/db", "deny"), L4("team-a/web", "default/*", "allow")],
        "team-a/web", "default/db", None, ACL_ALLOW,
        (False, l4("*/* => default/db (Precedence: 7, Action: DENY)"), None),
    ),
    "6_beats_5": (
        [L4("team-a/web", "team-b/*", "allow"), L4("team-a/*", "team-b/*", "deny")],
        "team-a/web", "team-b/db", None, ACL_DENY,
        (True, l4("team-a/web => team-b/* (Precedence: 6, Action: ALLOW)"), None),
    ),
    "5_covers_the_rest_of_its_namespace": (
        [L4("team-a/web", "team-b/*", "allow"), L4("team-a/*", "team-b/*", "deny")],
        "team-a/api", "team-b/db", None, ACL_ALLOW,
        (False, l4("team-a/* => team-b/* (Precedence: 5, Action: DENY)"), None),
    ),
    "5_beats_4": (
        [L4("team-a/*", "team-b/*", "allow"), L4("*/*", "team-b/*", "deny")],
        "team-a/api", "team-b/db", None, ACL_DENY,
        (True, l4("team-a/* => team-b/* (Precedence: 5, Action: ALLOW)"), None),
    ),
    "4_beats_3": (
        [L4("*/*", "default/*", "deny"), L4("team-a/web", "*/*", "allow")],
        "team-a/web", "default/db", None, ACL_ALLOW,
        (False, l4("*/* => default/* (Precedence: 4, Action: DENY)"), None),
    ),
    "3_where_4_does_not_cover_the_namespace": (
        [L4("*/*", "default/*", "deny"), L4("team-a/web", "*/*", "allow")],
        "team-a/web", "team-b/db", None, ACL_DENY,
        (True, l4("team-a/web => */* (Precedence: 3, Action: ALLOW)"), None),
    ),
    "3_beats_2": (
        [L4("team-a/web", "*/*", "allow"), L4("team-a/*", "*/*", "deny")],
        "team-a/web", "team-c/db", None, ACL_DENY,
        (True, l4("team-a/web => */* (Precedence: 3, Action: ALLOW)"), None),
    ),
    "2_beats_1": (
        [L4("team-a/*", "*/*", "allow"), L4("*/*", "*/*", "deny")],
        "team-a/api", "team-c/db", None, ACL_DENY,
        (True, l4("team-a/* => */* (Precedence: 2, Action: ALLOW)"), None),
    ),
    "1_covers_other_source_namespaces": (
        [L4("team-a/*", "*/*", "allow"), L4("*/*", "*/*", "deny")],
        "team-b/api", "team-c/db", None, ACL_ALLOW,
        (False, l4("*/* => */* (Precedence: 1, Action: DENY)"), None),
    ),
    "source_namespace_must_match": (
        [L4("team-a/web", "default/db", "allow")], "team-b/web", "default/db", None, ACL_DENY,
        (False, ACL_DEFAULT_REASON, None),
    ),
    "destination_namespace_must_match": (
        [L4("web", "team-a/db", "allow")], "web", "team-b/db", None, ACL_DENY,
        (False, ACL_DEFAULT_REASON, None),
    ),
    "namespace_wildcard_name_stays_in_its_namespace": (
        [L4("team-a/*", "default/db", "allow")], "team-b/web", "default/db", None, POLICY_DENY,
        (False, DEFAULT_POLICY_REASON, None),
    ),
    "destination_namespace_wildcard_stays_in_its_namespace": (
        [L4("web", "team-a/*", "allow")], "web", "team-b/db", None, POLICY_DENY,
        (False, DEFAULT_POLICY_REASON, None),
    ),
    # --- defaults ----------------------------------------------------------------------------------
    "no_intentions_acl_default_deny": ([], "web", "db", None, ACL_DENY, (False, ACL_DEFAULT_REASON, None)),
    "no_intentions_acl_default_allow": ([], "web", "db", None, ACL_ALLOW, (True, ACL_DEFAULT_REASON, None)),
    "no_match_default_policy_allow": (
        [L4("api", "db", "deny")], "web", "db", None, POLICY_ALLOW, (True, DEFAULT_POLICY_REASON, None),
    ),
    "no_match_default_policy_deny": (
        [L4("web", "cache", "allow")], "web", "db", None, POLICY_DENY, (False, DEFAULT_POLICY_REASON, None),
    ),
    "legacy_id_in_reason": (
        [L4("web", "db", "allow", legacy_id="8f1e7c6a-0b7e-4d2b-9d8e-1c2f3a4b5c6d")], "web", "db", None, ACL_DENY,
        (True, l4("default/web => default/db (ID: 8f1e7c6a-0b7e-4d2b-9d8e-1c2f3a4b5c6d, Precedence: 9, Action: ALLOW)"),
         None),
    ),
    # --- L7 without a request: /check, /authorize, TCP listeners ------------------------------------------
    "l7_is_deny_at_l4": (
        [L7("web", "db", API_ONLY)], "web", "db", None, ACL_ALLOW,
        (False, l7("default/web => default/db (Precedence: 9, Permissions: 1)"), None),
    ),
    "l7_of_allows_only_is_still_deny_at_l4": (
        [L7("web", "db", [{"Action": "allow", "HTTP": {"PathPrefix": "/"}}])], "web", "db", None, POLICY_ALLOW,
        (False, l7("default/web => default/db (Precedence: 9, Permissions: 1)"), None),
    ),
    "l7_hides_a_lower_l4_allow_at_l4": (
        [L7("team-a/web", "default/db", ADMIN_THEN_API), L4("team-a/*", "default/db", "allow")],
        "team-a/web", "default/db", None, ACL_ALLOW,
        (False, l7("team-a/web => default/db (Precedence: 9, Permissions: 2)"), None),
    ),
    "higher_l4_beats_lower_l7": (
        [L4("web", "db", "allow"), L7("default/*", "db", ADMIN_THEN_API)], "web", "db", None, ACL_DENY,
        (True, l4("default/web => default/db (Precedence: 9, Action: ALLOW)"), None),
    ),
    # --- L7 with a request: first permission wins, no fall-through ---------------------------------------
    "l7_first_permission_wins_deny": (
        [L7("web", "db", ADMIN_THEN_API)], "web", "db", GET("/admin/users"), ACL_ALLOW,
        (False, l7("default/web => default/db (Precedence: 9, Permissions: 2)") + ", permission 0", 0),
    ),
    "l7_second_permission_allows": (
        [L7("web", "db", ADMIN_THEN_API)], "web", "db", GET("/api/users"), ACL_DENY,
        (True, l7("default/web => default/db (Precedence: 9, Permissions: 2)") + ", permission 1", 1),
    ),
    "l7_order_of_permissions_matters": (
        [L7("web", "db", list(reversed(ADMIN_THEN_API)))], "web", "db", GET("/admin/users"), ACL_DENY,
        (True, l7("default/web => default/db (Precedence: 9, Permissions: 2)") + ", permission 0", 0),
    ),
    "l7_no_permission_matches_default_deny": (
        [L7("web", "db", API_ONLY)], "web", "db", GET("/other"), ACL_DENY,
        (False, l7("default/web => default/db (Precedence: 9, Permissions: 1)")
         + f", no permission matched: {ACL_DEFAULT_REASON}", None),
    ),
    "l7_no_permission_matches_default_allow": (
        [L7("web", "db", API_ONLY)], "web", "db", GET("/other"), POLICY_ALLOW,
        (True, l7("default/web => default/db (Precedence: 9, Permissions: 1)")
         + f", no permission matched: {DEFAULT_POLICY_REASON}", None),
    ),
    "l7_no_fall_through_to_lower_allow": (
        [L7("web", "db", API_ONLY), L4("default/*", "db", "allow"), L4("*/*", "*/*", "allow")],
        "web", "db", GET("/other"), ACL_DENY,
        (False, l7("default/web => default/db (Precedence: 9, Permissions: 1)")
         + f", no permission matched: {ACL_DEFAULT_REASON}", None),
    ),
    "l7_method_mismatch_uses_default": (
        [L7("web", "db", API_ONLY)], "web", "db", POST("/api/x"), ACL_DENY,
        (False, l7("default/web => default/db (Precedence: 9, Permissions: 1)")
         + f", no permission matched: {ACL_DEFAULT_REASON}", None),
    ),
    "l7_header_permission": (
        [L7("web", "db", [
            {"Action": "allow", "HTTP": {"Header": [{"Name": "x-env", "Exact": "prod", "IgnoreCase": True}]}},
        ])],
        "web", "db", GET("/", ("X-Env", "PROD")), ACL_DENY,
        (True, l7("default/web => default/db (Precedence: 9, Permissions: 1)") + ", permission 0", 0),
    ),
    "l7_inverted_header_denies_the_others": (
        [L7("web", "db", [
            {"Action": "deny", "HTTP": {"Header": [{"Name": "x-env", "Exact": "prod", "Invert": True}]}},
            {"Action": "allow", "HTTP": {"PathPrefix": "/"}},
        ])],
        "web", "db", GET("/", ("x-env", "dev")), ACL_ALLOW,
        (False, l7("default/web => default/db (Precedence: 9, Permissions: 2)") + ", permission 0", 0),
    ),
    "l7_regex_is_a_full_match": (
        [L7("web", "db", [{"Action": "allow", "HTTP": {"PathRegex": "/v[0-9]"}}])], "web", "db", GET("/v1/x"), ACL_DENY,
        (False, l7("default/web => default/db (Precedence: 9, Permissions: 1)")
         + f", no permission matched: {ACL_DEFAULT_REASON}", None),
    ),
    "l7_query_string_ignored_by_path": (
        [L7("web", "db", [{"Action": "allow", "HTTP": {"PathExact": "/health"}}])], "web", "db", GET("/health?v=1"),
        ACL_DENY, (True, l7("default/web => default/db (Precedence: 9, Permissions: 1)") + ", permission 0", 0),
    ),
    "l4_intention_ignores_the_request": (
        [L4("web", "db", "deny")], "web", "db", GET("/anything"), ACL_ALLOW,
        (False, l4("default/web => default/db (Precedence: 9, Action: DENY)"), None),
    ),
    "l7_exact_beats_wildcard_l4": (
        [L4("default/*", "db", "deny"), L7("web", "db", API_ONLY)], "web", "db", GET("/api/x"), ACL_DENY,
        (True, l7("default/web => default/db (Precedence: 9, Permissions: 1)") + ", permission 0", 0),
    ),
    "l7_wildcard_source_in_a_namespace": (
        [L7("team-a/*", "team-b/api", ADMIN_THEN_API)], "team-a/web", "team-b/api", GET("/admin"), ACL_ALLOW,
        (False, l7("team-a/* => team-b/api (Precedence: 8, Permissions: 2)") + ", permission 0", 0),
    ),
    "request_with_no_intention_gets_default": (
        [], "web", "db", GET("/"), POLICY_ALLOW, (True, DEFAULT_POLICY_REASON, None),
    ),
}

# --- all nine levels at once: drop the top k, level 9 - k decides ------------------------------------
NINE = [
    L4("team-a/web", "team-b/db", "allow"),  # 9
    L4("team-a/*", "team-b/db", "deny"),  # 8
    L4("*/*", "team-b/db", "allow"),  # 7
    L4("team-a/web", "team-b/*", "deny"),  # 6
    L4("team-a/*", "team-b/*", "allow"),  # 5
    L4("*/*", "team-b/*", "deny"),  # 4
    L4("team-a/web", "*/*", "allow"),  # 3
    L4("team-a/*", "*/*", "deny"),  # 2
    L4("*/*", "*/*", "allow"),  # 1
]
for _dropped in range(9):
    _top = NINE[_dropped]
    CASES[f"nine_levels_without_top_{_dropped}_level_{9 - _dropped}_decides"] = (
        NINE[_dropped:], "team-a/web", "team-b/db", None, Default(_top.action != Action.ALLOW, ACL_DEFAULT_REASON),
        (_top.action == Action.ALLOW, l4(format_intention(_top)), None),
    )


def via_engine(
    intentions: list[Intention], source: tuple[str, str], destination: tuple[str, str],
    request: HTTPRequest | None, default: Default,
) -> Decision:
    candidates = [ixn for ixn in sorted_intentions(intentions) if destination_matches(ixn, destination)]
    return decide(candidates, source, default=default, request=request)


def via_index(
    intentions: list[Intention], source: tuple[str, str], destination: tuple[str, str],
    request: HTTPRequest | None, default: Default,
) -> Decision:
    return IntentionIndex(intentions).decide(source, destination, default=default, request=request)


ENGINES = {"engine": via_engine, "index": via_index}


@pytest.mark.parametrize("engine", list(ENGINES.values()), ids=list(ENGINES))
@pytest.mark.parametrize(
    ("intentions", "source", "destination", "request_", "default", "expected"), list(CASES.values()), ids=list(CASES)
)
def test_decision(
    engine: Callable[..., Decision],
    intentions: list[Intention],
    source: str,
    destination: str,
    request_: HTTPRequest | None,
    default: Default,
    expected: tuple[bool, str, int | None],
) -> None:
    decision = engine(intentions, _split(source), _split(destination), request_, default)
    assert (decision.allowed, decision.reason, decision.permission_index) == expected
    assert (decision.intention is None) == (expected[1] in (ACL_DEFAULT_REASON, DEFAULT_POLICY_REASON))
    assert decision == via_engine(intentions, _split(source), _split(destination), request_, default)


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 40


def test_the_decision_names_the_intention_that_decided() -> None:
    intentions = [L4("web", "db", "allow"), L4("*/*", "*/*", "deny")]
    decision = via_engine(intentions, ("default", "web"), ("default", "db"), None, ACL_DENY)
    assert decision.intention == intentions[0]
    assert decision.describe() == {"allowed": True, "reason": decision.reason}


def test_order_given_does_not_matter_to_decide_when_candidates_are_sorted() -> None:
    intentions = [L4("default/*", "db", "deny"), L4("web", "db", "allow"), L4("*/*", "db", "deny")]
    forward = via_engine(intentions, ("default", "web"), ("default", "db"), None, ACL_DENY)
    backward = via_engine(intentions[::-1], ("default", "web"), ("default", "db"), None, ACL_DENY)
    assert forward == backward


# --- format_intention: Consul's Intention.String() ----------------------------------------------------
FORMAT = {
    "l4_allow": (L4("web", "db", "allow"), "default/web => default/db (Precedence: 9, Action: ALLOW)"),
    "l4_deny_wildcard": (L4("*/*", "db", "deny"), "*/* => default/db (Precedence: 7, Action: DENY)"),
    "namespaced": (L4("team-a/*", "team-b/*", "allow"), "team-a/* => team-b/* (Precedence: 5, Action: ALLOW)"),
    "legacy_id_first": (
        L4("web", "db", "allow", legacy_id="0b9e5a3c-1111-2222-3333-444455556666"),
        "default/web => default/db (ID: 0b9e5a3c-1111-2222-3333-444455556666, Precedence: 9, Action: ALLOW)",
    ),
    "l7_shows_permission_count": (
        L7("web", "db", ADMIN_THEN_API), "default/web => default/db (Precedence: 9, Permissions: 2)",
    ),
}


@pytest.mark.parametrize(("intention", "text"), list(FORMAT.values()), ids=list(FORMAT))
def test_format_intention(intention: Intention, text: str) -> None:
    assert format_intention(intention) == text


# --- the default ---------------------------------------------------------------------------------------
DEFAULTS = {
    "policy_allow_wins_over_acl_deny": ("allow", False, POLICY_ALLOW),
    "policy_deny_wins_over_acl_allow": ("deny", True, POLICY_DENY),
    "no_policy_acls_allow": ("", True, ACL_ALLOW),
    "no_policy_acls_deny": ("", False, ACL_DENY),
}


@pytest.mark.parametrize(("policy", "acl_allow", "expected"), list(DEFAULTS.values()), ids=list(DEFAULTS))
def test_select_default(policy: str, acl_allow: bool, expected: Default) -> None:
    assert select_default(policy, acl_allow) == expected


def test_select_default_refuses_other_policies() -> None:
    with pytest.raises(InvalidInput):
        select_default("maybe", True)


def test_default_decision_has_no_intention() -> None:
    assert POLICY_DENY.decision() == Decision(allowed=False, intention=None, reason="Default intention policy")
