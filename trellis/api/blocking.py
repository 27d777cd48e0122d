"""Blocking queries: parse ``index``/``wait`` and park on a query's watch set.

``parse_query_options`` is pure; ``block`` re-runs a view query until its index
passes the client's or the wait (jittered by up to wait/16, capped) ends.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from trellis.config.duration import parse_duration
from trellis.errors import InvalidInput
from trellis.store.view import Result, View

DEFAULT_WAIT = 300.0
MAX_WAIT = 600.0


@dataclass(frozen=True, slots=True)
class QueryOptions:
    index: int = 0
    wait: float = DEFAULT_WAIT
    filter: str = ""
    stale: bool = False
    consistent: bool = False


def parse_query_options(query: Mapping[str, str]) -> QueryOptions:
    """Pure. Raises InvalidInput with Consul's texts (`Invalid index`, `Invalid wait time`)."""
    index = 0
    if query.get("index"):
        try:
            index = int(query["index"])
        except ValueError:
            raise InvalidInput("index", query["index"], message="Invalid index") from None
        if not 0 <= index < 2**64:  # a uint64, as Consul parses it
            raise InvalidInput("index", query["index"], message="Invalid index")
    wait = DEFAULT_WAIT
    if query.get("wait"):
        try:
            wait = parse_duration(query["wait"])
        except (InvalidInput, ValueError):
            raise InvalidInput("wait", query["wait"], message="Invalid wait time") from None
        if wait < 0:
            raise InvalidInput("wait", query["wait"], message="Invalid wait time")
    stale = "stale" in query
    consistent = "consistent" in query
    if stale and consistent:
        raise InvalidInput(
            "stale", "", message="Cannot specify ?stale with ?consistent, conflicting semantics."
        )
    return QueryOptions(index, min(wait, MAX_WAIT), query.get("filter", ""), stale, consistent)


async def block(view: View, opts: QueryOptions, run: Callable[[], Result[Any]]) -> Result[Any]:
    """Answer now when ``opts.index`` is 0, else when the result index passes it."""
    res = run()
    if opts.index == 0 or res.index > opts.index:
        return res
    loop = asyncio.get_running_loop()
    wait = opts.wait + random.uniform(0, opts.wait / 16)
    deadline = loop.time() + wait
    while res.index <= opts.index:
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        await view.wait_change(res.watch, opts.index, remaining)
        res = run()
    return res
