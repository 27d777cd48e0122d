"""What only the SQLite backend promises: persistence, crash safety, group commit, catch-up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from trellis.errors import InvalidInput, Unavailable
from trellis.store.backend import Compacted, Compare, Delete, Put
from trellis.store.sqlite import SQLiteBackend, _read_log

DEADLINE = 10.0

# A child that acknowledges 50 concurrent txns, prints the last revision, and
# waits to be killed: nothing is closed cleanly.
CHILD = """
import asyncio, sys
from trellis.store.backend import Put
from trellis.store.sqlite import SQLiteBackend

async def main():
    backend = await SQLiteBackend.open(sys.argv[1], synchronous=sys.argv[2])
    results = await asyncio.gather(*(backend.txn(puts=[Put(f"k/{i}", b"%d" % i)]) for i in range(50)))
    print(max(r.revision for r in results), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


async def test_reopen_keeps_keys_and_revisions_continue(db: Path) -> None:
    backend = await SQLiteBackend.open(db)
    await backend.txn(puts=[Put("a", b"1"), Put("b", b"2")])
    await backend.txn(deletes=[Delete("a")])
    await backend.close()

    backend = await SQLiteBackend.open(db)
    try:
        items, revision = await backend.range("")
        after = await backend.txn(puts=[Put("c", b"3")])
    finally:
        await backend.close()

    assert [(kv.key, kv.value, kv.mod_revision) for kv in items] == [("b", b"2", 1)]
    assert revision == 2
    assert after.revision == 3


async def test_watch_after_reopen_replays_the_persisted_log(db: Path) -> None:
    backend = await SQLiteBackend.open(db, history=2)
    for i in range(5):
        await backend.txn(puts=[Put(f"k/{i}", b"v")])
    await backend.close()

    backend = await SQLiteBackend.open(db, history=2)
    try:
        with pytest.raises(Compacted):
            await anext(backend.watch("k/", 3))
        async with contextlib.aclosing(backend.watch("k/", 4)) as watch:
            async with asyncio.timeout(DEADLINE):
                replayed = [await anext(watch), await anext(watch)]
    finally:
        await backend.close()

    assert [b.revision for b in replayed] == [4, 5]


@pytest.mark.parametrize("synchronous", ["FULL", "NORMAL"])
async def test_kill_9_after_acknowledged_txns_loses_nothing(db: Path, synchronous: str) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, str(db), synchronous, stdout=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(DEADLINE):
            line = await child.stdout.readline()  # type: ignore[union-attr]
    finally:
        os.kill(child.pid, signal.SIGKILL)
        await child.wait()
    acknowledged = int(line)

    backend = await SQLiteBackend.open(db)
    try:
        items, revision = await backend.range("k/")
    finally:
        await backend.close()

    assert revision == acknowledged == 50
    assert sorted(kv.value for kv in items) == sorted(b"%d" % i for i in range(50))


async def test_failed_group_fails_every_txn_and_the_revision_stays(db: Path) -> None:
    backend = await SQLiteBackend.open(db, busy_timeout=0.05)
    await backend.txn(puts=[Put("k", b"0")])
    intruder = sqlite3.connect(db, isolation_level=None)
    try:
        intruder.execute("BEGIN IMMEDIATE")  # holds the write lock: the writer's BEGIN fails
        results = await asyncio.gather(
            *(backend.txn(puts=[Put(f"x/{i}", b"v")]) for i in range(10)), return_exceptions=True
        )
        intruder.execute("ROLLBACK")
        after = await backend.txn(puts=[Put("k", b"1")])
        items, _ = await backend.range("")
    finally:
        intruder.close()
        await backend.close()

    assert all(isinstance(r, Unavailable) for r in results), results
    assert after.revision == 2
    assert [kv.key for kv in items] == ["k"]


async def test_compares_in_one_group_see_the_txns_before_them(db: Path) -> None:
    backend = await SQLiteBackend.open(db)
    try:
        first = await backend.txn(puts=[Put("k", b"0")])
        # Submitted together, these land in one or few groups; each compares
        # against the state left by the ones queued before it.
        results = await asyncio.gather(
            backend.txn(compares=[Compare("k", first.revision)], puts=[Put("k", b"1")]),
            backend.txn(compares=[Compare("k", first.revision + 1)], puts=[Put("k", b"2")]),
            backend.txn(compares=[Compare("k", first.revision)], puts=[Put("k", b"lost")]),
            backend.txn(compares=[Compare("k", first.revision + 2)], puts=[Put("k", b"3")]),
        )
        [kv], _ = await backend.range("k")
    finally:
        await backend.close()

    assert [r.succeeded for r in results] == [True, True, False, True]
    assert [r.revision for r in results] == [2, 3, 3, 4]
    assert kv.value == b"3"


async def test_watch_neither_repeats_nor_misses_commits_around_its_replay(db: Path) -> None:
    backend = await SQLiteBackend.open(db)
    await backend.txn(puts=[Put("k/0", b"v")])
    read = backend._reader.run
    raced = False

    async def racing_read(fn, *args):  # type: ignore[no-untyped-def]
        nonlocal raced
        if fn is not _read_log or raced:
            return await read(fn, *args)
        raced = True
        await backend.txn(puts=[Put("k/in-snapshot-and-live", b"v")])
        result = await read(fn, *args)
        await backend.txn(puts=[Put("k/live-only", b"v")])
        return result

    backend._reader.run = racing_read  # type: ignore[method-assign]
    try:
        async with contextlib.aclosing(backend.watch("k/", 1)) as watch:
            async with asyncio.timeout(DEADLINE):
                batches = [await anext(watch) for _ in range(3)]
                await backend.txn(puts=[Put("k/next", b"v")])
                batches.append(await anext(watch))
    finally:
        await backend.close()

    assert [(b.revision, b.events[0].key) for b in batches] == [
        (1, "k/0"),
        (2, "k/in-snapshot-and-live"),
        (3, "k/live-only"),
        (4, "k/next"),
    ]


async def test_lagging_watcher_catches_up_from_the_log(db: Path) -> None:
    backend = await SQLiteBackend.open(db, watch_buffer=2)
    try:
        async with contextlib.aclosing(backend.watch("", 1)) as watch:
            for i in range(30):  # nobody reads: the watcher's queue overflows
                await backend.txn(puts=[Put(f"k/{i}", b"v")])
            async with asyncio.timeout(DEADLINE):
                batches = [await anext(watch) for _ in range(30)]
                await backend.txn(puts=[Put("live", b"v")])
                live = await anext(watch)
    finally:
        await backend.close()

    assert [b.revision for b in batches] == list(range(1, 31))
    assert live.revision == 31


async def test_a_closed_or_cancelled_watch_unsubscribes(db: Path) -> None:
    backend = await SQLiteBackend.open(db)
    try:
        await backend.txn(puts=[Put("k", b"v")])
        async with contextlib.aclosing(backend.watch("", 1)) as watch:
            await anext(watch)
            assert len(backend._subscribers) == 1
        cancelled = backend.watch("", 2)
        waiting = asyncio.ensure_future(anext(cancelled))
        await asyncio.sleep(0.01)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert not backend._subscribers
    finally:
        await backend.close()


async def test_close_lets_queued_txns_commit(db: Path) -> None:
    backend = await SQLiteBackend.open(db)
    pending = [asyncio.create_task(backend.txn(puts=[Put(f"k/{i}", b"v")])) for i in range(50)]
    await asyncio.sleep(0)  # every task has queued its txn

    await backend.close()

    assert sorted(t.result().revision for t in pending) == list(range(1, 51))
    backend = await SQLiteBackend.open(db)
    try:
        items, _ = await backend.range("k/")
    finally:
        await backend.close()
    assert len(items) == 50


async def test_open_refuses_an_unknown_synchronous_mode(db: Path) -> None:
    with pytest.raises(InvalidInput, match="synchronous"):
        await SQLiteBackend.open(db, synchronous="OFF")


async def test_open_where_no_file_can_be_made_raises_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable):
        await SQLiteBackend.open(tmp_path / "missing-dir" / "store.db")


async def test_a_new_database_is_readable_by_its_owner_only(tmp_path):
    """It holds the CA's private keys."""
    backend = await SQLiteBackend.open(tmp_path / "state.db")
    try:
        await backend.txn([], [Put("k", b"v")], [])
    finally:
        await backend.close()
    for f in tmp_path.iterdir():
        assert f.stat().st_mode & 0o077 == 0, (f, oct(f.stat().st_mode))
