"""``trellis connect ca ...``: set-config file decoding, output formats, requests sent, errors."""

from __future__ import annotations

import io
import json
import os
import stat
import textwrap

import pytest

from trellis.cli import connect_ca, http
from trellis.cli.output import CommandError

CONFIG = {"Provider": "consul", "Config": {"LeafCertTTL": "72h", "IntermediateCertTTL": "8760h"},
          "State": None, "ForceWithoutCrossSigning": False, "CreateIndex": 1, "ModifyIndex": 3}
ROOT_A = {"ID": "aa:bb", "Name": "Consul CA Primary Cert", "SerialNumber": 7, "Active": False,
          "NotBefore": "2025-01-01T00:00:00Z", "NotAfter": "2035-01-01T00:00:00Z",
          "RootCert": "-----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE-----\n", "IntermediateCerts": None}
ROOT_B = {"ID": "cc:dd:ee", "Name": "Consul CA Primary Cert", "SerialNumber": 8, "Active": True,
          "NotBefore": "2025-06-01T00:00:00Z", "NotAfter": "2035-06-01T00:00:00Z",
          "RootCert": "-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n",
          "IntermediateCerts": ["-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n"]}
ROOTS = {"ActiveRootID": "cc:dd:ee", "TrustDomain": "11111111-2222.consul", "Roots": [ROOT_A, ROOT_B]}
ROOTS_PEM = ROOT_A["RootCert"] + ROOT_B["RootCert"] + ROOT_B["IntermediateCerts"][0]
LEAF = {"SerialNumber": "01:02", "CertPEM": "-----BEGIN CERTIFICATE-----\nL\n-----END CERTIFICATE-----\n",
        "PrivateKeyPEM": "-----BEGIN EC PRIVATE KEY-----\nK\n-----END EC PRIVATE KEY-----\n",
        "Service": "web", "ServiceURI": "spiffe://11111111-2222.consul/ns/default/dc/dc1/svc/web",
        "ValidAfter": "2025-07-01T00:00:00Z", "ValidBefore": "2025-07-04T00:00:00Z",
        "CreateIndex": 4, "ModifyIndex": 4}


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


# --------------------------------------------------------------------------- set-config files (pure)

FORMAT_CASES = [
    ("hcl-extension", "ca.hcl", '{"Provider": "consul"}', "hcl"),
    ("json-extension", "ca.json", 'provider = "consul"', "json"),
    ("no-extension-json-text", "ca.conf", '  {"Provider": "consul"}', "json"),
    ("no-extension-json-array", "ca", "[1]", "json"),
    ("no-extension-hcl-text", "ca.conf", 'provider = "consul"', "hcl"),
    ("stdin-json", "<stdin>", '\n{"Config": {}}', "json"),
    ("upper-case-extension", "CA.HCL", "x = 1", "hcl"),
]


@pytest.mark.parametrize(("filename", "text", "fmt"), [c[1:] for c in FORMAT_CASES], ids=[c[0] for c in FORMAT_CASES])
def test_choose_format_by_extension_then_content(filename, text, fmt):
    assert connect_ca.choose_format(filename, text) == fmt


SEED = '{"Provider": "consul", "Config": {"PrivateKey": "", "RootCert": "", ' \
       '"RotationPeriod": "2160h", "IntermediateCertTTL": "8760h"}}'

