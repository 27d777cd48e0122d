"""The built-in proxy against a direct connection, in the same run.

    sh scripts/bench-deps.sh            # nginx-light and wrk from Debian
    .venv/bin/python bench/bench_proxy.py [--duration 10] [--rate 1000] [--trials 50]

Set-up: a real agent; nginx serving a fixed 1 KiB body ("api"); two built-in proxies
(`trellis connect proxy -sidecar-for`), web's with an upstream to api. Every figure is
measured direct to nginx and through web's upstream listener -> mTLS -> api's proxy ->
nginx, one after the other:

1. throughput: wrk -t1 -c10 for --duration seconds (closed loop). Goal: >= 35% of direct.
2. latency at a fixed rate (--rate rps, open loop: each request is timed from when it
   was due, so a stall counts against every request it delays). Goal: added p99 <= 1 ms.
3. each proxy's RSS and CPU seconds per 1,000 requests during the wrk run.
4. intention write -> first refused connection, p99 over --trials: a deny written with
   PUT /v1/connect/intentions/exact while a client opens a new connection every ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trellis.testing.agent import free_port, start_agent  # noqa: E402

BODY = "x" * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


def start_nginx(tmp: Path, port: int) -> subprocess.Popen:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    conf = tmp / "nginx.conf"
    conf.write_text(f"""daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 100000;
  server {{ listen 127.0.0.1:{port}; location / {{ default_type text/plain; return 200 "{BODY}"; }} }} }}
""")
    proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp)], stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def wait_http(port: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"no 200 through port {port}")


def wrk(port: int, duration: int) -> float:
    out = subprocess.run(["wrk", "-t1", "-c10", f"-d{duration}s", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def proc_cpu_rss(pid: int) -> tuple[float, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    return cpu, rss * 1024


async def fixed_rate(port: int, rate: int, seconds: float, conns: int = 32) -> list[float]:
    """Open-loop GETs at ``rate``/s over keep-alive connections; latency from when due."""
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(conns):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    request = f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    n = int(rate * seconds)

    async def one(due: float) -> None:
        reader, writer = await pool.get()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head, re.I).group(1))
        await reader.readexactly(length)
        latencies.append(loop.time() - due)
        pool.put_nowait((reader, writer))

    tasks = []
    for i in range(n):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait()[1].close()
    return latencies


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def refused_after_deny(agent, port: int, trials: int) -> list[float]:
    """Time from the deny's PUT to the first connection the proxies refuse."""
    out = []
    for _ in range(trials):
        wait_http(port)
        t0 = time.perf_counter()
        status, _, _ = agent.request("PUT", "/v1/connect/intentions/exact?source=web&destination=api", {"Action": "deny"})
        assert status == 200
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    r.read()
            except OSError:
                out.append(time.perf_counter() - t0)
                break
            if time.perf_counter() - t0 > 10:
                raise TimeoutError("deny never enforced")
        agent.request("DELETE", "/v1/connect/intentions/exact?source=web&destination=api")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=50)
    a = ap.parse_args()
    if not shutil.which("wrk") or not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        sys.exit("needs nginx and wrk: sh scripts/bench-deps.sh")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        agent = start_agent(tmp / "agent", "-hcl", 'default_intention_policy = "allow"')
        procs: list[subprocess.Popen] = []
        try:
            nginx_port, api_pub, web_pub, up = free_port(), free_port(), free_port(), free_port()
            procs.append(start_nginx(tmp, nginx_port))
            bind = {"bind_address": "127.0.0.1"}
            for body in ({"Name": "api", "ID": "api-1", "Port": nginx_port,
                          "Connect": {"SidecarService": {"Port": api_pub, "Proxy": {"Config": bind}}}},
                         {"Name": "web", "ID": "web-1", "Port": free_port(),
                          "Connect": {"SidecarService": {"Port": web_pub, "Proxy": {"Config": bind, "Upstreams": [
                              {"DestinationName": "api", "LocalBindPort": up}]}}}}):
                assert agent.request("PUT", "/v1/agent/service/register", body)[0] == 200
            env = {**os.environ, "TRELLIS_HTTP_ADDR": f"127.0.0.1:{agent.http_port}"}
            proxies = {}
            for name in ("api-1", "web-1"):
                p = subprocess.Popen([sys.executable, "-m", "trellis", "connect", "proxy", "-sidecar-for", name,
                                      "-log-level", "WARN"], env=env, stdout=subprocess.DEVNULL,
                                     stderr=open(tmp / f"{name}.log", "w"))
                procs.append(p)
                proxies[name] = p
            wait_http(up)
            print(f"nginx :{nginx_port}  web upstream :{up}  (agent :{agent.http_port})\n", flush=True)

            direct_rps = wrk(nginx_port, a.duration)
            before = {n: proc_cpu_rss(p.pid) for n, p in proxies.items()}
            proxied_rps = wrk(up, a.duration)
            after = {n: proc_cpu_rss(p.pid) for n, p in proxies.items()}
            requests = proxied_rps * a.duration
            print(f"{'throughput (wrk -t1 -c10)':<44} {'req/s':>10}")
            print(f"{'direct to nginx':<44} {direct_rps:>10,.0f}")
            print(f"{'through the two proxies':<44} {proxied_rps:>10,.0f}  ({proxied_rps / direct_rps:.2f}x)")
            for n in proxies:
                cpu = (after[n][0] - before[n][0]) / requests * 1000
                print(f"  proxy {n}: RSS {after[n][1] / 2**20:.1f} MiB, CPU {cpu:.3f} s per 1,000 requests")

            direct = asyncio.run(fixed_rate(nginx_port, a.rate, a.duration))
            proxied = asyncio.run(fixed_rate(up, a.rate, a.duration))
            print(f"\n{'latency at ' + str(a.rate) + ' rps (open loop)':<44} {'p50 ms':>8} {'p99 ms':>8}")
            print(f"{'direct to nginx':<44} {pct(direct, .5) * 1e3:>8.2f} {pct(direct, .99) * 1e3:>8.2f}")
            print(f"{'through the two proxies':<44} {pct(proxied, .5) * 1e3:>8.2f} {pct(proxied, .99) * 1e3:>8.2f}")
            print(f"{'added p99':<44} {'':>8} {(pct(proxied, .99) - pct(direct, .99)) * 1e3:>8.2f}")

            times = refused_after_deny(agent, up, a.trials)
            print(f"\nintention write -> first refused connection ({a.trials} trials): "
                  f"p50 {pct(times, .5) * 1e3:.1f} ms, p99 {pct(times, .99) * 1e3:.1f} ms")
        finally:
            for p in reversed(procs):
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
            agent.stop()


if __name__ == "__main__":
    main()
