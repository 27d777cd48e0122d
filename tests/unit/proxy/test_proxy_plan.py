"""The listener plan from a snapshot: specs, defaults, refusals, clashes, warnings, diffs.

Snapshots are written inline in their JSON form (the agent's proxy-snapshot endpoint)
and read with proxycfg's ``from_json``, as the proxy reads them.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from trellis.proxy import plan as p
from trellis.proxy.plan import Ejection, Policy, build_plan, diff_plans
from trellis.proxycfg.build import from_json

TD = "11111111-2222-3333-4444-555555555555.consul"


def _upstream(name: str, port: int, **kw: Any) -> dict[str, Any]:
    return {
        "destination_name": name, "destination_namespace": "default", "datacenter": "dc1",
        "local_bind_address": "127.0.0.1", "local_bind_port": port, "protocol": "tcp", "connect_timeout_ms": 0,
        "sni": f"{name}.default.dc1.internal.{TD}", "spiffe_id": f"spiffe://{TD}/ns/default/dc/dc1/svc/{name}",
        "endpoints": [{"address": "127.0.0.1", "port": 21000, "node": "n1", "service_id": f"{name}-1-sidecar-proxy",
                       "health": "passing"}],
        **kw,
    }


BASE: dict[str, Any] = {
    "proxy_id": "web-1-sidecar-proxy", "proxy_name": "web-sidecar-proxy", "namespace": "default",
    "datacenter": "dc1", "trust_domain": TD, "service": "web", "service_id": "web-1",
    "public": {"bind_address": "127.0.0.1", "bind_port": 21000, "local_service_address": "127.0.0.1",
               "local_service_port": 8080, "protocol": "tcp", "local_connect_timeout_ms": 0},
    "leaf": None, "roots": [], "intentions": [], "default": {"allowed": True, "reason": "Default behavior configured by ACLs"},
    "upstreams": [_upstream("api", 9090)], "config": {}, "version": "v1", "index": 7,
}


def snap(config: dict[str, Any] | None = None, upstreams: list[dict[str, Any]] | None = None,
         public: dict[str, Any] | None = None) -> Any:
    data = copy.deepcopy(BASE)
    if config is not None:
        data["config"] = config
    if upstreams is not None:
        data["upstreams"] = upstreams
    if public is not None:
        data["public"].update(public)
    return from_json(data)


def test_defaults_follow_the_builtin_proxy_of_consul():
    plan = build_plan(snap())
    assert plan.public == p.PublicSpec("127.0.0.1", 21000, "127.0.0.1", 8080, local_connect_timeout=1.0,
                                       handshake_timeout=10.0)
    (api,) = plan.upstreams
    assert (api.destination, api.key, api.connect_timeout, api.policy) == ("api", "127.0.0.1:9090", 10.0,
                                                                          Policy.ROUND_ROBIN)
    assert api.ejection == Ejection(max_failures=5, base_time=30.0, max_time=300.0)
    assert api.sni == f"api.default.dc1.internal.{TD}"
    assert plan.settings == p.Settings(close_denied_connections=True, drain_timeout=10.0, metrics_addr="")
    assert plan.refused == () and plan.warnings == ()


KNOBS = [
    ("local connect timeout from the snapshot", {}, {"local_connect_timeout_ms": 250}, None,
     lambda plan: plan.public.local_connect_timeout == 0.25),
    ("handshake timeout", {"handshake_timeout_ms": 2500}, None, None,
     lambda plan: plan.public.handshake_timeout == 2.5),
    ("handshake timeout as text", {"handshake_timeout_ms": "1500"}, None, None,
     lambda plan: plan.public.handshake_timeout == 1.5),
    ("upstream connect timeout", {}, None, [_upstream("api", 9090, connect_timeout_ms=750)],
     lambda plan: plan.upstreams[0].connect_timeout == 0.75),
    ("balancer proxy-wide", {"balancer": "least_conn"}, None, None,
     lambda plan: plan.upstreams[0].policy is Policy.LEAST_CONN),
    ("balancer per upstream wins", {"balancer": "least_conn"}, None,
     [_upstream("api", 9090, config={"balancer": "round_robin"})],
     lambda plan: plan.upstreams[0].policy is Policy.ROUND_ROBIN),
    ("passive health check", {}, None,
     [_upstream("api", 9090, config={"passive_health_check": {"max_failures": 2, "base_ejection_time": "1s"}})],
     lambda plan: plan.upstreams[0].ejection == Ejection(2, 1.0, 300.0)),
    ("ejection longer than the cap raises the cap", {}, None,
     [_upstream("api", 9090, config={"passive_health_check": {"base_ejection_time": "10m"}})],
     lambda plan: plan.upstreams[0].ejection == Ejection(5, 600.0, 600.0)),
    ("close-on-deny off", {"close_denied_connections": False}, None, None,
     lambda plan: plan.settings.close_denied_connections is False),
    ("close-on-deny off as text", {"close_denied_connections": "false"}, None, None,
     lambda plan: plan.settings.close_denied_connections is False),
    ("drain timeout", {"drain_timeout_ms": 200}, None, None, lambda plan: plan.settings.drain_timeout == 0.2),
    ("metrics address", {"envoy_prometheus_bind_addr": "127.0.0.1:9102"}, None, None,
     lambda plan: plan.settings.metrics_addr == "127.0.0.1:9102"),
]


@pytest.mark.parametrize("config, public, upstreams, check", [k[1:] for k in KNOBS], ids=[k[0] for k in KNOBS])
def test_config_keys_are_read(config, public, upstreams, check):
    plan = build_plan(snap(config, upstreams, public))
    assert check(plan)
    assert plan.warnings == ()


BAD_VALUES = [
    ("negative timeout", {"handshake_timeout_ms": -5}, "ignoring handshake_timeout_ms = -5",
     lambda plan: plan.public.handshake_timeout == 10.0),
    ("timeout not a number", {"handshake_timeout_ms": "soon"}, "expected a positive number of milliseconds",
     lambda plan: plan.public.handshake_timeout == 10.0),
    ("unknown balancer", {"balancer": "random"}, "expected round_robin or least_conn",
     lambda plan: plan.upstreams[0].policy is Policy.ROUND_ROBIN),
    ("flag not a bool", {"close_denied_connections": "maybe"}, "expected true or false",
     lambda plan: plan.settings.close_denied_connections is True),
    ("metrics address not text", {"envoy_prometheus_bind_addr": 9102}, "expected a string",
     lambda plan: plan.settings.metrics_addr == ""),
]


@pytest.mark.parametrize("config, warning, check", [b[1:] for b in BAD_VALUES], ids=[b[0] for b in BAD_VALUES])
def test_a_bad_value_is_ignored_with_a_warning(config, warning, check):
    plan = build_plan(snap(config))
    assert check(plan)
    assert len(plan.warnings) == 1 and warning in plan.warnings[0]
    assert plan.warnings[0].startswith("Proxy.Config: ")


@pytest.mark.parametrize("phc, warning", [
    ("often", "expected an object"),
    ({"max_failures": 0}, "max_failures = 0"),
    ({"max_failures": 2.5}, "a whole number"),
    ({"base_ejection_time": "soon"}, "base_ejection_time = 'soon'"),
    ({"base_ejection_time": "-1s"}, "a positive duration"),
], ids=["not an object", "zero failures", "fractional failures", "bad duration", "negative duration"])
def test_bad_passive_health_check_falls_back_to_defaults(phc, warning):
    plan = build_plan(snap(upstreams=[_upstream("api", 9090, config={"passive_health_check": phc})]))
    assert plan.upstreams[0].ejection == Ejection()
    assert len(plan.warnings) == 1 and warning in plan.warnings[0]
    assert plan.warnings[0].startswith("upstream api: ")


REFUSALS = [
    ("another datacenter (the snapshot says why)",
     [_upstream("api", 9090, datacenter="dc2", error="upstream api is in datacenter 'dc2': only this datacenter")],
     "api", "only this datacenter"),
    ("no bind port", [_upstream("api", 0)], "api", "has no local_bind_port"),
    ("same port as the public listener", [_upstream("api", 21000)], "api",
     "127.0.0.1:21000 clashes with the public listener on 127.0.0.1:21000"),
    ("two upstreams on one port: the second is refused", [_upstream("api", 9090), _upstream("db", 9090)], "db",
     "clashes with upstream api on 127.0.0.1:9090"),
    ("a wildcard address overlaps every address", [_upstream("api", 9090),
                                                  _upstream("db", 9090, local_bind_address="0.0.0.0")], "db",
     "0.0.0.0:9090 clashes with upstream api"),
]


@pytest.mark.parametrize("upstreams, refused_name, reason", [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_upstreams_that_cannot_be_served_are_refused_and_the_rest_served(upstreams, refused_name, reason):
    plan = build_plan(snap(upstreams=upstreams + [_upstream("cache", 9300)]))
    (refused,) = plan.refused
    assert refused.destination == refused_name and reason in refused.reason
    served = {u.destination for u in plan.upstreams}
    assert "cache" in served and len(served) == len(upstreams)


def test_same_port_on_different_addresses_is_not_a_clash():
    plan = build_plan(snap(upstreams=[_upstream("api", 9090), _upstream("db", 9090, local_bind_address="127.0.0.2")]))
    assert plan.refused == () and [u.key for u in plan.upstreams] == ["127.0.0.1:9090", "127.0.0.2:9090"]


@pytest.mark.parametrize("public, message", [
    ({"bind_port": 0}, "has no public port"),
    ({"local_service_port": 0}, "has no local service port"),
], ids=["no public port", "no local service"])
def test_a_snapshot_without_a_public_listener_cannot_be_planned(public, message):
    with pytest.raises(p.PlanError, match=message):
        build_plan(snap(public=public))


def test_endpoints_are_carried_with_their_health_unfiltered():
    up = _upstream("api", 9090)
    up["endpoints"].append({"address": "127.0.0.2", "port": 21001, "node": "n2", "service_id": "api-2-sidecar-proxy",
                            "health": "critical"})
    plan = build_plan(snap(upstreams=[up]))
    assert [e.health for e in plan.upstreams[0].endpoints] == ["passing", "critical"]


DIFFS = [
    ("first plan starts everything", None, [_upstream("api", 9090)], (True, ["127.0.0.1:9090"], [], [])),
    ("nothing changed", [_upstream("api", 9090)], [_upstream("api", 9090)], (False, [], [], [])),
    ("new upstream", [_upstream("api", 9090)], [_upstream("api", 9090), _upstream("db", 9091)],
     (False, ["127.0.0.1:9091"], [], [])),
    ("removed upstream", [_upstream("api", 9090), _upstream("db", 9091)], [_upstream("api", 9090)],
     (False, [], ["127.0.0.1:9091"], [])),
    ("moved upstream", [_upstream("api", 9090)], [_upstream("api", 9092)],
     (False, ["127.0.0.1:9092"], ["127.0.0.1:9090"], [])),
    ("endpoints changed: updated in place", [_upstream("api", 9090)],
     [_upstream("api", 9090, endpoints=[])], (False, [], [], ["127.0.0.1:9090"])),
]


@pytest.mark.parametrize("before, after, expected", [d[1:] for d in DIFFS], ids=[d[0] for d in DIFFS])
def test_diff_plans(before, after, expected):
    old = build_plan(snap(upstreams=before)) if before is not None else None
    change = diff_plans(old, build_plan(snap(upstreams=after)))
    got = (change.rebind_public, [u.key for u in change.start], list(change.stop), [u.key for u in change.update])
    assert got == expected


def test_moving_the_public_listener_rebinds_it():
    change = diff_plans(build_plan(snap()), build_plan(snap(public={"bind_port": 21500})))
    assert change.rebind_public


def test_docs_list_every_config_key():
    from pathlib import Path

    doc = (Path(__file__).parents[3] / "docs" / "proxy.md").read_text()
    for key, _, default, _ in p.CONFIG_KEYS:
        assert f"`{key}`" in doc, key
