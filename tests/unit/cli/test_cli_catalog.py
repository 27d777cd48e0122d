"""``trellis catalog datacenters|nodes|services`` against canned API JSON."""

from __future__ import annotations

import json

import pytest

NODES = [
    {"ID": "40e4a748-2192-161a-0510-9bf59fe950b5", "Node": "server-1", "Address": "10.0.0.1", "Datacenter": "dc1",
     "TaggedAddresses": {"lan": "10.0.0.1", "wan": "198.18.0.1"},
     "Meta": {"consul-network-segment": "", "consul-version": "1.22.0"}, "CreateIndex": 5, "ModifyIndex": 7},
    {"ID": "", "Node": "web-node", "Address": "10.0.0.22", "Datacenter": "dc1",
     "TaggedAddresses": None, "Meta": None, "CreateIndex": 9, "ModifyIndex": 9},
]

SERVICE_ENTRIES = [
    {"ID": "40e4a748-2192-161a-0510-9bf59fe950b5", "Node": "server-1", "Address": "10.0.0.1", "Datacenter": "dc1",
     "TaggedAddresses": {"lan": "10.0.0.1"}, "NodeMeta": {"rack": "a"}, "ServiceID": "web-1", "ServiceName": "web",
     "ServiceTags": ["v1"], "ServicePort": 8080, "CreateIndex": 11, "ModifyIndex": 11},
]


# --------------------------------------------------------------------------- datacenters


def test_datacenters_one_per_line_in_api_order(agent, cli):
    agent.on("GET", "/v1/catalog/datacenters", ["dc1", "dc3", "dc2"])
    r = cli("catalog", "datacenters")
    assert (r.code, r.out, r.err) == (0, "dc1\ndc3\ndc2\n", "")


def test_datacenters_json(agent, cli):
    agent.on("GET", "/v1/catalog/datacenters", ["dc1"])
    r = cli("catalog", "datacenters", "-format=json")
    assert json.loads(r.out) == ["dc1"]


def test_datacenters_rejects_arguments(agent, cli):
    r = cli("catalog", "datacenters", "extra")
    assert (r.code, r.err) == (1, "Too many arguments (expected 0, got 1)\n")
    assert agent.requests == []


def test_datacenters_api_error(agent, cli):
    agent.on("GET", "/v1/catalog/datacenters", "No cluster leader", status=500)
    r = cli("catalog", "datacenters")
    assert (r.code, r.out) == (1, "")
    assert r.err == "Error listing datacenters: Unexpected response code: 500 (No cluster leader)\n"


# --------------------------------------------------------------------------- nodes


def test_nodes_standard_table_shortens_ids(agent, cli):
    agent.on("GET", "/v1/catalog/nodes", NODES)
    r = cli("catalog", "nodes")
    assert r.code == 0
    assert r.out == (
        "Node      ID        Address    DC\n"
        "server-1  40e4a748  10.0.0.1   dc1\n"
        "web-node            10.0.0.22  dc1\n"
    )


def test_nodes_detailed_table_has_full_id_and_pairs(agent, cli):
    agent.on("GET", "/v1/catalog/nodes", NODES)
    r = cli("catalog", "nodes", "-detailed")
    tagged = "lan=10.0.0.1, wan=198.18.0.1"
    w = len(tagged) + 2
    assert r.out == (
        "Node      ID                                    Address    DC   " + "TaggedAddresses".ljust(w) + "Meta\n"
        "server-1  40e4a748-2192-161a-0510-9bf59fe950b5  10.0.0.1   dc1  " + tagged.ljust(w)
        + "consul-network-segment=, consul-version=1.22.0\n"
        "web-node                                        10.0.0.22  dc1  " + "".ljust(w) + "\n"
    )


def test_nodes_query_carries_filter_near_node_meta_and_dc(agent, cli):
    agent.on("GET", "/v1/catalog/nodes", NODES)
    cli("catalog", "nodes", "-filter", 'Meta.rack == "a"', "-near=_agent", "-node-meta", "rack=a",
        "-datacenter", "dc1")
    assert sorted(agent.query()) == sorted([
        ("node-meta", "rack:a"), ("filter", 'Meta.rack == "a"'), ("near", "_agent"), ("dc", "dc1"),
    ])


def test_nodes_filter_from_file(agent, cli, tmp_path):
    path = tmp_path / "filter.txt"
    path.write_text('Node == "web-node"')
    agent.on("GET", "/v1/catalog/nodes", [])
    cli("catalog", "nodes", f"-filter=@{path}")
    assert agent.query() == [("filter", 'Node == "web-node"')]


def test_nodes_filter_file_missing(agent, cli, tmp_path):
    r = cli("catalog", "nodes", f"-filter=@{tmp_path / 'nope'}")
    assert r.code == 1
    assert r.err.startswith("Could not process filter argument: ")


def test_nodes_for_a_service_use_the_service_endpoint(agent, cli):
    agent.on("GET", "/v1/catalog/service/web", SERVICE_ENTRIES)
    r = cli("catalog", "nodes", "-service", "web", "-detailed")
    assert agent.paths() == ["GET /v1/catalog/service/web"]
    assert r.out.splitlines()[1].split() == [
        "server-1", "40e4a748-2192-161a-0510-9bf59fe950b5", "10.0.0.1", "dc1", "lan=10.0.0.1", "rack=a",
    ]


