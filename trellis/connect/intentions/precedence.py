"""How exact an intention is, and the order intentions are evaluated and listed in (pure).

Consul's table (agent/structs/config_entry_intentions.go ``computeIntentionPrecedence``),
with namespaces real, so all nine levels occur:

Rule 1: each side scores its exactness: exact ns + exact name = 2, exact ns + ``*`` name
= 1, ``*`` ns = 0 (an exact name cannot follow a wildcard namespace, so ``*/*`` is the
only shape with a wildcard namespace; names.py refuses the others).
Rule 2: the destination's score sets the ceiling, 9 / 6 / 3 for 2 / 1 / 0, and each
missing point on the source side takes one off: ``precedence = ceiling - (2 - source)``.
The destination therefore always outweighs the source: ``*/* => default/db`` (7) beats
``default/web => default/*`` (6).
Rule 3: evaluation and listing order is precedence descending, then source namespace,
source name, destination namespace, destination name ascending (Consul's
``IntentionPrecedenceSorter`` without partitions, peers and sameness groups, which
trellis does not have). Within one precedence the order cannot change a decision: two
intentions of equal precedence that both match a request are for the same source and
destination shape, and the store keeps one intention per (source, destination) pair.
Rule 4: precedence is always computed from the four names, never read from the
``Intention.precedence`` field (model.py rule 2); ``with_precedence`` stamps it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from trellis.connect.intentions.model import WILDCARD, Intention

# Rule 2: the ceiling per destination score.
_CEILING = {2: 9, 1: 6, 0: 3}

# The nine levels, most specific first: (source shape, destination shape, precedence),
# where a shape is "exact/exact", "exact/*" or "*/*". Docs and tests read this table.
LEVELS: tuple[tuple[str, str, int], ...] = tuple(
    (src, dst, _CEILING[d] - (2 - s))
    for dst, d in (("exact/exact", 2), ("exact/*", 1), ("*/*", 0))
    for src, s in (("exact/exact", 2), ("exact/*", 1), ("*/*", 0))
)


def count_exact(ns: str, name: str) -> int:
    """Rule 1: 2 for ``ns/name``, 1 for ``ns/*``, 0 for a wildcard namespace. Pure."""
    if ns == WILDCARD:
        return 0
    if name == WILDCARD:
        return 1
    return 2


def precedence(source_ns: str, source_name: str, destination_ns: str, destination_name: str) -> int:
    """Rule 2: Consul's precedence (1..9) of an intention with these names. Pure."""
    ceiling = _CEILING[count_exact(destination_ns, destination_name)]
    return ceiling - (2 - count_exact(source_ns, source_name))


def precedence_of(ixn: Intention) -> int:
    """``precedence`` of an intention's four names (rule 4). Pure."""
    return precedence(ixn.source_ns, ixn.source_name, ixn.destination_ns, ixn.destination_name)


def sort_key(ixn: Intention) -> tuple[int, str, str, str, str]:
    """Rule 3: the key that puts intentions in evaluation order when sorted ascending. Pure."""
    return (
        -precedence_of(ixn),
        ixn.source_ns,
        ixn.source_name,
        ixn.destination_ns,
        ixn.destination_name,
    )


def sorted_intentions(intentions: Iterable[Intention]) -> list[Intention]:
    """A new list of ``intentions`` in evaluation order (rule 3). Pure; the input is not changed."""
    return sorted(intentions, key=sort_key)


def with_precedence(ixn: Intention) -> Intention:
    """``ixn`` with its ``precedence`` field set from its names (rule 4). Pure."""
    value = precedence_of(ixn)
    return ixn if ixn.precedence == value else dataclasses.replace(ixn, precedence=value)
