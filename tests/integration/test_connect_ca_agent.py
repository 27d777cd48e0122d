"""The Connect CA against a real agent: leaves, roots, rotation over real TLS,
pruning, restarts, refused configurations, rate limits.

Each scenario reads as a story: ask the agent for something over HTTP (or
py-consul), then check it with what a user would use (openssl, Python's ssl).
"""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import consul
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from trellis.testing.agent import AgentProcess, free_port, start_agent

pytestmark = pytest.mark.integration

FAST = 'connect { root_change_jitter = "0s" }'


@pytest.fixture(scope="module")
def ca_agent(tmp_path_factory) -> AgentProcess:
    proc = start_agent(tmp_path_factory.mktemp("ca"), "-hcl", FAST)
    yield proc
    assert proc.stop() == 0, proc.log()


def get(agent: AgentProcess, path: str) -> tuple[dict, object]:
    status, headers, body = agent.request("GET", path)
    assert status == 200, (path, status, body)
    return headers, body


def roots(agent: AgentProcess) -> dict:
    return get(agent, "/v1/connect/ca/roots")[1]  # type: ignore[return-value]


def roots_pem(agent: AgentProcess) -> str:
    status, headers, body = agent.request("GET", "/v1/connect/ca/roots?pem=true")
    assert status == 200 and headers["Content-Type"].startswith("application/pem-certificate-chain")
    return body.decode() if isinstance(body, bytes) else body


def leaf(agent: AgentProcess, service: str, query: str = "") -> tuple[dict, dict]:
    headers, body = get(agent, f"/v1/agent/connect/ca/leaf/{service}{query}")
    return headers, body  # type: ignore[return-value]


def put_config(agent: AgentProcess, body: dict) -> tuple[int, object]:
    status, _, answer = agent.request("PUT", "/v1/connect/ca/configuration", body)
    return status, answer


def first_cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem.encode())[0]


def openssl_verify(tmp: Path, bundle: str, cert_pem: str) -> subprocess.CompletedProcess:
    """``openssl verify -CAfile roots.pem -untrusted chain.pem leaf.pem``, as a user would."""
    certs = x509.load_pem_x509_certificates(cert_pem.encode())
    (tmp / "roots.pem").write_text(bundle)
    (tmp / "leaf.pem").write_bytes(certs[0].public_bytes(serialization.Encoding.PEM))
    args = [shutil.which("openssl") or "openssl", "verify", "-CAfile", str(tmp / "roots.pem")]
    if len(certs) > 1:
        (tmp / "chain.pem").write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs[1:]))
        args += ["-untrusted", str(tmp / "chain.pem")]
    return subprocess.run([*args, str(tmp / "leaf.pem")], capture_output=True, text=True, timeout=30)


