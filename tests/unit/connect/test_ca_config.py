"""The CA configuration: decode, validate, identity, request bodies (trellis.connect.ca.config).

Inputs are the ``Config`` maps of ``PUT /v1/connect/ca/configuration`` (CamelCase) and the
agent file's ``connect { ca_config {...} }`` (snake_case); messages are Consul's
(agent/structs/connect_ca.go ``CommonCAProviderConfig.Validate``).
"""

from __future__ import annotations

from typing import Any

import pytest

from trellis.connect.ca import config
from trellis.connect.ca.config import CAConfig, decode_config, decode_request
from trellis.connect.ca.errors import InvalidCAConfig
from trellis.errors import InvalidInput

H = 3600.0
PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n"


# --- decode: accepted -----------------------------------------------------------------------
DECODE_OK: dict[str, tuple[dict[str, Any] | None, dict[str, Any]]] = {
    "none_is_defaults": (None, dict(leaf_cert_ttl=72 * H, intermediate_cert_ttl=8760 * H, root_cert_ttl=87600 * H,
                                    private_key_type="ec", private_key_bits=256, csr_max_per_second=50.0,
                                    csr_max_concurrent=0, skip_validate=False, rotation_period=0.0)),
    "empty_is_defaults": ({}, dict(leaf_cert_ttl=72 * H, private_key_type="ec", private_key_bits=256)),
    "camel_case": (
        {"LeafCertTTL": "24h", "IntermediateCertTTL": "100h", "RootCertTTL": "1000h", "PrivateKeyType": "ec",
         "PrivateKeyBits": 384, "CSRMaxPerSecond": 10, "CSRMaxConcurrent": 2},
        dict(leaf_cert_ttl=24 * H, intermediate_cert_ttl=100 * H, root_cert_ttl=1000 * H, private_key_bits=384,
             csr_max_per_second=10.0, csr_max_concurrent=2),
    ),
    "snake_case_agent_file": (
        {"leaf_cert_ttl": "24h", "intermediate_cert_ttl": "100h", "root_cert_ttl": "1000h",
         "private_key_type": "rsa", "private_key_bits": 4096, "csr_max_per_second": 0, "csr_max_concurrent": 3,
         "skip_validate": False, "rotation_period": "2160h"},
        dict(leaf_cert_ttl=24 * H, intermediate_cert_ttl=100 * H, root_cert_ttl=1000 * H, private_key_type="rsa",
             private_key_bits=4096, csr_max_per_second=0.0, csr_max_concurrent=3, rotation_period=2160 * H),
    ),
    "lower_case_keys": ({"leafcertttl": "2h", "csrmaxpersecond": 5}, dict(leaf_cert_ttl=2 * H, csr_max_per_second=5.0)),
    "kebab_case_keys": ({"leaf-cert-ttl": "2h"}, dict(leaf_cert_ttl=2 * H)),
    "rsa_defaults_to_2048_bits": ({"PrivateKeyType": "rsa"}, dict(private_key_type="rsa", private_key_bits=2048)),
    "rsa_4096": ({"PrivateKeyType": "rsa", "PrivateKeyBits": 4096}, dict(private_key_bits=4096)),
    "ec_224": ({"PrivateKeyBits": 224}, dict(private_key_type="ec", private_key_bits=224)),
    "ec_521": ({"PrivateKeyType": "ec", "PrivateKeyBits": 521}, dict(private_key_bits=521)),
    "number_as_string": ({"CSRMaxPerSecond": "50"}, dict(csr_max_per_second=50.0)),
    "fractional_rate_as_string": ({"CSRMaxPerSecond": "2.5"}, dict(csr_max_per_second=2.5)),
    "bits_as_string": ({"PrivateKeyBits": "384"}, dict(private_key_bits=384)),
    "bits_as_whole_float": ({"PrivateKeyBits": 384.0}, dict(private_key_bits=384)),
    "concurrent_as_string": ({"CSRMaxConcurrent": "4"}, dict(csr_max_concurrent=4)),
    "skip_validate_as_string": ({"SkipValidate": "true"}, dict(skip_validate=True)),
    "skip_validate_lifts_ranges": (
        {"SkipValidate": True, "LeafCertTTL": "1m", "IntermediateCertTTL": "2m", "RootCertTTL": "1m",
         "RotationPeriod": "1s"},
        dict(skip_validate=True, leaf_cert_ttl=60.0, intermediate_cert_ttl=120.0, root_cert_ttl=60.0,
             rotation_period=1.0),
    ),
    "empty_private_key_and_root_cert_mean_not_given": (
        {"PrivateKey": "", "RootCert": ""}, dict(private_key="", root_cert="", imported=False),
    ),
    "blank_private_key_means_not_given": ({"PrivateKey": "  \n"}, dict(private_key="", imported=False)),
    "private_key_alone_is_a_given_key": ({"PrivateKey": PEM_KEY}, dict(private_key=PEM_KEY.strip(), imported=True)),
    "imported_pair": ({"PrivateKey": PEM_KEY, "RootCert": PEM_CERT},
                      dict(private_key=PEM_KEY.strip(), root_cert=PEM_CERT.strip(), imported=True)),
    "smallest_ranges": ({"LeafCertTTL": "1h", "IntermediateCertTTL": "3h", "RootCertTTL": "3h"},
                        dict(leaf_cert_ttl=H, intermediate_cert_ttl=3 * H, root_cert_ttl=3 * H)),
    "largest_leaf": ({"LeafCertTTL": "8760h", "IntermediateCertTTL": "26280h", "RootCertTTL": "26280h"},
                     dict(leaf_cert_ttl=8760 * H)),
    "intermediate_exactly_three_leaves": ({"LeafCertTTL": "5h", "IntermediateCertTTL": "15h", "RootCertTTL": "15h"},
                                          dict(intermediate_cert_ttl=15 * H)),
    "rotation_period_equal_to_leaf": ({"RotationPeriod": "72h"}, dict(rotation_period=72 * H)),
    "rotation_period_zero_is_never": ({"RotationPeriod": "0"}, dict(rotation_period=0.0)),
}