DECODE_CASES = [
    ("seed-json", "ca.json", SEED,
     {"Provider": "consul", "Config": {"PrivateKey": "", "RootCert": "", "RotationPeriod": "2160h",
                                       "IntermediateCertTTL": "8760h"}}),
    ("hcl-snake-case", "ca.hcl", 'provider = "consul"\nconfig {\n  leaf_cert_ttl = "24h"\n}\n',
     {"Provider": "consul", "Config": {"leaf_cert_ttl": "24h"}}),
    ("hcl-force-and-state", "ca.hcl", 'force_without_cross_signing = true\nstate = null\nconfig { a = 1 }\n',
     {"ForceWithoutCrossSigning": True, "State": None, "Config": {"a": 1}}),
    ("json-other-spellings", "ca.json", '{"PROVIDER": "consul", "force_Without_Cross_Signing": false}',
     {"Provider": "consul", "ForceWithoutCrossSigning": False}),
    ("config-keys-untouched", "ca.json", '{"config": {"leaf_cert_ttl": "24h", "Private_Key": ""}}',
     {"Config": {"leaf_cert_ttl": "24h", "Private_Key": ""}}),
    ("get-config-output-round-trips", "ca.json", connect_ca.format_config(CONFIG), CONFIG),
    ("unknown-top-level-key-sent-for-the-agent-to-judge", "ca.json", '{"Bogus": 1, "Config": {}}',
     {"Bogus": 1, "Config": {}}),
    ("stdin-hcl", "<stdin>", 'config {\n  LeafCertTTL = "24h"\n}\n', {"Config": {"LeafCertTTL": "24h"}}),
]


@pytest.mark.parametrize(("filename", "text", "doc"), [c[1:] for c in DECODE_CASES], ids=[c[0] for c in DECODE_CASES])
def test_decode_config_text_maps_only_top_level_names(filename, text, doc):
    got = connect_ca.decode_config_text(text, filename=filename)
    assert got == doc
    assert list(got) == list(doc)  # order kept


DECODE_ERRORS = [
    ("json-trailing-comma", "ca.json", '{\n  "Config": {"LeafCertTTL": "24h",}\n}',
     "Error parsing ca.json: line 2, column 35: Expecting property name enclosed in double quotes"),
    ("json-truncated", "ca.json", '{"Config": {',
     "Error parsing ca.json: line 1, column 13: Expecting property name enclosed in double quotes"),
    ("hcl-missing-value", "ca.hcl", 'config {\n  leaf_cert_ttl =\n}\n', "Error parsing ca.hcl: line 3, column 1"),
    ("json-not-an-object", "ca.json", '["consul"]', "Error parsing ca.json: top level must be an object"),
    ("json-duplicate-key", "ca.json", '{"Config": {}, "Config": {}}', 'Error parsing ca.json: duplicate key "Config"'),
    ("two-spellings-of-one-key", "ca.json", '{"provider": "consul", "Provider": "consul"}',
     'Error parsing ca.json: "provider" and "Provider" are the same key (Provider)'),
    ("empty-json", "ca.json", "{}", "Error parsing ca.json: the file is empty; expected Provider and Config"),
    ("empty-hcl", "ca.hcl", "\n", "Error parsing ca.hcl: the file is empty; expected Provider and Config"),
]


@pytest.mark.parametrize(("filename", "text", "message"), [c[1:] for c in DECODE_ERRORS],
                         ids=[c[0] for c in DECODE_ERRORS])
def test_decode_config_text_errors_name_file_and_position(filename, text, message):
    with pytest.raises(CommandError) as exc:
        connect_ca.decode_config_text(text, filename=filename)
    assert str(exc.value).startswith(message)


FORCE_CASES = [
    ("default-false", {"Config": {}}, None, False),
    ("file-value-kept", {"ForceWithoutCrossSigning": True}, None, True),
    ("flag-true-wins", {"ForceWithoutCrossSigning": False}, True, True),
    ("flag-false-wins", {"ForceWithoutCrossSigning": True}, False, False),
]


@pytest.mark.parametrize(("doc", "flag", "force"), [c[1:] for c in FORCE_CASES], ids=[c[0] for c in FORCE_CASES])
def test_build_request_body_force_flag(doc, flag, force):
    body = connect_ca.build_request_body(doc, force=flag)
    assert body["ForceWithoutCrossSigning"] is force
    assert {k: v for k, v in body.items() if k != "ForceWithoutCrossSigning"} == {
        k: v for k, v in doc.items() if k != "ForceWithoutCrossSigning"}


