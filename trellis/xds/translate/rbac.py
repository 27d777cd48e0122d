"""Intentions as Envoy RBAC rules, deciding exactly as the intentions engine does (pure).

The engine (connect/intentions/decide.py) walks the intentions for this destination in
evaluation order and lets the first one whose source matches decide; an L7 intention
then lets its first matching permission decide, and the default when none matches.
Envoy's RBAC has no order: a policy list matches when any policy does. The translation
(Consul agent/xds/rbac.go, reference/envoy-xds.md §2.3) turns one into the other:

Rule 1: the Envoy action is the opposite of the default. Default deny: an ALLOW list
(what is allowed); default allow: a DENY list. Call the Envoy action "wanted": a
policy must match exactly the (source, request) pairs the engine decides "wanted" for.
Rule 2: intentions are taken in evaluation order (precedence.py rule 3). One whose
source is covered by an earlier intention's source never decides and is dropped.
Rule 3: every other intention keeps its source AND NOT the sources of the earlier
intentions that overlap it and do not decide "wanted" outright (L4 of the default
action, or L7): a source those match is theirs to decide. Then an L4 intention whose
action is the default is dropped: the default does the same, and its carve-outs are
already attached to the later ones. A covered not-source is left out (its cover is there).
Rule 4: on a tcp listener there is no request, so an L7 intention is an L4 deny
(decide.py rule 4). On an HTTP listener, all intentions go to the HTTP filter, and an
L7 intention becomes its own policy: its principal, and the permissions whose action is
"wanted", each AND NOT the earlier permissions of the other action (first match wins
inside an intention too); a permission identical to an earlier one, or after one that
matches everything, never decides and is dropped. An L7 intention with no "wanted"
permission left is dropped: when nothing "wanted" matches, its answer is the default,
which is what no policy means.
Rule 5: policies are ``consul-intentions-layer4`` (permission ``any``, one principal per
L4 intention) and ``consul-intentions-layer7-<n>`` (one per L7 intention, n counting from
0 in evaluation order). No policy at all: ALLOW denies everything, DENY allows everything.
Rule 6: a source is matched on the peer certificate's URI SAN, with a RE2 regex
``^spiffe://<td>/ns/<ns>/dc/[^/]+/svc/<name>$``: any datacenter; a ``*`` namespace or name
is ``[^/]+``; names are percent-encoded as in SPIFFE IDs (connect/spiffe.py) and quoted.
Rule 7: a permission is the AND of its criteria, as l7.py evaluates them: path exact /
prefix / regex on ``url_path`` (query stripped); each header with exact, regex, prefix,
suffix, contains or present (the first one set, Consul's order), ``ignore_case`` and
``invert_match``; methods as a ``:method`` regex. NOTE: the methods regex is
case-insensitive because l7.py upper-cases the request's method before comparing;
Consul's is case-sensitive (``GET|PUT``). No criterion: ``any``.

Live enforcement on tcp (closing open connections a new deny covers; docs/proxy.md "Open
connections after a deny"). Envoy keeps an open connection on the filter chain, and so on
the RBAC config, it was accepted with; a changed chain is only drained, cutting every
connection on it, allowed ones too, after ``--drain-time-s``. So on a tcp public listener
whose ``local_app`` is an IP (``live_enforcement``) the decision is data, not config:
Rule 8: the network RBAC filter is the same for every set of intentions (only the trust
domain is in it): ``CONTINUOUS`` enforcement (decided again on every read from the
downstream), ALLOW, one policy ``consul-intentions-live`` whose CEL condition reads the
decision table from the ``trellis.intentions`` metadata of ``local_app``'s endpoint
(``xds.upstream_host_metadata``). Envoy updates an endpoint's metadata in place on an EDS
update, so an open connection sees the new table on its next read; the listener never
changes, so nothing is drained. A client that sends nothing is not checked until it does.
Rule 9: the table (``live_decisions``) is the engine's own verdict, with no request (an
L7 intention denies, decide.py rule 4), for each source shape the destination's
intentions name: ``sources[ns][name]`` for ``ns/name``, ``sources[ns]["*"]`` for any other
name in ``ns`` (decided as a source no exact intention names), ``sources["*"]["*"]`` for
everyone else. Segments are percent-encoded as in SPIFFE IDs; ``*`` is literal (a real
name would be ``%2A``). The condition checks the peer's URI SAN is a service identity of
the trust domain (rule 6's regex for ``*/*``; else ``default``, as an unmatched principal
gets it in rule 1), splits it on ``/`` and looks ``ns/name``, then ``ns/*``, then ``*/*``
up. A missing table (no endpoint metadata) makes the evaluation fail, and ALLOW denies.
NOTE: CEL comprehensions are disabled in Envoy, and ``matches`` with a pattern from data
compiles it on every read (~35 us each, measured), hence the map lookups; ``split`` needs
``cel_config`` string functions (in Envoy 1.40; older Envoys reject the field).
Rule 10: a terminating gateway's tcp linked service gets the same live filter when its
external instances are all IPs (``linked_live``): its clusters are EDS, and every endpoint
carries the linked service's table (its intentions, as its own public listener would
decide them), so an intention change cuts only the connections it denies, as on a
sidecar. Host-name instances need DNS clusters, which carry no EDS metadata: such a
service keeps its intentions in its filter chain, which a change replaces (and drains).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from envoy.config.core.v3 import cel_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from envoy.type.matcher.v3 import path_pb2, regex_pb2, string_pb2
from google.api.expr.v1alpha1 import syntax_pb2
from google.protobuf import struct_pb2

from trellis.connect.intentions.decide import Default, decide, destination_matches
from trellis.connect.intentions.l7 import has_criterion
from trellis.connect.intentions.model import WILDCARD, Action, HeaderMatch, HTTPMatch, Intention, Permission
from trellis.connect.intentions.precedence import sorted_intentions
from trellis.proxycfg.model import ConnectProxySnapshot, LinkedServiceSnapshot
from trellis.xds.translate import knobs

NETWORK_FILTER = "envoy.filters.network.rbac"
HTTP_FILTER = "envoy.filters.http.rbac"
STAT_PREFIX = "connect_authz"
L4_POLICY = "consul-intentions-layer4"
L7_POLICY = "consul-intentions-layer7-{}"
LIVE_POLICY = "consul-intentions-live"
LIVE_METADATA = "trellis.intentions"  # filter_metadata namespace on local_app's endpoint (rule 8)

Name = tuple[str, str]  # (namespace, name), either may be "*"

_ANY_SEGMENT = "[^/]+"
_QUOTE_META = set("\\.+*?()|[]{}^$")  # Go's regexp.QuoteMeta, as Consul quotes


@dataclass(frozen=True, slots=True)
class Rule:
    """One intention after rules 2-4: who it is for, and what it decides."""

    source: Name
    not_sources: tuple[Name, ...]
    action: Action | None  # None: L7, decided by ``permissions``
    permissions: tuple[Permission, ...] = ()


def covers(outer: Name, inner: Name) -> bool:
    """Whether every source ``inner`` matches is matched by ``outer``."""
    return outer[0] in (WILDCARD, inner[0]) and outer[1] in (WILDCARD, inner[1])


def overlaps(a: Name, b: Name) -> bool:
    """Whether some source is matched by both ``a`` and ``b``."""
    return (WILDCARD in (a[0], b[0]) or a[0] == b[0]) and (WILDCARD in (a[1], b[1]) or a[1] == b[1])


def wanted_action(default_allowed: bool) -> Action:
    """Rule 1: the action the RBAC policies express."""
    return Action.DENY if default_allowed else Action.ALLOW


def build_rules(snapshot: ConnectProxySnapshot, *, http: bool) -> rbac_pb2.RBAC:
    """Rules 1-7: the RBAC rules enforcing ``snapshot``'s intentions for its service."""
    wanted = wanted_action(snapshot.default.allowed)
    destination = (snapshot.namespace, snapshot.service)
    rules = reduce_intentions(
        (i for i in snapshot.intentions if destination_matches(i, destination)), wanted=wanted, http=http,
    )
    td = snapshot.trust_domain
    policies: dict[str, rbac_pb2.Policy] = {}
    l4 = [principal(td, r.source, r.not_sources) for r in rules if r.action is not None]
    if l4:
        policies[L4_POLICY] = rbac_pb2.Policy(permissions=[rbac_pb2.Permission(any=True)], principals=l4)
    for n, r in enumerate(r for r in rules if r.action is None):
        policies[L7_POLICY.format(n)] = rbac_pb2.Policy(
            permissions=permissions(r.permissions, wanted), principals=[principal(td, r.source, r.not_sources)],
        )
    action = rbac_pb2.RBAC.ALLOW if wanted == Action.ALLOW else rbac_pb2.RBAC.DENY
    return rbac_pb2.RBAC(action=action, policies=policies)


