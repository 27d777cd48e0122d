"""The README's "Try it" block, run as written against a real agent: every command a user
types there works (docs stay true). The agent is a test agent on free ports, so its HTTP and
DNS addresses replace the README's 127.0.0.1:8500 and 8600; ``dig`` (a Debian package the
README names) and ``openssl`` are replaced by the same query through dnspython, and the
same certificate read through cryptography, when they are not installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
README = Path(__file__).resolve().parents[2] / "README.md"
# a command that answers with a non-zero exit by design, and what it must print instead
EXPECTED_NONZERO = {"trellis intention create -deny web api && trellis intention check web api": "Denied",
                    "trellis connect trace web api": "Broken at step"}


def try_it_lines() -> list[str]:
    text = README.read_text()
    block = re.search(r"## Try it\n.*?```sh\n(.*?)```", text, re.S)
    assert block, "README has no sh block under ## Try it"
    return [line for line in block[1].splitlines() if line.strip()]


def adapt(line: str, agent) -> str:
    """The README line aimed at the test agent (comments dropped)."""
    line = re.sub(r"\s+#.*$", "", line) if not line.startswith("#") else ""
    line = line.replace("127.0.0.1:8500", agent.http_addr.removeprefix("http://"))
    if line.startswith("dig ") and shutil.which("dig") is None:
        name, rdtype = line.split()[-2:]
        code = (f"import dns.message, dns.query; r = dns.query.udp(dns.message.make_query({name!r}, {rdtype!r}), "
                f"'127.0.0.1', port={agent.dns_port}, timeout=5); print(r); assert r.answer")
        return f"{sys.executable} -c \"{code}\""
    if line.startswith("openssl x509 ") and shutil.which("openssl") is None:
        path = line.split("-in ")[1].split()[0]
        code = (f"from cryptography import x509; c = x509.load_pem_x509_certificate(open({path!r}, 'rb').read()); "
                f"print(c.subject); print('URI:' + str(c.extensions.get_extension_for_class("
                f"x509.SubjectAlternativeName).value.get_values_for_type(x509.UniformResourceIdentifier)[0]))")
        return f"{sys.executable} -c \"{code}\""
    return line.replace("-p 8600", f"-p {agent.dns_port}")


def test_the_try_it_commands_work(agent, tmp_path):
    lines = try_it_lines()
    assert lines[0] == ". .venv/bin/activate"
    script, checked = ["set -u"], []
    heredoc = None
    for raw in lines[1:]:
        if heredoc is not None:  # the body of a heredoc goes as it is
            script.append(raw)
            heredoc = None if raw.strip() == heredoc else heredoc
            continue
        if m := re.search(r"<<'?(\w+)'?", raw):
            heredoc = m[1]
            script.append(raw)
            continue
        line = adapt(raw, agent)
        if not line:
            continue
        if line.endswith("&"):  # a background job: started, checked by the lines after it
            script.append(line)
            continue
        checked.append(raw.split("#")[0].strip())
        script.append(f"{line}\nrc=$?; echo \"__RC__ $rc {checked[-1]}\"")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSUL_", "TRELLIS_"))}
    env["CONSUL_HTTP_ADDR"] = agent.http_addr
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180)
    out = done.stdout
    failed = []
    for m in re.finditer(r"^__RC__ (\d+) (.*)$", out, re.M):
        rc, command = int(m[1]), m[2]
        if rc != 0 and command not in EXPECTED_NONZERO:
            failed.append(f"{command}: exit {rc}")
    assert not failed, f"{failed}\n--- stdout\n{out}\n--- stderr\n{done.stderr}"
    ran = [m[2] for m in re.finditer(r"^__RC__ (\d+) (.*)$", out, re.M)]
    assert ran == checked, f"the script stopped early\n--- stdout\n{out}\n--- stderr\n{done.stderr}"
    for command, text in EXPECTED_NONZERO.items():
        assert command in ran and text in out, out
    assert "Registered service: web" in out and "Deregistered service: web-1" in out, out
    assert "web-1-sidecar-proxy" in out  # connect proxy -list saw the running sidecar
    assert "URI:spiffe://" in out and "/svc/web" in out  # openssl shows the leaf's identity
