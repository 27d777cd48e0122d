"""Catalog queries over the view, their watch sets and indexes, and write plans."""

from __future__ import annotations

import asyncio

import pytest

from trellis.catalog import query, write
from trellis.catalog.model import CheckStatus, ServiceKind, Proxy, Connect
from trellis.errors import NotFound
from trellis.store.writer import Plan
from trellis.testing.builders import make_check, make_node, make_service, running_view


def _register(view, node, services=(), checks=()):
    p = Plan()
    write.put_node(p, view, node)
    for s in services:
        write.put_service(p, view, s)
    for c in checks:
        write.put_check(p, view, c, keep_state=False)
    return p


async def test_write_is_visible_to_the_next_read():
    async with running_view() as (view, writer, _):
        rev = await writer.apply(lambda v: _register(v, make_node(), [make_service("web", tags=("v1",))]))
        assert view.revision >= rev
        res = query.service_instances(view, "default", "web")
        assert [i.service.id for i in res.value] == ["web"]
        assert res.index == rev


async def test_lookups_are_case_insensitive():
    async with running_view() as (view, writer, _):
        await writer.apply(lambda v: _register(v, make_node("Node1"), [make_service("Web", node="Node1")]))
        assert [i.service.name for i in query.service_instances(view, "default", "web").value] == ["Web"]
        assert query.node(view, "NODE1").value is not None


@pytest.mark.parametrize(
    ("statuses", "passing", "not_critical"),
    [
        ((CheckStatus.PASSING,), 1, 1),
        ((CheckStatus.WARNING,), 0, 1),
        ((CheckStatus.CRITICAL,), 0, 0),
        ((CheckStatus.PASSING, CheckStatus.WARNING), 0, 1),
        ((), 1, 1),
    ],
    ids=["passing", "warning", "critical", "passing+warning", "no-checks"],
)
async def test_health_filters(statuses, passing, not_critical):
    async with running_view() as (view, writer, _):
        checks = [make_check(f"c{i}", status=s, service_id="web", service_name="web") for i, s in enumerate(statuses)]
        await writer.apply(lambda v: _register(v, make_node(), [make_service("web")], checks))
        found = query.service_instances(view, "default", "web").value
        assert len(query.passing_only(found)) == passing
        assert len(query.not_critical(found)) == not_critical


async def test_node_level_check_applies_to_every_instance_on_the_node():
    async with running_view() as (view, writer, _):
        await writer.apply(lambda v: _register(
            v, make_node(), [make_service("web"), make_service("api")],
            [make_check("serfHealth", status=CheckStatus.CRITICAL)],
        ))
        for name in ("web", "api"):
            (inst,) = query.service_instances(view, "default", name).value
            assert [c.check_id for c in inst.checks] == ["serfHealth"]
            assert inst.status is CheckStatus.CRITICAL


async def test_connect_query_finds_proxies_and_native_services():
    async with running_view() as (view, writer, _):
        proxy = make_service("web-sidecar-proxy", kind=ServiceKind.CONNECT_PROXY, port=21000,
                             proxy=Proxy(destination_service_name="web"))
        native = make_service("api", connect=Connect(native=True))
        await writer.apply(lambda v: _register(v, make_node(), [make_service("web"), proxy, native]))
        assert [i.service.id for i in query.service_instances(view, "default", "web", connect=True).value] == [
            "web-sidecar-proxy"
        ]
        assert [i.service.id for i in query.service_instances(view, "default", "api", connect=True).value] == ["api"]


async def test_tag_filter_requires_every_tag_case_insensitively():
    async with running_view() as (view, writer, _):
        await writer.apply(lambda v: _register(v, make_node(), [
            make_service("web", id="w1", tags=("v1", "Primary")), make_service("web", id="w2", tags=("v1",)),
        ]))
        res = query.service_instances(view, "default", "web", tags=["v1", "primary"])
        assert [i.service.id for i in res.value] == ["w1"]


async def test_write_wakes_only_watchers_of_what_it_touched():
    async with running_view() as (view, writer, _):
        await writer.apply(lambda v: _register(v, make_node(), [make_service("web"), make_service("api")]))
        web = query.service_instances(view, "default", "web")
        api = query.service_instances(view, "default", "api")
        web_wait = asyncio.create_task(view.wait_change(web.watch, web.index, 5))
        api_wait = asyncio.create_task(view.wait_change(api.watch, api.index, 0.3))
        await asyncio.sleep(0)
        await writer.apply(lambda v: _register(v, make_node(), [make_service("web", tags=("new",))]))
        assert await asyncio.wait_for(web_wait, 5) is True
        assert await api_wait is False  # timed out: api's answer cannot have changed
        assert query.service_instances(view, "default", "web").index > web.index


async def test_index_of_a_missing_service_is_the_table_index_never_zero():
    async with running_view() as (view, writer, _):
        assert query.service_instances(view, "default", "nope").index == 1
        await writer.apply(lambda v: _register(v, make_node(), [make_service("web")]))
        assert query.service_instances(view, "default", "nope").index == view.key_revision(("services",))