# --------------------------------------------------------------------------- formatting (pure)


def test_format_config_is_tab_indented_in_api_order():
    assert connect_ca.format_config(CONFIG) == (
        '{\n\t"Provider": "consul",\n\t"Config": {\n\t\t"LeafCertTTL": "72h",\n'
        '\t\t"IntermediateCertTTL": "8760h"\n\t},\n\t"State": null,\n\t"ForceWithoutCrossSigning": false,\n'
        '\t"CreateIndex": 1,\n\t"ModifyIndex": 3\n}'
    )


ROOTS_TABLES = [
    ("two-roots-api-order", ROOTS,
     "ID        Name                    Active  NotAfter\n"
     "aa:bb     Consul CA Primary Cert  false   2035-01-01T00:00:00Z\n"
     "cc:dd:ee  Consul CA Primary Cert  true    2035-06-01T00:00:00Z"),
    ("no-roots", {"Roots": None}, "ID  Name  Active  NotAfter"),
    ("missing-fields", {"Roots": [{"ID": "x", "Active": True}]}, "ID  Name  Active  NotAfter\nx         true    "),
]


@pytest.mark.parametrize(("roots", "table"), [c[1:] for c in ROOTS_TABLES], ids=[c[0] for c in ROOTS_TABLES])
def test_format_roots_table(roots, table):
    assert connect_ca.format_roots(roots) == table


LEAF_SUMMARIES = [
    ("default-namespace", LEAF,
     "Service       web\n"
     "ServiceURI    spiffe://11111111-2222.consul/ns/default/dc/dc1/svc/web\n"
     "SerialNumber  01:02\n"
     "ValidAfter    2025-07-01T00:00:00Z\n"
     "ValidBefore   2025-07-04T00:00:00Z"),
    ("other-namespace", {"Service": "api", "Namespace": "team-a", "SerialNumber": "03"},
     "Service       api\nNamespace     team-a\nSerialNumber  03"),
]


@pytest.mark.parametrize(("leaf", "text"), [c[1:] for c in LEAF_SUMMARIES], ids=[c[0] for c in LEAF_SUMMARIES])
def test_format_leaf_summary_has_no_key_material(leaf, text):
    assert connect_ca.format_leaf(leaf) == text
    assert "PRIVATE KEY" not in text


WRITTEN_CASES = [
    ("leaf-only", 1, 1, "(leaf certificate)", "(1 trusted CA certificate)"),
    ("after-rotation", 2, 3, "(leaf certificate and 1 intermediate)", "(3 trusted CA certificates)"),
    ("two-intermediates", 3, 2, "(leaf certificate and 2 intermediates)", "(2 trusted CA certificates)"),
]


@pytest.mark.parametrize(("certs", "roots", "cert_note", "roots_note"), [c[1:] for c in WRITTEN_CASES],
                         ids=[c[0] for c in WRITTEN_CASES])
def test_format_written_lists_files_then_identity(certs, roots, cert_note, roots_note):
    written = {"CertFile": "d/cert.pem", "KeyFile": "d/key.pem", "RootsFile": "d/roots.pem", "CertCount": certs,
               "RootsCount": roots, "ServiceURI": "spiffe://t/svc/web", "SerialNumber": "01", "ValidBefore": "T"}
    assert connect_ca.format_written(written) == (
        f"Wrote d/cert.pem {cert_note}\n"
        "Wrote d/key.pem (private key, mode 0600)\n"
        f"Wrote d/roots.pem {roots_note}\n"
        "ServiceURI    spiffe://t/svc/web\n"
        "SerialNumber  01\n"
        "ValidBefore   T"
    )


RATE_CASES = [
    ("seconds", "rate limited: over 50/s; retry after 0.02s\n", "1", "rate limited: over 50/s; retry after 0.02s "
                                                                    "(retry after 1s)"),
    ("no-header", "rate limited", "", "rate limited"),
    ("http-date-header-ignored", "slow down", "Wed, 21 Oct 2015 07:28:00 GMT", "slow down"),
    ("empty-body", "", "3", "rate limited (retry after 3s)"),
]


