"""Blocking-query parameters (pure) and the wait helper's behaviour on the view."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trellis.api.blocking import MAX_WAIT, QueryOptions, block, parse_query_options
from trellis.catalog import query, write
from trellis.config.duration import format_duration
from trellis.errors import InvalidInput
from trellis.store.writer import Plan
from trellis.testing.builders import make_node, make_service, running_view


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, QueryOptions()),
        ({"index": "42"}, QueryOptions(index=42)),
        ({"index": "42", "wait": "10s"}, QueryOptions(index=42, wait=10.0)),
        ({"wait": "1h"}, QueryOptions(wait=MAX_WAIT)),
        ({"index": ""}, QueryOptions()),
        ({"filter": 'Service == "x"'}, QueryOptions(filter='Service == "x"')),
        ({"stale": ""}, QueryOptions(stale=True)),
    ],
    ids=["none", "index", "index+wait", "wait-capped", "empty-index", "filter", "stale"],
)
def test_parse_query_options(params, expected):
    assert parse_query_options(params) == expected


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"index": "abc"}, "Invalid index"),
        ({"index": "-1"}, "Invalid index"),
        ({"wait": "soon"}, "Invalid wait time"),
        ({"wait": "-5s"}, "Invalid wait time"),
        ({"stale": "", "consistent": ""}, "Cannot specify ?stale with ?consistent"),
    ],
    ids=["index-text", "index-negative", "wait-text", "wait-negative", "stale+consistent"],
)
def test_bad_query_options_name_the_problem(params, message):
    with pytest.raises(InvalidInput, match=message.replace("?", r"\?")):
        parse_query_options(params)


@given(index=st.integers(min_value=0, max_value=2**63), wait_ms=st.integers(min_value=0, max_value=600_000))
def test_index_and_wait_round_trip(index, wait_ms):
    opts = parse_query_options({"index": str(index), "wait": format_duration(wait_ms / 1000)})
    assert opts.index == index
    assert opts.wait == pytest.approx(wait_ms / 1000)


def _plan(view, *services):
    p = Plan()
    write.put_node(p, view, make_node())
    for s in services:
        write.put_service(p, view, s)
    return p


async def test_block_returns_at_once_without_an_index_and_on_change_with_one():
    async with running_view() as (view, writer, _):
        await writer.apply(lambda v: _plan(v, make_service("web")))
        first = await block(view, QueryOptions(), lambda: query.service_instances(view, "default", "web"))
        waiting = asyncio.create_task(block(view, QueryOptions(index=first.index, wait=30),
                                            lambda: query.service_instances(view, "default", "web")))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        await writer.apply(lambda v: _plan(v, make_service("web", tags=("v2",))))
        res = await asyncio.wait_for(waiting, 5)
        assert res.index > first.index and res.value[0].service.tags == ("v2",)


async def test_block_times_out_with_the_unchanged_answer():
    async with running_view() as (view, writer, _):
        await writer.apply(lambda v: _plan(v, make_service("web")))
        first = query.service_instances(view, "default", "web")
        res = await block(view, QueryOptions(index=first.index, wait=0.05),
                          lambda: query.service_instances(view, "default", "web"))
        assert res.index == first.index


async def test_a_cancelled_blocking_query_leaves_no_waiter_behind():
    async with running_view() as (view, writer, _):
        await writer.apply(lambda v: _plan(v, make_service("web")))
        first = query.service_instances(view, "default", "web")
        task = asyncio.create_task(block(view, QueryOptions(index=first.index, wait=30),
                                         lambda: query.service_instances(view, "default", "web")))
        await asyncio.sleep(0.01)
        assert view.waiter_count() > 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert view.waiter_count() == 0
