"""Certificates, keys and CSRs of the Connect CA (pure: keys, serials and ``now`` come in).

Rules (Consul's ``agent/connect/ca/provider_consul.go`` and ``agent/connect/csr.go``):
1. A key ID (SubjectKeyId, and AuthorityKeyId of what the key signs) is the SHA-256 of
   the DER SubjectPublicKeyInfo, 32 bytes; shown as lower-case colon-hex.
2. A root's ID is the colon-hex SHA-1 fingerprint of its DER.
3. Leaves: empty subject, one URI SAN (the SPIFFE ID, critical since the subject is
   empty), CA=false, usages for TLS client and server, NotBefore backdated by
   ``CLOCK_SKEW``, NotAfter never past the signer's.
4. A cross-signed certificate is the new root's subject and key issued by the old
   root: holders of either root can verify a chain that carries it.
5. cryptography's exceptions become ``InvalidCertificate`` here and nowhere else.

Randomness (key generation) is the one impure input; functions that need a key take
one, and ``generate_key`` is the only function here that makes one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trellis.connect import spiffe
from trellis.connect.ca.errors import InvalidCertificate

CLOCK_SKEW = dt.timedelta(minutes=1)
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

_CURVES: dict[int, ec.EllipticCurve] = {
    224: ec.SECP224R1(), 256: ec.SECP256R1(), 384: ec.SECP384R1(), 521: ec.SECP521R1()
}
EC_BITS = tuple(_CURVES)
RSA_BITS = (2048, 4096)


@dataclass(frozen=True, slots=True)
class KeySpec:
    type: str  # "ec" | "rsa"
    bits: int


LEAF_KEY = KeySpec("ec", 256)  # leaves are always P-256, whatever the CA's key (Consul)


# -- keys --------------------------------------------------------------------------
def generate_key(spec: KeySpec) -> PrivateKey:
    """A new private key (impure: randomness). RSA keys take a while: call off the loop."""
    if spec.type == "ec":
        return ec.generate_private_key(_CURVES[spec.bits])
    return rsa.generate_private_key(public_exponent=65537, key_size=spec.bits)


def key_spec_of(key: PrivateKey | PublicKey) -> KeySpec:
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return KeySpec("ec", key.curve.key_size)
    return KeySpec("rsa", key.key_size)


def dump_private_key(key: PrivateKey) -> str:
    """PEM the way Consul writes keys: SEC1 ``EC PRIVATE KEY`` or PKCS#1 ``RSA PRIVATE KEY``."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


def load_private_key(pem: str, field: str = "PrivateKey") -> PrivateKey:
    """Parse an unencrypted EC or RSA private key in PEM (SEC1, PKCS#1 or PKCS#8)."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except TypeError:
        raise InvalidCertificate(field, "the key is encrypted; give it unencrypted") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidCertificate(field, f"not a PEM private key ({_why(exc)})") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise InvalidCertificate(field, f"unsupported key type {type(key).__name__}; use an EC or RSA key")
    return key


def key_id(public_key: PublicKey) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo (Consul's non-standard 32-byte key ID)."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).digest()


def colon_hex(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def serial_hex(serial: int) -> str:
    """A serial number as Consul shows a leaf's: colon-hex of its big-endian bytes."""
    return colon_hex(serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big"))


# -- certificates: parse and dump ------------------------------------------------------
def dump_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def parse_certs(pem: str, field: str = "RootCert") -> list[x509.Certificate]:
    """Every certificate in a PEM text; at least one."""
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise InvalidCertificate(field, "no PEM certificate found (expected -----BEGIN CERTIFICATE-----)")
    try:
        return x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise InvalidCertificate(field, f"malformed PEM certificate ({_why(exc)})") from None


def parse_cert(pem: str, field: str = "RootCert") -> x509.Certificate:
    certs = parse_certs(pem, field)
    if len(certs) != 1:
        raise InvalidCertificate(field, f"expected one certificate, found {len(certs)}")
    return certs[0]


def fingerprint_id(cert: x509.Certificate) -> str:
    """A root's ID: colon-hex SHA-1 of its DER."""
    return colon_hex(cert.fingerprint(hashes.SHA1()))  # noqa: S303 - an ID, as Consul's, not a security check


def subject_key_id(cert: x509.Certificate) -> bytes:
    """The certificate's SubjectKeyIdentifier, or our key ID of its key when it has none."""
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return key_id(cert.public_key())  # type: ignore[arg-type]


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def uri_sans(cert: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def not_before(cert: x509.Certificate) -> dt.datetime:
    return cert.not_valid_before_utc


def not_after(cert: x509.Certificate) -> dt.datetime:
    return cert.not_valid_after_utc


# -- building ----------------------------------------------------------------------------
def _hash_for(key: PrivateKey) -> hashes.HashAlgorithm:
    """Go's choice per key: P-384 → SHA-384, P-521 → SHA-512, else SHA-256."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {384: hashes.SHA384(), 521: hashes.SHA512()}.get(key.curve.key_size, hashes.SHA256())
    return hashes.SHA256()


_CA_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
    key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
)
_LEAF_USAGE = x509.KeyUsage(
    digital_signature=True, content_commitment=False, key_encipherment=True, data_encipherment=True,
    key_agreement=True, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
)


def root_common_name(uid: str, cluster_id: str) -> str:
    """``pri-<uid>.consul.ca.<first 8 of the cluster id>.consul`` (Consul's primary-DC name)."""
    return f"pri-{uid}.consul.ca.{cluster_id[:8]}.consul"


def _ca_builder(subject: x509.Name, public_key: PublicKey, issuer: x509.Name, *, serial: int,
                start: dt.datetime, end: dt.datetime, td: str, authority_key_id: bytes) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer).public_key(public_key)
        .serial_number(serial).not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier(key_id(public_key)), critical=False)
        .add_extension(_aki(authority_key_id), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"spiffe://{td}")]),
                       critical=False)
    )


