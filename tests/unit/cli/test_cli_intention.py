"""``trellis intention ...``: arguments, requests sent, output formats, exit codes."""

from __future__ import annotations

import datetime as dt
import textwrap

import pytest

from trellis.cli import intention, intention_output
from trellis.connect.intentions.model import Action
from trellis.connect.intentions.rules import Change, Op, Plan, Rule
from trellis.errors import InvalidInput

LIST = "/v1/connect/intentions"
EXACT = "/v1/connect/intentions/exact"
MATCH = "/v1/connect/intentions/match"
CHECK = "/v1/connect/intentions/check"
ID = "2148a2e6-76af-4b9f-ae3f-fc32edc53cd2"

LEGACY = {"CreatedAt": "2025-11-26T08:20:52.523442Z", "UpdatedAt": "2025-11-26T08:20:52.523442Z", "ID": ID,
          "SourceNS": "default", "SourceName": "web", "DestinationNS": "default", "DestinationName": "admin",
          "SourceType": "consul", "Action": "deny", "Precedence": 9, "CreateIndex": 6, "ModifyIndex": 6}
FROM_ENTRY = {"SourceNS": "default", "SourceName": "web", "DestinationNS": "default", "DestinationName": "*",
              "SourceType": "consul", "Action": "allow", "Precedence": 6, "CreateIndex": 7, "ModifyIndex": 7}
L7 = {"SourceNS": "default", "SourceName": "web", "DestinationNS": "default", "DestinationName": "api",
      "SourceType": "consul", "Precedence": 9, "CreateIndex": 8, "ModifyIndex": 8,
      "Permissions": [{"Action": "allow", "HTTP": {"PathPrefix": "/v1"}},
                      {"Action": "deny", "HTTP": {"Methods": ["DELETE"]}}]}
FRONTEND_ALL = {"ID": "346dd0ee-d072-4639-abf0-ffe16564ead5", "SourceNS": "frontend", "SourceName": "*",
                "DestinationNS": "default", "DestinationName": "*", "Action": "allow", "Precedence": 5}


def args_of(*argv: str):
    return intention.CREATE_FLAGS.parse(list(argv))


# --------------------------------------------------------------------------- arguments (pure)

TARGETS = [
    ("bare-name", "web", "", ("default", "web")),
    ("namespaced", "team/web", "", ("team", "web")),
    ("wildcard", "*", "", ("default", "*")),
    ("flag-namespace-for-bare-name", "*", "frontend", ("frontend", "*")),
    ("flag-agrees-with-text", "frontend/web", "frontend", ("frontend", "web")),
    ("partition-default", "default/team/web", "", ("team", "web")),
    ("empty-namespace-segment-is-default", "/web", "", ("default", "web")),
]


@pytest.mark.parametrize(("text", "flag", "ref"), [c[1:] for c in TARGETS], ids=[c[0] for c in TARGETS])
def test_parse_target(text, flag, ref):
    assert intention.parse_target(text, flag, "default", side="source") == ref


def test_parse_target_uses_the_request_namespace_for_bare_names():
    assert intention.parse_target("web", "", "team", side="source") == ("team", "web")


TARGET_ERRORS = [
    ("too-many-slashes", "a/b/c/d", "", "Invalid intention source: input can contain at most two '/'"),
    ("other-partition", "p/ns/web", "",
     'Invalid intention source: partition "p" is not supported: trellis has only the "default" partition'),
    ("empty-name", "team/", "", "Invalid intention source: service name is required"),
    ("flag-disagrees", "backend/web", "frontend",
     'Invalid intention source: "backend/web" is in namespace "backend" but -source-namespace is "frontend"'),
]


@pytest.mark.parametrize(("text", "flag", "message"), [c[1:] for c in TARGET_ERRORS], ids=[c[0] for c in TARGET_ERRORS])
def test_parse_target_errors(text, flag, message):
    with pytest.raises(InvalidInput) as exc:
        intention.parse_target(text, flag, "default", side="source")
    assert str(exc.value) == message


