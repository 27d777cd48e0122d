"""Agent lifecycle with real processes: durability across kill -9, SIGHUP reload, SIGTERM."""

from __future__ import annotations

import json
import signal
import time

import pytest

from trellis.testing.agent import start_agent

pytestmark = pytest.mark.integration


def _until(predicate, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_registrations_survive_kill_9_right_after_the_200(tmp_path):
    data = str(tmp_path / "data")
    agent = start_agent(tmp_path, "-server", dev=False, data_dir=data)
    try:
        for i in range(20):
            code, _, _ = agent.request("PUT", "/v1/agent/service/register", {"Name": f"s{i}", "Port": 1000 + i})
            assert code == 200
    finally:
        agent.kill9()
    again = start_agent(tmp_path, "-server", dev=False, data_dir=data)
    try:
        _, _, services = again.request("GET", "/v1/agent/services")
        assert {f"s{i}" for i in range(20)} <= set(services)
        _, _, self_ = again.request("GET", "/v1/agent/self")
        assert self_["Config"]["NodeID"]  # the node keeps its ID across restarts
    finally:
        assert again.stop() == 0


def test_node_id_is_kept_across_restarts(tmp_path):
    data = str(tmp_path / "data")
    first = start_agent(tmp_path, dev=True, data_dir=data)
    node_id = first.request("GET", "/v1/agent/self")[2]["Config"]["NodeID"]
    first.stop()
    second = start_agent(tmp_path, dev=True, data_dir=data)
    try:
        assert second.request("GET", "/v1/agent/self")[2]["Config"]["NodeID"] == node_id
    finally:
        second.stop()


def test_config_file_services_register_at_start_and_reload_on_sighup(tmp_path):
    cfg = tmp_path / "services.hcl"
    cfg.write_text('service {\n  name = "web"\n  port = 8080\n  tags = ["v1"]\n}\n')
    agent = start_agent(tmp_path, "-config-file", str(cfg))
    try:
        _, _, services = agent.request("GET", "/v1/agent/services")
        assert services["web"]["Tags"] == ["v1"]
        cfg.write_text('services {\n  name = "api"\n  port = 9090\n}\n')
        agent.proc.send_signal(signal.SIGHUP)
        services = _until(lambda: (s := agent.request("GET", "/v1/agent/services")[2]) and "api" in s and s,
                          what="api registered after SIGHUP")
        assert "web" not in services  # dropped from the files, so deregistered
    finally:
        assert agent.stop() == 0


def test_a_bad_file_on_sighup_keeps_the_running_config(tmp_path):
    cfg = tmp_path / "services.json"
    cfg.write_text(json.dumps({"service": {"name": "web", "port": 8080}}))
    agent = start_agent(tmp_path, "-config-file", str(cfg))
    try:
        cfg.write_text('{"service": {"name": "web", "port": }')
        agent.proc.send_signal(signal.SIGHUP)
        _until(lambda: "reload failed" in agent.log(), what="reload failure logged")
        assert "web" in agent.request("GET", "/v1/agent/services")[2]
        assert agent.proc.poll() is None
    finally:
        agent.stop()


def test_bad_config_file_fails_start_with_line_and_column(tmp_path):
    cfg = tmp_path / "bad.json"
    cfg.write_text('{\n  "service": {"name": "web",, }\n}\n')
    with pytest.raises(RuntimeError) as exc:
        start_agent(tmp_path, "-config-file", str(cfg), timeout=20)
    assert "bad.json" in str(exc.value) and "line 2" in str(exc.value)


def test_unknown_key_in_config_fails_start_naming_it(tmp_path):
    cfg = tmp_path / "bad.hcl"
    cfg.write_text('service {\n  name = "web"\n  prot = 80\n}\n')
    with pytest.raises(RuntimeError) as exc:
        start_agent(tmp_path, "-config-file", str(cfg), timeout=20)
    assert "prot" in str(exc.value)


def test_sigterm_stops_gracefully(tmp_path):
    agent = start_agent(tmp_path)
    agent.proc.send_signal(signal.SIGTERM)
    assert agent.proc.wait(15) == 0
    assert "shutting down" in agent.log()


def test_http_check_run_by_the_agent_turns_passing(tmp_path, agent_http_target):
    agent = start_agent(tmp_path)
    try:
        code, _, body = agent.request("PUT", "/v1/agent/service/register", {
            "Name": "app", "Port": agent_http_target,
            "Check": {"HTTP": f"http://127.0.0.1:{agent_http_target}/health", "Interval": "1s"},
        })
        assert code == 200, body

        def passing():
            _, _, nodes = agent.request("GET", "/v1/health/service/app?passing")
            return nodes

        (node,) = _until(passing, what="HTTP check passing")
        check = [c for c in node["Checks"] if c["CheckID"] == "service:app"][0]
        assert check["Type"] == "http" and "200 OK" in check["Output"]
    finally:
        agent.stop()


@pytest.fixture()
def agent_http_target():
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - stdlib name
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"healthy")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_flags_set_datacenter_domain_node_meta_and_json_logs(tmp_path):
    import dns.message
    import dns.query

    agent = start_agent(tmp_path, "-datacenter", "east", "-domain", "mesh", "-node-meta", "rack:r1",
                        "-log-json", "-log-level=debug")
    try:
        self_ = agent.request("GET", "/v1/agent/self")[2]
        assert self_["Config"]["Datacenter"] == "east" and self_["Meta"] == {"rack": "r1"}
        assert agent.request("GET", "/v1/catalog/datacenters")[2] == ["east"]
        reply = dns.query.udp(dns.message.make_query("consul.service.east.mesh.", "A"), "127.0.0.1",
                              port=agent.dns_port, timeout=5)
        assert [rr.address for rr in reply.answer[0]] == ["127.0.0.1"]
        code, _, body = agent.request("GET", "/v1/catalog/nodes?dc=west")
        assert code == 500 and body == "No path to datacenter"
    finally:
        agent.stop()
    lines = [json.loads(line) for line in agent.log().splitlines() if line.startswith("{")]
    assert any(rec["@message"].startswith("trellis agent running") for rec in lines)


