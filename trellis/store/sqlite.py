"""SQLiteBackend: the embedded store. WAL, one writer thread, group commit.

    txn() ─┐                  writer thread (owns the write connection)
    txn() ─┼─▶ SimpleQueue ─▶ drain all queued ─▶ BEGIN IMMEDIATE
    txn() ─┘                  apply t1 (rev r+1), t2 (r+2), ...   compares see t1..tk-1
                              log rows, meta.revision, trim log; COMMIT (one fsync)
                   loop.call_soon_threadsafe(_deliver) ◀──┘
         watcher queues ◀── batches ──┤  first the watchers,
         txn futures    ◀── results ──┘  then the callers
    range() / watch replay ─▶ reader thread (own connection, one WAL snapshot per read)

Rules:
1. Only the writer thread writes: txns in arrival order, one new revision per txn
   that changes something. Nothing is resolved before COMMIT returns. If the
   group fails, every txn in it gets ``Unavailable`` and the revision stays.
2. The event loop never touches sqlite3: writes go through the writer thread,
   reads through the reader thread.
3. The log keeps the last ``history`` revisions; ``meta.compacted`` is the highest
   revision dropped. A watch from at or below it raises ``Compacted``.
4. A watcher subscribes first, then replays the log, then takes live batches
   above the last revision it replayed: no gap, no repeat. A watcher whose
   queue fills up stops getting live batches and catches up from the log.
5. Durability: WAL + ``synchronous=FULL`` survives power loss; ``NORMAL``
   survives a process crash (kill -9), not an OS crash (sqlite.org/wal.html).
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

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

log = logging.getLogger(__name__)

T = TypeVar("T")

SYNCHRONOUS_MODES = ("FULL", "NORMAL", "EXTRA")
_REPLAY_PAGE = 1000  # revisions per replay read
_STOP = object()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key BLOB PRIMARY KEY,
    value BLOB NOT NULL,
    create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log (
    revision INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    key BLOB NOT NULL,
    kind TEXT NOT NULL,
    value BLOB,
    PRIMARY KEY (revision, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value) VALUES ('revision', 0), ('compacted', 0);
"""
_UPSERT = (
    "INSERT INTO kv (key, value, create_rev, mod_rev) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev"
)


