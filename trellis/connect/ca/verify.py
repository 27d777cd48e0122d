"""Whether a leaf chains to a trust bundle, and what a bundle holds (pure: ``now`` comes in).

Rules:
1. A leaf PEM is the leaf first, then any intermediates (a cross-signed root during a
   rotation); it chains when some path from the leaf through those intermediates ends
   at one of the roots, every certificate on it valid at ``now`` (RFC 5280 path
   validation, by ``cryptography.x509.verification``, the client-certificate profile:
   mesh leaves have a URI SAN and an empty subject, never a DNS name).
2. The answer is a reason, not an exception: ``""`` when the leaf chains, else one
   sentence saying why not. Text that is not PEM is such a reason too: these checks
   report on certificates the agent already holds, they do not validate input.
3. A root's ID is certs.py's (the colon-hex SHA-1 fingerprint, as Consul's).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography.x509 import verification

from trellis.connect.ca import certs
from trellis.connect.ca.errors import InvalidCertificate


def chain_problem(leaf_pem: str, roots_pem: Sequence[str], *, now: float) -> str:
    """Rules 1-2: ``""`` when ``leaf_pem`` chains to one of ``roots_pem`` at ``now``
    (epoch seconds), else why not. Pure; loop-safe (a few ms of signature checks)."""
    try:
        chain = certs.parse_certs(leaf_pem, "leaf")
        roots = [c for pem in roots_pem for c in certs.parse_certs(pem, "roots")]
    except InvalidCertificate as exc:
        return str(exc)
    if not roots:
        return "there are no trusted roots"
    when = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    leaf = chain[0]
    if not certs.not_before(leaf) <= when <= certs.not_after(leaf):
        return (f"it is valid from {_utc(certs.not_before(leaf))} to {_utc(certs.not_after(leaf))}, "
                f"not at {_utc(when)}")
    verifier = (verification.PolicyBuilder().store(verification.Store(roots)).time(when)
                .build_client_verifier())
    try:
        verifier.verify(chain[0], chain[1:])
    except verification.VerificationError as exc:
        count = f"{len(roots)} trusted root{'s' if len(roots) != 1 else ''}"
        return f"it does not chain to the {count} ({exc})"
    except ValueError as exc:  # a certificate the verifier cannot read (e.g. a bad extension)
        return f"the certificate cannot be checked ({exc})"
    return ""


def _utc(when: dt.datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M:%S} UTC"


def root_ids(roots_pem: Sequence[str]) -> tuple[str, ...]:
    """Rule 3: the ID of every certificate in ``roots_pem``, in order. Pure; raises
    ``InvalidCertificate`` for text that is not PEM certificates."""
    return tuple(certs.fingerprint_id(c) for pem in roots_pem for c in certs.parse_certs(pem, "roots"))
