"""The CA's plans over the view (trellis.connect.ca.rotation) and the CA table and queries.

A small in-memory ``Store`` stands for the backend: it keeps each key's revisions,
checks a plan's compares the way ``Backend.txn`` does (0: absent) and feeds the
committed change to a real ``View`` holding the real ``CATable``. So a test can plan
on one view state, let another plan commit first, and see whether the compares
catch it (rotation.py rule 1).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from trellis.connect.ca import certs, model, query, rotation
from trellis.connect.ca.config import CAConfig, decode_config
from trellis.connect.ca.errors import CANotReady
from trellis.connect.ca.model import CAConfigDoc, CARoot, IssuedMark
from trellis.connect.ca.tables import CATable
from trellis.errors import Conflict
from trellis.store import doc
from trellis.store.backend import Event, EventKind, WatchBatch
from trellis.store.view import View
from trellis.store.writer import Plan

CLUSTER_ID = "7f3c2a10-1b2c-4d5e-8f90-0123456789ab"
TD = f"{CLUSTER_ID}.consul"
T0 = 1_700_000_000.0
DAY = 86400.0

R1, R2, R3 = "11:11:11:11", "22:22:22:22", "33:33:33:33"


# --- builders ------------------------------------------------------------------------------------
def cfg_doc(**kw: object) -> CAConfigDoc:
    kw.setdefault("config", {"LeafCertTTL": "72h"})
    return CAConfigDoc(cluster_id=CLUSTER_ID, provider="consul", **kw)  # type: ignore[arg-type]


def root(rid: str, *, active: bool = False, rotated_out_at: float = 0.0, cross_signed_by: str = "",
         intermediates: tuple[str, ...] = (), not_before: float = T0) -> CARoot:
    return CARoot(
        id=rid, name=model.ROOT_NAME, serial_number=1, signing_key_id="aa:bb", external_trust_domain=CLUSTER_ID,
        not_before=not_before, not_after=not_before + 3650 * DAY, root_cert=f"CERT {rid}", signing_key=f"KEY {rid}",
        private_key_type="ec", private_key_bits=256, intermediate_certs=intermediates, active=active,
        rotated_out_at=rotated_out_at, cross_signed_by=cross_signed_by,
    )


def mark(rid: str, not_after: float) -> IssuedMark:
    return IssuedMark(rid, not_after)


def key_of(value: object) -> str:
    if isinstance(value, CAConfigDoc):
        return model.CONFIG_KEY
    if isinstance(value, CARoot):
        return model.root_key(value.id)
    if isinstance(value, IssuedMark):
        return model.issued_key(value.root_id)
    raise TypeError(value)


class Store:
    """Revisioned keys + a View with the CA table; ``commit`` is a txn (compares, then writes)."""

    def __init__(self, *docs: object) -> None:
        self.kv: dict[str, tuple[int, int]] = {}  # key -> (create, mod)
        self.revision = 1
        self.view = View([CATable()])
        self.view.load([], self.revision)
        for d in docs:  # one revision each, so create indexes order them
            p = Plan()
            p.put(key_of(d), d)
            assert self.commit(p)

    @property
    def table(self) -> CATable:
        return self.view["ca"]  # type: ignore[return-value]

    def mod(self, key: str) -> int:
        return self.kv[key][1] if key in self.kv else 0

    def commit(self, plan: Plan) -> bool:
        if any(self.mod(k) != r for k, r in plan.compares.items()):
            return False
        if plan.empty:
            return True
        self.revision += 1
        events = []
        for k, v in plan.puts.items():
            self.kv[k] = (self.kv[k][0] if k in self.kv else self.revision, self.revision)
            events.append(Event(EventKind.PUT, k, v, self.revision))
        for k in sorted(plan.deletes):
            if self.kv.pop(k, None) is not None:
                events.append(Event(EventKind.DELETE, k, None, self.revision))
        self.view.apply(WatchBatch(self.revision, tuple(events)))
        return True


def put_doc(plan: Plan, key: str, cls: type) -> object:
    return doc.decode(cls, plan.puts[key])


# --- the table ----------------------------------------------------------------------------------------
def test_table_applies_config_roots_and_marks_with_their_watch_keys() -> None:
    s = Store()
    t = s.table
    assert t.config is None and t.trust_domain == "" and t.active_root() is None

    cfg_event = Event(EventKind.PUT, model.CONFIG_KEY, doc.encode(cfg_doc()), 5)
    assert list(t.apply(cfg_event, 4)) == [("ca-config",)]
    assert t.config is not None and (t.config.create_index, t.config.modify_index) == (4, 5)
    assert t.trust_domain == TD

    root_event = Event(EventKind.PUT, model.root_key(R1), doc.encode(root(R1, active=True)), 6)
    assert list(t.apply(root_event, 6)) == [("ca-roots",)]
    assert t.roots[R1].active and t.roots[R1].modify_index == 6
    assert t.active_root() == t.roots[R1]

    mark_event = Event(EventKind.PUT, model.issued_key(R1), doc.encode(mark(R1, T0)), 7)
    assert list(t.apply(mark_event, 7)) == [("ca-issued", R1)]
    assert t.marks[R1] == IssuedMark(R1, T0, modify_index=7)

    assert list(t.apply(Event(EventKind.DELETE, model.issued_key(R1), None, 8), 7)) == [("ca-issued", R1)]
    assert list(t.apply(Event(EventKind.DELETE, model.root_key(R1), None, 8), 6)) == [("ca-roots",)]
    assert list(t.apply(Event(EventKind.DELETE, model.CONFIG_KEY, None, 8), 4)) == [("ca-config",)]
    assert (t.config, t.roots, t.marks) == (None, {}, {})
    assert list(t.apply(Event(EventKind.PUT, "connect/ca/other", b"{}", 9), 9)) == []


def test_keys_escape_the_colons_of_root_ids() -> None:
    assert model.root_key("c7:bd:55") == "connect/ca/roots/c7%3Abd%3A55"
    assert model.issued_key("c7:bd:55") == "connect/ca/issued/c7%3Abd%3A55"
    s = Store(root("c7:bd:55", active=True), mark("c7:bd:55", T0))
    assert set(s.table.roots) == {"c7:bd:55"} and set(s.table.marks) == {"c7:bd:55"}


# --- queries -----------------------------------------------------------------------------------------------
def test_roots_query_orders_by_creation_and_names_the_active_root() -> None:
    s = Store(cfg_doc(), root(R2, rotated_out_at=T0), root(R1, active=True))
    res = query.roots(s.view)
    assert res.value.active_root_id == R1
    assert res.value.trust_domain == TD
    assert [r.id for r in res.value.roots] == [R2, R1]
    assert res.watch == frozenset(query.ROOTS_WATCH)
    assert res.index == s.revision


def test_roots_query_before_initialisation_is_empty() -> None:
    res = query.roots(Store().view)
    assert (res.value.active_root_id, res.value.trust_domain, res.value.roots) == ("", "", ())


def test_configuration_query() -> None:
    with pytest.raises(CANotReady):
        query.configuration(Store().view)
    s = Store(cfg_doc(), root(R1, active=True))
    res = query.configuration(s.view)
    assert res.value.cluster_id == CLUSTER_ID
    assert res.index == 2  # the config's revision, not the root's
    assert res.watch == frozenset(query.CONFIG_WATCH)


# --- documents from certificates ------------------------------------------------------------------------------
def test_root_doc_and_signer_of_round_trip() -> None:
    key = certs.generate_key(certs.KeySpec("ec", 256))
    now = dt.datetime(2025, 3, 1, tzinfo=dt.timezone.utc)
    cert = certs.build_root(key, cluster_id=CLUSTER_ID, uid="abcd1234", serial=2**64 + 5, now=now,
                            ttl=dt.timedelta(days=10))
    r = rotation.root_doc(cert, key, cluster_id=CLUSTER_ID, intermediates=("X",), cross_signed_by=R1)
    assert r.id == certs.fingerprint_id(cert)
    assert r.name == "Consul CA Primary Cert"
    assert r.serial_number == 5  # uint64, as Consul reports it
    assert r.signing_key_id == certs.colon_hex(certs.subject_key_id(cert))
    assert r.external_trust_domain == CLUSTER_ID
    assert r.not_before == (now - certs.CLOCK_SKEW).timestamp()
    assert r.not_after == (now + dt.timedelta(days=10)).timestamp()
    assert (r.private_key_type, r.private_key_bits) == ("ec", 256)
    assert (r.intermediate_certs, r.cross_signed_by, r.active, r.rotated_out_at) == (("X",), R1, True, 0.0)
    got_cert, got_key = rotation.signer_of(r)
    assert got_cert == cert
    assert got_key.private_numbers() == key.private_numbers()  # type: ignore[union-attr]


def test_config_doc_keeps_the_raw_map() -> None:
    cfg = decode_config("consul", {"leaf_cert_ttl": "24h"})
    d = rotation.config_doc(CLUSTER_ID, cfg, force_without_cross_signing=True, state={"k": "v"})
    assert d == CAConfigDoc(CLUSTER_ID, "consul", {"LeafCertTTL": "24h"}, True, {"k": "v"})


# --- plan_initialize -----------------------------------------------------------------------------------------
def test_initialize_stores_config_and_root_when_absent() -> None:
    s = Store()
    p = rotation.plan_initialize(s.view, cfg_doc(), root(R1, active=True))
    assert p.compares == {model.CONFIG_KEY: 0, model.root_key(R1): 0}
    assert set(p.puts) == {model.CONFIG_KEY, model.root_key(R1)} and not p.deletes
    assert s.commit(p)
    assert s.table.active_root().id == R1  # type: ignore[union-attr]
    assert s.table.config.cluster_id == CLUSTER_ID  # type: ignore[union-attr]


def test_initialize_is_empty_when_a_config_exists() -> None:
    s = Store(cfg_doc(), root(R1, active=True))
    assert rotation.plan_initialize(s.view, cfg_doc(), root(R2, active=True)).empty


def test_two_racing_initializations_store_one_root() -> None:
    s = Store()
    a = rotation.plan_initialize(s.view, cfg_doc(), root(R1, active=True))
    b = rotation.plan_initialize(s.view, cfg_doc(), root(R2, active=True))
    assert s.commit(a)
    assert not s.commit(b)
    assert rotation.plan_initialize(s.view, cfg_doc(), root(R2, active=True)).empty
    assert list(s.table.roots) == [R1]


# --- plan_config_only -----------------------------------------------------------------------------------------
CONFIG_ONLY_CASES = {
    "same_config_writes_nothing": (cfg_doc(), False),
    "new_ttl": (cfg_doc(config={"LeafCertTTL": "24h"}), True),
    "force_flag": (cfg_doc(force_without_cross_signing=True), True),
    "state_alone_is_not_a_change": (cfg_doc(state={"x": "y"}), False),
}


@pytest.mark.parametrize(("new", "writes"), list(CONFIG_ONLY_CASES.values()), ids=list(CONFIG_ONLY_CASES))
def test_config_only(new: CAConfigDoc, writes: bool) -> None:
    s = Store(cfg_doc(), root(R1, active=True))
    current = s.table.config
    p = rotation.plan_config_only(s.view, new, expected_revision=current.modify_index)  # type: ignore[union-attr]
    assert (not p.empty) is writes
    if writes:
        assert p.compares == {model.CONFIG_KEY: current.modify_index}  # type: ignore[union-attr]
        assert put_doc(p, model.CONFIG_KEY, CAConfigDoc) == new
        assert not any(k.startswith(model.ROOTS) for k in p.puts)


@pytest.mark.parametrize("docs", [(), (cfg_doc(),)], ids=["no_config", "config_moved"])
def test_config_only_conflicts_when_the_config_is_not_the_one_read(docs: tuple) -> None:
    s = Store(*docs)
    with pytest.raises(Conflict, match="CA configuration changed"):
        rotation.plan_config_only(s.view, cfg_doc(config={"LeafCertTTL": "24h"}), expected_revision=999)


# --- plan_rotation -----------------------------------------------------------------------------------------
def test_rotation_retires_the_active_root_and_installs_the_new_one() -> None:
    s = Store(cfg_doc(), root(R1, active=True))
    old = s.table.roots[R1]
    new = root(R2, active=True, cross_signed_by=R1, intermediates=("CROSS",))
    p = rotation.plan_rotation(s.view, new, expected_active=R1, now=T0 + 5)

    assert p.compares == {model.root_key(R1): old.modify_index, model.root_key(R2): 0}
    assert put_doc(p, model.root_key(R1), CARoot) == dataclasses.replace(old, active=False, rotated_out_at=T0 + 5,
                                                                          create_index=0, modify_index=0)
    assert put_doc(p, model.root_key(R2), CARoot) == new
    assert model.CONFIG_KEY not in p.puts and not p.deletes

    assert s.commit(p)
    t = s.table
    assert [r.id for r in t.roots.values() if r.active] == [R2]
    assert t.roots[R1].rotated_out_at == T0 + 5
    assert [r.id for r in t.ordered_roots()] == [R1, R2]


def test_rotation_with_a_new_config_writes_it_in_the_same_plan() -> None:
    s = Store(cfg_doc(), root(R1, active=True))
    new_cfg = cfg_doc(config={"PrivateKeyType": "rsa"})
    p = rotation.plan_rotation(s.view, root(R2, active=True), expected_active=R1, now=T0, new_config=new_cfg)
    assert p.compares[model.CONFIG_KEY] == s.table.config.modify_index  # type: ignore[union-attr]
    assert put_doc(p, model.CONFIG_KEY, CAConfigDoc) == new_cfg


@pytest.mark.parametrize(
    ("docs", "expected_active"),
    [((cfg_doc(), root(R1, active=True)), R3), ((cfg_doc(), root(R1, rotated_out_at=T0)), R1), ((cfg_doc(),), R1)],
    ids=["active_moved", "no_active_root", "no_roots"],
)
def test_rotation_conflicts_when_the_active_root_is_not_the_one_read(docs: tuple, expected_active: str) -> None:
    s = Store(*docs)
    with pytest.raises(Conflict, match="active CA root changed"):
        rotation.plan_rotation(s.view, root(R2, active=True), expected_active=expected_active, now=T0)


def test_two_racing_rotations_install_one_root() -> None:
    s = Store(cfg_doc(), root(R1, active=True))
    a = rotation.plan_rotation(s.view, root(R2, active=True, cross_signed_by=R1), expected_active=R1, now=T0)
    b = rotation.plan_rotation(s.view, root(R3, active=True, cross_signed_by=R1), expected_active=R1, now=T0)
    assert s.commit(a)
    assert not s.commit(b)
    with pytest.raises(Conflict):
        rotation.plan_rotation(s.view, root(R3, active=True, cross_signed_by=R1), expected_active=R1, now=T0)
    assert {rid for rid, r in s.table.roots.items() if r.active} == {R2}


def test_rotating_back_to_a_still_trusted_root_replaces_it() -> None:
    s = Store(cfg_doc(), root(R1, rotated_out_at=T0), root(R2, active=True, cross_signed_by=R1))
    old_r1 = s.table.roots[R1]
    back = root(R1, active=True, cross_signed_by=R2, intermediates=("CROSS by R2",))
    p = rotation.plan_rotation(s.view, back, expected_active=R2, now=T0 + DAY)
    assert p.compares[model.root_key(R1)] == old_r1.modify_index
    assert s.commit(p)
    assert s.table.active_root().id == R1  # type: ignore[union-attr]
    assert s.table.roots[R1].rotated_out_at == 0.0
    assert s.table.roots[R2].rotated_out_at == T0 + DAY and not s.table.roots[R2].active


# --- plan_mark ---------------------------------------------------------------------------------------------------
MARK_CASES = {
    "first_mark": ((), T0 + 100, T0 + 100),
    "raised": ((mark(R1, T0 + 50),), T0 + 100, T0 + 100),
    "never_lowered": ((mark(R1, T0 + 200),), T0 + 100, None),
    "equal_is_kept": ((mark(R1, T0 + 100),), T0 + 100, None),
}


@pytest.mark.parametrize(("marks", "target", "written"), list(MARK_CASES.values()), ids=list(MARK_CASES))
def test_mark(marks: tuple, target: float, written: float | None) -> None:
    s = Store(cfg_doc(), root(R1, active=True), *marks)
    p = rotation.plan_mark(s.view, R1, target)
    if written is None:
        assert p.empty
    else:
        assert put_doc(p, model.issued_key(R1), IssuedMark) == IssuedMark(R1, written)
        assert set(p.puts) == {model.issued_key(R1)}


def test_mark_on_a_rotated_out_root_is_allowed() -> None:
    s = Store(cfg_doc(), root(R1, rotated_out_at=T0), root(R2, active=True))
    assert not rotation.plan_mark(s.view, R1, T0 + 10).empty


def test_mark_conflicts_when_the_root_is_gone() -> None:
    s = Store(cfg_doc(), root(R2, active=True))
    with pytest.raises(Conflict, match=f"CA root {R1} was rotated out and pruned"):
        rotation.plan_mark(s.view, R1, T0)


# Races (rule 1: every plan compares on what it read). ``grace`` is 0 here, the default
# of the pure functions; the manager's grace of one leaf TTL makes these windows rare.
def test_a_mark_planned_before_a_prune_does_not_land_on_the_pruned_root() -> None:
    # R1 was rotated out with no mark; a signing that read R1 as active before the
    # rotation plans its mark, the pruner deletes R1, then the mark commits: the
    # leaf would be handed out chaining to a root nobody trusts any more.
    s = Store(cfg_doc(), root(R1, rotated_out_at=T0), root(R2, active=True, cross_signed_by=R1))
    mark_plan = rotation.plan_mark(s.view, R1, T0 + 3 * DAY)
    assert s.commit(rotation.plan_prune(s.view, T0 + 1))
    assert R1 not in s.table.roots
    assert not s.commit(mark_plan), "the mark committed on a pruned root"


def test_a_prune_planned_before_a_mark_does_not_delete_the_root() -> None:
    # The other order: the pruner planned on 'no mark', the signing's mark commits,
    # then the prune commits and deletes a root a valid leaf chains to.
    s = Store(cfg_doc(), root(R1, rotated_out_at=T0), root(R2, active=True, cross_signed_by=R1))
    prune = rotation.plan_prune(s.view, T0 + 1)
    assert s.commit(rotation.plan_mark(s.view, R1, T0 + 3 * DAY))
    assert not s.commit(prune), "the prune deleted a root whose mark had just been raised"


def test_two_racing_marks_never_lower_the_mark() -> None:
    # Two servers sign with R1 at once, both read the mark at T0 + 50.
    s = Store(cfg_doc(), root(R1, active=True), mark(R1, T0 + 50))
    high = rotation.plan_mark(s.view, R1, T0 + 100)
    low = rotation.plan_mark(s.view, R1, T0 + 90)
    assert s.commit(high)
    s.commit(low)
    assert s.table.marks[R1].not_after == T0 + 100, "a lower mark overwrote a higher one"


# --- prunable / plan_prune ------------------------------------------------------------------------------------
NOW = T0 + 10 * DAY
PRUNABLE_CASES = {
    "nothing": ((root(R1, active=True),), (), []),
    "active_never_even_with_a_passed_mark": ((root(R1, active=True),), (mark(R1, NOW - DAY),), []),
    "inactive_without_mark": ((root(R1, rotated_out_at=T0), root(R2, active=True)), (), [R1]),
    "inactive_mark_in_future": ((root(R1, rotated_out_at=T0), root(R2, active=True)), (mark(R1, NOW + 1),), []),
    "inactive_mark_now": ((root(R1, rotated_out_at=T0), root(R2, active=True)), (mark(R1, NOW),), [R1]),
    "inactive_mark_passed": ((root(R1, rotated_out_at=T0), root(R2, active=True)), (mark(R1, NOW - 1),), [R1]),
    "several_sorted": (
        (root(R3, rotated_out_at=T0), root(R1, rotated_out_at=T0), root(R2, active=True)),
        (mark(R3, NOW - 1), mark(R1, NOW - 2)), [R1, R3],
    ),
    "one_of_two_waits": (
        (root(R1, rotated_out_at=T0), root(R2, rotated_out_at=T0), root(R3, active=True)),
        (mark(R1, NOW - 1), mark(R2, NOW + DAY)), [R1],
    ),
}


@pytest.mark.parametrize(("roots", "marks", "expected"), list(PRUNABLE_CASES.values()), ids=list(PRUNABLE_CASES))
def test_prunable(roots: tuple, marks: tuple, expected: list[str]) -> None:
    s = Store(cfg_doc(), *roots, *marks)
    assert rotation.prunable(s.table, NOW) == expected


def test_prune_deletes_the_root_and_its_mark_and_strips_its_cross_signature() -> None:
    s = Store(cfg_doc(), root(R1, rotated_out_at=T0), root(R2, active=True, cross_signed_by=R1,
                                                            intermediates=("CROSS by R1",)), mark(R1, NOW - 1))
    r1, r2 = s.table.roots[R1], s.table.roots[R2]
    p = rotation.plan_prune(s.view, NOW)
    assert p.deletes == {model.root_key(R1), model.issued_key(R1)}
    assert p.compares[model.root_key(R1)] == r1.modify_index
    assert p.compares[model.root_key(R2)] == r2.modify_index
    stripped = put_doc(p, model.root_key(R2), CARoot)
    assert stripped == dataclasses.replace(r2, intermediate_certs=(), cross_signed_by="", create_index=0,
                                           modify_index=0)
    assert stripped.active

    assert s.commit(p)
    t = s.table
    assert list(t.roots) == [R2] and t.marks == {}
    assert t.roots[R2].intermediate_certs == () and t.roots[R2].active
    assert rotation.plan_prune(s.view, NOW).empty


def test_prune_keeps_the_cross_signature_while_its_signer_is_trusted() -> None:
    s = Store(cfg_doc(), root(R1, rotated_out_at=T0), root(R2, active=True, cross_signed_by=R1,
                                                            intermediates=("CROSS by R1",)), mark(R1, NOW + 1))
    assert rotation.plan_prune(s.view, NOW).empty


def test_prune_in_a_chain_of_rotations_strips_only_what_the_pruned_root_signed() -> None:
    s = Store(
        cfg_doc(),
        root(R1, rotated_out_at=T0),
        root(R2, rotated_out_at=T0 + DAY, cross_signed_by=R1, intermediates=("CROSS by R1",)),
        root(R3, active=True, cross_signed_by=R2, intermediates=("CROSS by R2",)),
        mark(R1, NOW - 1), mark(R2, NOW + DAY),
    )
    assert s.commit(rotation.plan_prune(s.view, NOW))
    t = s.table
    assert set(t.roots) == {R2, R3}
    assert (t.roots[R2].intermediate_certs, t.roots[R2].cross_signed_by) == ((), "")
    assert (t.roots[R3].intermediate_certs, t.roots[R3].cross_signed_by) == (("CROSS by R2",), R2)


def test_prune_deletes_orphan_marks() -> None:
    s = Store(cfg_doc(), root(R2, active=True), mark(R1, NOW + DAY))
    assert rotation.prunable(s.table, NOW) == []
    p = rotation.plan_prune(s.view, NOW)
    assert p.deletes == {model.issued_key(R1)} and not p.puts
    assert s.commit(p)
    assert s.table.marks == {}


def test_a_rotated_root_lives_until_its_mark_passes() -> None:
    """The story: rotate, sign under the old root's mark, prune only when it passed."""
    s = Store(cfg_doc(), root(R1, active=True))
    assert s.commit(rotation.plan_mark(s.view, R1, T0 + 3 * DAY))
    assert s.commit(rotation.plan_rotation(s.view, root(R2, active=True, cross_signed_by=R1, intermediates=("X",)),
                                           expected_active=R1, now=T0 + DAY))
    assert rotation.next_prune(s.table, T0 + DAY) == T0 + 3 * DAY
    assert rotation.plan_prune(s.view, T0 + 2 * DAY).empty
    assert s.commit(rotation.plan_prune(s.view, T0 + 3 * DAY))
    assert list(s.table.roots) == [R2]
    assert s.table.roots[R2].intermediate_certs == ()
    assert rotation.next_prune(s.table, T0 + 3 * DAY) is None


