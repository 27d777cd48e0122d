"""Cross-entry rules of config-entry writes (graph.py, chain.py), through the real
write plans over a view: each case writes some entries, then one more write (or a
delete) that must be accepted, or refused naming the problem with nothing written."""

from __future__ import annotations

from typing import Any

import pytest

from trellis.config.entry.decode import decode_entry
from trellis.config.entry.keys import EntryRef
from trellis.config.entry.write import plan_delete, plan_put
from trellis.errors import InvalidInput
from trellis.testing.builders import running_view


def sd(name: str, protocol: str, **kw: Any) -> dict:
    return {"Kind": "service-defaults", "Name": name, "Protocol": protocol, **kw}


def router(name: str, *routes: dict) -> dict:
    return {"Kind": "service-router", "Name": name, "Routes": list(routes)}


def splitter(name: str, *splits: dict) -> dict:
    return {"Kind": "service-splitter", "Name": name, "Splits": list(splits)}


def resolver(name: str, **kw: Any) -> dict:
    return {"Kind": "service-resolver", "Name": name, **kw}


def ingress(name: str, *listeners: dict) -> dict:
    return {"Kind": "ingress-gateway", "Name": name, "Listeners": list(listeners)}


def listener(port: int, protocol: str, *services: str) -> dict:
    return {"Port": port, "Protocol": protocol, "Services": [{"Name": s} for s in services]}


PROXY_HTTP = {"Kind": "proxy-defaults", "Name": "global", "Config": {"protocol": "http"}}
TO_ADMIN = {"Match": {"HTTP": {"PathPrefix": "/admin"}}, "Destination": {"Service": "admin"}}
SUBSETS = {"v1": {"Filter": "Service.Meta.version == v1"}, "v2": {"Filter": "Service.Meta.version == v2"}}
DELETE = "delete"

