"""The ADS gRPC servicer (shell): one delta stream per Envoy, driven by delta.py.

    Envoy ══ DeltaAggregatedResources ══▶ XdsServer.serve(stream)
      first request: node.id = proxy ID ──▶ _Session
        _read:   stream.recv ─▶ delta.receive ─▶ log NACKs ─▶ report ─▶ wake _push
        _follow: source.get(proxy, index=N, wait) ─▶ translate (with the last result) ─▶ wake _push
        _push:   delta.next_response until None ─▶ stream.send ─▶ wait for a wake or an ACK deadline

Rules:
1. The servicer knows three things: the snapshot source (``get``/``report``, the ProxyWatcher),
   the translation (``translate(snapshot, previous)``: the versioned resources, given the
   stream's previous translation to reuse; resources.py rule 4), and a stream with
   ``recv``/``send`` (STYLE §2). The gRPC method only adapts grpc.aio's
   context to that stream and maps errors to a status, by type.
2. Snapshots are latest-value-wins: ``_follow`` overwrites the session's desired resources;
   ``_push`` sends the difference to what Envoy has, whenever it wakes.
3. Every network await has a deadline: the first request (``first_request_timeout``), each
   send (``send_timeout``), and each ACK (``ack_timeout``; an Envoy that stops answering is
   cut off and reconnects with ``initial_resource_versions``). An idle stream may stay silent
   for ever: gRPC keepalive pings (``OPTIONS``, Consul's 30 s / 20 s) notice a dead peer.
4. A NACK is logged with the proxy, the resource type and names and Envoy's message; the
   stream stays up (STYLE §4). Only unrecoverable errors end a stream, with a status:
   unknown node id NOT_FOUND, a malformed request INVALID_ARGUMENT, a missed deadline
   DEADLINE_EXCEEDED, a bug INTERNAL (logged). A failing translation is logged and the
   last good resources stay; the next snapshot may fix it.
5. After every (N)ACK and every snapshot, what Envoy holds goes back to the source with
   ``report``: ``applied_version`` is the newest snapshot version Envoy has fully ACKed.
6. A stream that ends (Envoy hangs up, an error, server shutdown) cancels its tasks and
   awaits them; nothing outlives it.
7. What a translation left out or defaulted (``problems(snapshot)``, pure:
   xds/translate/problems.py) is logged at WARNING, with the proxy and the snapshot
   version, when it first appears on the stream, and goes to the source in the report's
   ``extra["problems"]`` for as long as it lasts (``connect proxy -list`` shows it).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf.message import Message

from trellis.errors import InvalidInput, NotFound, PermissionDenied, TrellisError, Unavailable
from trellis.xds import delta
from trellis.xds.delta import Kind, StreamState

FIRST_REQUEST_TIMEOUT = 30.0
SEND_TIMEOUT = 30.0
ACK_TIMEOUT = 60.0
POLL_WAIT = 300.0  # one long poll of the snapshot source
NO_SNAPSHOT_RETRY = 0.5  # the proxy exists but has no snapshot yet (its leaf is not issued)
IDLE_PAUSE = 0.1  # a poll that ended without a new snapshot
GRACE = 5.0
NACK_MESSAGE_LIMIT = 2000  # characters of Envoy's error_detail kept in the log and the report
OPTIONS = (
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    # NOTE: grpc sets SO_REUSEPORT by default, so a second server on a taken port would
    # bind silently and share the traffic; a clash must be an error instead.
    ("grpc.so_reuseport", 0),
)

Build = Callable[[Any], Mapping[str, Mapping[str, Message]]]
Problems = Callable[[Any], Sequence[str]]  # rule 7: snapshot -> what its resources leave out, and why


class Translation(Protocol):
    desired: delta.Desired  # {type URL: {name: Versioned}}


Translate = Callable[[Any, Any], Translation]  # (snapshot, previous Translation or None) -> Translation


class _Whole(NamedTuple):
    desired: delta.Desired


def no_problems(snapshot: Any) -> tuple[str, ...]:
    return ()


def whole(build: Build) -> Translate:
    """A translation without memory: every snapshot built and versioned whole."""
    return lambda snapshot, previous: _Whole(delta.version_resources(build(snapshot)))

_STATUS: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (TimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
)


class SnapshotSource(Protocol):
    """What the servicer needs from the ProxyWatcher. A snapshot has ``index`` and ``version``."""

    async def get(self, proxy_id: str, *, index: int = 0, wait: float = 0.0) -> Any: ...

    def report(self, proxy_id: str, *, applied_version: str, connections: int = 0, pid: int = 0,
               data_plane: str = "builtin", extra: dict[str, Any] | None = None) -> Any: ...


class Stream(Protocol):
    """One ADS stream: ``recv`` returns ``None`` once Envoy has closed its side."""

    async def recv(self) -> discovery_pb2.DeltaDiscoveryRequest | None: ...

    async def send(self, response: discovery_pb2.DeltaDiscoveryResponse) -> None: ...


class StreamTimeout(TimeoutError):
    """A deadline of rule 3 passed; the message says which."""


class XdsServer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    """Serves proxy snapshots from ``source`` to Envoy over delta ADS.

    ``translate(snapshot, previous)`` is the translation (pure, rule 1).
    Loop-safe: every stream runs on the loop grpc.aio serves it on; streams share nothing
    but ``source``. Timeouts are in seconds (rule 3).
    """

    def __init__(self, source: SnapshotSource, translate: Translate, *, log: logging.Logger | None = None,
                 first_request_timeout: float = FIRST_REQUEST_TIMEOUT, send_timeout: float = SEND_TIMEOUT,
                 ack_timeout: float = ACK_TIMEOUT, poll_wait: float = POLL_WAIT,
                 problems: Problems = no_problems) -> None:
        self.source = source
        self.translate = translate
        self.problems = problems
        self.log = log or logging.getLogger("trellis.xds")
        self.first_request_timeout = first_request_timeout
        self.send_timeout = send_timeout
        self.ack_timeout = ack_timeout
        self.poll_wait = poll_wait
        self.streams = 0  # open right now

    # -- gRPC ----------------------------------------------------------------------------

    async def DeltaAggregatedResources(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        try:
            await self.serve(_GrpcStream(context))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # rule 4: map by type; anything unexpected is a bug
            code = next((c for t, c in _STATUS if isinstance(exc, t)), None)
            if code is None:
                self.log.exception("xds: stream failed")
                code = grpc.StatusCode.INTERNAL
            else:
                self.log.warning("xds: ending a stream with %s: %s", code.name, exc)
            await context.abort(code, str(exc) or type(exc).__name__)

    async def StreamAggregatedResources(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "trellis serves incremental xDS only: set ads_config.api_type to DELTA_GRPC in the Envoy bootstrap",
        )

    # -- one stream ----------------------------------------------------------------------

    async def serve(self, stream: Stream) -> None:
        """Run one stream until Envoy closes it (returns) or it must end (raises, rule 4)."""
        try:
            async with asyncio.timeout(self.first_request_timeout):
                first = await stream.recv()
        except TimeoutError:
            raise StreamTimeout(f"no request within {self.first_request_timeout:g}s of opening the stream") from None
        if first is None:
            return
        session = _Session(self, stream, first)
        self.streams += 1
        self.log.info("xds: stream opened for %s (%s)", session.proxy_id, session.agent)
        try:
            await session.run(first)
        finally:
            self.streams -= 1
            self.log.info("xds: stream closed for %s", session.proxy_id)


def node_id(request: discovery_pb2.DeltaDiscoveryRequest) -> str:
    """The proxy ID Envoy names in the first request (set_node_on_first_message_only)."""
    if not request.HasField("node") or not request.node.id:
        raise InvalidInput("node.id", "", "the first request on an ADS stream must carry the node id (the proxy ID)")
    return request.node.id


def _one_line(message: str, limit: int = NACK_MESSAGE_LIMIT) -> str:
    """Envoy's NACK text on one line. NOTE: Envoy 1.40 puts the whole rejected resource
    (proto text) before the reason, so a long one keeps its start and its end."""
    text = " ".join(message.split())
    return text if len(text) <= limit else f"{text[:limit // 4]} ... {text[-(limit - limit // 4):]}"


def _agent(request: discovery_pb2.DeltaDiscoveryRequest) -> str:
    node = request.node
    v = node.user_agent_build_version.version
    version = f"{v.major_number}.{v.minor_number}.{v.patch}" if node.HasField("user_agent_build_version") else "?"
    return f"{node.user_agent_name or 'unknown agent'} {version}"


_STREAM_IDS = itertools.count(1)


class _Session:
    """The shell state of one stream: the protocol state, the desired resources, and
    what was last reported (rules 2 and 5)."""

    def __init__(self, server: XdsServer, stream: Stream, first: discovery_pb2.DeltaDiscoveryRequest) -> None:
        self.server = server
        self.log = server.log
        self.stream = stream
        self.proxy_id = node_id(first)
        self.agent = _agent(first)
        self.state = StreamState()
        self.desired: delta.Desired = {}
        self.translation: Translation | None = None  # the last good one, reused by the next
        self.snapshot_version = ""  # of the desired resources
        self.applied_version = ""  # rule 5
        self.build_error = ""
        self.problems: tuple[str, ...] = ()  # rule 7, of the desired resources
        self.last_nack: dict[str, Any] = {}
        self.sent_at: dict[str, float] = {}  # nonce -> monotonic time it was sent
        self.wake = asyncio.Event()
        self._reported: tuple | None = None
        self.stream_id = next(_STREAM_IDS)  # reported as the "pid" once in sync: a new Envoy process or stream

    async def run(self, first: discovery_pb2.DeltaDiscoveryRequest) -> None:
        self.on_request(first)
        tasks = [
            asyncio.create_task(self._read(), name=f"xds-read:{self.proxy_id}"),
            asyncio.create_task(self._follow(), name=f"xds-follow:{self.proxy_id}"),
            asyncio.create_task(self._push(), name=f"xds-push:{self.proxy_id}"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # the first error ends the stream; _read returning ends it cleanly
        finally:  # rule 6
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- requests --------------------------------------------------------------------------

    async def _read(self) -> None:
        while True:
            request = await self.stream.recv()
            if request is None:
                return
            self.on_request(request)

    def on_request(self, request: discovery_pb2.DeltaDiscoveryRequest) -> None:
        self.state, received = delta.receive(self.state, request)
        if received.kind in (Kind.ACK, Kind.NACK):
            self.sent_at.pop(received.nonce, None)
        if received.kind is Kind.NACK:
            self._nacked(received)
        elif received.kind is Kind.IGNORED:
            self.log.debug("xds: %s asked for %s, which trellis does not serve", self.proxy_id, received.type_url)
        elif received.kind is Kind.STALE:
            self.log.debug("xds: %s answered stale nonce %s for %s", self.proxy_id, received.nonce,
                           delta.SHORT[received.type_url])
        self._report()  # deduplicated: only a change goes to the source
        self.wake.set()

    def _nacked(self, received: delta.Received) -> None:
        kind, message = delta.SHORT[received.type_url], _one_line(received.error)
        self.log.warning("xds: %s (%s) rejected %s %s (nonce %s, snapshot %s): %s", self.proxy_id, self.agent,
                         kind, ", ".join(received.names), received.nonce, self.snapshot_version or "-", message)
        self.last_nack = {"type": kind, "names": list(received.names), "nonce": received.nonce,
                          "message": message}

    # -- snapshots -------------------------------------------------------------------------

    async def _follow(self) -> None:
        index = 0
        while True:
            try:
                snap = await self.server.source.get(self.proxy_id, index=index, wait=self.server.poll_wait)
            except NotFound as exc:
                raise NotFound(f"node id {self.proxy_id!r}: {exc}") from None
            except Unavailable:
                raise  # the agent is shutting down: end the stream (UNAVAILABLE); Envoy reconnects later
            except TrellisError as exc:  # the proxy exists but has no snapshot yet
                self.log.debug("xds: no snapshot for %s yet: %s", self.proxy_id, exc)
                await asyncio.sleep(NO_SNAPSHOT_RETRY)
                continue
            if index and snap.index <= index:
                await asyncio.sleep(IDLE_PAUSE)  # the wait ended with nothing new
                continue
            index = snap.index
            self.on_snapshot(snap)

    def on_snapshot(self, snap: Any) -> None:
        try:
            translation = self.server.translate(snap, self.translation)
        except Exception as exc:  # rule 4: keep the last good resources
            self.log.exception("xds: translating snapshot %s of %s failed; Envoy keeps its last configuration",
                               snap.version, self.proxy_id)
            self.build_error = f"snapshot {snap.version}: {exc}"
        else:
            self.translation, self.desired = translation, translation.desired
            self.snapshot_version, self.build_error = snap.version, ""
            self._note_problems(snap)
        self._report()
        self.wake.set()

    def _note_problems(self, snap: Any) -> None:
        """Rule 7: log each problem once, when it appears; keep them all for the report."""
        try:
            found = tuple(self.server.problems(snap))
        except Exception:  # a bug in the diagnosis must not cost Envoy its configuration
            self.log.exception("xds: listing the problems of snapshot %s of %s failed", snap.version, self.proxy_id)
            return
        for problem in found:
            if problem not in self.problems:
                self.log.warning("xds: %s (snapshot %s): %s", self.proxy_id, snap.version, problem)
        self.problems = found

    # -- responses -------------------------------------------------------------------------

    async def _push(self) -> None:
        while True:
            self.wake.clear()
            while self.snapshot_version:  # nothing, not even removals, before the first snapshot
                self.state, response = delta.next_response(
                    self.state, self.desired, system_version=self.snapshot_version)
                if response is None:
                    break
                self.sent_at[response.nonce] = time.monotonic()
                if self.log.isEnabledFor(logging.DEBUG):
                    self.log.debug("xds: %s <- %s nonce %s: %d resource(s) %s, %d removal(s)", self.proxy_id,
                                   delta.SHORT[response.type_url], response.nonce, len(response.resources),
                                   ", ".join(r.name for r in response.resources), len(response.removed_resources))
                try:
                    async with asyncio.timeout(self.server.send_timeout):
                        await self.stream.send(response)
                except TimeoutError:
                    raise StreamTimeout(f"Envoy {self.proxy_id} did not take a response within "
                                        f"{self.server.send_timeout:g}s") from None
            await self._wait_for_wake()

    async def _wait_for_wake(self) -> None:
        if not self.sent_at:
            await self.wake.wait()
            return
        nonce, sent = min(self.sent_at.items(), key=lambda item: item[1])
        left = self.server.ack_timeout - (time.monotonic() - sent)
        try:
            async with asyncio.timeout(max(left, 0.0)):
                await self.wake.wait()
        except TimeoutError:
            raise StreamTimeout(f"Envoy {self.proxy_id} did not answer nonce {nonce} within "
                                f"{self.server.ack_timeout:g}s") from None

    # -- reporting (rule 5) ----------------------------------------------------------------

    def _report(self) -> None:
        if self.snapshot_version and delta.in_sync(self.state, self.desired):
            self.applied_version = self.snapshot_version
        extra: dict[str, Any] = {
            "acked": delta.acked_counts(self.state),
            "rejected": delta.rejected_counts(self.state),
            "sent_version": self.snapshot_version,
            "agent": self.agent,
        }
        if self.last_nack:
            extra["last_nack"] = self.last_nack
        if self.build_error:
            extra["build_error"] = self.build_error
        if self.problems:
            extra["problems"] = list(self.problems)
        key = (self.applied_version, repr(extra))
        if key == self._reported or not self.state.types:
            return
        try:
            # The stream's number stands for a process ID once Envoy holds its listeners, so
            # the registry sees "a new proxy is up" (the agent then probes its sidecar checks).
            self.server.source.report(self.proxy_id, applied_version=self.applied_version, data_plane="envoy",
                                      pid=self.stream_id if self.applied_version else 0, extra=extra)
        except NotFound:
            return  # the proxy went away; _follow ends the stream
        self._reported = key


class _GrpcStream:
    """grpc.aio's servicer context as a Stream (read/write API, no request iterator)."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self.context = context

    async def recv(self) -> discovery_pb2.DeltaDiscoveryRequest | None:
        request = await self.context.read()
        return None if request is grpc.aio.EOF else request

    async def send(self, response: discovery_pb2.DeltaDiscoveryResponse) -> None:
        await self.context.write(response)


