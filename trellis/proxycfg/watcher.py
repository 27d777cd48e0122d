"""The agent's proxy snapshots (shell): one follower task per proxy it serves.

    local connect-proxy services (view) ─┐
    ephemeral proxies (POST .../proxies) ┴─▶ ProxyWatcher.run ─▶ one _follow task each
        _follow: leaf (LeafManager) + view ─▶ build (pure) ─▶ new version? publish
                 wait: any watch key moves, or the leaf changes ─▶ debounce ─▶ again

Rules:
1. Published snapshots are latest-value-wins: a reader asks with the index it has
   and gets the newest snapshot past it (STYLE §5); a slow reader never blocks a rebuild.
2. A rebuild waits ``debounce`` (DESIGN: 10-20 ms) after a change, so a burst of
   writes costs one snapshot.
3. The registry remembers, per proxy, the version sent and the version the proxy
   reports as applied (a built-in proxy's heartbeat, Envoy's ACKs), with their times,
   and the proxy's own figures (connections, pid); ``-list`` shows each proxy's lag and
   flags one that has not applied the newest snapshot within ``STALE_AFTER``.
4. A proxy's leaf failing to issue (rate limited, CA not ready) is retried; the last
   snapshot stays published meanwhile.
5. Besides connect-proxy services, the agent serves its ingress gateways (``SERVED_GATEWAYS``),
   by their effective kind (catalog/gateway.py): a ``connect.gateway`` service becomes
   one when its config entry is written, and the roster watches for that. A gateway
   presents its own identity (its leaf is for its own name).
6. A terminating gateway also presents the identity of each service it links: its
   follower gets a leaf for every linked service (build.py rule 9) and wakes when any
   of them changes, as when a watch key moves.
7. An ingress gateway's leaf carries the DNS SANs its entry grants when it asks for TLS
   (``tls_dns_sans``: ``*.ingress.<domain>``, ``*.ingress.<dc>.<domain>``, the services'
   Hosts); the entry is in the build's watch, so a changed entry asks for a new leaf.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from trellis.agent.leafcert import LeafCert, LeafManager
from trellis.catalog.gateway import kind_watch, with_effective_kind
from trellis.catalog.keys import ServiceRef
from trellis.catalog.model import Service, ServiceKind
from trellis.config.entry.model_gateway import IngressGateway, tls_dns_sans
from trellis.errors import NotFound, TrellisError, Unavailable
from trellis.proxycfg import build as builder
from trellis.proxycfg.model import ConnectProxySnapshot, DefaultDecision, LeafSnapshot
from trellis.store.view import View

log = logging.getLogger("trellis.proxycfg")

DEBOUNCE = 0.015
SERVED_GATEWAYS = (ServiceKind.INGRESS_GATEWAY, ServiceKind.TERMINATING_GATEWAY)  # rule 5
LEAF_RETRY = 1.0
BUILD_RETRY = 5.0  # a snapshot that failed to build (a bug): try again this often
STALE_AFTER = 10.0  # seconds a snapshot may stay unapplied before -list flags the proxy
EPHEMERAL_SILENCE = 60.0  # seconds without a heartbeat before an ephemeral proxy is dropped


@dataclass(slots=True)
class ProxyStatus:
    proxy_id: str
    kind: str = "connect-proxy"
    data_plane: str = ""  # "builtin" | "envoy", from the heartbeat
    sent_version: str = ""
    sent_index: int = 0
    applied_version: str = ""
    published_at: float = 0.0  # when the newest snapshot version was published
    applied_at: float = 0.0  # when the proxy reported that version applied (ACKed)
    last_seen: float = 0.0
    connections: int = 0
    pid: int = 0
    stop_requested: bool = False
    stop_pid: int = 0  # the process that was running when the stop was asked
    extra: dict[str, Any] = field(default_factory=dict)


class ProxyWatcher:
    def __init__(self, view: View, leaves: LeafManager, *, node: str, datacenter: str,
                 default: Callable[[], DefaultDecision], domain: str = "consul.", debounce: float = DEBOUNCE,
                 clock: Callable[[], float] = time.time,
                 on_proxy_up: Callable[[Service], None] | None = None) -> None:
        self.view = view
        self.leaves = leaves
        self.node = node
        self.datacenter = datacenter
        self.domain = domain
        self.default = default
        self.debounce = debounce
        self.on_proxy_up = on_proxy_up  # a proxy process reported for the first time
        self.clock = clock
        self.snapshots: dict[str, ConnectProxySnapshot] = {}
        self.status: dict[str, ProxyStatus] = {}
        self.ephemeral: dict[str, Service] = {}
        self._readers: dict[str, set[asyncio.Future]] = {}  # proxy ID -> parked get() calls
        self._tasks: dict[str, asyncio.Task] = {}
        self._index = 0
        self._roster_changed = asyncio.Event()
        self._parked: dict[str, asyncio.Future] = {}  # proxy ID -> what its follower waits on
        self._refs: dict[str, ServiceRef] = {}  # proxy ID -> its catalog ref (proxy() is on every hot path)
        self.closing = False
        self.rebuilds = 0

    # -- reads ------------------------------------------------------------------------------
    def proxy(self, proxy_id: str) -> Service | None:
        """The proxy's service: ephemeral, else the registration on this node (one dict
        lookup through the ref the roster remembered; a scan only for an ID it has not seen)."""
        found = self.ephemeral.get(proxy_id)
        if found is not None:
            return found
        table = self.view["services"]
        ref = self._refs.get(proxy_id)
        if ref is not None:
            s = table.rows.get(ref)
            if s is not None and (s.kind is ServiceKind.CONNECT_PROXY or self._gateway(s) is not None):
                return s if s.kind is ServiceKind.CONNECT_PROXY else self._gateway(s)
        for s in table.on_node(self.node):
            if s.id == proxy_id and (s.kind is ServiceKind.CONNECT_PROXY or self._gateway(s) is not None):
                self._refs[proxy_id] = ServiceRef.of(s.node, s.namespace, s.id)
                return s if s.kind is ServiceKind.CONNECT_PROXY else self._gateway(s)
        return None

    def _gateway(self, s: Service) -> Service | None:
        """Rule 5: ``s`` with its effective kind when that is a gateway this agent serves."""
        if s.kind not in (ServiceKind.TYPICAL, *SERVED_GATEWAYS):
            return None
        effective, _ = with_effective_kind(self.view, s)
        return effective if effective.kind in SERVED_GATEWAYS else None

    async def get(self, proxy_id: str, *, index: int = 0, wait: float = 0.0) -> ConnectProxySnapshot:
        """The newest snapshot past ``index`` (rule 1), or the current one when ``wait`` ends.
        Raises NotFound for a proxy this agent does not serve."""
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            if self.proxy(proxy_id) is None:
                raise NotFound(f"unknown proxy ID: {proxy_id} (not a connect-proxy registered with this agent)")
            snap = self.snapshots.get(proxy_id)
            if snap is not None and (index == 0 or snap.index > index):
                return self._sent(snap)
            if self.closing:  # nothing newer will come: end the long poll (xDS streams end, proxies retry)
                raise Unavailable("the agent is shutting down")
            remaining = deadline - asyncio.get_running_loop().time()
            if snap is not None and remaining <= 0:
                return self._sent(snap)
            fut = asyncio.get_running_loop().create_future()
            readers = self._readers.setdefault(proxy_id, set())
            readers.add(fut)
            try:
                async with asyncio.timeout(max(remaining, 0.05) if snap is not None else max(remaining, 5.0)):
                    await fut
            except TimeoutError:
                if snap is None:
                    raise TrellisError(f"no snapshot for {proxy_id} yet (its leaf may not be issued yet)") from None
            finally:
                readers.discard(fut)

    def _sent(self, snap: ConnectProxySnapshot) -> ConnectProxySnapshot:
        st = self.status.setdefault(snap.proxy_id, ProxyStatus(snap.proxy_id))
        st.sent_version, st.sent_index = snap.version, snap.index
        return snap

    # -- the registry --------------------------------------------------------------------------
    def report(self, proxy_id: str, *, applied_version: str, connections: int = 0, pid: int = 0,
               data_plane: str = "builtin", extra: dict[str, Any] | None = None) -> ProxyStatus:
        if self.proxy(proxy_id) is None:
            raise NotFound(f"unknown proxy ID: {proxy_id}")
        st = self.status.setdefault(proxy_id, ProxyStatus(proxy_id))
        if st.stop_requested and pid and st.stop_pid and pid != st.stop_pid:
            st.stop_requested, st.stop_pid = False, 0  # a new process: the stop was for the old one
            self._poke(proxy_id)
        if pid and pid != st.pid and self.on_proxy_up is not None:
            self.on_proxy_up(self.proxy(proxy_id))  # type: ignore[arg-type]
        current = self.snapshots.get(proxy_id)
        if current is not None and applied_version == current.version and st.applied_version != applied_version:
            st.applied_at = self.clock()
        st.applied_version, st.connections, st.pid = applied_version, connections, pid
        st.data_plane, st.last_seen = data_plane, self.clock()
        st.extra = dict(extra or {})
        return st

    def lag(self, proxy_id: str) -> tuple[float, bool]:
        """(seconds, in sync): how long the newest snapshot took to be applied, or, while
        it is not yet, how long it has been waiting (rule 3)."""
        st, snap = self.status.get(proxy_id), self.snapshots.get(proxy_id)
        if st is None or snap is None or not st.published_at:
            return 0.0, False
        if st.applied_version == snap.version:
            return max(0.0, st.applied_at - st.published_at), True
        return max(0.0, self.clock() - st.published_at), False

    def request_stop(self, proxy_id: str) -> None:
        if self.proxy(proxy_id) is None:
            raise NotFound(f"unknown proxy ID: {proxy_id}")
        st = self.status.setdefault(proxy_id, ProxyStatus(proxy_id))
        st.stop_requested, st.stop_pid = True, st.pid
        self._poke(proxy_id)

    def add_ephemeral(self, service: Service) -> None:
        """A proxy with no catalog registration (``connect proxy -service`` without
        ``-register``). It is dropped after ``EPHEMERAL_SILENCE`` without a heartbeat."""
        self.ephemeral[service.id] = service
        self.status.setdefault(service.id, ProxyStatus(service.id)).last_seen = self.clock()
        self._roster_changed.set()

    def reap_ephemeral(self) -> list[str]:
        """Drop ephemeral proxies whose process went silent; returns their IDs."""
        now = self.clock()
        silent = [pid for pid in self.ephemeral
                  if now - self.status.get(pid, ProxyStatus(pid)).last_seen > EPHEMERAL_SILENCE]
        for proxy_id in silent:
            log.info("dropping ephemeral proxy %s: no heartbeat for %.0fs", proxy_id, EPHEMERAL_SILENCE)
            self.remove_ephemeral(proxy_id)
        return silent

    def remove_ephemeral(self, proxy_id: str) -> None:
        if self.ephemeral.pop(proxy_id, None) is not None:
            self._roster_changed.set()

    def _poke(self, proxy_id: str) -> None:
        fut = self._parked.get(proxy_id)
        if fut is not None and not fut.done():
            fut.set_result(None)

    # -- the background work ------------------------------------------------------------------------
    async def run(self) -> None:
        key = ("node-services", self.node.lower())
        try:
            while True:
                # a kind-less gateway becomes one when its config entry is written (rule 5)
                keys = [key, *(k for s in self.view["services"].on_node(self.node) for k in kind_watch(s))]
                index = self.view.index_of(keys)
                self.reap_ephemeral()
                self._sync_tasks()
                self._roster_changed.clear()
                waiter = asyncio.ensure_future(self.view.wait_change(keys, index, EPHEMERAL_SILENCE / 4))
                roster = asyncio.ensure_future(self._roster_changed.wait())
                try:
                    await asyncio.wait([waiter, roster], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    roster.cancel()
        finally:
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def _sync_tasks(self) -> None:
        wanted = {s.id for s in self.view["services"].on_node(self.node)
                  if s.kind is ServiceKind.CONNECT_PROXY or self._gateway(s) is not None}
        wanted |= set(self.ephemeral)
        for proxy_id in list(self._tasks):
            if proxy_id not in wanted:
                self._tasks.pop(proxy_id).cancel()
                self.snapshots.pop(proxy_id, None)
                self.status.pop(proxy_id, None)
                self._wake(proxy_id)
        for proxy_id in wanted - set(self._tasks):
            self._tasks[proxy_id] = asyncio.create_task(self._follow(proxy_id), name=f"proxycfg:{proxy_id}")

    def release(self) -> None:
        """The agent is stopping: answer every parked snapshot reader now."""
        self.closing = True
        for proxy_id in list(self._readers):
            self._wake(proxy_id)

    def _wake(self, proxy_id: str) -> None:
        for fut in self._readers.pop(proxy_id, ()):
            if not fut.done():
                fut.set_result(None)

    async def _follow(self, proxy_id: str) -> None:
        leaf: LeafCert | None = None
        failed = ""  # the last build error logged
        while True:
            proxy = self.proxy(proxy_id)
            if proxy is None or (proxy.proxy is None and proxy.kind is ServiceKind.CONNECT_PROXY):
                return
            # a sidecar presents its service's identity; a gateway its own
            ns = proxy.namespace
            service = proxy.proxy.destination_service_name if proxy.kind is ServiceKind.CONNECT_PROXY else proxy.name
            try:
                leaf = await self.leaves.get(ns, service, dns_names=self._dns_names(proxy))
                linked = await self._linked_leaves(proxy)  # rule 6
            except TrellisError as exc:  # rule 4
                log.warning("proxy %s: no leaf for %s or a service it links yet (%s); retrying",
                            proxy_id, service, exc)
                await asyncio.sleep(LEAF_RETRY)
                continue
            try:
                common = dict(datacenter=self.datacenter, leaf=_leaf_snapshot(leaf), default=self.default(),
                              stop=self._stopping(proxy_id))
                if proxy.kind is ServiceKind.CONNECT_PROXY:
                    result = builder.build(self.view, proxy, **common)
                elif proxy.kind is ServiceKind.TERMINATING_GATEWAY:
                    result = builder.build_terminating(self.view, proxy, **common, leaves={
                        key: _leaf_snapshot(cert) for key, cert in linked.items()})
                else:
                    result = builder.build_ingress(self.view, proxy, **common)
            except Exception as exc:  # a bug must not end the follower silently: the last snapshot stays
                if repr(exc) != failed:
                    log.exception("proxy %s: building its snapshot failed; it keeps the last one, retrying "
                                  "every %.0fs", proxy_id, BUILD_RETRY)
                failed = repr(exc)
                await asyncio.sleep(BUILD_RETRY)
                continue
            failed = ""
            self._publish(proxy_id, result.value)
            t = result.value.terminating
            if t is not None and any(s.leaf is None for s in t.services):
                await asyncio.sleep(self.debounce)  # linked while its leaves were fetched: fetch again
                continue
            await self._wait(proxy_id, result.watch, result.index, [(ns, service, leaf), *(
                (k[0], k[1], cert) for k, cert in linked.items())])
            await asyncio.sleep(self.debounce)  # rule 2

    def _dns_names(self, proxy: Service) -> tuple[str, ...] | None:
        """Rule 7: the DNS SANs an ingress gateway's leaf carries (None: not a question for
        other kinds)."""
        if proxy.kind in (ServiceKind.CONNECT_PROXY, ServiceKind.TERMINATING_GATEWAY):
            return None
        row = self.view["config"].get(IngressGateway.KIND, proxy.namespace, proxy.name)
        return tls_dns_sans(row.entry, datacenter=self.datacenter, domain=self.domain) if row else ()

    async def _linked_leaves(self, proxy: Service) -> dict[tuple[str, str], LeafCert]:
        """Rule 6: the leaf of every service a terminating gateway links (none for other kinds)."""
        if proxy.kind is not ServiceKind.TERMINATING_GATEWAY:
            return {}
        rows = builder.linked_services(self.view, proxy).value
        return {(g.service.namespace, g.service.name): await self.leaves.get(g.service.namespace, g.service.name)
                for g in rows}

    def _stopping(self, proxy_id: str) -> bool:
        st = self.status.get(proxy_id)
        return bool(st and st.stop_requested)

    def _publish(self, proxy_id: str, snap: ConnectProxySnapshot) -> None:
        current = self.snapshots.get(proxy_id)
        if current is not None and current.version == snap.version:
            return
        self._index = max(self._index + 1, self.view.revision)
        self.snapshots[proxy_id] = replace(snap, index=self._index)
        self.status.setdefault(proxy_id, ProxyStatus(proxy_id)).published_at = self.clock()
        self.rebuilds += 1
        self._wake(proxy_id)

    async def _wait(self, proxy_id: str, watch: frozenset, index: int,
                    leaves: list[tuple[str, str, LeafCert]]) -> None:
        """Until a watch key moves, a leaf changes, or the proxy is poked (a stop asked):
        one future that all of them resolve, so a thousand parked followers cost no tasks."""
        fut = asyncio.get_running_loop().create_future()
        keys = list(watch)
        try:
            if self.view.notify(keys, index, fut) or any(
                    self.leaves.notify(ns, service, leaf.index, fut) for ns, service, leaf in leaves):
                return
            self._parked[proxy_id] = fut
            try:
                await fut
            finally:
                self._parked.pop(proxy_id, None)
        finally:
            self.view.forget(keys, fut)
            for ns, service, _ in leaves:
                self.leaves.forget(ns, service, fut)


def _leaf_snapshot(leaf: LeafCert) -> LeafSnapshot:
    return LeafSnapshot(cert_pem=leaf.cert_pem, private_key_pem=leaf.private_key_pem,
                        service_uri=leaf.signed.service_uri, serial=leaf.signed.serial,
                        valid_before=leaf.signed.valid_before)
