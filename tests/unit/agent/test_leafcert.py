"""The agent's leaf manager over a real CA manager and a memory store, with a clock
the tests move: sharing, re-validation, renewal, root changes, back-off."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from trellis.agent.leafcert import LeafManager
from trellis.connect.ca.errors import RateLimited
from trellis.connect.ca.manager import CAManager
from trellis.connect.ca.renewal import RenewalPolicy
from trellis.testing.builders import running_view

T0 = 1_900_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class CountingSigner:
    """The real CA behind a counter, optionally refusing the next N signings."""

    def __init__(self, ca: CAManager) -> None:
        self.ca = ca
        self.calls = 0
        self.refuse = 0

    async def sign_csr(self, csr_der: bytes):
        self.calls += 1
        if self.refuse:
            self.refuse -= 1
            raise RateLimited(2.0, "test")
        await asyncio.sleep(0)  # let concurrent callers pile up
        return await self.ca.sign_csr(csr_der)


@contextlib.asynccontextmanager
async def mesh(ttl: str = "100s", jitter: float = 0.0):
    clock = Clock()
    async with running_view() as (view, writer, _):
        ca = CAManager(view, writer, datacenter="dc1", clock=clock)
        await ca.initialize("consul", {"leaf_cert_ttl": ttl, "skip_validate": True, "csr_max_per_second": 0})
        signer = CountingSigner(ca)
        leaves = LeafManager(view, signer, datacenter="dc1", clock=clock, rng=random.Random(7),
                             policy=RenewalPolicy(0.6, 0.9, jitter))
        task = asyncio.create_task(leaves.run())
        try:
            yield clock, ca, signer, leaves
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def until(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_concurrent_readers_share_one_signing():
    async with mesh() as (_, _, signer, leaves):
        certs = await asyncio.gather(*(leaves.get("default", "web") for _ in range(20)))
        assert signer.calls == 1
        assert len({c.signed.serial for c in certs}) == 1


async def test_a_cached_leaf_is_reused_until_the_root_changes():
    async with mesh() as (_, ca, signer, leaves):
        first = await leaves.get("default", "web")
        assert (await leaves.get("default", "web")) is first
        await ca.rotate()
        again = await leaves.get("default", "web")  # non-blocking reads re-validate
        assert again.signed.root_id != first.signed.root_id and again.index > first.index
        assert len(again.chain) == 1  # the cross-signed root travels with the leaf
        assert signer.calls == 2


async def test_a_blocking_reader_gets_the_renewed_leaf_inside_the_window():
    async with mesh(ttl="100s") as (clock, _, _, leaves):
        first = await leaves.get("default", "web")
        waiter = asyncio.create_task(leaves.get("default", "web", index=first.index, wait=30))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        clock.now = T0 + 59  # before 60% of the lifetime: nothing yet
        leaves._wake.set()
        await asyncio.sleep(0.02)
        assert not waiter.done()
        clock.now = T0 + 91  # past 90%: renewed by now
        leaves._wake.set()
        renewed = await asyncio.wait_for(waiter, 5)
        assert renewed.index > first.index and renewed.signed.serial != first.signed.serial


async def test_a_blocking_reader_times_out_with_the_same_leaf():
    async with mesh() as (_, _, _, leaves):
        first = await leaves.get("default", "web")
        same = await leaves.get("default", "web", index=first.index, wait=0.05)
        assert same is first


async def test_a_rotation_reissues_every_leaf_within_the_jitter():
    async with mesh(jitter=10.0) as (clock, ca, signer, leaves):
        for name in ("a", "b", "c"):
            await leaves.get("default", name)
        await ca.rotate()
        await until(lambda: all(e.due <= T0 + 10 for e in leaves._entries.values()))
        clock.now = T0 + 10.5
        leaves._wake.set()
        active = ca.table.active_root().signing_key_id
        await until(lambda: all(e.cert.signed.signing_key_id == active for e in leaves._entries.values()))
        assert signer.calls == 6


async def test_a_rate_limited_renewal_backs_off_and_keeps_the_old_leaf():
    async with mesh(ttl="100s") as (clock, _, signer, leaves):
        first = await leaves.get("default", "web")
        signer.refuse = 1
        clock.now = T0 + 95
        leaves._wake.set()
        await until(lambda: signer.calls == 2)
        entry = leaves._entries[("default", "web")]
        assert entry.cert is first and entry.failures == 1
        assert T0 + 95 + 2 <= entry.due <= T0 + 95 + 4  # Retry-After, plus up to as much again
        clock.now = entry.due + 0.1
        leaves._wake.set()
        await until(lambda: entry.cert is not first)


async def test_a_refused_first_signing_is_the_callers_error():
    async with mesh() as (_, _, signer, leaves):
        signer.refuse = 1
        with pytest.raises(RateLimited):
            await leaves.get("default", "web")
        assert (await leaves.get("default", "web")).signed.service == "web"


async def test_a_cancelled_blocking_reader_leaves_others_waiting():
    async with mesh(ttl="100s") as (clock, _, _, leaves):
        first = await leaves.get("default", "web")
        a = asyncio.create_task(leaves.get("default", "web", index=first.index, wait=30))
        b = asyncio.create_task(leaves.get("default", "web", index=first.index, wait=30))
        await asyncio.sleep(0.01)
        a.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await a
        clock.now = T0 + 91
        leaves._wake.set()
        assert (await asyncio.wait_for(b, 5)).index > first.index


async def test_notify_resolves_a_future_on_the_next_leaf_and_forget_drops_it():
    async with mesh() as (_, ca, _, leaves):
        loop = asyncio.get_running_loop()
        assert leaves.notify("default", "web", 0, loop.create_future())  # no leaf yet: nothing to wait on
        first = await leaves.get("default", "web")
        assert leaves.notify("default", "web", first.index - 1, loop.create_future())  # already past
        kept, dropped = loop.create_future(), loop.create_future()
        assert not leaves.notify("default", "web", first.index, kept)
        assert not leaves.notify("default", "web", first.index, dropped)
        leaves.forget("default", "web", dropped)
        await ca.rotate()  # re-times the leaf: a new one is issued
        await asyncio.wait_for(kept, 5)
        assert (await leaves.get("default", "web")).index > first.index
        assert not dropped.done()
