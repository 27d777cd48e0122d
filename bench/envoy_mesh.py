"""What bench_traffic.py and bench_gateways.py share: a real agent (default allow) and nginx,
Envoys started with `trellis connect envoy`, everything stopped by PID on the way out."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench_proxy import start_nginx

from trellis.testing.agent import AgentProcess, free_port, start_agent


@dataclass
class BenchMesh:
    tmp: Path
    agent: AgentProcess
    nginx: int
    procs: list[subprocess.Popen] = field(default_factory=list)

    def ok(self, method: str, path: str, body: object = None) -> None:
        status, _, text = self.agent.request(method, path, body)
        if status != 200:
            raise RuntimeError(f"{method} {path}: {status} {text}")

    def envoy(self, name: str, *argv: str) -> int:
        """``trellis connect envoy ARGV``; its admin port."""
        admin = free_port()
        env = {**os.environ, "TRELLIS_HTTP_ADDR": self.agent.http_addr}
        with open(self.tmp / f"{name}.log", "w") as log:
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "trellis", "connect", "envoy", *argv, "-admin-bind", f"127.0.0.1:{admin}",
                 "--", "-l", "warning"], env=env, stdout=log, stderr=subprocess.STDOUT))
        return admin


@contextlib.contextmanager
def bench_mesh() -> Iterator[BenchMesh]:
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        sys.exit("needs nginx: sh scripts/bench-deps.sh")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        agent = start_agent(tmp / "agent", "-hcl", 'default_intention_policy = "allow"', "-log-level", "warn")
        mesh = BenchMesh(tmp, agent, free_port())
        try:
            mesh.procs.append(start_nginx(tmp, mesh.nginx))
            yield mesh
        finally:
            for p in reversed(mesh.procs):
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            agent.stop()