BODIES = [
    ("default-allow", ("web", "api"),
     {"SourceNS": "default", "SourceName": "web", "DestinationNS": "default", "DestinationName": "api",
      "SourceType": "consul", "Action": "allow"}),
    ("deny-with-description-and-meta", ("-deny", "-description=Keep out", "-meta", "b=2", "-meta", "a=1", "web", "admin"),
     {"SourceNS": "default", "SourceName": "web", "DestinationNS": "default", "DestinationName": "admin",
      "SourceType": "consul", "Action": "deny", "Description": "Keep out", "Meta": {"b": "2", "a": "1"}}),
    ("seed-source-namespace-wildcards", ("-source-namespace=frontend", "*", "*"),
     {"SourceNS": "frontend", "SourceName": "*", "DestinationNS": "default", "DestinationName": "*",
      "SourceType": "consul", "Action": "allow"}),
    ("seed-destination-namespace", ("-destination-namespace=backend", "web", "api"),
     {"SourceNS": "default", "SourceName": "web", "DestinationNS": "backend", "DestinationName": "api",
      "SourceType": "consul", "Action": "allow"}),
    ("explicit-allow", ("-allow", "team/a", "b"),
     {"SourceNS": "team", "SourceName": "a", "DestinationNS": "default", "DestinationName": "b",
      "SourceType": "consul", "Action": "allow"}),
]


@pytest.mark.parametrize(("argv", "body"), [c[1:] for c in BODIES], ids=[c[0] for c in BODIES])
def test_body_from_args(argv, body):
    assert intention.body_from_args(args_of(*argv), "default") == body


@pytest.mark.parametrize("argv", [(), ("web",), ("a", "b", "c")], ids=["none", "one", "three"])
def test_body_from_args_needs_two(argv):
    with pytest.raises(InvalidInput, match="Must specify two arguments: source and destination"):
        intention.body_from_args(args_of(*argv), "default")


FILE_BODIES = [
    ("api-json-read-only-fields-dropped", LEGACY,
     {"SourceNS": "default", "SourceName": "web", "DestinationNS": "default", "DestinationName": "admin",
      "SourceType": "consul", "Action": "deny"}),
    ("keys-in-any-case-namespaces-filled", {"sourcename": "web", "DESTINATIONNAME": "db", "action": "allow"},
     {"SourceName": "web", "DestinationName": "db", "Action": "allow", "SourceNS": "default",
      "DestinationNS": "default", "SourceType": "consul"}),
    ("empty-permissions-is-l4", {"SourceName": "a", "DestinationName": "b", "Action": "deny", "Permissions": []},
     {"SourceName": "a", "DestinationName": "b", "Action": "deny", "SourceNS": "default", "DestinationNS": "default",
      "SourceType": "consul"}),
]


@pytest.mark.parametrize(("doc", "body"), [c[1:] for c in FILE_BODIES], ids=[c[0] for c in FILE_BODIES])
def test_body_from_file(doc, body):
    assert intention.body_from_file(doc, "x.json", "default") == body


@pytest.mark.parametrize(("doc", "message"), [
    (L7, "cannot create L7 intention from file \"x.json\" using this CLI; use 'trellis config write' instead"),
    ({"SourceName": "a", "Bogus": 1}, 'unknown key "Bogus" in intention file "x.json"'),
], ids=["l7-refused", "unknown-key"])
def test_body_from_file_errors(doc, message):
    with pytest.raises(InvalidInput) as exc:
        intention.body_from_file(doc, "x.json", "default")
    assert str(exc.value) == message


SAME = [
    ("identical", {"Action": "deny"}, {"Action": "deny"}, True),
    ("action-case-ignored", {"Action": "DENY"}, {"Action": "deny"}, True),
    ("other-action", {"Action": "allow"}, {"Action": "deny"}, False),
    ("description-not-given-is-kept", {"Action": "deny", "Description": "x"}, {"Action": "deny"}, True),
    ("description-differs", {"Action": "deny", "Description": "x"}, {"Action": "deny", "Description": "y"}, False),
    ("meta-not-given-is-kept", {"Action": "deny", "Meta": {"a": "1"}}, {"Action": "deny"}, True),
    ("meta-differs", {"Action": "deny", "Meta": {"a": "1"}}, {"Action": "deny", "Meta": {"a": "2"}}, False),
    ("meta-same", {"Action": "deny", "Meta": {"a": "1"}}, {"Action": "deny", "Meta": {"a": "1"}}, True),
    ("empty-meta-is-none", {"Action": "deny", "Meta": {}}, {"Action": "deny"}, True),
    ("l7-never-same", L7, {"Action": "allow"}, False),
]


@pytest.mark.parametrize(("existing", "body", "same"), [c[1:] for c in SAME], ids=[c[0] for c in SAME])
def test_same_intention(existing, body, same):
    assert intention.same_intention(existing, body) is same


# --------------------------------------------------------------------------- formatting (pure)

