"""The in-memory indexed view: every read is served from here.

    API write ──txn──▶ Backend ──commit──▶ watch(prefix="") ──batches──▶ View.apply
                          │                                              │
                          └─ revision r ◀── wait_applied(r) ◀────────────┘ (read-your-writes)

Rules:
1. Tables own a key prefix and their indexes; applying an event returns the
   *watch keys* it touched (small tuples such as ``("service", ns, name)``).
2. Each watch key remembers the revision of its last change. A query records the
   watch keys it read (its watch set); its index is the highest revision among
   them, so ``X-Consul-Index`` comes from what the query read, never 0.
3. A blocking query parks on its watch keys; a write wakes only the waiters of
   the keys it touched. Wake-ups may be spurious: callers re-run the query and
   compare indexes.
4. Apply runs on the event loop between awaits, so a query that does not await
   sees one consistent revision.
5. ``shared`` remembers a read until the next applied change, so many callers reading
   the same thing between two changes compute it once (and share the objects).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")

from trellis.store.backend import Backend, Compacted, Event, KeyValue, WatchBatch

log = logging.getLogger(__name__)

WatchKey = tuple


class Table(Protocol):
    prefix: str
    name: str

    def apply(self, event: Event, create_revision: int) -> Iterable[WatchKey]: ...

    def clear(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Result(Generic[T]):
    """A query's answer, the watch keys it read and its index."""

    value: T
    watch: frozenset
    index: int


