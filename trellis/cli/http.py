"""The CLI's synchronous HTTP client of an agent's API (I/O shell, stdlib only).

Flow: a command declares ``CLIENT_FLAGS`` (+ ``SERVER_FLAGS``, ``MULTI_TENANCY_FLAGS``)
in its FlagSet → ``client_for(parsed)`` resolves flags and environment into an
``HttpConfig`` (pure ``resolve_config``) and returns an ``ApiClient`` →
``client.get``/``put`` send one request each through ``send`` and return decoded JSON.

Rules:
1. Flags beat the environment; ``TRELLIS_*`` beats ``CONSUL_*`` of the same name
   (``TRELLIS_HTTP_ADDR`` > ``CONSUL_HTTP_ADDR``), so Consul users' shells work.
2. Address: ``host:port``, ``http://``, ``https://`` or ``unix:///path``; default
   ``127.0.0.1:8500``; ``CONSUL_HTTP_SSL=true`` means https, ``CONSUL_HTTP_SSL_VERIFY=false``
   skips certificate checks. A malformed address (spaces, a path, a bad port, no host)
   is ``InvalidInput`` naming it, found before any request: ``client_for`` turns it into
   ``Error connecting to agent: Invalid address "bad addr": ...``.
3. Token: a token file (``-token-file``, else ``CONSUL_HTTP_TOKEN_FILE``) wins over
   a token of the same level, a flag over the environment; sent as ``X-Consul-Token``.
4. ``-datacenter``, ``-namespace``, ``-partition`` become ``?dc=``, ``?ns=``,
   ``?partition=`` on every request (as Consul's Go client does); ``-stale`` adds
   ``?stale`` to reads.
5. Any non-2xx answer raises ``ApiError(status, body)``; its text is Consul's
   ``Unexpected response code: 400 (Missing service name)``. A request that never
   got an answer raises ``ConnectError`` in Go's words:
   ``Get "http://127.0.0.1:8500/v1/agent/members": dial tcp 127.0.0.1:8500: connect: connection refused``.
"""

from __future__ import annotations

import base64
import errno
import http.client
import ipaddress
import json
import os
import socket
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, urlencode

from trellis import __version__
from trellis.cli.flags import HTTP_OPTIONS, Flag, Kind, Parsed, go_quote
from trellis.cli.output import CommandError
from trellis.errors import InvalidInput, TrellisError, Unavailable

DEFAULT_ADDRESS = "127.0.0.1:8500"
DEFAULT_TIMEOUT = 60.0  # seconds per request; None waits forever (blocking queries pass their own)

CLIENT_FLAGS: tuple[Flag, ...] = (
    Flag("http-addr", metavar="address", group=HTTP_OPTIONS, help=(
        "The address and port of the agent HTTP server: host:port, http://host:port, "
        "https://host:port or unix:///path. The default is http://127.0.0.1:8500. "
        "Can also be given with TRELLIS_HTTP_ADDR or CONSUL_HTTP_ADDR.")),
    Flag("token", metavar="value", group=HTTP_OPTIONS, help=(
        "ACL token to use in the request, sent as X-Consul-Token. Can also be given with "
        "TRELLIS_HTTP_TOKEN or CONSUL_HTTP_TOKEN. The default is the agent's default token.")),
    Flag("token-file", metavar="value", group=HTTP_OPTIONS, help=(
        "File containing the ACL token to use in the request; wins over -token. Can also be "
        "given with TRELLIS_HTTP_TOKEN_FILE or CONSUL_HTTP_TOKEN_FILE.")),
    Flag("ca-file", metavar="value", group=HTTP_OPTIONS, help=(
        "Path to a CA file to verify the agent's certificate over HTTPS. Can also be given "
        "with CONSUL_CACERT.")),
    Flag("ca-path", metavar="value", group=HTTP_OPTIONS, help=(
        "Path to a directory of CA certificates. Can also be given with CONSUL_CAPATH.")),
    Flag("client-cert", metavar="value", group=HTTP_OPTIONS, help=(
        "Path to a client certificate file for TLS. Can also be given with CONSUL_CLIENT_CERT.")),
    Flag("client-key", metavar="value", group=HTTP_OPTIONS, help=(
        "Path to the client key file for TLS. Can also be given with CONSUL_CLIENT_KEY.")),
    Flag("tls-server-name", metavar="value", group=HTTP_OPTIONS, help=(
        "The server name to use as the SNI host over HTTPS. Can also be given with "
        "CONSUL_TLS_SERVER_NAME.")),
)