STRINGS = [
    ("l4", LEGACY, "web => admin (deny)"),
    ("wildcards-other-namespace", FRONTEND_ALL, "frontend/* => * (allow)"),
    ("l7-plural", L7, "web => api (2 permissions)"),
    ("l7-singular", {**L7, "Permissions": L7["Permissions"][:1]}, "web => api (1 permission)"),
    ("missing-namespaces-are-default", {"SourceName": "a", "DestinationName": "b", "Action": "allow"},
     "a => b (allow)"),
]


@pytest.mark.parametrize(("ixn", "text"), [c[1:] for c in STRINGS], ids=[c[0] for c in STRINGS])
def test_format_intention(ixn, text):
    assert intention_output.format_intention(ixn) == text


CREATED = [
    ("utc", "2025-11-26T08:20:52.523442Z", dt.timezone.utc, "Wednesday, 26-Nov-25 08:20:52 UTC"),
    ("nanoseconds", "2025-11-26T08:20:52.523442123Z", dt.timezone.utc, "Wednesday, 26-Nov-25 08:20:52 UTC"),
    ("other-zone", "2025-11-26T23:30:00Z", dt.timezone(dt.timedelta(hours=2), "EET"),
     "Thursday, 27-Nov-25 01:30:00 EET"),
    ("offset-in-text", "2025-01-02T03:04:05+01:00", dt.timezone.utc, "Thursday, 02-Jan-25 02:04:05 UTC"),
    ("config-entry-zero-time", "", dt.timezone.utc, "Monday, 01-Jan-01 00:00:00 UTC"),
    ("unparsable-shown-as-is", "yesterday", dt.timezone.utc, "yesterday"),
]


@pytest.mark.parametrize(("text", "tz", "shown"), [c[1:] for c in CREATED], ids=[c[0] for c in CREATED])
def test_format_created_at_is_rfc850(text, tz, shown):
    assert intention_output.format_created_at(text, tz) == shown


GETS = [
    ("seed-web-admin-legacy", LEGACY,
     "Source:       web\n"
     "Destination:  admin\n"
     "Action:       deny\n"
     f"ID:           {ID}\n"
     "Created At:   Wednesday, 26-Nov-25 08:20:52 UTC"),
    ("config-entry-with-meta-sorted", {**FROM_ENTRY, "Description": "all of web", "Meta": {"z": "1", "a": "2"}},
     "Source:       web\n"
     "Destination:  *\n"
     "Action:       allow\n"
     "Description:  all of web\n"
     "Meta[a]:      2\n"
     "Meta[z]:      1\n"
     "Created At:   Monday, 01-Jan-01 00:00:00 UTC"),
    ("l7-permissions-json", {**L7, "Permissions": L7["Permissions"][:1]},
     "Source:       web\n"
     "Destination:  api\n"
     "Created At:   Monday, 01-Jan-01 00:00:00 UTC\n"
     "Permissions:\n"
     '[\n  {\n    "Action": "allow",\n    "HTTP": {\n      "PathPrefix": "/v1"\n    }\n  }\n]'),
]


@pytest.mark.parametrize(("ixn", "text"), [c[1:] for c in GETS], ids=[c[0] for c in GETS])
def test_format_get(ixn, text):
    assert intention_output.format_get(ixn, dt.timezone.utc) == text


def test_format_list_blank_id_for_config_entries_and_action_for_l7():
    assert intention_output.format_list([LEGACY, FROM_ENTRY, L7, FRONTEND_ALL]) == textwrap.dedent(f"""\
        ID                                    Source      Action  Destination  Precedence
        {ID}  web         deny    admin        9
                                              web         allow   *            6
                                              web                 api          9
        346dd0ee-d072-4639-abf0-ffe16564ead5  frontend/*  allow   *            5""")


DRY_RUNS = [
    ("changes-table", {"DryRun": True, "Changes": [
        {"Source": "default/web", "Destination": "default/db", "Before": "allow", "After": "deny", "Reason": "x"},
        {"Source": "frontend/api", "Destination": "default/db", "Before": "deny", "After": "allow", "Reason": "y"}]},
     "SOURCE        DESTINATION  BEFORE  AFTER\n"
     "web           db           allow   deny\n"
     "frontend/api  db           deny    allow"),
    ("no-changes", {"DryRun": True, "Changes": []}, "No decision between registered services would change."),
    ("null-changes", {"DryRun": True, "Changes": None}, "No decision between registered services would change."),
]


