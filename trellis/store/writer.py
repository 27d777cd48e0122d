"""Turning a planned change into one committed, applied revision.

A *plan function* reads the view (pure) and returns a ``Plan``: the puts and
deletes to make plus, for every key it read to decide them, a compare on that
key's current revision. ``Writer.apply`` commits the plan in one backend txn and
returns only once the view has applied it (read-your-writes). When a compare
fails (someone else wrote first) the plan is recomputed on the newer view.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from trellis.errors import Conflict
from trellis.store import doc
from trellis.store.backend import Backend, Compare, Delete, Put
from trellis.store.view import View


@dataclass(slots=True)
class Plan:
    compares: dict[str, int] = field(default_factory=dict)
    puts: dict[str, bytes] = field(default_factory=dict)
    deletes: set[str] = field(default_factory=set)

    def expect(self, key: str, mod_revision: int) -> None:
        """Require ``key`` to still be at ``mod_revision`` (0: absent) at commit."""
        self.compares.setdefault(key, mod_revision)

    def put(self, key: str, value: object, *, expected: int | None = None) -> None:
        if expected is not None:
            self.expect(key, expected)
        self.deletes.discard(key)
        self.puts[key] = doc.encode(value)

    def delete(self, key: str, *, expected: int | None = None) -> None:
        if expected is not None:
            self.expect(key, expected)
        self.puts.pop(key, None)
        self.deletes.add(key)

    @property
    def empty(self) -> bool:
        return not self.puts and not self.deletes


PlanFn = Callable[[View], Plan]
CATCH_UP = 0.5  # seconds to wait for the view after a lost compare


class Writer:
    """Optimistic first, then in turn: a write that lost a compare retries while
    holding the writer's retry lock, so writers contending for the same keys
    (100 registrations of one service ID at once) finish one after another instead
    of starving each other. Only writers from other processes can still make a
    locked retry lose, and ``retries`` bounds that.
    """

    def __init__(self, backend: Backend, view: View, *, retries: int = 50) -> None:
        self.backend = backend
        self.view = view
        self.retries = retries
        self._retry_lock = asyncio.Lock()

    async def apply(self, plan_fn: PlanFn) -> int:
        """Commit what ``plan_fn`` plans; returns the revision the view now holds.

        Raises whatever ``plan_fn`` raises (validation) before anything is written.
        """
        done, revision = await self._attempt(plan_fn)
        if done:
            return revision
        async with self._retry_lock:
            for _ in range(self.retries):
                done, revision = await self._attempt(plan_fn)
                if done:
                    return revision
        raise Conflict(f"gave up after {self.retries} conflicting concurrent writes; retry the request")

    async def _attempt(self, plan_fn: PlanFn) -> tuple[bool, int]:
        plan = plan_fn(self.view)
        if plan.empty:
            return True, self.view.revision
        result = await self.backend.txn(
            [Compare(k, r) for k, r in plan.compares.items()],
            [Put(k, v) for k, v in plan.puts.items()],
            [Delete(k) for k in sorted(plan.deletes)],
        )
        if result.succeeded:
            await self.view.wait_applied(result.revision)
            return True, result.revision
        # Lost a compare: catch up before re-planning. On etcd the failed txn's
        # revision may belong to a key outside our prefix and never reach our
        # watch, so the wait is bounded.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CATCH_UP):
                await self.view.wait_applied(result.revision)
        return False, result.revision
