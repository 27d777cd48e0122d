"""The public port's first bytes: TLS or plaintext, and the plaintext answers."""

from __future__ import annotations

import pytest

from trellis.proxy import preface
from trellis.proxy.health import decide_readiness
from trellis.proxy.preface import Preface

CLIENT_HELLO_START = bytes.fromhex("160301020001")  # record: handshake, TLS 1.0 legacy version, length


@pytest.mark.parametrize("first, expected", [
    (CLIENT_HELLO_START, Preface.TLS),
    (b"\x16", Preface.TLS),
    (b"GET /health HTTP/1.1\r\n", Preface.PLAINTEXT),
    (b"\x15\x03\x01", Preface.PLAINTEXT),  # a TLS alert is not a ClientHello
    (b"\x00", Preface.PLAINTEXT),
], ids=["client hello", "one byte", "http", "tls alert", "zero"])
def test_classify_by_first_byte(first, expected):
    assert preface.classify(first) is expected


ANSWERS = [
    ("health 1.1 while serving", b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", True, 200, "ok"),
    ("health 1.0 while serving", b"GET /health HTTP/1.0\r\n\r\n", True, 200, "ok"),
    ("bare LF line ends", b"GET /health HTTP/1.1\nHost: x\n\n", True, 200, "ok"),
    ("health while not serving", b"GET /health HTTP/1.1\r\n\r\n", False, 503, "not serving: draining"),
    ("another path", b"GET / HTTP/1.1\r\n\r\n", True, 400, "only GET /health is answered in plaintext (got GET /)"),
    ("a query string is another target", b"GET /health?x=1 HTTP/1.1\r\n\r\n", True, 400, "got GET /health?x=1"),
    ("another method", b"POST /health HTTP/1.1\r\n\r\n", True, 400, "got POST /health"),
    ("HEAD is not GET", b"HEAD /health HTTP/1.1\r\n\r\n", True, 400, "got HEAD /health"),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", True, 400, "not HTTP/2.0"),
    ("HTTP/0.9", b"GET /health\r\n\r\n", True, 400, "expected 'METHOD TARGET VERSION'"),
    ("not http", b"SSH-2.0-OpenSSH_9.2\r\n", True, 400, "expected 'METHOD TARGET VERSION'"),
    ("unknown protocol", b"GET /health FTP/1.0\r\n\r\n", True, 400, "unknown protocol version"),
    ("no line end", b"GET /health HTTP/1.1", True, 400, "not terminated"),
    ("not ascii", "GET /h\u00e9alth HTTP/1.1\r\n\r\n".encode(), True, 400, "not ASCII"),
    ("empty", b"", True, 400, "not terminated"),
]


@pytest.mark.parametrize("head, serving, status, text", [a[1:] for a in ANSWERS], ids=[a[0] for a in ANSWERS])
def test_plaintext_answers(head, serving, status, text):
    got_status, raw = preface.answer(head, serving=serving, reason="draining")
    assert got_status == status
    assert raw.startswith(f"HTTP/1.1 {status} ".encode())
    headers, _, body = raw.partition(b"\r\n\r\n")
    assert b"Connection: close" in headers
    assert f"Content-Length: {len(body)}".encode() in headers
    assert text in body.decode()


def test_every_prefix_of_a_request_is_incomplete_until_the_blank_line():
    request = b"GET /health HTTP/1.1\r\nHost: localhost:20000\r\nUser-Agent: Consul Health Check\r\n\r\n"
    for cut in range(len(request)):
        assert preface.head_end(request[:cut]) == -1, cut
    assert preface.head_end(request) == len(request)
    assert preface.head_end(request + b"extra") == len(request)


def test_the_request_line_is_parsed():
    assert preface.parse_request_line(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n") == \
        preface.RequestLine("GET", "/health", "HTTP/1.1")


READINESS = [
    ("serving", dict(draining=False, leaf_valid_before=2000.0, local_reachable=True), True, ""),
    ("draining wins", dict(draining=True, leaf_valid_before=None, local_reachable=False), False,
     "the proxy is draining"),
    ("no leaf", dict(draining=False, leaf_valid_before=None, local_reachable=True), False, "no leaf certificate yet"),
    ("expired leaf", dict(draining=False, leaf_valid_before=1000.0, local_reachable=True), False,
     "the leaf certificate expired at 1970-01-01T00:16:40Z"),
    ("local service down", dict(draining=False, leaf_valid_before=2000.0, local_reachable=False), False,
     "the local service at 127.0.0.1:8080 does not accept connections"),
]


@pytest.mark.parametrize("given, serving, reason", [r[1:] for r in READINESS], ids=[r[0] for r in READINESS])
def test_readiness(given, serving, reason):
    verdict = decide_readiness(now=1500.0, local_service="127.0.0.1:8080", **given)
    assert (verdict.serving, verdict.reason) == (serving, reason)