@pytest.mark.parametrize(("given", "expected"), list(DECODE_OK.values()), ids=list(DECODE_OK))
def test_decode_config_accepts(given: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    cfg = decode_config("consul", given)
    assert cfg.provider == "consul"
    for attr, value in expected.items():
        assert getattr(cfg, attr) == value, attr


def test_raw_keeps_canonical_names_and_values_as_given() -> None:
    cfg = decode_config("consul", {"leaf_cert_ttl": "24h", "csrmaxpersecond": "50", "PrivateKey": ""})
    assert cfg.raw == {"LeafCertTTL": "24h", "CSRMaxPerSecond": "50", "PrivateKey": ""}


@pytest.mark.parametrize(
    ("key", "canonical"),
    [("LeafCertTTL", "LeafCertTTL"), ("leaf_cert_ttl", "LeafCertTTL"), ("LEAFCERTTTL", "LeafCertTTL"),
     ("csr_max_per_second", "CSRMaxPerSecond"), ("private_key", "PrivateKey"), ("RotationPeriod", "RotationPeriod"),
     ("Address", None), ("leaf_cert", None)],
    ids=["camel", "snake", "upper", "csr_snake", "private_key", "rotation_period", "vault_only_key", "prefix_only"],
)
def test_canonical_key(key: str, canonical: str | None) -> None:
    assert config.canonical_key(key) == canonical


# --- decode: refused ---------------------------------------------------------------------------
CONSUL_ROOT_LT_INTERMEDIATE = ("root cert TTL is set and is not greater than intermediate cert ttl. "
                               "root cert ttl: 3h0m0s, intermediate cert ttl: 4h0m0s")
DECODE_BAD: dict[str, tuple[Any, str, str]] = {
    # Consul's range rules, Consul's words
    "leaf_below_1h": ({"LeafCertTTL": "59m"}, "Config.LeafCertTTL",
                      "leaf cert TTL must be greater or equal than 1h0m0s"),
    "leaf_above_8760h": ({"LeafCertTTL": "8761h", "IntermediateCertTTL": "30000h", "RootCertTTL": "30000h"},
                         "Config.LeafCertTTL", "leaf cert TTL must be less than 8760h0m0s"),
    "intermediate_below_3h": ({"LeafCertTTL": "1h", "IntermediateCertTTL": "2h59m", "RootCertTTL": "10h"},
                              "Config.IntermediateCertTTL", "Intermediate Cert TTL must be greater or equal than 3h"),
    "intermediate_below_3x_leaf": ({"LeafCertTTL": "2h", "IntermediateCertTTL": "4h", "RootCertTTL": "5h"},
                                   "Config.IntermediateCertTTL",
                                   "Intermediate Cert TTL must be greater or equal than 3 * LeafCertTTL (>=6h0m0s)."),
    "intermediate_just_below_3x_leaf_default": ({"IntermediateCertTTL": "215h"}, "Config.IntermediateCertTTL",
                                                "Intermediate Cert TTL must be greater or equal than 3 * LeafCertTTL "
                                                "(>=216h0m0s)."),
    "root_below_intermediate": ({"LeafCertTTL": "1h", "IntermediateCertTTL": "4h", "RootCertTTL": "3h"},
                                "Config.RootCertTTL", CONSUL_ROOT_LT_INTERMEDIATE),
    "bad_key_type": ({"PrivateKeyType": "dsa"}, "Config.PrivateKeyType",
                     "private key type must be either 'ec' or 'rsa'"),
    "key_type_is_case_sensitive": ({"PrivateKeyType": "EC"}, "Config.PrivateKeyType",
                                   "private key type must be either 'ec' or 'rsa'"),
    "ec_bits_255": ({"PrivateKeyBits": 255}, "Config.PrivateKeyBits",
                    "EC key length must be one of (224, 256, 384, 521) bits"),
    "ec_bits_2048": ({"PrivateKeyType": "ec", "PrivateKeyBits": 2048}, "Config.PrivateKeyBits",
                     "EC key length must be one of (224, 256, 384, 521) bits"),
    "rsa_bits_1024": ({"PrivateKeyType": "rsa", "PrivateKeyBits": 1024}, "Config.PrivateKeyBits",
                      "RSA key length must be 2048 or 4096 bits"),
    "rsa_bits_256": ({"PrivateKeyType": "rsa", "PrivateKeyBits": 256}, "Config.PrivateKeyBits",
                     "RSA key length must be 2048 or 4096 bits"),
    # SkipValidate lifts the ranges, not positivity nor the key rules
    "skip_validate_zero_leaf": ({"SkipValidate": True, "LeafCertTTL": "0s"}, "Config.LeafCertTTL",
                                "must be greater than 0"),
    "skip_validate_negative_intermediate": ({"SkipValidate": True, "IntermediateCertTTL": "-1h"},
                                            "Config.IntermediateCertTTL", "must be greater than 0"),
    "skip_validate_zero_root": ({"SkipValidate": True, "RootCertTTL": "0"}, "Config.RootCertTTL",
                                "must be greater than 0"),
    "skip_validate_bad_key_type": ({"SkipValidate": True, "PrivateKeyType": "dsa"}, "Config.PrivateKeyType",
                                   "private key type must be either 'ec' or 'rsa'"),
    "skip_validate_bad_bits": ({"SkipValidate": True, "PrivateKeyBits": 100}, "Config.PrivateKeyBits",
                               "EC key length must be one of (224, 256, 384, 521) bits"),
    # keys
    "unknown_key": ({"LeafCertTTL": "72h", "Foo": 1}, "Config.Foo", "unknown key for the consul provider"),
    "vault_key_on_consul": ({"Address": "http://vault:8200"}, "Config.Address", "unknown key for the consul provider"),
    "duplicate_via_case": ({"LeafCertTTL": "24h", "leafcertttl": "24h"}, "Config.leafcertttl",
                           "given twice (as LeafCertTTL too)"),
    "duplicate_via_snake_case": ({"private_key_type": "ec", "PrivateKeyType": "ec"}, "Config.PrivateKeyType",
                                 "given twice (as PrivateKeyType too)"),
    "root_cert_without_private_key": ({"RootCert": PEM_CERT}, "Config.PrivateKey",
                                      "a PrivateKey is required when RootCert is given"),
    "root_cert_with_empty_private_key": ({"RootCert": PEM_CERT, "PrivateKey": ""}, "Config.PrivateKey",
                                         "a PrivateKey is required when RootCert is given"),
    # value types
    "duration_as_number": ({"LeafCertTTL": 3600}, "Config.LeafCertTTL", 'expected a duration string such as "72h"'),
    "duration_as_null": ({"RootCertTTL": None}, "Config.RootCertTTL", 'expected a duration string such as "72h"'),
    "duration_as_bool": ({"IntermediateCertTTL": True}, "Config.IntermediateCertTTL",
                         'expected a duration string such as "72h"'),
    "duration_not_go_syntax": ({"LeafCertTTL": "72 hours"}, "Config.LeafCertTTL", "time: "),
    "duration_empty": ({"LeafCertTTL": ""}, "Config.LeafCertTTL", "time: "),
    "rotation_period_as_number": ({"RotationPeriod": 0}, "Config.RotationPeriod", "expected a duration string"),
    "rotation_period_below_leaf": ({"RotationPeriod": "30m"}, "Config.RotationPeriod",
                                   "must be at least LeafCertTTL (72h0m0s), or 0 for never"),
    "rate_negative": ({"CSRMaxPerSecond": -1}, "Config.CSRMaxPerSecond", "expected a finite number >= 0"),
    "rate_not_a_number": ({"CSRMaxPerSecond": "fast"}, "Config.CSRMaxPerSecond", "expected a finite number >= 0"),
    "rate_bool": ({"CSRMaxPerSecond": True}, "Config.CSRMaxPerSecond", "expected a finite number >= 0"),
    "rate_nan": ({"CSRMaxPerSecond": "nan"}, "Config.CSRMaxPerSecond", "expected a finite number >= 0"),
    "rate_infinite": ({"CSRMaxPerSecond": "inf"}, "Config.CSRMaxPerSecond", "expected a finite number >= 0"),
    "concurrent_fraction": ({"CSRMaxConcurrent": "1.5"}, "Config.CSRMaxConcurrent", "expected a whole number"),
    "bits_fraction": ({"PrivateKeyBits": 256.5}, "Config.PrivateKeyBits", "expected a whole number"),
    "bits_null": ({"PrivateKeyBits": None}, "Config.PrivateKeyBits", "expected a finite number >= 0"),
    "skip_validate_yes": ({"SkipValidate": "yes"}, "Config.SkipValidate", "expected true or false"),
    "skip_validate_number": ({"SkipValidate": 1}, "Config.SkipValidate", "expected true or false"),
    "key_type_number": ({"PrivateKeyType": 5}, "Config.PrivateKeyType", "expected a string"),
    "private_key_number": ({"PrivateKey": 5}, "Config.PrivateKey", "expected a string"),
    "config_not_an_object": (["LeafCertTTL"], "Config", "expected an object, got list"),
    "config_a_string": ("LeafCertTTL=72h", "Config", "expected an object, got str"),
}


@pytest.mark.parametrize(("given", "field", "reason"), list(DECODE_BAD.values()), ids=list(DECODE_BAD))
def test_decode_config_refuses(given: Any, field: str, reason: str) -> None:
    with pytest.raises(InvalidCAConfig) as err:
        decode_config("consul", given)
    assert isinstance(err.value, InvalidInput)
    assert err.value.field == field
    assert reason in err.value.reason
    assert str(err.value) == f"{field}: {err.value.reason}"


@pytest.mark.parametrize(
    ("provider", "reason"),
    [
        ("vault", 'CA provider "vault" is not supported yet'),
        ("aws-pca", 'CA provider "aws-pca" is not supported yet'),
        ("acme", "unknown CA provider 'acme'"),
        ("Consul", "unknown CA provider 'Consul'"),
        ("", "unknown CA provider ''"),
    ],
    ids=["vault", "aws_pca", "unknown", "case_matters", "empty"],
)
def test_decode_config_refuses_providers(provider: str, reason: str) -> None:
    with pytest.raises(InvalidCAConfig) as err:
        decode_config(provider, {})
    assert err.value.field == "Provider"
    assert reason in err.value.reason
    assert 'the built-in provider is "consul"' in err.value.reason or 'supported: "consul"' in err.value.reason


def test_unknown_key_message_lists_the_known_keys() -> None:
    with pytest.raises(InvalidCAConfig) as err:
        decode_config("consul", {"RotationPeriodz": "1h"})
    assert "RotationPeriodz" in str(err.value)
    assert "LeafCertTTL" in err.value.reason and "CSRMaxConcurrent" in err.value.reason


# --- from_agent ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ca_config", "raw"),
    [
        ({}, {"LeafCertTTL": "72h", "IntermediateCertTTL": "8760h", "RootCertTTL": "87600h"}),
        ({"leaf_cert_ttl": "24h", "private_key_type": "rsa"},
         {"LeafCertTTL": "24h", "IntermediateCertTTL": "8760h", "RootCertTTL": "87600h", "PrivateKeyType": "rsa"}),
    ],
    ids=["defaults", "snake_case_overlay"],
)
def test_from_agent_overlays_the_defaults(ca_config: dict[str, Any], raw: dict[str, Any]) -> None:
    cfg = config.from_agent("consul", ca_config)
    assert cfg.raw == raw


