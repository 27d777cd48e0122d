"""CheckRunner against real local servers and processes on free 127.0.0.1 ports.

Each test starts what its check probes (an aiohttp app, a gRPC health server, a
listening or closed port, a script), runs one CheckRunner with short intervals
and no stagger, and waits for the writes it expects with a deadline.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import sys
from contextlib import asynccontextmanager, closing
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from trellis.catalog.model import Check, CheckDefinition, CheckStatus, CheckType
from trellis.health import CheckKey, CheckRunner, ServiceKey
from trellis.health import rules

pytestmark = pytest.mark.integration

P, W, C = CheckStatus.PASSING, CheckStatus.WARNING, CheckStatus.CRITICAL
FAST = 0.05  # probe interval in these tests


# --- a story's cast --------------------------------------------------------------------


class Writes:
    """The runner's ``report``: records each write and what the server had served by then."""

    def __init__(self, served=lambda: None) -> None:
        self.items: list[tuple[CheckKey, CheckStatus, str, object]] = []
        self.served = served

    async def __call__(self, key: CheckKey, status: CheckStatus, output: str) -> None:
        self.items.append((key, status, output, self.served()))

    def of(self, check_id: str) -> list[tuple[CheckStatus, str]]:
        return [(s, o) for k, s, o, _ in self.items if k.check_id == check_id]

    def statuses(self, check_id: str) -> list[CheckStatus]:
        return [s for s, _ in self.of(check_id)]


async def eventually(predicate, timeout: float = 5.0, message: str = "condition") -> None:
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {message}") from None


@asynccontextmanager
async def running(runner: CheckRunner):
    task = asyncio.create_task(runner.run(), name="runner")
    try:
        yield runner
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def make_runner(report, **kwargs) -> CheckRunner:
    kwargs.setdefault("min_interval", 0.0)
    kwargs.setdefault("max_stagger", 0.0)
    return CheckRunner(report, **kwargs)


def check(check_id: str, type_: CheckType, status=C, service_id="web", **definition) -> Check:
    if type_ not in (CheckType.TTL, CheckType.ALIAS):
        definition.setdefault("interval", FAST)
    return Check(node="n1", check_id=check_id, name=check_id, status=status, service_id=service_id,
                 type=type_, definition=CheckDefinition(**definition))


async def first_write(check_: Check, **runner_kwargs) -> tuple[CheckStatus, str]:
    writes = Writes()
    runner = make_runner(writes, **runner_kwargs)
    runner.sync([check_])
    async with running(runner):
        await eventually(lambda: writes.items, message=f"a write for {check_.check_id}")
    return writes.of(check_.check_id)[0]


# --- servers ---------------------------------------------------------------------------


class HttpApp:
    """An aiohttp app with one route per behaviour; ``/flip`` answers ``flip_status``."""

    def __init__(self) -> None:
        self.flip_status = 500
        self.hits: dict[str, int] = {}
        self.served: dict[int, int] = {}
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.base = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.hits[name] = self.hits.get(name, 0) + 1
        status, body = {
            "ok": (200, "alive"),
            "busy": (429, "slow down"),
            "fail": (500, "broken"),
            "big": (200, "a" * 5000 + "b" * 100),
            "flip": (self.flip_status, f"flip {self.flip_status}"),
        }.get(name, (200, "other"))
        if name == "slow":
            await asyncio.sleep(30)
        if name == "echo":
            self.requests.append((request.method, dict(request.headers), await request.read()))
        if name == "redirect":
            raise web.HTTPFound(f"{self.base}/fail")
        self.served[status] = self.served.get(status, 0) + 1
        return web.Response(status=status, text=body)


