"""``trellis intention ...`` and ``trellis config ...`` as a user types them, against one real agent.

The stories run in file order on the same agent: the seed guide's intention sections
(management, configuration, examples, enforcement), errors and exit codes, a dry
run, config entries (HCL snake_case, CAS, a bad file), and last the seed's rules
file through ``intention apply``, then a changed one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from trellis.testing.agent import AgentProcess, start_agent

pytestmark = pytest.mark.integration

# The seed guide's "Intention Rules" file, as written there.
SEED_RULES = textwrap.dedent('''\
    # Allow all traffic from web service
    service "web" {
      policy = "write"
    }

    # Deny traffic from admin service
    service "admin" {
      policy = "deny"
    }

    # Allow specific service communication
    service "web" {
      policy = "write"
      intentions = [
        "api",
        "database"
      ]
    }
''')

CHANGED_RULES = textwrap.dedent('''\
    service "web" {
      policy = "write"
      intentions = ["api", "cache"]
    }
    service "admin" {
      policy = "write"
    }
''')


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> AgentProcess:
    proc = start_agent(tmp_path_factory.mktemp("intentions-agent"))
    try:
        yield proc
    finally:
        rc = proc.stop()
    assert rc == 0, f"agent did not stop cleanly ({rc}):\n{proc.log()}"


def trellis(agent: AgentProcess, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """``trellis ARGS`` with the agent's address in CONSUL_HTTP_ADDR, as a Consul user's shell has it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSUL_", "TRELLIS_"))}
    env["CONSUL_HTTP_ADDR"] = agent.http_addr
    return subprocess.run([sys.executable, "-m", "trellis", *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=60)


def ok(r: subprocess.CompletedProcess, out: str | None = None) -> str:
    assert (r.returncode, r.stderr) == (0, ""), (r.returncode, r.stdout, r.stderr)
    if out is not None:
        assert r.stdout == out
    return r.stdout


def api(agent: AgentProcess, method: str, path: str, body=None):
    status, _, answer = agent.request(method, path, body)
    assert status == 200, answer
    return answer


def pairs(agent: AgentProcess) -> dict[str, str]:
    """Every intention on the agent as ``{"src => dst": action}``, namespaces spelled out."""
    return {f"{i['SourceNS']}/{i['SourceName']} => {i['DestinationNS']}/{i['DestinationName']}": i["Action"]
            for i in api(agent, "GET", "/v1/connect/intentions")}


def table_lines(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


# --------------------------------------------------------------------------- the seed's intention commands


def test_management_section(agent):
    ok(trellis(agent, "intention", "create", "web", "api"), "Created: web => api (allow)\n")
    ok(trellis(agent, "intention", "create", "web", "api"),
       "Unchanged: web => api (allow) (an identical intention exists)\n")
    ok(trellis(agent, "intention", "create", "-deny", "web", "admin"), "Created: web => admin (deny)\n")
    assert pairs(agent) == {"default/web => default/api": "allow", "default/web => default/admin": "deny"}

    header, *rows = table_lines(ok(trellis(agent, "intention", "list")))
    assert header == ["ID", "Source", "Action", "Destination", "Precedence"]
    assert sorted(row[1:] for row in rows) == [["web", "allow", "api", "9"], ["web", "deny", "admin", "9"]]

    ok(trellis(agent, "intention", "check", "web", "api"), "Allowed\n")
    ok(trellis(agent, "intention", "delete", "web", "api"), "Intention deleted.\n")
    r = trellis(agent, "intention", "get", "web", "api")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == 'Error reading the intention: Intention not found with source "web" and destination "api"\n'


def test_get_and_check_verbose_show_the_seeds_lines(agent):
    lines = table_lines(ok(trellis(agent, "intention", "get", "web", "admin")))
    assert lines[:3] == [["Source:", "web"], ["Destination:", "admin"], ["Action:", "deny"]]
    assert lines[3][0] == "ID:" and lines[4][:2] == ["Created", "At:"]

    r = trellis(agent, "intention", "check", "-verbose", "web", "admin")
    assert (r.returncode, r.stderr) == (1, "")
    assert table_lines(r.stdout)[:4] == [["Denied"], ["Source:", "web"], ["Destination:", "admin"],
                                         ["Action:", "deny"]]
    ok(trellis(agent, "intention", "check", "-verbose", "web", "nobody"),
       "Allowed\n(no intention matched: default policy)\n")


def test_configuration_section(agent):
    ok(trellis(agent, "intention", "create", "-description=Allow web to access API", "web", "api"),
       "Created: web => api (allow)\n")
    assert ["Description:", "Allow", "web", "to", "access", "API"] in table_lines(
        ok(trellis(agent, "intention", "get", "web", "api")))
    ok(trellis(agent, "intention", "create", "-source-namespace=frontend", "web", "api"),
       "Created: frontend/web => api (allow)\n")
    ok(trellis(agent, "intention", "create", "-destination-namespace=backend", "web", "api"),
       "Created: web => backend/api (allow)\n")
    assert {k: v for k, v in pairs(agent).items() if "api" in k} == {
        "default/web => default/api": "allow", "frontend/web => default/api": "allow",
        "default/web => backend/api": "allow"}
    ok(trellis(agent, "intention", "match", "api"), "web => api (allow)\nfrontend/web => api (allow)\n")

    # The sections of the guide are separate examples: leave only what the first one left.
    for src, dst in (("web", "api"), ("frontend/web", "api"), ("web", "backend/api")):
        ok(trellis(agent, "intention", "delete", src, dst), "Intention deleted.\n")
    assert pairs(agent) == {"default/web => default/admin": "deny"}


def test_examples_and_enforcement_sections(agent):
    ok(trellis(agent, "intention", "create", "web", "api"), "Created: web => api (allow)\n")
    ok(trellis(agent, "intention", "create", "api", "database"), "Created: api => database (allow)\n")
    ok(trellis(agent, "intention", "create", "-deny", "web", "admin"),
       "Unchanged: web => admin (deny) (an identical intention exists)\n")
    ok(trellis(agent, "intention", "create", "-source-namespace=frontend", "*", "*"),
       "Created: frontend/* => * (allow)\n")
    assert pairs(agent) == {"default/web => default/api": "allow", "default/api => default/database": "allow",
                            "default/web => default/admin": "deny", "frontend/* => default/*": "allow"}

    ok(trellis(agent, "intention", "check", "web", "api"), "Allowed\n")
    assert sorted(ok(trellis(agent, "intention", "match", "-source", "web")).splitlines()) == [
        "web => admin (deny)", "web => api (allow)"]
    ok(trellis(agent, "intention", "match", "database"), "api => database (allow)\nfrontend/* => * (allow)\n")
    listed = json.loads(ok(trellis(agent, "intention", "list", "-format=json")))
    assert len(listed) == 4 and all(i["ID"] for i in listed)


def test_errors_and_exit_codes(agent):
    r = trellis(agent, "intention", "create", "-deny", "web", "api")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == "Error creating intention: an intention web => api already exists (allow); use -replace\n"
    r = trellis(agent, "intention", "create", "-allow", "-deny", "web", "api")
    assert (r.returncode, r.stderr) == (1, "Only one of -allow or -deny may be specified.\n")
    r = trellis(agent, "intention", "check", "web")
    assert (r.returncode, r.stdout, r.stderr) == (2, "", "Error: command requires exactly two arguments: src and dst\n")
    r = trellis(agent, "intention", "check", "-bogus", "web", "api")
    assert r.returncode == 2
    r = trellis(agent, "intention", "create", "web*", "api")
    assert r.returncode == 1
    assert r.stderr.startswith('Error creating intention "web* => api (allow)": Unexpected response code: 400 (')
    assert "wildcard" in r.stderr
    assert pairs(agent)["default/web => default/api"] == "allow"


def test_replace_updates_in_place(agent):
    before = api(agent, "GET", "/v1/connect/intentions/exact?source=web&destination=api")
    ok(trellis(agent, "intention", "create", "-deny", "-replace", "-meta", "team=edge", "web", "api"),
       "Replaced: web => api (deny)\n")
    after = api(agent, "GET", "/v1/connect/intentions/exact?source=web&destination=api")
    assert (after["ID"], after["Action"], after["Meta"]) == (before["ID"], "deny", {"team": "edge"})
    r = trellis(agent, "intention", "check", "web", "api")
    assert (r.returncode, r.stdout) == (1, "Denied\n")
    ok(trellis(agent, "intention", "create", "-replace", "web", "api"), "Replaced: web => api (allow)\n")


def test_create_from_files(agent, tmp_path):
    one = write(tmp_path, "one.json", '{"SourceName": "cache", "DestinationName": "db", "Action": "deny"}')
    ok(trellis(agent, "intention", "create", "-file", one, "-",
               stdin='{"SourceName": "cache", "DestinationName": "api", "Action": "allow"}'),
       "Created: cache => db (deny)\nCreated: cache => api (allow)\n")
    l7 = write(tmp_path, "l7.json", json.dumps({"SourceName": "cache", "DestinationName": "web",
                                                "Permissions": [{"Action": "deny", "HTTP": {"PathPrefix": "/"}}]}))
    r = trellis(agent, "intention", "create", "-file", l7)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == (f'Error: cannot create L7 intention from file "{l7}" using this CLI; '
                        "use 'trellis config write' instead\n")
    for dst in ("db", "api"):
        ok(trellis(agent, "intention", "delete", "cache", dst), "Intention deleted.\n")


def test_dry_run_prints_decision_changes_and_writes_nothing(agent):
    for name in ("db", "web"):
        api(agent, "PUT", "/v1/agent/service/register", {"Name": name, "Port": 8080})
    before = pairs(agent)
    r = trellis(agent, "intention", "create", "-dry-run", "-deny", "db", "web")
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    assert table_lines(r.stdout) == [["SOURCE", "DESTINATION", "BEFORE", "AFTER"], ["db", "web", "allow", "deny"]]
    ok(trellis(agent, "intention", "create", "-dry-run", "db", "web"),
       "No decision between registered services would change.\n")
    assert pairs(agent) == before


# --------------------------------------------------------------------------- config entries


def test_config_write_read_list_delete_hcl_snake_case(agent, tmp_path):
    path = write(tmp_path, "web-defaults.hcl",
                 'kind = "service-defaults"\nname = "web"\nprotocol = "http"\nmutual_tls_mode = "strict"\n')
    ok(trellis(agent, "config", "write", path), "Config entry written: service-defaults/web\n")
    out = ok(trellis(agent, "config", "read", "-kind", "service-defaults", "-name", "web"))
    entry = json.loads(out)
    assert (entry["Kind"], entry["Name"], entry["Protocol"], entry["MutualTLSMode"]) == (
        "service-defaults", "web", "http", "strict")
    assert out.startswith('{\n    "Kind": "service-defaults",\n    "Name": "web",\n')
    ok(trellis(agent, "config", "write", "-", stdin='{"Kind": "service-defaults", "Name": "api", "Protocol": "grpc"}'),
       "Config entry written: service-defaults/api\n")
    assert sorted(ok(trellis(agent, "config", "list", "-kind", "service-defaults")).split()) == ["api", "web"]
    ok(trellis(agent, "config", "list", "-kind", "service-defaults", "-filter", 'Protocol == "grpc"'), "api\n")
    ok(trellis(agent, "config", "delete", "-kind", "service-defaults", "-name", "api"),
       "Config entry deleted: service-defaults/api\n")
    assert ok(trellis(agent, "config", "list", "-kind", "service-defaults")) == "web\n"


def test_config_cas(agent, tmp_path):
    index = api(agent, "GET", "/v1/config/service-defaults/web")["ModifyIndex"]
    path = write(tmp_path, "web.json", '{"Kind": "service-defaults", "Name": "web", "Protocol": "tcp"}')
    r = trellis(agent, "config", "write", "-cas", "-modify-index", str(index + 100), path)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "Config entry not updated: service-defaults/web\n")
    assert api(agent, "GET", "/v1/config/service-defaults/web")["Protocol"] == "http"
    ok(trellis(agent, "config", "write", "-cas", "-modify-index", str(index), path),
       "Config entry written: service-defaults/web\n")
    entry = api(agent, "GET", "/v1/config/service-defaults/web")
    assert entry["Protocol"] == "tcp"

    r = trellis(agent, "config", "delete", "-kind", "service-defaults", "-name", "web", "-cas", "-modify-index",
                str(index))
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "Config entry not deleted: service-defaults/web\n")
    ok(trellis(agent, "config", "delete", "-filename", path, "-cas", "-modify-index", str(entry["ModifyIndex"])),
       "Config entry deleted: service-defaults/web\n")
    status, _, body = agent.request("GET", "/v1/config/service-defaults/web")
    assert status == 404
    r = trellis(agent, "config", "read", "-kind", "service-defaults", "-name", "web")
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == ("Error reading config entry service-defaults/web: Unexpected response code: 404 "
                        '(Config entry not found for "service-defaults" / "web")\n')


