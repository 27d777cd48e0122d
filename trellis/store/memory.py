"""MemoryBackend: the Backend contract in a dict, for unit tests of shells.

Rules:
1. Everything runs on the event loop between awaits: a txn applies, records its
   batch and hands it to every watcher before it returns, so a watcher that
   registers and copies its backlog in one step can neither miss nor repeat a
   revision.
2. Revisions are dense (1, 2, 3...), like SQLite's. The last ``history`` batches
   are kept for watch replay; a watch from before them raises ``Compacted``.
3. Nothing is durable. Watcher queues are unbounded: a test that never reads its
   watch just holds memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Sequence

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

_CLOSED = None


class MemoryBackend:
    """In-process Backend. Loop-safe; not thread-safe."""

    def __init__(self, *, history: int = 1000) -> None:
        if history < 0:
            raise ValueError("history must be >= 0")
        self._kv: dict[str, KeyValue] = {}
        self._revision = 0
        self._history: deque[WatchBatch] = deque()
        self._history_limit = history
        self._compacted = 0  # highest revision no longer replayable
        self._watchers: dict[asyncio.Queue[WatchBatch | None], str] = {}
        self._closed = False

    async def range(self, prefix: str) -> tuple[list[KeyValue], int]:
        self._check_open()
        items = [kv for key, kv in self._kv.items() if key.startswith(prefix)]
        items.sort(key=lambda kv: kv.key)
        return items, self._revision

    async def txn(
        self,
        compares: Sequence[Compare] = (),
        puts: Sequence[Put] = (),
        deletes: Sequence[Delete] = (),
    ) -> TxnResult:
        check_txn(compares, puts, deletes)
        self._check_open()
        if any(self._mod_revision(c.key) != c.mod_revision for c in compares):
            return TxnResult(False, self._revision)
        events = self._apply(self._revision + 1, puts, deletes)
        if events:
            self._revision += 1
            self._publish(WatchBatch(self._revision, tuple(events)))
        return TxnResult(True, self._revision)

    async def watch(self, prefix: str, from_revision: int) -> AsyncIterator[WatchBatch]:
        check_watch(prefix, from_revision)
        self._check_open()
        if from_revision <= self._compacted:
            raise Compacted(from_revision, self._compacted + 1)
        # Rule 1: backlog and registration happen without an await in between.
        backlog = [b for b in self._history if b.revision >= from_revision]
        queue: asyncio.Queue[WatchBatch | None] = asyncio.Queue()
        self._watchers[queue] = prefix
        try:
            for batch in backlog:
                mine = _only_under(batch, prefix)
                if mine is not None:
                    yield mine
            while (batch := await queue.get()) is not _CLOSED:
                if batch.revision >= from_revision:
                    yield batch
            raise Unavailable("memory store is closed")
        finally:
            self._watchers.pop(queue, None)

    async def revision(self) -> int:
        self._check_open()
        return self._revision

    async def close(self) -> None:
        self._closed = True
        for queue in self._watchers:
            queue.put_nowait(_CLOSED)

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("memory store is closed")

    def _mod_revision(self, key: str) -> int:
        kv = self._kv.get(key)
        return kv.mod_revision if kv else 0

    def _apply(self, rev: int, puts: Sequence[Put], deletes: Sequence[Delete]) -> list[Event]:
        """Deletes in order (a prefix in key order), then puts in order."""
        events = []
        for d in deletes:
            keys = sorted(k for k in self._kv if k.startswith(d.key)) if d.prefix else [d.key]
            for key in keys:
                if self._kv.pop(key, None) is not None:
                    events.append(Event(EventKind.DELETE, key, None, rev))
        for p in puts:
            old = self._kv.get(p.key)
            created = old.create_revision if old else rev
            self._kv[p.key] = KeyValue(p.key, p.value, created, rev)
            events.append(Event(EventKind.PUT, p.key, p.value, rev))
        return events

    def _publish(self, batch: WatchBatch) -> None:
        self._history.append(batch)
        while len(self._history) > self._history_limit:
            self._compacted = self._history.popleft().revision
        for queue, prefix in self._watchers.items():
            mine = _only_under(batch, prefix)
            if mine is not None:
                queue.put_nowait(mine)


def _only_under(batch: WatchBatch, prefix: str) -> WatchBatch | None:
    """The batch restricted to keys under ``prefix``; None when nothing is. Pure."""
    if not prefix:
        return batch
    events = tuple(e for e in batch.events if e.key.startswith(prefix))
    if not events:
        return None
    if len(events) == len(batch.events):
        return batch
    return WatchBatch(batch.revision, events)
