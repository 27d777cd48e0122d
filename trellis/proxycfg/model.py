"""The proxy snapshot: one frozen value per proxy, the same for the built-in proxy
(as JSON) and for Envoy (translated to xDS).

Rules:
1. A snapshot is self-contained: identity, leaf, trust bundle, public listener,
   upstreams with every endpoint and its health, and the intentions that can decide
   for its service, so the proxy never calls the agent per connection.
2. Endpoints carry their health and are not pre-filtered (DESIGN: one health rule,
   applied by each data plane with ``usable_endpoints``): critical ones get no traffic,
   warning ones do.
3. ``version`` is a hash of everything but itself and ``index``: equal content, equal
   version; the watcher publishes only when it changes.
4. The JSON form (store/doc.py's) is trellis's own API, snake_case; it is not Consul's.
5. An upstream whose destination has routers, splitters or resolvers carries its compiled
   discovery chain and one ``TargetSnapshot`` per target. Envoy routes by all of it; the
   built-in proxy, which is L4 only, uses the upstream's ``endpoints``: those of the
   chain's default path (a router's catch-all, a splitter's heaviest split, a resolver's
   target).
6. An ingress gateway's snapshot (``kind`` ``ingress-gateway``) has no public listener and
   no local app: its ``ingress`` listeners are its config entry's, each service with the
   same ``UpstreamSnapshot`` a sidecar's upstream to it would have (chain, targets,
   endpoints), also listed in ``upstreams`` so clusters and endpoints are built as for
   upstreams. Its leaf is the gateway's own identity, which intentions name as the source.
   A listener's ``tls`` (and a service's own, which only an SDS certificate sets) says
   which certificate its clients are shown.
7. A terminating gateway's snapshot (``kind`` ``terminating-gateway``) has no public
   listener, no local app and no upstreams: its ``terminating`` part lists where it
   listens and, per linked service, the identity it presents for it (that service's
   leaf), the intentions whose destination can be that service, the service's external
   instances (plain catalog instances, not mesh ones) and how to reach them (TLS files
   and SNI from the terminating-gateway entry, and for an http-like one whether the Host
   header is rewritten to the external endpoint's). A linked service without a leaf yet is
   carried with ``leaf`` None and is not served until it has one. Its service-resolver
   gives its connect timeout, load balancer and request timeout, and its subsets (each
   with its own SNI and the external instances passing its filter) and default subset.
   Its ``Redirect`` and ``Failover`` are not the gateway's business: a mesh client's
   discovery chain follows them (to another linked service, reached through a gateway
   linked to it), as Consul's does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trellis.config.entry.chain import CompiledChain
from trellis.config.entry.model import HTTPHeaderModifiers
from trellis.config.entry.model_chain import LoadBalancer
from trellis.connect.intentions.model import Intention

CONNECT_PROXY = "connect-proxy"
INGRESS_GATEWAY = "ingress-gateway"
TERMINATING_GATEWAY = "terminating-gateway"
PASSING, WARNING, CRITICAL = "passing", "warning", "critical"


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: str
    port: int
    node: str
    service_id: str  # the proxy instance's ID
    health: str  # passing | warning | critical (rule 2)
    weight: int = 1
    failing: tuple[str, ...] = ()  # when not passing: the names of its checks at that status (trace says why)


@dataclass(frozen=True, slots=True)
class TargetSnapshot:
    """One target of an upstream's discovery chain (config/entry/chain.py rule 8): its
    cluster name, the identity its instances present, and those instances."""

    id: str  # the chain's target id: [subset.]service.namespace.partition.datacenter
    sni: str  # [subset.]service.namespace.datacenter.internal.<trust domain>: Envoy's cluster name
    spiffe_id: str
    endpoints: tuple[Endpoint, ...] = ()


@dataclass(frozen=True, slots=True)
class UpstreamSnapshot:
    """One upstream listener and where it leads. ``chain`` is set when the destination's
    discovery chain is more than its plain default (rule 5); ``endpoints`` are then the
    instances of the chain's default path, for a data plane that routes at L4 only."""

    destination_name: str
    destination_namespace: str
    datacenter: str
    local_bind_address: str
    local_bind_port: int
    protocol: str
    connect_timeout_ms: int  # 0: the data plane's default
    sni: str  # <service>.<ns>.<dc>.internal.<trust domain>: Envoy's cluster name too
    spiffe_id: str  # what the upstream's certificate must say
    endpoints: tuple[Endpoint, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)
    error: str = ""  # set when this upstream cannot be served (e.g. another datacenter)
    chain: CompiledChain | None = None  # rule 5
    targets: tuple[TargetSnapshot, ...] = ()  # every target of ``chain``, sorted by id

    @property
    def key(self) -> str:
        return f"{self.local_bind_address}:{self.local_bind_port}"


@dataclass(frozen=True, slots=True)
class SdsCertificate:
    """A certificate an operator's own SDS server serves (an ingress entry's ``TLS.SDS``):
    Envoy fetches secret ``resource`` over gRPC from the static cluster ``cluster``, which
    the operator adds to the bootstrap (``envoy_extra_static_clusters_json``)."""

    cluster: str
    resource: str
    defined: bool = True  # False: the gateway's envoy_extra_static_clusters_json has no such cluster