# --- next_prune ---------------------------------------------------------------------------------------------
NEXT_PRUNE_CASES = {
    "nothing_waiting": ((root(R1, active=True),), (mark(R1, NOW + DAY),), None),
    "earliest_future_mark_of_inactive_roots": (
        (root(R1, rotated_out_at=T0), root(R2, rotated_out_at=T0), root(R3, active=True)),
        (mark(R1, NOW + 2 * DAY), mark(R2, NOW + DAY), mark(R3, NOW + 0.5 * DAY)), NOW + DAY,
    ),
    "passed_marks_are_not_waiting": (
        (root(R1, rotated_out_at=T0), root(R2, active=True)), (mark(R1, NOW),), None,
    ),
    "no_mark_is_not_waiting": ((root(R1, rotated_out_at=T0), root(R2, active=True)), (), None),
    "orphan_mark_ignored": ((root(R2, active=True),), (mark(R1, NOW + DAY),), None),
}


@pytest.mark.parametrize(("roots", "marks", "expected"), list(NEXT_PRUNE_CASES.values()), ids=list(NEXT_PRUNE_CASES))
def test_next_prune(roots: tuple, marks: tuple, expected: float | None) -> None:
    s = Store(cfg_doc(), *roots, *marks)
    assert rotation.next_prune(s.table, NOW) == expected


