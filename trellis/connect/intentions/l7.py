"""Does an HTTP request meet one L7 permission's criteria? (pure)

Envoy enforces Consul's L7 intentions with the RBAC HTTP filter (Consul
agent/xds/rbac.go ``convertPermission``); the built-in proxy and the tests decide with
this module, so both data planes agree with Envoy's matchers:

Rule 1: every criterion given must hold (AND); a permission with no criteria matches
everything (Envoy's ``any``; validation refuses an empty ``HTTP`` block before that).
Rule 2: ``path_exact`` / ``path_prefix`` are literal and case-sensitive; ``path_regex`` is
an RE2 *full* match. All three look at the path without its query string and fragment,
as Envoy's ``url_path`` PathMatcher does (``removeQueryAndFragment``).
Rule 3: ``methods``: the request's method, upper-cased, must be in the list when the
list is not empty.
Rule 4: headers are looked up case-insensitively; a header sent several times is
matched on its values joined with ``,`` (Envoy ``getAllOfHeaderAsString``). The pseudo
headers ``:method`` and ``:path`` read the request line, as in Envoy.
Rule 5: one header criterion uses the first set of exact, regex, prefix, suffix,
contains, present (Consul's order; validation allows only one). ``ignore_case``
applies to exact/prefix/suffix/contains and folds ASCII only, like Envoy's
StringMatcher. ``regex`` is an RE2 full match. ``invert`` negates the result when the
header is there. NOTE: an absent header matches only an inverted ``present``: an
inverted ``exact`` (or prefix, ...) does not match a request without the header
(Envoy ``HeaderUtility::matchHeaders``).
Rule 6: a pattern must pass ``validate_regex``: RE2 syntax, and a program size within
Envoy's default ``re2.max_program_size.error_level`` (100), so a pattern trellis accepts
is never NACKed by Envoy. ``match_http`` raises ``InvalidRegex`` for one RE2 refuses.
Each pattern is compiled once per process (a bounded ``lru_cache``: memoisation that no
caller can observe, so the functions stay pure). Text that is not UTF-8 is matched as
its raw bytes, as Envoy's RE2 sees it.
"""

from __future__ import annotations

import functools

import re2

from trellis.connect.intentions.model import HeaderMatch, HTTPMatch, HTTPRequest
from trellis.errors import InvalidInput

# Envoy's default for the runtime key re2.max_program_size.error_level (rule 6).
ENVOY_MAX_PROGRAM_SIZE = 100

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # refusals are reported as InvalidRegex, not on stderr
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


class InvalidRegex(InvalidInput):
    """A regular expression RE2 (or Envoy's program-size limit) refuses; names the pattern."""

    def __init__(self, pattern: str, reason: str) -> None:
        super().__init__("regex", pattern, reason, message=f"invalid regular expression {pattern!r}: {reason}")


def validate_regex(pattern: str, *, max_program_size: int | None = ENVOY_MAX_PROGRAM_SIZE) -> None:
    """Rule 6: return if ``pattern`` is usable, else raise ``InvalidRegex``. Pure."""
    compiled = _compile(pattern)
    if max_program_size is not None and compiled.programsize > max_program_size:
        raise InvalidRegex(
            pattern, f"RE2 program size {compiled.programsize} exceeds Envoy's limit of {max_program_size}"
        )


def match_http(http: HTTPMatch, request: HTTPRequest) -> bool:
    """Rule 1: whether ``request`` meets every criterion of ``http``. Pure; raises ``InvalidRegex``."""
    if http.methods and request.method.upper() not in http.methods:
        return False
    if (http.path_exact or http.path_prefix or http.path_regex) and not match_path(http, request.path):
        return False
    return all(match_header(header, request) for header in http.headers)


def match_path(http: HTTPMatch, path: str) -> bool:
    """Rule 2: the path criterion of ``http`` against a request path (query ignored). Pure."""
    path = strip_query(path)
    if http.path_exact:
        return path == http.path_exact
    if http.path_prefix:
        return path.startswith(http.path_prefix)
    if http.path_regex:
        return full_match(http.path_regex, path)
    return True


def match_header(header: HeaderMatch, request: HTTPRequest) -> bool:
    """Rules 4 and 5: one header criterion against the request. Pure; raises ``InvalidRegex``."""
    if not has_criterion(header):
        return True  # Consul drops such a matcher ("impossible situation"), invert and all
    value = header_value(request, header.name)
    if value is None:
        return header.present and header.invert
    return _match_value(header, value) != header.invert


def header_value(request: HTTPRequest, name: str) -> str | None:
    """Rule 4: the request's value for header ``name`` (values joined by ``,``), or None. Pure."""
    wanted = _ascii_lower(name)
    if wanted == ":method":
        return request.method
    if wanted == ":path":
        return request.path
    values = [value for key, value in request.headers if _ascii_lower(key) == wanted]
    return ",".join(values) if values else None


def has_criterion(header: HeaderMatch) -> bool:
    """Whether ``header`` sets any of present/exact/prefix/suffix/contains/regex. Pure."""
    return bool(header.present or header.exact or header.prefix or header.suffix or header.contains or header.regex)


def full_match(pattern: str, text: str) -> bool:
    """RE2 full-match of ``pattern`` against ``text``. Pure; raises ``InvalidRegex``.

    Text that is not valid UTF-8 (header bytes decoded with ``surrogateescape``, as aiohttp
    does) is matched as the raw bytes, which is what Envoy's RE2 sees.
    """
    compiled = _compile(pattern)
    try:
        return compiled.fullmatch(text) is not None
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape")
        return _compile_bytes(pattern).fullmatch(raw) is not None


def strip_query(path: str) -> str:
    """The path without its ``?query`` and ``#fragment``. Pure."""
    end = len(path)
    for mark in "?#":
        at = path.find(mark)
        if 0 <= at < end:
            end = at
    return path[:end]


def _match_value(header: HeaderMatch, value: str) -> bool:
    # Rule 5: Consul's order of the matchers.
    if header.exact:
        return _fold(value, header) == _fold(header.exact, header)
    if header.regex:
        return full_match(header.regex, value)
    if header.prefix:
        return _fold(value, header).startswith(_fold(header.prefix, header))
    if header.suffix:
        return _fold(value, header).endswith(_fold(header.suffix, header))
    if header.contains:
        return _fold(header.contains, header) in _fold(value, header)
    return header.present


def _fold(text: str, header: HeaderMatch) -> str:
    return _ascii_lower(text) if header.ignore_case else text


def _ascii_lower(text: str) -> str:
    return text.lower() if text.isascii() else text.translate(_ASCII_LOWER)


@functools.lru_cache(maxsize=256)
def _compile_bytes(pattern: str) -> re2._Regexp:
    return re2.compile(pattern.encode("utf-8"), options=_OPTIONS)  # _compile accepted it already


@functools.lru_cache(maxsize=4096)
def _compile(pattern: str) -> re2._Regexp:
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except (re2.error, UnicodeEncodeError, ValueError, TypeError) as exc:
        detail = exc.args[0] if exc.args else str(exc)
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise InvalidRegex(pattern, str(detail)) from None
