"""The storage seam: a revisioned key-value store with transactions and watches.

Everything trellis keeps (nodes, services, checks, config entries, CA state, ACLs)
is a JSON document under a key. This module defines the only interface that
differs between the embedded store (SQLite) and a cluster (etcd).

Rules that every backend keeps (the contract suite in tests/contract checks them):

1. One global revision, strictly increasing. Each successful ``txn`` that changes
   at least one key gets exactly one new revision; every key it writes or deletes
   carries that revision as ``mod_revision``. A txn whose compares fail changes
   nothing and returns ``succeeded=False`` with the current revision.
2. ``Compare(key, mod_revision=0)`` means "the key does not exist".
3. ``range(prefix)`` returns the live keys under the prefix, sorted by key, and
   the revision the read was taken at.
4. ``watch(prefix, from_revision)`` yields, in revision order, one ``WatchBatch``
   per revision (events of that revision under the prefix), first replaying every
   revision >= ``from_revision`` still retained, then live ones. A watcher never
   misses or repeats a revision. Asking for a revision older than what is
   retained raises ``Compacted``.
5. A ``txn`` returns only after the change is durable to the backend's promise
   (SQLite: committed with the configured ``synchronous``; etcd: quorum commit).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from trellis.errors import TrellisError


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Compare:
    """Succeeds when ``key``'s mod revision equals ``mod_revision`` (0: absent)."""

    key: str
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Put:
    key: str
    value: bytes


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete ``key``; with ``prefix=True`` every key starting with it."""

    key: str
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class TxnResult:
    succeeded: bool
    revision: int


class EventKind(enum.StrEnum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    key: str
    value: bytes | None  # None for deletes
    mod_revision: int


@dataclass(frozen=True, slots=True)
class WatchBatch:
    revision: int
    events: tuple[Event, ...]


class Compacted(TrellisError):
    """The requested watch revision is no longer retained."""

    def __init__(self, requested: int, oldest: int) -> None:
        self.requested = requested
        self.oldest = oldest
        super().__init__(f"revision {requested} has been compacted; oldest retained is {oldest}")


class Backend(Protocol):
    """What the view and the writers need from storage. All methods are loop-safe."""

    async def range(self, prefix: str) -> tuple[list[KeyValue], int]: ...

    async def txn(
        self,
        compares: Sequence[Compare] = (),
        puts: Sequence[Put] = (),
        deletes: Sequence[Delete] = (),
    ) -> TxnResult: ...

    def watch(self, prefix: str, from_revision: int) -> AsyncIterator[WatchBatch]: ...

    async def revision(self) -> int: ...

    async def close(self) -> None: ...