def build_root(key: PrivateKey, *, cluster_id: str, uid: str, serial: int, now: dt.datetime,
               ttl: dt.timedelta) -> x509.Certificate:
    """A self-signed root for the cluster's trust domain, valid from ``now`` (less the
    clock-skew allowance) for ``ttl``. Pure but for the signature's randomness."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, root_common_name(uid, cluster_id))])
    td = spiffe.trust_domain(cluster_id)
    pub = key.public_key()
    builder = _ca_builder(name, pub, name, serial=serial, start=now - CLOCK_SKEW, end=now + ttl, td=td,
                          authority_key_id=key_id(pub))
    return builder.sign(key, _hash_for(key))


def build_cross_signed(new_root: x509.Certificate, old_root: x509.Certificate, old_key: PrivateKey, *,
                       serial: int, now: dt.datetime, end: dt.datetime) -> x509.Certificate:
    """The new root's subject and public key, issued and signed by the old root, so a
    peer that trusts only the old root accepts leaves of the new one (rule 4)."""
    builder = x509.CertificateBuilder(
        issuer_name=old_root.subject, subject_name=new_root.subject, public_key=new_root.public_key(),
        serial_number=serial, not_valid_before=now - CLOCK_SKEW, not_valid_after=min(end, not_after(old_root)),
    )
    for ext in new_root.extensions:
        if isinstance(ext.value, x509.AuthorityKeyIdentifier):
            continue
        builder = builder.add_extension(ext.value, critical=ext.critical)
    builder = builder.add_extension(_aki(subject_key_id(old_root)), critical=False)
    return builder.sign(old_key, _hash_for(old_key))


def build_csr(key: PrivateKey, uri: str, dns_names: tuple[str, ...] = ()) -> x509.CertificateSigningRequest:
    """A CSR with an empty subject and the SPIFFE ID as its only URI SAN (the agent's side)."""
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
    names += [x509.DNSName(d.rsplit(":", 1)[0] if d.count(":") == 1 else d) for d in dns_names]
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
        .sign(key, _hash_for(key))
    )


def dump_csr(csr: x509.CertificateSigningRequest) -> bytes:
    return csr.public_bytes(serialization.Encoding.DER)


def load_csr(der: bytes) -> x509.CertificateSigningRequest:
    try:
        return x509.load_der_x509_csr(der)
    except ValueError as exc:
        raise InvalidCertificate("CSR", f"malformed ({_why(exc)})") from None


def check_csr(csr: x509.CertificateSigningRequest, *, trust_domain: str, datacenter: str,
              dns_names: Callable[[spiffe.ServiceID], tuple[str, ...]] = lambda sid: ()) -> spiffe.ServiceID:
    """What the server checks before signing: the CSR's own signature, one SPIFFE
    service ID in our trust domain and datacenter, a strong enough key, and no other
    SAN but DNS names ``dns_names(service ID)`` grants it (an ingress gateway's, from its
    entry; none for any other service). Pure."""
    if not csr.is_signature_valid:
        raise InvalidCertificate("CSR", "its signature does not verify")
    uris = uri_sans(csr)
    if len(uris) != 1:
        raise InvalidCertificate("CSR", f"expected exactly one URI SAN, found {len(uris)}")
    sid = spiffe.parse_id(uris[0])
    if not isinstance(sid, spiffe.ServiceID):
        raise InvalidCertificate("CSR", f"{uris[0]} is not a service identity")
    if sid.trust_domain != trust_domain:
        raise InvalidCertificate("CSR", f"SPIFFE ID {uris[0]} is in trust domain {sid.trust_domain!r}, "
                                        f"not this cluster's {trust_domain!r}")
    if sid.datacenter != datacenter:
        raise InvalidCertificate("CSR", f"SPIFFE ID {uris[0]} names datacenter {sid.datacenter!r}, "
                                        f"this server signs for {datacenter!r}")
    _check_other_sans(csr, sid, {n.lower() for n in dns_names(sid)})
    pub = csr.public_key()
    if isinstance(pub, rsa.RSAPublicKey) and pub.key_size < 2048:
        raise InvalidCertificate("CSR", f"RSA key of {pub.key_size} bits is too weak (2048 at least)")
    if not isinstance(pub, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey)):
        raise InvalidCertificate("CSR", "the key must be EC or RSA")
    return sid