# --- grace: a rotated-out root stays one leaf lifetime even if it signed nothing ----------------------------
GRACE = 3 * DAY
GRACE_PRUNABLE_CASES = {
    "within_grace_without_mark": ((root(R1, rotated_out_at=NOW - GRACE + 1), root(R2, active=True)), (), []),
    "grace_just_ended_without_mark": ((root(R1, rotated_out_at=NOW - GRACE), root(R2, active=True)), (), [R1]),
    "mark_passed_but_within_grace": (
        (root(R1, rotated_out_at=NOW - 1), root(R2, active=True)), (mark(R1, NOW - 1),), [],
    ),
    "grace_ended_but_mark_in_future": (
        (root(R1, rotated_out_at=NOW - 2 * GRACE), root(R2, active=True)), (mark(R1, NOW + 1),), [],
    ),
    "both_passed": ((root(R1, rotated_out_at=NOW - 2 * GRACE), root(R2, active=True)), (mark(R1, NOW),), [R1]),
    "active_never": ((root(R1, active=True),), (mark(R1, NOW - 1),), []),
}


@pytest.mark.parametrize(("roots", "marks", "expected"), list(GRACE_PRUNABLE_CASES.values()),
                         ids=list(GRACE_PRUNABLE_CASES))
def test_prunable_with_grace(roots: tuple, marks: tuple, expected: list[str]) -> None:
    s = Store(cfg_doc(), *roots, *marks)
    assert rotation.prunable(s.table, NOW, GRACE) == expected
    assert sorted(k for k in rotation.plan_prune(s.view, NOW, GRACE).deletes if k.startswith(model.ROOTS)) == [
        model.root_key(rid) for rid in expected
    ]