def build_network_filter(snapshot: ConnectProxySnapshot) -> network_rbac_pb2.RBAC:
    """The ``envoy.filters.network.rbac`` config of a tcp public listener (rule 4)."""
    return network_rbac_pb2.RBAC(rules=build_rules(snapshot, http=False), stat_prefix=STAT_PREFIX)


def local_app_address(snapshot: ConnectProxySnapshot) -> str:
    return snapshot.public.local_service_address or "127.0.0.1"


def live_enforcement(snapshot: ConnectProxySnapshot) -> bool:
    """Rule 8 applies: a tcp public listener whose ``local_app`` can be an EDS cluster (an IP:
    EDS addresses cannot be host names)."""
    return not knobs.is_http(snapshot.public.protocol) and knobs.is_ip(local_app_address(snapshot))


def linked_live(ls: LinkedServiceSnapshot) -> bool:
    """Rule 10: a terminating gateway's tcp linked service whose external instances are
    all IPs (its clusters can be EDS, so their hosts carry the decision table)."""
    return not knobs.is_http(ls.protocol) and all(knobs.is_ip(e.address) for e in ls.endpoints)


def live_decisions(snapshot: ConnectProxySnapshot) -> struct_pb2.Struct:
    """Rule 9: the decision table ``local_app``'s endpoint carries as metadata."""
    destination = (snapshot.namespace, snapshot.service)
    candidates = sorted_intentions(i for i in snapshot.intentions if destination_matches(i, destination))
    default = Default(snapshot.default.allowed, snapshot.default.reason)
    shapes = {(i.source_ns, i.source_name) for i in candidates} | {(WILDCARD, WILDCARD)}
    sources: dict[str, dict[str, bool]] = {}
    for ns, name in sorted(shapes):
        sources.setdefault(_key(ns), {})[_key(name)] = decide(candidates, (ns, name), default=default).allowed
    table = struct_pb2.Struct()
    table.update({"default": snapshot.default.allowed, "sources": sources})
    return table