@pytest.mark.parametrize(("answer", "text"), [c[1:] for c in DRY_RUNS], ids=[c[0] for c in DRY_RUNS])
def test_format_dry_run(answer, text):
    assert intention_output.format_dry_run(answer) == text


def ref(text: str) -> tuple[str, str]:
    ns, _, name = text.rpartition("/")
    return (ns or "default", name)


CHANGES = [
    ("create", Change(Op.CREATE, ref("web"), ref("api"), after="allow"), "+ web => api (allow)"),
    ("change", Change(Op.CHANGE, ref("web"), ref("*"), before="allow", after="deny"), "~ web => * (allow -> deny)"),
    ("delete", Change(Op.DELETE, ref("web"), ref("old"), before="allow"), "- web => old (allow)"),
    ("namespaced-l7", Change(Op.CHANGE, ref("team/web"), ref("api"), before="2 permissions", after="allow"),
     "~ team/web => api (2 permissions -> allow)"),
]


@pytest.mark.parametrize(("change", "text"), [c[1:] for c in CHANGES], ids=[c[0] for c in CHANGES])
def test_format_change(change, text):
    assert intention_output.format_change(change) == text


PLAN = Plan((Change(Op.CREATE, ref("a"), ref("b"), after="allow"), Change(Op.CREATE, ref("a"), ref("c"), after="allow"),
             Change(Op.DELETE, ref("a"), ref("d"), before="deny")), 3)


def test_format_summary():
    assert intention_output.format_summary(PLAN, "rules.hcl", dry_run=False) == (
        "Applied rules.hcl: 2 created, 0 changed, 1 deleted, 3 unchanged.")
    assert intention_output.format_summary(PLAN, "rules.hcl", dry_run=True) == (
        "Dry run of rules.hcl: 2 to create, 0 to change, 1 to delete, 3 unchanged; nothing was written.")


@pytest.mark.parametrize(("n", "text"), [(1, "No changes: 1 intention already matches r.hcl."),
                                         (4, "No changes: 4 intentions already match r.hcl.")], ids=["one", "many"])
def test_format_no_changes(n, text):
    assert intention_output.format_no_changes(Plan((), n), "r.hcl") == text


DECIDERS = [
    ("exact-first", [LEGACY, FRONTEND_ALL], ("default", "web"), LEGACY),
    ("skips-other-sources", [{**LEGACY, "SourceName": "api"}, FROM_ENTRY], ("default", "web"), FROM_ENTRY),
    ("wildcard-namespace-and-name", [FRONTEND_ALL, {**FRONTEND_ALL, "SourceNS": "*"}], ("team", "x"),
     {**FRONTEND_ALL, "SourceNS": "*"}),
    ("none", [LEGACY], ("default", "db"), None),
]


@pytest.mark.parametrize(("matches", "source", "decider"), [c[1:] for c in DECIDERS], ids=[c[0] for c in DECIDERS])
def test_select_decider(matches, source, decider):
    assert intention.select_decider(matches, source) == decider


@pytest.mark.parametrize(("ixn", "rule"), [
    (LEGACY, Rule(("default", "web"), ("default", "admin"), Action.DENY)),
    (L7, Rule(("default", "web"), ("default", "api"), None, 2)),
    (FRONTEND_ALL, Rule(("frontend", "*"), ("default", "*"), Action.ALLOW)),
], ids=["l4", "l7", "namespaced"])
def test_rule_from_api(ixn, rule):
    assert intention.rule_from_api(ixn) == rule


# --------------------------------------------------------------------------- create


def test_create_posts_a_legacy_intention_with_namespaces(agent, cli):
    agent.on("GET", EXACT, "Intention not found", 404)
    agent.on("POST", LIST, {"ID": ID})
    r = cli("intention", "create", "-source-namespace=frontend", "*", "*")
    assert (r.code, r.out, r.err) == (0, "Created: frontend/* => * (allow)\n", "")
    assert agent.paths() == [f"GET {EXACT}", f"POST {LIST}"]
    assert agent.query(0) == [("source", "frontend/*"), ("destination", "default/*")]
    assert agent.body() == {"SourceNS": "frontend", "SourceName": "*", "DestinationNS": "default",
                            "DestinationName": "*", "SourceType": "consul", "Action": "allow"}


def test_create_fills_bare_names_with_the_request_namespace(agent, cli):
    agent.on("GET", EXACT, "Intention not found", 404)
    agent.on("POST", LIST, {"ID": ID})
    r = cli("intention", "create", "-namespace", "team", "web", "other/api")
    assert (r.code, r.out) == (0, "Created: team/web => other/api (allow)\n")
    assert agent.query(0) == [("source", "team/web"), ("destination", "other/api"), ("ns", "team")]
    assert (agent.body()["SourceNS"], agent.body()["DestinationNS"]) == ("team", "other")