@pytest.mark.parametrize(("body", "header", "text"), [c[1:] for c in RATE_CASES], ids=[c[0] for c in RATE_CASES])
def test_format_rate_limited(body, header, text):
    assert connect_ca.format_rate_limited(body, header) == text


def test_format_rotation_names_both_roots():
    text = connect_ca.format_rotation({"ActiveRootID": "new-id", "PreviousRootID": "old-id"})
    first, second = text.split("\n")
    assert first == "Root rotated: new-id is now the active root."
    assert second.startswith("The previous root old-id stays trusted until the last leaf it signed has expired")


@pytest.mark.parametrize(("pem", "n"), [("", 0), (ROOTS_PEM, 3), (LEAF["PrivateKeyPEM"], 0)],
                         ids=["empty", "bundle", "key-only"])
def test_count_certs(pem, n):
    assert connect_ca.count_certs(pem) == n


# --------------------------------------------------------------------------- commands against a fake agent


def test_get_config_prints_tabbed_json(agent, cli):
    agent.on("GET", "/v1/connect/ca/configuration", CONFIG)
    r = cli("connect", "ca", "get-config", "-datacenter", "dc2")
    assert (r.code, r.out, r.err) == (0, connect_ca.format_config(CONFIG) + "\n", "")
    assert agent.query() == [("dc", "dc2")]


def test_get_config_api_error(agent, cli):
    agent.on("GET", "/v1/connect/ca/configuration", "Permission denied", status=403)
    r = cli("connect", "ca", "get-config")
    assert (r.code, r.out) == (1, "")
    assert r.err == "Error retrieving CA configuration: Unexpected response code: 403 (Permission denied)\n"


def test_set_config_sends_file_and_reports(agent, cli, tmp_path):
    agent.on("PUT", "/v1/connect/ca/configuration", None)
    path = write(tmp_path, "ca.hcl", 'provider = "consul"\nconfig {\n  leaf_cert_ttl = "24h"\n}\n')
    r = cli("connect", "ca", "set-config", "-config-file", path, "-force-without-cross-signing")
    assert (r.code, r.out, r.err) == (0, "Configuration updated!\n", "")
    assert agent.paths() == ["PUT /v1/connect/ca/configuration"]
    assert agent.body() == {"Provider": "consul", "Config": {"leaf_cert_ttl": "24h"}, "ForceWithoutCrossSigning": True}


def test_set_config_reads_stdin(agent, cli, monkeypatch):
    agent.on("PUT", "/v1/connect/ca/configuration", None)
    monkeypatch.setattr("sys.stdin", io.StringIO('{"Config": {"LeafCertTTL": "24h"}}'))
    r = cli("connect", "ca", "set-config", "-config-file=-")
    assert r.code == 0
    assert agent.body() == {"Config": {"LeafCertTTL": "24h"}, "ForceWithoutCrossSigning": False}


SET_CONFIG_ERRORS = [
    ("no-flag", [], None, "The -config-file flag is required"),
    ("missing-file", ["-config-file", "{tmp}/nope.json"], None,
     "Error reading {tmp}/nope.json: no such file or directory"),
    ("malformed", ["-config-file", "{tmp}/bad.json"], '{"Config": }',
     "Error parsing {tmp}/bad.json: line 1, column 12: Expecting value"),
    ("positional", ["-config-file", "{tmp}/bad.json", "extra"], "{}", "Too many arguments (expected 0, got 1)"),
]


@pytest.mark.parametrize(("argv", "content", "message"), [c[1:] for c in SET_CONFIG_ERRORS],
                         ids=[c[0] for c in SET_CONFIG_ERRORS])
