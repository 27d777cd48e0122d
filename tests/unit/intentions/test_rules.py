"""Rules files: reading (the seed's repeated blocks), policy mapping, and the diff ``apply`` writes."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from trellis.config.hcl import ConfigSyntaxError
from trellis.connect.intentions.model import Action
from trellis.connect.intentions.rules import (
    POLICIES,
    Change,
    Op,
    Plan,
    Rule,
    RulesError,
    RuleSet,
    ServiceBlock,
    build_rules,
    diff,
    merge_blocks,
    parse_rules,
    read_blocks,
)

ALLOW, DENY = Action.ALLOW, Action.DENY

# The seed guide's "Intention Rules" file, as written there.
SEED = textwrap.dedent('''\
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


def d(name: str) -> tuple[str, str]:
    """A default-namespace ref; ``ns/name`` splits."""
    ns, _, short = name.rpartition("/")
    return (ns or "default", short)


def rule(src: str, dst: str, action: Action | None, permissions: int = 0) -> Rule:
    return Rule(d(src), d(dst), action, permissions)


# --------------------------------------------------------------------------- reading


def test_seed_file_maps_to_its_intentions():
    got = parse_rules(SEED, filename="rules.hcl")
    assert got == RuleSet(
        sources=frozenset({d("web"), d("admin")}),
        rules=(rule("admin", "*", DENY), rule("web", "*", DENY), rule("web", "api", ALLOW),
               rule("web", "database", ALLOW)),
    )


READ_CASES = [
    ("seed-blocks-grouped-by-label-in-first-appearance-order", "rules.hcl", SEED,
     [("web", {"policy": "write"}), ("web", {"policy": "write", "intentions": ["api", "database"]}),
      ("admin", {"policy": "deny"})]),
    ("one-line-blocks", "r.hcl", 'service "a" { policy = "deny" } service "b" { policy = "write" }',
     [("a", {"policy": "deny"}), ("b", {"policy": "write"})]),
    ("braces-in-strings-and-comments", "r.hcl",
     '# } {\nservice "a}" {\n  /* { */ policy = "deny" // }\n}\n',
     [("a}", {"policy": "deny"})]),
    ("json-labelled-object", "r.json", '{"service": {"web": {"policy": "write"}, "db": {"policy": "deny"}}}',
     [("web", {"policy": "write"}), ("db", {"policy": "deny"})]),
    ("json-list-of-blocks-may-repeat-a-label", "r.json",
     '{"service": [{"web": {"policy": "write"}}, {"web": {"intentions": ["api"]}}]}',
     [("web", {"policy": "write"}), ("web", {"intentions": ["api"]})]),
    ("stdin-sniffed-as-json", "<stdin>", ' {"service": {"web": {"policy": "deny"}}}', [("web", {"policy": "deny"})]),
    ("empty-file", "r.hcl", "# nothing yet\n", []),
]


@pytest.mark.parametrize(("filename", "text", "blocks"), [c[1:] for c in READ_CASES], ids=[c[0] for c in READ_CASES])
def test_read_blocks(filename, text, blocks):
    assert read_blocks(text, filename=filename) == blocks


def test_the_parser_keeps_repeated_labels_apart_only_when_asked():
    from trellis.config import hcl

    text = 'service "a" {\n  policy = "deny"\n}\nservice "a" {\n  policy = "deny"\n}\n'
    assert hcl.parse_text(text, filename="r.hcl", merge_labels=False) == {
        "service": {"a": [{"policy": "deny"}, {"policy": "deny"}]}}
    with pytest.raises(ConfigSyntaxError, match='duplicate attribute "policy"'):
        hcl.parse_text(text, filename="r.hcl")


READ_ERRORS = [
    ("syntax-error-names-line-and-column", "r.hcl", 'service "a" {\n  policy = "deny"\n}\nservice "b" {\n  policy =\n}\n',
     ConfigSyntaxError, "Error parsing r.hcl: line 6, column 1: unexpected"),
    ("unclosed-block", "r.hcl", 'service "a" {\n  policy = "deny"\n', ConfigSyntaxError,
     "Error parsing r.hcl: line 3, column 1: unexpected end of file"),
    ("same-attribute-twice-in-one-block", "r.hcl", 'service "a" {\n  policy = "deny"\n  policy = "deny"\n}\n',
     ConfigSyntaxError, 'Error parsing r.hcl: line 3, column 3: duplicate attribute "policy"'),
    ("bad-json", "r.json", '{"service": {}', ConfigSyntaxError, "Error parsing r.json: line 1, column 15"),
    ("other-block", "r.hcl", 'node "a" { policy = "write" }', RulesError,
     'unknown block "node": a rules file holds only service "<name>" blocks'),
    ("unlabelled-block", "r.hcl", 'service { policy = "write" }', RulesError,
     'a service block needs a name: service "web" { policy = "write" }'),
]


@pytest.mark.parametrize(("filename", "text", "error", "message"), [c[1:] for c in READ_ERRORS],
                         ids=[c[0] for c in READ_ERRORS])
def test_read_errors(filename, text, error, message):
    with pytest.raises(error) as exc:
        read_blocks(text, filename=filename)
    assert str(exc.value).startswith(message)


# --------------------------------------------------------------------------- merging (rule 2)

MERGE_CASES = [
    ("lists-united-in-first-appearance-order",
     [("web", {"policy": "write", "intentions": ["api", "db"]}), ("web", {"intentions": ["cache", "api"]})],
     [ServiceBlock("web", "write", ("api", "db", "cache"))]),
    ("same-policy-twice-is-fine", [("web", {"policy": "write"}), ("web", {"policy": "write"})],
     [ServiceBlock("web", "write")]),
    ("labels-in-first-appearance-order", [("b", {"policy": "deny"}), ("a", {"policy": "deny"}), ("b", {})],
     [ServiceBlock("b", "deny"), ServiceBlock("a", "deny")]),
]


@pytest.mark.parametrize(("blocks", "merged"), [c[1:] for c in MERGE_CASES], ids=[c[0] for c in MERGE_CASES])
def test_merge_blocks(blocks, merged):
    assert merge_blocks(blocks) == merged


MERGE_ERRORS = [
    ("conflicting-policy", [("web", {"policy": "write"}), ("web", {"policy": "deny"})],
     'service "web": conflicting policies "write" and "deny"'),
    ("missing-policy", [("web", {"intentions": ["api"]})], 'service "web": policy is required ("write" or "deny")'),
    ("unknown-key", [("web", {"policy": "write", "intention": ["api"]})],
     'service "web": unknown key "intention" (a service block has policy and intentions)'),
    ("intentions-not-a-list", [("web", {"policy": "write", "intentions": "api"})],
     "service \"web\": intentions must be a list of service names, not 'api'"),
    ("policy-not-a-string", [("web", {"policy": ["write"]})], "service \"web\": policy must be a string, not ['write']"),
]


@pytest.mark.parametrize(("blocks", "message"), [c[1:] for c in MERGE_ERRORS], ids=[c[0] for c in MERGE_ERRORS])
def test_merge_errors_name_the_service(blocks, message):
    with pytest.raises(RulesError) as exc:
        merge_blocks(blocks)
    assert str(exc.value) == message


# --------------------------------------------------------------------------- mapping (rule 3)

MAPPING_CASES = [
    ("deny-denies-everything", [ServiceBlock("admin", "deny")], [rule("admin", "*", DENY)]),
    ("write-alone-allows-everything", [ServiceBlock("web", "write")], [rule("web", "*", ALLOW)]),
    ("write-with-intentions-allows-those-and-denies-the-rest", [ServiceBlock("web", "write", ("db", "api"))],
     [rule("web", "*", DENY), rule("web", "api", ALLOW), rule("web", "db", ALLOW)]),
    ("namespaced-label-and-destination", [ServiceBlock("team/web", "write", ("other/api",))],
     [rule("team/web", "*", DENY), rule("team/web", "other/api", ALLOW)]),
    ("wildcard-label", [ServiceBlock("*", "deny")], [rule("*", "*", DENY)]),
    ("every-namespace-is-not-the-default-star", [ServiceBlock("web", "write", ("*/*",))],
     [rule("web", "*/*", ALLOW), rule("web", "*", DENY)]),
    ("same-destination-twice-once", [ServiceBlock("web", "write", ("api", "default/api"))],
     [rule("web", "*", DENY), rule("web", "api", ALLOW)]),
]


@pytest.mark.parametrize(("blocks", "rules"), [c[1:] for c in MAPPING_CASES], ids=[c[0] for c in MAPPING_CASES])
def test_build_rules(blocks, rules):
    got = build_rules(blocks)
    assert got.rules == tuple(sorted(rules, key=lambda r: (r.source, r.destination)))
    assert got.sources == frozenset(r.source for r in rules)


def test_default_namespace_is_the_callers():
    got = build_rules([ServiceBlock("web", "write", ("api",))], default_ns="team")
    assert got.rules == (Rule(("team", "web"), ("team", "*"), DENY), Rule(("team", "web"), ("team", "api"), ALLOW))


MAPPING_ERRORS = [
    ("unknown-policy", ServiceBlock("web", "read"), 'service "web": unknown policy "read" (expected "write" or "deny")'),
    ("upper-case-policy", ServiceBlock("web", "WRITE"), 'service "web": unknown policy "WRITE"'),
    ("intentions-with-deny", ServiceBlock("admin", "deny", ("api",)),
     'service "admin": intentions are only allowed with policy = "write"'),
    ("star-among-intentions", ServiceBlock("web", "write", ("api", "*")),
     'service "web": intentions cannot list "*": policy = "write" without intentions allows every destination'),
    ("partial-wildcard-label", ServiceBlock("web*", "deny"),
     "service \"web*\": Name: wildcard character '*' cannot be used with partial values"),
    ("bad-destination", ServiceBlock("web", "write", ("api", "a/b/c/d")),
     'service "web": intentions[1] "a/b/c/d": input can contain at most two \'/\''),
    ("exact-name-after-wildcard-namespace", ServiceBlock("web", "write", ("*/api",)),
     'service "web": intentions[0] "*/api": Name: exact value cannot follow wildcard namespace'),
]


@pytest.mark.parametrize(("block", "message"), [c[1:] for c in MAPPING_ERRORS], ids=[c[0] for c in MAPPING_ERRORS])
def test_mapping_errors_name_the_service_and_value(block, message):
    with pytest.raises(RulesError) as exc:
        build_rules([block])
    assert str(exc.value).startswith(message)


# --------------------------------------------------------------------------- diff (rules 4-6)

SEED_RULES = parse_rules(SEED, filename="rules.hcl")

DIFF_CASES = [
    ("nothing-yet-creates-all", SEED_RULES, [],
     Plan((Change(Op.CREATE, d("admin"), d("*"), after="deny"), Change(Op.CREATE, d("web"), d("*"), after="deny"),
           Change(Op.CREATE, d("web"), d("api"), after="allow"),
           Change(Op.CREATE, d("web"), d("database"), after="allow")), 0)),
    ("already-there-is-no-change", SEED_RULES,
     [rule("admin", "*", DENY), rule("web", "*", DENY), rule("web", "api", ALLOW), rule("web", "database", ALLOW)],
     Plan((), 4)),
    ("action-flipped", SEED_RULES,
     [rule("admin", "*", DENY), rule("web", "*", ALLOW), rule("web", "api", ALLOW), rule("web", "database", ALLOW)],
     Plan((Change(Op.CHANGE, d("web"), d("*"), before="allow", after="deny"),), 3)),
    ("owned-extra-deleted-others-untouched", SEED_RULES,
     [rule("admin", "*", DENY), rule("web", "*", DENY), rule("web", "api", ALLOW), rule("web", "database", ALLOW),
      rule("web", "old", ALLOW), rule("api", "database", ALLOW), rule("*", "web", DENY),
      rule("frontend/*", "*", ALLOW), rule("other/web", "api", DENY)],
     Plan((Change(Op.DELETE, d("web"), d("old"), before="allow"),), 4)),
    ("l7-replaced-by-l4", RuleSet(frozenset({d("web")}), (rule("web", "api", ALLOW),)),
     [rule("web", "api", None, permissions=2)],
     Plan((Change(Op.CHANGE, d("web"), d("api"), before="2 permissions", after="allow"),), 0)),
    ("l7-not-asked-for-is-deleted", RuleSet(frozenset({d("web")}), ()), [rule("web", "api", None, permissions=1)],
     Plan((Change(Op.DELETE, d("web"), d("api"), before="1 permission"),), 0)),
    ("mixed-sorted-by-source-then-destination", RuleSet(frozenset({d("a"), d("b")}),
                                                        (rule("a", "z", ALLOW), rule("b", "c", DENY))),
     [rule("b", "c", ALLOW), rule("a", "y", ALLOW)],
     Plan((Change(Op.DELETE, d("a"), d("y"), before="allow"), Change(Op.CREATE, d("a"), d("z"), after="allow"),
           Change(Op.CHANGE, d("b"), d("c"), before="allow", after="deny")), 0)),
]


@pytest.mark.parametrize(("ruleset", "current", "plan"), [c[1:] for c in DIFF_CASES], ids=[c[0] for c in DIFF_CASES])
def test_diff(ruleset, current, plan):
    assert diff(ruleset, current) == plan


def test_diff_ignores_the_order_of_current():
    current = [rule("web", "old", ALLOW), rule("web", "*", ALLOW), rule("admin", "*", DENY)]
    assert diff(SEED_RULES, current) == diff(SEED_RULES, list(reversed(current)))


def test_plan_counts():
    plan = diff(SEED_RULES, [rule("web", "*", ALLOW), rule("web", "old", DENY), rule("admin", "*", DENY)])
    assert [plan.count(op) for op in Op] == [2, 1, 1]
    assert plan.unchanged == 1


def test_docs_show_the_policy_table():
    doc = (Path(__file__).parents[3] / "docs" / "intentions.md").read_text()
    for policy, listed, asked in POLICIES:
        assert f"| `{policy}` | {'`[D, ...]`' if listed else '—'} | {asked} |" in doc