# name -> (entries written first, the write under test, None or a piece of the refusal)
CASES: dict[str, tuple[list[dict], Any, str | None]] = {
    # routers and splitters need an HTTP-like protocol on their service
    "router_on_tcp_service": ([], router("web", TO_ADMIN),
                              'discovery chain "web" uses a protocol "tcp" that does not permit advanced routing'),
    "splitter_on_tcp_service": ([], splitter("web", {"Weight": 100}), 'uses a protocol "tcp"'),
    "router_on_http_service": ([sd("web", "http"), sd("admin", "http")], router("web", TO_ADMIN), None),
    "router_with_http_from_proxy_defaults": ([PROXY_HTTP], router("web", TO_ADMIN), None),
    "grpc_is_http_like": ([sd("web", "grpc")], splitter("web", {"Weight": 100}), None),
    "protocol_to_tcp_under_a_router": ([sd("web", "http"), router("web", {"Match": {"HTTP": {"PathPrefix": "/a"}}})],
                                       sd("web", "tcp"), 'discovery chain "web" uses a protocol "tcp"'),
    "protocol_to_tcp_under_a_router_to_others": ([sd("web", "http"), sd("admin", "http"), router("web", TO_ADMIN)],
                                                 sd("web", "tcp"), 'discovery chain "web" uses inconsistent protocols; '
                                                                   'service "admin" has "http" which is not "tcp"'),
    "service_defaults_deleted_under_a_splitter": ([sd("web", "http"), splitter("web", {"Weight": 100})],
                                                  (DELETE, "service-defaults", "web"), 'uses a protocol "tcp"'),
    "proxy_defaults_deleted_under_a_router": ([PROXY_HTTP, router("web", TO_ADMIN)],
                                              (DELETE, "proxy-defaults", "global"), 'uses a protocol "tcp"'),
    "router_deleted_then_tcp_is_fine": ([sd("web", "http"), router("web"), (DELETE, "service-router", "web")],
                                        sd("web", "tcp"), None),
    # every service a chain reaches shares its protocol
    "route_to_a_tcp_service": ([sd("web", "http"), sd("admin", "tcp")], router("web", TO_ADMIN),
                               'discovery chain "web" uses inconsistent protocols; service "admin" has "tcp" '
                               'which is not "http"'),
    "split_to_a_tcp_service": ([sd("web", "http")], splitter("web", {"Weight": 50}, {"Weight": 50, "Service": "b"}),
                               'service "b" has "tcp" which is not "http"'),
    "redirect_to_another_protocol": ([sd("web", "tcp"), sd("api", "http")], resolver("web", Redirect={"Service": "api"}),
                                     "uses inconsistent protocols"),
    "protocol_change_reaching_a_chain_through_a_redirect": (
        [sd("web", "http"), sd("mid", "http"), sd("end", "http"), router("web", {"Destination": {"Service": "mid"}}),
         resolver("mid", Redirect={"Service": "end"})],
        sd("end", "tcp"), 'discovery chain "mid" uses inconsistent protocols'),
    # subsets named from elsewhere must exist
    "route_to_a_missing_subset": ([sd("web", "http")],
                                  router("web", {"Destination": {"ServiceSubset": "v2"}}),
                                  'service "web" does not have a subset named "v2"'),
    "route_to_a_defined_subset": ([sd("web", "http"), resolver("web", Subsets=SUBSETS)],
                                  router("web", {"Destination": {"ServiceSubset": "v2"}}), None),
    "split_to_subsets": ([sd("web", "http"), resolver("web", Subsets=SUBSETS)],
                         splitter("web", {"Weight": 90, "ServiceSubset": "v1"}, {"Weight": 10, "ServiceSubset": "v2"}),
                         None),
    "resolver_losing_a_subset_a_splitter_uses": (
        [sd("web", "http"), resolver("web", Subsets=SUBSETS),
         splitter("web", {"Weight": 90, "ServiceSubset": "v1"}, {"Weight": 10, "ServiceSubset": "v2"})],
        resolver("web", Subsets={"v1": SUBSETS["v1"]}), 'service "web" does not have a subset named "v2"'),
    "resolver_deleted_under_a_subset_route": (
        [sd("web", "http"), resolver("web", Subsets=SUBSETS), router("web", {"Destination": {"ServiceSubset": "v1"}})],
        (DELETE, "service-resolver", "web"), 'does not have a subset named "v1"'),
    "redirect_to_a_missing_subset_of_another_service": ([], resolver("web", Redirect={"Service": "api",
                                                                                      "ServiceSubset": "v9"}),
                                                        'service "api" does not have a subset named "v9"'),
    "failover_to_a_missing_subset": ([resolver("api")],
                                     resolver("web", Failover={"*": {"Service": "api", "ServiceSubset": "v3"}}),
                                     'service "api" does not have a subset named "v3"'),
    # loops
    "redirect_loop": ([resolver("a", Redirect={"Service": "b"})], resolver("b", Redirect={"Service": "a"}),
                      "detected circular resolver redirect: [b.default.default.dc1 -> a.default.default.dc1 -> "
                      "b.default.default.dc1]"),
    "splitter_loop": ([PROXY_HTTP, splitter("a", {"Weight": 100, "Service": "b"})],
                      splitter("b", {"Weight": 100, "Service": "a"}),
                      "detected circular reference: [splitter:b.default.default -> splitter:a.default.default -> "
                      "splitter:b.default.default]"),
    "splitter_to_itself_goes_to_its_resolver": ([PROXY_HTTP], splitter("a", {"Weight": 100, "Service": "a"}), None),
    # external services
    "external_service_with_subsets": ([sd("ext", "tcp", ExternalSNI="ext.example.com")],
                                      resolver("ext", Subsets=SUBSETS),
                                      'service "ext" has an external SNI set; cannot define subsets'),
    # ingress listeners and their services' protocols
    "ingress_http_listener_over_tcp_service": ([], ingress("ig", listener(8080, "http", "web")),
                                               'service "web" has protocol "tcp", which does not match defined '
                                               'listener protocol "http"'),
    "ingress_http_listener_over_http_service": ([sd("web", "http")], ingress("ig", listener(8080, "http", "web")), None),
    "ingress_tcp_listener_over_http_service_is_strict": ([sd("web", "http")], ingress("ig", listener(8080, "tcp", "web")),
                                                          'which does not match defined listener protocol "tcp"'),
    "ingress_wildcard_is_not_checked": ([], ingress("ig", listener(8080, "http", "*")), None),
    "service_protocol_change_under_an_http_listener": ([sd("web", "http"), ingress("ig", listener(8080, "http", "web"))],
                                                       sd("web", "tcp"), 'listener protocol "http"'),
    "proxy_defaults_change_under_an_http_listener": ([PROXY_HTTP, ingress("ig", listener(8080, "http", "web"))],
                                                     (DELETE, "proxy-defaults", "global"), 'listener protocol "http"'),
    "tcp_listener_may_keep_a_service_that_became_http": ([ingress("ig", listener(8080, "tcp", "web"))],
                                                         sd("web", "http"), None),
    # one gateway kind per name
    "terminating_named_like_an_ingress": ([ingress("gw", listener(8080, "tcp", "db"))],
                                          {"Kind": "terminating-gateway", "Name": "gw", "Services": [{"Name": "x"}]},
                                          'cannot create a "terminating-gateway" config entry with name "gw", a '
                                          '"ingress-gateway" config entry with that name already exists'),
    "ingress_named_like_a_terminating": ([{"Kind": "terminating-gateway", "Name": "gw"}],
                                         ingress("gw", listener(8080, "tcp", "db")),
                                         'cannot create a "ingress-gateway" config entry with name "gw"'),
    "same_name_in_another_namespace": ([{"Kind": "terminating-gateway", "Name": "gw"}],
                                       {**ingress("gw", listener(8080, "tcp", "db")), "Namespace": "team-a"}, None),
    # L7 intentions keep their rule alongside the new ones
    "l7_intention_then_router_is_fine": ([sd("web", "http"), {"Kind": "service-intentions", "Name": "web", "Sources": [
        {"Name": "a", "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/"}}]}]}],
        router("web"), None),
}


