"""The CA's stored documents and the values it hands out.

Keys: ``connect/ca/config`` (one ``CAConfigDoc``), ``connect/ca/roots/<id>`` (one
``CARoot`` per trusted root), ``connect/ca/issued/<id>`` (an ``IssuedMark``: no leaf
signed by that root lives past ``not_after``). Times are epoch seconds.

Rules:
1. Exactly one root is active; the others are rotated out and stay trusted until
   their mark has passed (then the pruner deletes them).
2. The mark is a separate key so that signing leaves never wakes watchers of the roots.
3. ``signing_key`` (a root's private key PEM) is stored, never rendered by the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

PREFIX = "connect/ca/"
CONFIG_KEY = "connect/ca/config"
ROOTS = "connect/ca/roots/"
ISSUED = "connect/ca/issued/"
ROOT_NAME = "Consul CA Primary Cert"


def root_key(root_id: str) -> str:
    return ROOTS + quote(root_id, safe="")


def issued_key(root_id: str) -> str:
    return ISSUED + quote(root_id, safe="")


@dataclass(frozen=True, slots=True)
class CAConfigDoc:
    cluster_id: str
    provider: str
    config: dict[str, Any] = field(default_factory=dict)  # canonical keys, values as given
    force_without_cross_signing: bool = False
    state: dict[str, str] | None = None
    create_index: int = 0
    modify_index: int = 0


@dataclass(frozen=True, slots=True)
class CARoot:
    id: str
    name: str
    serial_number: int
    signing_key_id: str
    external_trust_domain: str
    not_before: float
    not_after: float
    root_cert: str
    signing_key: str
    private_key_type: str
    private_key_bits: int
    intermediate_certs: tuple[str, ...] = ()
    active: bool = False
    rotated_out_at: float = 0.0
    cross_signed_by: str = ""  # the root whose key signed our cross-signed certificate
    create_index: int = 0
    modify_index: int = 0


@dataclass(frozen=True, slots=True)
class IssuedMark:
    root_id: str
    not_after: float
    modify_index: int = 0


@dataclass(frozen=True, slots=True)
class SignedLeaf:
    """What the server returns for a CSR: the certificate and what it chains to."""

    cert_pem: str
    intermediates: tuple[str, ...]
    root_id: str
    signing_key_id: str
    serial: str
    service: str
    namespace: str
    service_uri: str
    valid_after: float
    valid_before: float
