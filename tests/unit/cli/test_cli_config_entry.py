"""``trellis config write|read|list|delete``: file decoding, names, requests sent, messages, exit codes."""

from __future__ import annotations

import io
import json
import textwrap

import pytest

from trellis.cli import config_entry
from trellis.cli.output import CommandError

WEB = {"Kind": "service-defaults", "Name": "web", "Protocol": "http", "CreateIndex": 3, "ModifyIndex": 3}
MESH = {"Kind": "mesh", "TransparentProxy": {"MeshDestinationsOnly": True}, "CreateIndex": 4, "ModifyIndex": 4}
GLOBAL = {"Kind": "proxy-defaults", "Name": "global", "Config": {"protocol": "http"}, "CreateIndex": 5,
          "ModifyIndex": 5}


def write_file(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


# --------------------------------------------------------------------------- pure parts

DECODE_CASES = [
    ("json-camel-case", "web.json", '{"Kind": "service-defaults", "Name": "web", "Protocol": "http"}',
     {"Kind": "service-defaults", "Name": "web", "Protocol": "http"}),
    ("hcl-snake-case-sent-as-written", "web.hcl",
     'kind = "service-defaults"\nname = "web"\nmutual_tls_mode = "strict"\nexpose { checks = true }\n',
     {"kind": "service-defaults", "name": "web", "mutual_tls_mode": "strict", "expose": {"checks": True}}),
    ("stdin-json-sniffed", "<stdin>", ' {"Kind": "mesh"}', {"Kind": "mesh"}),
    ("stdin-hcl", "<stdin>", 'Kind = "mesh"\n', {"Kind": "mesh"}),
]


@pytest.mark.parametrize(("filename", "text", "doc"), [c[1:] for c in DECODE_CASES], ids=[c[0] for c in DECODE_CASES])
def test_decode_entry_text(filename, text, doc):
    assert config_entry.decode_entry_text(text, filename=filename) == doc


DECODE_ERRORS = [
    ("json-trailing-comma", "web.json", '{"Kind": "service-defaults",\n "Name": "web",}',
     "Error parsing web.json: line 2, column 16: Expecting property name enclosed in double quotes"),
    ("hcl-missing-value", "web.hcl", 'kind = "service-defaults"\nname =\n', "Error parsing web.hcl: line 3, column 1: "),
    ("empty", "web.hcl", "# nothing\n", "Error parsing web.hcl: the file is empty; expected a config entry with a Kind"),
    ("no-kind", "web.json", '{"Name": "web"}',
     "Error parsing web.json: Payload does not contain a kind/Kind key at the top level"),
    ("kind-not-a-string", "web.json", '{"Kind": 1}', "Error parsing web.json: Kind value in payload is not a string"),
]


@pytest.mark.parametrize(("filename", "text", "message"), [c[1:] for c in DECODE_ERRORS],
                         ids=[c[0] for c in DECODE_ERRORS])
def test_decode_entry_text_errors_name_the_file(filename, text, message):
    with pytest.raises(CommandError) as exc:
        config_entry.decode_entry_text(text, filename=filename)
    assert str(exc.value).startswith(message)


REFS = [
    ("camel-case", {"Kind": "service-defaults", "Name": "web"}, ("service-defaults", "web")),
    ("snake-case", {"kind": "service-intentions", "name": "db"}, ("service-intentions", "db")),
    ("mesh-has-no-name", {"Kind": "mesh"}, ("mesh", "mesh")),
    ("proxy-defaults-is-global", {"kind": "proxy-defaults", "config": {}}, ("proxy-defaults", "global")),
    ("proxy-defaults-named", {"Kind": "proxy-defaults", "Name": "global"}, ("proxy-defaults", "global")),
    ("no-name-left-for-the-agent", {"Kind": "service-defaults"}, ("service-defaults", "")),
]


@pytest.mark.parametrize(("doc", "ref"), [c[1:] for c in REFS], ids=[c[0] for c in REFS])
def test_entry_ref(doc, ref):
    assert config_entry.entry_ref(doc) == ref


def test_format_names_one_per_line_mesh_named_mesh():
    assert config_entry.format_names([WEB, {**WEB, "Name": "api"}, MESH, GLOBAL]) == "web\napi\nmesh\nglobal"


DELETE_ARGS = [
    ("kind-and-name", ("", "service-defaults", "web", False, 0), ""),
    ("filename", ("web.hcl", "", "", False, 0), ""),
    ("cas", ("", "k", "n", True, 7), ""),
    ("nothing", ("", "", "", False, 0), "Must specify the -kind or -filename parameter"),
    ("filename-and-kind", ("f", "k", "", False, 0), "filename can't be used with kind or name"),
    ("filename-kind-and-name", ("f", "k", "n", False, 0), "filename can't be used with kind or name"),
    ("name-only", ("", "", "web", False, 0), "Must specify the -kind parameter"),
    ("kind-only", ("", "k", "", False, 0), "Must specify the -name parameter"),
    ("cas-without-index", ("", "k", "n", True, 0), "Must specify a -modify-index greater than 0 with -cas"),
    ("index-without-cas", ("", "k", "n", False, 3), "Cannot specify -modify-index without -cas"),
]


@pytest.mark.parametrize(("args", "problem"), [c[1:] for c in DELETE_ARGS], ids=[c[0] for c in DELETE_ARGS])
def test_delete_args_problem(args, problem):
    assert config_entry.delete_args_problem(*args) == problem


# --------------------------------------------------------------------------- write


def test_write_hcl_sends_the_file_as_written(agent, cli, tmp_path):
    agent.on("PUT", "/v1/config", True)
    path = write_file(tmp_path, "web.hcl", 'kind = "service-defaults"\nname = "web"\nprotocol = "http"\n')
    r = cli("config", "write", path)
    assert (r.code, r.out, r.err) == (0, "Config entry written: service-defaults/web\n", "")
    assert agent.paths() == ["PUT /v1/config"]
    assert agent.body() == {"kind": "service-defaults", "name": "web", "protocol": "http"}
    assert agent.query() == []


@pytest.mark.parametrize(("text", "ref"), [
    ('{"Kind": "mesh", "TransparentProxy": {"MeshDestinationsOnly": true}}', "mesh/mesh"),
    ('{"Kind": "proxy-defaults", "Config": {"protocol": "http"}}', "proxy-defaults/global"),
], ids=["mesh", "proxy-defaults"])
def test_write_names_unnamed_entries(agent, cli, tmp_path, text, ref):
    agent.on("PUT", "/v1/config", True)
    r = cli("config", "write", write_file(tmp_path, "e.json", text))
    assert (r.code, r.out, r.err) == (0, f"Config entry written: {ref}\n", "")


def test_write_from_stdin(agent, cli, monkeypatch):
    agent.on("PUT", "/v1/config", True)
    monkeypatch.setattr("sys.stdin", io.StringIO('Kind = "service-defaults"\nName = "x"\n'))
    r = cli("config", "write", "-")
    assert (r.code, r.out) == (0, "Config entry written: service-defaults/x\n")


@pytest.mark.parametrize(("argv", "query"), [(("-cas", "-modify-index", "7"), [("cas", "7")]),
                                             (("-cas",), [("cas", "0")])], ids=["index", "create-only"])
def test_write_cas_lost(agent, cli, tmp_path, argv, query):
    agent.on("PUT", "/v1/config", False)
    path = write_file(tmp_path, "web.json", json.dumps({"Kind": "service-defaults", "Name": "web"}))
    r = cli("config", "write", *argv, path)
    assert (r.code, r.out, r.err) == (1, "", "Config entry not updated: service-defaults/web\n")
    assert agent.query() == query


def test_write_api_error_names_the_entry(agent, cli, tmp_path):
    agent.on("PUT", "/v1/config", 'Request decoding failed: invalid config key "Bogus"', 400)
    path = write_file(tmp_path, "web.json", '{"Kind": "service-defaults", "Name": "web", "Bogus": 1}')
    r = cli("config", "write", path)
    assert (r.code, r.out) == (1, "")
    assert r.err == ("Error writing config entry service-defaults/web: Unexpected response code: 400 "
                     '(Request decoding failed: invalid config key "Bogus")\n')


@pytest.mark.parametrize(("argv", "err"), [
    ((), "Must provide exactly one positional argument to specify the config entry to write\n"),
    (("a", "b"), "Must provide exactly one positional argument to specify the config entry to write\n"),
    (("-modify-index", "3", "x.hcl"), "Cannot specify -modify-index without -cas\n"),
    (("/no/such/file.hcl",), "Error reading /no/such/file.hcl: no such file or directory\n"),
], ids=["no-file", "two-files", "index-without-cas", "missing-file"])
def test_write_argument_errors_send_nothing(agent, cli, argv, err):
    r = cli("config", "write", *argv)
    assert (r.code, r.out, r.err) == (1, "", err)
    assert agent.requests == []


def test_write_bad_file_sends_nothing(agent, cli, tmp_path):
    path = write_file(tmp_path, "bad.hcl", 'kind = "service-defaults"\nname = "web"\nprotocol = \n')
    r = cli("config", "write", path)
    assert (r.code, r.out) == (1, "")
    assert r.err.startswith(f"Error parsing {path}: line 4, column 1: ")
    assert agent.requests == []


def test_write_negative_modify_index_is_a_flag_error(agent, cli):
    r = cli("config", "write", "-cas", "-modify-index=-1", "x.hcl")
    assert r.code == 1
    assert r.err.startswith('invalid value "-1" for flag -modify-index: parse error\nUsage: trellis config write')


# --------------------------------------------------------------------------- read and list


def test_read_prints_four_space_json(agent, cli):
    agent.on("GET", "/v1/config/service-defaults/web", WEB)
    r = cli("config", "read", "-kind", "service-defaults", "-name", "web")
    assert (r.code, r.err) == (0, "")
    assert r.out == json.dumps(WEB, indent=4) + "\n"


@pytest.mark.parametrize(("argv", "err"), [
    (("-name", "web"), "Must specify the -kind parameter\n"),
    (("-kind", "service-defaults"), "Must specify the -name parameter\n"),
], ids=["no-kind", "no-name"])
def test_read_requires_kind_and_name(agent, cli, argv, err):
    r = cli("config", "read", *argv)
    assert (r.code, r.out, r.err) == (1, "", err)
    assert agent.requests == []


def test_read_not_found(agent, cli):
    agent.on("GET", "/v1/config/service-defaults/nope", 'Config entry not found for "service-defaults" / "nope"', 404)
    r = cli("config", "read", "-kind", "service-defaults", "-name", "nope")
    assert (r.code, r.out) == (1, "")
    assert r.err == ("Error reading config entry service-defaults/nope: Unexpected response code: 404 "
                     '(Config entry not found for "service-defaults" / "nope")\n')


@pytest.mark.parametrize(("kind", "entries", "out"), [
    ("service-defaults", [WEB, {**WEB, "Name": "api"}], "web\napi\n"),
    ("mesh", [MESH], "mesh\n"),
    ("proxy-defaults", [GLOBAL], "global\n"),
    ("service-intentions", [], ""),
], ids=["names", "mesh", "proxy-defaults", "none"])
def test_list(agent, cli, kind, entries, out):
    agent.on("GET", f"/v1/config/{kind}", entries)
    r = cli("config", "list", "-kind", kind)
    assert (r.code, r.out, r.err) == (0, out, "")


def test_list_filter_is_sent(agent, cli):
    agent.on("GET", "/v1/config/service-defaults", [WEB])
    assert cli("config", "list", "-kind", "service-defaults", "-filter", "Name == web").code == 0
    assert agent.query() == [("filter", "Name == web")]


def test_list_errors(agent, cli):
    r = cli("config", "list")
    assert (r.code, r.err) == (1, "Must specify the -kind parameter\n")
    agent.on("GET", "/v1/config/nope", "Request decoding failed: invalid config entry kind: nope", 400)
    r = cli("config", "list", "-kind", "nope")
    assert r.err == ('Error listing config entries for kind "nope": Unexpected response code: 400 '
                     "(Request decoding failed: invalid config entry kind: nope)\n")


# --------------------------------------------------------------------------- delete


def test_delete_by_kind_and_name(agent, cli):
    agent.on("DELETE", "/v1/config/service-defaults/web", {})
    r = cli("config", "delete", "-kind", "service-defaults", "-name", "web")
    assert (r.code, r.out, r.err) == (0, "Config entry deleted: service-defaults/web\n", "")
    assert agent.query() == []


def test_delete_by_filename(agent, cli, tmp_path):
    agent.on("DELETE", "/v1/config/mesh/mesh", {})
    r = cli("config", "delete", "-filename", write_file(tmp_path, "mesh.hcl", 'Kind = "mesh"\n'))
    assert (r.code, r.out, r.err) == (0, "Config entry deleted: mesh/mesh\n", "")


@pytest.mark.parametrize(("answer", "code", "out", "err"), [
    (True, 0, "Config entry deleted: service-defaults/web\n", ""),
    (False, 1, "", "Config entry not deleted: service-defaults/web\n"),
], ids=["cas-won", "cas-lost"])
def test_delete_cas(agent, cli, answer, code, out, err):
    agent.on("DELETE", "/v1/config/service-defaults/web", answer)
    r = cli("config", "delete", "-kind", "service-defaults", "-name", "web", "-cas", "-modify-index", "9")
    assert (r.code, r.out, r.err) == (code, out, err)
    assert agent.query() == [("cas", "9")]


def test_delete_argument_errors_send_nothing(agent, cli):
    r = cli("config", "delete", "-kind", "service-defaults", "-name", "web", "-cas")
    assert (r.code, r.out, r.err) == (1, "", "Must specify a -modify-index greater than 0 with -cas\n")
    assert agent.requests == []
