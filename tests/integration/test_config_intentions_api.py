"""Config entries and intentions through a real agent: /v1/config with CAS and the
cross-entry rules, the legacy and exact intention endpoints, and every pair of a
namespaced set of intentions decided by /check, /authorize and /match the same way a
small independent oracle in this file decides them."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time

import consul
import pytest

from trellis.testing.agent import AgentProcess, free_port, start_agent

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> AgentProcess:
    proc = start_agent(tmp_path_factory.mktemp("ixn"), "-hcl", 'default_intention_policy = "allow"')
    yield proc
    assert proc.stop() == 0, proc.log()


def put(agent: AgentProcess, body: dict, query: str = "") -> tuple[int, object]:
    status, _, answer = agent.request("PUT", f"/v1/config{query}", body)
    return status, answer


def get(agent: AgentProcess, path: str) -> object:
    status, _, body = agent.request("GET", path)
    assert status == 200, (path, status, body)
    return body


# -- config entries ----------------------------------------------------------------------------
def test_write_read_list_and_delete_an_entry(agent):
    assert put(agent, {"kind": "service-defaults", "name": "billing", "protocol": "http"}) == (200, True)
    entry = get(agent, "/v1/config/service-defaults/billing")
    assert entry["Kind"] == "service-defaults" and entry["Protocol"] == "http" and entry["ModifyIndex"] > 0
    assert "billing" in [e["Name"] for e in get(agent, "/v1/config/service-defaults")]
    assert agent.request("DELETE", "/v1/config/service-defaults/billing")[2] == {}
    status, _, text = agent.request("GET", "/v1/config/service-defaults/billing")
    assert status == 404 and text == 'Config entry not found for "service-defaults" / "billing"'


def test_check_and_set(agent):
    body = {"Kind": "service-defaults", "Name": "cas-svc", "Protocol": "tcp"}
    assert put(agent, body, "?cas=0") == (200, True)
    assert put(agent, body, "?cas=0") == (200, False)  # exists already
    index = get(agent, "/v1/config/service-defaults/cas-svc")["ModifyIndex"]
    assert put(agent, {**body, "Protocol": "http"}, f"?cas={index + 100}") == (200, False)
    assert put(agent, {**body, "Protocol": "http"}, f"?cas={index}") == (200, True)
    assert get(agent, "/v1/config/service-defaults/cas-svc")["Protocol"] == "http"
    status, _, answer = agent.request("DELETE", f"/v1/config/service-defaults/cas-svc?cas={index}")
    assert (status, answer) == (200, False)


def test_l7_intentions_need_an_http_protocol_and_keep_it(agent):
    l7 = {"Kind": "service-intentions", "Name": "orders", "Sources": [
        {"Name": "web", "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/v1"}}]}]}
    status, text = put(agent, l7)
    assert status == 400 and text == 'service "orders" has protocol "tcp", which is incompatible with L7 intentions permissions'
    assert agent.request("GET", "/v1/config/service-intentions/orders")[0] == 404  # nothing half-written
    assert put(agent, {"Kind": "service-defaults", "Name": "orders", "Protocol": "http"}) == (200, True)
    assert put(agent, l7) == (200, True)
    status, text = put(agent, {"Kind": "service-defaults", "Name": "orders", "Protocol": "tcp"})
    assert status == 400 and "incompatible with L7 intentions" in text
    assert get(agent, "/v1/config/service-defaults/orders")["Protocol"] == "http"
    status, _, text = agent.request("DELETE", "/v1/config/service-defaults/orders")
    assert status == 400 and "incompatible with L7 intentions" in text


def test_a_blocking_read_wakes_on_a_write(agent):
    assert put(agent, {"Kind": "service-defaults", "Name": "watched"}) == (200, True)
    _, headers, _ = agent.request("GET", "/v1/config/service-defaults/watched")
    index = int(headers["X-Consul-Index"])
    got = {}

    def wait():
        t0 = time.monotonic()
        got["answer"] = agent.request("GET", f"/v1/config/service-defaults/watched?index={index}&wait=20s")
        got["took"] = time.monotonic() - t0

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.2)
    assert put(agent, {"Kind": "service-defaults", "Name": "watched", "Protocol": "grpc"}) == (200, True)
    t.join(25)
    status, h, body = got["answer"]
    assert status == 200 and body["Protocol"] == "grpc" and int(h["X-Consul-Index"]) > index
    assert got["took"] < 10


def test_bad_entries_are_400s_naming_the_problem(agent):
    status, text = put(agent, {"Kind": "service-defaults", "Name": "x", "Bogus": 1})
    assert status == 400 and text == 'Request decoding failed: invalid config key "Bogus"'
    status, _, text = agent.request("PUT", "/v1/config", b"{not json")
    assert status == 400 and "Request decode failed" in text
    status, _, text = agent.request("GET", "/v1/config/nonsense")
    assert status == 400 and "invalid config entry kind: nonsense" in text


# -- intentions ---------------------------------------------------------------------------------
def test_legacy_intentions_round_trip_and_refuse_config_entry_destinations(agent):
    status, _, created = agent.request("POST", "/v1/connect/intentions",
                                       {"SourceName": "legacy-a", "DestinationName": "legacy-b", "Action": "allow",
                                        "Meta": {"team": "x"}})
    assert status == 200
    ixn_id = created["ID"]
    got = get(agent, f"/v1/connect/intentions/{ixn_id}")
    assert (got["SourceName"], got["DestinationName"], got["Action"], got["Meta"]) == ("legacy-a", "legacy-b", "allow",
                                                                                       {"team": "x"})
    assert list(got)[:2] == ["CreatedAt", "UpdatedAt"]
    status, _, _ = agent.request("PUT", f"/v1/connect/intentions/{ixn_id}",
                                 {"SourceName": "legacy-a", "DestinationName": "legacy-b", "Action": "deny"})
    assert status == 200 and get(agent, f"/v1/connect/intentions/{ixn_id}")["Action"] == "deny"
    status, _, text = agent.request("PUT", f"/v1/connect/intentions/{ixn_id}",
                                    {"SourceName": "legacy-a", "DestinationName": "elsewhere", "Action": "deny"})
    assert status == 400 and "Cannot modify Destination" in text
    assert put(agent, {"Kind": "service-intentions", "Name": "entry-dst",
                       "Sources": [{"Name": "a", "Action": "allow"}]}) == (200, True)
    status, _, text = agent.request("POST", "/v1/connect/intentions",
                                    {"SourceName": "b", "DestinationName": "entry-dst", "Action": "allow"})
    assert status == 400 and "after editing them via a service-intentions config entry" in text
    assert agent.request("DELETE", f"/v1/connect/intentions/{ixn_id}")[2] is True
    assert agent.request("GET", f"/v1/connect/intentions/{ixn_id}")[0] == 404


def test_exact_endpoints_and_py_consul(agent):
    c = consul.Consul(host="127.0.0.1", port=agent.http_port)
    assert agent.request("PUT", "/v1/connect/intentions/exact?source=pc-web&destination=pc-db",
                         {"Action": "allow", "Description": "web reads db"})[2] is True
    got = get(agent, "/v1/connect/intentions/exact?source=pc-web&destination=pc-db")
    assert got["Description"] == "web reads db" and "ID" not in got
    assert c.agent.connect.authorize("pc-db", "spiffe://x.consul/ns/default/dc/dc1/svc/pc-web", "00")["Authorized"]
    status, _, text = agent.request("GET", "/v1/connect/intentions/exact?source=pc-web")
    assert status == 400 and text == "required query parameter 'destination' not set"
    assert agent.request("DELETE", "/v1/connect/intentions/exact?source=pc-web&destination=pc-db")[2] is True
    assert agent.request("DELETE", "/v1/connect/intentions/exact?source=pc-web&destination=pc-db")[2] is True
    assert agent.request("GET", "/v1/connect/intentions/exact?source=pc-web&destination=pc-db")[0] == 404


def test_authorize_refuses_bad_input(agent):
    for body, text in (({"ClientCertURI": "spiffe://x.consul/ns/default/dc/dc1/svc/web"}, "Target service must be specified"),
                       ({"Target": "db", "ClientCertURI": "https://nope"}, "ClientCertURI not a valid Connect identifier"),
                       ({"Target": "db", "ClientCertURI": "spiffe://x.consul"}, "ClientCertURI not a valid Service identifier")):
        status, _, answer = agent.request("POST", "/v1/agent/connect/authorize", body)
        assert (status, answer) == (400, text)


# -- one namespaced set of intentions, every pair, three endpoints ------------------------------------
ENTRIES = [
    ("team-b", "db", [("team-a", "web", "allow"), ("team-a", "*", "deny"), ("*", "*", "allow")]),
    ("team-b", "*", [("team-a", "web", "deny"), ("team-a", "*", "allow"), ("*", "*", "deny")]),
    ("*", "*", [("team-a", "api", "allow"), ("team-c", "*", "deny"), ("*", "*", "deny")]),
]
SOURCES = [("team-a", "web"), ("team-a", "api"), ("team-a", "other"), ("team-c", "x"), ("team-x", "web"),
           ("default", "web")]
DESTINATIONS = [("team-b", "db"), ("team-b", "cache"), ("team-x", "svc"), ("default", "db")]


def _exactness(ns: str, name: str) -> int:
    return 0 if ns == "*" else (1 if name == "*" else 2)


def oracle(source: tuple[str, str], destination: tuple[str, str]) -> tuple[bool, int]:
    """A brute-force reading of Consul's rules: the most precise matching intention decides."""
    best = None
    for dns, dname, sources in ENTRIES:
        if dns not in ("*", destination[0]) or dname not in ("*", destination[1]):
            continue
        top = {2: 9, 1: 6, 0: 3}[_exactness(dns, dname)]
        for sns, sname, action in sources:
            if sns in ("*", source[0]) and sname in ("*", source[1]):
                prec = top - (2 - _exactness(sns, sname))
                if best is None or prec > best[1]:
                    best = (action == "allow", prec)
    return best if best is not None else (True, 0)  # default_intention_policy = "allow"


