"""TLS on ingress gateway listeners: the DNS SANs the entry grants the gateway's leaf,
the CA's refusal of any other, the listener TLS the snapshot carries, and the watcher
asking for a new leaf when the entry's names change."""

from __future__ import annotations

import asyncio

import pytest
from cryptography import x509

from trellis.agent.leafcert import LeafManager
from trellis.catalog.model import Service, ServiceKind
from trellis.config.entry.decode import decode_entry
from trellis.config.entry.model_gateway import listener_tls, tls_dns_sans
from trellis.connect import spiffe
from trellis.connect.ca import certs
from trellis.connect.ca.errors import InvalidCertificate
from trellis.proxycfg import build as builder
from trellis.proxycfg.model import IngressTLS, SdsCertificate
from trellis.proxycfg.watcher import ProxyWatcher

from test_proxycfg_build import ALLOW, entry, mesh, put, sidecar

GATEWAY = Service(node="n1", id="ig-1", name="ig", kind=ServiceKind.INGRESS_GATEWAY, port=8443, address="127.0.0.1")


def ingress(tls: dict | None = None, **listener_tls_: dict) -> dict:
    return {"Kind": "ingress-gateway", "Name": "ig", **({"TLS": tls} if tls else {}), "Listeners": [
        {"Port": 8443, "Protocol": "http", **({"TLS": listener_tls_["http"]} if "http" in listener_tls_ else {}),
         "Services": [{"Name": "web"}, {"Name": "api", "Hosts": ["api.example.com", "API.example.org"]}]},
        {"Port": 9443, "Protocol": "tcp", **({"TLS": listener_tls_["tcp"]} if "tcp" in listener_tls_ else {}),
         "Services": [{"Name": "db"}]}]}


# -- the names (model_gateway.tls_dns_sans) ---------------------------------------------------
def test_tls_grants_the_ingress_wildcards_and_every_configured_host() -> None:
    e = decode_entry(ingress({"Enabled": True}))
    assert tls_dns_sans(e, datacenter="dc1", domain="consul.") == (
        "*.ingress.consul", "*.ingress.dc1.consul", "api.example.com", "api.example.org")


def test_tls_on_one_listener_is_enough_and_no_tls_grants_nothing() -> None:
    assert tls_dns_sans(decode_entry(ingress()), datacenter="dc1", domain="consul") == ()
    assert tls_dns_sans(decode_entry(ingress(tcp={"Enabled": True})), datacenter="DC1", domain="mesh.example")[:2] == (
        "*.ingress.mesh.example", "*.ingress.dc1.mesh.example")


def test_a_service_of_another_namespace_adds_its_namespaced_wildcards() -> None:
    e = decode_entry(ingress({"Enabled": True}))
    li = e.listeners[1]
    other = type(e)(name=e.name, tls=e.tls, listeners=(e.listeners[0], type(li)(
        port=li.port, protocol=li.protocol, services=(type(li.services[0])(name="db", namespace="team"),))))
    assert tls_dns_sans(other, datacenter="dc1", domain="consul")[:4] == (
        "*.ingress.consul", "*.ingress.dc1.consul", "*.ingress.team.consul", "*.ingress.team.dc1.consul")


@pytest.mark.parametrize(("gateway", "own", "enabled", "min_version"), [
    (None, None, False, ""),
    ({"Enabled": True, "TLSMinVersion": "TLSv1_2"}, None, True, "TLSv1_2"),
    (None, {"Enabled": True}, True, ""),
    ({"Enabled": True, "TLSMinVersion": "TLSv1_2"}, {"Enabled": False, "TLSMinVersion": "TLSv1_3"}, True, "TLSv1_3"),
])
def test_a_listener_turns_tls_on_and_refines_the_gateways(gateway, own, enabled, min_version) -> None:
    e = decode_entry(ingress(gateway, **({"http": own} if own else {})))
    got = listener_tls(e, e.listeners[0])
    assert (got.enabled, got.tls_min_version) == (enabled, min_version)


# -- the CA signs only granted names (certs.check_csr) ---------------------------------------------
def _csr(dns: tuple[str, ...], service: str = "ig") -> x509.CertificateSigningRequest:
    uri = spiffe.service_uri("11111111-2222-3333-4444-555555555555.consul", "default", "dc1", service)
    return certs.build_csr(certs.generate_key(certs.LEAF_KEY), uri, dns)


