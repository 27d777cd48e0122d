"""The server's CA (shell): initialise, reconfigure, rotate, sign, prune.

    agent start ─▶ initialize ──┐
    PUT configuration ─▶ set_config ─┼─▶ rotation.plan_* ─▶ Writer (one txn each)
    connect ca rotate ─▶ rotate ─────┘
    leaf CSR ─▶ limiter ─▶ check_csr ─▶ sign_leaf ─▶ mark issued ─▶ SignedLeaf
    run(): prune rotated-out roots when their mark passes; RotationPeriod rotations

Rules:
1. The private key of a leaf never comes here: only its CSR (DER).
2. A leaf is returned only after its root's issued mark covers its NotAfter
   (rotation.py rule 2). Marks are raised in steps of ``MARK_STEP`` of the leaf TTL
   (at most an hour), so a steady stream of signings writes rarely.
3. Keys, roots and signatures come from the provider (provider.py); this module
   decides when, and records what they made.
4. ``clock`` is wall time in epoch seconds and ``monotonic`` feeds the limiter;
   both are injected so tests control time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

from cryptography import x509

from trellis.config.entry.model_gateway import IngressGateway, tls_dns_sans
from trellis.connect import spiffe
from trellis.connect.ca import certs, config, rotation
from trellis.connect.ca.config import CAConfig, ConfigRequest
from trellis.connect.ca.errors import CANotReady, ConnectDisabled, InvalidCAConfig
from trellis.connect.ca.limiter import CSRLimiter
from trellis.connect.ca.provider import Provider, provider_for
from trellis.connect.ca.model import CAConfigDoc, CARoot, SignedLeaf
from trellis.connect.ca.tables import CATable
from trellis.errors import Conflict, InvalidInput
from trellis.store.view import View
from trellis.store.writer import Writer

log = logging.getLogger("trellis.ca")

MARK_STEP = 0.25  # of the leaf TTL
MARK_STEP_MAX = 3600.0


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc)


def _leaf_serial() -> int:
    return secrets.randbits(127) | 1 << 120  # 16 bytes, never 0


class CAManager:
    def __init__(self, view: View, writer: Writer, *, datacenter: str, enabled: bool = True,
                 domain: str = "consul.", prune_interval: float = 3600.0, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.view = view
        self.writer = writer
        self.datacenter = datacenter
        self.domain = domain
        self.enabled = enabled
        self.prune_interval = prune_interval
        self.clock = clock
        self.limiter = CSRLimiter(monotonic)
        self._providers: dict[str, Provider] = {}
        self._parsed: tuple[int, CAConfig] | None = None
        self._mark_lock = asyncio.Lock()
        self.signed = 0  # leaves signed since start (for stats and benchmarks)

    # -- reads ---------------------------------------------------------------------
    @property
    def table(self) -> CATable:
        return self.view["ca"]  # type: ignore[return-value]

    def ready(self) -> tuple[CAConfigDoc, CARoot]:
        """The stored configuration and the active root; raises when there are none."""
        if not self.enabled:
            raise ConnectDisabled()
        doc, active = self.table.config, self.table.active_root()
        if doc is None or active is None:
            raise CANotReady()
        return doc, active

    def current_config(self) -> CAConfig:
        doc, _ = self.ready()
        if self._parsed is None or self._parsed[0] != doc.modify_index:
            self._parsed = (doc.modify_index, config.decode_config(doc.provider, doc.config))
        return self._parsed[1]

    # -- changing the CA -------------------------------------------------------------------
    async def initialize(self, provider: str, ca_config: dict[str, Any]) -> None:
        """On a server's start: create the cluster ID and the first root unless the
        store has them (a restart keeps them, so existing leaves stay valid)."""
        if not self.enabled:
            return
        if self.table.config is not None:
            self.current_config()  # a stored configuration that no longer decodes fails the start
            return
        try:
            cfg = config.from_agent(provider, ca_config)
        except InvalidInput as exc:
            raise InvalidInput("connect.ca_config", message=f"connect.ca_config: {exc}") from None
        cluster_id = str(uuid.uuid4())
        cert, key = await self._new_root(cfg, cluster_id)
        root = rotation.root_doc(cert, key, cluster_id=cluster_id)
        await self.writer.apply(lambda v: rotation.plan_initialize(v, rotation.config_doc(cluster_id, cfg), root))
        log.info("connect CA initialised: trust domain %s, root %s", self.table.trust_domain, self.table.active_root().id)

    async def set_config(self, request: ConfigRequest) -> bool:
        """Store a new configuration; rotate the root when its identity changed.
        Returns True when the root was rotated. Everything is checked before anything
        is written, so a refused request leaves the CA as it was."""
        doc, active = self.ready()
        if request.state is not None and request.state != (doc.state or {}):
            raise InvalidCAConfig("State", "Provider State is read-only. It must be omitted or identical to "
                                           "the current value")
        current = self.current_config()
        new_doc = rotation.config_doc(doc.cluster_id, request.config, state=doc.state,
                                      force_without_cross_signing=request.force_without_cross_signing)
        if request.config.identity() != current.identity():
            cert, key = await self._new_root(request.config, doc.cluster_id)
            if certs.fingerprint_id(cert) != active.id:
                await self._rotate_to(cert, key, active, request.config, new_doc)
                return True
        await self.writer.apply(lambda v: rotation.plan_config_only(v, new_doc, expected_revision=doc.modify_index))
        return False

    async def rotate(self) -> CARoot:
        """A new generated root, now (``trellis connect ca rotate``)."""
        doc, active = self.ready()
        cfg = self.current_config()
        if cfg.imported:
            raise InvalidCAConfig("Config.PrivateKey", "the active root was imported (PrivateKey in the CA "
                                  "configuration): rotate with set-config and a new PrivateKey and RootCert, "
                                  "or remove them to have trellis generate roots")
        cert, key = await self._new_root(cfg, doc.cluster_id)
        return await self._rotate_to(cert, key, active, cfg, None)

    async def _new_root(self, cfg: CAConfig, cluster_id: str) -> tuple[x509.Certificate, certs.PrivateKey]:
        return await self._provider(cfg.provider).make_root(cfg, cluster_id, _utc(self.clock()))

    def _provider(self, name: str) -> Provider:
        if self._providers.get(name) is None:
            self._providers[name] = provider_for(name)
        return self._providers[name]

    async def _rotate_to(self, cert: x509.Certificate, key: certs.PrivateKey, active: CARoot, cfg: CAConfig,
                         new_doc: CAConfigDoc | None) -> CARoot:
        now = self.clock()
        current = self.table.config.provider
        cross = await self._provider(current).cross_sign(active, cert, serial=_leaf_serial(), now=_utc(now),
                                                         end=_utc(now + cfg.intermediate_cert_ttl))
        root = rotation.root_doc(cert, key, cluster_id=self.table.config.cluster_id,
                                 intermediates=(certs.dump_cert(cross),), cross_signed_by=active.id)
        await self.writer.apply(lambda v: rotation.plan_rotation(v, root, expected_active=active.id, now=now,
                                                                 new_config=new_doc))
        log.info("connect CA rotated: root %s replaces %s (cross-signed by it)", root.id, active.id)
        return root

    # -- signing ------------------------------------------------------------------------
    async def sign_csr(self, csr_der: bytes) -> SignedLeaf:
        """Sign an agent's CSR with the active root (rules 1-3). Raises RateLimited,
        InvalidCertificate (a bad CSR), ConnectDisabled or CANotReady."""
        doc, active = self.ready()
        cfg = self.current_config()
        self.limiter.configure(cfg.csr_max_per_second, cfg.csr_max_concurrent)
        async with self.limiter.admit():
            csr = certs.load_csr(csr_der)
            sid = certs.check_csr(csr, trust_domain=self.table.trust_domain, datacenter=self.datacenter,
                                  dns_names=self._granted_dns_names)
            leaf = await self._provider(cfg.provider).sign_leaf(
                active, csr, serial=_leaf_serial(), now=_utc(self.clock()),
                ttl=dt.timedelta(seconds=cfg.leaf_cert_ttl))
            valid_before = certs.not_after(leaf).timestamp()
            await self._cover(active.id, valid_before, cfg.leaf_cert_ttl)
        self.signed += 1
        return SignedLeaf(
            cert_pem=certs.dump_cert(leaf), intermediates=active.intermediate_certs, root_id=active.id,
            signing_key_id=active.signing_key_id, serial=certs.serial_hex(leaf.serial_number),
            service=sid.service, namespace=sid.namespace, service_uri=sid.uri,
            valid_after=certs.not_before(leaf).timestamp(), valid_before=valid_before,
        )

    def _granted_dns_names(self, sid: spiffe.ServiceID) -> tuple[str, ...]:
        """The DNS SANs a leaf of ``sid`` may carry: its ingress-gateway entry's, if it has one."""
        row = self.view["config"].get(IngressGateway.KIND, sid.namespace, sid.service)
        if row is None:
            return ()
        return tls_dns_sans(row.entry, datacenter=self.datacenter, domain=self.domain)

    async def _cover(self, root_id: str, valid_before: float, ttl: float) -> None:
        """Raise the root's issued mark past ``valid_before`` before the leaf leaves (rule 2)."""
        def covered() -> bool:
            mark = self.table.marks.get(root_id)
            return mark is not None and mark.not_after >= valid_before

        if covered():
            return
        async with self._mark_lock:
            if not covered():
                target = valid_before + min(ttl * MARK_STEP, MARK_STEP_MAX)
                await self.writer.apply(lambda v: rotation.plan_mark(v, root_id, target))

    # -- the background loop --------------------------------------------------------------
    async def run(self) -> None:
        """Prune rotated-out roots as their marks pass; rotate when RotationPeriod says.
        Wakes when the roots or the configuration change, when the next root becomes
        prunable, and at least every ``prune_interval``."""
        if not self.enabled:
            return
        while True:
            watch = [("ca-roots",), ("ca-config",)]
            index = self.view.index_of(watch)
            try:
                wake = await self._tend()
            except (Conflict, CANotReady) as exc:
                log.info("CA upkeep will retry: %s", exc)
                wake = self.clock() + 1.0
            except Exception:  # the loop must outlive one bad round; the error is logged once
                log.exception("CA upkeep failed; retrying in %.0fs", self.prune_interval)
                wake = self.clock() + self.prune_interval
            await self.view.wait_change(watch, index, max(0.0, wake - self.clock()))

    async def _tend(self) -> float:
        """One round of upkeep; returns when the next one is due."""
        now = self.clock()
        t = self.table
        if t.config is None or t.active_root() is None:
            return now + self.prune_interval
        grace = self.current_config().leaf_cert_ttl
        pruned = rotation.prunable(t, now, grace)
        if pruned:
            await self.writer.apply(lambda v: rotation.plan_prune(v, self.clock(), grace))
            log.info("connect CA: pruned rotated-out root(s) %s: no leaf they signed is still valid",
                     ", ".join(pruned))
        active = t.active_root()
        due = rotation.rotation_due(self.current_config(), active, now)
        if due is not None and due <= now:
            log.info("connect CA: root %s is older than RotationPeriod; rotating", active.id)
            await self.rotate()
            return self.clock()
        candidates = [now + self.prune_interval, rotation.next_prune(t, now, grace), due]
        return min(c for c in candidates if c is not None)