GRACE_NEXT_PRUNE_CASES = {
    "grace_end_without_mark": ((root(R1, rotated_out_at=NOW - 1), root(R2, active=True)), (), NOW - 1 + GRACE),
    "mark_later_than_grace": (
        (root(R1, rotated_out_at=NOW - 1), root(R2, active=True)), (mark(R1, NOW + 2 * GRACE),), NOW + 2 * GRACE,
    ),
    "grace_later_than_mark": (
        (root(R1, rotated_out_at=NOW - 1), root(R2, active=True)), (mark(R1, NOW + 1),), NOW - 1 + GRACE,
    ),
    "both_passed": ((root(R1, rotated_out_at=NOW - 2 * GRACE), root(R2, active=True)), (mark(R1, NOW - 1),), None),
    "earliest_of_two": (
        (root(R1, rotated_out_at=NOW - 2), root(R2, rotated_out_at=NOW - 1), root(R3, active=True)), (),
        NOW - 2 + GRACE,
    ),
}


@pytest.mark.parametrize(("roots", "marks", "expected"), list(GRACE_NEXT_PRUNE_CASES.values()),
                         ids=list(GRACE_NEXT_PRUNE_CASES))
def test_next_prune_with_grace(roots: tuple, marks: tuple, expected: float | None) -> None:
    s = Store(cfg_doc(), *roots, *marks)
    assert rotation.next_prune(s.table, NOW, GRACE) == expected


def test_next_prune_is_when_prunable_becomes_true() -> None:
    s = Store(cfg_doc(), root(R1, rotated_out_at=NOW - 1), root(R2, active=True), mark(R1, NOW + DAY))
    when = rotation.next_prune(s.table, NOW, GRACE)
    assert when is not None
    assert rotation.prunable(s.table, when - 0.001, GRACE) == []
    assert rotation.prunable(s.table, when, GRACE) == [R1]


# --- rotation_due -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        (CAConfig(), None),
        (CAConfig(rotation_period=30 * DAY), T0 + 30 * DAY),
        (CAConfig(rotation_period=30 * DAY, private_key="KEY", root_cert="CERT"), None),
        (CAConfig(rotation_period=30 * DAY, private_key="KEY"), None),
    ],
    ids=["no_period", "period_from_the_roots_creation", "imported_root", "given_key"],
)
def test_rotation_due(cfg: CAConfig, expected: float | None) -> None:
    # a root made at T0 has NotBefore T0 - CLOCK_SKEW; the period counts from T0
    active = root(R1, active=True, not_before=T0 - certs.CLOCK_SKEW.total_seconds())
    assert rotation.rotation_due(cfg, active, T0) == expected