# -- real TLS -------------------------------------------------------------------------------
def _context(side: int, cert_pem: str, key_pem: str, bundle: str, tmp: Path, name: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(side)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    (tmp / f"{name}.crt").write_text(cert_pem)
    (tmp / f"{name}.key").write_text(key_pem)
    ctx.load_cert_chain(tmp / f"{name}.crt", tmp / f"{name}.key")
    ctx.load_verify_locations(cadata=bundle)
    return ctx


def _peer_uri(conn: ssl.SSLSocket) -> str:
    return next(v for k, v in conn.getpeercert().get("subjectAltName", ()) if k == "URI")


def mutual_tls(tmp: Path, client: tuple[str, str, str], server: tuple[str, str, str]) -> tuple[str, str]:
    """One mutual-TLS handshake and a byte each way over loopback. ``client`` and
    ``server`` are (CertPEM, PrivateKeyPEM, trusted bundle). Returns the URI each
    side saw in its peer's certificate; raises ssl.SSLError when either refuses."""
    server_ctx = _context(ssl.PROTOCOL_TLS_SERVER, *server, tmp, "server")
    client_ctx = _context(ssl.PROTOCOL_TLS_CLIENT, *client, tmp, "client")
    listener = socket.create_server(("127.0.0.1", 0))
    seen: dict[str, object] = {}

    def serve() -> None:
        raw, _ = listener.accept()
        raw.settimeout(10)
        try:
            with server_ctx.wrap_socket(raw, server_side=True) as conn:
                seen["server"] = _peer_uri(conn)
                conn.sendall(conn.recv(1))
        except (ssl.SSLError, OSError) as exc:
            seen["server_error"] = exc

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as raw:
            with client_ctx.wrap_socket(raw) as conn:
                conn.sendall(b"x")
                assert conn.recv(1) == b"x"
                client_saw = _peer_uri(conn)
    finally:
        thread.join(10)
        listener.close()
    if "server_error" in seen:
        raise seen["server_error"]  # type: ignore[misc]
    return client_saw, seen["server"]  # type: ignore[return-value]


def foreign_leaf(uri: str) -> tuple[str, str]:
    """A leaf with a mesh-looking SPIFFE ID, made by a CA trellis never saw."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "foreign ca")])
    cert = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=True)
            .sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


# -- leaves ----------------------------------------------------------------------------------
def test_a_leaf_chains_to_the_roots_and_names_the_service(ca_agent, tmp_path):
    r = roots(ca_agent)
    td = r["TrustDomain"]
    assert td.endswith(".consul") and r["ActiveRootID"] == r["Roots"][0]["ID"]
    headers, cert = leaf(ca_agent, "web")
    assert cert["Service"] == "web"
    assert cert["ServiceURI"] == f"spiffe://{td}/ns/default/dc/dc1/svc/web"
    assert headers["X-Consul-Index"] == str(cert["ModifyIndex"])
    assert cert["PrivateKeyPEM"].startswith("-----BEGIN EC PRIVATE KEY-----")
    assert openssl_verify(tmp_path, roots_pem(ca_agent), cert["CertPEM"]).returncode == 0
    text = subprocess.run(["openssl", "x509", "-noout", "-text"], input=cert["CertPEM"], capture_output=True,
                          text=True, timeout=30).stdout
    assert f"URI:spiffe://{td}/ns/default/dc/dc1/svc/web" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text


def test_a_leaf_from_a_foreign_ca_does_not_verify(ca_agent, tmp_path):
    cert_pem, _ = foreign_leaf(f"spiffe://{roots(ca_agent)['TrustDomain']}/ns/default/dc/dc1/svc/web")
    result = openssl_verify(tmp_path, roots_pem(ca_agent), cert_pem)
    assert result.returncode != 0 and "unable to get local issuer certificate" in result.stdout + result.stderr


def test_a_foreign_leaf_is_refused_in_a_real_handshake(ca_agent, tmp_path):
    bundle = roots_pem(ca_agent)
    _, server = leaf(ca_agent, "db")
    intruder = foreign_leaf(server["ServiceURI"].replace("/svc/db", "/svc/web"))
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        mutual_tls(tmp_path, (*intruder, bundle), (server["CertPEM"], server["PrivateKeyPEM"], bundle))


def test_leaves_are_cached_and_namespaced(ca_agent):
    _, first = leaf(ca_agent, "cache-me")
    _, again = leaf(ca_agent, "cache-me")
    assert again["SerialNumber"] == first["SerialNumber"]
    _, other_ns = leaf(ca_agent, "cache-me", "?ns=team-a")
    assert other_ns["Namespace"] == "team-a"
    assert "/ns/team-a/dc/dc1/svc/cache-me" in other_ns["ServiceURI"]
    assert other_ns["SerialNumber"] != first["SerialNumber"]


def test_py_consul_reads_roots_configuration_and_leaves(ca_agent):
    c = consul.Consul(host="127.0.0.1", port=ca_agent.http_port)
    r = c.agent.connect.ca.roots()
    assert r["ActiveRootID"] == c.connect.ca.roots()["ActiveRootID"]
    assert c.connect.ca.configuration()["Provider"] == "consul"
    cert = c.agent.connect.ca.leaf("pyconsul-svc")
    assert cert["ServiceURI"].endswith("/svc/pyconsul-svc")
    assert c.connect.ca.update_configuration("consul", {"LeafCertTTL": "72h", "CSRMaxPerSecond": 0}) is True


# -- rotation ---------------------------------------------------------------------------------
def test_rotation_drops_no_handshake_in_either_direction(ca_agent, tmp_path):
    """Across a rotation, an old-root leaf and a new-root leaf complete mutual TLS
    both ways, each side trusting only the bundle it held at the time."""
    old_bundle = roots_pem(ca_agent)
    _, old = leaf(ca_agent, "client-old")
    before = roots(ca_agent)["ActiveRootID"]
    status, _, answer = ca_agent.request("POST", "/v1/connect/ca/rotate")
    assert status == 200 and answer["PreviousRootID"] == before
    r = roots(ca_agent)
    assert r["ActiveRootID"] == answer["ActiveRootID"] != before
    assert [x["Active"] for x in r["Roots"] if x["ID"] in (before, r["ActiveRootID"])].count(True) == 1
    assert {before, r["ActiveRootID"]} <= {x["ID"] for x in r["Roots"]}
    new_bundle = roots_pem(ca_agent)
    _, new = leaf(ca_agent, "server-new")
    assert new["CertPEM"].count("BEGIN CERTIFICATE") == 2  # leaf + cross-signed root
    old_side = (old["CertPEM"], old["PrivateKeyPEM"], old_bundle)
    new_side = (new["CertPEM"], new["PrivateKeyPEM"], new_bundle)
    assert mutual_tls(tmp_path, old_side, new_side) == (new["ServiceURI"], old["ServiceURI"])
    assert mutual_tls(tmp_path, new_side, old_side) == (old["ServiceURI"], new["ServiceURI"])
    # and a side that still holds only the old bundle verifies the new leaf with openssl too
    assert openssl_verify(tmp_path, old_bundle, new["CertPEM"]).returncode == 0


def test_a_blocking_leaf_query_wakes_with_a_new_leaf_after_rotation(ca_agent):
    headers, before = leaf(ca_agent, "watcher")
    index = int(headers["X-Consul-Index"])
    got: dict = {}

    def wait() -> None:
        got["answer"] = ca_agent.request("GET", f"/v1/agent/connect/ca/leaf/watcher?index={index}&wait=20s")

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.2)  # let it park (a wake before parking is also correct: the index moved)
    assert ca_agent.request("POST", "/v1/connect/ca/rotate")[0] == 200
    t.join(25)
    status, h, after = got["answer"]
    assert status == 200 and int(h["X-Consul-Index"]) > index
    assert after["SerialNumber"] != before["SerialNumber"]
    active = roots(ca_agent)["Roots"]
    signing = next(x["SigningKeyID"] for x in active if x["Active"])
    aki = first_cert(after["CertPEM"]).extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert ":".join(f"{b:02x}" for b in aki.value.key_identifier) == signing


def test_a_ttl_change_keeps_the_root_and_a_key_type_change_rotates_it(ca_agent, tmp_path):
    before = roots(ca_agent)["ActiveRootID"]
    assert put_config(ca_agent, {"Provider": "consul", "Config": {"LeafCertTTL": "24h"}}) == (200, "")
    assert roots(ca_agent)["ActiveRootID"] == before
    assert get(ca_agent, "/v1/connect/ca/configuration")[1]["Config"] == {"LeafCertTTL": "24h"}
    _, cert = leaf(ca_agent, "ttl-check")
    c = first_cert(cert["CertPEM"])
    assert dt.timedelta(hours=23) < c.not_valid_after_utc - c.not_valid_before_utc <= dt.timedelta(hours=24, minutes=1)
    assert put_config(ca_agent, {"Provider": "consul",
                                 "Config": {"PrivateKeyType": "rsa", "PrivateKeyBits": 2048}})[0] == 200
    r = roots(ca_agent)
    active = next(x for x in r["Roots"] if x["Active"])
    assert active["ID"] != before and (active["PrivateKeyType"], active["PrivateKeyBits"]) == ("rsa", 2048)
    _, cert = leaf(ca_agent, "rsa-signed")
    assert openssl_verify(tmp_path, roots_pem(ca_agent), cert["CertPEM"]).returncode == 0


def test_the_seed_ca_config_changes_no_root(ca_agent):
    assert put_config(ca_agent, {"Provider": "consul", "Config": {}})[0] == 200  # the defaults, as a new cluster
    before = roots(ca_agent)
    seed = {"Provider": "consul", "Config": {"PrivateKey": "", "RootCert": "", "RotationPeriod": "2160h",
                                             "IntermediateCertTTL": "8760h"}}
    assert put_config(ca_agent, seed)[0] == 200
    after = roots(ca_agent)
    assert after["ActiveRootID"] == before["ActiveRootID"] and after["Roots"] == before["Roots"]


def imported_ca() -> tuple[str, str, str]:
    """A self-signed CA made outside trellis: (cert PEM, key PEM, its root ID)."""
    now = dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Example Corp mesh CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    rid = ":".join(f"{b:02x}" for b in cert.fingerprint(hashes.SHA1()))
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem, rid


def test_an_imported_ca_becomes_the_active_root_and_cannot_be_rotated_by_trellis(ca_agent, tmp_path):
    cert_pem, key_pem, rid = imported_ca()
    status, answer = put_config(ca_agent, {"Provider": "consul",
                                           "Config": {"PrivateKey": key_pem, "RootCert": cert_pem}})
    assert status == 200, answer
    assert roots(ca_agent)["ActiveRootID"] == rid
    _, cert = leaf(ca_agent, "imported-svc")
    assert openssl_verify(tmp_path, cert_pem, cert["CertPEM"].split("-----END CERTIFICATE-----")[0]
                          + "-----END CERTIFICATE-----\n").returncode == 0
    status, _, text = ca_agent.request("POST", "/v1/connect/ca/rotate")
    assert status == 400 and "imported" in text
    # back to generated roots for the other tests
    assert put_config(ca_agent, {"Provider": "consul", "Config": {}})[0] == 200
    assert roots(ca_agent)["ActiveRootID"] != rid


# -- refused configurations ----------------------------------------------------------------------
def _not_a_ca() -> tuple[str, str]:
    now = dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "just a server")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(9).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def _bad_configs() -> list:
    cert_pem, key_pem, _ = imported_ca()
    other_cert, _, _ = imported_ca()
    plain_cert, plain_key = _not_a_ca()
    return [
        pytest.param({"Config": {"PrivateKey": key_pem, "RootCert": "-----BEGIN CERTIFICATE-----\nnope\n"
                                                                    "-----END CERTIFICATE-----\n"}},
                     "RootCert", id="malformed-pem"),
        pytest.param({"Config": {"PrivateKey": key_pem, "RootCert": other_cert}}, "does not match",
                     id="key-not-the-certificates"),
        pytest.param({"Config": {"PrivateKey": plain_key, "RootCert": plain_cert}}, "not a CA", id="not-a-ca"),
        pytest.param({"Provider": "acme"}, "unknown CA provider", id="unknown-provider"),
        pytest.param({"Provider": "vault"}, "not supported yet", id="vault-later"),
        pytest.param({"Config": {"LeafCertTTL": "10m"}}, "leaf cert TTL must be greater or equal than 1h0m0s",
                     id="ttl-too-short"),
        pytest.param({"Config": {"LeafCertTTL": "72h", "IntermediateCertTTL": "100h"}}, "3 * LeafCertTTL",
                     id="intermediate-below-3x-leaf"),
        pytest.param({"Config": {"Bogus": 1}}, "Bogus", id="unknown-key"),
        pytest.param({"Config": {"PrivateKeyType": "dsa"}}, "private key type", id="bad-key-type"),
        pytest.param({"State": {"x": "y"}}, "read-only", id="state-changed"),
    ]


@pytest.mark.parametrize(("body", "needle"), _bad_configs())
def test_a_refused_configuration_changes_nothing(ca_agent, body, needle):
    before = (roots(ca_agent), get(ca_agent, "/v1/connect/ca/configuration")[1])
    status, text = put_config(ca_agent, {"Provider": "consul", **body})
    assert status == 400 and needle in text, text
    assert (roots(ca_agent), get(ca_agent, "/v1/connect/ca/configuration")[1]) == before


def test_roots_pem_flag_must_be_a_boolean(ca_agent):
    status, _, text = ca_agent.request("GET", "/v1/connect/ca/roots?pem=maybe")
    assert status == 400 and text == "The 'pem' query parameter must be a boolean value"


# -- rate limits ---------------------------------------------------------------------------------
def test_the_signing_path_answers_429_with_retry_after_when_over_the_rate(ca_agent):
    assert put_config(ca_agent, {"Provider": "consul", "Config": {"CSRMaxPerSecond": 1}})[0] == 200
    try:
        answers = [ca_agent.request("GET", f"/v1/agent/connect/ca/leaf/limited-{i}") for i in range(4)]
        refused = [a for a in answers if a[0] == 429]
        assert refused, [a[0] for a in answers]
        status, headers, text = refused[0]
        assert int(headers["Retry-After"]) >= 1 and "CSRMaxPerSecond" in text
    finally:
        assert put_config(ca_agent, {"Provider": "consul", "Config": {"CSRMaxPerSecond": 0}})[0] == 200


# -- time: renewal and pruning, with short TTLs ----------------------------------------------------------
SHORT = ('connect { root_change_jitter = "0s"\n'
         '  ca_config { leaf_cert_ttl = "4s", skip_validate = true } }')


def test_leaves_renew_before_expiry_and_the_old_root_goes_when_its_last_leaf_has(tmp_path):
    agent = start_agent(tmp_path, "-hcl", SHORT)
    try:
        headers, first = leaf(agent, "short")
        expires = dt.datetime.fromisoformat(first["ValidBefore"].replace("Z", "+00:00")).timestamp()
        # renewal: a blocking read returns a new leaf before the first one expires
        status, h, renewed = agent.request(
            "GET", f"/v1/agent/connect/ca/leaf/short?index={headers['X-Consul-Index']}&wait=10s")
        assert status == 200 and renewed["SerialNumber"] != first["SerialNumber"]
        assert time.time() < expires
        # pruning: rotate, then the old root stays exactly until its last leaf has expired
        _, last_old = leaf(agent, "short")
        old_expiry = dt.datetime.fromisoformat(last_old["ValidBefore"].replace("Z", "+00:00")).timestamp()
        old_root = roots(agent)["ActiveRootID"]
        assert agent.request("POST", "/v1/connect/ca/rotate")[0] == 200
        deadline = time.time() + 20
        while old_root in {x["ID"] for x in roots(agent)["Roots"]}:
            assert time.time() < old_expiry or time.time() < deadline, "old root never pruned"
            assert time.time() < deadline, agent.log()
            time.sleep(0.1)
        assert time.time() >= old_expiry  # not before its last leaf expired
        active = roots(agent)["Roots"]
        assert len(active) == 1 and active[0]["IntermediateCerts"] is None  # cross-signature gone with it
    finally:
        agent.stop()


def test_a_restart_keeps_the_ca_so_existing_leaves_stay_valid(tmp_path):
    data = tmp_path / "data"
    agent = start_agent(tmp_path / "one", data_dir=str(data))
    try:
        before = roots(agent)
        _, cert = leaf(agent, "survivor")
    finally:
        agent.stop()
    agent = start_agent(tmp_path / "two", data_dir=str(data))
    try:
        after = roots(agent)
        assert (after["ActiveRootID"], after["TrustDomain"]) == (before["ActiveRootID"], before["TrustDomain"])
        assert openssl_verify(tmp_path, roots_pem(agent), cert["CertPEM"]).returncode == 0
    finally:
        agent.stop()


def test_an_agent_file_ca_config_is_used_on_first_start_and_bad_keys_stop_the_start(tmp_path):
    agent = start_agent(tmp_path / "ok", "-hcl", 'connect { ca_config { leaf_cert_ttl = "12h" } }')
    try:
        config = get(agent, "/v1/connect/ca/configuration")[1]
        assert config["Config"]["LeafCertTTL"] == "12h"
    finally:
        agent.stop()
    r = subprocess.run([sys.executable, "-m", "trellis", "agent", "-dev", "-http-port", str(free_port()),
                        "-dns-port", "-1", "-grpc-port", "-1", "-hcl", 'connect { ca_config { bogus_key = 1 } }'],
                       capture_output=True, text=True, timeout=60)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and last.startswith("Error starting agent: connect.ca_config:"), r.stderr
    assert "bogus_key" in last, r.stderr


def test_connect_disabled_refuses_the_ca_endpoints(tmp_path):
    agent = start_agent(tmp_path, "-hcl", "connect { enabled = false }")
    try:
        status, _, text = agent.request("GET", "/v1/agent/connect/ca/leaf/web")
        assert status == 400 and text == "Connect must be enabled in order to use this endpoint"
    finally:
        agent.stop()
