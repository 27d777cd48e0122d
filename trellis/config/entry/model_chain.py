"""The discovery-chain config-entry kinds as typed values: service-router,
service-splitter and service-resolver.

A service's chain is its router (first match wins, then an implicit catch-all to
the service), then splitters (weighted), then resolvers (which instances, where to
redirect or fail over); chain.py checks that the entries together form one.

Rules (model.py rules hold):
1. Field order and output shape are Consul's
   ``agent/structs/config_entry_discoverychain.go``; ``Routes`` and ``Splits`` print
   ``null`` when empty.
2. Resolver ``ConnectTimeout``/``RequestTimeout`` and route ``RequestTimeout``/
   ``IdleTimeout`` print as Go duration text (``"5s"``); a cookie ``TTL`` prints as
   nanoseconds, as Consul's JSON does.
3. ``Subsets`` and ``Failover`` are maps keyed by subset name (``*`` in ``Failover``:
   any subset); they print with sorted keys.
4. A split ``Weight`` is a percentage kept to two decimals (normalize.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from trellis.config.entry.codec import Duration, key
from trellis.config.entry.model import DEFAULT_NS, HTTPHeaderModifiers


# -- service-router ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ServiceRouteHTTPMatchHeader:
    name: str = key("Name", "", omitempty=False)
    present: bool = key("Present", False)
    exact: str = key("Exact", "")
    prefix: str = key("Prefix", "")
    suffix: str = key("Suffix", "")
    regex: str = key("Regex", "")
    invert: bool = key("Invert", False)


@dataclass(frozen=True, slots=True)
class ServiceRouteHTTPMatchQueryParam:
    name: str = key("Name", "", omitempty=False)
    present: bool = key("Present", False)
    exact: str = key("Exact", "")
    regex: str = key("Regex", "")


@dataclass(frozen=True, slots=True)
class ServiceRouteHTTPMatch:
    path_exact: str = key("PathExact", "", alias="path_exact")
    path_prefix: str = key("PathPrefix", "", alias="path_prefix")
    path_regex: str = key("PathRegex", "", alias="path_regex")
    case_insensitive: bool = key("CaseInsensitive", False, alias="case_insensitive")
    header: tuple[ServiceRouteHTTPMatchHeader, ...] = key("Header", ())
    query_param: tuple[ServiceRouteHTTPMatchQueryParam, ...] = key("QueryParam", (), alias="query_param")
    methods: tuple[str, ...] = key("Methods", ())


@dataclass(frozen=True, slots=True)
class ServiceRouteMatch:
    http: ServiceRouteHTTPMatch | None = key("HTTP", None)


@dataclass(frozen=True, slots=True)
class ServiceRouteDestination:
    service: str = key("Service", "")
    service_subset: str = key("ServiceSubset", "", alias="service_subset")
    namespace: str = key("Namespace", "")
    partition: str = key("Partition", "")
    prefix_rewrite: str = key("PrefixRewrite", "", alias="prefix_rewrite")
    request_timeout: Duration = key("RequestTimeout", 0.0, alias="request_timeout", duration="text")
    idle_timeout: Duration = key("IdleTimeout", 0.0, alias="idle_timeout", duration="text")
    num_retries: int = key("NumRetries", 0, alias="num_retries")
    retry_on_connect_failure: bool = key("RetryOnConnectFailure", False, alias="retry_on_connect_failure")
    retry_on: tuple[str, ...] = key("RetryOn", (), alias="retry_on")
    retry_on_status_codes: tuple[int, ...] = key("RetryOnStatusCodes", (), alias="retry_on_status_codes")
    request_headers: HTTPHeaderModifiers | None = key("RequestHeaders", None, alias="request_headers")
    response_headers: HTTPHeaderModifiers | None = key("ResponseHeaders", None, alias="response_headers")


@dataclass(frozen=True, slots=True)
class ServiceRoute:
    match: ServiceRouteMatch | None = key("Match", None)
    destination: ServiceRouteDestination | None = key("Destination", None)


@dataclass(frozen=True, slots=True)
class ServiceRouter:
    KIND: ClassVar[str] = "service-router"
    name: str = key("Name", "", omitempty=False)
    namespace: str = key("Namespace", DEFAULT_NS, omit_value=DEFAULT_NS)
    routes: tuple[ServiceRoute, ...] = key("Routes", (), omitempty=False)
    meta: dict[str, str] = key("Meta", factory=dict)


# -- service-splitter --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ServiceSplit:
    weight: float = key("Weight", 0.0, omitempty=False)
    service: str = key("Service", "")
    service_subset: str = key("ServiceSubset", "", alias="service_subset")
    namespace: str = key("Namespace", "")
    partition: str = key("Partition", "")
    request_headers: HTTPHeaderModifiers | None = key("RequestHeaders", None, alias="request_headers")
    response_headers: HTTPHeaderModifiers | None = key("ResponseHeaders", None, alias="response_headers")


@dataclass(frozen=True, slots=True)
class ServiceSplitter:
    KIND: ClassVar[str] = "service-splitter"
    name: str = key("Name", "", omitempty=False)
    namespace: str = key("Namespace", DEFAULT_NS, omit_value=DEFAULT_NS)
    splits: tuple[ServiceSplit, ...] = key("Splits", (), omitempty=False)
    meta: dict[str, str] = key("Meta", factory=dict)


# -- service-resolver --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ServiceResolverSubset:
    """Instances selected by a ``?filter=`` expression over the health-service shape."""

    filter: str = key("Filter", "")
    only_passing: bool = key("OnlyPassing", False, alias="only_passing")


@dataclass(frozen=True, slots=True)
class ServiceResolverRedirect:
    service: str = key("Service", "")
    service_subset: str = key("ServiceSubset", "", alias="service_subset")
    namespace: str = key("Namespace", "")
    partition: str = key("Partition", "")
    datacenter: str = key("Datacenter", "")
    peer: str = key("Peer", "")
    sameness_group: str = key("SamenessGroup", "", alias="sameness_group")


@dataclass(frozen=True, slots=True)
class ServiceResolverFailoverTarget:
    service: str = key("Service", "")
    service_subset: str = key("ServiceSubset", "", alias="service_subset")
    partition: str = key("Partition", "")
    namespace: str = key("Namespace", "")
    datacenter: str = key("Datacenter", "")
    peer: str = key("Peer", "")


@dataclass(frozen=True, slots=True)
class ServiceResolverFailoverPolicy:
    mode: str = key("Mode", "")
    regions: tuple[str, ...] = key("Regions", ())


@dataclass(frozen=True, slots=True)
class ServiceResolverFailover:
    service: str = key("Service", "")
    service_subset: str = key("ServiceSubset", "", alias="service_subset")
    namespace: str = key("Namespace", "")
    datacenters: tuple[str, ...] = key("Datacenters", ())
    targets: tuple[ServiceResolverFailoverTarget, ...] = key("Targets", ())
    policy: ServiceResolverFailoverPolicy | None = key("Policy", None)
    sameness_group: str = key("SamenessGroup", "", alias="sameness_group")


@dataclass(frozen=True, slots=True)
class ServiceResolverPrioritizeByLocality:
    mode: str = key("Mode", "")


@dataclass(frozen=True, slots=True)
class RingHashConfig:
    minimum_ring_size: int = key("MinimumRingSize", 0, alias="minimum_ring_size")
    maximum_ring_size: int = key("MaximumRingSize", 0, alias="maximum_ring_size")


@dataclass(frozen=True, slots=True)
class LeastRequestConfig:
    choice_count: int = key("ChoiceCount", 0, alias="choice_count")


@dataclass(frozen=True, slots=True)
class CookieConfig:
    session: bool = key("Session", False)
    ttl: Duration = key("TTL", 0.0)
    path: str = key("Path", "")


@dataclass(frozen=True, slots=True)
class HashPolicy:
    field: str = key("Field", "")
    field_value: str = key("FieldValue", "", alias="field_value")
    cookie_config: CookieConfig | None = key("CookieConfig", None, alias="cookie_config")
    source_ip: bool = key("SourceIP", False, alias="source_ip")
    terminal: bool = key("Terminal", False)


@dataclass(frozen=True, slots=True)
class LoadBalancer:
    policy: str = key("Policy", "")
    ring_hash_config: RingHashConfig | None = key("RingHashConfig", None, alias="ring_hash_config")
    least_request_config: LeastRequestConfig | None = key("LeastRequestConfig", None, alias="least_request_config")
    hash_policies: tuple[HashPolicy, ...] = key("HashPolicies", (), alias="hash_policies")


@dataclass(frozen=True, slots=True)
class ServiceResolver:
    KIND: ClassVar[str] = "service-resolver"
    name: str = key("Name", "", omitempty=False)
    namespace: str = key("Namespace", DEFAULT_NS, omit_value=DEFAULT_NS)
    default_subset: str = key("DefaultSubset", "", alias="default_subset")
    subsets: dict[str, ServiceResolverSubset] = key("Subsets", factory=dict)
    redirect: ServiceResolverRedirect | None = key("Redirect", None)
    failover: dict[str, ServiceResolverFailover] = key("Failover", factory=dict)
    connect_timeout: Duration = key("ConnectTimeout", 0.0, alias="connect_timeout", duration="text")
    request_timeout: Duration = key("RequestTimeout", 0.0, alias="request_timeout", duration="text")
    prioritize_by_locality: ServiceResolverPrioritizeByLocality | None = key(
        "PrioritizeByLocality", None, alias="prioritize_by_locality")
    load_balancer: LoadBalancer | None = key("LoadBalancer", None, alias="load_balancer")
    meta: dict[str, str] = key("Meta", factory=dict)
