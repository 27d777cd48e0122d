"""``trellis members`` against canned /v1/agent/members JSON."""

from __future__ import annotations

import json

import pytest

from trellis.cli import members


def member(name: str, addr: str, role: str, status: int = 1, **tags: str) -> dict:
    base = {"build": "1.22.0:4fd3fa5c", "dc": "dc1", "role": role, "vsn": "2", "vsn_min": "2", "vsn_max": "3",
            "segment": ""}
    if role == "consul":
        base["port"] = "8300"
    return {"Name": name, "Addr": addr, "Port": 8301, "Tags": {**base, **tags}, "Status": status,
            "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2, "DelegateMin": 2, "DelegateMax": 5,
            "DelegateCur": 4}


MEMBERS = [
    member("web-1", "10.0.0.21", "node"),
    member("server-b", "10.0.0.2", "consul"),
    member("db-1", "10.0.0.31", "node", status=4),
    member("server-a", "10.0.0.1", "consul"),
]


def test_standard_table_servers_first_then_by_name(agent, cli):
    agent.on("GET", "/v1/agent/members", MEMBERS)
    r = cli("members")
    assert r.code == 0
    assert r.out == (
        "Node      Address         Status  Type    Build   Protocol  DC   Partition  Segment\n"
        "server-a  10.0.0.1:8301   alive   server  1.22.0  2         dc1  default    <all>\n"
        "server-b  10.0.0.2:8301   alive   server  1.22.0  2         dc1  default    <all>\n"
        "db-1      10.0.0.31:8301  failed  client  1.22.0  2         dc1  default    <default>\n"
        "web-1     10.0.0.21:8301  alive   client  1.22.0  2         dc1  default    <default>\n"
    )
    assert agent.paths() == ["GET /v1/agent/members"]
    assert agent.query() == []


def test_detailed_table_lists_all_tags_sorted(agent, cli):
    agent.on("GET", "/v1/agent/members", [member("server-a", "10.0.0.1", "consul")])
    r = cli("members", "-detailed")
    assert r.out == (
        "Node      Address        Status  Tags\n"
        "server-a  10.0.0.1:8301  alive   build=1.22.0:4fd3fa5c,dc=dc1,partition=default,port=8300,role=consul,"
        "segment=<all>,vsn=2,vsn_max=3,vsn_min=2\n"
    )


@pytest.mark.parametrize(("pattern", "names"), [
    ("alive", ["server-a", "server-b", "web-1"]),
    ("fail", ["db-1"]),
    ("^(left|failed)$", ["db-1"]),
    (".*", ["server-a", "server-b", "db-1", "web-1"]),
], ids=["alive", "substring-search", "anchored", "default"])
def test_status_regex_filters_rows(agent, cli, pattern, names):
    agent.on("GET", "/v1/agent/members", MEMBERS)
    r = cli("members", "-status", pattern)
    assert [line.split()[0] for line in r.out.splitlines()[1:]] == names


def test_no_member_after_filtering_exits_2_silently(agent, cli):
    agent.on("GET", "/v1/agent/members", MEMBERS)
    r = cli("members", "-status=left")
    assert (r.code, r.out, r.err) == (2, "", "")


def test_empty_member_list_exits_2(agent, cli):
    agent.on("GET", "/v1/agent/members", [])
    assert cli("members").code == 2


def test_bad_status_regex(agent, cli):
    r = cli("members", "-status", "(")
    assert r.code == 1
    assert r.err.startswith("Failed to compile status regexp: ")
    assert agent.requests == []


def test_wan_segment_filter_and_partition_reach_the_query(agent, cli):
    agent.on("GET", "/v1/agent/members", MEMBERS)
    cli("members", "-wan", "-segment=alpha", "-filter", 'Tags.role == "consul"', "-partition", "default")
    assert agent.query() == [("wan", "1"), ("segment", "alpha"), ("filter", 'Tags.role == "consul"'),
                             ("partition", "default")]


def test_json_is_the_api_objects_in_display_order(agent, cli):
    agent.on("GET", "/v1/agent/members", MEMBERS)
    r = cli("members", "-format=json", "-status=alive")
    got = json.loads(r.out)
    assert [m["Name"] for m in got] == ["server-a", "server-b", "web-1"]
    assert got[0] == member("server-a", "10.0.0.1", "consul")  # no display tags added


def test_api_error(agent, cli):
    agent.on("GET", "/v1/agent/members", "Permission denied", status=403)
    r = cli("members")
    assert (r.code, r.err) == (1, "Error retrieving members: Unexpected response code: 403 (Permission denied)\n")


@pytest.mark.parametrize(("addr", "port", "text"), [
    ("10.0.0.1", 8301, "10.0.0.1:8301"),
    ("::1", 8301, "[::1]:8301"),
    ("fe80::0001", 1, "[fe80::1]:1"),
    ("", 8301, ":8301"),
    ("not-an-ip", 8301, ":8301"),
], ids=["ipv4", "ipv6", "ipv6-normalised", "empty", "hostname"])
def test_address_is_go_tcpaddr_text(addr, port, text):
    assert members.format_address(addr, port) == text


def test_unknown_role_prints_unknown_type_and_blanks():
    m = members.annotate(member("odd", "10.0.0.9", "other"), all_segments=True)
    assert members.format_standard([m]).splitlines()[1].split() == ["odd", "10.0.0.9:8301", "alive", "unknown"]


def test_missing_build_tag_shows_legacy_marker():
    m = member("old", "10.0.0.9", "node")
    del m["Tags"]["build"]
    line = members.format_standard([members.annotate(m, all_segments=True)]).splitlines()[1]
    assert "< 0.3" in line


def test_annotate_keeps_a_named_segment_and_blanks_other_partitions():
    seg = members.annotate(member("c", "10.0.0.5", "node", segment="alpha"), all_segments=True)
    assert seg["Tags"]["segment"] == "alpha"
    other = members.annotate(member("p", "10.0.0.6", "node", partition="team", segment="x"), all_segments=True)
    assert (other["Tags"]["partition"], other["Tags"]["segment"]) == ("team", "")


def test_servers_show_their_segment_when_one_segment_is_asked_for():
    m = members.annotate(member("s", "10.0.0.1", "consul"), all_segments=False)
    assert m["Tags"]["segment"] == "<default>"


def test_sort_puts_other_partitions_after_default():
    ms = [members.annotate(member(n, "10.0.0.1", "node", partition=p), all_segments=True)
          for n, p in [("a", "team"), ("b", ""), ("c", "default")]]
    assert [m["Name"] for m in members.sort_members(ms)] == ["b", "c", "a"]
