"""Validation of service-resolver, service-router and service-splitter entries alone (pure).

Messages are Consul's (``agent/structs/config_entry_discoverychain.go`` and its CE
half), checked in Consul's order. What the entries mean together (protocols, subsets
named from elsewhere, loops) is chain.py's.

Rules:
1. Resolver: subset names are DNS labels (``^[a-z0-9]([a-z0-9-]*[a-z0-9])?$``, at most
   63); a subset ``Filter`` compiles as a ``?filter=`` expression over the
   ``/v1/health/service`` shape (trellis/filter, the evaluator the data planes use);
   ``DefaultSubset`` and every own subset a redirect or failover names exist;
   ``Redirect`` and ``Failover`` exclude each other; timeouts are >= 0; the load
   balancer policy is ``round_robin``, ``least_request``, ``ring_hash``, ``maglev`` or
   ``random`` and its sub-configs match it (hash policies only for ``ring_hash``/``maglev``).
2. Router: a route's path match is at most one of exact, prefix, regex; exact and
   prefix start with ``/``; regexes are RE2; each header (query parameter) match
   names one of Present, Exact, Prefix, Suffix, Regex (Present, Exact, Regex); methods
   are HTTP verbs without repeats; ``PrefixRewrite`` needs an exact or prefix path;
   ``RetryOn`` names Envoy retry conditions.
3. Splitter: at least one split; each weight in 0..100; no destination twice; the
   weights add up to exactly 100 (in hundredths, after normalize.py rounds them).
4. Peering, sameness groups, other partitions and locality-aware failover do not exist
   in trellis: they are refused (fields.py rule 4), with Consul CE's words where it has them.
5. Beyond Consul, refused because Envoy would refuse them later: negative route
   timeouts, a least-request ``ChoiceCount`` of 1, a ring minimum above the maximum
   or a ring above Envoy's 8M entries, a negative cookie TTL.
"""

from __future__ import annotations

import re
import struct

from trellis import filter as bexpr
from trellis.config.duration import format_duration
from trellis.config.entry import fields
from trellis.config.entry.errors import InvalidEntry
from trellis.config.entry.model_chain import (
    LoadBalancer,
    ServiceResolver,
    ServiceResolverFailover,
    ServiceResolverRedirect,
    ServiceRoute,
    ServiceRouter,
    ServiceSplitter,
)
from trellis.config.entry.normalize import scaled_weight

SUBSET_MAX = 63
_SUBSET = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
LB_POLICIES = ("", "round_robin", "least_request", "ring_hash", "maglev", "random")
HASH_FIELDS = ("header", "cookie", "query_parameter")
RETRY_ON = frozenset({"5xx", "gateway-error", "reset", "connect-failure", "envoy-ratelimited", "retriable-4xx",
                      "refused-stream", "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
                      "unavailable"})
RING_SIZE_MAX = 8_388_608  # Envoy's RingHashLbConfig.maximum_ring_size limit
_ENT = "requires Consul Enterprise"


def _name(name: str) -> None:
    if not name:
        raise InvalidEntry("Name", "Name is required")


# -- service-resolver ------------------------------------------------------------------------------
def validate_resolver(e: ServiceResolver) -> None:
    _name(e.name)
    for name, subset in sorted(e.subsets.items()):
        _subset(name, subset.filter)
    if e.default_subset and e.default_subset not in e.subsets:
        raise InvalidEntry("DefaultSubset", f'DefaultSubset "{e.default_subset}" is not a valid subset')
    if e.redirect is not None:
        _redirect(e, e.redirect)
    for key in sorted(e.failover):
        _failover(e, key, e.failover[key])
    for label, value in (("ConnectTimeout", e.connect_timeout), ("RequestTimeout", e.request_timeout)):
        if value < 0:
            raise InvalidEntry(label, f"Bad {label} '{format_duration(value)}', must be >= 0")
    if e.load_balancer is not None:
        _load_balancer(e.load_balancer)
    if e.prioritize_by_locality is not None and e.prioritize_by_locality.mode:
        raise InvalidEntry("PrioritizeByLocality", f"Prioritize-by-locality {_ENT}")


