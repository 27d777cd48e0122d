"""L7 criteria: paths, methods and headers, matched as Envoy's RBAC filter does."""

from __future__ import annotations

from typing import Any

import pytest

from trellis.connect.intentions import l7
from trellis.connect.intentions.l7 import InvalidRegex, match_http, validate_regex
from trellis.connect.intentions.model import HeaderMatch, HTTPMatch, HTTPRequest
from trellis.errors import InvalidInput

_HEADER_FIELDS = {
    "Name": "name", "Present": "present", "Exact": "exact", "Prefix": "prefix", "Suffix": "suffix",
    "Contains": "contains", "Regex": "regex", "Invert": "invert", "IgnoreCase": "ignore_case",
}


def http(spec: dict[str, Any]) -> HTTPMatch:
    """A permission's Consul-shaped ``HTTP`` block as the engine's value."""
    return HTTPMatch(
        path_exact=spec.get("PathExact", ""),
        path_prefix=spec.get("PathPrefix", ""),
        path_regex=spec.get("PathRegex", ""),
        headers=tuple(HeaderMatch(**{_HEADER_FIELDS[k]: v for k, v in h.items()}) for h in spec.get("Header", [])),
        methods=tuple(spec.get("Methods", [])),
    )


def req(method: str, path: str, *headers: tuple[str, str]) -> HTTPRequest:
    return HTTPRequest(path=path, method=method, headers=tuple(headers))


