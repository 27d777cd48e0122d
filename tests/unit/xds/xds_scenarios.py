"""The snapshots the xDS golden files, the Envoy validation and the RBAC tests translate.

Certificates are fixed: made once by ``make_fixtures`` (two ECDSA roots, a leaf for
``web`` signed by the first, all valid for a century from 2025-01-01) and stored in
``tests/golden/xds/fixtures/``, so golden files never change because of a key. Delete
the directory and run the tests to make new ones (every golden file changes then).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

from trellis.config.entry.decode import decode_entry
from trellis.config.entry.flatten import intention_of
from trellis.connect import spiffe
from trellis.connect.ca import certs
from trellis.connect.intentions.index import IntentionIndex
from trellis.connect.intentions.model import Intention
from trellis.config.entry.chain import compile_chain
from trellis.config.entry.model_chain import HashPolicy, LeastRequestConfig, LoadBalancer, RingHashConfig
from trellis.proxycfg.build import default_target, sni_name, target_snapshot
from trellis.proxycfg.model import (
    INGRESS_GATEWAY,
    TERMINATING_GATEWAY,
    GatewayBind,
    LinkedServiceSnapshot,
    LinkedSubsetSnapshot,
    TerminatingSnapshot,
    ConnectProxySnapshot,
    DefaultDecision,
    Endpoint,
    IngressListenerSnapshot,
    IngressTLS,
    SdsCertificate,
    IngressServiceSnapshot,
    LeafSnapshot,
    PublicListener,
    UpstreamSnapshot,
)

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "golden" / "xds"
FIXTURES = GOLDEN_DIR / "fixtures"
CLUSTER_ID = "11111111-2222-3333-4444-555555555555"
TD = spiffe.trust_domain(CLUSTER_ID)
DC = "dc1"
_EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
_CENTURY = dt.timedelta(days=36500)

DENY_DEFAULT = DefaultDecision(False, "Default intention policy")
ALLOW_DEFAULT = DefaultDecision(True, "Default intention policy")


# -- certificates -----------------------------------------------------------------------------
def make_fixtures(directory: Path = FIXTURES) -> None:
    """Write root-1.pem, root-2.pem, web.pem and web-key.pem (see the module docstring)."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = [certs.generate_key(certs.LEAF_KEY) for _ in range(2)]
    roots = [certs.build_root(key, cluster_id=CLUSTER_ID, uid=str(n), serial=n, now=_EPOCH, ttl=_CENTURY)
             for n, key in enumerate(keys, start=1)]
    leaf_key = certs.generate_key(certs.LEAF_KEY)
    csr = certs.build_csr(leaf_key, spiffe.service_uri(TD, "default", DC, "web"))
    leaf = certs.sign_leaf(csr, roots[0], keys[0], serial=100, now=_EPOCH, ttl=_CENTURY)
    for n, root in enumerate(roots, start=1):
        (directory / f"root-{n}.pem").write_text(certs.dump_cert(root))
    (directory / "web.pem").write_text(certs.dump_cert(leaf))
    (directory / "web-key.pem").write_text(certs.dump_private_key(leaf_key))


def _fixture(name: str) -> str:
    if not (FIXTURES / name).exists():
        make_fixtures()
    return (FIXTURES / name).read_text()


def web_leaf() -> LeafSnapshot:
    return LeafSnapshot(cert_pem=_fixture("web.pem"), private_key_pem=_fixture("web-key.pem"),
                        service_uri=spiffe.service_uri(TD, "default", DC, "web"), serial="64",
                        valid_before=(_EPOCH + _CENTURY).timestamp())


def roots(count: int = 1) -> tuple[str, ...]:
    return tuple(_fixture(f"root-{n}.pem") for n in range(1, count + 1))


# -- intentions -------------------------------------------------------------------------------
def intentions(*entries: dict[str, Any]) -> list[Intention]:
    """Consul-shaped ``service-intentions`` entries, flattened as the store does."""
    out: list[Intention] = []
    for data in entries:
        entry = decode_entry({"Kind": "service-intentions", **data})
        out += [intention_of(entry, source) for source in entry.sources]
    return out


