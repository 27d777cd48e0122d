"""The Backend contract (trellis/store/backend.py), run unchanged against memory, SQLite and etcd.

Revisions are compared by order, never by value, except where ``kit.dense`` says
the backend promises 1, 2, 3... (etcd shares its counter with every other user).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from trellis.errors import InvalidInput, Unavailable
from trellis.store.backend import (
    Backend,
    Compacted,
    Compare,
    Delete,
    Event,
    EventKind,
    Put,
    TxnResult,
    WatchBatch,
)
from trellis.store.errors import MAX_TXN_BYTES, MAX_TXN_OPS

if TYPE_CHECKING:
    from conftest import StoreKit

DEADLINE = 10.0


async def put(backend: Backend, *keys: str, value: bytes = b"v") -> TxnResult:
    result = await backend.txn(puts=[Put(k, value) for k in keys])
    assert result.succeeded
    return result


async def keys_of(backend: Backend, prefix: str = "") -> list[str]:
    items, _ = await backend.range(prefix)
    return [kv.key for kv in items]


async def take(watch: AsyncIterator[WatchBatch], count: int) -> list[WatchBatch]:
    """The next ``count`` batches, failing after a generous deadline."""
    out = []
    async with asyncio.timeout(DEADLINE):
        while len(out) < count:
            out.append(await anext(watch))
    return out


async def take_until(watch: AsyncIterator[WatchBatch], revision: int) -> list[WatchBatch]:
    out: list[WatchBatch] = []
    async with asyncio.timeout(DEADLINE):
        while not out or out[-1].revision < revision:
            out.append(await anext(watch))
    return out


def summary(batches: list[WatchBatch]) -> list[tuple[int, list[tuple[str, str, bytes | None]]]]:
    return [(b.revision, [(e.kind.value, e.key, e.value) for e in b.events]) for b in batches]


def assert_no_gaps_or_repeats(revisions: list[int]) -> None:
    assert revisions == sorted(set(revisions)), revisions


# -- range and revisions -------------------------------------------------------------


async def test_range_returns_live_keys_under_prefix_sorted_by_key(backend: Backend) -> None:
    written = await backend.txn(
        puts=[Put(k, k.encode()) for k in ("b/2", "a/2", "a/1", "ab", "b/1")] + [Put("bin", b"\x00\xff\x80")]
    )

    items, revision = await backend.range("a/")
    everything, _ = await backend.range("")

    assert [(kv.key, kv.value) for kv in items] == [("a/1", b"a/1"), ("a/2", b"a/2")]
    assert [kv.key for kv in everything] == ["a/1", "a/2", "ab", "b/1", "b/2", "bin"]
    assert everything[-1].value == b"\x00\xff\x80"
    assert revision == written.revision == await backend.revision()


async def test_range_of_an_empty_prefix_match_is_empty_with_a_revision(backend: Backend) -> None:
    await put(backend, "a")

    items, revision = await backend.range("zzz/")

    assert items == []
    assert revision == await backend.revision()


async def test_each_changing_txn_gets_one_new_revision_shared_by_its_keys(kit: StoreKit, backend: Backend) -> None:
    r1 = (await put(backend, "a", "b")).revision
    r2 = (await put(backend, "c")).revision
    r3 = (await backend.txn(puts=[Put("d", b"v")], deletes=[Delete("a")])).revision

    assert r1 < r2 < r3
    if kit.dense:
        assert (r2, r3) == (r1 + 1, r1 + 2)
    items, revision = await backend.range("")
    assert {kv.key: kv.mod_revision for kv in items} == {"b": r1, "c": r2, "d": r3}
    assert revision == r3 == await backend.revision()


async def test_a_write_moves_the_revision_by_one(kit: StoreKit, backend: Backend) -> None:
    before = await backend.revision()
    if kit.dense:  # SQLite and memory start at 0; etcd starts wherever the cluster is
        assert before == 0

    assert (await put(backend, "a")).revision == before + 1 == await backend.revision()


async def test_put_keeps_create_revision_and_moves_mod_revision(backend: Backend) -> None:
    r1 = (await put(backend, "k", value=b"1")).revision
    r2 = (await put(backend, "k", value=b"2")).revision

    [kv], _ = await backend.range("k")

    assert (kv.value, kv.create_revision, kv.mod_revision) == (b"2", r1, r2)


async def test_delete_then_put_starts_a_new_create_revision(backend: Backend) -> None:
    await put(backend, "k")
    await backend.txn(deletes=[Delete("k")])
    r3 = (await put(backend, "k")).revision

    [kv], _ = await backend.range("k")

    assert kv.create_revision == kv.mod_revision == r3


# -- compare and swap ----------------------------------------------------------------


async def test_compare_on_matching_mod_revision_succeeds(backend: Backend) -> None:
    r1 = (await put(backend, "k", value=b"1")).revision

    result = await backend.txn(compares=[Compare("k", r1)], puts=[Put("k", b"2")])

    assert result.succeeded and result.revision > r1
    [kv], _ = await backend.range("k")
    assert (kv.value, kv.mod_revision) == (b"2", result.revision)


async def test_failed_compare_changes_nothing_and_returns_current_revision(backend: Backend) -> None:
    r1 = (await put(backend, "k", value=b"1")).revision
    r2 = (await put(backend, "k", value=b"2")).revision

    result = await backend.txn(
        compares=[Compare("k", r1)],
        puts=[Put("k", b"3"), Put("other", b"x")],
        deletes=[Delete("k2")],
    )

    assert result == TxnResult(succeeded=False, revision=r2)
    items, revision = await backend.range("")
    assert [(kv.key, kv.value) for kv in items] == [("k", b"2")]
    assert revision == r2


async def test_every_compare_must_hold(backend: Backend) -> None:
    ra = (await put(backend, "a")).revision
    await put(backend, "b")

    result = await backend.txn(compares=[Compare("a", ra), Compare("b", ra)], puts=[Put("c", b"v")])

    assert not result.succeeded
    assert await keys_of(backend) == ["a", "b"]


async def test_compare_with_zero_means_the_key_is_absent(backend: Backend) -> None:
    create = {"compares": [Compare("lock", 0)], "puts": [Put("lock", b"me")]}

    first = await backend.txn(**create)
    second = await backend.txn(**create)
    await backend.txn(deletes=[Delete("lock")])
    third = await backend.txn(**create)

    assert (first.succeeded, second.succeeded, third.succeeded) == (True, False, True)
    assert second.revision == first.revision
    assert third.revision > second.revision


# -- deletes -------------------------------------------------------------------------


async def test_prefix_delete_removes_only_keys_under_the_prefix(kit: StoreKit, backend: Backend) -> None:
    before = (await put(backend, "a/1", "a/2", "a/3/x", "ab", "b/1")).revision

    result = await backend.txn(deletes=[Delete("a/", prefix=True)])

    assert result.succeeded and result.revision > before
    if kit.dense:
        assert result.revision == before + 1
    assert await keys_of(backend) == ["ab", "b/1"]


async def test_the_largest_allowed_txn_is_accepted(backend: Backend) -> None:
    value = b"x" * (MAX_TXN_BYTES // MAX_TXN_OPS - 16)

    result = await backend.txn(puts=[Put(f"k/{i:03}", value) for i in range(MAX_TXN_OPS)])

    assert result.succeeded
    assert len(await keys_of(backend, "k/")) == MAX_TXN_OPS


async def test_delete_of_an_absent_key_succeeds_without_a_new_revision(kit: StoreKit, backend: Backend) -> None:
    r1 = (await put(backend, "x")).revision

    one = await backend.txn(deletes=[Delete("missing")])
    many = await backend.txn(deletes=[Delete("nothing/", prefix=True)])
    r2 = (await put(backend, "y")).revision

    assert one == many == TxnResult(succeeded=True, revision=r1)
    assert r2 > r1
    if kit.dense:
        assert r2 == r1 + 1


@pytest.mark.parametrize(
    "puts, deletes",
    [
        ([Put("k", b"1"), Put("k", b"2")], []),
        ([Put("k", b"1")], [Delete("k")]),
        ([Put("a/k", b"1")], [Delete("a/", prefix=True)]),
        ([Put("", b"1")], []),
        ([Put("k", "text")], []),  # type: ignore[arg-type]
        ([Put(f"k/{i}", b"v") for i in range(MAX_TXN_OPS + 1)], []),
        ([Put("big", b"x" * (MAX_TXN_BYTES + 1))], []),
    ],
    ids=[
        "put-twice",
        "put-and-delete",
        "put-under-deleted-prefix",
        "empty-key",
        "value-not-bytes",
        "too-many-ops",
        "too-many-bytes",
    ],
)
async def test_malformed_txn_is_refused_and_changes_nothing(
    backend: Backend, puts: list[Put], deletes: list[Delete]
) -> None:
    revision = (await put(backend, "keep")).revision

    with pytest.raises(InvalidInput):
        await backend.txn(puts=puts, deletes=deletes)

    assert await keys_of(backend) == ["keep"]
    assert await backend.revision() == revision


# -- watch ---------------------------------------------------------------------------


async def test_watch_replays_from_a_past_revision_then_streams_live(backend: Backend) -> None:
    await put(backend, "a/1")
    await put(backend, "b/1")
    r3 = (await put(backend, "a/2", value=b"2")).revision
    r4 = (await backend.txn(puts=[Put("a/3", b"3")], deletes=[Delete("a/1")])).revision

    async with contextlib.aclosing(backend.watch("a/", r3)) as watch:
        replayed = await take(watch, 2)
        r5 = (await put(backend, "a/4", value=b"4")).revision
        await put(backend, "b/2")  # not under a/: never seen by this watcher
        r7 = (await backend.txn(deletes=[Delete("a/", prefix=True)])).revision
        live = await take(watch, 2)

    assert summary(replayed + live) == [
        (r3, [("put", "a/2", b"2")]),
        (r4, [("delete", "a/1", None), ("put", "a/3", b"3")]),
        (r5, [("put", "a/4", b"4")]),
        (r7, [("delete", "a/2", None), ("delete", "a/3", None), ("delete", "a/4", None)]),
    ]


async def test_watch_of_everything_sees_every_revision_once(backend: Backend) -> None:
    first = (await put(backend, "x/1")).revision
    await put(backend, "y/1")

    async with contextlib.aclosing(backend.watch("", first)) as watch:
        last = 0
        for i in range(5):
            last = (await put(backend, f"z/{i}", f"y/{i}")).revision
        batches = await take_until(watch, last)

    revisions = [b.revision for b in batches]
    assert_no_gaps_or_repeats(revisions)
    assert len(revisions) == 7 and revisions[0] == first and revisions[-1] == last
    assert [e.key for e in batches[-1].events] == ["z/4", "y/4"]


async def test_watch_events_carry_the_revision_of_their_batch(backend: Backend) -> None:
    start = (await put(backend, "k", "l")).revision
    await backend.txn(deletes=[Delete("k")], puts=[Put("m", b"v")])

    async with contextlib.aclosing(backend.watch("", start)) as watch:
        batches = await take(watch, 2)

    for batch in batches:
        assert all(isinstance(e, Event) and e.mod_revision == batch.revision for e in batch.events)
    assert [e.kind for e in batches[1].events] == [EventKind.DELETE, EventKind.PUT]


async def test_watch_from_a_future_revision_waits_for_it(backend: Backend) -> None:
    now = (await put(backend, "a")).revision

    async with contextlib.aclosing(backend.watch("", now + 1)) as watch:
        nxt = asyncio.ensure_future(anext(watch))
        await asyncio.sleep(0.05)
        assert not nxt.done()
        later = (await put(backend, "b")).revision
        async with asyncio.timeout(DEADLINE):
            batch = await nxt

    assert batch.revision == later


async def test_failed_and_empty_txns_produce_no_watch_batch(backend: Backend) -> None:
    start = (await put(backend, "k")).revision

    async with contextlib.aclosing(backend.watch("", start + 1)) as watch:
        await backend.txn(compares=[Compare("k", 0)], puts=[Put("k", b"lost")])
        await backend.txn(deletes=[Delete("absent")])
        marker = (await put(backend, "marker")).revision
        [batch] = await take(watch, 1)

    assert batch.revision == marker


async def test_watch_from_a_compacted_revision_raises_compacted(kit: StoreKit) -> None:
    backend = await kit.open(history=3)
    revisions = [(await put(backend, f"k/{i}")).revision for i in range(10)]
    await kit.forget_before(backend, revisions[7])

    with pytest.raises(Compacted) as caught:
        async with contextlib.aclosing(backend.watch("k/", revisions[0])) as watch:
            await take(watch, 1)
    oldest = caught.value.oldest
    async with contextlib.aclosing(backend.watch("k/", oldest)) as watch:
        replayed = await take_until(watch, revisions[-1])

    assert caught.value.requested == revisions[0]
    assert revisions[0] < oldest <= revisions[7]
    assert [b.revision for b in replayed] == [r for r in revisions if r >= oldest]


async def test_watch_started_during_concurrent_writes_misses_and_repeats_nothing(backend: Backend) -> None:
    first = (await put(backend, "w/first")).revision
    some_written = asyncio.Event()
    count = 0

    async def writer(i: int) -> list[int]:
        nonlocal count
        revisions = []
        for j in range(10):
            revisions.append((await put(backend, f"w/{i}/{j}")).revision)
            count += 1
            if count == 40:
                some_written.set()
        return revisions

    tasks = [asyncio.create_task(writer(i)) for i in range(20)]
    await some_written.wait()  # 40 writes landed before the watcher subscribes, 160 are in flight
    async with contextlib.aclosing(backend.watch("w/", first)) as watch:
        written = [r for t in tasks for r in await t]
        batches = await take_until(watch, max(written))

    revisions = [b.revision for b in batches]
    assert_no_gaps_or_repeats(revisions)
    assert revisions == sorted([first, *written])


# -- concurrency ---------------------------------------------------------------------


async def test_concurrent_txns_each_get_a_distinct_revision(kit: StoreKit, backend: Backend) -> None:
    base = await backend.revision()

    results = await asyncio.gather(*(put(backend, f"c/{i}") for i in range(100)))

    revisions = sorted(r.revision for r in results)
    assert len(set(revisions)) == 100 and revisions[0] > base
    if kit.dense:
        assert revisions == list(range(base + 1, base + 101))
    items, _ = await backend.range("c/")
    assert sorted(kv.mod_revision for kv in items) == revisions


async def test_concurrent_create_if_absent_has_exactly_one_winner(backend: Backend) -> None:
    results = await asyncio.gather(
        *(backend.txn(compares=[Compare("leader", 0)], puts=[Put("leader", str(i).encode())]) for i in range(30))
    )

    winners = [i for i, r in enumerate(results) if r.succeeded]
    assert len(winners) == 1
    [kv], _ = await backend.range("leader")
    assert kv.value == str(winners[0]).encode()


async def test_concurrent_compare_and_swap_increments_lose_nothing(backend: Backend) -> None:
    await put(backend, "counter", value=b"0")

    async def increment() -> None:
        while True:
            [kv], _ = await backend.range("counter")
            new = str(int(kv.value) + 1).encode()
            swap = await backend.txn(compares=[Compare("counter", kv.mod_revision)], puts=[Put("counter", new)])
            if swap.succeeded:
                return

    await asyncio.gather(*(increment() for _ in range(25)))

    [kv], _ = await backend.range("counter")
    assert kv.value == b"25"


# -- lifecycle -----------------------------------------------------------------------


async def test_cancelled_reads_writes_and_watches_leave_the_backend_serving(backend: Backend) -> None:
    start = (await put(backend, "k")).revision
    watch = backend.watch("", start + 1)
    waiting = asyncio.ensure_future(anext(watch))
    writing = asyncio.ensure_future(backend.txn(puts=[Put("maybe", b"v")]))
    reading = asyncio.ensure_future(backend.range(""))
    await asyncio.sleep(0.01)

    for task in (waiting, writing, reading):
        task.cancel()
    await asyncio.gather(waiting, writing, reading, return_exceptions=True)
    await watch.aclose()

    after = (await put(backend, "after")).revision
    async with contextlib.aclosing(backend.watch("after", after)) as watch:
        [batch] = await take(watch, 1)
    assert batch.revision == after
    assert "after" in await keys_of(backend)




async def test_close_ends_watchers_and_refuses_further_work(kit: StoreKit) -> None:
    backend = await kit.open()
    start = (await put(backend, "k")).revision
    watch = backend.watch("", start)
    await take(watch, 1)
    pending = asyncio.ensure_future(anext(watch))
    await asyncio.sleep(0.05)

    await backend.close()

    with pytest.raises(Unavailable):
        async with asyncio.timeout(DEADLINE):
            await pending
    with pytest.raises(Unavailable):
        await backend.txn(puts=[Put("k", b"v")])
    with pytest.raises(Unavailable):
        await backend.range("")