def test_check_csr_takes_only_the_dns_names_granted() -> None:
    kw = dict(trust_domain="11111111-2222-3333-4444-555555555555.consul", datacenter="dc1")
    grant = lambda sid: ("*.ingress.consul", "api.example.com") if sid.service == "ig" else ()  # noqa: E731
    assert certs.check_csr(_csr(("*.ingress.consul", "API.example.com")), **kw, dns_names=grant).service == "ig"
    with pytest.raises(InvalidCertificate, match="DNS SAN 'evil.example.com' is not one service 'ig' is granted"):
        certs.check_csr(_csr(("*.ingress.consul", "evil.example.com")), **kw, dns_names=grant)
    with pytest.raises(InvalidCertificate, match="DNS SAN '\\*.ingress.consul' is not one service 'web'"):
        certs.check_csr(_csr(("*.ingress.consul",), "web"), **kw, dns_names=grant)
    with pytest.raises(InvalidCertificate, match="is not one service"):  # the default grants nothing
        certs.check_csr(_csr(("web.example.com",), "web"), **kw)


async def test_the_ca_grants_an_ingress_gateway_its_entrys_names_only_while_tls_is_on() -> None:
    async with mesh() as (view, writer, ca):
        td = ca.table.trust_domain
        uri = spiffe.service_uri(td, "default", "dc1", "ig")
        csr = certs.dump_csr(certs.build_csr(certs.generate_key(certs.LEAF_KEY), uri, ("api.example.com",)))
        for name in ("web", "api"):
            await entry(writer, {"Kind": "service-defaults", "Name": name, "Protocol": "http"})
        await entry(writer, ingress())
        with pytest.raises(InvalidCertificate):
            await ca.sign_csr(csr)
        await entry(writer, ingress({"Enabled": True}))
        leaf = x509.load_pem_x509_certificate((await ca.sign_csr(csr)).cert_pem.encode())
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["api.example.com"]


# -- the snapshot and the watcher ------------------------------------------------------------------
async def test_the_snapshot_carries_each_listeners_tls_and_sds_certificates() -> None:
    async with mesh() as (view, writer, _):
        await put(writer, view, GATEWAY, sidecar("web", 21001), sidecar("api", 21002), sidecar("db", 21003))
        for name in ("web", "api"):
            await entry(writer, {"Kind": "service-defaults", "Name": name, "Protocol": "http"})
        await entry(writer, ingress(http={"Enabled": True, "TLSMinVersion": "TLSv1_2", "TLSMaxVersion": "TLSv1_3"},
                                    tcp={"SDS": {"ClusterName": "sds", "CertResource": "db-cert"}}))
        http, tcp = builder.build_ingress(view, GATEWAY, datacenter="dc1", leaf=None, default=ALLOW).value.ingress
        assert http.tls == IngressTLS("TLSv1_2", "TLSv1_3")
        # SDS alone turns TLS on; no envoy_extra_static_clusters_json defines "sds" (problems.py says so)
        assert tcp.tls == IngressTLS(sds=SdsCertificate("sds", "db-cert", defined=False))
        assert [s.tls for s in http.services] == [None, None]