def test_config_mesh_and_proxy_defaults_have_fixed_names(agent, tmp_path):
    mesh = write(tmp_path, "mesh.hcl", "Kind = \"mesh\"\nTransparentProxy {\n  MeshDestinationsOnly = true\n}\n")
    ok(trellis(agent, "config", "write", mesh), "Config entry written: mesh/mesh\n")
    ok(trellis(agent, "config", "list", "-kind", "mesh"), "mesh\n")
    proxy = write(tmp_path, "proxy.hcl", 'kind = "proxy-defaults"\nconfig {\n  protocol = "http"\n}\n')
    ok(trellis(agent, "config", "write", proxy), "Config entry written: proxy-defaults/global\n")
    ok(trellis(agent, "config", "list", "-kind", "proxy-defaults"), "global\n")
    ok(trellis(agent, "config", "delete", "-filename", mesh), "Config entry deleted: mesh/mesh\n")
    ok(trellis(agent, "config", "delete", "-filename", proxy), "Config entry deleted: proxy-defaults/global\n")


@pytest.mark.parametrize(("name", "text", "err"), [
    ("bad.hcl", 'kind = "service-defaults"\nname = "web"\nprotocol =\n',
     "Error parsing {path}: line 4, column 1: "),
    ("bad.json", '{"Kind": "service-defaults", "Name": "web",}',
     "Error parsing {path}: line 1, column 44: Expecting property name enclosed in double quotes\n"),
    ("unknown.json", '{"Kind": "service-defaults", "Name": "web", "Bogus": 1}',
     "Error writing config entry service-defaults/web: Unexpected response code: 400 ("),
], ids=["hcl-syntax", "json-syntax", "unknown-key"])
def test_config_bad_file_changes_nothing(agent, tmp_path, name, text, err):
    path = write(tmp_path, name, text)
    r = trellis(agent, "config", "write", path)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.startswith(err.format(path=path)), r.stderr
    assert api(agent, "GET", "/v1/config/service-defaults") == []


