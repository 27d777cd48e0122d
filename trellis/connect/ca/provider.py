"""CA providers: where roots come from and who holds the signing key.

The built-in ``consul`` provider keeps its keys in the state store and signs here.
A provider that keeps its keys elsewhere (Vault, later) implements the same three
operations; ``CAManager`` never touches a private key itself.

Rules:
1. ``make_root`` returns the root certificate and, for providers whose keys trellis
   keeps, its key (stored in the root's record); an imported root is checked first.
2. ``sign_leaf`` and ``cross_sign`` receive the stored root record that signs.
3. Work that can be slow (key generation, RSA signatures) runs off the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import secrets
import string
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from trellis.connect.ca import certs, rotation
from trellis.connect.ca.config import PROVIDER, CAConfig, check_provider
from trellis.connect.ca.model import CARoot

_UID_ALPHABET = string.ascii_lowercase + string.digits


class Provider(Protocol):
    name: str

    async def make_root(self, cfg: CAConfig, cluster_id: str,
                        now: dt.datetime) -> tuple[x509.Certificate, certs.PrivateKey]: ...

    async def sign_leaf(self, root: CARoot, csr: x509.CertificateSigningRequest, *, serial: int,
                        now: dt.datetime, ttl: dt.timedelta) -> x509.Certificate: ...

    async def cross_sign(self, old: CARoot, new_root: x509.Certificate, *, serial: int, now: dt.datetime,
                         end: dt.datetime) -> x509.Certificate: ...


class BuiltinProvider:
    """``Provider = "consul"``: generated or imported roots, keys in the store."""

    name = PROVIDER

    def __init__(self) -> None:
        self._signers: dict[str, tuple[x509.Certificate, certs.PrivateKey]] = {}

    def _signer(self, root: CARoot) -> tuple[x509.Certificate, certs.PrivateKey]:
        found = self._signers.get(root.id)
        if found is None:
            if len(self._signers) > 8:
                self._signers.clear()
            found = self._signers[root.id] = rotation.signer_of(root)
        return found

    async def make_root(self, cfg: CAConfig, cluster_id: str,
                        now: dt.datetime) -> tuple[x509.Certificate, certs.PrivateKey]:
        if cfg.root_cert:
            return certs.check_imported_root(cfg.root_cert, cfg.private_key, now)
        if cfg.private_key:
            key = certs.load_private_key(cfg.private_key)
        else:
            spec = certs.KeySpec(cfg.private_key_type, cfg.private_key_bits)
            key = await asyncio.to_thread(certs.generate_key, spec)
        uid = "".join(secrets.choice(_UID_ALPHABET) for _ in range(8))
        build = functools.partial(certs.build_root, key, cluster_id=cluster_id, uid=uid,
                                  serial=secrets.randbits(63) | 1, now=now,
                                  ttl=dt.timedelta(seconds=cfg.root_cert_ttl))
        return await asyncio.to_thread(build), key

    async def sign_leaf(self, root: CARoot, csr: x509.CertificateSigningRequest, *, serial: int,
                        now: dt.datetime, ttl: dt.timedelta) -> x509.Certificate:
        signer, key = self._signer(root)
        sign = functools.partial(certs.sign_leaf, csr, signer, key, serial=serial, now=now, ttl=ttl)
        # an EC signature takes ~0.1 ms: not worth a thread hop; RSA takes milliseconds
        return await asyncio.to_thread(sign) if isinstance(key, rsa.RSAPrivateKey) else sign()

    async def cross_sign(self, old: CARoot, new_root: x509.Certificate, *, serial: int, now: dt.datetime,
                         end: dt.datetime) -> x509.Certificate:
        old_cert, old_key = self._signer(old)
        return certs.build_cross_signed(new_root, old_cert, old_key, serial=serial, now=now, end=end)


def provider_for(name: str) -> Provider:
    check_provider(name)
    return BuiltinProvider()
