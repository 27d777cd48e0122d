"""View rules 3 and 5: parking on watch keys without a task (``notify``/``forget``), and
reads shared until the next change (``shared``)."""

from __future__ import annotations

import asyncio

from trellis.catalog import query, write
from trellis.catalog.model import Node, Service
from trellis.store.writer import Plan
from trellis.testing.builders import running_view


def _register(name: str, port: int = 80):
    def plan(v) -> Plan:
        p = Plan()
        write.put_node(p, v, Node(name="n1", address="10.0.0.1"))
        write.put_service(p, v, Service(node="n1", id=name, name=name, port=port))
        return p
    return plan


async def test_notify_resolves_on_a_change_of_a_key_and_forget_unregisters():
    async with running_view() as (view, writer, _):
        await writer.apply(_register("web"))
        res = query.service_instances(view, "default", "web")
        loop = asyncio.get_running_loop()
        assert view.notify(list(res.watch), res.index - 1, loop.create_future())  # already moved
        woken, forgotten = loop.create_future(), loop.create_future()
        assert not view.notify(list(res.watch), res.index, woken)
        assert not view.notify(list(res.watch), res.index, forgotten)
        view.forget(res.watch, forgotten)
        await writer.apply(_register("web", 81))
        await asyncio.wait_for(woken, 5)
        assert not forgotten.done()
        view.forget(res.watch, woken)
        assert view.waiter_count() == 0


async def test_shared_reads_are_computed_once_until_the_view_changes():
    async with running_view() as (view, writer, _):
        await writer.apply(_register("web"))
        calls = []

        def read():
            calls.append(1)
            return tuple(i.service.port for i in query.service_instances(view, "default", "web").value)

        first = view.shared(("ports", "web"), read)
        assert view.shared(("ports", "web"), read) is first and len(calls) == 1
        await writer.apply(_register("web", 81))
        assert view.shared(("ports", "web"), read) == (81,) and len(calls) == 2
