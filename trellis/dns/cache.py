"""Encoded answers cached per question, invalidated by their watch set.

Rules:
1. A slot is keyed by (lower-cased question name, qtype): together they decide the
   query and the shape of the encoded fragments (wire.py rule 2).
2. A slot holds every entry of the answer (unshuffled, uncut): the server shuffles
   and cuts per query, so caching never freezes one order (DESIGN "DNS").
3. A slot is valid while ``view.index_of(slot.watch)`` is the index it was built
   at. The check is skipped while ``view.revision`` has not moved since the last
   one, so a hot slot costs one comparison per query.
4. The cache holds at most ``max_entries`` slots; the oldest goes first.
   Not loop-safe across threads; it lives on the server's event loop.
"""

from __future__ import annotations

from trellis.dns.answer import build_answer, negative_answer
from trellis.dns.errors import OutsideDomain, ParseError
from trellis.dns.model import DnsConfig, DnsQuery
from trellis.dns.parse import parse_query
from trellis.dns.wire import EncodedAnswer, Request, encode_answer
from trellis.store.view import View

REFUSED = 5


class Slot:
    __slots__ = ("query", "watch", "index", "checked", "encoded")

    def __init__(
        self, query: DnsQuery | None, watch: frozenset, index: int, checked: int, encoded: EncodedAnswer
    ):
        self.query = query  # None: the name parsed to no query (REFUSED or NXDOMAIN)
        self.watch = watch
        self.index = index
        self.checked = checked
        self.encoded = encoded


class AnswerCache:
    def __init__(self, view: View, config: DnsConfig, max_entries: int = 10_000) -> None:
        self.view = view
        self.config = config
        self.max_entries = max_entries
        self._domain = config.domain_name
        self._slots: dict[tuple[bytes, int], Slot] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._slots)

    def clear(self) -> None:
        self._slots.clear()

    def get(self, req: Request) -> Slot:
        """The slot answering ``req``, rebuilt when its watch set moved (rule 3)."""
        key = (req.qname, req.qtype)
        slot = self._slots.get(key)
        view = self.view
        if slot is not None:
            if slot.checked == view.revision:
                self.hits += 1
                return slot
            if view.index_of(slot.watch) == slot.index:
                slot.checked = view.revision
                self.hits += 1
                return slot
            del self._slots[key]
        self.misses += 1
        slot = self._build(req)
        if len(self._slots) >= self.max_entries:
            del self._slots[next(iter(self._slots))]
        self._slots[key] = slot
        return slot

    def _build(self, req: Request) -> Slot:
        view, cfg = self.view, self.config
        revision = view.revision
        try:
            query = parse_query(req.name(), self._domain, cfg.datacenter)
        except OutsideDomain:
            refused = EncodedAnswer(REFUSED, (), authoritative=False)
            return Slot(None, frozenset(), 1, revision, refused)
        except ParseError:
            ans = negative_answer(view, cfg)
            return Slot(None, ans.watch, view.index_of(ans.watch), revision, encode_answer(ans, req.qname))
        ans = build_answer(query, req.qtype, view, cfg)
        return Slot(query, ans.watch, view.index_of(ans.watch), revision, encode_answer(ans, req.qname))
