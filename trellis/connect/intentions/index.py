"""An index over every intention, built once, that answers decisions in constant time (pure).

The shell builds one ``IntentionIndex`` per revision of the intentions (it never changes
after that) and hands it to the check/authorize/match endpoints, proxycfg and the
built-in proxy. Decisions are exactly those of decide.py over the sorted list:

Rule 1: intentions are held in evaluation order (precedence.py rule 3); an intention's
*rank* is its position there, so "first in order" is "lowest rank".
Rule 2: a name pattern on either side has one of four shapes: ``ns/name``, ``ns/*``,
``*/name`` (refused by validation, kept so the index agrees with the linear scan on
any input) and ``*/*``. A destination is matched by the intentions filed under the
four patterns that cover it, and likewise a source.
Rule 3: for each destination pattern the index keeps, per source pattern, the lowest
rank filed there. ``decide`` looks up at most 4 x 4 keys and takes the lowest rank:
that is the first intention of the linear scan whose destination and source match
(decide.py rules 1-2), whatever the number of intentions.
Rule 4: decisions without a request (and those of L4 intentions with one) depend only
on the intention, so each is built once and shared. Caches are private, bounded, and
never change an answer.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from trellis.connect.intentions.decide import Default, conclude
from trellis.connect.intentions.model import WILDCARD, Decision, HTTPRequest, Intention
from trellis.connect.intentions.precedence import sorted_intentions
from trellis.errors import InvalidInput

Name = tuple[str, str]  # (namespace, name)

_ANY: Name = (WILDCARD, WILDCARD)
_MATCH_BY = ("source", "destination")
_CACHE_LIMIT = 65_536  # distinct destinations whose candidates are kept


def patterns(ns: str, name: str) -> tuple[Name, Name, Name, Name]:
    """Rule 2: the four patterns that cover ``ns/name`` (repeats when it has a ``*``). Pure."""
    return ((ns, name), (ns, WILDCARD), (WILDCARD, name), _ANY)


class IntentionIndex:
    """Every intention, sorted and filed by pattern (rules 1-3). Immutable; loop-safe.

    Building is O(n log n); ``decide`` is O(1) in the number of intentions;
    ``candidates`` and ``match`` are O(k log k) in the intentions they return.
    """

    __slots__ = ("_sorted", "_by_destination", "_by_source", "_first", "_decisions", "_defaults", "_candidates")

    def __init__(self, intentions: Iterable[Intention] = ()) -> None:
        self._sorted: tuple[Intention, ...] = tuple(sorted_intentions(intentions))
        self._by_destination: dict[Name, list[int]] = {}
        self._by_source: dict[Name, list[int]] = {}
        self._first: dict[Name, dict[Name, int]] = {}
        for rank, ixn in enumerate(self._sorted):
            self._file(rank, ixn.source, ixn.destination)
        self._decisions: list[Decision | None] = [None] * len(self._sorted)
        self._defaults: dict[Default, Decision] = {}
        self._candidates: dict[Name, tuple[Intention, ...]] = {}

    def __len__(self) -> int:
        return len(self._sorted)

    def all(self) -> tuple[Intention, ...]:
        """Every intention, in evaluation order."""
        return self._sorted

    def decide(
        self,
        source: Name,
        destination: Name,
        *,
        default: Default,
        request: HTTPRequest | None = None,
    ) -> Decision:
        """decide.py's decision for ``source`` -> ``destination`` (rule 3). Raises ``l7.InvalidRegex``."""
        rank = self.first_rank(source, destination)
        if rank < 0:
            return self._default_decision(default)
        ixn = self._sorted[rank]
        if request is not None and ixn.l7:
            return conclude(ixn, default=default, request=request)
        decision = self._decisions[rank]
        if decision is None:
            decision = self._decisions[rank] = conclude(ixn, default=default)
        return decision

    def first_rank(self, source: Name, destination: Name) -> int:
        """Rule 3: the rank of the first intention matching both sides, or -1."""
        source_keys = patterns(*source)
        best = -1
        for key in patterns(*destination):
            table = self._first.get(key)
            if table is None:
                continue
            for source_key in source_keys:
                rank = table.get(source_key, -1)
                if rank >= 0 and (best < 0 or rank < best):
                    best = rank
        return best

    def candidates(self, destination_ns: str, destination_name: str) -> tuple[Intention, ...]:
        """The intentions whose destination covers ``destination_ns/destination_name``, in order."""
        key = (destination_ns, destination_name)
        found = self._candidates.get(key)
        if found is None:
            found = self._collect(self._by_destination, key)
            if len(self._candidates) < _CACHE_LIMIT:
                self._candidates[key] = found
        return found

    def match(self, by: str, ns: str, name: str) -> tuple[Intention, ...]:
        """Consul's ``/v1/connect/intentions/match``: intentions whose ``by`` side covers ``ns/name``.

        Raises ``InvalidInput`` with Consul's text when ``by`` is not source/destination.
        """
        if by not in _MATCH_BY:
            raise InvalidInput("by", by, message="'by' parameter must be one of 'source' or 'destination'")
        if by == "destination":
            return self.candidates(ns, name)
        return self._collect(self._by_source, (ns, name))

    def _file(self, rank: int, source: Name, destination: Name) -> None:
        self._by_destination.setdefault(destination, []).append(rank)
        self._by_source.setdefault(source, []).append(rank)
        self._first.setdefault(destination, {}).setdefault(source, rank)

    def _collect(self, filed: dict[Name, list[int]], key: Name) -> tuple[Intention, ...]:
        groups = [filed[k] for k in dict.fromkeys(patterns(*key)) if k in filed]
        return tuple(self._sorted[rank] for rank in heapq.merge(*groups))

    def _default_decision(self, default: Default) -> Decision:
        decision = self._defaults.get(default)
        if decision is None:
            decision = default.decision()
            if len(self._defaults) < _CACHE_LIMIT:
                self._defaults[default] = decision
        return decision