async def test_reregistering_a_check_keeps_its_status_and_output():
    async with running_view() as (view, writer, _):
        c = make_check("ttl", status=CheckStatus.PASSING, service_id="web", service_name="web", output="ok")
        await writer.apply(lambda v: _register(v, make_node(), [make_service("web")], [c]))
        fresh = make_check("ttl", status=CheckStatus.CRITICAL, service_id="web", service_name="web")
        await writer.apply(lambda v: write.register_service(v, make_service("web"), [fresh]))
        (inst,) = query.service_instances(view, "default", "web").value
        assert (inst.checks[0].status, inst.checks[0].output) == (CheckStatus.PASSING, "ok")


async def test_replace_existing_checks_removes_checks_not_in_the_request():
    async with running_view() as (view, writer, _):
        checks = [make_check(x, service_id="web", service_name="web") for x in ("a", "b")]
        await writer.apply(lambda v: _register(v, make_node(), [make_service("web")], checks))
        await writer.apply(lambda v: write.register_service(
            v, make_service("web"), [checks[0]], replace_existing_checks=True))
        (inst,) = query.service_instances(view, "default", "web").value
        assert [c.check_id for c in inst.checks] == ["a"]


async def test_deregister_removes_checks_and_agent_made_sidecar():
    async with running_view() as (view, writer, _):
        sidecar = make_service("web-sidecar-proxy", kind=ServiceKind.CONNECT_PROXY, agent_sidecar_of="web",
                               proxy=Proxy(destination_service_name="web"), port=21000)
        await writer.apply(lambda v: _register(v, make_node(), [make_service("web"), sidecar],
                                               [make_check("c", service_id="web", service_name="web")]))
        await writer.apply(lambda v: write.deregister_service(v, "n1", "default", "web"))
        assert query.node(view, "n1").value[1] == []
        assert query.service_checks(view, "default", "web").value == []


async def test_deregister_unknown_service_is_not_found_and_changes_nothing():
    async with running_view() as (view, writer, _):
        await writer.apply(lambda v: _register(v, make_node()))
        before = view.revision
        with pytest.raises(NotFound, match="Unknown service ID"):
            await writer.apply(lambda v: write.deregister_service(v, "n1", "default", "web"))
        assert view.revision == before


async def test_unchanged_status_writes_nothing():
    async with running_view() as (view, writer, _):
        c = make_check("c", status=CheckStatus.PASSING, output="fine")
        await writer.apply(lambda v: _register(v, make_node(), checks=[c]))
        before = view.revision
        await writer.apply(lambda v: write.set_check_status(v, "n1", "default", "c", CheckStatus.PASSING, "fine"))
        assert view.revision == before
        await writer.apply(lambda v: write.set_check_status(v, "n1", "default", "c", CheckStatus.WARNING, "meh"))
        assert view.revision == before + 1


async def test_concurrent_writers_each_get_their_own_revision():
    async with running_view() as (view, writer, _):
        await writer.apply(lambda v: _register(v, make_node()))
        revs = await asyncio.gather(*[
            writer.apply(lambda v, i=i: write.register_service(v, make_service(f"s{i}"), []))
            for i in range(50)
        ])
        assert len(set(revs)) == 50
        assert len(query.services(view, "default").value) == 50


class _CompactedOnce:
    """A memory backend whose first watch finds its revision compacted away."""

    def __init__(self, inner):
        self.inner = inner
        self.watches = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def watch(self, prefix, from_revision):
        self.watches += 1
        if self.watches == 1:
            return self._compacted(from_revision)
        return self.inner.watch(prefix, from_revision)

    async def _compacted(self, from_revision):
        from trellis.store.backend import Compacted

        raise Compacted(from_revision, from_revision + 10)
        yield  # pragma: no cover - makes this an async generator


async def test_view_reloads_when_its_watch_falls_behind_compaction():
    from trellis.catalog.tables import catalog_tables
    from trellis.store.memory import MemoryBackend
    from trellis.store.view import View
    from trellis.store.writer import Writer

    backend = _CompactedOnce(MemoryBackend())
    view = View(catalog_tables())
    task = asyncio.create_task(view.run(backend))
    try:
        await asyncio.wait_for(view.ready.wait(), 5)
        await asyncio.wait_for(Writer(backend, view).apply(
            lambda v: _register(v, make_node(), [make_service("late")])), 5)
        assert backend.watches == 2
        assert "late" in query.services(view, "default").value
    finally:
        task.cancel()


async def test_reload_wakes_every_waiter_and_moves_every_watch_key():
    async with running_view() as (view, writer, backend):
        await writer.apply(lambda v: _register(v, make_node(), [make_service("web")]))
        res = query.service_instances(view, "default", "web")
        waiter = asyncio.create_task(view.wait_change(res.watch, res.index, 30))
        await asyncio.sleep(0)
        items, rev = await backend.range("")
        view.reload(items, rev + 5)
        assert await asyncio.wait_for(waiter, 5) is True
        assert query.service_instances(view, "default", "web").index == rev + 5