def _key(part: str) -> str:
    return part if part == WILDCARD else quote(part, safe="")


def build_live_network_filter(snapshot: ConnectProxySnapshot) -> network_rbac_pb2.RBAC:
    """Rule 8: the same config whatever the intentions (only the trust domain is in it).
    Built once per trust domain and shared: callers must not modify it."""
    return _live_network_filter(snapshot.trust_domain)


@functools.lru_cache(maxsize=16)
def _live_network_filter(td: str) -> network_rbac_pb2.RBAC:
    policy = rbac_pb2.Policy(
        permissions=[rbac_pb2.Permission(any=True)], principals=[rbac_pb2.Principal(any=True)],
        condition=live_condition(td),
        cel_config=cel_pb2.CelExpressionConfig(enable_string_functions=True),
    )
    return network_rbac_pb2.RBAC(
        rules=rbac_pb2.RBAC(action=rbac_pb2.RBAC.ALLOW, policies={LIVE_POLICY: policy}),
        stat_prefix=STAT_PREFIX, enforcement_type=network_rbac_pb2.RBAC.CONTINUOUS,
    )


def live_condition(td: str) -> syntax_pb2.Expr:
    """Rule 9's lookup as a CEL AST (Envoy takes the parsed form, and has no variables)::

        uri = connection.uri_san_peer_certificate        # spiffe://<td>/ns/NS/dc/DC/svc/NAME
        p = uri.split("/")                               # ["spiffe:", "", td, "ns", NS, "dc", DC, "svc", NAME]
        t = xds.upstream_host_metadata.filter_metadata["trellis.intentions"].sources
        !uri.matches(spiffe_regex(td, ("*", "*"))) ? <metadata>.default
          : !(p[4] in t) ? t["*"]["*"]
          : p[8] in t[p[4]] ? t[p[4]][p[8]]
          : "*" in t[p[4]] ? t[p[4]]["*"]
          : t["*"]["*"]
    """
    c = _Cel()
    uri = c.select(c.ident("connection"), "uri_san_peer_certificate")
    meta = c.index(c.select(c.select(c.ident("xds"), "upstream_host_metadata"), "filter_metadata"),
                   c.const(LIVE_METADATA))
    table = c.index(meta, c.const("sources"))
    parts = c.call("split", c.const("/"), target=uri)
    ns, name = c.index(parts, c.const(4)), c.index(parts, c.const(8))
    anyone = c.index(c.index(table, c.const(WILDCARD)), c.const(WILDCARD))
    in_ns = c.index(table, ns)
    lookup = c.cond(c.call("!_", c.call("@in", ns, table)), anyone,
                    c.cond(c.call("@in", name, in_ns), c.index(in_ns, name),
                           c.cond(c.call("@in", c.const(WILDCARD), in_ns), c.index(in_ns, c.const(WILDCARD)), anyone)))
    service = c.call("matches", c.const(spiffe_regex(td, (WILDCARD, WILDCARD))), target=uri)
    return c.cond(c.call("!_", service), c.index(meta, c.const("default")), lookup)