# -- snapshots --------------------------------------------------------------------------------
def upstream(name: str, port: int, *, protocol: str = "tcp", ns: str = "default",
             endpoints: tuple[Endpoint, ...] = (), config: dict[str, Any] | None = None,
             **kw: Any) -> UpstreamSnapshot:
    return UpstreamSnapshot(
        destination_name=name, destination_namespace=ns, datacenter=DC, local_bind_address="127.0.0.1",
        local_bind_port=port, protocol=protocol, connect_timeout_ms=kw.pop("connect_timeout_ms", 0),
        sni=sni_name(name, ns, DC, TD), spiffe_id=spiffe.service_uri(TD, ns, DC, name), endpoints=endpoints,
        config=config or {}, **kw,
    )


def snapshot(*, service: str = "web", ns: str = "default", protocol: str = "tcp",
             all_intentions: list[Intention] | None = None, default: DefaultDecision = DENY_DEFAULT,
             upstreams: tuple[UpstreamSnapshot, ...] = (), config: dict[str, Any] | None = None,
             root_count: int = 1, **kw: Any) -> ConnectProxySnapshot:
    """A sidecar for ``service``; its intentions are the engine's candidates among ``all_intentions``."""
    candidates = IntentionIndex(all_intentions or ()).candidates(ns, service)
    return ConnectProxySnapshot(
        proxy_id=f"{service}-sidecar-proxy", proxy_name=f"{service}-sidecar-proxy", namespace=ns, datacenter=DC,
        trust_domain=TD, service=service, service_id=service,
        public=PublicListener(bind_address="0.0.0.0", bind_port=21000, local_service_address="127.0.0.1",
                              local_service_port=8080, protocol=protocol,
                              local_connect_timeout_ms=kw.pop("local_connect_timeout_ms", 0)),
        leaf=kw.pop("leaf", web_leaf()), roots=roots(root_count), intentions=tuple(candidates), default=default,
        upstreams=upstreams, config=config or {}, **kw,
    )


def _api_endpoints() -> tuple[Endpoint, ...]:
    return (
        Endpoint("10.0.0.2", 21000, "n2", "api-2-sidecar-proxy", "warning", weight=3),
        Endpoint("10.0.0.1", 21000, "n1", "api-1-sidecar-proxy", "passing"),
        Endpoint("10.0.0.3", 21000, "n3", "api-3-sidecar-proxy", "critical"),
    )


L4_INTENTIONS = intentions(
    {"Name": "web", "Sources": [{"Name": "frontend", "Action": "allow"},
                                {"Name": "legacy", "Action": "deny"},
                                {"Name": "*", "Action": "deny"}]},
)

L7_INTENTIONS = intentions(
    {"Name": "web", "Sources": [
        {"Name": "frontend", "Permissions": [
            {"Action": "deny", "HTTP": {"PathPrefix": "/admin"}},
            {"Action": "allow", "HTTP": {"PathPrefix": "/", "Methods": ["GET", "HEAD"]}},
        ]},
        {"Name": "ops", "Permissions": [
            {"Action": "allow", "HTTP": {"PathRegex": "/admin/[a-z]+", "Header": [
                {"Name": "x-team", "Exact": "SRE", "IgnoreCase": True},
                {"Name": "x-debug", "Present": True, "Invert": True}]}},
        ]},
        {"Name": "legacy", "Action": "deny"},
    ]},
    {"Name": "*", "Sources": [{"Name": "*", "Namespace": "default", "Action": "allow"}]},
)


