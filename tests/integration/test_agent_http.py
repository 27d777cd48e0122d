"""HTTP edge behaviour of a real agent: errors, methods, headers, bad input."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "text"),
    [
        ("PUT", "/v1/agent/service/register", b"{bad json", 400, "line 1 column 2"),
        ("PUT", "/v1/agent/service/register", {"Name": "x", "Bogus": 1}, 400, 'unknown field "Bogus"'),
        ("PUT", "/v1/agent/service/register", {"Port": 1}, 400, "Missing service name"),
        ("PUT", "/v1/agent/service/register", {"Name": "x", "Port": "abc"}, 400, "Port"),
        ("PUT", "/v1/agent/service/register", {"Name": "x", "Check": {"Interval": "10s"}}, 400, "check"),
        ("PUT", "/v1/agent/service/deregister/nope", None, 404, 'Unknown service ID "nope"'),
        ("PUT", "/v1/agent/check/pass/nope", None, 404, 'Unknown check ID "nope"'),
        ("GET", "/v1/health/service/web?index=abc", None, 400, "Invalid index"),
        ("GET", "/v1/health/service/web?wait=forever", None, 400, "Invalid wait time"),
        ("GET", "/v1/health/service/web?filter=Service.Nope%20%3D%3D%20x", None, 400, "Service.Nope"),
        ("GET", "/v1/health/service/web?passing=maybe", None, 400, "Invalid value for ?passing"),
        ("DELETE", "/v1/agent/service/register", None, 405, "method DELETE not allowed"),
        ("GET", "/v1/nope", None, 404, "Invalid URL path"),
        ("GET", "/v1/agent/service/nope", None, 404, "unknown service ID: nope"),
        ("PUT", "/v1/agent/service/maintenance/nope?enable=true", None, 404, "No service registered"),
        ("PUT", "/v1/agent/maintenance", None, 400, "Missing value for enable"),
    ],
    ids=lambda v: v if isinstance(v, str) and v.startswith("/") else None,
)
def test_bad_requests_get_a_clear_error_and_change_nothing(agent, method, path, body, status, text):
    _, before, _ = agent.request("GET", "/v1/catalog/services")
    code, _, resp = agent.request(method, path, body)
    assert code == status, resp
    assert text in str(resp)
    _, after, _ = agent.request("GET", "/v1/catalog/services")
    assert before["X-Consul-Index"] == after["X-Consul-Index"]


def test_oversized_body_is_rejected(agent):
    code, _, resp = agent.request("PUT", "/v1/agent/service/register", b'{"Name":"' + b"x" * (5 << 20) + b'"}')
    assert code == 400 and "too large" in resp


def test_blocking_headers_and_default_acl_policy(agent):
    code, headers, _ = agent.request("GET", "/v1/catalog/nodes")
    assert code == 200
    assert int(headers["X-Consul-Index"]) > 0
    assert headers["X-Consul-KnownLeader"] == "true"
    assert headers["X-Consul-LastContact"] == "0"
    assert headers["X-Consul-Default-ACL-Policy"] == "allow"


def test_seed_web_service_with_sidecar_registers_as_written(agent):
    seed = {"service": {"name": "web", "port": 8080, "connect": {"sidecar_service": {
        "port": 20000,
        "check": {"name": "Connect Sidecar Health", "http": "http://localhost:20000/health", "interval": "10s"},
        "proxy": {"upstreams": [{"destination_name": "api", "local_bind_port": 9090}]},
    }}}}
    code, _, resp = agent.request("PUT", "/v1/agent/service/register", seed["service"])
    assert code == 200, resp
    _, _, services = agent.request("GET", "/v1/agent/services")
    sidecar = services["web-sidecar-proxy"]
    assert sidecar["Kind"] == "connect-proxy" and sidecar["Port"] == 20000
    assert sidecar["Proxy"]["DestinationServiceName"] == "web"
    assert sidecar["Proxy"]["Upstreams"][0]["DestinationName"] == "api"
    assert sidecar["Proxy"]["Upstreams"][0]["LocalBindPort"] == 9090
    _, _, connect = agent.request("GET", "/v1/health/connect/web")
    assert [e["Service"]["ID"] for e in connect] == ["web-sidecar-proxy"]
    code, _, _ = agent.request("PUT", "/v1/agent/service/deregister/web")
    assert code == 200
    _, _, services = agent.request("GET", "/v1/agent/services")
    assert "web-sidecar-proxy" not in services


def test_agent_health_endpoints(agent):
    agent.request("PUT", "/v1/agent/service/register", {"Name": "hs", "ID": "hs-1", "Check": {"TTL": "30s"}})
    code, headers, doc = agent.request("GET", "/v1/agent/health/service/id/hs-1")
    assert code == 503 and doc["AggregatedStatus"] == "critical"
    agent.request("PUT", "/v1/agent/check/warn/service:hs-1")
    code, _, doc = agent.request("GET", "/v1/agent/health/service/name/hs?format=text")
    assert (code, doc) == (429, "warning")
    agent.request("PUT", "/v1/agent/check/update/service:hs-1", {"Status": "passing", "Output": "ok"})
    code, _, _ = agent.request("GET", "/v1/agent/health/service/id/hs-1")
    assert code == 200
    code, _, doc = agent.request("PUT", "/v1/agent/check/update/service:hs-1", {"Status": "bogus"})
    assert code == 400 and "Invalid check status" in doc


def test_service_maintenance_adds_and_removes_a_critical_check(agent):
    agent.request("PUT", "/v1/agent/service/register", {"Name": "mnt", "Port": 1})
    assert agent.request("PUT", "/v1/agent/service/maintenance/mnt?enable=true&reason=upgrading")[0] == 200
    _, _, checks = agent.request("GET", "/v1/agent/checks")
    maint = checks["_service_maintenance:mnt"]
    assert (maint["Status"], maint["Notes"], maint["Type"]) == ("critical", "upgrading", "maintenance")
    assert agent.request("PUT", "/v1/agent/service/maintenance/mnt?enable=false")[0] == 200
    _, _, checks = agent.request("GET", "/v1/agent/checks")
    assert "_service_maintenance:mnt" not in checks


def test_namespaces_keep_services_apart(agent):
    assert agent.request("PUT", "/v1/agent/service/register?ns=team-a", {"Name": "nsvc", "Port": 1})[0] == 200
    assert agent.request("PUT", "/v1/agent/service/register", {"Name": "nsvc", "Port": 2})[0] == 200
    _, _, in_a = agent.request("GET", "/v1/health/service/nsvc?ns=team-a")
    _, _, in_default = agent.request("GET", "/v1/health/service/nsvc")
    assert [e["Service"]["Port"] for e in in_a] == [1]
    assert in_a[0]["Service"]["Namespace"] == "team-a"
    assert [e["Service"]["Port"] for e in in_default] == [2]
    assert "Namespace" not in in_default[0]["Service"]
    code, _, body = agent.request("GET", "/v1/health/service/nsvc?ns=bad/ns")
    assert code == 400 and "ns" in body


def test_catalog_services_honours_filter_and_node_meta(agent):
    agent.request("PUT", "/v1/agent/service/register", {"Name": "fa", "Port": 1, "Tags": ["x"], "Meta": {"tier": "gold"}})
    agent.request("PUT", "/v1/agent/service/register", {"Name": "fb", "Port": 2, "Tags": ["y"]})
    _, _, out = agent.request("GET", "/v1/catalog/services?filter=ServiceMeta.tier%20%3D%3D%20gold")
    assert out == {"fa": ["x"]}
    _, _, out = agent.request("GET", "/v1/catalog/services?node-meta=consul-network-segment:")
    assert {"fa", "fb"} <= set(out)
    _, _, out = agent.request("GET", "/v1/catalog/services?node-meta=rack:nope")
    assert out == {}


def test_replace_existing_checks_over_http(agent):
    two = {"Name": "rc", "Checks": [{"CheckID": "a", "TTL": "30s"}, {"CheckID": "b", "TTL": "30s"}]}
    assert agent.request("PUT", "/v1/agent/service/register", two)[0] == 200
    one = {"Name": "rc", "Checks": [{"CheckID": "a", "TTL": "30s"}]}
    assert agent.request("PUT", "/v1/agent/service/register?replace-existing-checks=1", one)[0] == 200
    assert {"a", "b"} <= set(agent.request("GET", "/v1/agent/checks")[2])  # "=1" is false, as in Consul
    assert agent.request("PUT", "/v1/agent/service/register?replace-existing-checks", one)[0] == 200
    checks = agent.request("GET", "/v1/agent/checks")[2]
    assert "a" in checks and "b" not in checks


def test_check_register_with_service_and_node_level(agent):
    agent.request("PUT", "/v1/agent/service/register", {"Name": "cr", "Port": 1})
    code, _, body = agent.request("PUT", "/v1/agent/check/register",
                                  {"Name": "cr alive", "ServiceID": "cr", "TTL": "15s", "Status": "passing"})
    assert code == 200, body
    check = agent.request("GET", "/v1/agent/checks")[2]["cr alive"]
    assert (check["ServiceName"], check["Status"], check["Type"]) == ("cr", "passing", "ttl")
    code, _, body = agent.request("PUT", "/v1/agent/check/register", {"Name": "x", "ServiceID": "ghost", "TTL": "5s"})
    assert code == 404 and 'ServiceID "ghost" does not exist' in body
    code, _, body = agent.request("PUT", "/v1/agent/check/register", {"Name": "s", "Args": ["true"], "Interval": "5s"})
    assert code == 400 and "enable_script_checks" in body
    assert agent.request("PUT", "/v1/agent/check/deregister/cr%20alive")[0] == 200
    assert "cr alive" not in agent.request("GET", "/v1/agent/checks")[2]


def test_concurrent_writes_to_one_service_and_sidecar_ports_all_succeed(agent):
    import concurrent.futures

    def register(i):
        return agent.request("PUT", "/v1/agent/service/register", {"Name": "same", "Port": 1000 + i})[0]

    def sidecar(i):
        return agent.request("PUT", "/v1/agent/service/register",
                             {"Name": f"sc{i}", "Port": 1, "Connect": {"SidecarService": {}}})[0]

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        assert set(pool.map(register, range(64))) == {200}
        assert set(pool.map(sidecar, range(40))) == {200}
    services = agent.request("GET", "/v1/agent/services")[2]
    ports = [services[f"sc{i}-sidecar-proxy"]["Port"] for i in range(40)]
    assert len(set(ports)) == 40
    for i in range(40):
        agent.request("PUT", f"/v1/agent/service/deregister/sc{i}")


@pytest.mark.parametrize(
    "body",
    [
        {"Name": "scr", "Check": {"Args": ["touch", "/tmp/x"], "Interval": "10s"}},
        {"Name": "scr", "Connect": {"SidecarService": {"Check": {"Args": ["true"], "Interval": "10s"}}}},
        {"Name": "h2", "Check": {"H2PING": "127.0.0.1:1", "Interval": "10s"}},
    ],
    ids=["script", "sidecar-script", "h2ping"],
)
def test_checks_the_agent_will_not_run_are_refused_at_registration(agent, body):
    code, _, text = agent.request("PUT", "/v1/agent/service/register", body)
    assert code == 400 and ("Scripts are disabled" in text or "not supported" in text)
    assert body["Name"] not in agent.request("GET", "/v1/agent/services")[2]


def test_a_bad_filter_fails_before_a_blocking_query_waits(agent):
    import time as _time

    t0 = _time.monotonic()
    code, _, body = agent.request("GET", "/v1/health/service/web?index=100000&wait=20s&filter=Bogus%20%3D%3D%201")
    assert code == 400 and "Bogus" in body
    assert _time.monotonic() - t0 < 5


@pytest.mark.parametrize(
    ("path", "status", "text"),
    [
        ("/v1/catalog/services?partition=other", 400, "Partitions are a Consul Enterprise feature"),
        ("/v1/catalog/services?index=18446744073709551616", 400, "Invalid index"),
        ("/v1/agent/members?wan=1&segment=x", 400, "Cannot provide a segment with wan=true"),
    ],
    ids=["partition", "index-over-uint64", "wan-and-segment"],
)
def test_more_bad_query_parameters(agent, path, status, text):
    code, _, body = agent.request("GET", path)
    assert code == status and text in body


def test_wan_members_and_node_lookup_by_id(agent):
    (wan,) = agent.request("GET", "/v1/agent/members?wan=1")[2]
    assert (wan["Name"], wan["Port"]) == ("test-node.dc1", 8302)
    node_id = agent.request("GET", "/v1/agent/self")[2]["Config"]["NodeID"]
    node = agent.request("GET", f"/v1/catalog/node/{node_id}")[2]
    assert node["Node"]["Node"] == "test-node"


def test_agent_service_health_counts_node_maintenance(agent):
    agent.request("PUT", "/v1/agent/service/register", {"Name": "hm", "Port": 1})
    assert agent.request("GET", "/v1/agent/health/service/id/hm")[0] == 200
    agent.request("PUT", "/v1/agent/maintenance?enable=true")
    try:
        code, _, doc = agent.request("GET", "/v1/agent/health/service/id/hm")
        assert code == 503 and doc["AggregatedStatus"] == "critical"
    finally:
        agent.request("PUT", "/v1/agent/maintenance?enable=false")


def test_agent_services_list_the_requested_namespace(agent):
    agent.request("PUT", "/v1/agent/service/register?ns=ns-b", {"Name": "dupe", "Port": 2})
    agent.request("PUT", "/v1/agent/service/register", {"Name": "dupe", "Port": 1})
    assert agent.request("GET", "/v1/agent/services")[2]["dupe"]["Port"] == 1
    assert agent.request("GET", "/v1/agent/services?ns=ns-b")[2]["dupe"]["Port"] == 2
    assert "dupe" not in agent.request("GET", "/v1/agent/services?ns=ns-c")[2]


def test_shared_answers_never_mix_questions_or_indexes(agent):
    agent.request("PUT", "/v1/agent/service/register", {"Name": "sh", "ID": "sh-1", "Port": 1, "Check": {"TTL": "60s"}})
    _, h1, all_ = agent.request("GET", "/v1/health/service/sh")
    _, h2, passing = agent.request("GET", "/v1/health/service/sh?passing")
    assert h1["X-Consul-Index"] == h2["X-Consul-Index"]
    assert len(all_) == 1 and passing == []
    agent.request("PUT", "/v1/agent/check/pass/service:sh-1")
    _, h3, passing = agent.request("GET", "/v1/health/service/sh?passing")
    assert int(h3["X-Consul-Index"]) > int(h2["X-Consul-Index"]) and len(passing) == 1


def test_cached_reads_say_they_are_fresh(agent):
    code, headers, _ = agent.request("GET", "/v1/health/service/consul?cached")
    assert code == 200 and headers["X-Cache"] == "MISS" and headers["Age"] == "0"
    code, _, body = agent.request("GET", "/v1/health/service/consul?cached&consistent")
    assert code == 400 and "conflicting" in body


def test_a_blocking_query_whose_client_hangs_up_stops_waiting(agent):
    import socket as _socket
    import time as _time

    def settled_waiters():
        """The parked-watcher count once background watchers have settled (two equal reads)."""
        last = None
        while True:
            now = int(agent.request("GET", "/v1/agent/self")[2]["Stats"]["view"]["waiters"])
            if now == last:
                return now
            last = now
            _time.sleep(0.1)

    agent.request("PUT", "/v1/agent/service/register", {"Name": "hang", "Port": 1})
    index = agent.request("GET", "/v1/health/service/hang")[1]["X-Consul-Index"]
    before = settled_waiters()
    conn = _socket.create_connection(("127.0.0.1", agent.http_port))
    conn.sendall(f"GET /v1/health/service/hang?index={index}&wait=60s HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    deadline = _time.monotonic() + 10
    while settled_waiters() <= before:
        assert _time.monotonic() < deadline, "the query never parked"
    conn.close()
    while settled_waiters() != before:
        assert _time.monotonic() < deadline, "the hung-up query is still parked"
