"""The proxy's listeners: the public mTLS door and one local listener per upstream (shell).

    public port ─accept─▶ peek 1st byte ─┬─ plaintext ─▶ GET /health? 200 | 503 | 400, close
                                         └─ 0x16 ─▶ TLS handshake ─▶ authz.decide(peer URI)
                                               denied ─▶ log "denied: ...", close
                                               allowed ─▶ connect local service ─▶ splice
    upstream port ─accept─▶ balancer.order ─▶ mTLS connect (SNI, SPIFFE check), next on failure
                                               ─▶ splice | none left: log, close

Rules:
1. Every connection runs in a task owned by ``Shared.tasks``; the server drains and
   cancels them at stop. Listeners own only their accept loop.
2. A connection uses the TLS contexts, authorizer and spec current when it is
   accepted; later snapshots change what new connections get, never open ones
   (except close-on-deny, which goes through ``Shared.inbound``).
3. Every network await is bounded: the first byte and the TLS handshake by
   ``handshake_timeout``, the local service by ``local_connect_timeout``, each upstream
   attempt by ``connect_timeout``. Splices have no idle timeout (as Consul's built-in proxy).
4. Registering an allowed inbound connection in ``Shared.inbound`` happens in the same
   loop step as its decision, so a new authorizer can never miss it.
5. An accepted socket is ours until a transport takes it (``Accepted.hand_over``); from
   then on only the transport closes it. Closing it under a live transport would free
   its descriptor for the next accept while the loop still watches it for the old one.
"""

from __future__ import annotations

import abc
import asyncio
import itertools
import logging
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from trellis.proxy import preface
from trellis.proxy.authz import Authorizer, peer_uris
from trellis.proxy.balance import Balancer, why_unusable
from trellis.proxy.health import Readiness, decide_readiness
from trellis.proxy.metrics import UNKNOWN, ProxyMetrics
from trellis.proxy.plan import PublicSpec, UpstreamSpec
from trellis.proxy.pump import Pipe, splice
from trellis.proxy.tls import Contexts, check_peer, describe_error, failure_reason
from trellis.proxycfg.model import Endpoint

BACKLOG = 1024
ACCEPT_ERROR_PAUSE = 0.1


@dataclass(slots=True)
class Inbound:
    """An open, allowed connection on the public listener (close-on-deny needs it)."""

    uris: tuple[str, ...]
    pipes: list[Pipe] = field(default_factory=list)

    def abort(self) -> None:
        for pipe in self.pipes:
            pipe.abort()


@dataclass(slots=True)
class Shared:
    """What every listener reads for a new connection; the server swaps the fields."""

    service: str
    metrics: ProxyMetrics
    log: logging.Logger
    contexts: Contexts | None = None
    authorizer: Authorizer | None = None
    draining: bool = False
    tasks: set[asyncio.Task] = field(default_factory=set)
    inbound: dict[int, Inbound] = field(default_factory=dict)
    spliced: int = 0  # connections spliced right now (the heartbeat's figure)
    flushers: set[Callable[[], None]] = field(default_factory=set)  # move counted bytes into metrics
    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    _ids: itertools.count = field(default_factory=itertools.count)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Rule 1."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def next_id(self) -> int:
        return next(self._ids)

    def flush_bytes(self) -> None:
        """Report the bytes every open connection counted since the last flush."""
        for flush in list(self.flushers):
            flush()


@dataclass(slots=True)
class Accepted:
    """An accepted connection and who owns its socket (rule 5)."""

    sock: socket.socket
    peer: str
    handed_over: bool = False

    async def hand_over(self, pipe: Pipe, **tls: Any) -> asyncio.BaseTransport:
        """Wrap the socket in a transport feeding ``pipe`` (TLS when ``ssl=`` is given)."""
        self.handed_over = True  # even on failure: the transport closes it then
        transport, _ = await asyncio.get_running_loop().connect_accepted_socket(lambda: pipe, self.sock, **tls)
        return transport

    def close(self) -> None:
        if not self.handed_over:
            self.sock.close()


