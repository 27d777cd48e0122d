"""Choosing an upstream instance: health rule, round robin, least connections, retry
order, ejection with back-off and panic. The clock is a number passed in.

Each scenario is a script of steps over three instances a, b, c:
``pick`` records the order returned at that moment (as a string such as "bca"),
``fail x`` / ``ok x`` record a connect failure / success, ``open x`` / ``close x``
count connections, ``at T`` moves the clock.
"""

from __future__ import annotations

import pytest

from trellis.proxy.balance import Balancer, why_unusable
from trellis.proxy.plan import Ejection, Policy
from trellis.proxycfg.model import Endpoint

PORTS = {"a": 21001, "b": 21002, "c": 21003}


def eps(spec: str = "abc", health: dict[str, str] | None = None) -> tuple[Endpoint, ...]:
    health = health or {}
    return tuple(Endpoint(address="127.0.0.1", port=PORTS[n], node="n1", service_id=f"api-{n}",
                          health=health.get(n, "passing")) for n in spec)


def name(ep: Endpoint) -> str:
    return next(n for n, port in PORTS.items() if port == ep.port)


def run(script: str, *, policy: Policy = Policy.ROUND_ROBIN, ejection: Ejection = Ejection(2, 10.0, 25.0),
        endpoints: tuple[Endpoint, ...] | None = None) -> list[str]:
    endpoints = endpoints if endpoints is not None else eps()
    by_name = {name(ep): ep for ep in endpoints}
    b = Balancer(policy, ejection)
    now, picks = 0.0, []
    for step in filter(None, (s.strip() for s in script.split(";"))):
        verb, _, arg = step.partition(" ")
        if verb == "pick":
            picks.append("".join(name(ep) for ep in b.order(endpoints, now)))
        elif verb == "at":
            now = float(arg)
        elif verb == "fail":
            b.failed(by_name[arg], now)
        elif verb == "ok":
            b.succeeded(by_name[arg])
        elif verb == "open":
            b.opened(by_name[arg])
        elif verb == "close":
            b.closed(by_name[arg])
        else:
            raise AssertionError(f"unknown step {step!r}")
    return picks


SCRIPTS = [
    ("round robin rotates the first choice, the rest is the retry order",
     Policy.ROUND_ROBIN, "pick; pick; pick; pick", ["abc", "bca", "cab", "abc"]),
    ("least conn prefers the idle instance",
     Policy.LEAST_CONN, "open a; open a; open b; pick", ["cba"]),
    ("least conn ties keep rotating",
     Policy.LEAST_CONN, "pick; pick; pick", ["abc", "bca", "cab"]),
    ("least conn counts closes",
     Policy.LEAST_CONN, "open a; open b; open c; close a; pick; pick", ["abc", "abc"]),
    ("fewer consecutive failures than the limit eject nothing",
     Policy.ROUND_ROBIN, "fail a; pick", ["abc"]),
    ("a success in between resets the count",
     Policy.ROUND_ROBIN, "fail a; ok a; fail a; pick", ["abc"]),
    ("max_failures in a row eject for base_time",
     Policy.ROUND_ROBIN, "fail a; fail a; pick; at 9.9; pick; at 10; pick", ["bc", "bc", "cab"]),
    ("a second ejection in a row lasts twice as long",
     Policy.ROUND_ROBIN, "fail a; fail a; at 10; fail a; fail a; at 29.9; pick; at 30; pick", ["bc", "bca"]),
    ("ejection time is capped at max_time",
     Policy.ROUND_ROBIN, "fail a; fail a; at 10; fail a; fail a; at 30; fail a; fail a; at 54.9; pick; at 55; pick",
     ["bc", "bca"]),
    ("a success after ejection resets the back-off",
     Policy.ROUND_ROBIN, "fail a; fail a; at 10; ok a; fail a; fail a; at 19.9; pick; at 20; pick", ["bc", "bca"]),
    ("all ejected: panic, every instance in order of return",
     Policy.ROUND_ROBIN, "fail b; fail b; at 1; fail a; fail a; at 2; fail c; fail c; pick", ["bac"]),
    ("least conn skips an ejected idle instance",
     Policy.LEAST_CONN, "open b; open c; fail a; fail a; pick", ["bc"]),
]


@pytest.mark.parametrize("policy, script, expected", [s[1:] for s in SCRIPTS], ids=[s[0] for s in SCRIPTS])
def test_selection(policy, script, expected):
    assert run(script, policy=policy) == expected


HEALTH = [
    ("critical instances get no traffic", {"b": "critical"}, "ac"),
    ("warning instances do", {"b": "warning"}, "abc"),
    ("all critical: nothing to try", {"a": "critical", "b": "critical", "c": "critical"}, ""),
]


@pytest.mark.parametrize("health, expected", [h[1:] for h in HEALTH], ids=[h[0] for h in HEALTH])
def test_health_rule(health, expected):
    assert run("pick", endpoints=eps(health=health)) == [expected]


def test_failures_are_counted_per_instance():
    b = Balancer(Policy.ROUND_ROBIN, Ejection(2, 10.0, 300.0))
    a, bb, _ = eps()
    assert b.failed(a, 0) is False
    assert b.failed(bb, 0) is False
    assert b.failed(a, 0) is True
    assert b.ejected(a, 5) and not b.ejected(bb, 5)


def test_retain_forgets_instances_that_left_but_keeps_their_open_connections():
    b = Balancer(Policy.LEAST_CONN, Ejection(1, 10.0, 300.0))
    a, bb, c = eps()
    b.opened(a)
    b.failed(bb, 0)
    b.retain((c,))
    assert b.active(a) == 1 and not b.ejected(bb, 1)
    b.closed(a)
    b.retain((c,))
    assert b.active(a) == 0


def test_closing_more_than_opened_never_goes_negative():
    b = Balancer()
    (a,) = eps("a")
    b.closed(a)
    assert b.active(a) == 0


def test_configure_keeps_the_counts():
    b = Balancer(Policy.ROUND_ROBIN, Ejection(1, 10.0, 300.0))
    a, _, _ = eps()
    b.failed(a, 0)
    b.configure(Policy.LEAST_CONN, Ejection(5, 1.0, 300.0))
    assert b.ejected(a, 5) and b.policy is Policy.LEAST_CONN


@pytest.mark.parametrize("endpoints, text", [
    ((), "no instance is registered"),
    (eps("ab", {"a": "critical", "b": "critical"}), "all 2 instance(s) are critical"),
], ids=["none registered", "all critical"])
def test_why_unusable(endpoints, text):
    assert why_unusable(endpoints).describe() == text
