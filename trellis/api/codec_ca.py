"""Consul's JSON for the Connect CA: roots, configuration, leaf certificates (pure).

Field names and order follow Consul's ``structs.IndexedCARoots``, ``CARoot``,
``CAConfiguration`` and ``IssuedCert``; times are Go's RFC 3339 (``...Z``).
Private keys of roots are never rendered.
"""

from __future__ import annotations

from typing import Any

from trellis.agent.leafcert import LeafCert
from trellis.api.codec import format_time
from trellis.catalog.model import DEFAULT_NAMESPACE
from trellis.connect.ca.model import CAConfigDoc, CARoot
from trellis.connect.ca.query import Roots


def _pem(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def encode_root(r: CARoot) -> dict[str, Any]:
    return {
        "ID": r.id, "Name": r.name, "SerialNumber": r.serial_number, "SigningKeyID": r.signing_key_id,
        "ExternalTrustDomain": r.external_trust_domain, "NotBefore": format_time(r.not_before),
        "NotAfter": format_time(r.not_after), "RootCert": _pem(r.root_cert),
        "IntermediateCerts": [_pem(c) for c in r.intermediate_certs] or None, "Active": r.active,
        "PrivateKeyType": r.private_key_type, "PrivateKeyBits": r.private_key_bits,
        "CreateIndex": r.create_index, "ModifyIndex": r.modify_index,
    }


def encode_roots(roots: Roots) -> dict[str, Any]:
    return {"ActiveRootID": roots.active_root_id, "TrustDomain": roots.trust_domain,
            "Roots": [encode_root(r) for r in roots.roots]}


def encode_roots_pem(roots: Roots) -> str:
    """``?pem=true``: every root followed by its intermediates."""
    return "".join(_pem(r.root_cert) + "".join(_pem(c) for c in r.intermediate_certs) for r in roots.roots)


def encode_config(c: CAConfigDoc) -> dict[str, Any]:
    return {"Provider": c.provider, "Config": dict(c.config), "State": c.state,
            "ForceWithoutCrossSigning": c.force_without_cross_signing,
            "CreateIndex": c.create_index, "ModifyIndex": c.modify_index}


def encode_leaf(leaf: LeafCert) -> dict[str, Any]:
    s = leaf.signed
    out: dict[str, Any] = {
        "SerialNumber": s.serial, "CertPEM": leaf.cert_pem, "PrivateKeyPEM": leaf.private_key_pem,
        "Service": s.service, "ServiceURI": s.service_uri,
        "ValidAfter": format_time(s.valid_after), "ValidBefore": format_time(s.valid_before),
    }
    if s.namespace != DEFAULT_NAMESPACE:
        out["Namespace"] = s.namespace
    out["CreateIndex"] = out["ModifyIndex"] = leaf.index
    return out
