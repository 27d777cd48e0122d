"""Small builders so tests read like stories: a view fed by a memory backend."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from trellis.catalog.model import Check, CheckStatus, Node, Service
from trellis.catalog.tables import catalog_tables
from trellis.store.memory import MemoryBackend
from trellis.store.view import View
from trellis.store.writer import Writer


def make_node(name: str = "n1", address: str = "10.0.0.1", **kw: Any) -> Node:
    return Node(name=name, address=address, **kw)


def make_service(name: str = "web", node: str = "n1", **kw: Any) -> Service:
    kw.setdefault("id", name)
    return Service(node=node, name=name, **kw)


def make_check(check_id: str, node: str = "n1", status: CheckStatus = CheckStatus.PASSING, **kw: Any) -> Check:
    kw.setdefault("name", check_id)
    return Check(node=node, check_id=check_id, status=status, **kw)


@contextlib.asynccontextmanager
async def running_view() -> AsyncIterator[tuple[View, Writer, MemoryBackend]]:
    """A view (catalog and CA tables) following a memory backend, with a writer; torn down on exit."""
    from trellis.config.entry.tables import ConfigEntriesTable
    from trellis.connect.ca.tables import CATable

    backend = MemoryBackend()
    view = View([*catalog_tables(), CATable(), ConfigEntriesTable()])
    task = asyncio.create_task(view.run(backend))
    await view.ready.wait()
    try:
        yield view, Writer(backend, view), backend
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await backend.close()


async def put_catalog(writer: Writer, *items: Node | Service | Check) -> None:
    """Write nodes, services and checks in one plan (a check's status as given)."""
    from trellis.catalog import write
    from trellis.store.writer import Plan

    def plan(v: Any) -> Plan:
        p = Plan()
        for item in items:
            if isinstance(item, Node):
                write.put_node(p, v, item)
            elif isinstance(item, Service):
                write.put_service(p, v, item)
            else:
                write.put_check(p, v, item, keep_state=False)
        return p

    await writer.apply(plan)


async def put_entries(writer: Writer, *entries: dict[str, Any]) -> None:
    """Decode and write config entries (as ``PUT /v1/config`` would), one write each."""
    from trellis.config.entry import write as entry_write
    from trellis.config.entry.decode import decode_entry

    for data in entries:
        entry = decode_entry(data)
        await writer.apply(lambda v, e=entry: entry_write.plan_put(v, e))