def test_from_agent_refuses_what_decode_refuses() -> None:
    with pytest.raises(InvalidCAConfig, match="Config.leaf_cert_ttl|Config.LeafCertTTL"):
        config.from_agent("consul", {"leaf_cert_ttl": "30m"})


# --- identity ----------------------------------------------------------------------------------------
BASE = {"LeafCertTTL": "72h", "PrivateKeyType": "ec", "PrivateKeyBits": 256}
SAME_IDENTITY = {
    "leaf_ttl": {**BASE, "LeafCertTTL": "24h"},
    "intermediate_ttl": {**BASE, "IntermediateCertTTL": "9000h"},
    "root_ttl": {**BASE, "RootCertTTL": "90000h"},
    "csr_limits": {**BASE, "CSRMaxPerSecond": 10, "CSRMaxConcurrent": 4},
    "skip_validate": {**BASE, "SkipValidate": True},
    "rotation_period": {**BASE, "RotationPeriod": "2160h"},
    "defaults_spelled_out": {},
    "snake_case": {"leaf_cert_ttl": "72h", "private_key_type": "ec", "private_key_bits": 256},
    "empty_private_key": {**BASE, "PrivateKey": "", "RootCert": ""},
}
OTHER_IDENTITY = {
    "key_type": {**BASE, "PrivateKeyType": "rsa", "PrivateKeyBits": 2048},
    "key_bits": {**BASE, "PrivateKeyBits": 384},
    "private_key_given": {**BASE, "PrivateKey": PEM_KEY},
    "root_cert_given": {**BASE, "PrivateKey": PEM_KEY, "RootCert": PEM_CERT},
}