def _subset(name: str, filter_text: str) -> None:
    field = f"Subsets.{name}"
    if not name:
        raise InvalidEntry("Subsets", "Subset defined with empty name")
    if len(name) > SUBSET_MAX:
        raise InvalidEntry(field, f'Subset "{name}" is invalid: must be non-empty and 63 characters or fewer')
    if not _SUBSET.match(name):
        raise InvalidEntry(field, f'Subset "{name}" is invalid: must be 63 characters or fewer, begin or end with '
                                  "lower case alphanumeric characters, and contain lower case alphanumeric "
                                  "characters or '-' in between")
    if filter_text:
        try:
            bexpr.compile(bexpr.parse(filter_text), bexpr.CHECK_SERVICE_NODE)
        except bexpr.FilterError as exc:
            raise InvalidEntry(f"{field}.Filter", f'Filter for subset "{name}" is not a valid expression: '
                                                  f"{exc}") from None


def _own_subset(e: ServiceResolver, service: str, subset: str) -> bool:
    """Whether ``subset`` (of ``service``) is fine as far as this entry can tell."""
    return not subset or (service not in ("", e.name)) or subset in e.subsets


def _redirect(e: ServiceResolver, r: ServiceResolverRedirect) -> None:
    fields.partition("Redirect.Partition", r.partition, f"Redirect: Setting Partition {_ENT}")
    if r.sameness_group:
        raise InvalidEntry("Redirect.SamenessGroup", f"Redirect: Setting SamenessGroup {_ENT}")
    fields.namespace_name("Redirect.Namespace", r.namespace)
    if e.failover:
        raise InvalidEntry("Redirect", "Redirect and Failover cannot both be set")
    if not any((r.service, r.service_subset, r.namespace, r.partition, r.datacenter, r.peer)):
        raise InvalidEntry("Redirect", "Redirect is empty")
    if r.peer and r.service_subset:
        raise InvalidEntry("Redirect.Peer", "Redirect.Peer cannot be set with Redirect.ServiceSubset")
    if r.peer and r.partition:
        raise InvalidEntry("Redirect.Peer", "Redirect.Partition cannot be set with Redirect.Peer")
    if r.peer and r.datacenter:
        raise InvalidEntry("Redirect.Peer", "Redirect.Peer cannot be set with Redirect.Datacenter")
    if not r.service:
        for label, value in (("ServiceSubset", r.service_subset), ("Namespace", r.namespace),
                             ("Partition", r.partition), ("Peer", r.peer)):
            if value:
                raise InvalidEntry(f"Redirect.{label}", f"Redirect.{label} defined without Redirect.Service")
    elif not _own_subset(e, r.service, r.service_subset):
        raise InvalidEntry("Redirect.ServiceSubset", f'Redirect.ServiceSubset "{r.service_subset}" is not a valid '
                                                     f'subset of "{e.name}"')
    fields.no_peer("Redirect.Peer", r.peer)