def test_create_identical_is_a_no_op(agent, cli):
    agent.on("GET", EXACT, {**LEGACY, "DestinationName": "api", "Action": "allow"})
    r = cli("intention", "create", "web", "api")
    assert (r.code, r.out, r.err) == (0, "Unchanged: web => api (allow) (an identical intention exists)\n", "")
    assert agent.paths() == [f"GET {EXACT}"]


def test_create_conflicting_fails_and_names_the_existing(agent, cli):
    agent.on("GET", EXACT, LEGACY)
    r = cli("intention", "create", "web", "admin")
    assert (r.code, r.out) == (1, "")
    assert r.err == "Error creating intention: an intention web => admin already exists (deny); use -replace\n"
    assert agent.paths() == [f"GET {EXACT}"]


def test_replace_updates_a_legacy_intention_by_id(agent, cli):
    agent.on("GET", EXACT, LEGACY)
    agent.on("PUT", f"{LIST}/{ID}", {"ID": ID})
    r = cli("intention", "create", "-replace", "-meta", "k=v", "web", "admin")
    assert (r.code, r.out, r.err) == (0, "Replaced: web => admin (allow)\n", "")
    assert agent.paths() == [f"GET {EXACT}", f"PUT {LIST}/{ID}"]
    assert agent.body()["Action"] == "allow" and agent.body()["Meta"] == {"k": "v"}


def test_replace_updates_a_config_entry_intention_through_exact(agent, cli):
    agent.on("GET", EXACT, FROM_ENTRY)
    agent.on("PUT", EXACT, True)
    r = cli("intention", "create", "-deny", "-replace", "-description", "no", "web", "*")
    assert (r.code, r.out, r.err) == (0, "Replaced: web => * (deny)\n", "")
    assert agent.paths() == [f"GET {EXACT}", f"PUT {EXACT}"]
    assert agent.query() == [("source", "default/web"), ("destination", "default/*")]
    assert agent.body() == {"Action": "deny", "SourceType": "consul", "Description": "no"}


def test_create_api_error_names_the_intention(agent, cli):
    agent.on("GET", EXACT, "Intention not found", 404)
    agent.on("POST", LIST, "Action must be set to 'allow' or 'deny'", 400)
    r = cli("intention", "create", "web", "api")
    assert (r.code, r.out) == (1, "")
    assert r.err == ('Error creating intention "web => api (allow)": Unexpected response code: 400 '
                     "(Action must be set to 'allow' or 'deny')\n")


@pytest.mark.parametrize(("argv", "err"), [
    (("-allow", "-deny", "a", "b"), "Only one of -allow or -deny may be specified.\n"),
    (("web",), "Error: Must specify two arguments: source and destination\n"),
    (("a/b/c/d", "x"), "Error: Invalid intention source: input can contain at most two '/'\n"),
    (("-file",), "Error: Must specify at least one file with -file\n"),
    (("-file", "-", "-"), 'Error: "-" (stdin) may be given only once\n'),
], ids=["allow-and-deny", "one-arg", "bad-source", "file-without-files", "stdin-twice"])
def test_create_argument_errors_send_nothing(agent, cli, argv, err):
    r = cli("intention", "create", *argv)
    assert (r.code, r.out, r.err) == (1, "", err)
    assert agent.requests == []


def test_create_from_files(agent, cli, tmp_path):
    one = tmp_path / "one.json"
    one.write_text('{"SourceName": "web", "DestinationName": "db", "Action": "deny"}')
    l7 = tmp_path / "l7.json"
    l7.write_text('{"SourceName": "web", "DestinationName": "api", "Permissions": [{"Action": "deny"}]}')
    agent.on("GET", EXACT, "Intention not found", 404)
    agent.on("POST", LIST, {"ID": ID})
    r = cli("intention", "create", "-file", str(one))
    assert (r.code, r.out, r.err) == (0, "Created: web => db (deny)\n", "")
    r = cli("intention", "create", "-file", str(one), str(l7))
    assert (r.code, r.out) == (1, "")
    assert r.err == (f'Error: cannot create L7 intention from file "{l7}" using this CLI; '
                     "use 'trellis config write' instead\n")
    assert agent.paths() == [f"GET {EXACT}", f"POST {LIST}"]  # nothing of the second run


