"""``trellis connect proxy``: finding the sidecar, reading -upstream, the -list table and
the -verify checks (pure parts)."""

from __future__ import annotations

import datetime as dt

import pytest

from trellis.cli import connect_proxy as cp
from trellis.connect import spiffe
from trellis.connect.ca import certs
from trellis.errors import InvalidInput

SERVICES = {
    "web-1": {"ID": "web-1", "Service": "web"},
    "web-1-sidecar-proxy": {"ID": "web-1-sidecar-proxy", "Kind": "connect-proxy",
                            "Proxy": {"DestinationServiceID": "web-1", "DestinationServiceName": "web"}},
    "api-1-sidecar-proxy": {"ID": "api-1-sidecar-proxy", "Kind": "connect-proxy",
                            "Proxy": {"DestinationServiceID": "api-1", "DestinationServiceName": "api"}},
    "api-2-sidecar-proxy": {"ID": "api-2-sidecar-proxy", "Kind": "connect-proxy",
                            "Proxy": {"DestinationServiceID": "api-2", "DestinationServiceName": "api"}},
}


@pytest.mark.parametrize(("target", "expected"), [
    ("web-1", "web-1-sidecar-proxy"), ("WEB-1", "web-1-sidecar-proxy"), ("web", "web-1-sidecar-proxy"),
    ("api-2", "api-2-sidecar-proxy"),
], ids=["by-id", "id-case-insensitive", "by-name-when-one-instance", "one-of-two-by-id"])
def test_find_sidecar(target, expected):
    assert cp.find_sidecar(SERVICES, target) == expected


@pytest.mark.parametrize(("target", "message"), [
    ("nope", "No sidecar proxy registered for nope"),
    ("api", "More than one sidecar proxy registered for api: api-1-sidecar-proxy, api-2-sidecar-proxy"),
], ids=["none", "several-by-name"])
def test_find_sidecar_errors(target, message):
    with pytest.raises(InvalidInput) as err:
        cp.find_sidecar(SERVICES, target)
    assert str(err.value).startswith(message)


@pytest.mark.parametrize(("text", "expected"), [
    ("api:9090", {"DestinationName": "api", "LocalBindAddress": "127.0.0.1", "LocalBindPort": 9090}),
    ("db:127.0.0.2:9091", {"DestinationName": "db", "LocalBindAddress": "127.0.0.2", "LocalBindPort": 9091}),
], ids=["name-port", "name-addr-port"])
def test_parse_upstream(text, expected):
    assert cp.parse_upstream(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("api", "expected name:port"), ("api:x", "'x' is not a port"), ("api:70000", "is not a port"),
    (":9090", "expected name:port"), ("q.query:9090", "prepared-query"),
], ids=["no-port", "bad-port", "port-range", "no-name", "prepared-query"])
def test_parse_upstream_errors(text, message):
    with pytest.raises(InvalidInput, match=message):
        cp.parse_upstream(text)


def test_the_list_table():
    rows = [{"ProxyID": "web-1-sidecar-proxy", "Service": "web", "DataPlane": "builtin",
             "PublicListener": "127.0.0.1:21000", "Upstreams": ["api@127.0.0.1:9191"], "LeafValidBefore": 7300,
             "Connections": 3, "SentVersion": "abcdef0123", "AppliedVersion": "abcdef0123",
             "LagSeconds": 0.012, "InSync": True}]
    text = cp.format_list(rows, now=100)
    header, line = text.splitlines()
    assert header.split() == ["ID", "Service", "Data", "plane", "Public", "Upstreams", "Leaf", "expires", "Conns",
                              "Sent", "Applied", "Problems", "Lag"]
    assert line.split() == ["web-1-sidecar-proxy", "web", "builtin", "127.0.0.1:21000", "api@127.0.0.1:9191",
                            "in", "2.0h", "3", "abcdef01", "abcdef01", "-", "in", "sync", "(12ms)"]