def test_set_config_local_errors_send_nothing(agent, cli, tmp_path, argv, content, message):
    if content is not None:
        (tmp_path / "bad.json").write_text(content)
    r = cli("connect", "ca", "set-config", *[a.format(tmp=tmp_path) for a in argv])
    assert (r.code, r.out, r.err) == (1, "", message.format(tmp=tmp_path) + "\n")
    assert agent.requests == []


@pytest.mark.parametrize(("status", "body", "message"), [
    (400, "Config.LeafCertTTL: leaf cert TTL must be greater or equal than 1h0m0s",
     "Error setting CA configuration: Config.LeafCertTTL: leaf cert TTL must be greater or equal than 1h0m0s"),
    (403, "Permission denied", "Error setting CA configuration: Unexpected response code: 403 (Permission denied)"),
], ids=["bad-input-alone", "other-status-with-code"])
def test_set_config_api_errors(agent, cli, tmp_path, status, body, message):
    agent.on("PUT", "/v1/connect/ca/configuration", body, status=status)
    r = cli("connect", "ca", "set-config", "-config-file", write(tmp_path, "ca.json", '{"Config": {}}'))
    assert (r.code, r.out, r.err) == (1, "", message + "\n")


@pytest.mark.parametrize(("argv", "out"), [
    ([], connect_ca.format_rotation({"ActiveRootID": "n", "PreviousRootID": "o"}) + "\n"),
    (["-format=json"], '{\n    "ActiveRootID": "n",\n    "PreviousRootID": "o"\n}\n'),
], ids=["pretty", "json"])
def test_rotate_posts_and_prints(agent, cli, argv, out):
    agent.on("POST", "/v1/connect/ca/rotate", {"ActiveRootID": "n", "PreviousRootID": "o"})
    r = cli("connect", "ca", "rotate", *argv)
    assert (r.code, r.out, r.err) == (0, out, "")
    assert agent.paths() == ["POST /v1/connect/ca/rotate"]


def test_roots_table_json_and_pem(agent, cli):
    agent.on("GET", "/v1/connect/ca/roots", ROOTS)
    assert cli("connect", "ca", "roots").out == connect_ca.format_roots(ROOTS) + "\n"
    assert json.loads(cli("connect", "ca", "roots", "-format=json").out) == ROOTS
    agent.on("GET", "/v1/connect/ca/roots", ROOTS_PEM)
    r = cli("connect", "ca", "roots", "-pem")
    assert (r.code, r.out) == (0, ROOTS_PEM)
    assert agent.query() == [("pem", "true")]


def test_roots_pem_and_format_conflict(agent, cli):
    r = cli("connect", "ca", "roots", "-pem", "-format=json")
    assert (r.code, r.err) == (1, "Only one of -pem and -format may be given\n")
    assert agent.requests == []


def test_leaf_summary_json_and_namespace(agent, cli):
    agent.on("GET", "/v1/agent/connect/ca/leaf/web", LEAF)
    assert cli("connect", "ca", "leaf", "-service", "web").out == connect_ca.format_leaf(LEAF) + "\n"
    r = cli("connect", "ca", "leaf", "-service=web", "-format=json", "-namespace", "team-a")
    assert json.loads(r.out) == LEAF
    assert agent.query() == [("ns", "team-a")]


def test_leaf_without_service_is_a_usage_error(agent, cli):
    r = cli("connect", "ca", "leaf", "-out-dir", "x")
    assert r.code == 1
    assert r.err.startswith("The -service flag is required\nUsage: trellis connect ca leaf -service NAME [options]")
    assert agent.requests == []


def test_leaf_rate_limited_reports_retry_after(monkeypatch, cli):
    def send(config, req):
        return http.Response(429, {"retry-after": "2"}, b"rate limited: CSRMaxPerSecond is 1; retry after 1.5s")

    monkeypatch.setattr(http, "send", send)
    r = cli("connect", "ca", "leaf", "-service", "web")
    assert (r.code, r.out) == (1, "")
    assert r.err == ("Error fetching leaf certificate: rate limited: CSRMaxPerSecond is 1; retry after 1.5s "
                     "(retry after 2s)\n")