def test_create_from_a_bad_file_names_line_and_column(agent, cli, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"SourceName": "web",\n}')
    r = cli("intention", "create", "-file", str(bad))
    assert (r.code, r.out) == (1, "")
    assert r.err.startswith(f"Error parsing {bad}: line 2, column 1: ")
    assert agent.requests == []


def test_dry_run_posts_with_dry_run_and_prints_changes(agent, cli):
    agent.on("GET", EXACT, "Intention not found", 404)
    agent.on("POST", LIST, {"DryRun": True, "Changes": [
        {"Source": "default/web", "Destination": "default/db", "Before": "allow", "After": "deny", "Reason": "r"}]})
    r = cli("intention", "create", "-dry-run", "-deny", "web", "db")
    assert (r.code, r.err) == (0, "")
    assert r.out == "SOURCE  DESTINATION  BEFORE  AFTER\nweb     db           allow   deny\n"
    assert agent.query() == [("dry-run", "")]


def test_dry_run_replace_asks_exact(agent, cli):
    agent.on("GET", EXACT, LEGACY)
    agent.on("PUT", EXACT, {"DryRun": True, "Changes": []})
    r = cli("intention", "create", "-dry-run", "-replace", "web", "admin")
    assert (r.code, r.out, r.err) == (0, "No decision between registered services would change.\n", "")
    assert agent.paths() == [f"GET {EXACT}", f"PUT {EXACT}"]
    assert agent.query() == [("source", "default/web"), ("destination", "default/admin"), ("dry-run", "")]


def test_dry_run_against_an_agent_without_it_is_an_error(agent, cli):
    agent.on("GET", EXACT, "Intention not found", 404)
    agent.on("POST", LIST, {"ID": ID})
    r = cli("intention", "create", "-dry-run", "web", "db")
    assert (r.code, r.out) == (1, "")
    assert r.err == (f'Error: the agent does not support -dry-run: it answered {{"ID": "{ID}"}}, '
                     "so it may have written the intention\n")


# --------------------------------------------------------------------------- delete, get, list


@pytest.mark.parametrize(("argv", "path", "query"), [
    ((ID,), f"DELETE {LIST}/{ID}", []),
    (("web", "api"), f"DELETE {EXACT}", [("source", "web"), ("destination", "api")]),
], ids=["by-id", "by-pair"])
def test_delete(agent, cli, argv, path, query):
    agent.on("DELETE", f"{LIST}/{ID}", True)
    agent.on("DELETE", EXACT, True)
    r = cli("intention", "delete", *argv)
    assert (r.code, r.out, r.err) == (0, "Intention deleted.\n", "")
    assert agent.paths() == [path]
    assert agent.query() == query


def test_delete_errors(agent, cli):
    r = cli("intention", "delete")
    assert (r.code, r.err) == (1, "command requires exactly 1 or 2 arguments\n")
    agent.on("DELETE", f"{LIST}/{ID}", f"Cannot delete non-existent intention: '{ID}'", 400)
    r = cli("intention", "delete", ID)
    assert (r.code, r.out) == (1, "")
    assert r.err == ("Error deleting the intention: Unexpected response code: 400 "
                     f"(Cannot delete non-existent intention: '{ID}')\n")


def test_get_by_pair(agent, cli):
    agent.on("GET", EXACT, LEGACY)
    r = cli("intention", "get", "web", "admin")
    assert r.code == 0
    assert r.out.splitlines()[:3] == ["Source:       web", "Destination:  admin", "Action:       deny"]
    assert agent.query() == [("source", "web"), ("destination", "admin")]


@pytest.mark.parametrize(("argv", "err"), [
    (("a", "b"), 'Error reading the intention: Intention not found with source "a" and destination "b"\n'),
    ((ID,), f'Error reading the intention: Intention not found with ID "{ID}"\n'),
    ((), "command requires exactly 1 or 2 arguments\n"),
], ids=["pair", "id", "no-args"])
def test_get_not_found(agent, cli, argv, err):
    agent.on("GET", EXACT, "Intention not found", 404)
    agent.on("GET", f"{LIST}/{ID}", "Intention not found", 404)
    r = cli("intention", "get", *argv)
    assert (r.code, r.out, r.err) == (1, "", err)


def test_list_empty_exits_2(agent, cli):
    agent.on("GET", LIST, [])
    r = cli("intention", "list")
    assert (r.code, r.out, r.err) == (2, "", "There are no intentions.\n")


