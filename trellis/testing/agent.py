"""Start a real ``trellis agent`` subprocess on free loopback ports (tests, benches).

The agent is stopped by PID: SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trellis.testing.orphans import guarded


def free_port(*, udp_too: bool = False) -> int:
    """A port free on 127.0.0.1 for TCP (and UDP when asked)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not udp_too:
            return port
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port found")


@dataclass
class AgentProcess:
    proc: subprocess.Popen
    http_port: int
    dns_port: int
    grpc_port: int
    data_dir: str | None
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def http_addr(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def url(self) -> str:
        return f"http://{self.http_addr}"

    def request(self, method: str, path: str, body: Any = None, timeout: float = 30) -> tuple[int, dict, Any]:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                return resp.status, dict(resp.headers), _maybe_json(raw)
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), _maybe_json(exc.read())

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        """``trellis ARGS`` in a subprocess aimed at this agent (``CONSUL_HTTP_ADDR``), with
        no other CONSUL_/TRELLIS_/CONNECT_ variable of the caller's environment."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSUL_", "TRELLIS_", "CONNECT_"))}
        env["CONSUL_HTTP_ADDR"] = self.http_addr
        return subprocess.run([sys.executable, "-m", "trellis", *args], capture_output=True, text=True, env=env,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def log(self) -> str:
        try:
            return self.log_path.read_text()
        except OSError:
            return ""

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill9(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _maybe_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def start_agent(
    workdir: Path,
    *extra: str,
    data_dir: str | None = None,
    dev: bool = True,
    node: str = "test-node",
    ports: tuple[int, int, int] | None = None,
    timeout: float = 30,
    env: dict[str, str] | None = None,
) -> AgentProcess:
    http_port, dns_port, grpc_port = ports or (free_port(), free_port(udp_too=True), free_port())
    args = [sys.executable, "-m", "trellis", "agent"]
    if dev:
        args.append("-dev")
    args += ["-node", node, "-client", "127.0.0.1", "-bind", "127.0.0.1",
             "-http-port", str(http_port), "-dns-port", str(dns_port), "-grpc-port", str(grpc_port)]
    if data_dir:
        args += ["-data-dir", data_dir]
    args += list(extra)
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"agent-{http_port}.log"
    logf = open(log_path, "wb")  # noqa: SIM115 - closed when the process ends
    proc = subprocess.Popen(guarded(args), stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})
    agent = AgentProcess(proc, http_port, dns_port, grpc_port, data_dir, log_path, args)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"agent exited with {proc.returncode}:\n{agent.log()}")
        try:
            status, _, _ = agent.request("GET", "/v1/status/leader", timeout=2)
            if status == 200:
                return agent
        except OSError:
            pass
        time.sleep(0.05)
    agent.stop()
    raise RuntimeError(f"agent did not answer within {timeout}s:\n{agent.log()}")


def cli_ok(r: subprocess.CompletedProcess, out: str | None = None) -> str:
    """``r`` (an ``AgentProcess.cli`` result) succeeded with nothing on stderr (and printed
    exactly ``out``, when given); its stdout."""
    assert (r.returncode, r.stderr) == (0, ""), (r.returncode, r.stdout, r.stderr)
    if out is not None:
        assert r.stdout == out
    return r.stdout
