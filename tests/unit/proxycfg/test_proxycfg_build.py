"""The proxy snapshot built from the view, and the watcher that keeps it current:
what goes in, what a write changes, and how fast the watcher republishes."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import pytest

from trellis.agent.leafcert import LeafManager
from trellis.catalog.model import Check, CheckStatus, Node, Proxy, Service, ServiceKind, Upstream
from trellis.connect.ca.manager import CAManager
from trellis.proxycfg import build as builder
from trellis.proxycfg.model import DefaultDecision, usable_endpoints
from trellis.proxycfg.watcher import ProxyWatcher
from trellis.testing.builders import put_catalog, put_entries, running_view

ALLOW = DefaultDecision(True, "Default intention policy")


def sidecar(name: str, port: int, *, node: str = "n1", upstreams: tuple[Upstream, ...] = (),
            config: dict | None = None) -> Service:
    return Service(node=node, id=f"{name}-sidecar-proxy", name=f"{name}-sidecar-proxy", kind=ServiceKind.CONNECT_PROXY,
                   port=port, address="127.0.0.1",
                   proxy=Proxy(destination_service_name=name, destination_service_id=name, local_service_port=8080,
                               upstreams=upstreams, config=config or {}))


async def put(writer, view, *items) -> None:
    await put_catalog(writer, *items)


async def entry(writer, data: dict) -> None:
    await put_entries(writer, data)


@contextlib.asynccontextmanager
async def mesh():
    async with running_view() as (view, writer, _):
        ca = CAManager(view, writer, datacenter="dc1")
        await ca.initialize("consul", {"csr_max_per_second": 0})
        await put(writer, view, Node(name="n1", address="10.0.0.1"), Node(name="n2", address="10.0.0.2"))
        yield view, writer, ca


UPSTREAMS = (Upstream(destination_name="api", local_bind_port=9191),
             Upstream(destination_name="db", datacenter="dc2", local_bind_port=9192),
             Upstream(destination_name="q", destination_type="prepared_query", local_bind_port=9193))


async def test_a_snapshot_carries_identity_listeners_upstreams_and_the_intentions_that_can_decide():
    async with mesh() as (view, writer, ca):
        web = sidecar("web", 21000, upstreams=UPSTREAMS)
        api_a, api_b = sidecar("api", 21001), sidecar("api", 21002, node="n2")
        await put(writer, view, web, api_a, api_b,
                  Check(node="n2", check_id="api-down", name="api-down", service_id=api_b.id,
                        service_name=api_b.name, status=CheckStatus.CRITICAL))
        await entry(writer, {"Kind": "service-intentions", "Name": "web", "Sources": [{"Name": "ops", "Action": "deny"}]})
        await entry(writer, {"Kind": "service-intentions", "Name": "*", "Sources": [{"Name": "*", "Action": "allow"}]})
        await entry(writer, {"Kind": "service-intentions", "Name": "other", "Sources": [{"Name": "x", "Action": "deny"}]})
        snap = builder.build(view, web, datacenter="dc1", leaf=None, default=ALLOW).value
        td = ca.table.trust_domain
        assert (snap.service, snap.public.bind_port, snap.public.local_service_port) == ("web", 21000, 8080)
        assert snap.roots and snap.trust_domain == td
        assert [(i.source_name, i.destination_name) for i in snap.intentions] == [("ops", "web"), ("*", "*")]
        api, db, q = snap.upstreams
        assert api.sni == f"api.default.dc1.internal.{td}" and api.spiffe_id == f"spiffe://{td}/ns/default/dc/dc1/svc/api"
        assert sorted((e.address, e.port, e.health) for e in api.endpoints) == [
            ("127.0.0.1", 21001, "passing"), ("127.0.0.1", 21002, "critical")]
        assert [e.port for e in usable_endpoints(api.endpoints)] == [21001]
        assert "datacenter 'dc2'" in db.error and not db.endpoints
        assert "prepared-query" in q.error


@pytest.mark.parametrize(("entries", "registration", "expected"), [
    ([], {}, "tcp"),
    ([{"Kind": "proxy-defaults", "Config": {"protocol": "http"}}], {}, "http"),
    ([{"Kind": "proxy-defaults", "Config": {"protocol": "http"}}], {"protocol": "grpc"}, "grpc"),
    ([{"Kind": "service-defaults", "Name": "web", "Protocol": "http2"},
      {"Kind": "proxy-defaults", "Config": {"protocol": "http"}}], {"protocol": "grpc"}, "http2"),
], ids=["default-tcp", "proxy-defaults", "registration-over-proxy-defaults", "service-defaults-first"])
async def test_the_public_protocol_follows_designs_order(entries, registration, expected):
    async with mesh() as (view, writer, _):
        for e in entries:
            await entry(writer, e)
        web = sidecar("web", 21000, config=registration)
        await put(writer, view, web)
        assert builder.build(view, web, datacenter="dc1", leaf=None, default=ALLOW).value.public.protocol == expected


async def test_the_version_is_a_content_hash():
    async with mesh() as (view, writer, _):
        web = sidecar("web", 21000)
        await put(writer, view, web)
        one = builder.build(view, web, datacenter="dc1", leaf=None, default=ALLOW).value
        again = builder.build(view, web, datacenter="dc1", leaf=None, default=ALLOW).value
        other = builder.build(view, web, datacenter="dc1", leaf=None, default=DefaultDecision(False, "x")).value
        assert one.version == again.version != other.version
        assert builder.from_json(builder.to_json(one)) == one


async def test_the_watcher_republishes_on_a_relevant_write_and_not_on_an_unrelated_one():
    async with mesh() as (view, writer, ca):
        leaves = LeafManager(view, ca, datacenter="dc1")
        watcher = ProxyWatcher(view, leaves, node="n1", datacenter="dc1", default=lambda: ALLOW, debounce=0.005)
        tasks = [asyncio.create_task(leaves.run()), asyncio.create_task(watcher.run())]
        try:
            await put(writer, view, sidecar("web", 21000, upstreams=UPSTREAMS[:1]))
            first = await watcher.get("web-sidecar-proxy", wait=5)
            assert first.leaf is not None and first.leaf.service_uri.endswith("/svc/web")
            await put(writer, view, sidecar("unrelated", 21005, node="n2"))
            same = await watcher.get("web-sidecar-proxy", index=first.index, wait=0.2)
            assert same.index == first.index
            await put(writer, view, sidecar("api", 21001, node="n2"))  # an upstream endpoint appears
            second = await asyncio.wait_for(watcher.get("web-sidecar-proxy", index=first.index, wait=5), 5)
            assert [e.port for e in second.upstreams[0].endpoints] == [21001]
            await ca.rotate()  # new roots and, after the jitter, a new leaf
            third = await asyncio.wait_for(watcher.get("web-sidecar-proxy", index=second.index, wait=5), 5)
            assert len(third.roots) == 2
            watcher.request_stop("web-sidecar-proxy")
            stopping = await asyncio.wait_for(watcher.get("web-sidecar-proxy", index=third.index, wait=5), 5)
            assert stopping.stop
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def test_an_unknown_proxy_is_not_found():
    from trellis.errors import NotFound

    async with mesh() as (view, _, ca):
        watcher = ProxyWatcher(view, LeafManager(view, ca, datacenter="dc1"), node="n1", datacenter="dc1",
                               default=lambda: ALLOW)
        with pytest.raises(NotFound, match="unknown proxy ID: nope"):
            await watcher.get("nope")


def test_usable_endpoints_keep_warning_and_drop_critical():
    from trellis.proxycfg.model import Endpoint

    eps = tuple(Endpoint("a", p, "n", f"s{p}", h) for p, h in ((1, "passing"), (2, "warning"), (3, "critical")))
    assert [e.port for e in usable_endpoints(eps)] == [1, 2]
    assert dataclasses.replace(eps[0], health="critical") not in usable_endpoints(eps)


async def test_upstream_settings_come_from_service_defaults_and_the_registration_wins():
    async with mesh() as (view, writer, _):
        await entry(writer, {"Kind": "service-defaults", "Name": "web", "UpstreamConfig": {
            "Defaults": {"ConnectTimeoutMs": 2000, "Limits": {"MaxConnections": 10},
                         "PassiveHealthCheck": {"Interval": "10s", "MaxFailures": 3}},
            "Overrides": [{"Name": "api", "ConnectTimeoutMs": 3000, "Limits": {"MaxPendingRequests": 5}}]}})
        ups = (Upstream(destination_name="api", local_bind_port=9191, config={"connect_timeout_ms": 4000}),
               Upstream(destination_name="db", local_bind_port=9192))
        web = sidecar("web", 21000, upstreams=ups)
        await put(writer, view, web)
        api, db = builder.build(view, web, datacenter="dc1", leaf=None, default=ALLOW).value.upstreams
        assert api.connect_timeout_ms == 4000  # the registration wins
        assert api.config["limits"] == {"max_pending_requests": 5}  # the override replaces the block
        assert api.config["passive_health_check"] == {"interval": "10s", "max_failures": 3}
        assert (db.connect_timeout_ms, db.config["limits"]) == (2000, {"max_connections": 10})


async def test_a_snapshot_watches_only_the_intention_entries_that_can_decide_for_it():
    async with mesh() as (view, writer, _):
        web = sidecar("web", 21000)
        await put(writer, view, web)
        watch = builder.build(view, web, datacenter="dc1", leaf=None, default=ALLOW).watch
        assert {k for k in watch if k[0].startswith("intentions")} == {
            ("intentions-for", "default", "web"), ("intentions-for", "default", "*"), ("intentions-for", "*", "*")}
        assert ("node-services", "n1") not in watch and ("service", "default", "web-sidecar-proxy") in watch
        before = view.index_of(watch)
        await entry(writer, {"Kind": "service-intentions", "Name": "other", "Sources": [{"Name": "x", "Action": "deny"}]})
        assert view.index_of(watch) == before  # an unrelated destination wakes nothing
        await entry(writer, {"Kind": "service-intentions", "Name": "*", "Sources": [{"Name": "x", "Action": "deny"}]})
        assert view.index_of(watch) > before


# -- discovery chains (build.py rule 7) ------------------------------------------------------
def versioned(name: str, port: int, version: str, *, node: str = "n1") -> Service:
    return dataclasses.replace(sidecar(name, port, node=node), id=f"{name}-{version}-sidecar-proxy",
                               meta={"version": version})


async def test_a_default_chain_leaves_the_upstream_as_it_was_and_a_resolver_written_later_rebuilds_it():
    async with mesh() as (view, writer, _):
        web = sidecar("web", 21000, upstreams=(Upstream(destination_name="api", local_bind_port=9191),))
        await put(writer, view, web, versioned("api", 21001, "v1"), versioned("api", 21002, "v2", node="n2"))
        first = builder.build(view, web, datacenter="dc1", leaf=None, default=ALLOW)
        (up,) = first.value.upstreams
        assert up.chain is None and up.targets == () and len(up.endpoints) == 2
        await entry(writer, {"Kind": "service-resolver", "Name": "api", "DefaultSubset": "v2", "Subsets": {
            "v1": {"Filter": "Service.Meta.version == v1"}, "v2": {"Filter": "Service.Meta.version == v2"}}})
        assert view.index_of(first.watch) > first.index  # the resolver is in the watch set
        (up,) = builder.build(view, web, datacenter="dc1", leaf=None, default=ALLOW).value.upstreams
        assert up.chain is not None and up.chain.start == "resolver:v2.api.default.default.dc1"
        assert {t.id: [e.service_id for e in t.endpoints] for t in up.targets} == {
            "v2.api.default.default.dc1": ["api-v2-sidecar-proxy"]}
        assert up.targets[0].sni == f"v2.{up.sni}" and up.targets[0].spiffe_id == up.spiffe_id
        assert [e.service_id for e in up.endpoints] == ["api-v2-sidecar-proxy"]  # the L4 default path


async def test_a_chain_target_with_only_passing_drops_warning_instances_and_a_redirect_moves_the_identity():
    async with mesh() as (view, writer, ca):
        web = sidecar("web", 21000, upstreams=(Upstream(destination_name="api", local_bind_port=9191),))
        ok_, warn = versioned("new-api", 21001, "v1"), versioned("new-api", 21002, "v1", node="n2")
        await put(writer, view, web, ok_, dataclasses.replace(warn, id="new-api-w-sidecar-proxy"),
                  Check(node="n2", check_id="slow", name="slow", service_id="new-api-w-sidecar-proxy",
                        service_name=warn.name, status=CheckStatus.WARNING))
        await entry(writer, {"Kind": "service-resolver", "Name": "api", "Redirect": {"Service": "new-api"}})
        await entry(writer, {"Kind": "service-resolver", "Name": "new-api", "DefaultSubset": "good",
                             "Subsets": {"good": {"Filter": "Service.Meta.version == v1", "OnlyPassing": True}}})
        (up,) = builder.build(view, web, datacenter="dc1", leaf=None, default=ALLOW).value.upstreams
        (target,) = up.targets
        assert target.id == "good.new-api.default.default.dc1"
        assert [e.service_id for e in target.endpoints] == ["new-api-v1-sidecar-proxy"]
        assert target.spiffe_id.endswith("/ns/default/dc/dc1/svc/new-api")


# -- ingress gateways (build.py rule 8) ------------------------------------------------------
async def test_an_ingress_snapshot_has_the_entrys_listeners_with_wildcards_hosts_and_limits():
    async with mesh() as (view, writer, _):
        gateway = Service(node="n1", id="ig-1", name="ig", kind=ServiceKind.INGRESS_GATEWAY, port=8443,
                          address="127.0.0.1")
        await put(writer, view, gateway, sidecar("web", 21001), sidecar("api", 21002), sidecar("db", 21003))
        for name in ("web", "api"):
            await entry(writer, {"Kind": "service-defaults", "Name": name, "Protocol": "http"})
        await entry(writer, {"Kind": "ingress-gateway", "Name": "ig", "Defaults": {"MaxConnections": 50},
                             "Listeners": [
                                 {"Port": 8080, "Protocol": "http", "Services": [
                                     {"Name": "web", "Hosts": ["web.example.com"], "MaxConnections": 7}, {"Name": "*"}]},
                                 {"Port": 9090, "Protocol": "tcp", "Services": [{"Name": "db"}]}]})
        result = builder.build_ingress(view, gateway, datacenter="dc1", leaf=None, default=ALLOW)
        snap = result.value
        assert snap.kind == "ingress-gateway" and snap.service == "ig" and snap.intentions == ()
        http, tcp = snap.ingress
        assert (http.address, http.port, http.protocol, tcp.port, tcp.protocol) == ("127.0.0.1", 8080, "http", 9090,
                                                                                     "tcp")
        by_name = {s.upstream.destination_name: s for s in http.services}
        assert set(by_name) == {"web", "api"}  # "*": the http mesh services, web listed by name once
        assert by_name["web"].hosts == ("web.example.com",)
        assert by_name["api"].hosts == ("api.ingress.*", "api.ingress.*:8080")
        assert by_name["web"].upstream.config["limits"] == {"max_connections": 7}
        assert by_name["api"].upstream.config["limits"] == {"max_connections": 50}  # the entry's Defaults
        assert [s.upstream.destination_name for s in tcp.services] == ["db"] and tcp.services[0].hosts == ()
        assert len(snap.upstreams) == 3 and all(len(u.endpoints) == 1 for u in snap.upstreams)
        await entry(writer, {"Kind": "ingress-gateway", "Name": "ig", "Listeners": [
            {"Port": 8080, "Protocol": "http", "Services": [{"Name": "web"}]}]})
        assert view.index_of(result.watch) > result.index  # the entry is watched


# -- terminating gateways (build.py rule 9, watcher.py rule 6) ---------------------------------
EGRESS = Service(node="n1", id="egress-gateway", name="egress-gateway", kind=ServiceKind.TERMINATING_GATEWAY,
                 port=8443, address="127.0.0.1",
                 proxy=Proxy(config={"envoy_gateway_bind_addresses": {"lan": {"address": "10.0.0.1", "port": 9443}}}))
EXTERNAL_NODE = Node(name="external", address="203.0.113.7")
EXTERNAL = Service(node="external", id="external-api", name="external-api", port=443, address="api.external.com")
LINKED = {"Kind": "terminating-gateway", "Name": "egress-gateway",
          "Services": [{"Name": "external-api", "SNI": "api.external.com", "CAFile": "/etc/ca.pem"}]}


async def test_a_terminating_snapshot_has_per_linked_service_leaf_intentions_instances_and_tls():
    async with mesh() as (view, writer, _):
        await put(writer, view, EXTERNAL_NODE, EGRESS, EXTERNAL, sidecar("external-api", 21009, node="n2"))
        empty = builder.build_terminating(view, EGRESS, datacenter="dc1", leaf=None, default=ALLOW)
        assert empty.value.kind == "terminating-gateway" and empty.value.terminating.services == ()
        await entry(writer, LINKED)
        assert view.index_of(empty.watch) > empty.index  # the entry is watched
        await entry(writer, {"Kind": "service-intentions", "Name": "external-api",
                             "Sources": [{"Name": "web", "Action": "deny"}]})
        result = builder.build_terminating(view, EGRESS, datacenter="dc1", leaf=None, default=ALLOW)
        t = result.value.terminating
        assert [(b.name, b.address, b.port) for b in t.binds] == [("default", "127.0.0.1", 8443),
                                                                  ("lan", "10.0.0.1", 9443)]
        (ls,) = t.services
        assert (ls.name, ls.sni, ls.ca_file, ls.tls_sni, ls.leaf) == (
            "external-api", f"external-api.default.dc1.internal.{view['ca'].trust_domain}", "/etc/ca.pem",
            "api.external.com", None)
        assert ls.spiffe_id.endswith("/ns/default/dc/dc1/svc/external-api")
        assert [(e.address, e.port) for e in ls.endpoints] == [("api.external.com", 443)]  # the plain one only
        assert [i.source_name for i in ls.intentions] == ["web"]
        await entry(writer, {"Kind": "service-intentions", "Name": "external-api",
                             "Sources": [{"Name": "web", "Action": "allow"}]})
        assert view.index_of(result.watch) > result.index  # its intentions are watched
        again = builder.from_json(builder.to_json(result.value))  # JSON keeps an intention's content, not its indexes
        assert again.terminating.binds == t.binds and again.terminating.services[0].endpoints == ls.endpoints


RESOLVER = {"Kind": "service-resolver", "Name": "external-api", "ConnectTimeout": "2s", "RequestTimeout": "7s",
            "DefaultSubset": "v1", "LoadBalancer": {"Policy": "least_request", "LeastRequestConfig": {"ChoiceCount": 3}},
            "Subsets": {"v1": {"Filter": "Service.Meta.version == v1"},
                        "v2": {"Filter": "Service.Meta.version == v2", "OnlyPassing": True}}}


async def test_a_linked_service_takes_its_resolver_written_later_with_subsets_of_its_external_instances():
    async with mesh() as (view, writer, _):
        v1 = dataclasses.replace(EXTERNAL, id="api-v1", address="10.0.5.1", meta={"version": "v1"})
        v2 = dataclasses.replace(EXTERNAL, id="api-v2", address="10.0.5.2", meta={"version": "v2"})
        await put(writer, view, EXTERNAL_NODE, EGRESS, v1, v2)
        await entry(writer, {**LINKED, "Services": [{"Name": "external-api"}]})
        egress = dataclasses.replace(EGRESS, proxy=Proxy(config={"connect_timeout_ms": 1500}))
        before = builder.build_terminating(view, egress, datacenter="dc1", leaf=None, default=ALLOW)
        (ls,) = before.value.terminating.services
        assert (ls.connect_timeout_ms, ls.subsets, ls.cluster, ls.load_balancer) == (1500, (), ls.sni, None)
        await entry(writer, RESOLVER)
        assert view.index_of(before.watch) > before.index  # the resolver is watched
        after = builder.build_terminating(view, egress, datacenter="dc1", leaf=None, default=ALLOW)
        (ls,) = after.value.terminating.services
        assert (ls.connect_timeout_ms, ls.request_timeout, ls.default_subset, ls.cluster) == (
            2000, 7.0, "v1", f"v1.{ls.sni}")
        assert ls.load_balancer.policy == "least_request"
        assert [(s.name, s.sni, [e.service_id for e in s.endpoints]) for s in ls.subsets] == [
            ("v1", f"v1.{ls.sni}", ["api-v1"]), ("v2", f"v2.{ls.sni}", ["api-v2"])]
        assert [e.service_id for e in ls.endpoints] == ["api-v1", "api-v2"]  # the plain cluster keeps them all
        await put(writer, view, Check(node="external", check_id="v2-up", name="v2", status=CheckStatus.WARNING,
                                      service_id="api-v2"))
        (ls,) = builder.build_terminating(view, egress, datacenter="dc1", leaf=None, default=ALLOW).value.terminating.services
        assert [s.endpoints for s in ls.subsets if s.name == "v2"] == [()]  # OnlyPassing
        again = builder.from_json(builder.to_json(
            builder.build_terminating(view, egress, datacenter="dc1", leaf=None, default=ALLOW).value))
        assert again.terminating.services[0] == ls


async def test_a_mesh_client_whose_chain_lands_on_a_linked_subset_is_sent_to_the_gateway():
    async with mesh() as (view, writer, _):
        v1 = dataclasses.replace(EXTERNAL, id="api-v1", address="10.0.5.1", meta={"version": "v1"})
        await put(writer, view, EXTERNAL_NODE, EGRESS, v1)
        await entry(writer, LINKED)
        await entry(writer, RESOLVER)
        web = sidecar("web", 21000, upstreams=(Upstream(destination_name="external-api", local_bind_port=9191),))
        (up,) = builder.build(view, web, datacenter="dc1", leaf=None, default=ALLOW).value.upstreams
        (target,) = up.targets
        assert target.sni.startswith("v1.external-api.default.dc1.internal.")
        assert [(e.address, e.port) for e in target.endpoints] == [("127.0.0.1", 8443)]  # the subset's filter is the gateway's


async def test_a_connect_query_for_a_linked_service_returns_the_terminating_gateway():
    from trellis.catalog import query

    async with mesh() as (view, writer, _):
        await put(writer, view, EXTERNAL_NODE, EGRESS, EXTERNAL)
        assert query.service_instances(view, "default", "external-api", connect=True).value == []
        await entry(writer, LINKED)
        found = query.service_instances(view, "default", "external-api", connect=True)
        assert [(i.service.id, i.service.port) for i in found.value] == [("egress-gateway", 8443)]
        web = sidecar("web", 21000, upstreams=(Upstream(destination_name="external-api", local_bind_port=9191),))
        (up,) = builder.build(view, web, datacenter="dc1", leaf=None, default=ALLOW).value.upstreams
        assert [(e.address, e.port) for e in up.endpoints] == [("127.0.0.1", 8443)]
        assert up.spiffe_id.endswith("/svc/external-api") and up.sni.startswith("external-api.default.dc1.")
        await entry(writer, {**LINKED, "Services": [{"Name": "*"}]})  # * links a service with a plain instance
        assert len(query.service_instances(view, "default", "external-api", connect=True).value) == 1
        await entry(writer, {**LINKED, "Services": [{"Name": "other"}]})
        assert query.service_instances(view, "default", "external-api", connect=True).value == []


async def test_the_watcher_serves_a_terminating_gateway_a_leaf_per_linked_service():
    async with mesh() as (view, writer, ca):
        leaves = LeafManager(view, ca, datacenter="dc1")
        watcher = ProxyWatcher(view, leaves, node="n1", datacenter="dc1", default=lambda: ALLOW, debounce=0.005)
        tasks = [asyncio.create_task(leaves.run()), asyncio.create_task(watcher.run())]
        try:
            await put(writer, view, EXTERNAL_NODE, EGRESS, EXTERNAL)
            first = await asyncio.wait_for(watcher.get("egress-gateway", wait=5), 5)
            assert first.kind == "terminating-gateway" and first.terminating.services == ()
            await entry(writer, LINKED)
            second = await asyncio.wait_for(watcher.get("egress-gateway", index=first.index, wait=5), 5)
            (ls,) = second.terminating.services
            assert ls.leaf is not None and ls.leaf.service_uri.endswith("/svc/external-api")
            await ca.rotate()  # the linked service's leaf is renewed: the gateway follows it
            while True:
                third = await asyncio.wait_for(watcher.get("egress-gateway", index=second.index, wait=5), 5)
                if third.terminating.services[0].leaf.serial != ls.leaf.serial:
                    break
                second = third
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_linked_service_carries_its_protocol_and_the_entrys_host_rewrite_setting():
    async with mesh() as (view, writer, _):
        await put(writer, view, EXTERNAL_NODE, EGRESS, EXTERNAL)
        await entry(writer, LINKED)
        first = builder.build_terminating(view, EGRESS, datacenter="dc1", leaf=None, default=ALLOW)
        (ls,) = first.value.terminating.services
        assert (ls.protocol, ls.auto_host_rewrite) == ("tcp", True)
        await entry(writer, {"Kind": "service-defaults", "Name": "external-api", "Protocol": "http"})
        assert view.index_of(first.watch) > first.index  # its service-defaults are watched
        await entry(writer, {**LINKED, "Services": [{**LINKED["Services"][0], "DisableAutoHostRewrite": True}]})
        (ls,) = builder.build_terminating(view, EGRESS, datacenter="dc1", leaf=None,
                                          default=ALLOW).value.terminating.services
        assert (ls.protocol, ls.auto_host_rewrite) == ("http", False)


async def test_proxy_defaults_and_service_defaults_reach_the_snapshot_config_under_the_registration():
    """Rule 12: as Consul's agent merges central config into the proxy it serves."""
    async with mesh() as (view, writer, _):
        web = sidecar("web", 21000, config={"local_request_timeout_ms": 7000})
        await put(writer, view, web)
        await entry(writer, {"Kind": "proxy-defaults", "Name": "global", "Config": {
            "local_request_timeout_ms": 1000, "local_connect_timeout_ms": 2000, "envoy_dns_discovery_type": "LOGICAL_DNS"}})
        await entry(writer, {"Kind": "service-defaults", "Name": "web", "Protocol": "http",
                             "LocalConnectTimeoutMs": 3000})
        built = builder.build(view, web, datacenter="dc1", leaf=None, default=ALLOW)
        snap = built.value
        assert snap.config == {"local_request_timeout_ms": 7000,  # the registration's own value wins
                               "local_connect_timeout_ms": 3000,  # service-defaults over proxy-defaults
                               "envoy_dns_discovery_type": "LOGICAL_DNS", "protocol": "http"}
        assert (snap.public.local_connect_timeout_ms, snap.public.protocol) == (3000, "http")
        await entry(writer, {"Kind": "proxy-defaults", "Name": "global", "Config": {"local_connect_timeout_ms": 9}})
        assert view.index_of(built.watch) > built.index  # proxy-defaults is watched