class _Cel:
    """Builds ``google.api.expr.v1alpha1.Expr`` nodes, numbering them as a parser would."""

    def __init__(self) -> None:
        self._next = 0

    def _expr(self, **fields) -> syntax_pb2.Expr:
        self._next += 1
        return syntax_pb2.Expr(id=self._next, **fields)

    def ident(self, name: str) -> syntax_pb2.Expr:
        return self._expr(ident_expr=syntax_pb2.Expr.Ident(name=name))

    def select(self, operand: syntax_pb2.Expr, field: str) -> syntax_pb2.Expr:
        return self._expr(select_expr=syntax_pb2.Expr.Select(operand=operand, field=field))

    def const(self, value: str | int) -> syntax_pb2.Expr:
        if isinstance(value, str):
            return self._expr(const_expr=syntax_pb2.Constant(string_value=value))
        return self._expr(const_expr=syntax_pb2.Constant(int64_value=value))

    def call(self, function: str, *args: syntax_pb2.Expr, target: syntax_pb2.Expr | None = None) -> syntax_pb2.Expr:
        call = syntax_pb2.Expr.Call(function=function, args=list(args))
        if target is not None:
            call.target.CopyFrom(target)
        return self._expr(call_expr=call)

    def index(self, operand: syntax_pb2.Expr, key: syntax_pb2.Expr) -> syntax_pb2.Expr:
        return self.call("_[_]", operand, key)

    def cond(self, test: syntax_pb2.Expr, then: syntax_pb2.Expr, otherwise: syntax_pb2.Expr) -> syntax_pb2.Expr:
        return self.call("_?_:_", test, then, otherwise)


def deny_all_http_filter() -> http_rbac_pb2.RBAC:
    """The public HTTP listener's own RBAC: an allow-list with no policy (denies every
    request). Routes carry the real rules per route (routes.py), which take its place."""
    return http_rbac_pb2.RBAC(rules=rbac_pb2.RBAC(action=rbac_pb2.RBAC.ALLOW))


def build_http_filter(snapshot: ConnectProxySnapshot) -> http_rbac_pb2.RBAC:
    """The ``envoy.filters.http.rbac`` config of an HTTP public listener (rule 4)."""
    return http_rbac_pb2.RBAC(rules=build_rules(snapshot, http=True))


def reduce_intentions(intentions: Iterable[Intention], *, wanted: Action, http: bool) -> list[Rule]:
    """Rules 2-4: the intentions that need a policy, each with its carve-outs, in order."""
    kept: list[Rule] = []  # every intention that can decide, the default's own included
    for ixn in sorted_intentions(intentions):
        if any(covers(earlier.source, ixn.source) for earlier in kept):
            continue  # rule 2
        action = _action(ixn, http)
        carve = [e.source for e in kept if e.action != wanted and overlaps(e.source, ixn.source)]
        kept.append(Rule(ixn.source, _simplify(carve), action, ixn.permissions if action is None else ()))
    return [r for r in kept if r.action == wanted or (r.action is None and _wanted_permissions(r, wanted))]


def _action(ixn: Intention, http: bool) -> Action | None:
    """Rule 4: L7 intentions are denies where there is no request."""
    if not ixn.l7:
        return ixn.action
    return None if http else Action.DENY


def _simplify(sources: list[Name]) -> tuple[Name, ...]:
    """Rule 3: drop a not-source covered by another (the first of equal ones stays)."""
    out: list[Name] = []
    for i, s in enumerate(sources):
        if s in out:
            continue
        if any(j != i and t != s and covers(t, s) for j, t in enumerate(sources)):
            continue
        out.append(s)
    return tuple(out)


def _wanted_permissions(rule: Rule, wanted: Action) -> bool:
    return bool(reduce_permissions(rule.permissions, wanted))


def reduce_permissions(perms: Iterable[Permission], wanted: Action) -> list[tuple[HTTPMatch, tuple[HTTPMatch, ...]]]:
    """Rule 4 inside an L7 intention: each "wanted" permission with the earlier matches of
    the other action it must not meet, in order."""
    out: list[tuple[HTTPMatch, tuple[HTTPMatch, ...]]] = []
    others: list[HTTPMatch] = []
    seen: set[HTTPMatch] = set()
    for p in perms:
        if p.http in seen:
            continue
        seen.add(p.http)
        if p.action == wanted:
            out.append((p.http, tuple(others)))
        else:
            others.append(p.http)
        if matches_everything(p.http):
            break
    return out