def test_nodes_none_matched_is_a_note_on_stderr_and_exit_0(agent, cli):
    agent.on("GET", "/v1/catalog/nodes", [])
    r = cli("catalog", "nodes")
    assert (r.code, r.out, r.err) == (0, "", "No nodes match the given query - try expanding your search.\n")


def test_nodes_json_is_the_api_objects(agent, cli):
    agent.on("GET", "/v1/catalog/nodes", NODES)
    r = cli("catalog", "nodes", "--format", "json")
    assert json.loads(r.out) == NODES


def test_nodes_json_empty_is_an_empty_list_on_stdout(agent, cli):
    agent.on("GET", "/v1/catalog/nodes", [])
    r = cli("catalog", "nodes", "-format=json")
    assert (r.code, r.out, r.err) == (0, "[]\n", "")


def test_nodes_for_service_api_error(agent, cli):
    agent.on("GET", "/v1/catalog/service/web", "Invalid filter", status=400)
    r = cli("catalog", "nodes", "-service=web")
    assert r.err == "Error listing nodes for service: Unexpected response code: 400 (Invalid filter)\n"


# --------------------------------------------------------------------------- services

CATALOG_SERVICES = {"web": ["v2", "primary", "v1"], "consul": [], "db-sidecar-proxy": [], "db": ["pg"]}


def test_services_sorted_one_per_line(agent, cli):
    agent.on("GET", "/v1/catalog/services", CATALOG_SERVICES)
    r = cli("catalog", "services")
    assert (r.code, r.out) == (0, "consul\ndb\ndb-sidecar-proxy\nweb\n")


def test_services_with_tags_use_tabwriter_padding(agent, cli):
    agent.on("GET", "/v1/catalog/services", CATALOG_SERVICES)
    r = cli("catalog", "services", "-tags")
    pad = len("db-sidecar-proxy") + 6
    assert r.out == (
        "consul".ljust(pad) + "\n"
        + "db".ljust(pad) + "pg\n"
        + "db-sidecar-proxy".ljust(pad) + "\n"
        + "web".ljust(pad) + "primary,v1,v2\n"
    )


def test_services_with_tags_last_line_trimmed(agent, cli):
    agent.on("GET", "/v1/catalog/services", {"a": ["x"], "b": []})
    r = cli("catalog", "services", "-tags")
    assert r.out == "a      x\nb\n"


def test_services_on_a_node_use_node_services(agent, cli):
    agent.on("GET", "/v1/catalog/node-services/web-node", {
        "Node": {"Node": "web-node"},
        "Services": [
            {"ID": "web-1", "Service": "web", "Tags": ["v1"]},
            {"ID": "web-2", "Service": "web", "Tags": ["v2", "v1"]},
            {"ID": "db", "Service": "db", "Tags": []},
        ],
    })
    r = cli("catalog", "services", "-node", "web-node", "-tags")
    assert agent.paths() == ["GET /v1/catalog/node-services/web-node"]
    assert r.out == "db       \nweb      v1,v2\n"


def test_services_on_unknown_node_is_a_note(agent, cli):
    agent.on("GET", "/v1/catalog/node-services/ghost", {"Node": None, "Services": None})
    r = cli("catalog", "services", "-node=ghost")
    assert (r.code, r.out) == (0, "")
    assert r.err == "No services match the given query - try expanding your search.\n"


def test_services_node_meta_and_namespace_in_query(agent, cli):
    agent.on("GET", "/v1/catalog/services", {"web": []})
    cli("catalog", "services", "-node-meta", "env=prod", "-namespace", "team-a")
    assert agent.query() == [("node-meta", "env:prod"), ("ns", "team-a")]


def test_services_json_has_sorted_tags(agent, cli):
    agent.on("GET", "/v1/catalog/services", CATALOG_SERVICES)
    r = cli("catalog", "services", "-format=json")
    assert json.loads(r.out) == {"consul": [], "db": ["pg"], "db-sidecar-proxy": [], "web": ["primary", "v1", "v2"]}


@pytest.mark.parametrize("argv", [["-filter=x"], ["-tags", "extra"]], ids=["no-filter-flag", "positional"])
def test_services_rejects_what_consul_rejects(agent, cli, argv):
    r = cli("catalog", "services", *argv)
    assert r.code == 1
    assert agent.requests == []


def test_services_connection_refused_message(monkeypatch, cli):
    from trellis.cli import http

    def refuse(config, req):
        raise http.ConnectError(req.method, config.base_url + req.target,
                                "dial tcp 127.0.0.1:8500: connect: connection refused")

    monkeypatch.setattr(http, "send", refuse)
    r = cli("catalog", "services")
    assert r.err == ('Error listing services: Get "http://127.0.0.1:8500/v1/catalog/services": '
                     "dial tcp 127.0.0.1:8500: connect: connection refused\n")
