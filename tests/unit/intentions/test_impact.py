"""The dry-run impact: which pairs of registered services flip, and only those."""

from __future__ import annotations

import itertools

import pytest

from trellis.connect.intentions.decide import Default
from trellis.connect.intentions.impact import changed_intentions, impact
from trellis.connect.intentions.index import IntentionIndex
from trellis.connect.intentions.model import Action, Intention
from trellis.connect.intentions.precedence import with_precedence

ALLOW = Default(True, "Default intention policy")
SERVICES = [("default", n) for n in ("web", "api", "db", "cache")] + [("team", "web")]


def ixn(src: str, dst: str, action: str = "deny") -> Intention:
    (sns, sname), (dns, dname) = (tuple(x.split("/")) if "/" in x else ("default", x) for x in (src, dst))
    return with_precedence(Intention(sns, sname, dns, dname, action=Action(action)))


BASE = [ixn("web", "db", "allow"), ixn("*", "db")]

CASES = {
    "exact_pair_flips_one": ([ixn("api", "db", "allow")], {("default/api", "default/db")}),
    "already_decided_the_same_way": ([ixn("cache", "db")], set()),
    "wildcard_destination_in_its_namespace": ([ixn("web", "*")], {("default/web", "default/api"),
                                                                  ("default/web", "default/cache")}),
    "wildcard_namespace_source": ([ixn("*/*", "cache")], {(f"{ns}/{n}", "default/cache") for ns, n in SERVICES
                                                         if n != "cache"}),
    "removal_flips_back": ("remove", {("default/web", "default/db")}),
}


@pytest.mark.parametrize(("change", "expected"), list(CASES.values()), ids=list(CASES))
def test_impact_lists_exactly_the_pairs_that_flip(change, expected):
    after_list = [i for i in BASE if i.source_name != "web"] if change == "remove" else [*BASE, *change]
    before, after = IntentionIndex(BASE), IntentionIndex(after_list)
    changes = impact(before, after, changed_intentions(BASE, after_list), SERVICES, default=ALLOW)
    assert {("/".join(c.source), "/".join(c.destination)) for c in changes} == expected
    # and it agrees with deciding every pair before and after
    brute = {("/".join(s), "/".join(d)) for s, d in itertools.permutations(SERVICES, 2)
             if before.decide(s, d, default=ALLOW).allowed != after.decide(s, d, default=ALLOW).allowed}
    assert brute == expected


def test_changes_are_sorted_by_destination_then_source_and_say_what_decides():
    after_list = [*BASE, ixn("*", "*")]
    changes = impact(IntentionIndex(BASE), IntentionIndex(after_list), changed_intentions(BASE, after_list),
                     SERVICES, default=ALLOW)
    keys = [(c.destination, c.source) for c in changes]
    assert keys == sorted(keys)
    assert all(c.before and not c.after and c.reason.startswith("Matched L4 intention: default/* => default/*")
               for c in changes)
