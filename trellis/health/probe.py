"""Probes (shell): one HTTP request, TCP connect, UDP send, gRPC health call or script run.

Rules that hold in this module:
1. A probe never raises for anything the target did: every failure becomes a
   critical ``ProbeResult`` whose output reads like Consul's (Go's error texts
   where Consul passes them through). ``CancelledError`` always propagates.
2. Every network await sits under ``asyncio.timeout(timeout)``; a script run is
   bounded the same way and its whole process group is killed when it overruns
   or when the probe is cancelled, and always waited for (no zombies).
3. Third-party exceptions (aiohttp, grpc, OSError) are turned into output here,
   once; nothing above this module sees them.
4. Nothing is kept between calls: each probe opens and closes its own session,
   socket, channel or process (Consul disables keep-alives for HTTP checks).
"""

from __future__ import annotations

import asyncio
import errno as errno_codes
import os
import signal
import socket
import ssl
from contextlib import suppress

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from multidict import CIMultiDict

from trellis.catalog.model import CheckDefinition, CheckStatus
from trellis.errors import InvalidInput
from trellis.health import rules
from trellis.health.model import ProbeResult

UDP_ICMP_WAIT = 1.0  # how long a UDP probe waits for an ICMP error before passing
_READ_CHUNK = 4096
_MAX_REDIRECTS = 10  # Go's http.Client default


def _critical(output: str) -> ProbeResult:
    return ProbeResult(CheckStatus.CRITICAL, output)


def _strerror(exc: OSError) -> str:
    """Go-style lower-case reason: ``connection refused``; TLS errors as OpenSSL words them."""
    if not isinstance(exc, ssl.SSLError) and exc.errno in errno_codes.errorcode:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def _client_ssl(skip_verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


# --- HTTP --------------------------------------------------------------------------


def _http_headers(header: dict[str, tuple[str, ...]]) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, values in header.items():
        for value in values:
            headers.add(name, value)
    headers.setdefault("User-Agent", rules.USER_AGENT)
    headers.setdefault("Accept", rules.DEFAULT_ACCEPT)
    return headers


async def _read_tail(stream: asyncio.StreamReader | aiohttp.StreamReader, limit: int) -> tuple[bytes, int]:
    tail, total = b"", 0
    while chunk := await stream.read(_READ_CHUNK):
        total += len(chunk)
        tail = rules.keep_tail(tail, chunk, limit)
    return tail, total


async def probe_http(definition: CheckDefinition, *, timeout: float, limit: int) -> ProbeResult:
    """2xx passing, 429 warning, else critical; output ``HTTP GET <url>: 200 OK Output: <body>``."""
    method = definition.method or "GET"
    url = definition.http
    op = method[:1].upper() + method[1:].lower()  # Go's url.Error op: "Get", "Post"
    context = _client_ssl(definition.tls_skip_verify) if url.lower().startswith("https") else None
    try:
        async with asyncio.timeout(timeout):
            return await _http_round(definition, method, url, context, limit)
    except TimeoutError:
        reason = "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        return _critical(f'{op} "{url}": {reason}')
    except aiohttp.TooManyRedirects:
        return _critical(f'{op} "{url}": stopped after {_MAX_REDIRECTS} redirects')
    except aiohttp.ClientConnectorCertificateError as exc:
        return _critical(f'{op} "{url}": {exc.certificate_error}')
    except aiohttp.ClientConnectorError as exc:
        return _critical(f'{op} "{url}": dial tcp {exc.host}:{exc.port}: connect: {_strerror(exc.os_error)}')
    except (aiohttp.ClientError, ValueError, OSError) as exc:
        return _critical(f'{op} "{url}": {exc or type(exc).__name__}')


async def _http_round(
    definition: CheckDefinition, method: str, url: str, context: ssl.SSLContext | None, limit: int
) -> ProbeResult:
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
        async with session.request(
            method,
            url,
            headers=_http_headers(definition.header),
            data=definition.body.encode() if definition.body else None,
            allow_redirects=not definition.disable_redirects,
            max_redirects=_MAX_REDIRECTS,
            ssl=context if context is not None else True,
            server_hostname=definition.tls_server_name or None,
        ) as response:
            tail, _ = await _read_tail(response.content, limit)
            output = rules.format_http_output(method, url, response.status, response.reason or "", tail)
            return ProbeResult(rules.status_of_http(response.status), output)


# --- TCP and UDP -------------------------------------------------------------------


async def probe_tcp(definition: CheckDefinition, *, timeout: float) -> ProbeResult:
    """Passing when a connection (and, with ``tcp_use_tls``, a TLS handshake) succeeds."""
    address = definition.tcp
    kind = "TCP+TLS" if definition.tcp_use_tls else "TCP"
    try:
        host, port = rules.split_host_port(address)
    except InvalidInput as exc:
        return _critical(f"dial tcp {exc}")
    context = _client_ssl(definition.tls_skip_verify) if definition.tcp_use_tls else None
    server_hostname = (definition.tls_server_name or host) if context else None
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=server_hostname)
    except TimeoutError:
        return _critical(f"dial tcp {address}: i/o timeout")
    except ssl.SSLError as exc:
        return _critical(f"{kind} connect {address}: {exc}")
    except OSError as exc:
        return _critical(f"dial tcp {address}: connect: {_strerror(exc)}")
    finally:
        if writer is not None:
            writer.close()
    with suppress(OSError, TimeoutError):
        async with asyncio.timeout(timeout):
            await writer.wait_closed()
    return ProbeResult(CheckStatus.PASSING, rules.format_connect_output(kind, address))


