"""SDS secrets: the proxy's leaf certificate and the trust bundle (pure).

Rules (DESIGN: SDS secret names; reference/envoy-xds.md §2.9):
1. ``leaf/<ns>/<service>``: a ``tls_certificate`` with the leaf chain (leaf +
   intermediates, as the snapshot holds it) and its private key, inline bytes.
2. ``roots``: a ``validation_context`` whose ``trusted_ca`` is every root of the
   snapshot, concatenated in the snapshot's order (old and new root both during a
   rotation).
3. A secret with nothing in it is not sent: no leaf yet, no leaf secret; no roots, no
   ``roots`` secret. Resources that would name a missing secret are not built either
   (resources.py), so Envoy never waits on a secret that will not come.
4. A terminating gateway also presents each linked service's identity: one
   ``leaf/<ns>/<service>`` per linked service that has a leaf.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2

from trellis.proxycfg.model import ConnectProxySnapshot
from trellis.xds import types


def leaf_name(snapshot: ConnectProxySnapshot) -> str:
    """Rule 1: the name of the secret the proxy presents."""
    return types.leaf_secret(snapshot.namespace, snapshot.service)


def build_secrets(snapshot: ConnectProxySnapshot) -> list[secret_pb2.Secret]:
    """Rules 1-4: the secrets of ``snapshot``, sorted by name."""
    secrets: list[secret_pb2.Secret] = []
    if snapshot.leaf is not None:
        secrets.append(build_leaf(leaf_name(snapshot), snapshot.leaf.cert_pem, snapshot.leaf.private_key_pem))
    for ls in snapshot.terminating.services if snapshot.terminating is not None else ():  # rule 4
        if ls.leaf is not None:
            secrets.append(build_leaf(types.leaf_secret(ls.namespace, ls.name), ls.leaf.cert_pem,
                                      ls.leaf.private_key_pem))
    if snapshot.roots:
        secrets.append(build_roots(snapshot.roots))
    return sorted(secrets, key=lambda s: s.name)


def build_leaf(name: str, cert_pem: str, key_pem: str) -> secret_pb2.Secret:
    """Rule 1."""
    return secret_pb2.Secret(
        name=name,
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(inline_bytes=_pem(cert_pem)),
            private_key=base_pb2.DataSource(inline_bytes=_pem(key_pem)),
        ),
    )


def build_roots(roots: tuple[str, ...]) -> secret_pb2.Secret:
    """Rule 2."""
    bundle = b"".join(_pem(pem) for pem in roots)
    return secret_pb2.Secret(
        name=types.ROOTS_SECRET,
        validation_context=common_pb2.CertificateValidationContext(
            trusted_ca=base_pb2.DataSource(inline_bytes=bundle),
        ),
    )


def _pem(text: str) -> bytes:
    """PEM text ending in exactly one newline, so concatenated bundles stay well formed."""
    return text.strip().encode("utf-8") + b"\n"