@dataclass(frozen=True, slots=True)
class IngressTLS:
    """TLS towards an ingress listener's clients: the certificate from ``sds``, else the
    gateway's Connect leaf (its DNS SANs name the listener's hosts); the entry's versions
    and cipher suites ("" and (): unset)."""

    min_version: str = ""
    max_version: str = ""
    cipher_suites: tuple[str, ...] = ()
    sds: SdsCertificate | None = None


@dataclass(frozen=True, slots=True)
class IngressServiceSnapshot:
    """One service an ingress listener exposes (rule 6)."""

    upstream: UpstreamSnapshot  # where it leads: its cluster(s), as a sidecar's upstream
    hosts: tuple[str, ...]  # the Host values it answers on an http listener
    request_headers: HTTPHeaderModifiers | None = None
    response_headers: HTTPHeaderModifiers | None = None
    tls: IngressTLS | None = None  # its own SDS certificate, served to clients asking for its hosts by SNI


@dataclass(frozen=True, slots=True)
class IngressListenerSnapshot:
    address: str
    port: int
    protocol: str  # tcp | http | http2 | grpc
    services: tuple[IngressServiceSnapshot, ...] = ()
    tls: IngressTLS | None = None  # TLS enabled or an SDS certificate (gateway-wide or on the listener); None: plaintext


@dataclass(frozen=True, slots=True)
class LeafSnapshot:
    cert_pem: str  # leaf + intermediates
    private_key_pem: str
    service_uri: str
    serial: str
    valid_before: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class LinkedSubsetSnapshot:
    """One subset of a linked service's resolver (rule 7)."""

    name: str
    sni: str  # <subset>.<service SNI>: what a mesh client whose chain lands on it asks for; its cluster's name
    endpoints: tuple[Endpoint, ...]  # the service's external instances that pass the subset's filter


@dataclass(frozen=True, slots=True)
class LinkedServiceSnapshot:
    """One service a terminating gateway reaches for the mesh (rule 7)."""

    name: str
    namespace: str
    sni: str  # its mesh SNI name: what mesh clients ask for, the filter chain's match and the cluster's name
    spiffe_id: str  # the identity the gateway presents for it
    leaf: LeafSnapshot | None  # None: not issued yet, not served
    intentions: tuple[Intention, ...]  # those whose destination covers the service, in order
    endpoints: tuple[Endpoint, ...]  # its external instances (address may be a host name)
    protocol: str
    connect_timeout_ms: int  # 0: the data plane's default
    ca_file: str = ""  # verify the external endpoint against this CA file
    cert_file: str = ""  # and present this client certificate
    key_file: str = ""
    tls_sni: str = ""  # the SNI sent to the external endpoint (the entry's ``SNI``)
    auto_host_rewrite: bool = True  # http-like: Host becomes the external endpoint's (not ``DisableAutoHostRewrite``)
    subsets: tuple[LinkedSubsetSnapshot, ...] = ()  # its resolver's, sorted by name
    default_subset: str = ""  # the plain SNI goes to this subset's cluster
    load_balancer: LoadBalancer | None = None  # its resolver's
    request_timeout: float = 0.0  # seconds, its resolver's; 0: the data plane's default

    @property
    def cluster(self) -> str:
        """Where the plain SNI's traffic goes: the default subset's cluster, else the service's."""
        return f"{self.default_subset}.{self.sni}" if self.default_subset else self.sni


@dataclass(frozen=True, slots=True)
class GatewayBind:
    name: str  # "default", or the envoy_gateway_bind_addresses key
    address: str
    port: int


@dataclass(frozen=True, slots=True)
class TerminatingSnapshot:
    """A terminating gateway's listeners and linked services (rule 7), sorted by SNI."""

    binds: tuple[GatewayBind, ...]
    services: tuple[LinkedServiceSnapshot, ...] = ()


@dataclass(frozen=True, slots=True)
class PublicListener:
    bind_address: str
    bind_port: int
    local_service_address: str
    local_service_port: int
    protocol: str
    local_connect_timeout_ms: int  # 0: the data plane's default


@dataclass(frozen=True, slots=True)
class DefaultDecision:
    allowed: bool
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectProxySnapshot:
    proxy_id: str
    proxy_name: str
    namespace: str
    datacenter: str
    trust_domain: str
    service: str  # the destination service the proxy stands for
    service_id: str
    public: PublicListener
    leaf: LeafSnapshot | None
    roots: tuple[str, ...]  # PEM, every trusted root
    intentions: tuple[Intention, ...]  # those whose destination covers the service, in order
    default: DefaultDecision
    upstreams: tuple[UpstreamSnapshot, ...] = ()
    config: dict[str, Any] = field(default_factory=dict)  # the proxy registration's Proxy.Config
    kind: str = CONNECT_PROXY  # or INGRESS_GATEWAY (rule 6), TERMINATING_GATEWAY (rule 7)
    ingress: tuple[IngressListenerSnapshot, ...] = ()  # an ingress gateway's listeners (rule 6)
    terminating: TerminatingSnapshot | None = None  # a terminating gateway's (rule 7)
    stop: bool = False  # the agent asks the proxy to drain and exit (`connect proxy -stop`)
    version: str = ""
    index: int = 0


def usable_endpoints(endpoints: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
    """DESIGN's health rule: critical endpoints get no traffic; warning ones do."""
    return tuple(e for e in endpoints if e.health != CRITICAL)
