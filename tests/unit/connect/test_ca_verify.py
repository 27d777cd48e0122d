"""connect/ca/verify.py: whether a leaf chains to a trust bundle at a given time, and why not."""

from __future__ import annotations

import datetime as dt
import functools

import pytest

from trellis.connect import spiffe
from trellis.connect.ca import certs
from trellis.connect.ca.verify import chain_problem, root_ids

CLUSTER = "11111111-2222-3333-4444-555555555555"
EPOCH = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
NOW = (EPOCH + dt.timedelta(hours=1)).timestamp()
YEAR = dt.timedelta(days=365)


@functools.cache
def root(uid: str):
    key = certs.generate_key(certs.LEAF_KEY)
    return certs.build_root(key, cluster_id=CLUSTER, uid=uid, serial=1, now=EPOCH, ttl=YEAR), key


@functools.cache
def leaf(uid: str) -> str:
    cert, key = root(uid)
    csr = certs.build_csr(certs.generate_key(certs.LEAF_KEY),
                          spiffe.service_uri(spiffe.trust_domain(CLUSTER), "default", "dc1", "web"))
    return certs.dump_cert(certs.sign_leaf(csr, cert, key, serial=9, now=EPOCH, ttl=dt.timedelta(hours=72)))


def pem(uid: str) -> str:
    return certs.dump_cert(root(uid)[0])


def crossed_leaf() -> str:
    """A leaf of root "new" carrying "new" cross-signed by "old" (a rotation in progress)."""
    cross = certs.build_cross_signed(root("new")[0], root("old")[0], root("old")[1], serial=2, now=EPOCH,
                                     end=EPOCH + YEAR)
    return leaf("new") + certs.dump_cert(cross)


@pytest.mark.parametrize(("leaf_pem", "roots", "now", "expected"), [
    (lambda: leaf("a"), lambda: [pem("a")], NOW, ""),
    (lambda: leaf("a"), lambda: [pem("b"), pem("a")], NOW, ""),
    (crossed_leaf, lambda: [pem("old")], NOW, ""),
    (lambda: leaf("a"), lambda: [pem("b")], NOW, "it does not chain to the 1 trusted root ("),
    (lambda: leaf("a"), lambda: [pem("a")], NOW + 73 * 3600,
     "it is valid from 2029-12-31 23:59:00 UTC to 2030-01-04 00:00:00 UTC, not at 2030-01-04 02:00:00 UTC"),
    (lambda: leaf("a"), lambda: [], NOW, "there are no trusted roots"),
    (lambda: "junk", lambda: [pem("a")], NOW, "leaf: no PEM certificate found"),
], ids=["its-root", "one-of-two-roots", "through-a-cross-signed-intermediate", "another-root", "expired",
        "no-roots", "not-pem"])
def test_chain_problem(leaf_pem, roots, now, expected):
    found = chain_problem(leaf_pem(), roots(), now=now)
    assert found.startswith(expected) if expected else found == ""


def test_root_ids_are_sha1_fingerprints_in_order():
    assert root_ids([pem("a"), pem("b")]) == (certs.fingerprint_id(root("a")[0]), certs.fingerprint_id(root("b")[0]))