async def test_a_services_own_certificate_takes_its_cluster_from_the_listener_or_the_gateway() -> None:
    async with mesh() as (view, writer, _):
        await put(writer, view, GATEWAY, sidecar("web", 21001), sidecar("api", 21002), sidecar("db", 21003))
        for name in ("web", "api"):
            await entry(writer, {"Kind": "service-defaults", "Name": name, "Protocol": "http"})
        body = ingress({"SDS": {"ClusterName": "gw-sds"}},
                       http={"SDS": {"CertResource": "wildcard"}, "TLSMinVersion": "TLSv1_3"},
                       tcp={"SDS": {"CertResource": "db-cert"}})
        body["Listeners"][0]["Services"][1]["TLS"] = {"SDS": {"CertResource": "api-cert"}}
        body["Listeners"][0]["Services"][0]["TLS"] = {"SDS": {"ClusterName": "own", "CertResource": "web-cert"}}
        body["Listeners"][0]["Services"][0]["Hosts"] = ["web.example.com"]
        await entry(writer, body)
        await entry(writer, {"Kind": "proxy-defaults", "Name": "global", "Config": {  # the gateway's bootstrap has both
            "envoy_extra_static_clusters_json": '{"name": "gw-sds"}, {"name": "own"}'}})
        http, tcp = builder.build_ingress(view, GATEWAY, datacenter="dc1", leaf=None, default=ALLOW).value.ingress
        assert http.tls == IngressTLS("TLSv1_3", sds=SdsCertificate("gw-sds", "wildcard"))
        assert [s.tls for s in http.services] == [IngressTLS("TLSv1_3", sds=SdsCertificate("own", "web-cert")),
                                                  IngressTLS("TLSv1_3", sds=SdsCertificate("gw-sds", "api-cert"))]
        assert tcp.tls == IngressTLS(sds=SdsCertificate("gw-sds", "db-cert"))  # field by field, as Consul merges


async def test_the_watcher_gives_the_gateway_a_leaf_with_its_entrys_names_and_follows_them() -> None:
    async with mesh() as (view, writer, ca):
        leaves = LeafManager(view, ca, datacenter="dc1")
        watcher = ProxyWatcher(view, leaves, node="n1", datacenter="dc1", default=lambda: ALLOW, debounce=0.005)
        tasks = [asyncio.create_task(leaves.run()), asyncio.create_task(watcher.run())]

        def names(snap) -> list[str]:
            cert = x509.load_pem_x509_certificate(snap.leaf.cert_pem.encode())
            return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
                x509.DNSName)

        try:
            await put(writer, view, GATEWAY, sidecar("web", 21001), sidecar("api", 21002), sidecar("db", 21003))
            for name in ("web", "api"):
                await entry(writer, {"Kind": "service-defaults", "Name": name, "Protocol": "http"})
            await entry(writer, ingress())
            snap = await asyncio.wait_for(watcher.get("ig-1", wait=5), 5)
            assert names(snap) == [] and all(li.tls is None for li in snap.ingress)
            await entry(writer, ingress({"Enabled": True}))
            while snap.leaf is None or not names(snap):
                snap = await asyncio.wait_for(watcher.get("ig-1", index=snap.index, wait=5), 5)
            assert names(snap) == ["*.ingress.consul", "*.ingress.dc1.consul", "api.example.com", "api.example.org"]
            assert all(li.tls == IngressTLS() for li in snap.ingress)
            assert (await leaves.get("default", "ig")).cert_pem == snap.leaf.cert_pem  # the API reads the same leaf
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.parametrize(("registration", "defaults", "defined"), [
    (None, None, False),
    ('{"name": "sds"}', None, True),
    (None, '{"name": "other"}, {"name": "sds"}', True),
    ('{"name": "other"}', '{"name": "sds"}', False),  # the registration's key wins, as connect envoy merges
    ("not json", None, True),  # cannot tell: connect envoy refuses the key and says why
])
async def test_a_certificate_knows_whether_the_gateways_bootstrap_defines_its_cluster(registration, defaults,
                                                                                     defined) -> None:
    from dataclasses import replace

    from trellis.catalog.model import Proxy

    async with mesh() as (view, writer, _):
        config = {"envoy_extra_static_clusters_json": registration} if registration is not None else {}
        gateway = replace(GATEWAY, proxy=Proxy(config=config))
        await put(writer, view, gateway, sidecar("web", 21001), sidecar("api", 21002), sidecar("db", 21003))
        for name in ("web", "api"):
            await entry(writer, {"Kind": "service-defaults", "Name": name, "Protocol": "http"})
        if defaults is not None:
            await entry(writer, {"Kind": "proxy-defaults", "Name": "global",
                                 "Config": {"envoy_extra_static_clusters_json": defaults}})
        await entry(writer, ingress(tcp={"SDS": {"ClusterName": "sds", "CertResource": "db-cert"}}))
        _, tcp = builder.build_ingress(view, gateway, datacenter="dc1", leaf=None, default=ALLOW).value.ingress
        assert tcp.tls.sds.defined is defined
