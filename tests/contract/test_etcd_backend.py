"""What only the etcd backend promises: root prefixes, endpoint lists, errors when etcd goes away."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from trellis.errors import InvalidInput, Unavailable
from trellis.store.backend import Put
from trellis.store.etcd import EtcdBackend, _grpc_target
from trellis.testing.etcd import EtcdServer, free_ports

pytestmark = pytest.mark.etcd


def root() -> str:
    return f"/trellis-test/{uuid.uuid4().hex}/"


async def test_clusters_under_different_prefixes_do_not_see_each_other(etcd_server: EtcdServer) -> None:
    one = await EtcdBackend.connect([etcd_server.endpoint], prefix=root())
    two = await EtcdBackend.connect(etcd_server.client_url, prefix=root())
    try:
        written = await one.txn(puts=[Put("catalog/a", b"1")])
        async with contextlib.aclosing(two.watch("", written.revision)) as watch:
            nxt = asyncio.ensure_future(anext(watch))
            await one.txn(puts=[Put("catalog/b", b"2")])
            mine = await two.txn(puts=[Put("catalog/c", b"3")])
            async with asyncio.timeout(10):
                batch = await nxt
        items_one, _ = await one.range("")
        items_two, _ = await two.range("")
    finally:
        await one.close()
        await two.close()

    assert [kv.key for kv in items_one] == ["catalog/a", "catalog/b"]
    assert [kv.key for kv in items_two] == ["catalog/c"]
    assert batch.revision == mine.revision


async def test_an_endpoint_list_fails_over_past_a_dead_member(etcd_server: EtcdServer) -> None:
    [dead] = free_ports(1)
    backend = await EtcdBackend.connect([f"127.0.0.1:{dead}", etcd_server.endpoint], prefix=root())
    try:
        result = await backend.txn(puts=[Put("k", b"v")])
    finally:
        await backend.close()

    assert result.succeeded


async def test_connecting_to_nothing_raises_unavailable() -> None:
    [dead] = free_ports(1)

    with pytest.raises(Unavailable):
        await EtcdBackend.connect([f"127.0.0.1:{dead}"], timeout=5)


async def test_losing_etcd_ends_watches_and_fails_writes_with_unavailable() -> None:
    async with EtcdServer() as server:
        backend = await EtcdBackend.connect([server.endpoint], prefix=root(), timeout=2)
        start = (await backend.txn(puts=[Put("k", b"v")])).revision
        watch = backend.watch("", start)
        await anext(watch)
        pending = asyncio.ensure_future(anext(watch))
        await asyncio.sleep(0.05)

        await asyncio.to_thread(server.stop)

        try:
            with pytest.raises(Unavailable):
                async with asyncio.timeout(10):
                    await pending
            with pytest.raises(Unavailable):
                await backend.txn(puts=[Put("k", b"w")])
        finally:
            await watch.aclose()
            await backend.close()


@pytest.mark.parametrize(
    "endpoints, target",
    [
        (["127.0.0.1:2379"], ("127.0.0.1", 2379)),
        ("http://10.0.0.1:2379", ("10.0.0.1", 2379)),
        ("etcd://10.0.0.1:1,10.0.0.2:2,10.0.0.3:3", ("ipv4:10.0.0.1:1,10.0.0.2:2,10.0.0.3", 3)),
        (["[::1]:1", "[::1]:2"], ("ipv6:[::1]:1,[::1]", 2)),
    ],
    ids=["one", "url", "ipv4-list", "ipv6-list"],
)
async def test_endpoints_become_one_grpc_target(endpoints: list[str] | str, target: tuple[str, int]) -> None:
    assert await _grpc_target(endpoints) == target


@pytest.mark.parametrize("endpoints", [[], ["no-port"], ["host:http"]], ids=["none", "no-port", "bad-port"])
async def test_malformed_endpoints_are_refused(endpoints: list[str]) -> None:
    with pytest.raises(InvalidInput):
        await _grpc_target(endpoints)


async def test_range_pages_through_one_snapshot(etcd_server: EtcdServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("trellis.store.etcd._RANGE_PAGE", 2)
    backend = await EtcdBackend.connect([etcd_server.endpoint], prefix=root())
    try:
        written = await backend.txn(puts=[Put(f"k/{i}", b"%d" % i) for i in range(5)])
        await backend.txn(puts=[Put("other", b"v")])
        items, revision = await backend.range("k/")
    finally:
        await backend.close()

    assert [kv.key for kv in items] == [f"k/{i}" for i in range(5)]
    assert revision == written.revision + 1
