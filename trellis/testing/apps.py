"""Small pieces the data-plane integration tests share: an HTTP app that answers with
its name, one-request clients, and polling with a deadline (DESIGN: tests poll, never
sleep a fixed time)."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEADLINE = 20.0


def get(port: int, path: str = "/", timeout: float = 5.0, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """One GET to 127.0.0.1:``port`` on a new connection: status and body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def answer(port: int, path: str = "/") -> str | None:
    """The body through ``port`` (an app's name), or None when the request fails or is refused."""
    try:
        status, body = get(port, path)
    except (OSError, http.client.HTTPException):
        return None
    return body if status == 200 else None


Respond = Callable[[str, int], tuple[int, float]]  # (path, nth request from 1) -> (status, seconds to wait first)


class NamedApp:
    """An HTTP/1.1 app on 127.0.0.1 (a free port) that answers every GET with its name:
    200, or what ``respond`` says for the path and the request's number (a failing or
    slow app). ``paths`` records every path asked, in order."""

    def __init__(self, name: str, respond: Respond | None = None) -> None:
        self.name = name
        body = name.encode()
        lock = threading.Lock()
        paths: list[str] = []
        self.paths = paths

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

            def do_GET(self) -> None:
                with lock:
                    paths.append(self.path)
                    nth = len(paths)
                status, delay = respond(self.path, nth) if respond else (200, 0.0)
                if delay:
                    time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def eventually(check: Callable[[], Any], what: str = "condition", timeout: float = DEADLINE,
               interval: float = 0.05, diagnose: Callable[[], str] | None = None) -> Any:
    """Poll ``check`` until it returns something truthy and return that; fail naming
    ``what`` (and the last value or error seen, plus ``diagnose()``) at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - polled until the deadline
            last = exc
        time.sleep(interval)
    extra = f"\n{diagnose()}" if diagnose else ""
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r}){extra}")


class Traffic:
    """A steady loop of GETs (a new connection each) in a thread: answers starting with
    ``expect`` count as ok, anything else is recorded with its time in ``failures``."""

    def __init__(self, port: int, expect: str = "api") -> None:
        self.port, self.expect = port, expect
        self.ok = 0
        self.failures: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = get(self.port)
                if status == 200 and body.startswith(self.expect):
                    self.ok += 1
                else:
                    self.failures.append((time.monotonic(), f"{status} {body}"))
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append((time.monotonic(), repr(exc)))
            time.sleep(0.01)

    def wait_for(self, count: int, timeout: float = DEADLINE) -> None:
        target = self.ok + count
        eventually(lambda: self.ok >= target, f"{count} more successful requests", timeout)


# -- a tcp line-echo service and a long-lived connection to it ---------------------------------
PERIOD = 0.1  # seconds between two lines on an open connection (Stream)


class EchoApp:
    """A tcp service: echoes every line back."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.sock.close()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    conn.sendall(data)
            except OSError:
                pass


class Stream:
    """One long-lived connection through an upstream listener: a line every ``PERIOD``, each
    echoed back; ``cut_at`` is when it stopped echoing (EOF, reset or timeout)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.echoed = 0
        self.cut_at: float | None = None
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            line = f"line {n}\n".encode()
            try:
                self.sock.sendall(line)
                got = b""
                while len(got) < len(line):
                    chunk = self.sock.recv(len(line) - len(got))
                    if not chunk:
                        raise ConnectionResetError("EOF")
                    got += chunk
                assert got == line
                self.echoed += 1
            except OSError:
                self.cut_at = time.monotonic()
                return
            time.sleep(PERIOD)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def echo_once(port: int) -> bool:
    """A new connection through an upstream listener: does a line come back?"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            s.sendall(b"hello\n")
            return s.recv(6) == b"hello\n"
    except OSError:
        return False