def _check_other_sans(csr: x509.CertificateSigningRequest, sid: spiffe.ServiceID, granted: set[str]) -> None:
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return
    for name in sans:
        if isinstance(name, x509.UniformResourceIdentifier):
            continue
        if not isinstance(name, x509.DNSName):
            raise InvalidCertificate("CSR", f"SAN {name.value!r} is not a URI or DNS name")
        if name.value.lower() not in granted:
            raise InvalidCertificate("CSR", f"DNS SAN {name.value!r} is not one service {sid.service!r} is granted "
                                            "(only an ingress gateway with TLS has DNS SANs: its entry's hosts)")


def sign_leaf(csr: x509.CertificateSigningRequest, signer: x509.Certificate, signer_key: PrivateKey, *,
              serial: int, now: dt.datetime, ttl: dt.timedelta) -> x509.Certificate:
    """Issue a leaf for a checked CSR (rule 3). Pure but for the signature's randomness."""
    try:
        requested = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        requested = x509.SubjectAlternativeName([])
    names = [n for n in requested if isinstance(n, (x509.UniformResourceIdentifier, x509.DNSName, x509.IPAddress))]
    pub = csr.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject).issuer_name(signer.subject).public_key(pub)
        .serial_number(serial)
        .not_valid_before(max(now - CLOCK_SKEW, not_before(signer)))
        .not_valid_after(min(now + ttl, not_after(signer)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_LEAF_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier(key_id(pub)), critical=False)  # type: ignore[arg-type]
        .add_extension(_aki(subject_key_id(signer)), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=len(csr.subject) == 0)
    )
    return builder.sign(signer_key, _hash_for(signer_key))


def _aki(key_identifier: bytes) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier(key_identifier=key_identifier, authority_cert_issuer=None,
                                       authority_cert_serial_number=None)


# -- checking an imported CA ---------------------------------------------------------------
def check_imported_root(cert_pem: str, key_pem: str, now: dt.datetime) -> tuple[x509.Certificate, PrivateKey]:
    """A user's RootCert and PrivateKey, checked before anything is stored. Pure.

    Refused: malformed PEM, several certificates, a key that is not the certificate's,
    a certificate that is not a CA (BasicConstraints CA=true, and keyCertSign when it
    has a KeyUsage), not self-signed, expired or not valid yet.
    """
    cert = parse_cert(cert_pem, "RootCert")
    key = load_private_key(key_pem, "PrivateKey")
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        raise InvalidCertificate("PrivateKey", "the private key does not match RootCert's public key")
    spec = key_spec_of(key)
    if (spec.type == "rsa" and spec.bits < 2048) or (spec.type == "ec" and spec.bits < 224):
        raise InvalidCertificate("PrivateKey", f"a {spec.type.upper()} key of {spec.bits} bits is too weak "
                                               "(RSA 2048 or EC P-224 at least)")
    if not is_ca(cert):
        raise InvalidCertificate("RootCert", "the certificate is not a CA (BasicConstraints CA is not true)")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.key_cert_sign:
            raise InvalidCertificate("RootCert", "the certificate's KeyUsage does not allow certificate signing")
    except x509.ExtensionNotFound:
        pass
    if cert.issuer != cert.subject:
        raise InvalidCertificate("RootCert", "the certificate is not self-signed: give the root of the chain "
                                             "(trellis trusts exactly the roots it signs with)")
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        raise InvalidCertificate("RootCert", "the certificate's self-signature does not verify") from None
    if not_after(cert) <= now:
        raise InvalidCertificate("RootCert", f"the certificate expired at {not_after(cert).isoformat()}")
    if not_before(cert) > now + CLOCK_SKEW:
        raise InvalidCertificate("RootCert", f"the certificate is not valid until {not_before(cert).isoformat()}")
    return cert, key


def _why(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]