async def _apply(writer, op: Any) -> None:
    if isinstance(op, tuple):
        _, kind, name = op
        await writer.apply(lambda v: plan_delete(v, EntryRef(kind, "default", name)))
    else:
        e = decode_entry(op)
        await writer.apply(lambda v: plan_put(v, e))


@pytest.mark.parametrize(("before", "op", "refusal"), list(CASES.values()), ids=list(CASES))
async def test_cross_entry_rules(before, op, refusal):
    async with running_view() as (view, writer, _):
        for b in before:
            await _apply(writer, b)
        rows_before = dict(view["config"].rows)
        if refusal is None:
            await _apply(writer, op)
            return
        with pytest.raises(InvalidInput) as err:
            await _apply(writer, op)
        assert refusal in str(err.value)
        assert dict(view["config"].rows) == rows_before  # nothing written


async def test_a_chain_message_names_the_datacenter_it_is_given():
    async with running_view() as (_, writer, _):
        await _apply(writer, resolver("a", Redirect={"Service": "b"}))
        e = decode_entry(resolver("b", Redirect={"Service": "a"}))
        with pytest.raises(InvalidInput) as err:
            await writer.apply(lambda v: plan_put(v, e, datacenter="east"))
        assert "b.default.default.east -> a.default.default.east" in str(err.value)


async def test_namespaced_chains_resolve_in_their_own_namespace():
    async with running_view() as (_, writer, _):
        await _apply(writer, {**sd("web", "http"), "Namespace": "team-a"})
        await _apply(writer, {**router("web", {"Destination": {"Service": "web"}}), "Namespace": "team-a"})
        with pytest.raises(InvalidInput, match='uses a protocol "tcp"'):
            await _apply(writer, router("web"))  # default/web is still tcp
