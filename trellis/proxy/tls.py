"""TLS contexts for the proxy's two sides, built from a snapshot's leaf and trust bundle (shell).

Rules:
1. Both contexts speak TLS 1.2 or later, require the peer's certificate, and trust
   exactly ``snapshot.roots``; they present ``leaf.cert_pem`` (leaf + intermediates /
   cross-signed certificates, so peers that trust only an older root still verify it
   during a rotation) with the leaf's key.
2. Server side: any SNI is accepted (DESIGN: interop with Envoy); who may connect is
   authz.py's business, after the handshake.
3. Client side: no hostname check (mesh certificates carry no DNS names); SNI is the
   upstream's ``sni``; after the handshake the peer's URI SAN must equal the
   upstream's ``spiffe_id`` exactly (``check_peer``).
4. Contexts are rebuilt only when the leaf or the roots change (``ContextKey``); a
   context in use by open connections is never modified, so they carry on.
5. The private key reaches OpenSSL through an anonymous in-memory file where the OS
   has one (``memfd_create``), else a 0600 temporary file removed at once.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from trellis.proxy.authz import peer_uris
from trellis.proxycfg.model import ConnectProxySnapshot, LeafSnapshot

ContextKey = tuple[str, str, tuple[str, ...]]  # (cert chain, key, roots)


@dataclass(frozen=True, slots=True)
class Contexts:
    server: ssl.SSLContext
    client: ssl.SSLContext
    key: ContextKey
    leaf_valid_before: float


def context_key(snapshot: ConnectProxySnapshot) -> ContextKey | None:
    """Rule 4: what the contexts depend on; None when the snapshot has no leaf."""
    leaf = snapshot.leaf
    if leaf is None or not snapshot.roots:
        return None
    return (leaf.cert_pem, leaf.private_key_pem, tuple(snapshot.roots))


def build_contexts(leaf: LeafSnapshot, roots: tuple[str, ...]) -> Contexts:
    """Rules 1-3. Raises ssl.SSLError when the PEM does not load."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    bundle = "\n".join(root.strip() for root in roots) + "\n"
    with _pem_files(leaf.cert_pem, leaf.private_key_pem) as (cert_path, key_path):
        for ctx in (server, client):
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cadata=bundle)
            ctx.load_cert_chain(cert_path, key_path)
    return Contexts(server=server, client=client, key=(leaf.cert_pem, leaf.private_key_pem, tuple(roots)),
                    leaf_valid_before=leaf.valid_before)


@contextlib.contextmanager
def _pem_files(cert_pem: str, key_pem: str) -> Iterator[tuple[str, str]]:
    """Rule 5."""
    if hasattr(os, "memfd_create"):
        fds = [os.memfd_create(name, os.MFD_CLOEXEC) for name in ("leaf-cert", "leaf-key")]
        try:
            for fd, text in zip(fds, (cert_pem, key_pem)):
                os.write(fd, text.encode())
            yield f"/proc/self/fd/{fds[0]}", f"/proc/self/fd/{fds[1]}"
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="trellis-proxy-") as tmp:
        paths = (os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem"))
        for path, text in zip(paths, (cert_pem, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        yield paths


class PeerMismatch(ssl.SSLError):
    """The upstream presented a certificate for another identity (rule 3)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "peer identity mismatch"


def check_peer(peercert: Mapping[str, Any] | None, expected_uri: str) -> None:
    """Rule 3: raise PeerMismatch unless the peer's only URI SAN is ``expected_uri``.
    ``peercert`` is ``getpeercert()``'s dict (a transport's ``peercert`` extra info)."""
    uris = peer_uris(peercert)
    if uris != (expected_uri,):
        shown = ", ".join(uris) or "no URI SAN"
        raise PeerMismatch(f"upstream presented {shown}, expected {expected_uri}")


def describe_error(exc: BaseException) -> str:
    """An exception's text for a log line, never empty. Pure."""
    return str(exc) or type(exc).__name__


def failure_reason(exc: BaseException) -> str:
    """A short, bounded label for a failed handshake (the metric's ``reason``). Pure."""
    if isinstance(exc, PeerMismatch):
        return "spiffe_id_mismatch"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "certificate_verify_failed"
    if isinstance(exc, ssl.SSLError):
        return (exc.reason or "ssl_error").lower()
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "connection_reset"
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, OSError):
        return "os_error"
    return type(exc).__name__.lower()