def test_leaf_other_errors(agent, cli):
    r = cli("connect", "ca", "leaf", "-service", "web")
    assert r.err == ("Error fetching leaf certificate: Unexpected response code: 404 "
                     "(Invalid URL path: not a recognized HTTP API endpoint)\n")


def test_leaf_out_dir_writes_three_files(agent, cli, tmp_path):
    agent.on("GET", "/v1/agent/connect/ca/leaf/web", LEAF)
    agent.on("GET", "/v1/connect/ca/roots", ROOTS_PEM)
    out_dir = tmp_path / "certs" / "web"
    r = cli("connect", "ca", "leaf", "-service", "web", "-out-dir", str(out_dir))
    assert r.code == 0, r.err
    assert (out_dir / "cert.pem").read_text() == LEAF["CertPEM"]
    assert (out_dir / "key.pem").read_text() == LEAF["PrivateKeyPEM"]
    assert (out_dir / "roots.pem").read_text() == ROOTS_PEM
    assert stat.S_IMODE(os.stat(out_dir / "key.pem").st_mode) == 0o600
    assert sorted(os.listdir(out_dir)) == ["cert.pem", "key.pem", "roots.pem"]  # no temporary files left
    assert r.out.splitlines()[0] == f"Wrote {out_dir}/cert.pem (leaf certificate)"
    assert f"ServiceURI    {LEAF['ServiceURI']}" in r.out


def test_leaf_out_dir_roots_failure_writes_nothing(agent, cli, tmp_path):
    agent.on("GET", "/v1/agent/connect/ca/leaf/web", LEAF)
    agent.on("GET", "/v1/connect/ca/roots", "No cluster leader", status=500)
    r = cli("connect", "ca", "leaf", "-service", "web", "-out-dir", str(tmp_path / "certs"))
    assert (r.code, r.err) == (1, "Error fetching CA roots: Unexpected response code: 500 (No cluster leader)\n")
    assert not (tmp_path / "certs").exists()


def test_leaf_out_dir_that_is_a_file(agent, cli, tmp_path):
    agent.on("GET", "/v1/agent/connect/ca/leaf/web", LEAF)
    agent.on("GET", "/v1/connect/ca/roots", ROOTS_PEM)
    (tmp_path / "certs").write_text("")
    r = cli("connect", "ca", "leaf", "-service", "web", "-out-dir", str(tmp_path / "certs"))
    assert r.code == 1
    assert r.err == f"Error writing leaf certificate files: {tmp_path}/certs: file exists\n"


@pytest.mark.parametrize(("argv", "code", "head"), [
    (["connect"], 1, "Usage: trellis connect <subcommand>"),
    (["connect", "ca"], 1, "Usage: trellis connect ca <subcommand>"),
    (["connect", "ca", "-h"], 0, "Usage: trellis connect ca <subcommand>"),
    (["connect", "ca", "bogus"], 1, "Usage: trellis connect ca <subcommand>"),
], ids=["connect", "connect-ca", "connect-ca-help", "connect-ca-unknown"])
def test_connect_families_list_their_direct_subcommands(cli, argv, code, head):
    r = cli(*argv)
    assert (r.code, r.out) == (code, "")
    assert r.err.startswith(head)
    subs = r.err.partition("\n\nSubcommands:\n")[2].splitlines()
    names = [line.split()[0] for line in subs]
    assert names == (["ca", "envoy", "proxy", "trace"] if argv == ["connect"] else ["get-config", "leaf", "roots", "rotate", "set-config"])


def test_top_level_help_lists_connect_once(cli):
    r = cli()
    names = [line.split()[0] for line in r.err.partition("Available commands are:\n")[2].splitlines()]
    assert "connect" in names and names.count("connect") == 1