def bind(address: str, port: int) -> socket.socket:
    """A non-blocking listening socket. Raises OSError (address in use, bad address)."""
    infos = socket.getaddrinfo(address or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _Listener(abc.ABC):
    def __init__(self, shared: Shared, sock: socket.socket, name: str) -> None:
        self.shared = shared
        self.sock = sock
        self.name = name
        self._accepting: asyncio.Task | None = None

    def start(self) -> None:
        self._accepting = asyncio.get_running_loop().create_task(self._accept(), name=f"accept:{self.name}")

    async def close(self) -> None:
        """Stop accepting; open connections carry on (their tasks are in ``Shared.tasks``)."""
        if self._accepting is not None:
            self._accepting.cancel()
            await asyncio.gather(self._accepting, return_exceptions=True)
            self._accepting = None
        self.sock.close()

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, peer = await loop.sock_accept(self.sock)
            except OSError as exc:  # EMFILE and friends: say so, breathe, go on
                self.shared.log.error("%s: accept failed: %s", self.name, exc)
                await asyncio.sleep(ACCEPT_ERROR_PAUSE)
                continue
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            accepted = Accepted(conn, _format_peer(peer))
            self.shared.spawn(self._guarded(accepted), f"{self.name}:{accepted.peer}")

    async def _guarded(self, conn: Accepted) -> None:
        try:
            await self.handle(conn)
        except Exception:  # a bug in one connection must not take the listener down
            self.shared.log.exception("%s: connection from %s failed", self.name, conn.peer)
        finally:
            conn.close()

    @abc.abstractmethod
    async def handle(self, conn: Accepted) -> None:
        """Serve one accepted connection (public or upstream)."""


def _format_peer(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)


async def _peek(conn: socket.socket) -> bytes:
    """The first byte, left in the socket for whoever reads next; b"" at end of stream."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return conn.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            pass
        readable = loop.create_future()
        loop.add_reader(conn.fileno(), lambda: readable.done() or readable.set_result(None))
        try:
            await readable
        finally:
            loop.remove_reader(conn.fileno())


async def _probe(address: str, port: int, timeout: float) -> bool:
    """Whether ``address:port`` accepts a TCP connection within ``timeout``."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(asyncio.Protocol, address, port)
    except (OSError, TimeoutError):
        return False
    transport.close()
    return True


class PublicListener(_Listener):
    def __init__(self, shared: Shared, sock: socket.socket, spec: PublicSpec) -> None:
        super().__init__(shared, sock, f"public listener {spec.key}")
        self.spec = spec

    async def handle(self, conn: Accepted) -> None:
        spec = self.spec
        try:
            async with asyncio.timeout(spec.handshake_timeout):
                first = await _peek(conn.sock)
        except (OSError, TimeoutError):
            return
        if not first:
            return  # a TCP check: connect, close
        if preface.classify(first) is preface.Preface.PLAINTEXT:
            await self._plaintext(conn.sock, conn.peer, spec)
            return
        await self._tls(conn, spec)

    async def _plaintext(self, conn: socket.socket, peer: str, spec: PublicSpec) -> None:
        loop = asyncio.get_running_loop()
        head = b""
        try:
            async with asyncio.timeout(spec.handshake_timeout):
                while preface.head_end(head) < 0 and len(head) < preface.MAX_HEAD:
                    chunk = await loop.sock_recv(conn, preface.MAX_HEAD - len(head))
                    if not chunk:
                        break
                    head += chunk
                is_health, refused = preface.health_request(head)
                readiness = await self._readiness(spec) if is_health else Readiness(False)
                _, reply = preface.answer(head, serving=readiness.serving, reason=readiness.reason)
                await loop.sock_sendall(conn, reply)
        except (OSError, TimeoutError):
            return
        if not is_health:
            self.shared.log.info("public listener: refused a plaintext request from %s: %s", peer, refused)

    async def _readiness(self, spec: PublicSpec) -> Readiness:
        s = self.shared
        leaf = s.contexts.leaf_valid_before if s.contexts is not None else None
        where = f"{spec.local_service_address}:{spec.local_service_port}"
        verdict = decide_readiness(draining=s.draining, leaf_valid_before=leaf, now=s.wall(),
                                   local_service=where, local_reachable=True)
        if not verdict.serving:
            return verdict
        reachable = await _probe(spec.local_service_address, spec.local_service_port, spec.local_connect_timeout)
        return decide_readiness(draining=s.draining, leaf_valid_before=leaf, now=s.wall(),
                                local_service=where, local_reachable=reachable)

    async def _tls(self, conn: Accepted, spec: PublicSpec) -> None:
        s = self.shared
        peer = conn.peer
        contexts = s.contexts
        if contexts is None or s.draining:
            s.log.warning("public listener: %s; closing the TLS connection from %s",
                          "draining" if s.draining else "no leaf certificate yet", peer)
            return
        try:
            async with asyncio.timeout(spec.handshake_timeout + 1):
                client = Pipe()  # NOTE: uvloop returns its SSLProtocol, not ours, so keep our own
                transport = await conn.hand_over(client, ssl=contexts.server,
                                                 ssl_handshake_timeout=spec.handshake_timeout,
                                                 ssl_shutdown_timeout=spec.handshake_timeout)
        except (OSError, TimeoutError) as exc:
            reason = failure_reason(exc)
            s.metrics.handshake_failures.labels("public", reason).inc()
            s.log.warning("public listener: TLS handshake with %s failed (%s): %s", peer, reason, describe_error(exc))
            return
        assert s.authorizer is not None, "the authorizer is set before the first listener starts"
        uris = peer_uris(transport.get_extra_info("peercert"))
        decision = s.authorizer.decide(uris)
        source = decision.source_service or UNKNOWN
        if not decision.allowed:
            s.metrics.denied.labels(source, s.service).inc()
            s.log.warning("%s", decision.describe())
            transport.close()
            return
        conn_id = s.next_id()
        record = s.inbound[conn_id] = Inbound(uris, [client])  # rule 4: no await since the decision
        try:
            await self._to_local(spec, client, record, source, peer)
        except BaseException:  # cancelled (shutdown) before the splice owned both sides
            record.abort()
            raise
        finally:
            s.inbound.pop(conn_id, None)

    async def _to_local(self, spec: PublicSpec, client: Pipe, record: Inbound, source: str, peer: str) -> None:
        s = self.shared
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(spec.local_connect_timeout):
                app = Pipe()
                await loop.create_connection(lambda: app, spec.local_service_address, spec.local_service_port)
        except (OSError, TimeoutError) as exc:
            s.log.warning("public listener: local service %s:%d unreachable for %s: %s",
                          spec.local_service_address, spec.local_service_port, peer, describe_error(exc))
            client.abort()
            return
        record.pipes.append(app)
        await _spliced(s, client, app, source, s.service)


class UpstreamListener(_Listener):
    def __init__(self, shared: Shared, sock: socket.socket, spec: UpstreamSpec) -> None:
        super().__init__(shared, sock, f"upstream {spec.destination} {spec.key}")
        self.spec = spec
        self.balancer = Balancer(spec.policy, spec.ejection)

    def update(self, spec: UpstreamSpec) -> None:
        """A new snapshot: new connections use ``spec``; the balancer keeps its counts."""
        self.spec = spec
        self.balancer.configure(spec.policy, spec.ejection)
        self.balancer.retain(spec.endpoints)

    async def handle(self, conn: Accepted) -> None:
        s = self.shared
        spec = self.spec
        peer = conn.peer
        contexts = s.contexts
        if contexts is None:
            s.log.warning("upstream %s: no leaf certificate yet; closing the connection from %s", spec.destination, peer)
            return
        order = self.balancer.order(spec.endpoints, s.monotonic())
        if not order:
            s.log.warning("upstream %s: no usable endpoint (%s); closing the connection from %s",
                          spec.destination, why_unusable(spec.endpoints).describe(), peer)
            return
        found = await self._connect(spec, contexts, order)
        if found is None:
            s.log.warning("upstream %s: all %d endpoint(s) tried failed; closing the connection from %s",
                          spec.destination, len(order), peer)
            return
        endpoint, remote = found
        local = Pipe()
        try:
            async with asyncio.timeout(spec.connect_timeout):
                await conn.hand_over(local)
        except BaseException as exc:  # OSError, or cancelled: the remote side is ours to close
            remote.abort()
            if isinstance(exc, (OSError, TimeoutError)):
                return
            raise
        self.balancer.opened(endpoint)
        try:
            await _spliced(s, local, remote, s.service, spec.destination)
        finally:
            self.balancer.closed(endpoint)

    async def _connect(self, spec: UpstreamSpec, contexts: Contexts,
                       order: tuple[Endpoint, ...]) -> tuple[Endpoint, Pipe] | None:
        """Try ``order`` until one instance answers with the right identity (retry order)."""
        s = self.shared
        loop = asyncio.get_running_loop()
        for endpoint in order:
            started = s.monotonic()
            transport = None
            try:
                async with asyncio.timeout(spec.connect_timeout):
                    remote = Pipe()
                    transport, _ = await loop.create_connection(
                        lambda: remote, endpoint.address, endpoint.port, ssl=contexts.client, server_hostname=spec.sni,
                        ssl_handshake_timeout=spec.connect_timeout)
                    check_peer(transport.get_extra_info("peercert"), spec.spiffe_id)
            except BaseException as exc:
                if transport is not None:
                    transport.abort()
                if not isinstance(exc, (OSError, TimeoutError)):
                    raise  # cancelled (shutdown), not the instance's fault
                self._failed(spec, endpoint, exc)
                continue
            s.metrics.connect_latency.labels(spec.destination).observe(s.monotonic() - started)
            self.balancer.succeeded(endpoint)
            return endpoint, remote
        return None

    def _failed(self, spec: UpstreamSpec, endpoint: Endpoint, exc: BaseException) -> None:
        s = self.shared
        reason = failure_reason(exc)
        s.metrics.upstream_failures.labels(spec.destination, reason).inc()
        if reason in ("spiffe_id_mismatch", "certificate_verify_failed"):
            s.metrics.handshake_failures.labels("upstream", reason).inc()
        ejected = self.balancer.failed(endpoint, s.monotonic())
        s.log.warning("upstream %s: %s:%d (%s) failed (%s): %s%s", spec.destination, endpoint.address,
                      endpoint.port, endpoint.service_id, reason, describe_error(exc),
                      f"; ejected for {self.balancer.ejection.base_time:g}s or more" if ejected else "")


async def _spliced(s: Shared, initiator: Pipe, other: Pipe, source: str, destination: str) -> None:
    """Splice with the accounting every connection gets (metrics rules 2-3)."""
    s.metrics.opened.labels(source, destination).inc()
    s.metrics.open.inc()
    s.spliced += 1
    inbound, outbound = s.metrics.bytes.labels(source, destination, "in"), s.metrics.bytes.labels(
        source, destination, "out")
    reported = [0, 0]

    def flush() -> None:
        inbound.inc(initiator.read_bytes - reported[0])
        outbound.inc(other.read_bytes - reported[1])
        reported[:] = [initiator.read_bytes, other.read_bytes]

    s.flushers.add(flush)
    try:
        await splice(initiator, other)
    finally:
        s.flushers.discard(flush)
        flush()
        s.spliced -= 1
        s.metrics.open.dec()
        s.metrics.closed.labels(source, destination).inc()