SERVER_FLAGS: tuple[Flag, ...] = (
    Flag("datacenter", metavar="value", group=HTTP_OPTIONS, help=(
        "Name of the datacenter to query. The default is the agent's datacenter.")),
    Flag("stale", Kind.BOOL, group=HTTP_OPTIONS, help=(
        "Allow any agent to answer the request, possibly with stale data.")),
)

PARTITION_FLAG = Flag("partition", metavar="default", group=HTTP_OPTIONS, help=(
    "Admin partition to use (Enterprise in Consul); sent as ?partition=. Can also be given "
    "with CONSUL_PARTITION."))

MULTI_TENANCY_FLAGS: tuple[Flag, ...] = (
    Flag("namespace", metavar="default", group=HTTP_OPTIONS, help=(
        "Namespace to query; sent as ?ns=. The default is the namespace of the token, "
        "else \"default\". Can also be given with CONSUL_NAMESPACE.")),
    PARTITION_FLAG,
)

_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


class ApiError(TrellisError):
    """The agent answered with a non-2xx status; ``body`` is its plain-text message."""

    def __init__(self, status: int, body: str) -> None:
        self.status = status
        self.body = body
        super().__init__(f"Unexpected response code: {status} ({body})")


class ConnectError(Unavailable):
    """No answer: refused, unreachable, TLS failure, timeout. Worded as Go's url.Error."""

    def __init__(self, method: str, url: str, reason: str) -> None:
        self.method = method
        self.url = url
        self.reason = reason
        super().__init__(f'{method[:1].upper()}{method[1:].lower()} "{url}": {reason}')


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """Where and how to reach the agent. ``address`` is host[:port], or a socket path for unix."""

    scheme: str = "http"  # http | https | unix
    address: str = DEFAULT_ADDRESS
    token: str = ""
    token_file: str = ""
    datacenter: str = ""
    namespace: str = ""
    partition: str = ""
    stale: bool = False
    auth: tuple[str, str] | None = None
    ca_file: str = ""
    ca_path: str = ""
    client_cert: str = ""
    client_key: str = ""
    tls_server_name: str = ""
    tls_verify: bool = True
    timeout: float | None = DEFAULT_TIMEOUT

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:8500`` (``unix:///path`` for a socket), for messages."""
        if self.scheme == "unix":
            return f"unix://{self.address}"
        return f"{self.scheme}://{self.address}"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str  # quoted path + "?" + query
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    timeout: float | None = DEFAULT_TIMEOUT


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; None when empty. Unavailable when it is not JSON."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Unavailable(f"invalid JSON in the agent's answer: {exc}") from None


def resolve_config(parsed: Parsed, env: Mapping[str, str]) -> HttpConfig:
    """Flags (those the command declares) over ``env``; see the module rules. Pure.

    Raises InvalidInput for an address with an unknown scheme.
    """

    def flag(name: str) -> str:
        return parsed.get(name) or ""

    def var(name: str) -> str:
        return env.get(f"TRELLIS_{name}") or env.get(f"CONSUL_{name}") or ""

    ssl_on = _env_bool(var("HTTP_SSL"), default=False)
    scheme, address = parse_address(flag("http-addr") or var("HTTP_ADDR") or DEFAULT_ADDRESS, ssl_on)
    token, token_file = flag("token"), flag("token-file")
    if not token and not token_file:
        token, token_file = var("HTTP_TOKEN"), var("HTTP_TOKEN_FILE")
    user, sep, password = var("HTTP_AUTH").partition(":")
    return HttpConfig(
        scheme=scheme,
        address=address,
        token=token,
        token_file=token_file,
        datacenter=flag("datacenter"),
        namespace=flag("namespace") or var("NAMESPACE"),
        partition=flag("partition") or var("PARTITION"),
        stale=bool(parsed.get("stale")),
        auth=(user, password) if user or sep else None,
        ca_file=flag("ca-file") or var("CACERT"),
        ca_path=flag("ca-path") or var("CAPATH"),
        client_cert=flag("client-cert") or var("CLIENT_CERT"),
        client_key=flag("client-key") or var("CLIENT_KEY"),
        tls_server_name=flag("tls-server-name") or var("TLS_SERVER_NAME"),
        tls_verify=_env_bool(var("HTTP_SSL_VERIFY"), default=True),
    )


def parse_address(text: str, ssl_on: bool = False) -> tuple[str, str]:
    """``"https://h:1"`` → ``("https", "h:1")``; no scheme → http (https if ``ssl_on``). Pure.

    Raises InvalidInput naming ``text`` for an unknown scheme or a malformed address.
    """
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = ("https" if ssl_on else "http"), text
    elif scheme == "unix":
        if not rest:
            raise _bad_address(text, "missing socket path")
        if _has_control(rest):
            raise _bad_address(text, "contains a control character")
        return "unix", rest
    elif scheme not in ("http", "https"):
        raise InvalidInput("address", text, message=f"Unknown protocol scheme: {scheme}")
    address = rest.rstrip("/")
    if problem := address_problem(address):
        raise _bad_address(text, problem)
    return scheme, address


def address_problem(address: str) -> str:
    """Why ``host[:port]`` (no scheme) cannot be dialled, or "" when it can. Pure."""
    if not address:
        return "missing host"
    if any(c.isspace() for c in address):
        return "contains whitespace"
    if _has_control(address):
        return "contains a control character"
    if any(c in address for c in "/?#"):
        return "a path or query is not allowed, use host:port"
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            return "missing ']' in address"
        literal, tail = address[1:end], address[end + 1:]
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            return f"{go_quote(literal)} is not an IPv6 address"
        if tail and not tail.startswith(":"):
            return "unexpected text after ']'"
        port = tail[1:]
    else:
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
        if ":" in host or "[" in address or "]" in address:
            return "too many colons in address, write an IPv6 address as [addr]:port"
    if port and not (port.isascii() and port.isdigit() and int(port) <= 65535):
        return f"invalid port {go_quote(port)}"
    return ""


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _bad_address(text: str, why: str) -> InvalidInput:
    return InvalidInput("address", text, why, message=f"Invalid address {go_quote(text)}: {why}")


def _env_bool(text: str, *, default: bool) -> bool:
    # Consul's api.DefaultConfig ignores values ParseBool rejects.
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return default


def client_for(parsed: Parsed, env: Mapping[str, str] | None = None) -> ApiClient:
    """An ApiClient from the command's flags and the process environment.

    Reads the token file (and the TLS files for https). Raises CommandError
    ``Error connecting to agent: ...`` (Consul's wording) for a bad address or an
    unreadable token, CA or certificate file.
    """
    try:
        config = resolve_config(parsed, os.environ if env is None else env)
        if config.scheme == "https":
            _tls_context(config)  # unreadable CA/cert files fail here, before any request
        return ApiClient(_with_token_file(config))
    except TrellisError as exc:
        raise CommandError(f"Error connecting to agent: {exc}") from None


def _with_token_file(config: HttpConfig) -> HttpConfig:
    if not config.token_file:
        return config
    try:
        with open(config.token_file, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise InvalidInput("token-file", config.token_file,
                           message=f"Error loading token file: open {config.token_file}: {reason}") from None
    if not token:
        return config
    return replace(config, token=token)


Params = Mapping[str, str] | Iterable[tuple[str, str]]


class ApiClient:
    """One agent's HTTP API. Each call is one request; nothing is kept open."""

    def __init__(self, config: HttpConfig) -> None:
        self.config = config

    def get(self, path: str, params: Params = (), *, timeout: float | None = None) -> Any:
        """GET ``path`` and return its decoded JSON body (None if empty)."""
        return self.request("GET", path, params, timeout=timeout).json()

    def put(self, path: str, body: Any = None, params: Params = (), *, timeout: float | None = None) -> Any:
        """PUT ``body`` as JSON (nothing when None); return the decoded answer."""
        return self.request("PUT", path, params, body=body, timeout=timeout).json()

    def request(self, method: str, path: str, params: Params = (), *, body: Any = None,
                timeout: float | None = None) -> Response:
        """Send one request; raise ApiError for non-2xx, ConnectError when no answer came."""
        req = self.build_request(method, path, params, body=body, timeout=timeout)
        resp = send(self.config, req)
        if not 200 <= resp.status < 300:
            raise ApiError(resp.status, resp.text().rstrip())
        return resp

    def build_request(self, method: str, path: str, params: Params = (), *, body: Any = None,
                      timeout: float | None = None) -> Request:
        """The Request ``request`` would send: query options and headers added. Pure."""
        query = list(params.items() if isinstance(params, Mapping) else params)
        c = self.config
        for key, value in (("dc", c.datacenter), ("ns", c.namespace), ("partition", c.partition)):
            if value:
                query.append((key, value))
        if c.stale and method == "GET":
            query.append(("stale", ""))
        target = quote(path, safe="/:@!$&'()*+,;=-._~")
        if query:
            target += "?" + urlencode(query, quote_via=quote)
        headers = {"User-Agent": f"trellis/{__version__}", "Accept": "application/json"}
        if c.token:
            headers["X-Consul-Token"] = c.token
        if c.auth is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(c.auth).encode()).decode()
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        return Request(method, target, headers, data, c.timeout if timeout is None else timeout)


def send(config: HttpConfig, req: Request) -> Response:
    """Send ``req`` over a fresh connection (I/O). Raises ConnectError; any status is returned.

    Tests replace this function to serve canned answers.
    """
    url = config.base_url + req.target
    conn = None
    try:
        conn = _connection(config, req.timeout)
        conn.request(req.method, req.target, body=req.body, headers=dict(req.headers))
        resp = conn.getresponse()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        return Response(resp.status, headers, resp.read())
    except (OSError, http.client.HTTPException, ValueError) as exc:
        # ValueError: what http.client/socket say about an address they cannot use
        # (e.g. a non-IDNA host name, a NUL in a socket path), which parse_address let through.
        raise ConnectError(req.method, url, _dial_reason(config, exc)) from None
    finally:
        if conn is not None:
            conn.close()


def _connection(config: HttpConfig, timeout: float | None) -> http.client.HTTPConnection:
    t = socket.getdefaulttimeout() if timeout is None else timeout
    if config.scheme == "unix":
        return _UnixConnection(config.address, timeout=t)
    if config.scheme == "https":
        return _TLSConnection(config.address, timeout=t, context=_tls_context(config),
                              server_name=config.tls_server_name)
    return http.client.HTTPConnection(config.address, timeout=t)


def _tls_context(config: HttpConfig) -> ssl.SSLContext:
    """The TLS context for ``config`` (reads the CA and certificate files).

    Raises InvalidInput naming the file that cannot be loaded.
    """
    try:
        ctx = ssl.create_default_context(cafile=config.ca_file or None, capath=config.ca_path or None)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        what = f"CA file {config.ca_file}" if config.ca_file else f"CA path {config.ca_path}"
        raise InvalidInput("ca-file", config.ca_file or config.ca_path,
                           message=f"Error loading {what}: {_file_reason(exc)}") from None
    if config.client_cert:
        try:
            ctx.load_cert_chain(config.client_cert, config.client_key or None)
        except (OSError, ValueError) as exc:
            files = config.client_cert + (f" and {config.client_key}" if config.client_key else "")
            raise InvalidInput("client-cert", config.client_cert,
                               message=f"Error loading client certificate {files}: {_file_reason(exc)}") from None
    if not config.tls_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (``unix:///path``, as Consul's client supports)."""

    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class _TLSConnection(http.client.HTTPSConnection):
    """HTTPS whose SNI/verified name may differ from the dialled host (``-tls-server-name``)."""

    def __init__(self, address: str, *, timeout: float | None, context: ssl.SSLContext,
                 server_name: str) -> None:
        super().__init__(address, timeout=timeout, context=context)
        self.tls_context = context
        self.server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self.tls_context.wrap_socket(self.sock, server_hostname=self.server_name or self.host)


def _file_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason.lower().replace("_", " ") if exc.reason else str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def _dial_reason(config: HttpConfig, exc: BaseException) -> str:
    """Go's ``net.OpError`` text for a failed dial, else the exception's own words."""
    if config.scheme == "unix":
        where = f"dial unix {config.address}"
    else:
        where = f"dial tcp {_host_port(config)}"
    if isinstance(exc, socket.gaierror):
        return f"dial tcp: lookup {_host_port(config).rpartition(':')[0].strip('[]')}: no such host"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"tls: failed to verify certificate: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"tls: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return f"{where}: i/o timeout"
    if isinstance(exc, (http.client.InvalidURL, ValueError)):
        return f"invalid address {go_quote(config.address)}: {exc}"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "EOF"  # the agent closed the connection without answering
    if isinstance(exc, http.client.HTTPException):
        return f"malformed HTTP response: {exc}" if str(exc) else f"malformed HTTP response ({type(exc).__name__})"
    if isinstance(exc, ConnectionResetError):
        return "read: connection reset by peer"
    if isinstance(exc, ConnectionRefusedError) or getattr(exc, "errno", None) == errno.ECONNREFUSED:
        return f"{where}: connect: connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{where}: connect: {exc.strerror.lower()}"
    return str(exc) or type(exc).__name__


def _host_port(config: HttpConfig) -> str:
    """host:port with the scheme's default port filled in, as Go's dialer prints it."""
    addr = config.address
    port = 443 if config.scheme == "https" else 80
    if addr.startswith("["):
        return addr if "]:" in addr else f"{addr}:{port}"
    if addr.count(":") > 1:
        return f"[{addr}]:{port}"  # a bare IPv6 literal
    return addr if ":" in addr else f"{addr}:{port}"


def query_pairs(values: Mapping[str, str] | Sequence[tuple[str, str]], sep: str = ":") -> list[str]:
    """``{"k": "v"}`` → ``["k:v"]``: the ``?node-meta=`` encoding of a ``-node-meta`` map. Pure."""
    items = values.items() if isinstance(values, Mapping) else values
    return [f"{k}{sep}{v}" for k, v in items]