def _failover(e: ServiceResolver, key: str, f: ServiceResolverFailover) -> None:
    at = f'Failover["{key}"]'
    bad = f"Bad {at}: "
    if f.sameness_group:
        raise InvalidEntry(f"{at}.SamenessGroup", f"{bad}Setting SamenessGroup {_ENT}")
    fields.namespace_name(f"{at}.Namespace", f.namespace)
    if key != "*" and key not in e.subsets:
        raise InvalidEntry(at, f"{bad}not a valid subset")
    if not any((f.service, f.service_subset, f.namespace, f.targets, f.datacenters)):
        raise InvalidEntry(at, f"{bad}one of Service, ServiceSubset, Namespace, Targets, SamenessGroup, or "
                               "Datacenters is required")
    if f.policy is not None and f.policy.mode:
        raise InvalidEntry(f"{at}.Policy", f"{bad}Setting failover policies {_ENT}")
    if f.policy is not None and f.policy.regions:
        raise InvalidEntry(f"{at}.Policy.Regions", f"{bad}Setting failover policy regions {_ENT}")
    if not _own_subset(e, f.service, f.service_subset):
        raise InvalidEntry(f"{at}.ServiceSubset", f'{bad}ServiceSubset "{f.service_subset}" is not a valid subset of '
                                                  f'"{f.service or e.name}"')
    for label, given in (("Datacenters", f.datacenters), ("ServiceSubset", f.service_subset),
                         ("Service", f.service)):
        if given and f.targets:
            raise InvalidEntry(f"{at}.Targets", f"{bad}Targets cannot be set with {label}")
    for i, t in enumerate(f.targets):
        where = f"{at}.Targets[{i}]"
        prefix = f"Bad {where}: "
        fields.partition(f"{where}.Partition", t.partition, f"{prefix}Setting Partition {_ENT}")
        fields.namespace_name(f"{where}.Namespace", t.namespace)
        for problem, message in ((t.peer and t.service_subset, "Peer cannot be set with ServiceSubset"),
                                 (t.peer and t.partition, "Partition cannot be set with Peer"),
                                 (t.peer and t.datacenter, "Peer cannot be set with Datacenter"),
                                 (t.partition and t.datacenter, "Partition cannot be set with Datacenter")):
            if problem:
                raise InvalidEntry(where, prefix + message)
        if not _own_subset(e, t.service, t.service_subset):
            raise InvalidEntry(f"{where}.ServiceSubset", f'{prefix}ServiceSubset "{t.service_subset}" is not a valid '
                                                         f'subset of "{e.name}"')
        fields.no_peer(f"{where}.Peer", t.peer)
    if any(not dc for dc in f.datacenters):
        raise InvalidEntry(f"{at}.Datacenters", f"Bad {at}.Datacenters: found empty datacenter")


def _load_balancer(lb: LoadBalancer) -> None:
    if lb.policy not in LB_POLICIES:
        raise InvalidEntry("LoadBalancer.Policy", f'Bad LoadBalancer policy: "{lb.policy}" is not supported')
    if lb.policy != "ring_hash" and lb.ring_hash_config is not None:
        raise InvalidEntry("LoadBalancer.RingHashConfig", "Bad LoadBalancer configuration. RingHashConfig specified "
                                                          f'for incompatible load balancing policy "{lb.policy}"')
    if lb.policy != "least_request" and lb.least_request_config is not None:
        raise InvalidEntry("LoadBalancer.LeastRequestConfig", "Bad LoadBalancer configuration. LeastRequestConfig "
                                                              "specified for incompatible load balancing policy "
                                                              f'"{lb.policy}"')
    if lb.policy not in ("ring_hash", "maglev") and lb.hash_policies:
        raise InvalidEntry("LoadBalancer.HashPolicies", "Bad LoadBalancer configuration: HashPolicies specified for "
                                                        f'non-hash-based Policy: "{lb.policy}"')
    _ring_and_choice(lb)
    for i, hp in enumerate(lb.hash_policies):
        at, bad = f"LoadBalancer.HashPolicies[{i}]", f"Bad LoadBalancer HashPolicy[{i}]: "
        if hp.field and hp.field not in HASH_FIELDS:
            raise InvalidEntry(f"{at}.Field", f'{bad}"{hp.field}" is not a supported field')
        if hp.source_ip and hp.field:
            raise InvalidEntry(at, f'{bad}A single hash policy cannot hash both a source address and a "{hp.field}"')
        if hp.source_ip and hp.field_value:
            raise InvalidEntry(at, f"{bad}A FieldValue cannot be specified when hashing SourceIP")
        if hp.field and not hp.field_value:
            raise InvalidEntry(f"{at}.FieldValue", f'{bad}Field "{hp.field}" was specified without a FieldValue')
        if hp.field_value and not hp.field:
            raise InvalidEntry(f"{at}.Field", f"{bad}FieldValue requires a Field to apply to")
        cc = hp.cookie_config
        if cc is not None:
            if hp.field != "cookie":
                raise InvalidEntry(f"{at}.CookieConfig", f'{bad}cookie_config provided for "{hp.field}"')
            if cc.session and cc.ttl != 0:
                raise InvalidEntry(f"{at}.CookieConfig", f"{bad}a session cookie cannot have an associated TTL")
            fields.non_negative(f"{at}.CookieConfig.TTL", cc.ttl)


