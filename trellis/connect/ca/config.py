"""The CA configuration: decode, validate, compare (pure).

    PUT /v1/connect/ca/configuration ─┐
    connect { ca_config {...} } ──────┼─▶ decode_request / decode_config ─▶ CAConfig ─▶ validate
    set-config -config-file (HCL) ────┘

Rules:
1. ``Config`` keys match case-insensitively and with or without underscores, so
   ``LeafCertTTL``, ``leafcertttl`` and the agent file's ``leaf_cert_ttl`` are one key;
   they are stored under the canonical CamelCase name with the value as given.
   An unknown key is refused, naming it (Consul ignores it silently).
2. ``"PrivateKey": ""`` and ``"RootCert": ""`` mean "not given" (the seed's file).
3. ``SkipValidate`` lifts the TTL range rules (for tests); a TTL must still be
   positive and the key type and size still valid, since a root is made from them.
4. Two configurations need a new root exactly when their ``identity`` differs:
   the provider, the imported key and certificate, and the generated key's type
   and size (Consul's provider identity). Anything else is stored without rotating.
5. ``RotationPeriod`` (0 or absent: never) makes the server rotate a generated
   root once it is that old; Consul documents the key but ignores it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

from trellis.config.duration import DurationError, format_duration, parse_duration
from trellis.connect.ca.certs import EC_BITS, RSA_BITS
from trellis.connect.ca.errors import InvalidCAConfig

PROVIDER = "consul"
_LATER = {"vault": "the Vault provider comes with its own issue", "aws-pca": "AWS Private CA is not supported"}
HOUR = 3600.0
MIN_LEAF_TTL, MAX_LEAF_TTL = 1 * HOUR, 8760 * HOUR
MIN_INTERMEDIATE_TTL = 3 * HOUR
DEFAULT_LEAF_TTL, DEFAULT_INTERMEDIATE_TTL, DEFAULT_ROOT_TTL = 72 * HOUR, 8760 * HOUR, 87600 * HOUR


@dataclass(frozen=True, slots=True)
class CAConfig:
    """One provider's configuration, typed; durations in seconds."""

    provider: str = PROVIDER
    leaf_cert_ttl: float = DEFAULT_LEAF_TTL
    intermediate_cert_ttl: float = DEFAULT_INTERMEDIATE_TTL
    root_cert_ttl: float = DEFAULT_ROOT_TTL
    private_key_type: str = "ec"
    private_key_bits: int = 256
    private_key: str = ""
    root_cert: str = ""
    csr_max_per_second: float = 50.0
    csr_max_concurrent: int = 0
    skip_validate: bool = False
    rotation_period: float = 0.0
    raw: dict[str, Any] = field(default_factory=dict, compare=False)  # canonical keys, values as given

    @property
    def imported(self) -> bool:
        return bool(self.private_key)

    def identity(self) -> tuple:
        """What decides the root (rule 4)."""
        return (self.provider, self.private_key.strip(), self.root_cert.strip(),
                self.private_key_type, self.private_key_bits)


def _duration(value: Any, key: str) -> float:
    if not isinstance(value, str):
        raise InvalidCAConfig(f"Config.{key}", f'expected a duration string such as "72h", got {value!r}')
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise InvalidCAConfig(f"Config.{key}", str(exc)) from None


def _number(value: Any, key: str) -> float:
    if isinstance(value, str):  # mapstructure's weak typing: "50" is 50
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise InvalidCAConfig(f"Config.{key}", f"expected a finite number >= 0, got {value!r}")
    return float(value)


def _integer(value: Any, key: str) -> int:
    number = _number(value, key)
    if not number.is_integer():
        raise InvalidCAConfig(f"Config.{key}", f"expected a whole number, got {value!r}")
    return int(number)


def _boolean(value: Any, key: str) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise InvalidCAConfig(f"Config.{key}", f"expected true or false, got {value!r}")
    return value


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise InvalidCAConfig(f"Config.{key}", f"expected a string, got {value!r}")
    return value