def matches_everything(http: HTTPMatch) -> bool:
    """l7.py rule 1: a permission without criteria matches every request."""
    return not (http.methods or http.path_exact or http.path_prefix or http.path_regex
                or any(has_criterion(h) for h in http.headers))


# -- principals (rule 6) ----------------------------------------------------------------------
def principal(td: str, source: Name, not_sources: tuple[Name, ...] = ()) -> rbac_pb2.Principal:
    """Rule 6: ``source`` AND NOT each of ``not_sources``."""
    base = _spiffe_principal(td, source)
    if not not_sources:
        return base
    ids = [base] + [rbac_pb2.Principal(not_id=_spiffe_principal(td, n)) for n in not_sources]
    return rbac_pb2.Principal(and_ids=rbac_pb2.Principal.Set(ids=ids))


def spiffe_regex(td: str, source: Name) -> str:
    """Rule 6: the URI SAN pattern of a source."""
    ns, name = (_segment(part) for part in source)
    return f"^spiffe://{quote_meta(td)}/ns/{ns}/dc/{_ANY_SEGMENT}/svc/{name}$"


def quote_meta(text: str) -> str:
    """Go's ``regexp.QuoteMeta``: a backslash before each RE2 metacharacter."""
    return "".join("\\" + c if c in _QUOTE_META else c for c in text)


def _segment(part: str) -> str:
    return _ANY_SEGMENT if part == WILDCARD else quote_meta(quote(part, safe=""))


def _spiffe_principal(td: str, source: Name) -> rbac_pb2.Principal:
    matcher = string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=spiffe_regex(td, source)))
    return rbac_pb2.Principal(authenticated=rbac_pb2.Principal.Authenticated(principal_name=matcher))


# -- permissions (rule 7) ---------------------------------------------------------------------
def permissions(perms: Iterable[Permission], wanted: Action) -> list[rbac_pb2.Permission]:
    """Rule 4's permission list of one L7 intention."""
    out = []
    for match, unless in reduce_permissions(perms, wanted):
        rule = permission(match)
        if unless:
            head = list(rule.and_rules.rules) if rule.HasField("and_rules") else [rule]
            rule = rbac_pb2.Permission(and_rules=rbac_pb2.Permission.Set(
                rules=head + [rbac_pb2.Permission(not_rule=permission(u)) for u in unless]))
        out.append(rule)
    return out


def permission(http: HTTPMatch) -> rbac_pb2.Permission:
    """Rule 7: one HTTP match as an RBAC permission."""
    parts: list[rbac_pb2.Permission] = []
    path = _path(http)
    if path is not None:
        parts.append(rbac_pb2.Permission(url_path=path_pb2.PathMatcher(path=path)))
    parts += [rbac_pb2.Permission(header=header_matcher(h)) for h in http.headers if has_criterion(h)]
    if http.methods:
        parts.append(rbac_pb2.Permission(header=route_components_pb2.HeaderMatcher(
            name=":method", string_match=_regex("(?i)" + "|".join(quote_meta(m) for m in http.methods)))))
    if not parts:
        return rbac_pb2.Permission(any=True)
    if len(parts) == 1:
        return parts[0]
    return rbac_pb2.Permission(and_rules=rbac_pb2.Permission.Set(rules=parts))


def _path(http: HTTPMatch) -> string_pb2.StringMatcher | None:
    if http.path_exact:
        return string_pb2.StringMatcher(exact=http.path_exact)
    if http.path_prefix:
        return string_pb2.StringMatcher(prefix=http.path_prefix)
    if http.path_regex:
        return _regex(http.path_regex)
    return None


def header_matcher(h: HeaderMatch) -> route_components_pb2.HeaderMatcher:
    """Rule 7 (l7.py rule 5): the first criterion set, in Consul's order."""
    matcher = route_components_pb2.HeaderMatcher(name=h.name, invert_match=h.invert)
    if h.exact:
        matcher.string_match.CopyFrom(string_pb2.StringMatcher(exact=h.exact, ignore_case=h.ignore_case))
    elif h.regex:
        matcher.string_match.CopyFrom(_regex(h.regex))
    elif h.prefix:
        matcher.string_match.CopyFrom(string_pb2.StringMatcher(prefix=h.prefix, ignore_case=h.ignore_case))
    elif h.suffix:
        matcher.string_match.CopyFrom(string_pb2.StringMatcher(suffix=h.suffix, ignore_case=h.ignore_case))
    elif h.contains:
        matcher.string_match.CopyFrom(string_pb2.StringMatcher(contains=h.contains, ignore_case=h.ignore_case))
    else:
        matcher.present_match = True
    return matcher


def _regex(pattern: str) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=pattern))
