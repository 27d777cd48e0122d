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
        self.token = token
        self.rng = rng if rng is not None else random.Random()
        self.cache = AnswerCache(view, config, cache_size)
        self.bound: list[tuple[str, int]] = []
        self.ready = asyncio.Event()
        self._tcp_writers: set[asyncio.StreamWriter] = set()

    # -- handling one message (synchronous: rule 1) ---------------------------------------

    def handle(self, data: bytes, udp: bool) -> bytes | None:
        """The reply to one message, or ``None`` when nothing should be sent."""
        try:
            req = parse_request(data)
        except WireError:
            return encode_formerr(data)
        try:
            return self._answer(req, udp)
        except Exception:
            log.exception("DNS SERVFAIL for %r type %d", req.qname, req.qtype)
            return encode_error(req, SERVFAIL)

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
        transports: list[asyncio.DatagramTransport] = []
        servers: list[asyncio.Server] = []
        try:
            for host, port in self.addresses:
                bound = await self._bind(loop, host, port)
                if bound is None:
                    continue
                transport, server, real_port = bound
                transports.append(transport)
                servers.append(server)
                self.bound.append((host, real_port))
                log.info("DNS listening on %s port %d (udp, tcp)", host, real_port)
            if not self.bound:
                raise OSError(errno.EADDRNOTAVAIL, "no DNS address could be bound")
            self.ready.set()
            await asyncio.Future()
        finally:
            for t in transports:
                t.close()
            for s in servers:
                s.close()
            for w in list(self._tcp_writers):
                w.close()
            self.ready.clear()
            self.bound.clear()

    async def _bind(
        self, loop: asyncio.AbstractEventLoop, host: str, port: int
    ) -> tuple[asyncio.DatagramTransport, asyncio.Server, int] | None:
        for _ in range(20 if port == 0 else 1):
            try:
                transport, _proto = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self), local_addr=(host, port)
                )
            except OSError as e:
                if ":" in host and e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                    log.warning("DNS: IPv6 address %s unavailable, not serving it: %s", host, e)
                    return None
                raise
            sock = transport.get_extra_info("socket")
            _grow_receive_buffer(sock)
            real_port = sock.getsockname()[1]
            try:
                server = await asyncio.start_server(self._serve_tcp, host, real_port)
            except OSError as e:
                transport.close()
                if port == 0 and e.errno == errno.EADDRINUSE:
                    continue  # the UDP port we got is taken for TCP: try another
                raise
            return transport, server, real_port
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


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        reply = self.server.handle(data, udp=True)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("DNS UDP error: %s", exc)


def _grow_receive_buffer(sock: socket.socket | None) -> None:
    """Bursts of queries queue in the kernel while a reply is built: give them room."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _UDP_RCVBUF)
    except OSError:
        pass