# canonical key -> (CAConfig attribute, reader)
_KEYS: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
    "LeafCertTTL": ("leaf_cert_ttl", _duration),
    "IntermediateCertTTL": ("intermediate_cert_ttl", _duration),
    "RootCertTTL": ("root_cert_ttl", _duration),
    "PrivateKeyType": ("private_key_type", _text),
    "PrivateKeyBits": ("private_key_bits", _integer),
    "PrivateKey": ("private_key", _text),
    "RootCert": ("root_cert", _text),
    "CSRMaxPerSecond": ("csr_max_per_second", _number),
    "CSRMaxConcurrent": ("csr_max_concurrent", _integer),
    "SkipValidate": ("skip_validate", _boolean),
    "RotationPeriod": ("rotation_period", _duration),
}
_FOLDED = {k.lower(): k for k in _KEYS}


def canonical_key(key: str) -> str | None:
    return _FOLDED.get(key.replace("_", "").replace("-", "").lower())


def canonical_map(config: Mapping[str, Any]) -> dict[str, Any]:
    """The map with canonical key names (rule 1); raises on unknown or repeated keys."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = canonical_key(key)
        if name is None:
            raise InvalidCAConfig(f"Config.{key}", f"unknown key for the {PROVIDER} provider "
                                                   f"(known: {', '.join(_KEYS)})")
        if name in out:
            raise InvalidCAConfig(f"Config.{key}", f"given twice (as {name} too)")
        out[name] = value
    return out


def decode_config(provider: str, config: Mapping[str, Any] | None) -> CAConfig:
    """Typed configuration from a provider name and a ``Config`` map, validated. Pure."""
    check_provider(provider)
    if config is not None and not isinstance(config, Mapping):
        raise InvalidCAConfig("Config", f"expected an object, got {type(config).__name__}")
    raw = canonical_map(config or {})
    values: dict[str, Any] = {}
    for name, value in raw.items():
        attr, read = _KEYS[name]
        values[attr] = read(value, name)
    if values.get("private_key_type") == "rsa" and "private_key_bits" not in values:
        values["private_key_bits"] = 2048
    for attr in ("private_key", "root_cert"):  # rule 2
        values[attr] = values.get(attr, "").strip()
    cfg = CAConfig(provider=provider, raw=raw, **values)
    validate(cfg)
    return cfg


def check_provider(provider: Any) -> None:
    if provider == PROVIDER:
        return
    if provider in _LATER:
        raise InvalidCAConfig("Provider", f'CA provider "{provider}" is not supported yet ({_LATER[provider]}); '
                                          f'the built-in provider is "{PROVIDER}"')
    raise InvalidCAConfig("Provider", f'unknown CA provider {provider!r}; supported: "{PROVIDER}"')


def validate(cfg: CAConfig) -> None:
    """Consul's rules, with its messages where it has them (rule 3 for SkipValidate)."""
    if cfg.private_key_type not in ("ec", "rsa"):
        raise InvalidCAConfig("Config.PrivateKeyType", "private key type must be either 'ec' or 'rsa'")
    if cfg.private_key_type == "ec" and cfg.private_key_bits not in EC_BITS:
        raise InvalidCAConfig("Config.PrivateKeyBits", "EC key length must be one of (224, 256, 384, 521) bits")
    if cfg.private_key_type == "rsa" and cfg.private_key_bits not in RSA_BITS:
        raise InvalidCAConfig("Config.PrivateKeyBits", "RSA key length must be 2048 or 4096 bits")
    if cfg.root_cert and not cfg.private_key:
        raise InvalidCAConfig("Config.PrivateKey", "a PrivateKey is required when RootCert is given")
    for name in ("LeafCertTTL", "IntermediateCertTTL", "RootCertTTL"):
        if getattr(cfg, _KEYS[name][0]) <= 0:
            raise InvalidCAConfig(f"Config.{name}", "must be greater than 0")
    if cfg.skip_validate:
        return
    leaf, inter, root = cfg.leaf_cert_ttl, cfg.intermediate_cert_ttl, cfg.root_cert_ttl
    if root < inter:  # Consul checks this one first
        raise InvalidCAConfig("Config.RootCertTTL", "root cert TTL is set and is not greater than intermediate cert "
                                                    f"ttl. root cert ttl: {format_duration(root)}, intermediate "
                                                    f"cert ttl: {format_duration(inter)}")
    if leaf < MIN_LEAF_TTL:
        raise InvalidCAConfig("Config.LeafCertTTL", "leaf cert TTL must be greater or equal than 1h0m0s")
    if leaf > MAX_LEAF_TTL:
        raise InvalidCAConfig("Config.LeafCertTTL", "leaf cert TTL must be less than 8760h0m0s")
    if inter < MIN_INTERMEDIATE_TTL:
        raise InvalidCAConfig("Config.IntermediateCertTTL", "Intermediate Cert TTL must be greater or equal than 3h")
    if inter < 3 * leaf:
        raise InvalidCAConfig("Config.IntermediateCertTTL", "Intermediate Cert TTL must be greater or equal than "
                                                            f"3 * LeafCertTTL (>={format_duration(3 * leaf)}).")
    if cfg.rotation_period and cfg.rotation_period < leaf:
        raise InvalidCAConfig("Config.RotationPeriod", f"must be at least LeafCertTTL ({format_duration(leaf)}), "
                                                       "or 0 for never")