async def probe_udp(definition: CheckDefinition, *, timeout: float) -> ProbeResult:
    """Send an empty datagram; critical only on an error (ICMP unreachable), else passing."""
    address = definition.udp
    try:
        host, port = rules.split_host_port(address)
    except InvalidInput as exc:
        return _critical(f"dial udp {exc}")
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (OSError, TimeoutError) as exc:
        return _critical(f"dial udp {address}: {exc or 'i/o timeout'}")
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setblocking(False)
        local = "?"
        try:
            sock.connect(sockaddr)
            local_host, local_port = sock.getsockname()[:2]
            local = f"[{local_host}]:{local_port}" if family == socket.AF_INET6 else f"{local_host}:{local_port}"
            sock.send(b"")
            async with asyncio.timeout(min(timeout, UDP_ICMP_WAIT)):
                await loop.sock_recv(sock, 1)
        except TimeoutError:
            pass  # silence is success for UDP (Consul treats an i/o timeout as passing)
        except OSError as exc:
            return _critical(f"read udp {local}->{address}: recv: {_strerror(exc)}")
    return ProbeResult(CheckStatus.PASSING, rules.format_connect_output("UDP", address))


# --- gRPC --------------------------------------------------------------------------


async def probe_grpc(definition: CheckDefinition, *, timeout: float) -> ProbeResult:
    """grpc.health.v1 ``Check`` on ``host:port[/service]``: SERVING passing, else critical.

    NOTE: grpcio cannot skip certificate verification, so ``tls_skip_verify`` has
    no effect on gRPC checks (Consul's Go client honours it).
    """
    target = definition.grpc
    address, service = rules.parse_grpc_target(target)
    if definition.grpc_use_tls:
        options = [("grpc.ssl_target_name_override", definition.tls_server_name)] if definition.tls_server_name else []
        channel = grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(), options)
    else:
        channel = grpc.aio.insecure_channel(address)
    try:
        async with asyncio.timeout(timeout):
            stub = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service=service)
            response = await stub.Check(request, timeout=timeout)
    except TimeoutError:
        return _critical(rules.format_grpc_error("DEADLINE_EXCEEDED", "context deadline exceeded"))
    except grpc.aio.AioRpcError as exc:
        return _critical(rules.format_grpc_error(exc.code().name, exc.details() or ""))
    finally:
        await channel.close()
    if response.status == health_pb2.HealthCheckResponse.SERVING:
        return ProbeResult(CheckStatus.PASSING, rules.format_grpc_output(target))
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return _critical(rules.format_grpc_not_serving(target, name))


# --- scripts -----------------------------------------------------------------------


def _kill_group(process: asyncio.subprocess.Process) -> None:
    # start_new_session=True made the child a group leader: its pid is the pgid.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


async def probe_script(definition: CheckDefinition, *, timeout: float, limit: int) -> ProbeResult:
    """Run ``args``; exit 0 passing, 1 warning, else critical; stdout+stderr captured.

    The child leads its own process group; on timeout or cancellation the whole
    group gets SIGKILL and the child is waited for before this returns or raises.
    """
    if not definition.args:
        return _critical("Check failed to setup: no script args to run")
    try:
        process = await asyncio.create_subprocess_exec(
            *definition.args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return _critical(f"Check failed to invoke: {exc}")
    tail, total = b"", 0  # what was captured so far, also when the timeout hits
    try:
        async with asyncio.timeout(timeout):
            assert process.stdout is not None
            while chunk := await process.stdout.read(_READ_CHUNK):
                tail, total = rules.keep_tail(tail, chunk, limit), total + len(chunk)
            code = await process.wait()
    except TimeoutError:
        _kill_group(process)
        await process.wait()
        return _critical(rules.format_script_timeout(timeout, rules.format_script_output(tail, total)))
    finally:
        if process.returncode is None:  # cancelled: leave no process behind
            _kill_group(process)
            await process.wait()
    return ProbeResult(rules.status_of_exit(code), rules.format_script_output(tail, total))
