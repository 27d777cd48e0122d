"""What a change to the intentions would do, before it is made (pure): every pair of
registered services whose decision changes (trellis's ``-dry-run``; Consul has none).

Rules:
1. Only pairs a changed intention can reach are evaluated: destinations matching one
   of its destination patterns, sources matching its source pattern. Any other pair
   keeps its decision, since its first matching intention is untouched.
2. A pair is reported when allow/deny flips (at L4, as /check answers); ``reason``
   says what decides afterwards.
3. A service is never paired with itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from trellis.connect.intentions.decide import Default
from trellis.connect.intentions.index import IntentionIndex
from trellis.connect.intentions.model import WILDCARD, Intention

Name = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Change:
    source: Name
    destination: Name
    before: bool
    after: bool
    reason: str


def _covers(pattern: Name, name: Name) -> bool:
    ns, n = pattern
    return (ns == WILDCARD or ns == name[0]) and (n == WILDCARD or n == name[1])


def changed_intentions(before: Iterable[Intention], after: Iterable[Intention]) -> list[Intention]:
    """Intentions present on one side only, or different between the two (by pair)."""
    old = {(i.source, i.destination): i for i in before}
    new = {(i.source, i.destination): i for i in after}
    out = [i for k, i in new.items() if old.get(k) != i]
    out += [i for k, i in old.items() if k not in new]
    return out


def _pairs(changed: Sequence[Intention], services: Sequence[Name]) -> Iterable[tuple[Name, Name]]:
    """Rule 1, in (destination, source) order; ``services`` must be sorted."""
    sources_of = [[s for s in services if _covers(i.source, s)] for i in changed]
    for dst in services:
        reaching = [k for k, i in enumerate(changed) if _covers(i.destination, dst)]
        if not reaching:
            continue
        if len(reaching) == 1:
            sources: Iterable[Name] = sources_of[reaching[0]]
        else:
            sources = sorted({s for k in reaching for s in sources_of[k]})
        for src in sources:
            if src != dst:
                yield src, dst


def impact(before: IntentionIndex, after: IntentionIndex, changed: Iterable[Intention],
           services: Sequence[Name], *, default: Default) -> list[Change]:
    """Rules 1-3, sorted by destination then source."""
    changes = []
    for src, dst in _pairs(list(changed), sorted(services)):
        was = before.decide(src, dst, default=default)
        now = after.decide(src, dst, default=default)
        if was.allowed != now.allowed:
            changes.append(Change(src, dst, was.allowed, now.allowed, now.reason))
    return changes