def default_raw() -> dict[str, Any]:
    """What a new cluster stores when the agent's file says nothing (Consul's defaults)."""
    return {"LeafCertTTL": "72h", "IntermediateCertTTL": "8760h", "RootCertTTL": "87600h"}


def from_agent(provider: str, ca_config: Mapping[str, Any]) -> CAConfig:
    """The first configuration of a new cluster: the defaults overlaid with the agent
    file's ``connect { ca_config {...} }`` (snake_case keys, rule 1)."""
    given = canonical_map(ca_config)
    return decode_config(provider, {**default_raw(), **given})


_TOP = {"provider": "Provider", "config": "Config", "state": "State",
        "forcewithoutcrosssigning": "ForceWithoutCrossSigning",
        "createindex": "CreateIndex", "modifyindex": "ModifyIndex"}


@dataclass(frozen=True, slots=True)
class ConfigRequest:
    config: CAConfig
    force_without_cross_signing: bool
    state: dict[str, str] | None


def decode_request(body: Any) -> ConfigRequest:
    """A ``PUT /v1/connect/ca/configuration`` body (or a set-config file). Pure.

    ``CreateIndex``/``ModifyIndex`` are accepted and ignored, so that get-config's
    output can be edited and written back.
    """
    if not isinstance(body, Mapping):
        raise InvalidCAConfig("body", "expected a JSON object with Provider and Config")
    fields: dict[str, Any] = {}
    for key, value in body.items():
        name = _TOP.get(key.replace("_", "").lower())
        if name is None:
            raise InvalidCAConfig(key, f"unknown field (known: {', '.join(sorted(set(_TOP.values())))})")
        if name in fields:
            raise InvalidCAConfig(key, f"given twice (as {name} too)")
        fields[name] = value
    provider = fields.get("Provider") or PROVIDER
    force = fields.get("ForceWithoutCrossSigning", False)
    if not isinstance(force, bool):
        raise InvalidCAConfig("ForceWithoutCrossSigning", f"expected true or false, got {force!r}")
    state = fields.get("State")
    if state is not None and not isinstance(state, Mapping):
        raise InvalidCAConfig("State", "expected an object or null")
    return ConfigRequest(decode_config(provider, fields.get("Config")), force, dict(state) if state else None)