@pytest.mark.parametrize("other", list(SAME_IDENTITY.values()), ids=list(SAME_IDENTITY))
def test_identity_unchanged_by_anything_but_keys(other: dict[str, Any]) -> None:
    a, b = decode_config("consul", BASE), decode_config("consul", other)
    assert a.identity() == b.identity()


@pytest.mark.parametrize("other", list(OTHER_IDENTITY.values()), ids=list(OTHER_IDENTITY))
def test_identity_changes_with_the_key(other: dict[str, Any]) -> None:
    assert decode_config("consul", BASE).identity() != decode_config("consul", other).identity()


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ({"PrivateKeyType": "rsa"}, {"PrivateKeyType": "rsa", "PrivateKeyBits": 2048}, True),
        ({"PrivateKeyType": "rsa"}, {"PrivateKeyType": "rsa", "PrivateKeyBits": 4096}, False),
        ({"PrivateKey": PEM_KEY}, {"PrivateKey": "\n" + PEM_KEY + "\n\n"}, True),
        ({"PrivateKey": PEM_KEY, "RootCert": PEM_CERT}, {"PrivateKey": PEM_KEY, "RootCert": PEM_CERT + "\n"}, True),
    ],
    ids=["rsa_default_bits_is_2048", "rsa_4096", "key_whitespace", "cert_whitespace"],
)
def test_identity_pairs(a: dict[str, Any], b: dict[str, Any], same: bool) -> None:
    assert (decode_config("consul", a).identity() == decode_config("consul", b).identity()) is same