class SQLiteBackend:
    """The embedded Backend. Create with ``await SQLiteBackend.open(path)``; loop-safe."""

    def __init__(self, path: str, revision: int, watch_buffer: int) -> None:
        """Private: use ``open``."""
        self.path = path
        self._revision = revision  # last revision committed and delivered
        self._watch_buffer = watch_buffer
        self._subscribers: set[_Subscriber] = set()
        self._closed = False
        self._writer: _Writer | None = None
        self._reader = _Reader(path)

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        history: int = 10_000,
        busy_timeout: float = 5.0,
        watch_buffer: int = 4096,
    ) -> SQLiteBackend:
        """Open (creating if needed) the store at ``path``; raises Unavailable if it cannot.

        ``history``: revisions kept for watch replay. ``busy_timeout``: how long the
        writer waits for a lock held by someone else before failing a group.
        ``watch_buffer``: live batches queued per watcher before it falls back to
        the log.
        """
        if synchronous not in SYNCHRONOUS_MODES:
            raise InvalidInput("synchronous", synchronous, f"must be one of {', '.join(SYNCHRONOUS_MODES)}")
        if history < 0 or watch_buffer < 1:
            raise InvalidInput(message="history must be >= 0 and watch_buffer >= 1")
        loop = asyncio.get_running_loop()
        path = os.fspath(path)
        _create_private(path)
        ready: asyncio.Future[int] = loop.create_future()
        backend = cls(path, 0, watch_buffer)
        writer = _Writer(path, synchronous, busy_timeout, history, loop, backend._deliver, ready)
        writer.start()
        backend._revision = await ready  # the writer thread exits if this raises
        backend._writer = writer
        return backend

    async def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        self._check_open()
        return await self._reader.run(_read_range, prefix)

    async def txn(
        self,
        compares: Sequence[Compare] = (),
        puts: Sequence[Put] = (),
        deletes: Sequence[Delete] = (),
    ) -> TxnResult:
        """Queue the txn for the writer; return once committed (or raise Unavailable).

        NOTE: cancelling the caller does not withdraw a queued txn; it may still commit.
        """
        check_txn(compares, puts, deletes)
        self._check_open()
        assert self._writer is not None
        future: asyncio.Future[TxnResult] = asyncio.get_running_loop().create_future()
        self._writer.queue.put(_Txn(tuple(compares), tuple(puts), tuple(deletes), future))
        return await future

    async def watch(self, prefix: str, from_revision: int) -> AsyncIterator[WatchBatch]:
        check_watch(prefix, from_revision)
        self._check_open()
        sub = _Subscriber(prefix, self._watch_buffer)
        self._subscribers.add(sub)  # rule 4: before the replay's snapshot is taken
        through = from_revision - 1  # everything up to here is delivered (or not asked for)
        try:
            while True:
                if sub.lagged:
                    sub.reset()
                    current = through + 1
                    while through < current:
                        batches, through, current = await self._reader.run(
                            _read_log, prefix, through + 1, _REPLAY_PAGE
                        )
                        for batch in batches:
                            yield batch
                    continue
                batch = await sub.queue.get()
                if batch is None:
                    raise Unavailable("sqlite store is closed")
                if batch.revision > through:
                    through = batch.revision
                    yield batch
        finally:
            self._subscribers.discard(sub)

    async def revision(self) -> int:
        self._check_open()
        return self._revision

    async def close(self) -> None:
        """Let queued txns commit, stop the writer, end watchers with Unavailable."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.queue.put(_STOP)
            await asyncio.to_thread(self._writer.join)
        for sub in self._subscribers:
            sub.close()
        await self._reader.close()

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("sqlite store is closed")

    def _deliver(
        self, outcomes: list[tuple[asyncio.Future[TxnResult], Any]], batches: list[WatchBatch], revision: int
    ) -> None:
        """On the loop, after a group's COMMIT (or its failure): watchers, then callers."""
        self._revision = revision
        if batches:
            for sub in self._subscribers:
                sub.offer(batches)
        for future, outcome in outcomes:
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


@dataclass(frozen=True, slots=True)
class _Txn:
    compares: tuple[Compare, ...]
    puts: tuple[Put, ...]
    deletes: tuple[Delete, ...]
    future: asyncio.Future[TxnResult]


class _Subscriber:
    """One watcher's live feed: a bounded queue, and ``lagged`` when it must read the log."""

    __slots__ = ("prefix", "queue", "lagged")

    def __init__(self, prefix: str, size: int) -> None:
        self.prefix = prefix
        self.queue: asyncio.Queue[WatchBatch | None] = asyncio.Queue(size)
        self.lagged = True  # a new watcher starts by replaying

    def offer(self, batches: list[WatchBatch]) -> None:
        if self.lagged:
            return
        for batch in batches:
            mine = _only_under(batch, self.prefix)
            if mine is None:
                continue
            try:
                self.queue.put_nowait(mine)
            except asyncio.QueueFull:
                self.lagged = True
                return

    def reset(self) -> None:
        self.lagged = False
        while not self.queue.empty():
            self.queue.get_nowait()

    def close(self) -> None:
        self.reset()
        self.queue.put_nowait(None)