def test_list_json(agent, cli):
    agent.on("GET", LIST, [FROM_ENTRY])
    r = cli("intention", "list", "-format=json")
    assert r.code == 0
    assert r.out.startswith('[\n    {\n        "SourceNS": "default",')


def test_list_table(agent, cli):
    agent.on("GET", LIST, [FROM_ENTRY])
    r = cli("intention", "list")
    assert (r.code, r.err) == (0, "")
    assert r.out == ("ID  Source  Action  Destination  Precedence\n"
                     "    web     allow   *            6\n")


# --------------------------------------------------------------------------- check and match


@pytest.mark.parametrize(("allowed", "code", "out"), [(True, 0, "Allowed\n"), (False, 1, "Denied\n")],
                         ids=["allowed", "denied"])
def test_check_exit_codes(agent, cli, allowed, code, out):
    agent.on("GET", CHECK, {"Allowed": allowed})
    r = cli("intention", "check", "web", "api")
    assert (r.code, r.out, r.err) == (code, out, "")
    assert agent.query() == [("source", "web"), ("destination", "api")]


@pytest.mark.parametrize(("argv", "err"), [
    (("web",), "Error: command requires exactly two arguments: src and dst\n"),
    (("a", "b", "c"), "Error: command requires exactly two arguments: src and dst\n"),
    (("-http-addr=bad addr", "a", "b"), 'Error connecting to agent: Invalid address "bad addr": contains whitespace\n'),
], ids=["one-arg", "three-args", "bad-address"])
def test_check_errors_exit_2(agent, cli, argv, err):
    r = cli("intention", "check", *argv)
    assert (r.code, r.out, r.err) == (2, "", err)


def test_check_bad_flag_exits_2_with_usage(agent, cli):
    r = cli("intention", "check", "-bogus", "a", "b")
    assert r.code == 2
    assert r.err.startswith("flag provided but not defined: -bogus\nUsage: trellis intention check")


def test_check_api_error_exits_2(agent, cli):
    agent.on("GET", CHECK, "required query parameter 'source' not set", 400)
    r = cli("intention", "check", "a", "b")
    assert (r.code, r.out) == (2, "")
    assert r.err.startswith("Error checking the connection: Unexpected response code: 400")


def test_check_verbose_prints_the_decider(agent, cli):
    agent.on("GET", CHECK, {"Allowed": False})
    agent.on("GET", MATCH, {"admin": [{**LEGACY, "SourceName": "api"}, FROM_ENTRY, LEGACY]})
    r = cli("intention", "check", "-verbose", "web", "admin")
    assert r.code == 1
    assert r.out.splitlines()[:4] == ["Denied", "Source:       web", "Destination:  *", "Action:       allow"]
    assert agent.query() == [("by", "destination"), ("name", "admin")]


def test_check_verbose_without_a_match_names_the_default_policy(agent, cli):
    agent.on("GET", CHECK, {"Allowed": True})
    agent.on("GET", MATCH, {"db": None})
    r = cli("intention", "check", "-verbose", "web", "db")
    assert (r.code, r.out, r.err) == (0, "Allowed\n(no intention matched: default policy)\n", "")


@pytest.mark.parametrize(("argv", "by"), [(("db",), "destination"), (("-destination", "db"), "destination"),
                                          (("-source", "db"), "source")], ids=["default", "destination", "source"])
def test_match_prints_one_line_per_intention(agent, cli, argv, by):
    agent.on("GET", MATCH, {"db": [{**LEGACY, "DestinationName": "db"}, FRONTEND_ALL, {**L7, "DestinationName": "db"}]})
    r = cli("intention", "match", *argv)
    assert (r.code, r.err) == (0, "")
    assert r.out == "web => db (deny)\nfrontend/* => * (allow)\nweb => db (2 permissions)\n"
    assert agent.query() == [("by", by), ("name", "db")]


def test_match_nothing_prints_nothing(agent, cli):
    agent.on("GET", MATCH, {"db": None})
    r = cli("intention", "match", "db")
    assert (r.code, r.out, r.err) == (0, "", "")


@pytest.mark.parametrize(("argv", "code", "err"), [
    ((), 1, "Error: command requires exactly one argument: src or dst\n"),
    (("-source", "-destination", "x"), 1, "Error: only one of -source or -destination may be specified\n"),
], ids=["no-args", "both-flags"])
def test_match_errors(agent, cli, argv, code, err):
    r = cli("intention", "match", *argv)
    assert (r.code, r.out, r.err) == (code, "", err)