MATCH = {
    # rule 1: nothing to check matches everything
    "no_criteria_matches_anything": ({}, req("GET", "/x"), True),
    # rule 2: paths
    "path_exact": ({"PathExact": "/api"}, req("GET", "/api"), True),
    "path_exact_is_not_a_prefix": ({"PathExact": "/api"}, req("GET", "/api/v1"), False),
    "path_exact_is_case_sensitive": ({"PathExact": "/api"}, req("GET", "/API"), False),
    "path_exact_ignores_query": ({"PathExact": "/api"}, req("GET", "/api?x=1"), True),
    "path_exact_ignores_fragment": ({"PathExact": "/api"}, req("GET", "/api#top"), True),
    "path_prefix": ({"PathPrefix": "/api/"}, req("GET", "/api/v1/users"), True),
    "path_prefix_is_literal": ({"PathPrefix": "/api."}, req("GET", "/apix"), False),
    "path_prefix_mismatch": ({"PathPrefix": "/admin"}, req("GET", "/api"), False),
    "path_prefix_is_case_sensitive": ({"PathPrefix": "/Admin"}, req("GET", "/admin/x"), False),
    "path_regex_full_match": ({"PathRegex": "/api/v[0-9]+"}, req("GET", "/api/v12"), True),
    "path_regex_partial_match_is_no_match": ({"PathRegex": "/api/v[0-9]+"}, req("GET", "/api/v12/users"), False),
    "path_regex_needs_no_anchors_to_be_full": ({"PathRegex": "api"}, req("GET", "/api"), False),
    "path_regex_ignores_query": ({"PathRegex": "/u/[a-z]+"}, req("GET", "/u/bob?full=1"), True),
    # rule 3: methods
    "method_in_list": ({"Methods": ["GET", "HEAD"]}, req("HEAD", "/"), True),
    "method_not_in_list": ({"Methods": ["GET", "HEAD"]}, req("POST", "/"), False),
    "method_is_upper_cased": ({"Methods": ["DELETE"]}, req("delete", "/"), True),
    "empty_method_list_matches_any": ({"Methods": []}, req("PATCH", "/"), True),
    # rule 4/5: every header matcher
    "present": ({"Header": [{"Name": "x-debug", "Present": True}]}, req("GET", "/", ("x-debug", "")), True),
    "present_absent": ({"Header": [{"Name": "x-debug", "Present": True}]}, req("GET", "/"), False),
    "present_inverted_absent_matches": (
        {"Header": [{"Name": "x-debug", "Present": True, "Invert": True}]}, req("GET", "/"), True,
    ),
    "present_inverted_present_no_match": (
        {"Header": [{"Name": "x-debug", "Present": True, "Invert": True}]}, req("GET", "/", ("x-debug", "1")), False,
    ),
    "exact": ({"Header": [{"Name": "x-env", "Exact": "prod"}]}, req("GET", "/", ("x-env", "prod")), True),
    "exact_is_case_sensitive": (
        {"Header": [{"Name": "x-env", "Exact": "prod"}]}, req("GET", "/", ("x-env", "PROD")), False,
    ),
    "exact_ignore_case": (
        {"Header": [{"Name": "x-env", "Exact": "prod", "IgnoreCase": True}]}, req("GET", "/", ("x-env", "PrOd")), True,
    ),
    "exact_ignore_case_folds_ascii_only": (
        {"Header": [{"Name": "x-city", "Exact": "É", "IgnoreCase": True}]}, req("GET", "/", ("x-city", "é")), False,
    ),
    "exact_inverted": (
        {"Header": [{"Name": "x-env", "Exact": "prod", "Invert": True}]}, req("GET", "/", ("x-env", "dev")), True,
    ),
    "exact_inverted_same_value": (
        {"Header": [{"Name": "x-env", "Exact": "prod", "Invert": True}]}, req("GET", "/", ("x-env", "prod")), False,
    ),
    "exact_inverted_absent_header_does_not_match": (
        {"Header": [{"Name": "x-env", "Exact": "prod", "Invert": True}]}, req("GET", "/"), False,
    ),
    "exact_ignore_case_inverted": (
        {"Header": [{"Name": "x-env", "Exact": "prod", "IgnoreCase": True, "Invert": True}]},
        req("GET", "/", ("x-env", "PROD")),
        False,
    ),
    "prefix": ({"Header": [{"Name": "ua", "Prefix": "curl/"}]}, req("GET", "/", ("ua", "curl/8.1")), True),
    "prefix_case_sensitive": (
        {"Header": [{"Name": "ua", "Prefix": "curl/"}]}, req("GET", "/", ("ua", "Curl/8.1")), False,
    ),
    "prefix_ignore_case": (
        {"Header": [{"Name": "ua", "Prefix": "curl/", "IgnoreCase": True}]}, req("GET", "/", ("ua", "CURL/8")), True,
    ),
    "prefix_inverted": (
        {"Header": [{"Name": "ua", "Prefix": "curl/", "Invert": True}]}, req("GET", "/", ("ua", "wget")), True,
    ),
    "suffix": ({"Header": [{"Name": "host", "Suffix": ".internal"}]}, req("GET", "/", ("host", "db.internal")), True),
    "suffix_mismatch": (
        {"Header": [{"Name": "host", "Suffix": ".internal"}]}, req("GET", "/", ("host", "db.com")), False,
    ),
    "suffix_ignore_case": (
        {"Header": [{"Name": "host", "Suffix": ".internal", "IgnoreCase": True}]},
        req("GET", "/", ("host", "DB.INTERNAL")),
        True,
    ),
    "suffix_ignore_case_inverted": (
        {"Header": [{"Name": "host", "Suffix": ".internal", "IgnoreCase": True, "Invert": True}]},
        req("GET", "/", ("host", "DB.INTERNAL")),
        False,
    ),
    "contains": (
        {"Header": [{"Name": "accept", "Contains": "json"}]}, req("GET", "/", ("accept", "application/json")), True,
    ),
    "contains_case_sensitive": (
        {"Header": [{"Name": "accept", "Contains": "json"}]}, req("GET", "/", ("accept", "application/JSON")), False,
    ),
    "contains_ignore_case": (
        {"Header": [{"Name": "accept", "Contains": "json", "IgnoreCase": True}]},
        req("GET", "/", ("accept", "application/JSON")),
        True,
    ),
    "contains_inverted": (
        {"Header": [{"Name": "accept", "Contains": "json", "Invert": True}]},
        req("GET", "/", ("accept", "text/html")),
        True,
    ),
    "regex_full_match": ({"Header": [{"Name": "x-id", "Regex": "[0-9]{3}"}]}, req("GET", "/", ("x-id", "123")), True),
    "regex_partial_match_is_no_match": (
        {"Header": [{"Name": "x-id", "Regex": "[0-9]{3}"}]}, req("GET", "/", ("x-id", "1234")), False,
    ),
    "regex_inverted_matches_what_full_match_refuses": (
        {"Header": [{"Name": "x-id", "Regex": "[0-9]{3}", "Invert": True}]}, req("GET", "/", ("x-id", "1234")), True,
    ),
    # bytes that are not UTF-8 (aiohttp's surrogateescape) are matched raw, as Envoy's RE2 does:
    # \C is any byte, while . is any UTF-8 character and so not a lone 0xff
    "regex_any_byte_on_undecodable_header": (
        {"Header": [{"Name": "x-raw", "Regex": "a\\Cc"}]}, req("GET", "/", ("x-raw", "a\udcffc")), True,
    ),
    "regex_dot_is_not_an_invalid_byte": (
        {"Header": [{"Name": "x-raw", "Regex": "a.c"}]}, req("GET", "/", ("x-raw", "a\udcffc")), False,
    ),
    "regex_absent_header": ({"Header": [{"Name": "x-id", "Regex": ".*"}]}, req("GET", "/"), False),
    # rule 4: lookup
    "header_name_is_case_insensitive": (
        {"Header": [{"Name": "X-Env", "Exact": "prod"}]}, req("GET", "/", ("x-ENV", "prod")), True,
    ),
    "repeated_header_joined_with_comma": (
        {"Header": [{"Name": "x-tag", "Exact": "a,b"}]}, req("GET", "/", ("x-tag", "a"), ("x-tag", "b")), True,
    ),
    "repeated_header_not_matched_one_by_one": (
        {"Header": [{"Name": "x-tag", "Exact": "b"}]}, req("GET", "/", ("x-tag", "a"), ("x-tag", "b")), False,
    ),
    "pseudo_header_method": ({"Header": [{"Name": ":method", "Exact": "GET"}]}, req("GET", "/"), True),
    "pseudo_header_path_keeps_query": (
        {"Header": [{"Name": ":path", "Suffix": "?debug=1"}]}, req("GET", "/a?debug=1"), True,
    ),
    "matcher_without_criterion_is_ignored": ({"Header": [{"Name": "x-none", "Invert": True}]}, req("GET", "/"), True),
    # rule 1: AND of everything
    "all_criteria_hold": (
        {
            "PathPrefix": "/api",
            "Methods": ["POST"],
            "Header": [{"Name": "x-env", "Exact": "prod"}, {"Name": "x-b", "Present": True}],
        },
        req("POST", "/api/x", ("x-env", "prod"), ("x-b", "1")),
        True,
    ),
    "one_header_of_two_fails": (
        {
            "PathPrefix": "/api",
            "Methods": ["POST"],
            "Header": [{"Name": "x-env", "Exact": "prod"}, {"Name": "x-b", "Present": True}],
        },
        req("POST", "/api/x", ("x-env", "prod")),
        False,
    ),
    "method_fails_path_holds": ({"PathPrefix": "/api", "Methods": ["POST"]}, req("GET", "/api/x"), False),
    "path_fails_method_holds": ({"PathPrefix": "/api", "Methods": ["POST"]}, req("POST", "/other"), False),
}


