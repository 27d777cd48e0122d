"""CSR back-pressure (trellis.connect.ca.limiter): a token bucket on a fake clock, and the
concurrency limit on the event loop (its one real wait is CONCURRENCY_WAIT, 0.5 s)."""

from __future__ import annotations

import asyncio

import pytest

from trellis.connect.ca import limiter
from trellis.connect.ca.errors import RateLimited
from trellis.connect.ca.limiter import CSRLimiter, TokenBucket
from trellis.errors import TooManyRequests


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- token bucket -------------------------------------------------------------------------------
# rate -> steps; a step is ("take", expected wait) or ("advance", seconds)
BUCKET_CASES = {
    "two_per_second_starts_full": (2.0, [("take", 0.0), ("take", 0.0), ("take", 0.5)]),
    "refills_at_the_rate": (2.0, [("take", 0.0), ("take", 0.0), ("advance", 0.25), ("take", 0.25),
                                  ("advance", 0.25), ("take", 0.0), ("take", 0.5)]),
    "a_refusal_takes_nothing": (2.0, [("take", 0.0), ("take", 0.0), ("take", 0.5), ("take", 0.5),
                                      ("advance", 0.5), ("take", 0.0)]),
    "capacity_caps_the_refill": (2.0, [("advance", 100.0), ("take", 0.0), ("take", 0.0), ("take", 0.5)]),
    "slow_rate_holds_one_token": (0.5, [("take", 0.0), ("take", 2.0), ("advance", 1.0), ("take", 1.0),
                                        ("advance", 1.0), ("take", 0.0)]),
    "slow_rate_never_holds_two": (0.5, [("advance", 100.0), ("take", 0.0), ("take", 2.0)]),
    "consul_default_50": (50.0, [*[("take", 0.0)] * 50, ("take", 0.02), ("advance", 0.02), ("take", 0.0)]),
}


@pytest.mark.parametrize(("rate", "steps"), list(BUCKET_CASES.values()), ids=list(BUCKET_CASES))
def test_token_bucket(rate: float, steps: list[tuple[str, float]]) -> None:
    clock = Clock()
    bucket = TokenBucket(rate, clock)
    assert bucket.capacity == max(1.0, rate)
    for i, (op, value) in enumerate(steps):
        if op == "advance":
            clock.advance(value)
        else:
            assert bucket.take() == pytest.approx(value, abs=1e-9), f"step {i}"


# --- CSRLimiter: per second -----------------------------------------------------------------------------
async def test_per_second_refuses_with_the_wait_until_a_token() -> None:
    clock = Clock()
    lim = CSRLimiter(clock)
    lim.configure(2.0, 0)
    for _ in range(2):
        async with lim.admit():
            pass
    with pytest.raises(RateLimited) as err:
        async with lim.admit():
            pytest.fail("admitted over CSRMaxPerSecond")
    assert isinstance(err.value, TooManyRequests)
    assert err.value.retry_after == pytest.approx(0.5)
    assert "CSRMaxPerSecond" in str(err.value)
    clock.advance(0.5)
    async with lim.admit():
        pass


async def test_per_second_refusal_is_immediate() -> None:
    lim = CSRLimiter(Clock())
    lim.configure(1.0, 0)
    async with lim.admit():
        pass
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(RateLimited) as err:
        async with lim.admit():
            pass
    assert loop.time() - start < 0.1
    assert err.value.retry_after > 0


async def test_configure_keeps_the_bucket_when_unchanged_and_renews_it_when_changed() -> None:
    lim = CSRLimiter(Clock())
    lim.configure(1.0, 0)
    async with lim.admit():
        pass
    lim.configure(1.0, 0)  # same settings: the spent token stays spent
    with pytest.raises(RateLimited):
        async with lim.admit():
            pass
    lim.configure(2.0, 0)  # new settings: a new, full bucket
    async with lim.admit():
        pass


@pytest.mark.parametrize(
    ("per_second", "concurrent"),
    [(0.0, 0), (1.0, 5)],
    ids=["both_zero_is_unlimited", "concurrent_ignores_per_second"],
)
async def test_no_per_second_limit(per_second: float, concurrent: int) -> None:
    lim = CSRLimiter(Clock())  # the clock never moves
    lim.configure(per_second, concurrent)
    for _ in range(200):
        async with lim.admit():
            pass


async def test_unconfigured_limiter_admits() -> None:
    lim = CSRLimiter(Clock())
    for _ in range(10):
        async with lim.admit():
            pass


# --- CSRLimiter: concurrency ---------------------------------------------------------------------------------
async def _hold(lim: CSRLimiter, entered: asyncio.Event, release: asyncio.Event) -> None:
    async with lim.admit():
        entered.set()
        await release.wait()


def test_concurrency_wait_is_consuls() -> None:
    assert limiter.CONCURRENCY_WAIT == 0.5


async def test_concurrency_limit_refuses_after_the_wait() -> None:
    lim = CSRLimiter(Clock())
    lim.configure(0.0, 2)
    release = asyncio.Event()
    holders = []
    for _ in range(2):
        entered = asyncio.Event()
        holders.append(asyncio.create_task(_hold(lim, entered, release)))
        await entered.wait()
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        with pytest.raises(RateLimited) as err:
            async with lim.admit():
                pytest.fail("admitted over CSRMaxConcurrent")
        waited = loop.time() - start
        assert limiter.CONCURRENCY_WAIT <= waited < limiter.CONCURRENCY_WAIT + 1.0
        assert err.value.retry_after > 0
        assert "2 signings already in progress (CSRMaxConcurrent)" in str(err.value)
    finally:
        release.set()
        await asyncio.gather(*holders)
    async with lim.admit():  # the slots came back
        pass


async def test_concurrency_waiter_gets_a_slot_freed_within_the_wait() -> None:
    lim = CSRLimiter(Clock())
    lim.configure(0.0, 1)
    entered, release = asyncio.Event(), asyncio.Event()
    holder = asyncio.create_task(_hold(lim, entered, release))
    await entered.wait()
    second_in = asyncio.Event()

    async def second() -> None:
        async with lim.admit():
            second_in.set()

    waiter = asyncio.create_task(second())
    await asyncio.sleep(0)
    assert not second_in.is_set()
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, waiter), 5)
    assert second_in.is_set()


async def test_concurrency_slot_is_released_when_the_body_raises() -> None:
    lim = CSRLimiter(Clock())
    lim.configure(0.0, 1)
    with pytest.raises(ValueError):
        async with lim.admit():
            raise ValueError("signing failed")
    async with lim.admit():
        pass
