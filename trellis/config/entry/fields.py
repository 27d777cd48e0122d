"""Checks of the fields and sub-objects several config-entry kinds share (pure).

Each function returns when the value is fine and raises ``InvalidEntry`` naming the
field otherwise. Messages are Consul's where it has one.

Rules:
1. Protocols are ``tcp``, ``http``, ``http2``, ``grpc``; HTTP-like means the last three.
2. Regular expressions are RE2 with Envoy's program-size limit (DESIGN: nothing
   accepted here can be NACKed by Envoy later).
3. TLS versions and cipher suites are the ones Envoy knows (Consul's ``types/tls.go``);
   cipher suites are only configurable when the minimum version is TLS 1.2 or lower
   (or left to Envoy).
4. trellis has one partition (``default``), no peering and no sameness groups: a field
   naming another partition, a peer or a sameness group is refused, never ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from trellis.config.entry.errors import InvalidEntry
from trellis.config.entry.model import HTTPHeaderModifiers, PassiveHealthCheck
from trellis.connect.intentions import l7
from trellis.errors import InvalidInput

PROTOCOLS = ("tcp", "http", "http2", "grpc")
HTTP_LIKE = frozenset({"http", "http2", "grpc"})
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
META_MAX_PAIRS, META_KEY_MAX, META_VALUE_MAX = 64, 128, 512
DEFAULT_PARTITION = "default"
UINT32_MAX = 2**32 - 1

TLS_VERSIONS = ("TLS_AUTO", "TLSv1_0", "TLSv1_1", "TLSv1_2", "TLSv1_3")
_CIPHER_CONFIGURABLE = ("", "TLS_AUTO", "TLSv1_0", "TLSv1_1", "TLSv1_2")  # unset/auto: Envoy picks <= 1.2
# The cipher suites Envoy accepts, by their Consul (IANA) names.
CIPHER_SUITES = frozenset({
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_256_GCM_SHA384", "TLS_RSA_WITH_AES_256_CBC_SHA",
})
_NAMESPACE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,62})$")


def validate_meta(meta: Mapping[str, str], prefix: str = "") -> None:
    if len(meta) > META_MAX_PAIRS:
        raise InvalidEntry(prefix + "Meta", f"{prefix}Meta exceeds maximum element count {META_MAX_PAIRS}")
    for k, v in meta.items():
        if len(k) > META_KEY_MAX:
            raise InvalidEntry(prefix + "Meta", f'{prefix}Meta key "{k}" exceeds maximum length {META_KEY_MAX}')
        if len(v) > META_VALUE_MAX:
            raise InvalidEntry(prefix + "Meta", f'{prefix}Meta value for key "{k}" exceeds maximum length {META_VALUE_MAX}')


def one_of(field: str, value: str, allowed: Iterable[str], what: str) -> None:
    if value not in allowed:
        raise InvalidEntry(field, f"invalid value for {what}: {value}")


def regex(field: str, pattern: str, label: str = "") -> None:
    """Rule 2. ``label`` is put before the reason (default: the field path)."""
    try:
        l7.validate_regex(pattern)
    except InvalidInput as exc:
        raise InvalidEntry(field, f"{label or field}: {exc}") from None


def namespace_name(field: str, ns: str) -> None:
    """A namespace a sub-object names (empty: the entry's own)."""
    if ns and not _NAMESPACE.match(ns):
        raise InvalidEntry(field, f'{field}: "{ns}" is not a valid namespace name')


def partition(field: str, value: str, message: str = "Setting Partition requires Consul Enterprise") -> None:
    """Rule 4: only the one partition there is."""
    if value not in ("", DEFAULT_PARTITION):
        raise InvalidEntry(field, message)


def no_peer(field: str, value: str) -> None:
    """Rule 4."""
    if value:
        raise InvalidEntry(field, f"{field}: cluster peering is not supported by trellis")


def non_negative(field: str, value: int | float | None, *, limit: int | None = None) -> None:
    """An unsigned Go integer (or a duration that must not be negative)."""
    if value is not None and value < 0:
        raise InvalidEntry(field, f"{field} must be >= 0, not {value}")
    if limit is not None and value is not None and value > limit:
        raise InvalidEntry(field, f"{field} must be <= {limit}, not {value}")


def tls_config(field: str, min_version: str, max_version: str, cipher_suites: Iterable[str]) -> None:
    """Rule 3, with Consul's messages (``validateTLSConfig``)."""
    for version in (min_version, max_version):
        if version and version not in TLS_VERSIONS:
            raise InvalidEntry(field, f"no matching TLS version found for {version}, please specify one of "
                                      f"[{', '.join(TLS_VERSIONS)}]")
    if min_version and max_version and min_version != "TLS_AUTO" and max_version != "TLS_AUTO" \
            and TLS_VERSIONS.index(max_version) < TLS_VERSIONS.index(min_version):
        raise InvalidEntry(field, f"configuring max version {max_version} less than the configured min version "
                                  f"{min_version} is invalid")
    suites = list(cipher_suites)
    if suites and min_version not in _CIPHER_CONFIGURABLE:
        raise InvalidEntry(field, "configuring CipherSuites is only applicable to connections negotiated with TLS 1.2 "
                                  f"or earlier, TLSMinVersion is set to {min_version}")
    for suite in suites:
        if suite not in CIPHER_SUITES:
            raise InvalidEntry(f"{field}.CipherSuites", f"unsupported cipher suite: {suite}")


def header_modifiers_problem(m: HTTPHeaderModifiers | None, protocol: str) -> str:
    """Consul's ``HTTPHeaderModifiers.Validate``: "" when fine. Header names must not be empty."""
    if m is None or not (m.add or m.set or m.remove):
        return ""
    if protocol not in HTTP_LIKE:
        return "only valid for http, http2 and grpc protocols"
    if any(not name for name in (*m.add, *m.set, *m.remove)):
        return "header names must not be empty"
    return ""


def passive_health_check(field: str, phc: PassiveHealthCheck | None) -> None:
    if phc is None:
        return
    non_negative(f"{field}.Interval", phc.interval)
    non_negative(f"{field}.MaxFailures", phc.max_failures, limit=UINT32_MAX)
    for label, value in (("EnforcingConsecutive5xx", phc.enforcing_consecutive_5xx),
                         ("MaxEjectionPercent", phc.max_ejection_percent)):
        if value is not None and not 0 <= value <= 100:
            raise InvalidEntry(f"{field}.{label}", f"{field}.{label} must be a percentage between 0 and 100")
    non_negative(f"{field}.BaseEjectionTime", phc.base_ejection_time)


def shown(namespace: str, name: str, entry_namespace: str = "default") -> str:
    """A service in a message: its name, or ``ns/name`` outside the default namespace."""
    ns = namespace or entry_namespace
    return name if ns == "default" else f"{ns}/{name}"