@pytest.mark.parametrize(("spec", "request_", "expected"), list(MATCH.values()), ids=list(MATCH))
def test_match_http(spec: dict[str, Any], request_: HTTPRequest, expected: bool) -> None:
    assert match_http(http(spec), request_) is expected


# --- regex validation (RE2 syntax and Envoy's program-size limit) -----------------------------------
GOOD_PATTERNS = ["/api/v[0-9]+", "(?i)admin", "[^/]+", "a|b|c", "\\d{3}-\\d{4}", "é+"]


@pytest.mark.parametrize("pattern", GOOD_PATTERNS, ids=["path", "flags", "class", "alternation", "digits", "unicode"])
def test_validate_regex_accepts(pattern: str) -> None:
    validate_regex(pattern)


BAD_PATTERNS = {
    "unbalanced": ("a(", "missing )"),
    "lookbehind_is_not_re2": ("(?<=a)b", "invalid perl operator"),
    "backreference_is_not_re2": ("(a)\\1", "invalid escape"),
    "bad_repetition": ("a**", "bad repetition"),
    "too_big_for_envoy": ("[a-z]{1,50}@[a-z]+\\.com", "exceeds Envoy's limit of 100"),
}


@pytest.mark.parametrize(("pattern", "reason"), list(BAD_PATTERNS.values()), ids=list(BAD_PATTERNS))
def test_validate_regex_refuses_naming_the_pattern(pattern: str, reason: str) -> None:
    with pytest.raises(InvalidRegex) as info:
        validate_regex(pattern)
    assert repr(pattern) in str(info.value)
    assert reason in str(info.value)
    assert isinstance(info.value, InvalidInput)
    assert info.value.value == pattern


def test_program_size_limit_can_be_lifted() -> None:
    validate_regex("[a-z]{1,50}@[a-z]+\\.com", max_program_size=None)


def test_match_with_invalid_regex_raises() -> None:
    with pytest.raises(InvalidRegex):
        match_http(http({"PathRegex": "a("}), req("GET", "/a"))


def test_patterns_are_compiled_once() -> None:
    pattern = "/compiled-once/[0-9]+"
    before = l7._compile.cache_info()
    for _ in range(5):
        match_http(http({"PathRegex": pattern}), req("GET", "/compiled-once/1"))
    after = l7._compile.cache_info()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == 4


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/a", "/a"), ("/a?b=1", "/a"), ("/a#f", "/a"), ("/a#f?x", "/a"), ("/a?x#f", "/a"), ("", "")],
    ids=["plain", "query", "fragment", "fragment_first", "query_first", "empty"],
)
def test_strip_query(path: str, expected: str) -> None:
    assert l7.strip_query(path) == expected