@pytest.fixture(scope="module")
def namespaced(agent):
    for ns, name, sources in ENTRIES:
        body = {"Kind": "service-intentions", "Name": name, "Namespace": ns,
                "Sources": [{"Namespace": s_ns, "Name": s_name, "Action": a} for s_ns, s_name, a in sources]}
        assert put(agent, body) == (200, True), body
    return agent


@pytest.mark.parametrize(("source", "destination"), list(itertools.product(SOURCES, DESTINATIONS)),
                         ids=lambda p: "/".join(p))
def test_every_pair_is_decided_as_the_precedence_table_says(namespaced, source, destination):
    allowed, prec = oracle(source, destination)
    src, dst = "/".join(source), "/".join(destination)
    assert get(namespaced, f"/v1/connect/intentions/check?source={src}&destination={dst}") == {"Allowed": allowed}
    uri = f"spiffe://x.consul/ns/{source[0]}/dc/dc1/svc/{source[1]}"
    _, _, answer = namespaced.request("POST", f"/v1/agent/connect/authorize?ns={destination[0]}",
                                      {"Target": destination[1], "ClientCertURI": uri})
    assert answer["Authorized"] is allowed
    assert (f"Precedence: {prec}," in answer["Reason"]) if prec else answer["Reason"] == "Default intention policy"
    matched = get(namespaced, f"/v1/connect/intentions/match?by=destination&name={dst}")[dst] or []
    first = next((m for m in matched if m["SourceNS"] in ("*", source[0]) and m["SourceName"] in ("*", source[1])), None)
    assert (first["Precedence"] if first else 0) == prec
    assert [m["Precedence"] for m in matched] == sorted((m["Precedence"] for m in matched), reverse=True)


