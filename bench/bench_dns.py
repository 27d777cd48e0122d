"""Queries per second of a cached SRV answer: trellis' DNS server vs dnsmasq.

    .venv/bin/python bench/bench_dns.py [--seconds 10] [--clients 4] [--outstanding 100]

Both servers hold the same data (SRV web.service.consul -> 1 1 8080 n1.node.dc1.consul.
with its A record in the additional section), listen on free 127.0.0.1 ports, and
are driven in turn by dnsperf with the same settings. dnsperf and dnsmasq come
from Debian (`dnsperf`, and `dnsmasq-base`: the binary without the system
service that `dnsmasq` would start on port 53); the script installs them with
apt-get when missing. Goal: trellis >= 0.6x dnsmasq.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dns.message
import dns.query

HERE = Path(__file__).resolve().parent
QNAME = "web.service.consul."
PACKAGES = {"dnsperf": "dnsperf", "dnsmasq": "dnsmasq-base"}


def ensure_tools() -> None:
    missing = [tool for tool in PACKAGES if _which(tool) is None]
    if not missing:
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        sys.exit(
            f"bench_dns: {', '.join(missing)} not found and apt-get is unavailable (or not root); "
            f"install the Debian packages {', '.join(PACKAGES[t] for t in missing)} and rerun."
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"installing {', '.join(PACKAGES[t] for t in missing)} with apt-get ...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *(PACKAGES[t] for t in missing)],
        check=True,
        env=env,
    )


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def wait_answering(port: int, proc: subprocess.Popen, deadline: float = 15.0) -> dns.message.Message:
    end = time.monotonic() + deadline
    query = dns.message.make_query(QNAME, "SRV")
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=0.5)
        except (dns.exception.Timeout, OSError):
            continue
        if reply.answer:
            return reply
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered {QNAME} SRV on port {port}")


def start_trellis(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE / "dns_bench_server.py"), str(port)], stdout=subprocess.DEVNULL
    )


def start_agent_with_web(port: int) -> subprocess.Popen:
    """The real agent (-dev) with ``web`` registered on its node, DNS on ``port``."""
    sys.path.insert(0, str(HERE.parent))
    from trellis.testing.agent import free_port as tcp_port, start_agent

    agent = start_agent(Path(tempfile.mkdtemp(prefix="bench-dns-")), ports=(tcp_port(), port, tcp_port()))
    code, _, body = agent.request("PUT", "/v1/agent/service/register", {"Name": "web", "Port": 8080})
    if code != 200:
        raise RuntimeError(f"registering web failed: {body}")
    return agent.proc


def start_dnsmasq(port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            _which("dnsmasq") or "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            f"--port={port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--user=nobody",
            "--pid-file=",
            f"--srv-host={QNAME.rstrip('.')},n1.node.dc1.consul,8080,1,1",
            "--host-record=n1.node.dc1.consul,10.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
    )


def dnsperf(port: int, args: argparse.Namespace, qfile: Path) -> float:
    cmd = [
        _which("dnsperf") or "dnsperf",
        "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile),
        "-l", str(args.seconds), "-c", str(args.clients), "-q", str(args.outstanding), "-T", "1",
    ]  # fmt: skip
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    qps = re.search(r"Queries per second:\s+([\d.]+)", out)
    if qps is None:
        raise RuntimeError(f"unexpected dnsperf output:\n{out}")
    print(f"    dnsperf: {qps.group(1)} q/s, lost {lost.group(1) if lost else '?'}", flush=True)
    return float(qps.group(1))


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure(name: str, start, args: argparse.Namespace, qfile: Path) -> float:  # type: ignore[no-untyped-def]
    port = free_port()
    proc = start(port)
    try:
        reply = wait_answering(port, proc)
        records = [rr.to_text() for rr in reply.answer + reply.additional]
        print(f"{name} on 127.0.0.1:{port} answers: {records}", flush=True)
        return dnsperf(port, args, qfile)
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--outstanding", type=int, default=100)
    args = parser.parse_args()
    ensure_tools()
    with tempfile.TemporaryDirectory() as tmp:
        qfile = Path(tmp) / "queries.txt"
        qfile.write_text(f"{QNAME} SRV\n")
        ours = measure("trellis DnsServer", start_trellis, args, qfile)
        agent = measure("trellis agent -dev", start_agent_with_web, args, qfile)
        theirs = measure("dnsmasq", start_dnsmasq, args, qfile)
    print(
        f"\ntrellis DnsServer {ours:,.0f} q/s   trellis agent {agent:,.0f} q/s   dnsmasq {theirs:,.0f} q/s\n"
        f"ratio server {ours / theirs:.2f}x, agent {agent / theirs:.2f}x (goal >= 0.6x)"
    )


if __name__ == "__main__":
    main()