class _Writer(threading.Thread):
    """Owns the write connection; applies queued txns in groups (module rule 1)."""

    def __init__(
        self,
        path: str,
        synchronous: str,
        busy_timeout: float,
        history: int,
        loop: asyncio.AbstractEventLoop,
        deliver: Callable[..., None],
        ready: asyncio.Future[int],
    ) -> None:
        super().__init__(name="trellis-sqlite-writer", daemon=True)
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._path = path
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._history = history
        self._loop = loop
        self._deliver = deliver
        self._ready = ready
        self._revision = 0
        self._compacted = 0

    def run(self) -> None:
        try:
            conn = _connect(self._path, self._busy_timeout)
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise sqlite3.OperationalError(f"journal_mode is {mode}, WAL is required")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.executescript(_SCHEMA)
            self._revision = _meta(conn, "revision")
            self._compacted = _meta(conn, "compacted")
        except Exception as exc:
            self._post(_settle, self._ready, _unavailable(exc))
            return
        self._post(_settle, self._ready, self._revision)
        try:
            self._serve(conn)
        finally:
            conn.close()

    def _serve(self, conn: sqlite3.Connection) -> None:
        while True:
            group = [self.queue.get()]
            try:
                while True:
                    group.append(self.queue.get_nowait())
            except queue.Empty:
                pass
            txns = [t for t in group if t is not _STOP]
            if txns:
                self._commit(conn, txns)
            if len(txns) < len(group):
                return

    def _commit(self, conn: sqlite3.Connection, txns: list[_Txn]) -> None:
        rev, compacted = self._revision, self._compacted
        results: list[TxnResult] = []
        batches: list[WatchBatch] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for t in txns:
                if all(_mod_revision(conn, c.key) == c.mod_revision for c in t.compares):
                    events = _apply(conn, rev + 1, t.puts, t.deletes)
                    if events:
                        rev += 1
                        batches.append(WatchBatch(rev, events))
                    results.append(TxnResult(True, rev))
                else:
                    results.append(TxnResult(False, rev))
            if rev != self._revision:
                conn.execute("UPDATE meta SET value = ? WHERE name = 'revision'", (rev,))
                compacted = _trim(conn, rev, self._history, compacted)
            conn.execute("COMMIT")
        except Exception as exc:
            _rollback(conn)
            if not isinstance(exc, sqlite3.Error):
                log.exception("sqlite writer: a group of %d txns failed", len(txns))
            failures = [(t.future, _unavailable(exc)) for t in txns]
            self._post(self._deliver, failures, [], self._revision)
            return
        self._revision, self._compacted = rev, compacted
        outcomes = [(t.future, r) for t, r in zip(txns, results)]
        self._post(self._deliver, outcomes, batches, rev)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass


class _Reader:
    """One thread with one read connection; each call runs in one read transaction."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trellis-sqlite-reader")
        self._conn: sqlite3.Connection | None = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            pending = loop.run_in_executor(self._pool, self._call, fn, args)
        except RuntimeError as exc:  # the pool was shut down by close()
            raise Unavailable("sqlite store is closed") from exc
        return await pending

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            if self._conn is None:
                self._conn = _connect(self._path, 5.0)
                self._conn.execute("PRAGMA query_only=ON")
            self._conn.execute("BEGIN")
            try:
                return fn(self._conn, *args)
            finally:
                _rollback(self._conn)
        except sqlite3.Error as exc:
            raise _unavailable(exc) from exc

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._close_conn)
        self._pool.shutdown(wait=False)


# -- SQL, run on the writer or the reader thread ------------------------------


def _connect(path: str, busy_timeout: float) -> sqlite3.Connection:
    return sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)


def _meta(conn: sqlite3.Connection, name: str) -> int:
    return conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0]


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _under(prefix: str, column: str = "key") -> tuple[str, tuple[bytes, ...]]:
    """SQL condition and parameters for ``column`` starting with ``prefix`` (byte order)."""
    start = prefix.encode()
    end = _prefix_end(start)
    if end is None:
        return f"{column} >= ?", (start,)
    return f"{column} >= ? AND {column} < ?", (start, end)


def _prefix_end(prefix: bytes) -> bytes | None:
    """Smallest byte string above every string starting with ``prefix`` (etcd's range_end)."""
    s = bytearray(prefix)
    while s:
        if s[-1] < 0xFF:
            s[-1] += 1
            return bytes(s)
        s.pop()
    return None


def _mod_revision(conn: sqlite3.Connection, key: str) -> int:
    row = conn.execute("SELECT mod_rev FROM kv WHERE key = ?", (key.encode(),)).fetchone()
    return row[0] if row else 0


def _apply(
    conn: sqlite3.Connection, rev: int, puts: Sequence[Put], deletes: Sequence[Delete]
) -> tuple[Event, ...]:
    """Deletes in order (a prefix in key order), then puts in order; log every event."""
    events = [Event(EventKind.DELETE, key, None, rev) for d in deletes for key in _delete(conn, d)]
    for p in puts:
        conn.execute(_UPSERT, (p.key.encode(), p.value, rev, rev))
        events.append(Event(EventKind.PUT, p.key, p.value, rev))
    conn.executemany(
        "INSERT INTO log (revision, seq, key, kind, value) VALUES (?, ?, ?, ?, ?)",
        [(rev, seq, e.key.encode(), e.kind.value, e.value) for seq, e in enumerate(events)],
    )
    return tuple(events)


def _delete(conn: sqlite3.Connection, d: Delete) -> list[str]:
    if not d.prefix:
        cur = conn.execute("DELETE FROM kv WHERE key = ?", (d.key.encode(),))
        return [d.key] if cur.rowcount else []
    where, params = _under(d.key)
    keys = [row[0] for row in conn.execute(f"SELECT key FROM kv WHERE {where} ORDER BY key", params)]
    conn.execute(f"DELETE FROM kv WHERE {where}", params)
    return [k.decode() for k in keys]


def _trim(conn: sqlite3.Connection, rev: int, history: int, compacted: int) -> int:
    floor = rev - history
    if floor <= compacted:
        return compacted
    conn.execute("DELETE FROM log WHERE revision <= ?", (floor,))
    conn.execute("UPDATE meta SET value = ? WHERE name = 'compacted'", (floor,))
    return floor


def _read_range(conn: sqlite3.Connection, prefix: str) -> tuple[list[KeyValue], int]:
    rev = _meta(conn, "revision")  # the first read fixes the snapshot for the rest
    where, params = _under(prefix)
    rows = conn.execute(
        f"SELECT key, value, create_rev, mod_rev FROM kv WHERE {where} ORDER BY key", params
    )
    return [KeyValue(k.decode(), v, c, m) for k, v, c, m in rows], rev


def _read_log(
    conn: sqlite3.Connection, prefix: str, start: int, page: int
) -> tuple[list[WatchBatch], int, int]:
    """Batches under ``prefix`` for revisions start..end, end, and the current revision."""
    compacted = _meta(conn, "compacted")
    current = _meta(conn, "revision")
    if start <= compacted:
        raise Compacted(start, compacted + 1)
    end = max(start - 1, min(current, start + page - 1))
    where, params = _under(prefix)
    rows = conn.execute(
        "SELECT revision, key, kind, value FROM log "
        f"WHERE revision BETWEEN ? AND ? AND {where} ORDER BY revision, seq",
        (start, end, *params),
    )
    batches: list[WatchBatch] = []
    events: list[Event] = []
    for rev, key, kind, value in rows:
        if events and events[-1].mod_revision != rev:
            batches.append(WatchBatch(events[-1].mod_revision, tuple(events)))
            events = []
        events.append(Event(EventKind(kind), key.decode(), value, rev))
    if events:
        batches.append(WatchBatch(events[-1].mod_revision, tuple(events)))
    return batches, end, current


def _only_under(batch: WatchBatch, prefix: str) -> WatchBatch | None:
    """The batch restricted to keys under ``prefix``; None when nothing is. Pure."""
    if not prefix:
        return batch
    events = tuple(e for e in batch.events if e.key.startswith(prefix))
    if not events:
        return None
    return batch if len(events) == len(batch.events) else WatchBatch(batch.revision, events)


def _unavailable(exc: BaseException) -> Unavailable:
    err = Unavailable(f"sqlite store: {exc}")
    err.__cause__ = exc
    return err


def _settle(future: asyncio.Future[int], outcome: int | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _create_private(path: str) -> None:
    """Create the database file readable by its owner only: it holds the CA's private
    keys. SQLite gives its -wal and -shm files the database file's permissions."""
    if path == ":memory:" or path.startswith("file:") or os.path.exists(path):
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError:
        pass  # SQLite reports the problem with its own words when it opens the path