def test_the_list_counts_each_proxys_problems_and_spells_them_out_below() -> None:
    problem = 'upstream db (127.0.0.1:9192): no instance of service "db" is in the mesh yet'
    rows = [{"ProxyID": "web-1-sidecar-proxy", "Service": "web", "DataPlane": "envoy", "Problems": [problem, "two"]},
            {"ProxyID": "api-1-sidecar-proxy", "Service": "api", "DataPlane": "envoy", "Problems": []}]
    lines = cp.format_list(rows, now=100).splitlines()
    header, web, api = lines[:3]
    column = header.index("Problems")
    assert (web[column:].split()[0], api[column:].split()[0]) == ("2", "-")  # aligned under the header
    assert lines[3:] == ["", "Problems:", f"  web-1-sidecar-proxy: {problem}", "  web-1-sidecar-proxy: two"]


@pytest.mark.parametrize(("row", "shown"), [
    ({"LagSeconds": 0.012, "InSync": True, "AppliedVersion": "a"}, "in sync (12ms)"),
    ({"LagSeconds": 3.2, "InSync": False, "AppliedVersion": "a", "DataPlane": "envoy"}, "3.2s behind"),
    ({"LagSeconds": 42, "InSync": False, "Stale": True, "AppliedVersion": "a", "DataPlane": "envoy"},
     "STALE 42.0s behind"),
    ({"LagSeconds": 50, "InSync": False}, "not running"),
], ids=["in-sync", "behind", "stale", "never-reported"])
def test_the_lag_column(row, shown):
    assert cp.format_lag(row) == shown


def _snapshot(*, service_in_cert: str = "web", ttl: float = 3600.0, trusted: bool = True) -> dict:
    now = dt.datetime.now(dt.timezone.utc)
    cluster = "11111111-2222-3333-4444-555555555555"
    td = spiffe.trust_domain(cluster)
    root_key, other_key = certs.generate_key(certs.KeySpec("ec", 256)), certs.generate_key(certs.KeySpec("ec", 256))
    root = certs.build_root(root_key, cluster_id=cluster, uid="abcd1234", serial=1, now=now, ttl=dt.timedelta(days=1))
    other = certs.build_root(other_key, cluster_id=cluster, uid="zzzz9999", serial=2, now=now, ttl=dt.timedelta(days=1))
    key = certs.generate_key(certs.LEAF_KEY)
    csr = certs.build_csr(key, spiffe.service_uri(td, "default", "dc1", service_in_cert))
    leaf = certs.sign_leaf(csr, root, root_key, serial=5, now=now, ttl=dt.timedelta(seconds=ttl))
    return {"trust_domain": td, "namespace": "default", "datacenter": "dc1", "service": "web",
            "roots": [certs.dump_cert(root if trusted else other)],
            "leaf": {"cert_pem": certs.dump_cert(leaf), "valid_before": certs.not_after(leaf).timestamp()}}


@pytest.mark.parametrize(("snap", "oks"), [
    (dict(), [True, True, True]),
    (dict(service_in_cert="api"), [True, False, True]),
    (dict(trusted=False), [False, True, True]),
], ids=["good", "wrong-identity", "foreign-root"])
def test_verify_reports_each_check(snap, oks):
    import time

    checks = cp.verify_snapshot(_snapshot(**snap), now=time.time())
    assert [ok for ok, _ in checks] == oks


def test_verify_an_expired_leaf_fails():
    import time

    snap = _snapshot(ttl=3600)
    checks = cp.verify_snapshot(snap, now=time.time() + 7200)
    assert checks[-1][0] is False and "expired" in checks[-1][1]


def test_an_unknown_log_level_is_refused_before_anything_runs(monkeypatch):
    monkeypatch.setattr(cp.http, "client_for", lambda parsed: object())
    monkeypatch.setattr(cp, "resolve_proxy_id", lambda *a: (_ for _ in ()).throw(AssertionError("not reached")))
    assert cp.run(["-service", "web", "-listen", "127.0.0.1:1", "-service-addr", "127.0.0.1:2",
                   "-log-level", "chatty"]) == 1