def _ring_and_choice(lb: LoadBalancer) -> None:
    """Rule 5."""
    ring = lb.ring_hash_config
    if ring is not None:
        for label, value in (("MinimumRingSize", ring.minimum_ring_size), ("MaximumRingSize", ring.maximum_ring_size)):
            fields.non_negative(f"LoadBalancer.RingHashConfig.{label}", value, limit=RING_SIZE_MAX)
        if ring.minimum_ring_size and ring.maximum_ring_size and ring.minimum_ring_size > ring.maximum_ring_size:
            raise InvalidEntry("LoadBalancer.RingHashConfig", "LoadBalancer.RingHashConfig.MinimumRingSize must not "
                                                              "be greater than MaximumRingSize")
    least = lb.least_request_config
    if least is not None:
        fields.non_negative("LoadBalancer.LeastRequestConfig.ChoiceCount", least.choice_count,
                            limit=fields.UINT32_MAX)
        if least.choice_count == 1:
            raise InvalidEntry("LoadBalancer.LeastRequestConfig.ChoiceCount",
                               "LoadBalancer.LeastRequestConfig.ChoiceCount must be at least 2 (or 0 for Envoy's "
                               "default)")


# -- service-router ----------------------------------------------------------------------------------
def validate_router(e: ServiceRouter) -> None:
    _name(e.name)
    for i, route in enumerate(e.routes):
        _route(i, route)