def test_an_l7_intention_is_a_deny_at_l4(agent):
    assert put(agent, {"Kind": "service-defaults", "Name": "l7-api", "Protocol": "http"}) == (200, True)
    assert put(agent, {"Kind": "service-intentions", "Name": "l7-api", "Sources": [
        {"Name": "l7-web", "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/"}}]}]}) == (200, True)
    assert get(agent, "/v1/connect/intentions/check?source=l7-web&destination=l7-api") == {"Allowed": False}
    _, _, answer = agent.request("POST", "/v1/agent/connect/authorize",
                                 {"Target": "l7-api", "ClientCertURI": "spiffe://x.consul/ns/default/dc/dc1/svc/l7-web"})
    assert answer["Authorized"] is False and answer["Reason"].startswith("Matched L7 intention: ")


def test_dry_run_lists_the_registered_pairs_that_change_and_writes_nothing(namespaced):
    agent = namespaced
    for name in ("dr-web", "dr-db", "dr-api"):
        agent.request("PUT", "/v1/agent/service/register", {"Name": name, "Port": 1})
    before = get(agent, "/v1/connect/intentions")
    # every default-namespace pair is denied by the */* intention above: allowing * -> dr-db flips
    # exactly the registered services' pairs towards dr-db, and nothing else
    status, _, answer = agent.request("POST", "/v1/connect/intentions?dry-run",
                                      {"SourceName": "*", "DestinationName": "dr-db", "Action": "allow"})
    assert status == 200 and answer["DryRun"] is True
    pairs = {(c["Source"], c["Destination"]) for c in answer["Changes"]}
    assert {("default/dr-web", "default/dr-db"), ("default/dr-api", "default/dr-db")} <= pairs
    assert all(c["Destination"] == "default/dr-db" and (c["Before"], c["After"]) == ("deny", "allow")
               for c in answer["Changes"])
    assert get(agent, "/v1/connect/intentions") == before