class _Entries:
    """config/entry/chain.py's reader over a list of entries (Consul JSON)."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        decoded = [decode_entry(e) for e in entries]
        self.table = {(e.KIND, e.namespace, e.name): e for e in decoded}

    def get(self, kind: str, ns: str, name: str) -> Any:
        return self.table.get((kind, ns, name))

    def protocol(self, ns: str, name: str) -> str:
        sd = self.table.get(("service-defaults", ns, name))
        return sd.protocol if sd is not None and sd.protocol else "tcp"


def chain_upstream(name: str, port: int, entries: list[dict[str, Any]],
                   endpoints: dict[str, tuple[Endpoint, ...]], **kw: Any) -> UpstreamSnapshot:
    """An upstream to ``name`` whose discovery chain ``entries`` make, each target's
    instances given by target id (as proxycfg/build.py fills them from the catalog)."""
    chain = compile_chain(_Entries(entries), "default", name, DC)
    targets = tuple(target_snapshot(t, TD, endpoints.get(t.id, ())) for t in chain.targets)
    default = next(t.endpoints for t in targets if t.id == default_target(chain))
    return upstream(name, port, protocol=chain.protocol, endpoints=default, chain=chain, targets=targets, **kw)


def _ep(address: str, sid: str, health: str = "passing") -> Endpoint:
    return Endpoint(address, 21000, "n1", sid, health)


HTTP_DEFAULTS = [{"Kind": "service-defaults", "Name": n, "Protocol": "http"} for n in ("api", "api-v2", "billing")]
ROUTER_SPLITTER_RESOLVER = [
    *HTTP_DEFAULTS,
    {"Kind": "service-router", "Name": "api", "Routes": [
        {"Match": {"HTTP": {"PathExact": "/health", "Methods": ["GET", "HEAD"]}},
         "Destination": {"Service": "billing", "RequestTimeout": "2s", "IdleTimeout": "30s"}},
        {"Match": {"HTTP": {"PathPrefix": "/admin/", "CaseInsensitive": True,
                            "Header": [{"Name": "x-team", "Exact": "sre"}, {"Name": "x-debug", "Present": True,
                                                                              "Invert": True}],
                            "QueryParam": [{"Name": "canary", "Exact": "1"}, {"Name": "trace", "Present": True}]}},
         "Destination": {"ServiceSubset": "v2", "PrefixRewrite": "/", "NumRetries": 3,
                         "RetryOnConnectFailure": True, "RetryOn": ["reset", "5xx"],
                         "RetryOnStatusCodes": [503, 429],
                         "RequestHeaders": {"Add": {"x-from": "router"}, "Set": {"x-route": "admin"},
                                            "Remove": ["x-secret"]},
                         "ResponseHeaders": {"Set": {"x-served-by": "api-v2"}}}},
        {"Match": {"HTTP": {"PathRegex": "/v[0-9]+/.*", "Header": [{"Name": "x-version", "Regex": "2|3"},
                                                                   {"Name": "x-p", "Prefix": "a"},
                                                                   {"Name": "x-s", "Suffix": "z"}]}},
         "Destination": {"Service": "api-v2"}},
    ]},
    {"Kind": "service-splitter", "Name": "api", "Splits": [
        {"Weight": 90, "ServiceSubset": "v1", "RequestHeaders": {"Set": {"x-split": "v1"}}},
        {"Weight": 10, "ServiceSubset": "v2", "ResponseHeaders": {"Add": {"x-split": "v2"}}},
    ]},
    {"Kind": "service-resolver", "Name": "api", "DefaultSubset": "v1", "ConnectTimeout": "3s",
     "RequestTimeout": "20s",
     "Subsets": {"v1": {"Filter": "Service.Meta.version == v1"},
                 "v2": {"Filter": "Service.Meta.version == v2", "OnlyPassing": True}},
     "LoadBalancer": {"Policy": "ring_hash", "RingHashConfig": {"MinimumRingSize": 1024, "MaximumRingSize": 8192},
                      "HashPolicies": [{"Field": "header", "FieldValue": "x-user"},
                                       {"Field": "cookie", "FieldValue": "sid", "CookieConfig": {"TTL": "1h",
                                                                                              "Path": "/"}},
                                       {"Field": "query_parameter", "FieldValue": "u"},
                                       {"SourceIP": True, "Terminal": True}]}},
    {"Kind": "service-resolver", "Name": "billing", "LoadBalancer": {
        "Policy": "least_request", "LeastRequestConfig": {"ChoiceCount": 3}}},
]
TCP_REDIRECT_FAILOVER = [
    {"Kind": "service-resolver", "Name": "db", "Redirect": {"Service": "db-primary"}},
    {"Kind": "service-resolver", "Name": "db-primary", "ConnectTimeout": "1500ms",
     "Failover": {"*": {"Targets": [{"Service": "db-replica"}, {"Service": "db-backup"}]}},
     "LoadBalancer": {"Policy": "maglev"}},
]


def ingress_gateway(listeners: list[tuple[int, str, list[tuple[UpstreamSnapshot, tuple[str, ...], Any]]]],
                    tls: dict[int, IngressTLS] | None = None) -> ConnectProxySnapshot:
    """An ingress gateway's snapshot (proxycfg model rule 6): (port, protocol, [(upstream,
    hosts, request header changes)]) per listener; ``tls``: by port, the listeners with TLS."""
    built = tuple(IngressListenerSnapshot("127.0.0.1", port, protocol, tuple(
        IngressServiceSnapshot(dataclasses.replace(up, local_bind_address="127.0.0.1", local_bind_port=port),
                               hosts, request_headers=headers) for up, hosts, headers in services),
        tls=(tls or {}).get(port))
        for port, protocol, services in listeners)
    return dataclasses.replace(
        snapshot(service="ingress-gateway"), proxy_id="ingress-gateway", proxy_name="ingress-gateway",
        service_id="ingress-gateway", kind=INGRESS_GATEWAY, intentions=(),
        public=PublicListener("127.0.0.1", 0, "", 0, "tcp", 0), ingress=built,
        upstreams=tuple(s.upstream for li in built for s in li.services))


def _with_service_tls(snap: ConnectProxySnapshot, port: int, name: str, sds: SdsCertificate) -> ConnectProxySnapshot:
    """``snap`` with service ``name`` of listener ``port`` serving its own SDS certificate
    (with the listener's TLS versions)."""
    listeners = tuple(dataclasses.replace(li, services=tuple(
        dataclasses.replace(s, tls=dataclasses.replace(li.tls or IngressTLS(), sds=sds))
        if li.port == port and s.upstream.destination_name == name else s for s in li.services))
        for li in snap.ingress)
    return dataclasses.replace(snap, ingress=listeners, upstreams=tuple(s.upstream for li in listeners
                                                                        for s in li.services))


SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # a CA file that exists wherever Envoy validates


def linked(name: str, endpoints: tuple[Endpoint, ...], *, all_intentions: list[Intention] | None = None,
           protocol: str = "tcp", **kw: Any) -> LinkedServiceSnapshot:
    """A terminating gateway's linked service (proxycfg model rule 7). Its leaf is the web
    fixture's: Envoy checks the certificate loads, not what it names."""
    return LinkedServiceSnapshot(
        name=name, namespace="default", sni=sni_name(name, "default", DC, TD),
        spiffe_id=spiffe.service_uri(TD, "default", DC, name), leaf=web_leaf(),
        intentions=tuple(IntentionIndex(all_intentions or ()).candidates("default", name)), endpoints=endpoints,
        protocol=protocol, **{"connect_timeout_ms": 0, **kw})


def linked_subsets(name: str, protocol: str, **kw: Any) -> LinkedServiceSnapshot:
    """A linked service whose resolver has subsets v1 and v2 (one external instance each)
    and DefaultSubset v1 (proxycfg build.py rule 10)."""
    v1, v2 = (Endpoint("10.0.6.1", 8080, "external", f"{name}-v1", "passing"),
              Endpoint("10.0.6.2", 8080, "external", f"{name}-v2", "passing"))
    plain = linked(name, (v1, v2), protocol=protocol, default_subset="v1", all_intentions=intentions(
        {"Name": name, "Sources": [{"Name": "web", "Action": "allow"}]}), **kw)
    return dataclasses.replace(plain, subsets=tuple(
        LinkedSubsetSnapshot(sub, f"{sub}.{plain.sni}", (ep,)) for sub, ep in (("v1", v1), ("v2", v2))))


def terminating_gateway(services: tuple[LinkedServiceSnapshot, ...]) -> ConnectProxySnapshot:
    """A terminating gateway on 127.0.0.1:8443 (proxycfg model rule 7)."""
    return dataclasses.replace(
        snapshot(service="egress-gateway"), proxy_id="egress-gateway", proxy_name="egress-gateway",
        service_id="egress-gateway", kind=TERMINATING_GATEWAY, intentions=(),
        public=PublicListener("127.0.0.1", 0, "", 0, "tcp", 0),
        terminating=TerminatingSnapshot(binds=(GatewayBind("default", "127.0.0.1", 8443),),
                                        services=tuple(sorted(services, key=lambda s: s.sni))))


def scenarios() -> dict[str, ConnectProxySnapshot]:
    """The golden scenarios (STYLE.md §6: keep the set small)."""
    api = upstream("api", 9191, endpoints=_api_endpoints(), connect_timeout_ms=2500, config={
        "limits": {"max_connections": 100, "max_pending_requests": 10, "max_concurrent_requests": 50},
        "passive_health_check": {"interval": "10s", "max_failures": 3, "enforcing_consecutive_5xx": 100,
                                 "max_ejection_percent": 50, "base_ejection_time": "30s"},
    })
    return {
        "tcp_one_upstream": snapshot(all_intentions=L4_INTENTIONS, upstreams=(api,)),
        "tcp_default_allow": snapshot(all_intentions=L4_INTENTIONS, default=ALLOW_DEFAULT, upstreams=(api,)),
        "http_l7_intentions": snapshot(
            protocol="http", all_intentions=L7_INTENTIONS, config={"local_request_timeout_ms": 30000},
            local_connect_timeout_ms=1500,
            upstreams=(upstream("cache", 9292, protocol="http2", ns="team-a",
                                endpoints=(Endpoint("10.0.1.1", 20001, "n1", "cache-sidecar-proxy", "passing"),)),
                       upstream("db", 9393, error="upstream db is in datacenter 'dc2'"))),
        "default_deny_no_intentions_two_roots": snapshot(root_count=2),
        "http_router_splitter_resolver": snapshot(upstreams=(chain_upstream("api", 9494, ROUTER_SPLITTER_RESOLVER, {
            "v1.api.default.default.dc1": (_ep("10.0.2.1", "api-1-sidecar-proxy"),),
            "v2.api.default.default.dc1": (_ep("10.0.2.2", "api-2-sidecar-proxy"),),
            "billing.default.default.dc1": (_ep("10.0.2.3", "billing-1-sidecar-proxy"),),
            "api-v2.default.default.dc1": (_ep("10.0.2.4", "api-v2-1-sidecar-proxy"),),
        }),)),
        "ingress_gateway_http_and_tcp": ingress_gateway([
            (8080, "http", [
                (upstream("web", 0, protocol="http", endpoints=(_ep("10.0.4.1", "web-1-sidecar-proxy"),)),
                 ("web.ingress.*", "web.ingress.*:8080"), None),
                (chain_upstream("api", 0, ROUTER_SPLITTER_RESOLVER, {
                    "v1.api.default.default.dc1": (_ep("10.0.2.1", "api-1-sidecar-proxy"),)}),
                 ("api.example.com",), decode_entry({"Kind": "service-router", "Name": "x", "Routes": [{
                     "Destination": {"RequestHeaders": {"Set": {"x-via": "ingress"}}}}]}).routes[0]
                 .destination.request_headers)]),
            (9090, "tcp", [(upstream("db", 0, endpoints=(_ep("10.0.3.1", "db-1-sidecar-proxy"),)), (), None)]),
        ]),
        "ingress_gateway_tls": ingress_gateway([
            (8443, "http", [
                (upstream("web", 0, protocol="http", endpoints=(_ep("10.0.4.1", "web-1-sidecar-proxy"),)),
                 ("web.ingress.*", "web.ingress.*:8443"), None)]),
            (9443, "tcp", [(upstream("db", 0, endpoints=(_ep("10.0.3.1", "db-1-sidecar-proxy"),)), (), None)]),
        ], tls={8443: IngressTLS("TLSv1_2", "TLSv1_2", ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                                                         "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384")),
                9443: IngressTLS()}),
        "ingress_gateway_sds": _with_service_tls(ingress_gateway([
            (8443, "http", [
                (upstream("web", 0, protocol="http", endpoints=(_ep("10.0.4.1", "web-1-sidecar-proxy"),)),
                 ("web.ingress.*", "web.ingress.*:8443"), None),
                (upstream("api", 0, protocol="http", endpoints=(_ep("10.0.2.1", "api-1-sidecar-proxy"),)),
                 ("api.example.com", "API.example.com:8443", "*.api.example.com"), None)]),
            (9443, "tcp", [(upstream("db", 0, endpoints=(_ep("10.0.3.1", "db-1-sidecar-proxy"),)), (), None)]),
        ], tls={8443: IngressTLS("TLSv1_2", sds=SdsCertificate("sds-server", "wildcard-cert")),
                9443: IngressTLS(sds=SdsCertificate("sds-server", "db-cert"))}),
            8443, "api", SdsCertificate("sds-server", "api-cert")),
        "terminating_gateway_tls_and_plain": terminating_gateway((
            linked("external-api", (Endpoint("api.external.com", 443, "external", "external-api", "passing"),),
                   all_intentions=intentions({"Name": "external-api", "Sources": [{"Name": "web", "Action": "allow"}]}),
                   ca_file=SYSTEM_BUNDLE, tls_sni="api.external.com"),
            linked("public-api", (Endpoint("10.0.5.2", 443, "external", "public-api", "passing"),),
                   tls_sni="api.example.org"),
            linked("legacy-db", (Endpoint("10.0.5.1", 5432, "external", "legacy-db", "passing"),
                                 Endpoint("10.0.5.3", 5432, "external", "legacy-db-2", "critical"))),
        )),
        "terminating_gateway_http_linked": terminating_gateway((
            linked("external-web", (Endpoint("web.external.com", 443, "external", "external-web", "passing"),),
                   protocol="http", ca_file=SYSTEM_BUNDLE, tls_sni="web.external.com",
                   all_intentions=intentions({"Name": "external-web", "Sources": [
                       {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"PathExact": "/ok",
                                                                                    "Methods": ["GET"]}}]},
                       {"Name": "legacy", "Action": "deny"}]})),
            linked("external-grpc", (Endpoint("10.0.5.4", 8443, "external", "external-grpc", "passing"),),
                   protocol="grpc", auto_host_rewrite=False,
                   all_intentions=intentions({"Name": "external-grpc", "Sources": [
                       {"Name": "web", "Action": "allow"}]})),
            linked("legacy-db", (Endpoint("10.0.5.1", 5432, "external", "legacy-db", "passing"),)),
        )),
        "terminating_gateway_resolver": terminating_gateway((
            linked_subsets("external-web", "http", request_timeout=7.0, connect_timeout_ms=2000, load_balancer=
                           LoadBalancer(policy="ring_hash", ring_hash_config=RingHashConfig(minimum_ring_size=1024),
                                        hash_policies=(HashPolicy(field="header", field_value="x-user"),))),
            linked_subsets("legacy-db", "tcp", load_balancer=LoadBalancer(
                policy="least_request", least_request_config=LeastRequestConfig(choice_count=3))),
        )),
        "tcp_redirect_and_failover": snapshot(upstreams=(chain_upstream("db", 9595, TCP_REDIRECT_FAILOVER, {
            "db-primary.default.default.dc1": (_ep("10.0.3.1", "db-primary-1-sidecar-proxy", "critical"),),
            "db-replica.default.default.dc1": (_ep("10.0.3.2", "db-replica-1-sidecar-proxy"),),
        }),)),
    }