# --------------------------------------------------------------------------- intention apply


def test_apply_seed_rules_file(agent, tmp_path):
    # Before: web => api (allow), web => admin (deny), api => database (allow), frontend/* => * (allow).
    path = write(tmp_path, "rules.hcl", SEED_RULES)
    r = trellis(agent, "intention", "apply", path)
    assert ok(r) == (
        "+ admin => * (deny)\n"
        "+ web => * (deny)\n"
        "- web => admin (deny)\n"
        "+ web => database (allow)\n"
        f"Applied {path}: 3 created, 0 changed, 1 deleted, 1 unchanged.\n")
    assert pairs(agent) == {"default/web => default/api": "allow", "default/web => default/database": "allow",
                            "default/web => default/*": "deny", "default/admin => default/*": "deny",
                            "default/api => default/database": "allow", "frontend/* => default/*": "allow"}
    ok(trellis(agent, "intention", "apply", "-dry-run", path), f"No changes: 4 intentions already match {path}.\n")
    ok(trellis(agent, "intention", "check", "web", "database"), "Allowed\n")
    r = trellis(agent, "intention", "check", "web", "admin")
    assert (r.returncode, r.stdout) == (1, "Denied\n")


def test_apply_changed_rules_file(agent, tmp_path):
    path = write(tmp_path, "rules.hcl", CHANGED_RULES)
    before = pairs(agent)
    diff = ("~ admin => * (deny -> allow)\n"
            "+ web => cache (allow)\n"
            "- web => database (allow)\n")
    ok(trellis(agent, "intention", "apply", "-dry-run", path),
       diff + f"Dry run of {path}: 1 to create, 1 to change, 1 to delete, 2 unchanged; nothing was written.\n")
    assert pairs(agent) == before
    ok(trellis(agent, "intention", "apply", path),
       diff + f"Applied {path}: 1 created, 1 changed, 1 deleted, 2 unchanged.\n")
    after = pairs(agent)
    assert after["default/admin => default/*"] == "allow"
    assert after["default/web => default/cache"] == "allow"
    assert "default/web => default/database" not in after
    assert after["default/api => default/database"] == "allow"  # not the file's: untouched
    r = trellis(agent, "intention", "check", "web", "database")
    assert (r.returncode, r.stdout) == (1, "Denied\n")


def test_apply_bad_rules_file_writes_nothing(agent, tmp_path):
    path = write(tmp_path, "bad.hcl", 'service "web" {\n  policy = "read"\n}\n')
    before = pairs(agent)
    r = trellis(agent, "intention", "apply", path)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == f'Error in {path}: service "web": unknown policy "read" (expected "write" or "deny")\n'
    assert pairs(agent) == before