def test_identity_of_direct_construction_strips_whitespace() -> None:
    assert CAConfig(private_key=" k ").identity() == CAConfig(private_key="k").identity()


# --- decode_request ------------------------------------------------------------------------------------
REQUEST_OK: dict[str, tuple[Any, dict[str, Any]]] = {
    "minimal": ({"Provider": "consul", "Config": {"LeafCertTTL": "24h"}},
                dict(leaf=24 * H, force=False, state=None)),
    "provider_omitted_is_consul": ({"Config": {}}, dict(leaf=72 * H, force=False, state=None)),
    "provider_null_is_consul": ({"Provider": None, "Config": {}}, dict(force=False)),
    "config_omitted_is_defaults": ({"Provider": "consul"}, dict(leaf=72 * H)),
    "get_config_output_written_back": (
        {"Provider": "consul", "Config": {"LeafCertTTL": "72h"}, "State": None, "ForceWithoutCrossSigning": False,
         "CreateIndex": 5, "ModifyIndex": 9},
        dict(leaf=72 * H, force=False, state=None),
    ),
    "force_without_cross_signing": ({"Provider": "consul", "Config": {}, "ForceWithoutCrossSigning": True},
                                    dict(force=True)),
    "force_snake_alias": ({"provider": "consul", "config": {}, "force_without_cross_signing": True},
                          dict(force=True)),
    "lower_case_top_level": ({"provider": "consul", "config": {"leaf_cert_ttl": "2h"}, "modifyindex": 3},
                             dict(leaf=2 * H)),
    "state_object": ({"Provider": "consul", "Config": {}, "State": {"foo": "bar"}}, dict(state={"foo": "bar"})),
    "state_empty_object_is_none": ({"Provider": "consul", "Config": {}, "State": {}}, dict(state=None)),
}


