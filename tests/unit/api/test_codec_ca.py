"""Consul's JSON for CA roots, configuration and leaves: field names, order, omissions."""

from __future__ import annotations

import dataclasses

import pytest

from trellis.agent.leafcert import LeafCert
from trellis.api import codec_ca
from trellis.connect.ca.model import CAConfigDoc, CARoot, SignedLeaf
from trellis.connect.ca.query import Roots

ROOT = CARoot(
    id="aa:bb", name="Consul CA Primary Cert", serial_number=7, signing_key_id="01:02",
    external_trust_domain="1111-2222", not_before=1_700_000_000.0, not_after=1_800_000_000.0,
    root_cert="-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----", signing_key="SECRET",
    private_key_type="ec", private_key_bits=256, active=True, create_index=3, modify_index=4,
)
SIGNED = SignedLeaf(cert_pem="LEAF\n", intermediates=(), root_id="aa:bb", signing_key_id="01:02",
                    serial="0e:3a", service="web", namespace="default",
                    service_uri="spiffe://1111-2222.consul/ns/default/dc/dc1/svc/web",
                    valid_after=1_700_000_000.0, valid_before=1_700_259_200.5)


def test_a_root_renders_consul_fields_in_order_and_never_its_key():
    out = codec_ca.encode_root(ROOT)
    assert list(out) == ["ID", "Name", "SerialNumber", "SigningKeyID", "ExternalTrustDomain", "NotBefore",
                         "NotAfter", "RootCert", "IntermediateCerts", "Active", "PrivateKeyType",
                         "PrivateKeyBits", "CreateIndex", "ModifyIndex"]
    assert out["NotBefore"] == "2023-11-14T22:13:20Z"
    assert out["IntermediateCerts"] is None and out["RootCert"].endswith("-----\n")
    assert "SECRET" not in repr(out)


def test_roots_and_the_pem_bundle():
    roots = Roots("aa:bb", "1111-2222.consul", (ROOT,))
    assert list(codec_ca.encode_roots(roots)) == ["ActiveRootID", "TrustDomain", "Roots"]
    assert codec_ca.encode_roots_pem(roots) == ROOT.root_cert + "\n"
    crossed = Roots("aa:bb", "td", (dataclasses.replace(ROOT, intermediate_certs=("X",)),))
    assert codec_ca.encode_roots_pem(crossed) == ROOT.root_cert + "\nX\n"  # each root, then its chain
    assert codec_ca.encode_root(crossed.roots[0])["IntermediateCerts"] == ["X\n"]


def test_configuration_shape():
    doc = CAConfigDoc(cluster_id="hidden", provider="consul", config={"LeafCertTTL": "72h"},
                      create_index=1, modify_index=2)
    out = codec_ca.encode_config(doc)
    assert out == {"Provider": "consul", "Config": {"LeafCertTTL": "72h"}, "State": None,
                   "ForceWithoutCrossSigning": False, "CreateIndex": 1, "ModifyIndex": 2}
    assert "hidden" not in repr(out)


@pytest.mark.parametrize(("namespace", "has_ns"), [("default", False), ("team-a", True)], ids=["default", "team-a"])
def test_a_leaf_shape_and_namespace_only_outside_default(namespace, has_ns):
    leaf = LeafCert(dataclasses.replace(SIGNED, namespace=namespace), "KEY", ("CROSS",), 42)
    out = codec_ca.encode_leaf(leaf)
    expected = ["SerialNumber", "CertPEM", "PrivateKeyPEM", "Service", "ServiceURI", "ValidAfter", "ValidBefore"]
    assert list(out) == expected + (["Namespace"] if has_ns else []) + ["CreateIndex", "ModifyIndex"]
    assert out["CertPEM"] == "LEAF\nCROSS\n"
    assert out["ValidBefore"] == "2023-11-17T22:13:20.5Z"
    assert out["CreateIndex"] == out["ModifyIndex"] == 42
