"""EtcdBackend: the Backend contract on an etcd v3 cluster, through aetcd.

    txn() ──▶ KV.Txn (compares on mod/create revision; deletes, then puts) ──▶ raft commit
    range() ─▶ KV.Range, paged at one pinned revision
    watch() ─▶ one Watch stream per watcher, start_revision = from_revision
               each WatchResponse split into one WatchBatch per mod_revision

Rules:
1. Every key lives under the root ``prefix`` (default ``/trellis/``), so several
   trellis clusters can share one etcd; callers never see the root.
2. Revisions are etcd's: strictly increasing but not dense (etcd starts at 1 and
   other writers of the same etcd move it too).
3. ``Compare(key, 0)`` is sent as ``create_revision == 0`` (the key is absent).
4. grpc/aetcd errors become trellis errors here: a compacted watch is
   ``Compacted``, a request etcd refuses is ``InvalidInput``, anything else
   (connection, timeout, lost leader) is ``Unavailable``.

NOTE: aetcd 1.0.0's ``transaction()`` drops the response header (so the txn's
revision), its ``get()`` returns None without a header for a missing key, and
its ``watch()`` flattens responses into single events (so the revision
boundaries are lost). We use aetcd for the channel and compaction and talk to
its generated stubs (``aetcd.rpc``) for Txn, Range and Watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator, Iterator, Sequence

import aetcd
import grpc
from aetcd import rpc

from trellis.errors import InvalidInput
from trellis.store.backend import (
    Compacted,
    Compare,
    Delete,
    Event,
    EventKind,
    KeyValue,
    Put,
    TxnResult,
    WatchBatch,
)
from trellis.store.errors import Unavailable, check_txn, check_watch

_RANGE_PAGE = 1000
_MAX_MESSAGE = 64 * 1024 * 1024
# etcd cancels the watch when its member loses the leader, instead of going quiet
# (etcd client/v3 WithRequireLeader, api/v3rpc/rpctypes MetadataRequireLeaderKey).
_REQUIRE_LEADER = (("hasleader", "true"),)


class EtcdBackend:
    """Backend on etcd. Create with ``await EtcdBackend.connect(endpoints)``; loop-safe."""

    def __init__(self, client: aetcd.Client, root: bytes, timeout: float) -> None:
        """Private: use ``connect``."""
        self._client = client
        self._root = root
        self._timeout = timeout
        self._kv = rpc.KVStub(client.channel)
        self._watch_stub = rpc.WatchStub(client.channel)
        self._closed = False

    @classmethod
    async def connect(
        cls,
        endpoints: Sequence[str] | str,
        prefix: str = "/trellis/",
        *,
        timeout: float = 10.0,
    ) -> EtcdBackend:
        """Connect to ``endpoints`` (``host:port``, ``http://host:port`` or a comma list).

        Several endpoints become one gRPC target that fails over between them.
        Raises InvalidInput for a malformed endpoint, Unavailable if etcd does not answer.
        """
        if not prefix:
            raise InvalidInput("etcd prefix", prefix, "must not be empty")
        host, port = await _grpc_target(endpoints)
        client = aetcd.Client(
            host,
            port,
            timeout=timeout,
            options={"grpc.max_receive_message_length": _MAX_MESSAGE},
        )
        with _etcd_errors("connecting to etcd", timeout):
            await client.connect()
        backend = cls(client, prefix.encode(), timeout)
        try:
            await backend.revision()
        except BaseException:
            await client.close()
            raise
        return backend

    async def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        self._check_open()
        start = self._root + prefix.encode()
        end = _prefix_end(start)
        items: list[KeyValue] = []
        revision = 0  # pinned by the first page so every page reads one snapshot
        with _etcd_errors("reading from etcd", self._timeout):
            while True:
                req = rpc.RangeRequest(key=start, range_end=end, limit=_RANGE_PAGE, revision=revision)
                async with asyncio.timeout(self._timeout):
                    resp = await self._kv.Range(req, metadata=self._client.metadata)
                revision = revision or resp.header.revision
                items.extend(self._key_value(kv) for kv in resp.kvs)
                if not resp.more:
                    return items, revision
                start = resp.kvs[-1].key + b"\0"

    async def txn(
        self,
        compares: Sequence[Compare] = (),
        puts: Sequence[Put] = (),
        deletes: Sequence[Delete] = (),
    ) -> TxnResult:
        check_txn(compares, puts, deletes)
        self._check_open()
        req = rpc.TxnRequest(
            compare=[self._compare(c) for c in compares],
            success=[self._delete_op(d) for d in deletes] + [self._put_op(p) for p in puts],
        )
        with _etcd_errors("writing to etcd", self._timeout):
            async with asyncio.timeout(self._timeout):
                resp = await self._kv.Txn(req, metadata=self._client.metadata)
        return TxnResult(resp.succeeded, resp.header.revision)

    async def watch(self, prefix: str, from_revision: int) -> AsyncIterator[WatchBatch]:
        check_watch(prefix, from_revision)
        self._check_open()
        key = self._root + prefix.encode()
        create = rpc.WatchCreateRequest(key=key, range_end=_prefix_end(key), start_revision=from_revision)
        metadata = (self._client.metadata or ()) + _REQUIRE_LEADER
        call = self._watch_stub.Watch(metadata=metadata)
        through = from_revision - 1
        try:
            with _etcd_errors("starting an etcd watch", self._timeout):
                async with asyncio.timeout(self._timeout):
                    await call.write(rpc.WatchRequest(create_request=create))
            while True:
                resp = await self._read(call)
                for batch in self._batches(resp, through):
                    through = batch.revision
                    yield batch
        finally:
            call.cancel()

    async def _read(self, call: grpc.aio.StreamStreamCall) -> object:
        try:
            with _etcd_errors("watching etcd", self._timeout):
                return await call.read()
        except asyncio.CancelledError:
            # NOTE: grpc.aio raises CancelledError in a read when the channel is
            # closed under it; only a cancellation of our own task must propagate.
            task = asyncio.current_task()
            if self._closed and task is not None and not task.cancelling():
                raise Unavailable("etcd store is closed") from None
            raise

    async def revision(self) -> int:
        self._check_open()
        with _etcd_errors("reading from etcd", self._timeout):
            async with asyncio.timeout(self._timeout):
                resp = await self._kv.Range(
                    rpc.RangeRequest(key=self._root, count_only=True), metadata=self._client.metadata
                )
        return resp.header.revision

    async def compact(self, revision: int) -> None:
        """Drop etcd's history before ``revision`` (cluster-wide: every prefix sharing the etcd).

        Watches from below ``revision`` then raise Compacted. Production clusters
        usually let etcd do this (``--auto-compaction-retention``).
        """
        self._check_open()
        with _etcd_errors("compacting etcd", self._timeout):
            async with asyncio.timeout(self._timeout):
                await self._client.compact(revision, physical=True)

    async def close(self) -> None:
        """Close the channel; running watches end with Unavailable."""
        if self._closed:
            return
        self._closed = True
        await self._client.close()

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("etcd store is closed")

    def _compare(self, c: Compare) -> rpc.Compare:
        key = self._root + c.key.encode()
        if c.mod_revision == 0:  # rule 3
            return rpc.Compare(key=key, result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, create_revision=0)
        return rpc.Compare(key=key, result=rpc.Compare.EQUAL, target=rpc.Compare.MOD, mod_revision=c.mod_revision)

    def _put_op(self, p: Put) -> rpc.RequestOp:
        return rpc.RequestOp(request_put=rpc.PutRequest(key=self._root + p.key.encode(), value=p.value))

    def _delete_op(self, d: Delete) -> rpc.RequestOp:
        key = self._root + d.key.encode()
        if d.prefix:
            return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key, range_end=_prefix_end(key)))
        return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key))

    def _key_value(self, kv: rpc.KeyValue) -> KeyValue:
        return KeyValue(self._key(kv.key), kv.value, kv.create_revision, kv.mod_revision)

    def _key(self, raw: bytes) -> str:
        return raw[len(self._root) :].decode()

    def _batches(self, resp: object, through: int) -> Iterator[WatchBatch]:
        """One WatchBatch per revision above ``through`` in a WatchResponse; raises on its end."""
        if resp is grpc.aio.EOF:
            raise Unavailable("etcd ended the watch stream")
        assert isinstance(resp, rpc.WatchResponse)
        if resp.compact_revision:
            raise Compacted(through + 1, resp.compact_revision)
        if resp.canceled:
            raise Unavailable(f"etcd cancelled the watch: {resp.cancel_reason or 'no reason given'}")
        events: list[Event] = []
        for ev in resp.events:  # a response holds whole revisions, in order (etcd mvcc eventBatch)
            rev = ev.kv.mod_revision
            if events and events[-1].mod_revision != rev:
                yield WatchBatch(events[-1].mod_revision, tuple(events))
                events = []
            if rev > through:
                events.append(self._event(ev))
        if events:
            yield WatchBatch(events[-1].mod_revision, tuple(events))

    def _event(self, ev: rpc.Event) -> Event:
        key = self._key(ev.kv.key)
        if ev.type == rpc.Event.DELETE:
            return Event(EventKind.DELETE, key, None, ev.kv.mod_revision)
        return Event(EventKind.PUT, key, ev.kv.value, ev.kv.mod_revision)


@contextlib.contextmanager
def _etcd_errors(doing: str, timeout: float) -> Iterator[None]:
    """Convert grpc/aetcd exceptions into trellis errors (module rule 4)."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise InvalidInput(message=f"etcd refused the request: {exc.details()}") from exc
        raise Unavailable(f"{doing}: {exc.code().name}: {exc.details()}") from exc
    except aetcd.ClientError as exc:
        raise Unavailable(f"{doing}: {exc}") from exc
    except TimeoutError as exc:
        raise Unavailable(f"{doing}: no answer within {timeout}s") from exc
    except grpc.aio.UsageError as exc:  # the channel was closed under us
        raise Unavailable(f"{doing}: {exc}") from exc


async def _grpc_target(endpoints: Sequence[str] | str) -> tuple[str, int]:
    """aetcd's (host, port) for one endpoint, or a gRPC ``ipv4:``/``ipv6:`` address list.

    NOTE: aetcd takes one host and port and dials f"{host}:{port}"; a list such as
    ``ipv4:10.0.0.1:2379,10.0.0.2:2379,10.0.0.3`` with port 2379 makes gRPC fail
    over between them (reference/dependencies.md). Host names are resolved here.
    """
    if isinstance(endpoints, str):
        endpoints = [e for e in endpoints.split(",") if e.strip()]
    parsed = [_split_endpoint(e) for e in endpoints]
    if not parsed:
        raise InvalidInput("etcd endpoints", list(endpoints), "at least one host:port is required")
    if len(parsed) == 1:
        return parsed[0]
    loop = asyncio.get_running_loop()
    addrs: list[tuple[str, int]] = []
    for host, port in parsed:
        if _is_ip(host):
            addrs.append((host, port))
            continue
        try:
            infos = await loop.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise Unavailable(f"cannot resolve etcd endpoint {host}: {exc}") from exc
        addrs.append((infos[0][4][0], port))
    family = {ipaddress.ip_address(h).version for h, _ in addrs}
    if len(family) != 1:
        raise InvalidInput("etcd endpoints", list(endpoints), "mix IPv4 and IPv6 addresses")
    scheme = "ipv4" if family == {4} else "ipv6"
    shown = [f"[{h}]:{p}" if scheme == "ipv6" else f"{h}:{p}" for h, p in addrs]
    *head, last = shown
    last_host = last.rsplit(":", 1)[0]
    return f"{scheme}:{','.join(head)},{last_host}", addrs[-1][1]


def _split_endpoint(endpoint: str) -> tuple[str, int]:
    text = endpoint.strip()
    for scheme in ("http://", "etcd://", "grpc://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    text = text.rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise InvalidInput("etcd endpoint", endpoint, "must be host:port")
    return host.strip("[]"), int(port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _prefix_end(prefix: bytes) -> bytes:
    """etcd's range_end for a prefix: the prefix with its last byte raised by one."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"  # etcd: every key >= key
