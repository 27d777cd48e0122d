"""TLS contexts from a snapshot's leaf and roots, the upstream identity check, and the
handshake-failure labels, over real TLS on socket pairs."""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import replace

import pytest
from proxy_certs import TestCA

from trellis.proxy.tls import PeerMismatch, build_contexts, check_peer, context_key, failure_reason
from trellis.proxycfg.model import ConnectProxySnapshot, DefaultDecision, PublicListener

CLUSTER = "11111111-2222-3333-4444-555555555555"
FOREIGN = "99999999-8888-7777-6666-555555555555"


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA(CLUSTER)


@pytest.fixture(scope="module")
def foreign() -> TestCA:
    return TestCA(FOREIGN)


async def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, sni: str = "api.default.dc1.internal.x"):
    """Both ends of one TLS handshake; each result is (transport, None) or the exception raised."""
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)

    async def server():
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a, ssl=server_ctx,
                                                          ssl_handshake_timeout=5)
        return transport

    async def client():
        transport, _ = await loop.create_connection(asyncio.Protocol, sock=b, ssl=client_ctx, server_hostname=sni,
                                                    ssl_handshake_timeout=5)
        return transport

    async with asyncio.timeout(10):
        got = await asyncio.gather(server(), client(), return_exceptions=True)
    await asyncio.sleep(0.05)  # TLS 1.3: the server's verdict on the client certificate arrives after
    for t in got:
        if isinstance(t, asyncio.BaseTransport):
            t.abort()
    return got


async def test_both_sides_verify_each_other_and_see_the_peer_uri(ca):
    api, web = build_contexts(ca.leaf("api"), (ca.root_pem,)), build_contexts(ca.leaf("web"), (ca.root_pem,))
    server_t, client_t = await handshake(api.server, web.client)
    assert not isinstance(server_t, BaseException) and not isinstance(client_t, BaseException)
    check_peer(client_t.get_extra_info("peercert"), ca.uri("api"))
    assert ("URI", ca.uri("web")) in server_t.get_extra_info("peercert")["subjectAltName"]
    assert client_t.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")


async def test_the_upstream_must_be_the_expected_identity(ca):
    api, web = build_contexts(ca.leaf("api"), (ca.root_pem,)), build_contexts(ca.leaf("web"), (ca.root_pem,))
    _, client_t = await handshake(api.server, web.client)
    with pytest.raises(PeerMismatch, match=f"upstream presented {ca.uri('api')}, expected {ca.uri('db')}") as exc:
        check_peer(client_t.get_extra_info("peercert"), ca.uri("db"))
    assert failure_reason(exc.value) == "spiffe_id_mismatch"


async def test_a_client_with_a_foreign_certificate_is_refused(ca, foreign):
    api = build_contexts(ca.leaf("api"), (ca.root_pem,))
    intruder = build_contexts(foreign.leaf("web"), (ca.root_pem,))  # trusts us, but is not trusted
    server_t, _ = await handshake(api.server, intruder.client)
    assert isinstance(server_t, ssl.SSLError)
    assert failure_reason(server_t) == "certificate_verify_failed"


async def test_a_client_without_a_certificate_is_refused(ca):
    api = build_contexts(ca.leaf("api"), (ca.root_pem,))
    anonymous = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    anonymous.check_hostname = False
    anonymous.load_verify_locations(cadata=ca.root_pem)
    server_t, _ = await handshake(api.server, anonymous)
    assert isinstance(server_t, ssl.SSLError)
    assert "certificate" in failure_reason(server_t)


async def test_a_server_with_a_foreign_certificate_fails_verification(ca, foreign):
    web = build_contexts(ca.leaf("web"), (ca.root_pem,))
    impostor = build_contexts(foreign.leaf("api"), (foreign.root_pem,))
    _, client_t = await handshake(impostor.server, web.client)
    assert isinstance(client_t, ssl.SSLCertVerificationError)
    assert failure_reason(client_t) == "certificate_verify_failed"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_tls_below_1_2_is_refused(ca):
    api, web = build_contexts(ca.leaf("api"), (ca.root_pem,)), build_contexts(ca.leaf("web"), (ca.root_pem,))
    web.client.maximum_version = ssl.TLSVersion.TLSv1_1
    web.client.minimum_version = ssl.TLSVersion.TLSv1_1
    server_t, client_t = await handshake(api.server, web.client)
    assert isinstance(server_t, ssl.SSLError) or isinstance(client_t, ssl.SSLError)


async def test_several_roots_are_all_trusted(ca, foreign):
    both = (foreign.root_pem, ca.root_pem)
    api = build_contexts(ca.leaf("api"), both)
    web = build_contexts(foreign.leaf("web"), both)
    server_t, client_t = await handshake(api.server, web.client)
    assert not isinstance(server_t, BaseException) and not isinstance(client_t, BaseException)


def test_the_context_key_changes_with_the_leaf_or_the_roots(ca):
    snap = ConnectProxySnapshot(
        proxy_id="p", proxy_name="p", namespace="default", datacenter="dc1", trust_domain=ca.trust_domain,
        service="web", service_id="web-1", public=PublicListener("127.0.0.1", 1, "127.0.0.1", 2, "tcp", 0),
        leaf=ca.leaf("web"), roots=(ca.root_pem,), intentions=(), default=DefaultDecision(True, "x"))
    assert context_key(snap) == context_key(replace(snap, version="other", index=9))
    assert context_key(snap) != context_key(replace(snap, leaf=ca.leaf("web")))
    assert context_key(snap) != context_key(replace(snap, roots=(ca.root_pem, ca.root_pem)))
    assert context_key(replace(snap, leaf=None)) is None


@pytest.mark.parametrize("exc, label", [
    (TimeoutError(), "timeout"),
    (ConnectionResetError(), "connection_reset"),
    (BrokenPipeError(), "connection_reset"),
    (ConnectionRefusedError(), "connection_refused"),
    (OSError(99, "cannot assign"), "os_error"),
    (ssl.SSLCertVerificationError(1, "certificate verify failed"), "certificate_verify_failed"),
    (PeerMismatch("nope"), "spiffe_id_mismatch"),
    (ValueError("odd"), "valueerror"),
], ids=["timeout", "reset", "broken pipe", "refused", "os error", "verify", "mismatch", "other"])
def test_failure_reason_labels(exc, label):
    assert failure_reason(exc) == label


def test_an_ssl_error_is_labelled_by_its_openssl_reason():
    exc = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    exc.reason = "WRONG_VERSION_NUMBER"
    assert failure_reason(exc) == "wrong_version_number"
