"""Who may connect to the public listener: a peer certificate's URI decided by the
intentions engine over the snapshot's intentions (the same decision as /authorize)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from trellis.connect.intentions.model import Action, HTTPMatch, Intention, Permission
from trellis.proxy.authz import Authorizer, authz_input, peer_uris, revoked
from trellis.proxycfg.build import from_json

TD = "11111111-2222-3333-4444-555555555555.consul"
ACLS = "Default behavior configured by ACLs"


def uri(name: str, ns: str = "default", td: str = TD) -> str:
    return f"spiffe://{td}/ns/{ns}/dc/dc1/svc/{name}"


def ixn(source: str, action: str | None, destination: str = "api", l7: bool = False) -> Intention:
    src_ns, _, src = source.rpartition("/")
    perms = (Permission(Action.ALLOW, HTTPMatch(path_prefix="/")),) if l7 else ()
    return Intention(source_ns=src_ns or "default", source_name=src, destination_ns="default",
                     destination_name=destination, action=Action(action) if action else None, permissions=perms)


def authorizer(intentions: tuple[Intention, ...] = (), default_allow: bool = True) -> Authorizer:
    data: dict[str, Any] = {
        "proxy_id": "api-1-sidecar-proxy", "proxy_name": "api-sidecar-proxy", "namespace": "default",
        "datacenter": "dc1", "trust_domain": TD.upper(), "service": "api", "service_id": "api-1",
        "public": {"bind_address": "127.0.0.1", "bind_port": 21000, "local_service_address": "127.0.0.1",
                   "local_service_port": 8080, "protocol": "tcp", "local_connect_timeout_ms": 0},
        "leaf": None, "roots": [], "intentions": [], "default": {"allowed": default_allow, "reason": ACLS},
    }
    snap = from_json(data)
    return Authorizer(authz_input(replace(snap, intentions=intentions)))


CASES = [
    ("no intention: the default allows", (), True, (uri("web"),), True, f"allowed: default/web -> default/api ({ACLS})"),
    ("no intention: the default denies", (), False, (uri("web"),), False, f"denied: default/web -> default/api ({ACLS})"),
    ("exact deny", (ixn("web", "deny"),), True, (uri("web"),), False,
     "denied: default/web -> default/api (Matched L4 intention: default/web => default/api "
     "(Precedence: 9, Action: DENY))"),
    ("exact allow over default deny", (ixn("web", "allow"),), False, (uri("web"),), True,
     "allowed: default/web -> default/api (Matched L4 intention: default/web => default/api "
     "(Precedence: 9, Action: ALLOW))"),
    ("exact deny beats wildcard allow", (ixn("*/*", "allow"), ixn("web", "deny")), True, (uri("web"),), False,
     "Action: DENY"),
    ("wildcard allow covers another source", (ixn("*/*", "allow"), ixn("web", "deny")), False, (uri("billing"),),
     True, "allowed: default/billing -> default/api (Matched L4 intention: */* => default/api"),
    ("an intention for another destination does not apply", (ixn("web", "deny", destination="db"),), True,
     (uri("web"),), True, ACLS),
    ("another namespace is another source", (ixn("web", "deny"),), True, (uri("web", ns="team"),), True,
     "allowed: team/web -> default/api"),
    ("L7 intention denies at L4 (fail closed)", (ixn("web", None, l7=True),), True, (uri("web"),), False,
     "denied: default/web -> default/api (Matched L7 intention: default/web => default/api "
     "(Precedence: 9, Permissions: 1))"),
    ("a peer in another trust domain", (), True, (uri("web", td="other.consul"),), False,
     f"denied: {uri('web', td='other.consul')} -> default/api (trust domain 'other.consul' is not this "
     f"cluster's '{TD}')"),
    ("no URI SAN", (), True, (), False, "denied: no URI SAN -> default/api (the peer certificate must carry "
                                         "exactly one SPIFFE URI, found 0)"),
    ("two URI SANs", (), True, (uri("web"), uri("db")), False, "found 2"),
    ("not a SPIFFE URI", (), True, ("https://example.com/web",), False, "the scheme must be spiffe"),
    ("a CA identity", (), True, (f"spiffe://{TD}",), False, "is not a service identity"),
    ("an agent identity", (), True, (f"spiffe://{TD}/agent/client/dc/dc1/id/node1",), False,
     "is not a service identity"),
]


@pytest.mark.parametrize("intentions, default_allow, uris, allowed, text", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_peer_decision(intentions, default_allow, uris, allowed, text):
    decision = authorizer(intentions, default_allow).decide(uris)
    assert decision.allowed is allowed
    assert text in decision.describe()


def test_the_source_service_is_the_metric_label():
    assert authorizer().decide((uri("web"),)).source_service == "web"
    assert authorizer().decide(()).source_service == ""


def test_peer_uris_from_getpeercert():
    cert = {"subject": (), "subjectAltName": (("DNS", "web.example"), ("URI", uri("web")))}
    assert peer_uris(cert) == (uri("web"),)
    assert peer_uris(None) == () and peer_uris({}) == ()


def test_revoked_lists_only_the_connections_now_denied():
    now = authorizer((ixn("web", "deny"),))
    open_conns = {1: (uri("web"),), 2: (uri("billing"),), 3: (uri("web"),)}
    assert [(k, d.source) for k, d in revoked(now, open_conns)] == [(1, "default/web"), (3, "default/web")]


def test_equal_snapshots_give_equal_inputs():
    a = authorizer((ixn("web", "deny"),))
    b = authorizer((ixn("web", "deny"),))
    c = authorizer((ixn("web", "allow"),))
    assert a.input == b.input and a.input != c.input