def variants() -> dict[str, ConnectProxySnapshot]:
    """More shapes for Envoy to validate (no golden files): every protocol of the public
    listener, knobs at their edges, an IPv6 upstream, a local app by host name."""
    edgy = upstream("api", 9191, protocol="grpc", endpoints=_api_endpoints(), config={
        "Limits": {"MAX_CONNECTIONS": "7"},
        "passive_health_check": {"interval": 5_000_000_000, "max_failures": 1, "base_ejection_time": "10m",
                                 "enforcing_consecutive_5xx": 0, "max_ejection_percent": 100},
    })
    return {
        "grpc_sidecar": snapshot(protocol="grpc", all_intentions=L7_INTENTIONS, upstreams=(edgy,),
                                 config={"local_request_timeout_ms": 1000, "local_idle_timeout_ms": 60000}),
        "http2_sidecar_default_allow": snapshot(protocol="http2", all_intentions=L7_INTENTIONS, default=ALLOW_DEFAULT,
                                                upstreams=(upstream("api", 9191, protocol="http"),)),
        "ipv6_upstream_and_named_local_app": dataclasses.replace(
            snapshot(upstreams=(dataclasses.replace(upstream("api", 9191), local_bind_address="::1"),)),
            public=PublicListener("::", 21000, "localhost", 8080, "tcp", 250)),
        "stopping_proxy": snapshot(stop=True),
        "terminating_gateway_client_certificate": terminating_gateway((
            linked("external-api", (Endpoint("10.0.5.2", 443, "external", "external-api", "passing"),),
                   ca_file=str(FIXTURES / "root-1.pem"), cert_file=str(FIXTURES / "web.pem"),
                   key_file=str(FIXTURES / "web-key.pem"), tls_sni="api.external.com"),)),
        "connection_knobs": snapshot(
            config={"max_inbound_connections": 100, "balance_inbound_connections": "exact_balance"},
            upstreams=(upstream("api", 9191, endpoints=_api_endpoints(),
                                config={"balance_outbound_connections": "exact_balance"}),)),
        "terminating_gateway_logical_dns": dataclasses.replace(terminating_gateway((
            linked("external-api", (Endpoint("api.external.com", 443, "external", "external-api-1", "passing"),
                                    Endpoint("api2.external.com", 443, "external", "external-api-2", "passing")),
                   tls_sni="api.external.com"),)), config={"envoy_dns_discovery_type": "LOGICAL_DNS"}),
    }
