"""An "external" service for gateway tests: an HTTPS server on 127.0.0.1 with a certificate
for ``api.external.com`` from a throwaway test CA (not trusted by the system roots)."""

from __future__ import annotations

import datetime as dt
import http.server
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

EXTERNAL_HOST = "api.external.com"


class ThrowawayCA:
    """A throwaway CA (not trusted by the system roots) issuing server certificates."""

    def __init__(self, name: str = "external test CA") -> None:
        now = dt.datetime.now(dt.timezone.utc)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (x509.CertificateBuilder().subject_name(self._name).issuer_name(self._name)
                     .public_key(self._key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self._key, hashes.SHA256()))
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, *hosts: str) -> tuple[bytes, bytes]:
        """A certificate for ``hosts`` (DNS SANs, the first also the CN): (cert, key) PEM."""
        now = dt.datetime.now(dt.timezone.utc)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
                .issuer_name(self._name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
                .sign(self._key, hashes.SHA256()))
        return (cert.public_bytes(serialization.Encoding.PEM),
                key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


def make_ca_and_server_cert(directory: Path, host: str = EXTERNAL_HOST) -> tuple[str, str, str]:
    """A test CA and a certificate for ``host`` it signs: (CA, cert, key) paths."""
    ca = ThrowawayCA()
    cert, key = ca.issue(host)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    for path, data in zip(paths, (ca.pem, cert, key)):
        path.write_bytes(data)
    return str(paths[0]), str(paths[1]), str(paths[2])


class HttpsServer:
    """An HTTPS server on 127.0.0.1 answering every GET with ``external-api``; ``sni`` records
    the server name each handshake asked for."""

    def __init__(self, cert: str, key: str) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.sni: list[str | None] = []
        context.sni_callback = lambda sock, name, ctx: self.sni.append(name)

        class Handler(http.server.BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_GET(self) -> None:
                body = b"external-api"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
