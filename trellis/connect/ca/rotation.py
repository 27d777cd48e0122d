"""The CA's state changes as pure plans over the view: initialise, reconfigure,
rotate, mark issued leaves, prune rotated-out roots.

    new config ─▶ same identity? ──yes──▶ plan_config_only
                      │no
                      ▼
      new root (shell makes keys) ─▶ cross-signed by the active key ─▶ plan_rotation
                                                                        (one txn: config,
                                                                         old root inactive,
                                                                         new root active)

Rules:
1. Every plan compares on what it read, so two servers racing produce one result;
   a rotation whose active root moved under it is refused with Conflict instead of
   installing a cross-signature by a root that is no longer active.
2. A rotated-out root is pruned once no leaf it signed can still be valid: its
   issued mark (an upper bound on every such leaf's NotAfter, written before the
   leaf is handed out) has passed. Not guessed from the TTL. It is also kept for one
   leaf lifetime after its rotation (``grace``) even if it signed nothing: any peer
   still working has renewed its leaf, and with it its trust bundle, within that
   time, so no live peer is left holding only a bundle without the new root.
3. When a root is pruned, the cross-signed certificates it made leave the active
   root's chain: nobody needs to reach it any more.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from cryptography import x509

from trellis.connect.ca import certs, model
from trellis.connect.ca.config import CAConfig
from trellis.connect.ca.model import CAConfigDoc, CARoot, IssuedMark
from trellis.connect.ca.tables import CATable
from trellis.errors import Conflict
from trellis.store.view import View
from trellis.store.writer import Plan


def root_doc(cert: x509.Certificate, key: certs.PrivateKey, *, cluster_id: str,
             intermediates: Iterable[str] = (), cross_signed_by: str = "") -> CARoot:
    """The stored record of a root certificate and its key (active). Pure."""
    spec = certs.key_spec_of(key)
    return CARoot(
        id=certs.fingerprint_id(cert), name=model.ROOT_NAME, serial_number=cert.serial_number & (2**64 - 1),
        signing_key_id=certs.colon_hex(certs.subject_key_id(cert)), external_trust_domain=cluster_id,
        not_before=certs.not_before(cert).timestamp(), not_after=certs.not_after(cert).timestamp(),
        root_cert=certs.dump_cert(cert), signing_key=certs.dump_private_key(key),
        private_key_type=spec.type, private_key_bits=spec.bits, intermediate_certs=tuple(intermediates),
        active=True, cross_signed_by=cross_signed_by,
    )


def config_doc(cluster_id: str, cfg: CAConfig, *, force_without_cross_signing: bool = False,
               state: dict[str, str] | None = None) -> CAConfigDoc:
    return CAConfigDoc(cluster_id=cluster_id, provider=cfg.provider, config=dict(cfg.raw),
                       force_without_cross_signing=force_without_cross_signing, state=state)


def table(view: View) -> CATable:
    return view["ca"]  # type: ignore[return-value]


def _mod(present: CAConfigDoc | CARoot | IssuedMark | None) -> int:
    """The revision to compare a key on: its modify index, 0 when absent."""
    return present.modify_index if present is not None else 0


def plan_initialize(view: View, cfg_doc: CAConfigDoc, root: CARoot) -> Plan:
    """First start of a cluster: store config and root unless someone already did."""
    p = Plan()
    if table(view).config is not None:
        return p
    p.put(model.CONFIG_KEY, cfg_doc, expected=0)
    p.put(model.root_key(root.id), root, expected=0)
    return p


def plan_config_only(view: View, new: CAConfigDoc, *, expected_revision: int) -> Plan:
    """A change that keeps the root (config.py rule 4)."""
    current = table(view).config
    if current is None or current.modify_index != expected_revision:
        raise Conflict("the CA configuration changed while this request was processed; retry it")
    p = Plan()
    if (current.provider, current.config, current.force_without_cross_signing) != (
            new.provider, new.config, new.force_without_cross_signing):
        p.put(model.CONFIG_KEY, new, expected=current.modify_index)
    return p


def plan_rotation(view: View, new_root: CARoot, *, expected_active: str, now: float,
                  new_config: CAConfigDoc | None = None) -> Plan:
    """Make ``new_root`` active and the current active root rotated out, in one txn."""
    t = table(view)
    active = t.active_root()
    if active is None or active.id != expected_active:
        raise Conflict("the active CA root changed while this rotation was prepared; retry it")
    p = Plan()
    if new_config is not None:
        p.put(model.CONFIG_KEY, new_config, expected=_mod(t.config))
    for r in t.roots.values():
        if r.active:
            p.put(model.root_key(r.id), _replace(r, active=False, rotated_out_at=now), expected=r.modify_index)
    previous = t.roots.get(new_root.id)  # rotating back to a root that is still trusted
    p.put(model.root_key(new_root.id), new_root, expected=_mod(previous))
    return p


def plan_mark(view: View, root_id: str, not_after: float) -> Plan:
    """Raise a root's issued mark to ``not_after`` (never lower it). A root pruned
    while the leaf was being signed is a Conflict: that leaf must not be handed out."""
    t = table(view)
    root = t.roots.get(root_id)
    if root is None:
        raise Conflict(f"CA root {root_id} was rotated out and pruned while signing; retry")
    current = t.marks.get(root_id)
    p = Plan()
    if current is None or current.not_after < not_after:
        p.expect(model.root_key(root_id), root.modify_index)  # a prune racing us fails one of the two
        p.put(model.issued_key(root_id), IssuedMark(root_id, not_after), expected=_mod(current))
    return p


def prunable(t: CATable, now: float, grace: float = 0.0) -> list[str]:
    """Rotated-out roots no valid leaf can chain to any more (rule 2). Pure."""
    out = []
    for r in t.roots.values():
        if r.active or r.rotated_out_at + grace > now:
            continue
        mark = t.marks.get(r.id)
        if mark is None or mark.not_after <= now:
            out.append(r.id)
    return sorted(out)


def plan_prune(view: View, now: float, grace: float = 0.0) -> Plan:
    t = table(view)
    gone = set(prunable(t, now, grace))
    p = Plan()
    for rid in sorted(gone):
        p.delete(model.root_key(rid), expected=t.roots[rid].modify_index)
        p.delete(model.issued_key(rid), expected=_mod(t.marks.get(rid)))  # a mark raised meanwhile stops it
    for rid in t.marks:
        if rid not in t.roots:  # a mark left by a signing that lost the race with pruning
            p.delete(model.issued_key(rid))
    for r in t.roots.values():  # rule 3
        if r.id not in gone and r.cross_signed_by in gone:
            p.put(model.root_key(r.id), _replace(r, intermediate_certs=(), cross_signed_by=""),
                  expected=r.modify_index)
    return p


def next_prune(t: CATable, now: float, grace: float = 0.0) -> float | None:
    """When the next rotated-out root becomes prunable (None: none waiting). Pure."""
    times = []
    for r in t.roots.values():
        if r.active:
            continue
        mark = t.marks.get(r.id)
        when = max(mark.not_after if mark else 0.0, r.rotated_out_at + grace)
        if when > now:
            times.append(when)
    return min(times) if times else None


def rotation_due(cfg: CAConfig, active: CARoot, now: float) -> float | None:
    """When ``RotationPeriod`` asks for a new generated root (None: never). Pure."""
    if not cfg.rotation_period or cfg.imported:
        return None
    return active.not_before + certs.CLOCK_SKEW.total_seconds() + cfg.rotation_period


def signer_of(root: CARoot) -> tuple[x509.Certificate, certs.PrivateKey]:
    return certs.parse_cert(root.root_cert), certs.load_private_key(root.signing_key)


def _replace(root: CARoot, **changes: object) -> CARoot:
    return dataclasses.replace(root, **changes)  # type: ignore[arg-type]