@pytest.fixture
async def http_app():
    app_state = HttpApp()
    app = web.Application()
    app.router.add_route("*", "/{name}", app_state.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    app_state.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield app_state
    await runner.cleanup()


@pytest.fixture
async def grpc_health():
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    yield f"127.0.0.1:{port}", servicer
    await server.stop(0)


@pytest.fixture
def closed_tcp_port():
    """A port bound but not listening: connecting is refused, and nobody else can take it."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
async def open_tcp_port():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


def free_udp_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pid_alive(pid: int) -> bool:
    """A process that exists and is not a zombie (zombies are dead, only not yet reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def assert_group_gone(pid_file: Path) -> None:
    """The script (our child, already waited for) is gone; its background child was
    SIGKILLed with the group and dies asynchronously, so poll it with a deadline."""
    shell, background = map(int, pid_file.read_text().split())
    assert not pid_alive(shell)
    await eventually(lambda: not pid_alive(background), timeout=2.0, message=f"pid {background} to die")


# --- HTTP ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, status, output",
    [
        ("ok", P, "HTTP GET {base}/ok: 200 OK Output: alive"),
        ("busy", W, "HTTP GET {base}/busy: 429 Too Many Requests Output: slow down"),
        ("fail", C, "HTTP GET {base}/fail: 500 Internal Server Error Output: broken"),
        ("slow", C, 'Get "{base}/slow": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'),
    ],
    ids=["200_passing", "429_warning", "500_critical", "timeout_critical"],
)
async def test_http_status_decides_check_status(http_app, path, status, output):
    got = await first_write(check("web-http", CheckType.HTTP, status=CheckStatus.PASSING if status is C else C,
                                  http=f"{http_app.base}/{path}", timeout=0.3))
    assert got == (status, output.format(base=http_app.base))


async def test_http_refused_connection_is_critical(closed_tcp_port):
    url = f"http://127.0.0.1:{closed_tcp_port}/health"
    got = await first_write(check("web-http", CheckType.HTTP, status=P, http=url))
    assert got == (C, f'Get "{url}": dial tcp 127.0.0.1:{closed_tcp_port}: connect: connection refused')


async def test_http_sends_consul_user_agent_method_headers_and_body(http_app):
    await first_write(check("web-http", CheckType.HTTP, http=f"{http_app.base}/echo", method="POST",
                            header={"X-Probe": ("one", "two")}, body='{"ping": 1}'))
    method, headers, body = http_app.requests[0]
    assert method == "POST"
    assert headers["User-Agent"] == "Consul Health Check"
    assert headers["Accept"] == "text/plain, text/*, */*"
    assert headers["X-Probe"] == "one"  # aiohttp's dict() keeps the first of repeated headers
    assert body == b'{"ping": 1}'


async def test_http_user_agent_can_be_overridden(http_app):
    await first_write(check("web-http", CheckType.HTTP, http=f"{http_app.base}/echo",
                            header={"User-Agent": ("probe/1",)}))
    assert http_app.requests[0][1]["User-Agent"] == "probe/1"


async def test_http_follows_redirects_unless_disabled(http_app):
    url = f"{http_app.base}/redirect"
    followed = await first_write(check("r", CheckType.HTTP, status=P, http=url))
    assert followed == (C, f"HTTP GET {url}: 500 Internal Server Error Output: broken")
    stopped = await first_write(check("r", CheckType.HTTP, status=P, http=url, disable_redirects=True))
    assert stopped[0] is C and stopped[1].startswith(f"HTTP GET {url}: 302 Found Output: ")


async def test_http_output_keeps_the_last_bytes_of_a_long_body(http_app):
    url = f"{http_app.base}/big"
    got = await first_write(check("web-http", CheckType.HTTP, http=url, output_max_size=150))
    assert got == (P, f"HTTP GET {url}: 200 OK Output: " + "a" * 50 + "b" * 100)


async def test_unchanged_results_write_once(http_app):
    writes = Writes()
    runner = make_runner(writes)
    runner.sync([check("web-http", CheckType.HTTP, http=f"{http_app.base}/ok")])
    async with running(runner):
        await eventually(lambda: http_app.hits.get("ok", 0) >= 6, message="six probes")
    assert writes.statuses("web-http") == [P]


def _self_signed(cert_path, key_path, name: str) -> None:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


@pytest.fixture
async def https_base(tmp_path):
    """An HTTPS aiohttp app with a self-signed certificate for web.internal."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    _self_signed(cert, key, "web.internal")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async def secure(request: web.Request) -> web.Response:
        return web.Response(text="secure")

    app = web.Application()
    app.router.add_get("/health", secure)
    runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_https_self_signed_needs_tls_skip_verify(https_base):
    url = f"{https_base}/health"
    verified = await first_write(check("tls", CheckType.HTTP, status=P, http=url))
    assert verified[0] is C and "CERTIFICATE_VERIFY_FAILED" in verified[1]
    skipped = await first_write(check("tls", CheckType.HTTP, http=url, tls_skip_verify=True,
                                      tls_server_name="web.internal"))
    assert skipped == (P, f"HTTP GET {url}: 200 OK Output: secure")


async def test_tcp_with_tls_handshake(https_base):
    address = https_base.removeprefix("https://")
    ok = await first_write(check("t", CheckType.TCP, tcp=address, tcp_use_tls=True, tls_skip_verify=True))
    assert ok == (P, f"TCP+TLS connect {address}: Success")
    refused = await first_write(check("t", CheckType.TCP, status=P, tcp=address, tcp_use_tls=True))
    assert refused[0] is C and "CERTIFICATE_VERIFY_FAILED" in refused[1]


# --- TCP and UDP -----------------------------------------------------------------------


async def test_tcp_open_port_passes(open_tcp_port):
    address = f"127.0.0.1:{open_tcp_port}"
    assert await first_write(check("t", CheckType.TCP, tcp=address)) == (P, f"TCP connect {address}: Success")


async def test_tcp_closed_port_is_critical(closed_tcp_port):
    address = f"127.0.0.1:{closed_tcp_port}"
    got = await first_write(check("t", CheckType.TCP, status=P, tcp=address))
    assert got == (C, f"dial tcp {address}: connect: connection refused")


async def test_udp_silent_listener_passes():
    with closing(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)) as listener:
        listener.bind(("127.0.0.1", 0))
        address = "127.0.0.1:%d" % listener.getsockname()[1]
        got = await first_write(check("u", CheckType.UDP, udp=address, timeout=0.2))
    assert got == (P, f"UDP connect {address}: Success")


async def test_udp_closed_port_is_critical():
    address = f"127.0.0.1:{free_udp_port()}"
    status, output = await first_write(check("u", CheckType.UDP, status=P, udp=address, timeout=1.0))
    assert status is C
    assert output.startswith("read udp 127.0.0.1:") and output.endswith(f"->{address}: recv: connection refused")


# --- gRPC ------------------------------------------------------------------------------


async def test_grpc_serving_then_not_serving(grpc_health):
    address, servicer = grpc_health
    writes = Writes()
    runner = make_runner(writes)
    runner.sync([check("g", CheckType.GRPC, grpc=address)])
    async with running(runner):
        await eventually(lambda: writes.statuses("g") == [P], message="passing")
        await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        await eventually(lambda: writes.statuses("g") == [P, C], message="critical")
    assert writes.of("g") == [(P, f"gRPC check {address}: success"),
                              (C, f"gRPC {address} serving status: NOT_SERVING")]


async def test_grpc_named_service(grpc_health):
    address, servicer = grpc_health
    await servicer.set("billing", health_pb2.HealthCheckResponse.NOT_SERVING)
    target = f"{address}/billing"
    assert await first_write(check("g", CheckType.GRPC, status=P, grpc=target)) == (
        C, f"gRPC {target} serving status: NOT_SERVING")
    unknown = await first_write(check("g", CheckType.GRPC, status=P, grpc=f"{address}/nope"))
    assert unknown[0] is C and unknown[1].startswith("rpc error: code = NotFound desc = ")


async def test_grpc_unreachable_is_critical(closed_tcp_port):
    status, output = await first_write(check("g", CheckType.GRPC, status=P, grpc=f"127.0.0.1:{closed_tcp_port}",
                                             timeout=2.0))
    assert status is C and output.startswith("rpc error: code = Unavailable desc = ")


# --- scripts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, status", [(0, P), (1, W), (2, C)], ids=["exit0_passing", "exit1_warning", "exit2_critical"]
)
async def test_script_exit_code_decides_status(code, status):
    script = check("s", CheckType.SCRIPT, status=P if status is C else C,
                   args=("sh", "-c", f"echo out; echo err >&2; exit {code}"))
    assert await first_write(script, enable_script_checks=True) == (status, "out\nerr\n")


async def test_script_output_is_capped_with_consuls_note():
    script = check("s", CheckType.SCRIPT, args=(sys.executable, "-c", "print('x' * 300 + 'END', end='')"),
                   output_max_size=10)
    assert await first_write(script, enable_script_checks=True) == (P, "Captured 10 of 303 bytes\n...\nxxxxxxxEND")


async def test_script_checks_disabled_report_critical_without_running(tmp_path):
    marker = tmp_path / "ran"
    script = check("s", CheckType.SCRIPT, status=P, args=("touch", str(marker)))
    assert await first_write(script) == (C, rules.SCRIPTS_DISABLED)
    assert not marker.exists()


async def test_script_timeout_kills_the_process_group(tmp_path):
    pids = tmp_path / "pids"
    body = f"sleep 30 & echo $$ $! > {pids}; echo started; wait"
    script = check("s", CheckType.SCRIPT, status=P, args=("sh", "-c", body), timeout=0.3)
    assert await first_write(script, enable_script_checks=True) == (C, "Timed out (300ms) running check\n\nstarted\n")
    await assert_group_gone(pids)


# --- TTL -------------------------------------------------------------------------------


async def test_ttl_expires_to_critical_and_updates_reset_it():
    writes = Writes()
    runner = make_runner(writes)
    ttl = check("t", CheckType.TTL, ttl=0.2)
    key = CheckKey("default", "t")
    runner.sync([ttl])
    async with running(runner):
        await eventually(lambda: writes.of("t") == [(C, "TTL expired")], message="first expiry")
        await runner.ttl_update(key, P, "all good")
        # keep it alive for a few TTLs; no expiry may sneak in
        for _ in range(8):
            await asyncio.sleep(0.05)
            await runner.ttl_update(key, P, "all good")
        assert writes.of("t") == [(C, "TTL expired"), (P, "all good")]
        await eventually(lambda: len(writes.of("t")) == 3, message="second expiry")
    assert writes.of("t")[2] == (C, "TTL expired (last output before timeout follows): all good")


# --- thresholds over real probes -------------------------------------------------------


async def test_success_before_passing_needs_that_many_passes(http_app):
    writes = Writes(served=lambda: http_app.served.get(200, 0))
    runner = make_runner(writes)
    runner.sync([check("f", CheckType.HTTP, status=P, http=f"{http_app.base}/flip", success_before_passing=3)])
    async with running(runner):
        await eventually(lambda: writes.statuses("f") == [C], message="critical")
        http_app.flip_status = 200
        await eventually(lambda: writes.statuses("f") == [C, P], message="passing")
    assert writes.items[1][3] == 3  # written right after the third 200 was served


async def test_failures_before_warning_then_critical(http_app):
    writes = Writes(served=lambda: http_app.served.get(500, 0))
    http_app.flip_status = 200
    runner = make_runner(writes)
    runner.sync([check("f", CheckType.HTTP, http=f"{http_app.base}/flip",
                       failures_before_warning=2, failures_before_critical=4)])
    async with running(runner):
        await eventually(lambda: writes.statuses("f") == [P], message="passing")
        http_app.flip_status = 500
        await eventually(lambda: writes.statuses("f") == [P, W, C], message="warning then critical")
    assert [served for *_, served in writes.items] == [0, 2, 4]
    assert writes.of("f")[1] == (W, f"HTTP GET {http_app.base}/flip: 500 Internal Server Error Output: flip 500")


# --- sync ------------------------------------------------------------------------------


async def test_sync_adds_and_removes_checks(http_app):
    writes = Writes()
    runner = make_runner(writes)
    a = check("a", CheckType.HTTP, http=f"{http_app.base}/ok")
    b = check("b", CheckType.HTTP, http=f"{http_app.base}/busy")
    runner.sync([a])
    async with running(runner):
        await eventually(lambda: writes.statuses("a") == [P], message="a passing")
        runner.sync([a, b])
        await eventually(lambda: writes.statuses("b") == [W], message="b warning")
        runner.sync([b])
        hits_at_removal = http_app.hits["ok"]
        busy_at_removal = http_app.hits["busy"]
        await eventually(lambda: http_app.hits["busy"] >= busy_at_removal + 4, message="b keeps probing")
        assert http_app.hits["ok"] <= hits_at_removal + 1  # at most a request already in flight
        assert runner.keys() == {CheckKey("default", "b")}


# --- alias and reaping -----------------------------------------------------------------


async def test_alias_follows_the_aliased_service_when_poked():
    health_of = {"web": (P, "All checks passing.")}
    asked = []

    def alias_status(node: str, service_id: str):
        asked.append((node, service_id))
        return health_of[service_id]

    writes = Writes()
    runner = make_runner(writes, alias_status=alias_status, alias_interval=60.0)
    runner.sync([check("sidecar-alias", CheckType.ALIAS, service_id="web-sidecar-proxy", alias_service="web")])
    async with running(runner):
        await eventually(lambda: writes.statuses("sidecar-alias") == [P], message="alias passing")
        health_of["web"] = (C, 'Aliased check "web-http" failing: down')
        runner.poke_alias()
        await eventually(lambda: writes.statuses("sidecar-alias") == [P, C], message="alias critical")
    assert asked[0] == ("", "web")


async def test_service_critical_too_long_is_deregistered(closed_tcp_port):
    gone: list[ServiceKey] = []
    writes = Writes()
    runner = make_runner(writes, deregister=lambda sid, ns: gone.append(ServiceKey(ns, sid)),
                         deregister_min=0.0, reap_interval=0.05)
    runner.sync([check("t", CheckType.TCP, tcp=f"127.0.0.1:{closed_tcp_port}",
                       deregister_critical_service_after=0.2)])
    async with running(runner):
        await eventually(lambda: gone, message="deregistration")
    assert gone == [ServiceKey("default", "web")]


# --- cancellation ----------------------------------------------------------------------


async def test_cancelling_run_mid_probe_leaves_no_tasks_and_no_processes(http_app, grpc_health, tmp_path):
    pids = tmp_path / "pids"
    writes = Writes()
    runner = make_runner(writes, enable_script_checks=True, deregister=lambda sid, ns: None, reap_interval=0.05)
    runner.sync([
        check("slow-http", CheckType.HTTP, http=f"{http_app.base}/slow", timeout=20.0),
        check("sleepy-script", CheckType.SCRIPT, args=("sh", "-c", f"sleep 30 & echo $$ $! > {pids}; wait"),
              timeout=20.0),
        check("g", CheckType.GRPC, grpc=grpc_health[0]),
        check("ttl", CheckType.TTL, ttl=20.0),
    ])
    task = asyncio.create_task(runner.run())
    await eventually(lambda: http_app.hits.get("slow") and pids.exists() and pids.read_text().strip(),
                     message="an HTTP request and a script in flight")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):  # prompt: nothing waits for the 30 s sleep
            await task
    leftovers = [t for t in asyncio.all_tasks() if t.get_name().startswith(("check:", "health-"))]
    assert leftovers == []
    await assert_group_gone(pids)
    # the runner can be started again and picks its checks back up
    async with running(runner):
        await eventually(lambda: http_app.hits["slow"] >= 2, message="probing again after restart")