def _route(i: int, route: ServiceRoute) -> None:
    at, r = f"Routes[{i}]", f"Route[{i}]"
    http = route.match.http if route.match is not None else None
    rewrite_ok = False
    if http is not None:
        m = f"{at}.Match.HTTP"
        for label, value in (("PathExact", http.path_exact), ("PathPrefix", http.path_prefix)):
            if value:
                rewrite_ok = True
                if not value.startswith("/"):
                    raise InvalidEntry(f"{m}.{label}", f'{r} {label} doesn\'t start with \'/\': "{value}"')
        if sum(map(bool, (http.path_exact, http.path_prefix, http.path_regex))) > 1:
            raise InvalidEntry(m, f"{r} should only contain at most one of PathExact, PathPrefix, or PathRegex")
        if http.path_regex:
            fields.regex(f"{m}.PathRegex", http.path_regex, f"{r} PathRegex")
        for j, hdr in enumerate(http.header):
            if not hdr.name:
                raise InvalidEntry(f"{m}.Header[{j}]", f"{r} Header[{j}] missing required Name field")
            if sum(map(bool, (hdr.present, hdr.exact, hdr.prefix, hdr.suffix, hdr.regex))) != 1:
                raise InvalidEntry(f"{m}.Header[{j}]", f"{r} Header[{j}] should only contain one of Present, Exact, "
                                                       "Prefix, Suffix, or Regex")
            if hdr.regex:
                fields.regex(f"{m}.Header[{j}].Regex", hdr.regex, f"{r} Header[{j}] Regex")
        for j, qp in enumerate(http.query_param):
            if not qp.name:
                raise InvalidEntry(f"{m}.QueryParam[{j}]", f"{r} QueryParam[{j}] missing required Name field")
            if sum(map(bool, (qp.present, qp.exact, qp.regex))) != 1:
                raise InvalidEntry(f"{m}.QueryParam[{j}]", f"{r} QueryParam[{j}] should only contain one of Present, "
                                                           "Exact, or Regex")
            if qp.regex:
                fields.regex(f"{m}.QueryParam[{j}].Regex", qp.regex, f"{r} QueryParam[{j}] Regex")
        seen: set[str] = set()
        for method in http.methods:
            if method not in fields.METHODS:
                raise InvalidEntry(f"{m}.Methods", f'{r} Methods contains an invalid method "{method}"')
            if method in seen:
                raise InvalidEntry(f"{m}.Methods", f'{r} Methods contains "{method}" more than once')
            seen.add(method)
    d = route.destination
    if d is None:
        return
    dest = f"{at}.Destination"
    if d.prefix_rewrite and not rewrite_ok:
        raise InvalidEntry(f"{dest}.PrefixRewrite", f"{r} cannot make use of PrefixRewrite without configuring "
                                                    "either PathExact or PathPrefix")
    for condition in d.retry_on:
        if condition not in RETRY_ON:
            raise InvalidEntry(f"{dest}.RetryOn", f'{r} contains an invalid retry condition: "{condition}"')
    fields.namespace_name(f"{dest}.Namespace", d.namespace)
    fields.partition(f"{dest}.Partition", d.partition, f"{dest}.Partition: Setting Partition {_ENT}")
    fields.non_negative(f"{dest}.RequestTimeout", d.request_timeout)
    fields.non_negative(f"{dest}.IdleTimeout", d.idle_timeout)
    fields.non_negative(f"{dest}.NumRetries", d.num_retries, limit=fields.UINT32_MAX)
    for code in d.retry_on_status_codes:
        fields.non_negative(f"{dest}.RetryOnStatusCodes", code, limit=fields.UINT32_MAX)
    for label, mods in (("RequestHeaders", d.request_headers), ("ResponseHeaders", d.response_headers)):
        problem = fields.header_modifiers_problem(mods, "http")
        if problem:
            raise InvalidEntry(f"{dest}.{label}", f"{dest}.{label}: {problem}")


# -- service-splitter --------------------------------------------------------------------------------
def validate_splitter(e: ServiceSplitter) -> None:
    _name(e.name)
    if not e.splits:
        raise InvalidEntry("Splits", "no splits configured")
    seen: set[tuple[str, str, str, str]] = set()
    for i, s in enumerate(e.splits):
        at = f"Splits[{i}]"
        if not 0 <= s.weight <= 100:
            raise InvalidEntry(f"{at}.Weight", f"{at}.Weight must be between 0 and 100, not {s.weight:g}")
        fields.namespace_name(f"{at}.Namespace", s.namespace)
        fields.partition(f"{at}.Partition", s.partition, f"{at}.Partition: Setting Partition {_ENT}")
        ident = (s.service or e.name, s.service_subset, s.namespace or e.namespace, s.partition or "default")
        if ident in seen:
            raise InvalidEntry(at, 'split destination occurs more than once: service="{}", subset="{}", '
                                   'namespace="{}", partition="{}"'.format(*ident))
        seen.add(ident)
        for label, mods in (("RequestHeaders", s.request_headers), ("ResponseHeaders", s.response_headers)):
            problem = fields.header_modifiers_problem(mods, "http")
            if problem:
                raise InvalidEntry(f"{at}.{label}", f"{at}.{label}: {problem}")
    total = sum(scaled_weight(s.weight) for s in e.splits)
    if total != 10_000:
        raise InvalidEntry("Splits", f"the sum of all split weights must be 100, not {_go_float32(total / 100)}")


def _go_float32(value: float) -> str:
    """Go's ``%f`` of a float32 (``float32(sum)/100``): six decimals of the float32 value."""
    f32 = struct.unpack("f", struct.pack("f", value))[0]
    return f"{f32:.6f}"
