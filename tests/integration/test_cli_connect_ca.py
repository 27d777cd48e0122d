"""``trellis connect ca ...`` as a user types it, against one real agent for the module.

The stories run in file order on the same CA: read the configuration, write the
seed's file (no new root), change the leaf TTL, refuse bad files, rotate, then fetch
a leaf into a directory and check it with ``openssl``.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from trellis.testing.agent import AgentProcess, start_agent

pytestmark = pytest.mark.integration

SEED_CA = {"Provider": "consul", "Config": {"PrivateKey": "", "RootCert": "", "RotationPeriod": "2160h",
                                           "IntermediateCertTTL": "8760h"}}


@pytest.fixture(scope="module")
def agent(tmp_path_factory) -> AgentProcess:
    proc = start_agent(tmp_path_factory.mktemp("ca-agent"))
    try:
        yield proc
    finally:
        rc = proc.stop()
    assert rc == 0, f"agent did not stop cleanly ({rc}):\n{proc.log()}"


def trellis(agent: AgentProcess, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSUL_", "TRELLIS_"))}
    cmd = [sys.executable, "-m", "trellis", "connect", "ca", args[0], "-http-addr", agent.http_addr, *args[1:]]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)


def api(agent: AgentProcess, path: str):
    status, _, body = agent.request("GET", path)
    assert status == 200, body
    return body


def active_root_id(agent: AgentProcess) -> str:
    return api(agent, "/v1/connect/ca/roots")["ActiveRootID"]


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_get_config_prints_the_api_answer_with_tabs(agent):
    r = trellis(agent, "get-config")
    assert (r.returncode, r.stderr) == (0, "")
    assert json.loads(r.stdout) == api(agent, "/v1/connect/ca/configuration")
    assert r.stdout.startswith('{\n\t"Provider": "consul",\n\t"Config": {\n\t\t')


def test_seed_file_updates_the_config_and_keeps_the_root(agent, tmp_path):
    before = active_root_id(agent)
    r = trellis(agent, "set-config", "-config-file", write(tmp_path, "ca.json", json.dumps(SEED_CA)))
    assert (r.returncode, r.stdout, r.stderr) == (0, "Configuration updated!\n", "")
    assert active_root_id(agent) == before
    shown = json.loads(trellis(agent, "get-config").stdout)
    assert shown["Config"] == SEED_CA["Config"]


@pytest.mark.parametrize(("name", "text", "ttl"), [
    ("ttl.json", '{"Config": {"LeafCertTTL": "24h"}}', "24h"),
    ("ttl.hcl", 'provider = "consul"\nconfig {\n  leaf_cert_ttl = "12h"\n}\n', "12h"),
], ids=["json", "hcl-snake-case"])
def test_leaf_cert_ttl_shows_in_get_config(agent, tmp_path, name, text, ttl):
    r = trellis(agent, "set-config", "-config-file", write(tmp_path, name, text))
    assert r.returncode == 0, r.stderr
    shown = json.loads(trellis(agent, "get-config").stdout)
    assert shown["Config"] == {"LeafCertTTL": ttl}


@pytest.mark.parametrize(("text", "needles"), [
    ('{"Config": {"LeafCertTTL": "24h",}}', ["bad.json", "line 1, column 34"]),
    ('{"Config": {"Bogus": "x"}}', ["Config.Bogus", "unknown key"]),
    ('{"Config": {"LeafCertTTL": "10m"}}', ["Config.LeafCertTTL", "1h0m0s"]),
], ids=["malformed-json", "unknown-config-key", "leaf-ttl-below-minimum"])
def test_bad_file_exits_1_and_changes_nothing(agent, tmp_path, text, needles):
    before = api(agent, "/v1/connect/ca/configuration")
    r = trellis(agent, "set-config", "-config-file", write(tmp_path, "bad.json", text))
    assert (r.returncode, r.stdout) == (1, "")
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("Error "), r.stderr
    for needle in needles:
        assert needle in r.stderr
    assert api(agent, "/v1/connect/ca/configuration") == before


def test_rotate_keeps_the_previous_root_trusted_while_its_leaf_lives(agent):
    # A leaf from the current root, so the rotated-out root has something to outlive.
    assert agent.request("GET", "/v1/agent/connect/ca/leaf/web")[0] == 200
    before = active_root_id(agent)
    r = trellis(agent, "rotate", "-format=json")
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert answer["PreviousRootID"] == before
    assert answer["ActiveRootID"] == active_root_id(agent) != before

    r = trellis(agent, "roots")
    header, *rows = r.stdout.splitlines()
    assert header.split() == ["ID", "Name", "Active", "NotAfter"]
    active = {row.split()[0]: row.split()[-2] for row in rows}
    assert active == {before: "false", answer["ActiveRootID"]: "true"}


def test_leaf_out_dir_verifies_with_openssl(agent, tmp_path):
    out_dir = tmp_path / "certs"
    r = trellis(agent, "leaf", "-service", "web", "-out-dir", str(out_dir))
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out_dir)) == ["cert.pem", "key.pem", "roots.pem"]
    assert stat.S_IMODE(os.stat(out_dir / "key.pem").st_mode) == 0o600
    uri = api(agent, "/v1/agent/connect/ca/leaf/web")["ServiceURI"]
    assert f"ServiceURI    {uri}" in r.stdout

    verify = subprocess.run(["openssl", "verify", "-CAfile", "roots.pem", "cert.pem"], cwd=out_dir,
                            capture_output=True, text=True, timeout=30)
    assert verify.returncode == 0 and verify.stdout.strip() == "cert.pem: OK", verify.stderr
    text = subprocess.run(["openssl", "x509", "-in", "cert.pem", "-text", "-noout"], cwd=out_dir,
                          capture_output=True, text=True, timeout=30)
    assert text.returncode == 0, text.stderr
    assert f"URI:{uri}" in text.stdout and uri.startswith("spiffe://")
