"""Errors of the store, and the one check every backend runs on a txn first.

Rules:
1. A txn is validated whole, before anything is queued or sent, and the same way
   by every backend: what etcd would refuse ("duplicate key given in txn
   request") the SQLite and memory backends refuse too, with ``InvalidTxn``.
2. Third-party errors (sqlite3, grpc/aetcd) are converted where they enter, in
   the backend module that talks to them; callers only see trellis errors:
   ``Unavailable`` (retry may help), ``InvalidTxn``, ``Compacted``.
"""

from __future__ import annotations

from collections.abc import Sequence

from trellis.errors import InvalidInput, Unavailable
from trellis.store.backend import Compacted, Compare, Delete, Put

__all__ = ["MAX_TXN_BYTES", "MAX_TXN_OPS", "Compacted", "InvalidTxn", "Unavailable", "check_txn", "check_watch"]

# Kept by every backend so that what works on SQLite also works on etcd. etcd's
# own default is --max-txn-ops 128, too few for deregistering a node with a few
# dozen services and their checks in one write: trellis needs etcd started with
# --max-txn-ops 1024 (docs/store.md). The byte limit is under etcd's default
# --max-request-bytes (1.5 MiB), leaving room for the root prefix and framing.
MAX_TXN_OPS = 1024
MAX_TXN_BYTES = 1024 * 1024


class InvalidTxn(InvalidInput):
    """A txn the store refuses as written (a programmer's or a caller's mistake)."""


def check_txn(compares: Sequence[Compare], puts: Sequence[Put], deletes: Sequence[Delete]) -> None:
    """Raise ``InvalidTxn`` unless the txn is well formed. Pure.

    Keys are non-empty strings (a prefix delete may use ``""``: everything);
    values are bytes; compare revisions are >= 0; no key is put twice; no put
    falls under a delete of the same txn (etcd refuses that overlap); at most
    ``MAX_TXN_OPS`` compares and ``MAX_TXN_OPS`` puts + deletes; keys and values
    together at most ``MAX_TXN_BYTES``.
    """
    if len(compares) > MAX_TXN_OPS or len(puts) + len(deletes) > MAX_TXN_OPS:
        raise InvalidTxn(
            "txn", message=f"This request would change {len(puts) + len(deletes)} documents and check "
                           f"{len(compares)}; one write may touch at most {MAX_TXN_OPS} of each",
        )
    for c in compares:
        _check_key("compare key", c.key)
        if not isinstance(c.mod_revision, int) or c.mod_revision < 0:
            raise InvalidTxn("compare mod_revision", c.mod_revision, "must be an integer >= 0")
    seen: set[str] = set()
    for p in puts:
        _check_key("put key", p.key)
        if not isinstance(p.value, bytes):
            raise InvalidTxn("put value", type(p.value).__name__, "must be bytes")
        if p.key in seen:
            raise InvalidTxn("put key", p.key, "is put twice in one txn")
        seen.add(p.key)
    for d in deletes:
        if not (d.prefix and d.key == ""):
            _check_key("delete key", d.key)
        hit = next((k for k in seen if k.startswith(d.key) if d.prefix or k == d.key), None)
        if hit is not None:
            raise InvalidTxn("put key", hit, "is also deleted by the same txn")
    size = sum(len(p.key.encode()) + len(p.value) for p in puts)
    if size > MAX_TXN_BYTES:
        raise InvalidTxn("txn", f"{size} bytes", f"keys and values may take at most {MAX_TXN_BYTES} bytes")


def check_watch(prefix: str, from_revision: int) -> None:
    """Raise ``InvalidInput`` for a watch that cannot be served. Pure."""
    if not isinstance(prefix, str):
        raise InvalidInput("watch prefix", prefix, "must be a string")
    if not isinstance(from_revision, int) or from_revision < 1:
        raise InvalidInput("watch from_revision", from_revision, "must be an integer >= 1")


def _check_key(field: str, key: object) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidTxn(field, key, "must be a non-empty string")