def test_without_dev_a_data_dir_is_required(tmp_path):
    with pytest.raises(RuntimeError) as exc:
        start_agent(tmp_path, dev=False, timeout=20)
    assert "data_dir" in str(exc.value) or "data-dir" in str(exc.value)


def test_acl_enabled_is_refused_until_acls_exist(tmp_path):
    with pytest.raises(RuntimeError) as exc:
        start_agent(tmp_path, "-hcl", 'acl { enabled = true default_policy = "deny" }', timeout=20)
    assert "ACL enforcement is not implemented yet" in str(exc.value)


def test_settings_not_acted_on_yet_are_warned_about(tmp_path):
    agent = start_agent(tmp_path, "-hcl", 'recursors = ["127.0.0.53"]')
    agent.stop()
    assert "recursors is set but not supported yet" in agent.log()


@pytest.mark.parametrize(
    ("args", "text"),
    [(("-bind", "notanip"), "not an IP address"), (("-node-id", "notauuid"), "not a UUID")],
    ids=["bind", "node-id"],
)
def test_bad_identity_flags_stop_the_start(tmp_path, args, text):
    with pytest.raises(RuntimeError) as exc:
        start_agent(tmp_path, *args, timeout=20)
    assert text in str(exc.value)


def test_unspecified_bind_is_never_advertised(tmp_path):
    from trellis.agent.agent import advertise_address
    from trellis.config.agent_config import AgentConfig

    assert advertise_address(AgentConfig(bind_addr="0.0.0.0")) not in ("0.0.0.0", "")
    assert advertise_address(AgentConfig(bind_addr="0.0.0.0", advertise_addr="10.1.2.3")) == "10.1.2.3"


def test_anti_entropy_restores_the_agents_own_node(tmp_path):
    agent = start_agent(tmp_path)
    try:
        assert agent.request("PUT", "/v1/catalog/register", {
            "Node": "test-node", "Address": "9.9.9.9",
            "Service": {"Service": "stray", "Port": 1},
        })[0] == 200

        def restored():
            node = agent.request("GET", "/v1/catalog/node/test-node")[2]
            return node["Node"]["Address"] == "127.0.0.1" and "stray" not in node["Services"]

        _until(restored, what="own node restored")
        assert "consul" in agent.request("GET", "/v1/catalog/services")[2]
    finally:
        agent.stop()


def test_a_renamed_node_replaces_its_old_name(tmp_path):
    data = str(tmp_path / "data")
    first = start_agent(tmp_path, data_dir=data, node="old-name")
    first.stop()
    second = start_agent(tmp_path, data_dir=data, node="new-name")
    try:
        names = [n["Node"] for n in second.request("GET", "/v1/catalog/nodes")[2]]
        assert names == ["new-name"]
    finally:
        second.stop()


def test_catalog_deregister_cannot_remove_the_agents_own_node(tmp_path):
    agent = start_agent(tmp_path)
    try:
        agent.request("PUT", "/v1/agent/service/register", {"Name": "mine", "Port": 1})
        code, _, body = agent.request("PUT", "/v1/catalog/deregister", {"Node": "test-node"})
        assert code == 400 and "own node" in body
        agent.request("PUT", "/v1/catalog/deregister", {"Node": "test-node", "ServiceID": "mine"})
        assert "mine" in agent.request("GET", "/v1/agent/services")[2]  # agent-owned: kept
    finally:
        agent.stop()