class View:
    def __init__(self, tables: Sequence[Table]) -> None:
        self.tables = {t.name: t for t in tables}
        self._by_prefix = sorted(tables, key=lambda t: len(t.prefix), reverse=True)
        self.revision = 0
        self._key_rev: dict[WatchKey, int] = {}
        self._waiters: dict[WatchKey, set[asyncio.Future]] = defaultdict(set)
        self._applied_waiters: list[tuple[int, asyncio.Future]] = []
        # create revisions, needed to rebuild CreateIndex after updates
        self._create_rev: dict[str, int] = {}
        self.ready = asyncio.Event()
        self.wakeups = 0  # waiters woken by writes (blocking queries, DNS, proxies): for benchmarks
        self._shared: dict[Hashable, Any] = {}  # shared(): reads made at the current revision

    def __getitem__(self, name: str) -> Table:
        return self.tables[name]

    # -- queries ------------------------------------------------------------
    def key_revision(self, key: WatchKey) -> int:
        return self._key_rev.get(key, 0)

    def index_of(self, watch: Iterable[WatchKey], floor: WatchKey | None = None) -> int:
        """Highest revision among ``watch`` (``floor``'s when none moved); never 0."""
        idx = max((self._key_rev.get(k, 0) for k in watch), default=0)
        if idx == 0 and floor is not None:
            idx = self._key_rev.get(floor, 0)
        return max(idx, 1)

    def result(self, value: T, watch: Iterable[WatchKey], floor: WatchKey | None = None) -> Result[T]:
        ws = frozenset(watch)
        return Result(value, ws, self.index_of(ws, floor))

    def shared(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, done once until the view next changes. For a read that many
        callers make between two changes (every proxy snapshot reads its upstreams'
        instances): they share one result, objects included. ``compute`` must read the
        view only, and callers must not modify what it returns."""
        try:
            return self._shared[key]
        except KeyError:
            value = self._shared[key] = compute()
            return value

    # -- applying -----------------------------------------------------------
    def load(self, items: Sequence[KeyValue], revision: int) -> None:
        for t in self.tables.values():
            t.clear()
        self._create_rev.clear()
        self._shared.clear()
        for kv in items:
            self._apply_event(Event("put", kv.key, kv.value, kv.mod_revision), kv.create_revision)  # type: ignore[arg-type]
        self.revision = revision
        self.ready.set()

    def apply(self, batch: WatchBatch) -> None:
        self._shared.clear()
        touched: set[WatchKey] = set()
        for ev in batch.events:
            if ev.kind == "put":
                create = self._create_rev.setdefault(ev.key, ev.mod_revision)
            else:
                create = self._create_rev.pop(ev.key, ev.mod_revision)
            touched.update(self._apply_event(ev, create))
        for k in touched:
            self._key_rev[k] = batch.revision
        self.revision = max(self.revision, batch.revision)
        for k in touched:
            for fut in self._waiters.pop(k, ()):
                if not fut.done():
                    fut.set_result(None)
                    self.wakeups += 1
        self._wake_applied()

    def _apply_event(self, ev: Event, create_revision: int) -> set[WatchKey]:
        if ev.kind == "put":
            self._create_rev[ev.key] = create_revision
        for t in self._by_prefix:
            if ev.key.startswith(t.prefix):
                keys = set(t.apply(ev, create_revision))
                keys.add((t.name,))
                for k in keys:
                    self._key_rev[k] = max(self._key_rev.get(k, 0), ev.mod_revision)
                return keys
        return set()

    def _wake_applied(self) -> None:
        still = []
        for rev, fut in self._applied_waiters:
            if rev <= self.revision:
                if not fut.done():
                    fut.set_result(None)
            else:
                still.append((rev, fut))
        self._applied_waiters = still

    # -- waiting ------------------------------------------------------------
    async def wait_applied(self, revision: int) -> None:
        if revision <= self.revision:
            return
        fut = asyncio.get_running_loop().create_future()
        self._applied_waiters.append((revision, fut))
        await fut

    async def wait_change(self, watch: Iterable[WatchKey], index: int, timeout: float) -> bool:
        """Park until a key in ``watch`` moves past ``index`` or ``timeout`` ends.

        Returns True when woken by a change (possibly spurious for the query).
        """
        keys = list(watch)
        fut = asyncio.get_running_loop().create_future()
        if self.notify(keys, index, fut):
            return True
        try:
            async with asyncio.timeout(timeout):
                await fut
            return True
        except TimeoutError:
            return False
        finally:
            self.forget(keys, fut)

    def notify(self, keys: Sequence[WatchKey], index: int, fut: asyncio.Future) -> bool:
        """``wait_change`` without a task: resolve ``fut`` when a key in ``keys`` moves past
        ``index``. Returns True, registering nothing, when one already has. The caller
        ``forget``s the future when done with it, resolved or not."""
        if any(self._key_rev.get(k, 0) > index for k in keys):
            return True
        for k in keys:
            self._waiters[k].add(fut)
        return False

    def forget(self, keys: Iterable[WatchKey], fut: asyncio.Future) -> None:
        for k in keys:
            ws = self._waiters.get(k)
            if ws is not None:
                ws.discard(fut)
                if not ws:
                    del self._waiters[k]

    def waiter_count(self) -> int:
        return sum(len(v) for v in self._waiters.values())

    # -- feeding from a backend ---------------------------------------------
    async def run(self, backend: Backend) -> None:
        """Load everything, then apply the change stream until cancelled.

        If the stream falls so far behind that the backend no longer has the
        revisions it needs (``Compacted``), reload from a fresh ``range``.
        """
        while True:
            items, rev = await backend.range("")
            if self.ready.is_set():
                self.reload(items, rev)
            else:
                self.load(items, rev)
            try:
                async for batch in backend.watch("", rev + 1):
                    self.apply(batch)
                return
            except Compacted as exc:
                log.warning("view fell behind the store (%s); reloading", exc)

    def reload(self, items: Sequence[KeyValue], revision: int) -> None:
        """Replace everything, and move every watch key so no waiter keeps a stale answer."""
        self.load(items, revision)
        for k in self._key_rev:
            self._key_rev[k] = revision
        for waiters in self._waiters.values():
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
        self._waiters.clear()
        self._wake_applied()
