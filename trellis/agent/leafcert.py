"""The agent's leaf certificates: made on demand, renewed ahead of expiry, re-issued
after a root rotation, delivered to blocking readers (shell).

    GET /v1/agent/connect/ca/leaf/web ─▶ LeafManager.get ─▶ entry valid for the
                                           │                active signing key? ──▶ answer
                                           └─ no: key + CSR here ─▶ Signer.sign_csr ─┘
    run(): a heap of due renewals; a watch on the roots that re-times every leaf
           whose signing key is no longer the active one (renewal.py rule 2)

Rules:
1. The private key is generated here and never leaves this object except in the
   answer to the agent's own API (as Consul's agent does).
2. One issuance per (namespace, service) at a time: concurrent readers share it.
3. Every new certificate (or a new chain for the same certificate) gets a new,
   higher index; a blocking reader with ``index=N`` returns once the index passes N
   or its wait ends.
4. A non-blocking read re-validates: an expired leaf, or one signed by a key that is
   no longer the active one, is replaced before answering (Consul).
5. A leaf carries the DNS SANs its last ``get(dns_names=...)`` asked for (an ingress
   gateway's, for TLS on its listeners); asking for other names issues a new leaf, and
   ``get`` without them takes whatever the service's leaf carries.
6. Entries nobody asked for in ``IDLE_EXPIRY`` and nobody watches (``notify``) are
   dropped at their renewal time instead of renewed.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from trellis.connect import spiffe
from trellis.connect.ca import certs, renewal
from trellis.connect.ca.model import SignedLeaf
from trellis.connect.ca.renewal import RenewalPolicy
from trellis.connect.ca.tables import CATable
from trellis.errors import Conflict, TooManyRequests
from trellis.store.view import View

log = logging.getLogger("trellis.leaf")

IDLE_EXPIRY = 3 * 24 * 3600.0
EXPIRY_MARGIN = 1.0  # seconds: a leaf this close to its NotAfter counts as expired


class Signer(Protocol):
    async def sign_csr(self, csr_der: bytes) -> SignedLeaf: ...


@dataclass(frozen=True, slots=True)
class LeafCert:
    """A leaf as the agent hands it out (``/v1/agent/connect/ca/leaf/:service``)."""

    signed: SignedLeaf
    private_key_pem: str
    chain: tuple[str, ...]  # the active root's intermediates when last checked
    index: int
    dns_names: tuple[str, ...] = ()  # the DNS SANs it was asked with (rule 5)

    @property
    def cert_pem(self) -> str:
        """The leaf followed by its intermediates / cross-signed certificates."""
        return self.signed.cert_pem + "".join(c if c.endswith("\n") else c + "\n" for c in self.chain)


@dataclass(slots=True)
class _Entry:
    namespace: str
    service: str
    dns_names: tuple[str, ...] = ()  # rule 5
    cert: LeafCert | None = None
    issued_at: float = 0.0
    due: float = 0.0
    failures: int = 0
    last_read: float = 0.0
    issuing: asyncio.Future | None = None
    changed: asyncio.Future | None = None
    watchers: set[asyncio.Future] = field(default_factory=set)  # notify()
    generation: int = 0


class LeafManager:
    def __init__(self, view: View, signer: Signer, *, datacenter: str, policy: RenewalPolicy = RenewalPolicy(),
                 clock: Callable[[], float] = time.time, rng: random.Random | None = None) -> None:
        self.view = view
        self.signer = signer
        self.datacenter = datacenter
        self.policy = policy
        self.clock = clock
        self.rng = rng or random.Random()
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._heap: list[tuple[float, int, tuple[str, str]]] = []
        self._index = 0
        self._wake = asyncio.Event()
        self.renewals = 0

    @property
    def _ca(self) -> CATable:
        return self.view["ca"]  # type: ignore[return-value]

    def _active_key_id(self) -> str:
        active = self._ca.active_root()
        return active.signing_key_id if active else ""

    def _next_index(self) -> int:
        self._index = max(self._index + 1, self.view.revision)
        return self._index

    # -- reads ----------------------------------------------------------------------------
    async def get(self, namespace: str, service: str, *, index: int = 0, wait: float = 0.0,
                  dns_names: tuple[str, ...] | None = None) -> LeafCert:
        """The service's current leaf (rule 4 when ``index`` is 0), or, with ``index``,
        the first leaf whose index passes it within ``wait`` seconds (rule 3); with
        ``dns_names``, one carrying exactly those DNS SANs (rule 5)."""
        entry = self._entries.get((namespace, service))
        if entry is None:
            entry = self._entries[(namespace, service)] = _Entry(namespace, service)
        entry.last_read = self.clock()
        if dns_names is not None:
            entry.dns_names = dns_names
        if (entry.cert is None or entry.cert.dns_names != entry.dns_names
                or (index == 0 and not self._usable(entry.cert))):
            cert = await self._issue(entry)
            if cert.dns_names != entry.dns_names:  # shared an issuance begun for other names
                cert = await self._issue(entry)
            return cert
        if index == 0 or entry.cert.index > index:
            return entry.cert
        return await self._wait_change(entry, index, wait)

    def notify(self, namespace: str, service: str, index: int, fut: asyncio.Future) -> bool:
        """``get(index=...)`` without a task: resolve ``fut`` when the service's leaf passes
        ``index``. Returns True, registering nothing, when it already has (or there is no
        leaf to wait on). The caller ``forget``s the future when done with it."""
        entry = self._entries.get((namespace, service))
        if entry is None or entry.cert is None or entry.cert.index > index:
            return True
        entry.watchers.add(fut)
        return False

    def forget(self, namespace: str, service: str, fut: asyncio.Future) -> None:
        entry = self._entries.get((namespace, service))
        if entry is not None:
            entry.watchers.discard(fut)

    def _usable(self, cert: LeafCert) -> bool:
        return (cert.signed.valid_before - EXPIRY_MARGIN > self.clock()
                and cert.signed.signing_key_id == self._active_key_id())

    async def _wait_change(self, entry: _Entry, index: int, wait: float) -> LeafCert:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while entry.cert is not None and entry.cert.index <= index:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            if entry.changed is None or entry.changed.done():
                entry.changed = loop.create_future()
            try:
                async with asyncio.timeout(remaining):
                    await asyncio.shield(entry.changed)
            except TimeoutError:
                break
        assert entry.cert is not None
        return entry.cert

    # -- issuing -----------------------------------------------------------------------------
    async def _issue(self, entry: _Entry) -> LeafCert:
        """Make a key and CSR, have it signed, publish (rule 2: shared by concurrent callers)."""
        if entry.issuing is not None:
            return await asyncio.shield(entry.issuing)
        entry.issuing = asyncio.get_running_loop().create_future()
        try:
            cert = await self._sign(entry)
        except BaseException as exc:
            entry.issuing.set_exception(exc)
            entry.issuing.exception()  # retrieved: sharing callers get it via await
            raise
        else:
            entry.issuing.set_result(cert)
            return cert
        finally:
            entry.issuing = None

    async def _sign(self, entry: _Entry) -> LeafCert:
        td = self._ca.trust_domain
        uri = spiffe.service_uri(td, entry.namespace, self.datacenter, entry.service)
        key = certs.generate_key(certs.LEAF_KEY)
        dns_names = entry.dns_names
        csr = certs.dump_csr(certs.build_csr(key, uri, dns_names))
        for attempt in range(2):
            try:
                signed = await self.signer.sign_csr(csr)
                break
            except Conflict:  # the root was pruned under the signing: once more, now
                if attempt:
                    raise
        cert = LeafCert(signed, certs.dump_private_key(key), signed.intermediates, self._next_index(), dns_names)
        self._publish(entry, cert, issued_at=self.clock())
        return cert

    def _publish(self, entry: _Entry, cert: LeafCert, *, issued_at: float | None = None) -> None:
        entry.cert = cert
        entry.failures = 0
        if issued_at is not None:
            entry.issued_at = issued_at
            self._schedule(entry, renewal.renew_at(self.policy, issued_at, cert.signed.valid_before,
                                                   self.rng.random()))
        if entry.changed is not None and not entry.changed.done():
            entry.changed.set_result(None)
        for fut in entry.watchers:
            if not fut.done():
                fut.set_result(None)
        entry.watchers.clear()

    def _schedule(self, entry: _Entry, due: float) -> None:
        entry.due = due
        entry.generation += 1
        heapq.heappush(self._heap, (due, entry.generation, (entry.namespace, entry.service)))
        self._wake.set()

    # -- background renewals ----------------------------------------------------------------------
    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._follow_roots(), name="leaf-roots")
            tg.create_task(self._renew_due(), name="leaf-renewals")

    async def _renew_due(self) -> None:
        while True:
            now = self.clock()
            while self._heap and self._heap[0][0] <= now:
                due, generation, key = heapq.heappop(self._heap)
                entry = self._entries.get(key)
                if entry is None or generation != entry.generation:
                    continue  # re-timed since
                await self._renew(entry, now)
            self._wake.clear()
            timeout = (self._heap[0][0] - self.clock()) if self._heap else 3600.0
            try:
                async with asyncio.timeout(max(0.0, timeout)):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _renew(self, entry: _Entry, now: float) -> None:
        if now - entry.last_read > IDLE_EXPIRY and not entry.watchers:  # rule 6
            self._entries.pop((entry.namespace, entry.service), None)
            return
        try:
            await self._issue(entry)
            self.renewals += 1
        except TooManyRequests as exc:
            entry.failures += 1
            self._schedule(entry, renewal.retry_at(self.clock(), entry.failures, exc.retry_after, self.rng.random()))
        except Exception as exc:  # keep the old leaf; try again later
            entry.failures += 1
            log.warning("renewing the leaf of %s/%s failed (%s); retrying", entry.namespace, entry.service, exc)
            self._schedule(entry, renewal.retry_at(self.clock(), entry.failures, None, self.rng.random()))

    async def _follow_roots(self) -> None:
        """Re-time leaves whose signing key is no longer active; refresh chains that changed."""
        watch = [("ca-roots",)]
        while True:
            index = self.view.index_of(watch)
            self._roots_changed()
            await self.view.wait_change(watch, index, 3600)

    def _roots_changed(self) -> None:
        active = self._ca.active_root()
        if active is None:
            return
        now = self.clock()
        for entry in self._entries.values():
            cert = entry.cert
            if cert is None:
                continue
            if cert.signed.signing_key_id != active.signing_key_id:
                due = renewal.root_change_at(self.policy, now, self.rng.random())
                if due < entry.due or entry.due <= now:
                    self._schedule(entry, due)
            elif cert.chain != active.intermediate_certs:
                self._publish(entry, replace(cert, chain=active.intermediate_certs, index=self._next_index()))

    # -- introspection --------------------------------------------------------------------------
    def cached(self) -> int:
        return len(self._entries)
