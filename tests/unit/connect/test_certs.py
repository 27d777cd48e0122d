"""Keys, roots, cross-signing, CSRs, leaves and imported roots (trellis.connect.ca.certs).

Keys are generated once per module (RSA is slow); everything else is built from them
at a fixed ``NOW`` so every validity bound is asserted exactly.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from trellis.connect import spiffe
from trellis.connect.ca import certs
from trellis.connect.ca.errors import InvalidCertificate
from trellis.errors import InvalidInput

NOW = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
ROOT_TTL = 3650 * DAY
CLUSTER_ID = "7f3c2a10-1b2c-4d5e-8f90-0123456789ab"
TD = spiffe.trust_domain(CLUSTER_ID)
WEB_URI = f"spiffe://{TD}/ns/default/dc/dc1/svc/web"


# --- keys, once per module ------------------------------------------------------------------
@pytest.fixture(scope="module")
def ec256() -> ec.EllipticCurvePrivateKey:
    return certs.generate_key(certs.KeySpec("ec", 256))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def ec384() -> ec.EllipticCurvePrivateKey:
    return certs.generate_key(certs.KeySpec("ec", 384))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def rsa2048() -> rsa.RSAPrivateKey:
    return certs.generate_key(certs.KeySpec("rsa", 2048))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def leaf_key() -> ec.EllipticCurvePrivateKey:
    return certs.generate_key(certs.LEAF_KEY)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def rsa1024() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


ROOT_KEYS = ["ec256", "ec384", "rsa2048"]


def make_root(key: certs.PrivateKey, *, uid: str = "abcd1234", serial: int = 7, now: dt.datetime = NOW,
              ttl: dt.timedelta = ROOT_TTL) -> x509.Certificate:
    return certs.build_root(key, cluster_id=CLUSTER_ID, uid=uid, serial=serial, now=now, ttl=ttl)


def spki_sha256(key: certs.PrivateKey | certs.PublicKey) -> bytes:
    pub = key.public_key() if hasattr(key, "private_bytes") else key  # type: ignore[union-attr]
    return hashlib.sha256(
        pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ).digest()


def ext(cert: x509.Certificate, cls: type) -> x509.Extension:
    return cert.extensions.get_extension_for_class(cls)


def client_verify(leaf: x509.Certificate, trusted: list[x509.Certificate],
                  intermediates: list[x509.Certificate] = (), at: dt.datetime = NOW) -> list[x509.Certificate]:
    verifier = PolicyBuilder().store(Store(trusted)).time(at).build_client_verifier()
    return verifier.verify(leaf, list(intermediates)).chain


# --- keys --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fixture", "spec", "pem_header"),
    [
        ("ec256", certs.KeySpec("ec", 256), "-----BEGIN EC PRIVATE KEY-----"),
        ("ec384", certs.KeySpec("ec", 384), "-----BEGIN EC PRIVATE KEY-----"),
        ("rsa2048", certs.KeySpec("rsa", 2048), "-----BEGIN RSA PRIVATE KEY-----"),
    ],
    ids=["ec256", "ec384", "rsa2048"],
)
def test_key_spec_and_pem_round_trip(request: pytest.FixtureRequest, fixture: str, spec: certs.KeySpec,
                                     pem_header: str) -> None:
    key = request.getfixturevalue(fixture)
    assert certs.key_spec_of(key) == spec
    assert certs.key_spec_of(key.public_key()) == spec
    pem = certs.dump_private_key(key)
    assert pem.startswith(pem_header)
    again = certs.load_private_key(pem)
    assert again.private_numbers() == key.private_numbers()


def test_load_private_key_accepts_pkcs8(ec256: ec.EllipticCurvePrivateKey) -> None:
    pem = ec256.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode()
    assert certs.load_private_key(pem).private_numbers() == ec256.private_numbers()


def test_leaf_key_is_p256() -> None:
    assert certs.LEAF_KEY == certs.KeySpec("ec", 256)


@pytest.mark.parametrize(
    ("raw", "text"),
    [(b"", ""), (b"\x00", "00"), (b"\xc7\xbd\x55", "c7:bd:55"), (bytes(range(10, 13)), "0a:0b:0c")],
    ids=["empty", "zero_byte", "three_bytes", "leading_zero_nibbles"],
)
def test_colon_hex(raw: bytes, text: str) -> None:
    assert certs.colon_hex(raw) == text


@pytest.mark.parametrize(
    ("serial", "text"),
    [(0, "00"), (1, "01"), (255, "ff"), (256, "01:00"), (0x0E3A, "0e:3a"), (2**64 - 1, ":".join(["ff"] * 8))],
    ids=["zero", "one", "one_byte_max", "two_bytes", "consul_example", "uint64_max"],
)
def test_serial_hex(serial: int, text: str) -> None:
    assert certs.serial_hex(serial) == text


# --- roots --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("uid", "cluster_id", "cn"),
    [
        ("abcd1234", CLUSTER_ID, "pri-abcd1234.consul.ca.7f3c2a10.consul"),
        ("zz99zz99", "short", "pri-zz99zz99.consul.ca.short.consul"),
    ],
    ids=["uuid_cluster", "cluster_id_shorter_than_8"],
)
def test_root_common_name(uid: str, cluster_id: str, cn: str) -> None:
    assert certs.root_common_name(uid, cluster_id) == cn


@pytest.mark.parametrize("key_fixture", ROOT_KEYS, ids=ROOT_KEYS)
def test_root_has_exactly_consuls_fields_and_extensions(request: pytest.FixtureRequest, key_fixture: str) -> None:
    key = request.getfixturevalue(key_fixture)
    root = make_root(key, uid="k3y9a7b2", serial=4242)

    cn = "pri-k3y9a7b2.consul.ca.7f3c2a10.consul"
    assert root.subject == x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    assert root.issuer == root.subject
    assert re.fullmatch(r"pri-[a-z0-9]{8}\.consul\.ca\.[0-9a-f]{8}\.consul", cn)
    assert root.serial_number == 4242
    assert root.not_valid_before_utc == NOW - MINUTE
    assert root.not_valid_after_utc == NOW + ROOT_TTL
    assert root.public_key() == key.public_key()

    assert {e.oid for e in root.extensions} == {
        ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE, ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER, ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
    bc = ext(root, x509.BasicConstraints)
    assert bc.critical is True
    assert bc.value == x509.BasicConstraints(ca=True, path_length=None)

    ku = ext(root, x509.KeyUsage)
    assert ku.critical is True
    assert (ku.value.digital_signature, ku.value.key_cert_sign, ku.value.crl_sign) == (True, True, True)
    assert (ku.value.content_commitment, ku.value.key_encipherment, ku.value.data_encipherment,
            ku.value.key_agreement) == (False, False, False, False)

    ski = ext(root, x509.SubjectKeyIdentifier).value.digest
    aki = ext(root, x509.AuthorityKeyIdentifier).value
    assert ski == spki_sha256(key) == certs.key_id(key.public_key())
    assert len(ski) == 32
    assert aki.key_identifier == ski
    assert aki.authority_cert_issuer is None and aki.authority_cert_serial_number is None
    assert certs.subject_key_id(root) == ski

    san = ext(root, x509.SubjectAlternativeName)
    assert san.critical is False
    assert list(san.value) == [x509.UniformResourceIdentifier(f"spiffe://{TD}")]
    assert certs.uri_sans(root) == [f"spiffe://{TD}"]

    assert certs.is_ca(root)
    root.verify_directly_issued_by(root)


@pytest.mark.parametrize(
    ("key_fixture", "hash_name"),
    [("ec256", "sha256"), ("ec384", "sha384"), ("rsa2048", "sha256")],
    ids=ROOT_KEYS,
)
def test_root_signature_hash_follows_go(request: pytest.FixtureRequest, key_fixture: str, hash_name: str) -> None:
    root = make_root(request.getfixturevalue(key_fixture))
    assert root.signature_hash_algorithm is not None
    assert root.signature_hash_algorithm.name == hash_name


def test_fingerprint_id_is_colon_hex_sha1_of_der(ec256: ec.EllipticCurvePrivateKey) -> None:
    root = make_root(ec256)
    fid = certs.fingerprint_id(root)
    assert len(fid) == 59
    assert re.fullmatch(r"([0-9a-f]{2}:){19}[0-9a-f]{2}", fid)
    der = root.public_bytes(serialization.Encoding.DER)
    assert fid == ":".join(f"{b:02x}" for b in hashlib.sha1(der).digest())  # noqa: S324


def test_cert_pem_round_trip(ec256: ec.EllipticCurvePrivateKey) -> None:
    root = make_root(ec256)
    pem = certs.dump_cert(root)
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    assert certs.parse_cert(pem) == root
    assert certs.parse_certs(pem + pem) == [root, root]


def test_subject_key_id_falls_back_to_key_id_without_the_extension(ec256: ec.EllipticCurvePrivateKey) -> None:
    cert = self_signed(ec256, ski=False)
    assert certs.subject_key_id(cert) == spki_sha256(ec256)


# --- CSRs -------------------------------------------------------------------------------------
def test_build_csr_has_empty_subject_and_one_critical_uri_san(leaf_key: ec.EllipticCurvePrivateKey) -> None:
    csr = certs.build_csr(leaf_key, WEB_URI)
    assert csr.subject == x509.Name([])
    assert csr.is_signature_valid
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical is True
    assert list(san.value) == [x509.UniformResourceIdentifier(WEB_URI)]
    assert certs.load_csr(certs.dump_csr(csr)) == csr


@pytest.mark.parametrize(
    ("given", "dns"),
    [
        (("db.example:8443",), ["db.example"]),
        (("localhost", "api.internal"), ["localhost", "api.internal"]),
        (("plain",), ["plain"]),
    ],
    ids=["port_stripped", "several", "no_port"],
)
def test_build_csr_dns_names(leaf_key: ec.EllipticCurvePrivateKey, given: tuple[str, ...], dns: list[str]) -> None:
    csr = certs.build_csr(leaf_key, WEB_URI, given)
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == dns
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [WEB_URI]


def test_load_csr_refuses_garbage() -> None:
    with pytest.raises(InvalidCertificate, match="CSR: malformed"):
        certs.load_csr(b"\x30\x03garbage")


def _csr(key: object, names: list[x509.GeneralName] | None, *,
         subject: x509.Name | None = None) -> x509.CertificateSigningRequest:
    b = x509.CertificateSigningRequestBuilder().subject_name(subject or x509.Name([]))
    if names is not None:
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=True)
    algo = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return b.sign(key, algo)  # type: ignore[arg-type]


def _tampered(csr: x509.CertificateSigningRequest) -> x509.CertificateSigningRequest:
    der = bytearray(certs.dump_csr(csr))
    der[-1] ^= 0x01  # the last byte of the signature's s value
    return x509.load_der_x509_csr(bytes(der))


URI = x509.UniformResourceIdentifier
CSR_REFUSED: dict[str, tuple[Callable[[dict], x509.CertificateSigningRequest], type, str]] = {
    "bad_signature": (lambda k: _tampered(certs.build_csr(k["leaf"], WEB_URI)), InvalidCertificate,
                      "signature does not verify"),
    "two_uris": (lambda k: _csr(k["leaf"], [URI(WEB_URI), URI(WEB_URI.replace("web", "api"))]),
                 InvalidCertificate, "exactly one URI SAN, found 2"),
    "no_uri_only_dns": (lambda k: _csr(k["leaf"], [x509.DNSName("web.example")]), InvalidCertificate,
                        "exactly one URI SAN, found 0"),
    "no_san": (lambda k: _csr(k["leaf"], None, subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web")])),
               InvalidCertificate, "exactly one URI SAN, found 0"),
    "signing_id_uri": (lambda k: _csr(k["leaf"], [URI(f"spiffe://{TD}")]), InvalidCertificate,
                       "is not a service identity"),
    "agent_uri": (lambda k: _csr(k["leaf"], [URI(f"spiffe://{TD}/agent/client/dc/dc1/id/node1")]),
                  InvalidCertificate, "is not a service identity"),
    "not_spiffe_uri": (lambda k: _csr(k["leaf"], [URI("https://web.example/")]), InvalidInput, "scheme"),
    "other_partition": (lambda k: _csr(k["leaf"], [URI(f"spiffe://{TD}/ap/team/ns/default/dc/dc1/svc/web")]),
                        InvalidInput, "partition"),
    "other_trust_domain": (lambda k: _csr(k["leaf"], [URI("spiffe://other.consul/ns/default/dc/dc1/svc/web")]),
                           InvalidCertificate, "trust domain 'other.consul'"),
    "other_datacenter": (lambda k: _csr(k["leaf"], [URI(WEB_URI.replace("/dc/dc1/", "/dc/dc2/"))]),
                         InvalidCertificate, "datacenter 'dc2'"),
    "rsa_1024_key": (lambda k: certs.build_csr(k["rsa1024"], WEB_URI), InvalidCertificate,
                     "RSA key of 1024 bits is too weak"),
    "ed25519_key": (lambda k: _csr(k["ed"], [URI(WEB_URI)]), InvalidCertificate, "must be EC or RSA"),
}


@pytest.fixture(scope="module")
def csr_keys(leaf_key: object, rsa1024: object, ed_key: object) -> dict:
    return {"leaf": leaf_key, "rsa1024": rsa1024, "ed": ed_key}


@pytest.mark.parametrize(("make", "error", "reason"), list(CSR_REFUSED.values()), ids=list(CSR_REFUSED))
def test_check_csr_refuses(csr_keys: dict, make: Callable[[dict], x509.CertificateSigningRequest], error: type,
                           reason: str) -> None:
    csr = make(csr_keys)
    with pytest.raises(error) as err:
        certs.check_csr(csr, trust_domain=TD, datacenter="dc1")
    assert reason in str(err.value)
    if error is InvalidCertificate:
        assert err.value.field == "CSR"


@pytest.mark.parametrize(
    ("key_fixture", "uri", "expected"),
    [
        ("leaf_key", WEB_URI, spiffe.ServiceID(TD, "default", "dc1", "web")),
        ("ec384", f"spiffe://{TD}/ns/default/dc/dc1/svc/a%2Fb", spiffe.ServiceID(TD, "default", "dc1", "a/b")),
        ("rsa2048", f"spiffe://{TD}/ap/default/ns/default/dc/dc1/svc/db", spiffe.ServiceID(TD, "default", "dc1", "db")),
        ("leaf_key", f"spiffe://{TD.upper()}/ns/default/dc/dc1/svc/web", spiffe.ServiceID(TD, "default", "dc1", "web")),
    ],
    ids=["p256", "p384_escaped_name", "rsa2048_default_partition", "upper_case_trust_domain"],
)
def test_check_csr_accepts(request: pytest.FixtureRequest, key_fixture: str, uri: str,
                           expected: spiffe.ServiceID) -> None:
    csr = certs.build_csr(request.getfixturevalue(key_fixture), uri)
    assert certs.check_csr(csr, trust_domain=TD, datacenter="dc1") == expected


# --- leaves ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("key_fixture", ROOT_KEYS, ids=ROOT_KEYS)
def test_leaf_has_exactly_consuls_fields_and_extensions(request: pytest.FixtureRequest, key_fixture: str,
                                                        leaf_key: ec.EllipticCurvePrivateKey) -> None:
    root_key = request.getfixturevalue(key_fixture)
    root = make_root(root_key)
    now = NOW + DAY
    csr = certs.build_csr(leaf_key, WEB_URI)
    leaf = certs.sign_leaf(csr, root, root_key, serial=0x0E3A, now=now, ttl=72 * HOUR)

    assert leaf.subject == x509.Name([])
    assert leaf.issuer == root.subject
    assert leaf.serial_number == 0x0E3A
    assert leaf.public_key() == leaf_key.public_key()
    assert leaf.not_valid_before_utc == now - MINUTE
    assert leaf.not_valid_after_utc == now + 72 * HOUR

    assert {e.oid for e in leaf.extensions} == {
        ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
    san = ext(leaf, x509.SubjectAlternativeName)
    assert san.critical is True  # the subject is empty (RFC 5280 4.2.1.6)
    assert list(san.value) == [x509.UniformResourceIdentifier(WEB_URI)]

    bc = ext(leaf, x509.BasicConstraints)
    assert bc.critical is True and bc.value.ca is False
    assert not certs.is_ca(leaf)

    eku = ext(leaf, x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]

    ku = ext(leaf, x509.KeyUsage).value
    assert (ku.digital_signature, ku.key_encipherment, ku.data_encipherment, ku.key_agreement) == (True,) * 4
    assert (ku.key_cert_sign, ku.crl_sign, ku.content_commitment) == (False, False, False)

    assert ext(leaf, x509.AuthorityKeyIdentifier).value.key_identifier == certs.subject_key_id(root)
    assert ext(leaf, x509.SubjectKeyIdentifier).value.digest == spki_sha256(leaf_key)

    leaf.verify_directly_issued_by(root)
    chain = client_verify(leaf, [root], at=now)
    assert chain == [leaf, root]


@pytest.mark.parametrize(
    ("root_ttl", "sign_after", "ttl", "expected_after"),
    [
        (10 * HOUR, 9 * HOUR, 72 * HOUR, "root"),
        (10 * HOUR, 0 * HOUR, 10 * HOUR, "root"),
        (10 * HOUR, 1 * HOUR, 1 * HOUR, "ttl"),
    ],
    ids=["capped_at_root_not_after", "ttl_equal_to_root_ttl_at_root_birth", "within_root"],
)
def test_leaf_not_after_is_capped_at_the_signers(ec256: ec.EllipticCurvePrivateKey,
                                                 leaf_key: ec.EllipticCurvePrivateKey, root_ttl: dt.timedelta,
                                                 sign_after: dt.timedelta, ttl: dt.timedelta,
                                                 expected_after: str) -> None:
    root = make_root(ec256, ttl=root_ttl)
    now = NOW + sign_after
    leaf = certs.sign_leaf(certs.build_csr(leaf_key, WEB_URI), root, ec256, serial=1, now=now, ttl=ttl)
    expected = root.not_valid_after_utc if expected_after == "root" else now + ttl
    assert leaf.not_valid_after_utc == expected
    assert leaf.not_valid_after_utc <= root.not_valid_after_utc


def test_leaf_not_before_is_never_before_the_signers(ec256: ec.EllipticCurvePrivateKey,
                                                     leaf_key: ec.EllipticCurvePrivateKey) -> None:
    root = make_root(ec256)  # valid from NOW - 1m
    csr = certs.build_csr(leaf_key, WEB_URI)
    leaf = certs.sign_leaf(csr, root, ec256, serial=1, now=NOW - dt.timedelta(seconds=30), ttl=HOUR)
    assert leaf.not_valid_before_utc == root.not_valid_before_utc


def test_leaf_copies_dns_names_from_the_csr(ec256: ec.EllipticCurvePrivateKey,
                                           leaf_key: ec.EllipticCurvePrivateKey) -> None:
    root = make_root(ec256)
    csr = certs.build_csr(leaf_key, WEB_URI, ("gw.example:8443", "localhost"))
    leaf = certs.sign_leaf(csr, root, ec256, serial=1, now=NOW, ttl=HOUR)
    san = ext(leaf, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [WEB_URI]
    assert san.get_values_for_type(x509.DNSName) == ["gw.example", "localhost"]


# --- cross-signing ----------------------------------------------------------------------------------
CROSS_PAIRS = [("ec256", "ec384"), ("ec384", "rsa2048"), ("rsa2048", "ec256")]


@pytest.mark.parametrize(("old_fixture", "new_fixture"), CROSS_PAIRS, ids=[f"{a}_to_{b}" for a, b in CROSS_PAIRS])
def test_cross_signed_is_the_new_root_issued_by_the_old(request: pytest.FixtureRequest, old_fixture: str,
                                                        new_fixture: str, leaf_key: ec.EllipticCurvePrivateKey) -> None:
    old_key, new_key = request.getfixturevalue(old_fixture), request.getfixturevalue(new_fixture)
    old = make_root(old_key, uid="old00000", serial=1)
    later = NOW + 30 * DAY
    new = make_root(new_key, uid="new00000", serial=2, now=later)
    cross = certs.build_cross_signed(new, old, old_key, serial=99, now=later, end=later + 7 * DAY)

    cross.verify_directly_issued_by(old)
    assert cross.issuer == old.subject
    assert cross.subject == new.subject
    assert cross.public_key() == new.public_key()
    assert certs.subject_key_id(cross) == certs.subject_key_id(new)
    assert ext(cross, x509.AuthorityKeyIdentifier).value.key_identifier == certs.subject_key_id(old)
    assert cross.serial_number == 99
    assert cross.not_valid_before_utc == later - MINUTE
    assert cross.not_valid_after_utc == later + 7 * DAY
    assert certs.is_ca(cross)
    assert certs.uri_sans(cross) == [f"spiffe://{TD}"]
    assert {e.oid for e in cross.extensions} == {e.oid for e in new.extensions}

    leaf = certs.sign_leaf(certs.build_csr(leaf_key, WEB_URI), new, new_key, serial=5, now=later, ttl=72 * HOUR)
    # by hand: leaf <- cross <- old
    leaf.verify_directly_issued_by(cross)
    cross.verify_directly_issued_by(old)
    # and with a path builder: a peer trusting only the old root accepts the new leaf via cross ...
    assert client_verify(leaf, [old], [cross], at=later) == [leaf, cross, old]
    # ... while one trusting the new root needs nothing else
    assert client_verify(leaf, [new], at=later) == [leaf, new]
    # without the cross-signed certificate, the old root alone does not accept it
    with pytest.raises(Exception):  # noqa: B017, PT011 - cryptography's VerificationError
        client_verify(leaf, [old], at=later)


def test_cross_signed_never_outlives_the_old_root(ec256: ec.EllipticCurvePrivateKey,
                                                  ec384: ec.EllipticCurvePrivateKey) -> None:
    old = make_root(ec256, ttl=10 * DAY)
    new = make_root(ec384, now=NOW + 5 * DAY)
    cross = certs.build_cross_signed(new, old, ec256, serial=3, now=NOW + 5 * DAY, end=NOW + 400 * DAY)
    assert cross.not_valid_after_utc == old.not_valid_after_utc


# --- imported roots --------------------------------------------------------------------------------
def self_signed(key: object, *, issuer_key: object | None = None, subject: str = "Imported Root",
                issuer: str | None = None, ca: bool | None = True, usage: x509.KeyUsage | None = None,
                not_before: dt.datetime = NOW - DAY, not_after: dt.datetime = NOW + 365 * DAY,
                ski: bool = True) -> x509.Certificate:
    signer = issuer_key or key
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer or subject)]))
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(1234).not_valid_before(not_before).not_valid_after(not_after)
    )
    if ca is not None:
        b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if usage is not None:
        b = b.add_extension(usage, critical=True)
    if ski:
        ski_ext = x509.SubjectKeyIdentifier.from_public_key(key.public_key())  # type: ignore[attr-defined]
        b = b.add_extension(ski_ext, critical=False)
    algo = None if isinstance(signer, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return b.sign(signer, algo)  # type: ignore[arg-type]


def _usage(**on: bool) -> x509.KeyUsage:
    fields = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
              "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"]
    return x509.KeyUsage(**{f: on.get(f, False) for f in fields})


@dataclass
class Kit:
    ec256: ec.EllipticCurvePrivateKey
    ec384: ec.EllipticCurvePrivateKey
    rsa2048: rsa.RSAPrivateKey
    ed: ed25519.Ed25519PrivateKey
    rsa1024: rsa.RSAPrivateKey

    def pem(self, cert: x509.Certificate) -> str:
        return certs.dump_cert(cert)

    def key(self, key: object) -> str:
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
        return certs.dump_private_key(key)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def kit(ec256: object, ec384: object, rsa2048: object, ed_key: object, rsa1024: object) -> Kit:
    return Kit(ec256, ec384, rsa2048, ed_key, rsa1024)  # type: ignore[arg-type]


IMPORT_REFUSED: dict[str, tuple[Callable[[Kit], tuple[str, str]], str, str]] = {
    "malformed_pem": (
        lambda k: ("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n", k.key(k.ec256)),
        "RootCert", "malformed PEM certificate",
    ),
    "not_pem_at_all": (lambda k: ("hello", k.key(k.ec256)), "RootCert", "no PEM certificate found"),
    "empty_cert": (lambda k: ("", k.key(k.ec256)), "RootCert", "no PEM certificate found"),
    "two_certs": (
        lambda k: (k.pem(make_root(k.ec256)) + k.pem(make_root(k.ec384)), k.key(k.ec256)),
        "RootCert", "expected one certificate, found 2",
    ),
    "key_mismatch": (lambda k: (k.pem(make_root(k.ec256)), k.key(k.ec384)), "PrivateKey", "does not match"),
    "weak_rsa_1024": (lambda k: (k.pem(make_root(k.rsa1024)), k.key(k.rsa1024)), "PrivateKey", "too weak"),
    "key_mismatch_rsa_cert_ec_key": (
        lambda k: (k.pem(make_root(k.rsa2048)), k.key(k.ec256)), "PrivateKey", "does not match",
    ),
    "key_mismatch_ed25519_cert_ec_key": (
        lambda k: (k.pem(self_signed(k.ed)), k.key(k.ec256)), "PrivateKey", "does not match",
    ),
    "not_ca": (lambda k: (k.pem(self_signed(k.ec256, ca=False)), k.key(k.ec256)), "RootCert", "not a CA"),
    "no_basic_constraints": (
        lambda k: (k.pem(self_signed(k.ec256, ca=None)), k.key(k.ec256)), "RootCert", "not a CA",
    ),
    "key_usage_without_cert_sign": (
        lambda k: (k.pem(self_signed(k.ec256, usage=_usage(digital_signature=True, crl_sign=True))), k.key(k.ec256)),
        "RootCert", "does not allow certificate signing",
    ),
    "not_self_signed": (
        lambda k: (k.pem(self_signed(k.ec256, issuer_key=k.ec384, issuer="Some Other CA")), k.key(k.ec256)),
        "RootCert", "not self-signed",
    ),
    "self_issued_but_signed_by_another_key": (
        lambda k: (k.pem(self_signed(k.ec256, issuer_key=k.ec384)), k.key(k.ec256)),
        "RootCert", "self-signature does not verify",
    ),
    "expired": (
        lambda k: (k.pem(self_signed(k.ec256, not_before=NOW - 10 * DAY, not_after=NOW - DAY)), k.key(k.ec256)),
        "RootCert", "expired",
    ),
    "expires_exactly_now": (
        lambda k: (k.pem(self_signed(k.ec256, not_before=NOW - 10 * DAY, not_after=NOW)), k.key(k.ec256)),
        "RootCert", "expired",
    ),
    "not_yet_valid": (
        lambda k: (k.pem(self_signed(k.ec256, not_before=NOW + HOUR)), k.key(k.ec256)),
        "RootCert", "not valid until",
    ),
    "encrypted_key": (
        lambda k: (k.pem(make_root(k.ec256)), k.ec256.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret")).decode()),
        "PrivateKey", "encrypted",
    ),
    "garbage_key": (
        lambda k: (k.pem(make_root(k.ec256)),
                   "-----BEGIN EC PRIVATE KEY-----\nbm90IGEga2V5\n-----END EC PRIVATE KEY-----\n"),
        "PrivateKey", "not a PEM private key",
    ),
    "empty_key": (lambda k: (k.pem(make_root(k.ec256)), ""), "PrivateKey", "not a PEM private key"),
    "ed25519_key": (lambda k: (k.pem(self_signed(k.ed)), k.key(k.ed)), "PrivateKey", "unsupported key type"),
}


@pytest.mark.parametrize(("make", "field", "reason"), list(IMPORT_REFUSED.values()), ids=list(IMPORT_REFUSED))
def test_check_imported_root_refuses(kit: Kit, make: Callable[[Kit], tuple[str, str]], field: str,
                                     reason: str) -> None:
    cert_pem, key_pem = make(kit)
    with pytest.raises(InvalidCertificate) as err:
        certs.check_imported_root(cert_pem, key_pem, NOW)
    assert err.value.field == field
    assert reason in err.value.reason
    assert str(err.value).startswith(f"{field}: ")


IMPORT_ACCEPTED: dict[str, Callable[[Kit], tuple[x509.Certificate, str]]] = {
    "trellis_root_ec": lambda k: (make_root(k.ec256), k.key(k.ec256)),
    "trellis_root_rsa": lambda k: (make_root(k.rsa2048), k.key(k.rsa2048)),
    "pkcs8_key": lambda k: (make_root(k.ec384), k.ec384.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()),
    "no_key_usage_extension": lambda k: (self_signed(k.ec256), k.key(k.ec256)),
    "key_usage_with_cert_sign": lambda k: (self_signed(k.ec256, usage=_usage(key_cert_sign=True)), k.key(k.ec256)),
    "starts_within_clock_skew": lambda k: (self_signed(k.ec256, not_before=NOW + dt.timedelta(seconds=30)),
                                           k.key(k.ec256)),
}


@pytest.mark.parametrize("make", list(IMPORT_ACCEPTED.values()), ids=list(IMPORT_ACCEPTED))
def test_check_imported_root_accepts(kit: Kit, make: Callable[[Kit], tuple[x509.Certificate, str]]) -> None:
    cert, key_pem = make(kit)
    got_cert, got_key = certs.check_imported_root("\n" + certs.dump_cert(cert) + "\n", key_pem, NOW)
    assert got_cert == cert
    assert got_key.public_key() == cert.public_key()
