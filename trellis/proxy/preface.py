"""What a client sends first on the public port, and the plaintext answer (pure).

The seed registers its sidecar with ``"http": "http://localhost:20000/health"``: a
plaintext HTTP check on the sidecar's own mTLS port. So the public port serves two
protocols, told apart by the first byte.

Rules:
1. A first byte of 0x16 (a TLS handshake record, RFC 8446 §5.1 / RFC 5246 §6.2.1) is
   TLS; anything else is plaintext.
2. Plaintext is read up to the end of the request head (a blank line), at most
   ``MAX_HEAD`` bytes; only the request line is looked at.
3. Only ``GET /health`` in HTTP/1.0 or HTTP/1.1 is answered: 200 while the proxy
   serves, 503 (with the reason) while it does not. Everything else gets 400. Every
   answer closes the connection.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from trellis.errors import InvalidInput

TLS_HANDSHAKE_RECORD = 0x16
MAX_HEAD = 8192
HEALTH_PATH = "/health"
VERSIONS = ("HTTP/1.0", "HTTP/1.1")
_REASONS = {200: "OK", 400: "Bad Request", 503: "Service Unavailable"}


class Preface(enum.StrEnum):
    TLS = "tls"
    PLAINTEXT = "plaintext"


class InvalidRequest(InvalidInput):
    def __init__(self, reason: str) -> None:
        super().__init__("request", reason=reason, message=f"invalid plaintext request: {reason}")


@dataclass(frozen=True, slots=True)
class RequestLine:
    method: str
    target: str
    version: str


def classify(first: bytes) -> Preface:
    """Rule 1. ``first`` holds at least one byte (the caller handles end of stream)."""
    assert first, "classify() needs the first byte"
    return Preface.TLS if first[0] == TLS_HANDSHAKE_RECORD else Preface.PLAINTEXT


def head_end(buf: bytes) -> int:
    """The offset just past the blank line ending the head, or -1 while it is incomplete.
    Bare LF line ends are accepted too (RFC 9112 §2.2)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        at = buf.find(sep)
        if at >= 0:
            return at + len(sep)
    return -1


def parse_request_line(head: bytes) -> RequestLine:
    """The request line of ``head`` (rule 2). Raises InvalidRequest."""
    line, sep, _ = head.partition(b"\n")
    if not sep:
        raise InvalidRequest("the request line is not terminated")
    try:
        text = line.rstrip(b"\r").decode("ascii")
    except UnicodeDecodeError:
        raise InvalidRequest("the request line is not ASCII") from None
    parts = text.split(" ")
    if len(parts) != 3 or not all(parts):
        raise InvalidRequest(f"expected 'METHOD TARGET VERSION', got {text[:80]!r}")
    method, target, version = parts
    if not version.startswith("HTTP/"):
        raise InvalidRequest(f"unknown protocol version {version[:20]!r}")
    return RequestLine(method, target, version)


def format_response(status: int, body: str) -> bytes:
    """A complete HTTP/1.1 response that closes the connection."""
    payload = body.encode()
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(payload)}\r\n"
        f"Connection: close\r\n\r\n"
    ).encode() + payload


def health_request(head: bytes) -> tuple[bool, str]:
    """Rule 3: whether ``head`` is a health check, else why it is refused."""
    try:
        req = parse_request_line(head)
    except InvalidRequest as exc:
        return False, exc.reason
    if req.version not in VERSIONS:
        return False, f"only HTTP/1.0 and HTTP/1.1 are answered, not {req.version}"
    if req.method != "GET" or req.target != HEALTH_PATH:
        return False, f"only GET {HEALTH_PATH} is answered in plaintext (got {req.method} {req.target[:80]})"
    return True, ""


def answer(head: bytes, *, serving: bool, reason: str) -> tuple[int, bytes]:
    """Rule 3: the status and the bytes to send back for a plaintext ``head``."""
    is_health, refused = health_request(head)
    if not is_health:
        return 400, format_response(400, f"this is a mutual TLS port; {refused}\n")
    if serving:
        return 200, format_response(200, "ok\n")
    return 503, format_response(503, f"not serving: {reason}\n")