@pytest.mark.parametrize(("body", "expected"), list(REQUEST_OK.values()), ids=list(REQUEST_OK))
def test_decode_request_accepts(body: Any, expected: dict[str, Any]) -> None:
    req = decode_request(body)
    assert req.config.provider == "consul"
    if "leaf" in expected:
        assert req.config.leaf_cert_ttl == expected["leaf"]
    if "force" in expected:
        assert req.force_without_cross_signing is expected["force"]
    if "state" in expected:
        assert req.state == expected["state"]


REQUEST_BAD: dict[str, tuple[Any, str, str]] = {
    "unknown_top_level_field": ({"Provider": "consul", "Config": {}, "Datacenter": "dc1"}, "Datacenter",
                                "unknown field"),
    "body_not_object": (["consul"], "body", "expected a JSON object"),
    "body_null": (None, "body", "expected a JSON object"),
    "state_string": ({"Provider": "consul", "Config": {}, "State": "x"}, "State", "expected an object or null"),
    "state_list": ({"Provider": "consul", "Config": {}, "State": []}, "State", "expected an object or null"),
    "force_string": ({"Config": {}, "ForceWithoutCrossSigning": "true"}, "ForceWithoutCrossSigning",
                     "expected true or false"),
    "provider_vault": ({"Provider": "vault", "Config": {}}, "Provider", "not supported yet"),
    "provider_unknown": ({"Provider": "acme", "Config": {}}, "Provider", "unknown CA provider"),
    "config_error_propagates": ({"Provider": "consul", "Config": {"LeafCertTTL": "10m"}}, "Config.LeafCertTTL",
                                "leaf cert TTL must be greater or equal than 1h0m0s"),
    "config_not_object": ({"Provider": "consul", "Config": "x"}, "Config", "expected an object"),
    "config_twice_in_two_cases": ({"Config": {}, "config": {"LeafCertTTL": "1h"}}, "config", "given twice"),
}


@pytest.mark.parametrize(("body", "field", "reason"), list(REQUEST_BAD.values()), ids=list(REQUEST_BAD))
def test_decode_request_refuses(body: Any, field: str, reason: str) -> None:
    with pytest.raises(InvalidCAConfig) as err:
        decode_request(body)
    assert err.value.field == field
    assert reason in err.value.reason


def test_unknown_top_level_field_message_lists_the_known_ones() -> None:
    with pytest.raises(InvalidCAConfig) as err:
        decode_request({"Bogus": 1})
    assert "Bogus" in str(err.value)
    for known in ("Config", "CreateIndex", "ForceWithoutCrossSigning", "ModifyIndex", "Provider", "State"):
        assert known in err.value.reason