def test_match_bad_flag_exits_2(agent, cli):
    assert cli("intention", "match", "-x", "db").code == 2


# --------------------------------------------------------------------------- apply

RULES = 'service "web" {\n  policy = "write"\n  intentions = ["api"]\n}\nservice "admin" { policy = "deny" }\n'


@pytest.fixture()
def rules_file(tmp_path):
    path = tmp_path / "rules.hcl"
    path.write_text(RULES)
    return str(path)


def current_for_apply(agent):
    agent.on("GET", LIST, [
        {**FROM_ENTRY, "Action": "allow"},  # web => * (allow): to change to deny
        {**LEGACY, "DestinationName": "old", "Action": "allow"},  # web => old: owned, to delete
        {**LEGACY, "SourceName": "api", "DestinationName": "db"},  # not owned
        FRONTEND_ALL,  # not owned
    ])
    agent.on("PUT", EXACT, True)
    agent.on("DELETE", EXACT, True)


def test_apply_dry_run_writes_nothing(agent, cli, rules_file):
    current_for_apply(agent)
    r = cli("intention", "apply", "-dry-run", rules_file)
    assert (r.code, r.err) == (0, "")
    assert r.out == ("+ admin => * (deny)\n"
                     "~ web => * (allow -> deny)\n"
                     "+ web => api (allow)\n"
                     "- web => old (allow)\n"
                     f"Dry run of {rules_file}: 2 to create, 1 to change, 1 to delete, 0 unchanged; "
                     "nothing was written.\n")
    assert agent.paths() == [f"GET {LIST}"]


def test_apply_writes_through_exact(agent, cli, rules_file):
    current_for_apply(agent)
    r = cli("intention", "apply", rules_file)
    assert (r.code, r.err) == (0, "")
    assert r.out.endswith(f"Applied {rules_file}: 2 created, 1 changed, 1 deleted, 0 unchanged.\n")
    assert agent.paths() == [f"GET {LIST}", f"PUT {EXACT}", f"PUT {EXACT}", f"PUT {EXACT}", f"DELETE {EXACT}"]
    assert [agent.query(i) for i in range(1, 5)] == [
        [("source", "default/admin"), ("destination", "default/*")],
        [("source", "default/web"), ("destination", "default/*")],
        [("source", "default/web"), ("destination", "default/api")],
        [("source", "default/web"), ("destination", "default/old")],
    ]
    assert [agent.body(i) for i in range(1, 4)] == [{"Action": "deny", "SourceType": "consul"},
                                                    {"Action": "deny", "SourceType": "consul"},
                                                    {"Action": "allow", "SourceType": "consul"}]


def test_apply_stops_at_the_first_failed_write(agent, cli, rules_file):
    current_for_apply(agent)
    agent.on("PUT", EXACT, "Permission denied", 403)
    r = cli("intention", "apply", rules_file)
    assert (r.code, r.out) == (1, "")
    assert r.err == (f"Error applying {rules_file}: + admin => * (deny): "
                     "Unexpected response code: 403 (Permission denied)\n")
    assert agent.paths() == [f"GET {LIST}", f"PUT {EXACT}"]


def test_apply_nothing_to_do(agent, cli, rules_file):
    agent.on("GET", LIST, [{**FROM_ENTRY, "Action": "deny"}, {**FROM_ENTRY, "DestinationName": "api"},
                           {**FROM_ENTRY, "SourceName": "admin", "Action": "deny"}])
    r = cli("intention", "apply", rules_file)
    assert (r.code, r.out, r.err) == (0, f"No changes: 3 intentions already match {rules_file}.\n", "")


@pytest.mark.parametrize(("text", "err"), [
    ('service "web" {\n  policy = "read"\n}\n', 'Error in {f}: service "web": unknown policy "read" '
                                                 '(expected "write" or "deny")\n'),
    ('service "web" {\n  policy = \n}\n', "Error parsing {f}: line 3, column 1: unexpected "),
    ('service "web" { policy = "write" }\nservice "web" { policy = "deny" }\n',
     'Error in {f}: service "web": conflicting policies "write" and "deny"\n'),
], ids=["unknown-policy", "syntax", "conflicting-policy"])
def test_apply_bad_file_sends_nothing(agent, cli, tmp_path, text, err):
    path = tmp_path / "bad.hcl"
    path.write_text(text)
    r = cli("intention", "apply", str(path))
    assert (r.code, r.out) == (1, "")
    assert r.err.startswith(err.format(f=path))
    assert agent.requests == []