def test_bootstrap_entries_are_written_at_start_and_a_bad_one_stops_it(tmp_path):
    hcl = ('config_entries { bootstrap = [ { kind = "proxy-defaults", name = "global", '
           'config { protocol = "http" } }, { kind = "service-intentions", name = "db", '
           'sources = [ { name = "web", action = "deny" } ] } ] }')
    proc = start_agent(tmp_path / "ok", "-hcl", hcl)
    try:
        assert get(proc, "/v1/config/proxy-defaults/global")["Config"] == {"protocol": "http"}
        assert get(proc, "/v1/connect/intentions/check?source=web&destination=db") == {"Allowed": False}
    finally:
        proc.stop()
    bad = 'config_entries { bootstrap = [ { kind = "service-defaults", name = "x", protocol = "smtp" } ] }'
    r = subprocess.run([sys.executable, "-m", "trellis", "agent", "-dev", "-http-port", str(free_port()),
                        "-dns-port", "-1", "-grpc-port", "-1", "-hcl", bad], capture_output=True, text=True, timeout=60)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 1 and "config_entries.bootstrap[0]: invalid value for protocol: smtp" in last, r.stderr


def test_service_defaults_lists_filter_and_other_kinds_refuse_it(agent):
    assert put(agent, {"Kind": "service-defaults", "Name": "f-http", "Protocol": "http"}) == (200, True)
    assert put(agent, {"Kind": "service-defaults", "Name": "f-grpc", "Protocol": "grpc"}) == (200, True)
    names = [e["Name"] for e in get(agent, "/v1/config/service-defaults?filter=Protocol%20%3D%3D%20grpc")]
    assert "f-grpc" in names and "f-http" not in names
    assert all(e["Protocol"] == "grpc" for e in get(agent, "/v1/config/service-defaults?filter=Protocol%20%3D%3D%20grpc"))
    status, _, text = agent.request("GET", "/v1/config/proxy-defaults?filter=Name%20%3D%3D%20global")
    assert status == 400 and text == "filtering not supported for config entry kind=proxy-defaults"


def test_legacy_create_fills_empty_namespaces_from_the_request(agent):
    status, _, created = agent.request("POST", "/v1/connect/intentions?ns=team-q",
                                       {"SourceName": "ns-a", "DestinationName": "ns-b", "Action": "allow"})
    assert status == 200
    got = get(agent, f"/v1/connect/intentions/{created['ID']}")
    assert (got["SourceNS"], got["DestinationNS"]) == ("team-q", "team-q")
    status, _, created = agent.request("POST", "/v1/connect/intentions",
                                       {"SourceName": "ns-c", "DestinationName": "ns-d", "DestinationNS": "team-r",
                                        "Action": "allow"})
    got = get(agent, f"/v1/connect/intentions/{created['ID']}")
    assert (got["SourceNS"], got["DestinationNS"]) == ("default", "team-r")
