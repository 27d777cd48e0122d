"""The DNS shell: UDP and TCP listeners around the pure core.

    datagram / TCP frame
        │ parse_request ── WireError ──▶ FORMERR (or dropped: no header, or a response)
        ▼
    opcode/EDNS/class checks ─▶ NOTIMP / BADVERS / REFUSED
        ▼
    AnswerCache.get ── miss ─▶ parse_query ─▶ build_answer ─▶ encode_answer
        │                       (OutsideDomain → REFUSED, ParseError → NXDOMAIN)
        ▼
    authorize(query, token) ── no ─▶ NXDOMAIN + SOA
        ▼
    select_entries (shuffle, a_record_limit, udp_answer_limit) ─▶ assemble (size limit, TC)

Rules:
1. Handling a message never awaits: it sees the view at one revision.
2. Any exception past parsing is a bug: SERVFAIL, logged with the question.
3. UDP replies hold as many entries as fit 512 bytes or the client's EDNS size
   (capped at 65467) and set TC whenever anything was left out (DESIGN "DNS";
   Consul drops silently unless ``enable_truncate``). TCP replies are complete
   (up to 65535 bytes), length-prefixed, several queries per connection.
4. Every query passes the authorizer (DESIGN "ACL seam"); the default allows all.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
from collections.abc import Callable, Sequence

from trellis.dns.answer import negative_answer, select_entries
from trellis.dns.cache import AnswerCache
from trellis.dns.errors import WireError
from trellis.dns.model import DnsConfig, DnsQuery
from trellis.dns.wire import (
    TCP_MAX,
    Request,
    assemble,
    encode_answer,
    encode_error,
    encode_formerr,
    parse_request,
)
from trellis.store.view import View

log = logging.getLogger(__name__)

Authorizer = Callable[[DnsQuery, "str | None"], bool]
DEFAULT_ADDRESSES: tuple[tuple[str, int], ...] = (("127.0.0.1", 8600), ("::1", 8600))

NOTIMP, REFUSED, SERVFAIL, BADVERS = 4, 5, 2, 16
_CLASS_IN, _CLASS_ANY = 1, 255
_TCP_IDLE = 10.0  # seconds a TCP connection may sit between queries
_UDP_RCVBUF = 1 << 20


def allow_all(query: DnsQuery, token: str | None) -> bool:
    return True


class DnsServer:
    """Serves ``view`` over DNS on every ``(host, port)`` in ``addresses`` (UDP and TCP).

    ``port`` 0 picks a free port, the same for UDP and TCP; ``bound`` lists the
    addresses actually served once ``ready`` is set. ``authorize(query, token)`` is
    called for every query with ``token`` (the agent's DNS token).
    """

    def __init__(
        self,
        view: View,
        config: DnsConfig,
        addresses: Sequence[tuple[str, int]] | None = None,
        *,
        authorize: Authorizer = allow_all,
        token: str | None = None,
        rng: random.Random | None = None,
        cache_size: int = 10_000,
    ) -> None:
        self.view = view
        self.config = config
        self.addresses = list(DEFAULT_ADDRESSES if addresses is None else addresses)
        self.authorize = authorize
        self._replies: dict[bytes, tuple[int, bytes, DnsQuery]] = {}
        self._fixed: DnsQuery | None = None
        self.token = token
        self.rng = rng if rng is not None else random.Random()
        self.cache = AnswerCache(view, config, cache_size)
        self.bound: list[tuple[str, int]] = []
        self.ready = asyncio.Event()
        self._tcp_writers: set[asyncio.StreamWriter] = set()

    # -- handling one message (synchronous: rule 1) ---------------------------------------

    def handle(self, data: bytes, udp: bool) -> bytes | None:
        """The reply to one message, or ``None`` when nothing should be sent."""
        if udp:
            hit = self._replies.get(data[2:])
            if hit is not None and hit[0] == self.view.revision and self.authorize(hit[2], self.token):
                return data[:2] + hit[1]
        try:
            req = parse_request(data)
        except WireError:
            return encode_formerr(data)
        try:
            self._fixed = None
            reply = self._answer(req, udp)
        except Exception:
            log.exception("DNS SERVFAIL for %r type %d", req.qname, req.qtype)
            return encode_error(req, SERVFAIL)
        if udp and self._fixed is not None:
            self._remember(data, reply, self._fixed)
        return reply

    def _remember(self, data: bytes, reply: bytes, query: DnsQuery) -> None:
        """Keep a reply that has nothing to shuffle, keyed by the query bytes after the
        ID, until the view moves: a repeat of the same question skips parsing and
        assembly entirely (the common case for a single-instance lookup)."""
        if len(self._replies) >= _REPLY_CACHE_MAX:
            self._replies.clear()
        self._replies[data[2:]] = (self.view.revision, reply[2:], query)

    def _answer(self, req: Request, udp: bool) -> bytes:
        if req.opcode != 0:
            return encode_error(req, NOTIMP)
        if req.edns is not None and req.edns.version != 0:
            return encode_error(req, BADVERS)
        if req.qclass not in (_CLASS_IN, _CLASS_ANY):
            return encode_error(req, REFUSED)
        slot = self.cache.get(req)
        enc = slot.encoded
        if slot.query is not None and not self.authorize(slot.query, self.token):
            enc = encode_answer(negative_answer(self.view, self.config), req.qname)
        entries = enc.entries
        if slot.query is not None and len(entries) <= 1 and not enc.limit:
            self._fixed = slot.query  # nothing to shuffle: the reply is fixed until the view moves
        truncated = False
        if len(entries) > 1 or enc.limit:
            entries = select_entries(entries, enc.limit, self.rng)
        if not udp:
            return assemble(req, enc, entries, TCP_MAX)
        cap = self.config.udp_answer_limit
        if cap is not None and req.edns is None and len(entries) > cap:
            entries, truncated = entries[:cap], True
        return assemble(req, enc, entries, req.udp_limit, truncated)

    # -- serving -------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until cancelled; then close every socket and TCP connection."""
        loop = asyncio.get_running_loop()
        udp_sockets: list[_UdpSocket] = []
        servers: list[asyncio.Server] = []
        try:
            for host, port in self.addresses:
                bound = await self._bind(loop, host, port)
                if bound is None:
                    continue
                udp, server, real_port = bound
                udp_sockets.append(udp)
                servers.append(server)
                self.bound.append((host, real_port))
                log.info("DNS listening on %s port %d (udp, tcp)", host, real_port)
            if not self.bound:
                raise OSError(errno.EADDRNOTAVAIL, "no DNS address could be bound")
            self.ready.set()
            await asyncio.Future()
        finally:
            for u in udp_sockets:
                u.close()
            for s in servers:
                s.close()
            for w in list(self._tcp_writers):
                w.close()
            self.ready.clear()
            self.bound.clear()

    async def _bind(
        self, loop: asyncio.AbstractEventLoop, host: str, port: int
    ) -> tuple[_UdpSocket, asyncio.Server, int] | None:
        for _ in range(20 if port == 0 else 1):
            try:
                udp = _UdpSocket.bind(self, loop, host, port)
            except OSError as e:
                if ":" in host and e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    log.warning("DNS: IPv6 address %s unavailable, not serving it: %s", host, e)
                    return None
                raise OSError(e.errno, f"DNS listener on {host} port {port} (udp): {e.strerror}") from None
            real_port = udp.sock.getsockname()[1]
            try:
                server = await asyncio.start_server(self._serve_tcp, host, real_port)
            except OSError as e:
                udp.close()
                if port == 0 and e.errno == errno.EADDRINUSE:
                    continue  # the UDP port we got is taken for TCP: try another
                raise OSError(e.errno, f"DNS listener on {host} port {real_port} (tcp): {e.strerror}") from None
            return udp, server, real_port
        raise OSError(errno.EADDRINUSE, f"no port free for both UDP and TCP on {host}")

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tcp_writers.add(writer)
        try:
            while True:
                async with asyncio.timeout(_TCP_IDLE):
                    size = int.from_bytes(await reader.readexactly(2))
                    data = await reader.readexactly(size)
                reply = self.handle(data, udp=False)
                if reply is None:
                    break
                writer.write(len(reply).to_bytes(2) + reply)
                async with asyncio.timeout(_TCP_IDLE):
                    await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            self._tcp_writers.discard(writer)
            writer.close()


class _UdpSocket:
    """A non-blocking UDP socket served straight from the loop's reader callback.

    NOTE: asyncio's datagram transport costs several microseconds per packet; for a
    cached answer that is most of the work. Draining the socket with ``recvfrom``
    and replying with ``sendto`` from one callback roughly halves the cost per
    query. A reply the kernel cannot queue is dropped, as UDP allows; the client
    retries.
    """

    def __init__(self, server: DnsServer, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self.server = server
        self.loop = loop
        self.sock = sock
        loop.add_reader(sock.fileno(), self._readable)

    @classmethod
    def bind(cls, server: DnsServer, loop: asyncio.AbstractEventLoop, host: str, port: int) -> _UdpSocket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setblocking(False)
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        _grow_receive_buffer(sock)
        return cls(server, loop, sock)

    def _readable(self) -> None:
        sock, handle = self.sock, self.server.handle
        for _ in range(_UDP_BATCH):  # bounded so TCP clients and timers get their turn
            try:
                data, addr = sock.recvfrom(_UDP_MAX_REQUEST)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. an ICMP error queued for an earlier reply
                log.debug("DNS UDP receive error: %s", exc)
                continue
            reply = handle(data, True)
            if reply is None:
                continue
            try:
                sock.sendto(reply, addr)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                log.debug("DNS UDP send to %s failed: %s", addr, exc)

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


_UDP_BATCH = 64  # datagrams handled per readiness callback
_REPLY_CACHE_MAX = 4096  # fixed UDP replies kept (cleared whole when full)
_UDP_MAX_REQUEST = 65535


def _grow_receive_buffer(sock: socket.socket | None) -> None:
    """Bursts of queries queue in the kernel while a reply is built: give them room."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _UDP_RCVBUF)
    except OSError:
        pass