async def start_xds_server(source: SnapshotSource, translate: Translate, host: str | Sequence[str], port: int, *,
                           log: logging.Logger | None = None, problems: Problems = no_problems) -> grpc.aio.Server:
    """Start a gRPC server with the ADS servicer on ``host`` (one address, or several such
    as ``("127.0.0.1", "::1")``) and ``port``; return it started. The caller stops it with
    ``await server.stop(GRACE)``. An IPv6 address that cannot be bound is skipped with a
    warning; nothing bound at all raises OSError."""
    logger = log or logging.getLogger("trellis.xds")
    server = grpc.aio.server(options=OPTIONS)
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(
        XdsServer(source, translate, log=logger, problems=problems), server)
    hosts = [host] if isinstance(host, str) else list(host)
    bound = 0
    for h in hosts:
        address = f"[{h}]:{port}" if ":" in h else f"{h}:{port}"
        try:
            got = server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc raises RuntimeError when it cannot bind
            if ":" in h:
                logger.warning("xds: cannot listen on %s, skipping it: %s", address, exc)
                continue
            raise OSError(f"xds: cannot listen on {address}: {exc}") from None
        port = port or got
        bound += 1
    if not bound:
        raise OSError(f"xds: no address of {hosts} could be bound on port {port}")
    await server.start()
    logger.info("xds: listening on %s port %d", ", ".join(hosts), port)
    return server
