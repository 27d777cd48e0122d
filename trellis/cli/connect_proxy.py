"""``trellis connect proxy``: run the built-in sidecar proxy, or manage the ones running.

Flow: flags → the proxy to serve (a registered sidecar found by ``-sidecar-for`` or
``-proxy-id``; an ephemeral one from ``-service -listen -service-addr``; optionally
``-register``ed) → ``trellis.proxy.server.serve`` until SIGTERM/SIGINT or ``-stop``.
``-list``, ``-stop`` and ``-verify`` only talk to the agent.

Rules:
1. ``-sidecar-for X`` finds the local connect-proxy whose destination service ID is X
   (case-insensitive), else the one whose destination service *name* is X when exactly
   one local instance has it; none → ``No sidecar proxy registered for X``; several →
   an error listing them.
2. ``-upstream name:port`` / ``name:addr:port`` (repeatable) adds upstreams: to a
   registered sidecar through an ephemeral copy with the extra upstreams (the agent
   refuses a bind address already taken), or to an ephemeral proxy directly.
3. ``-register`` registers ``<service>-proxy`` (ID ``<service>-proxy[-<register-id>]``),
   kind connect-proxy, with the TTL check ``proxy heartbeat`` refreshed every 10 s, and
   deregisters it on exit, as Consul's does.
4. ``-verify`` checks the served snapshot's leaf: it chains to the current roots, its
   SPIFFE ID is the service's, and how long until it expires; exit 1 if any check fails.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from trellis.cli import http, output
from trellis.cli.agent import setup_logging
from trellis.cli.flags import Flag, FlagSet, Kind, Parsed, UsageError
from trellis.errors import InvalidInput, TrellisError

PROXIES_PATH = "/v1/agent/connect/proxies"
SNAPSHOT_PATH = "/v1/agent/connect/proxy-snapshot/"
TTL_REFRESH = 10.0

FLAGS = FlagSet(
    usage="Usage: trellis connect proxy [options]",
    description="""
        Runs the built-in sidecar proxy: mutual TLS with the service's identity,
        intentions enforced at the door, upstream listeners balanced over healthy
        instances. Configuration comes from the agent and follows it live.

            $ trellis connect proxy -sidecar-for web-1
            $ trellis connect proxy -service web -service-addr 127.0.0.1:8080 \\
                  -listen 127.0.0.1:20000 -upstream api:9090 -register

        Manage the proxies the agent serves:

            $ trellis connect proxy -list
            $ trellis connect proxy -sidecar-for web-1 -verify
            $ trellis connect proxy -sidecar-for web-1 -stop
    """,
    flags=(
        *http.CLIENT_FLAGS, *http.SERVER_FLAGS,
        Flag("proxy-id", help="The proxy's service ID on the local agent (or CONNECT_PROXY_ID)."),
        Flag("sidecar-for", help="The ID (or the name, when one instance has it) of the service whose "
                                 "sidecar to run (or CONNECT_SIDECAR_FOR)."),
        Flag("service", help="The service the proxy stands for, when it has no registration."),
        Flag("service-addr", help="host:port of the local service (with -service)."),
        Flag("listen", help="host:port of the public mTLS listener (with -service)."),
        Flag("upstream", Kind.LIST, help="name:port or name:addr:port; repeatable."),
        Flag("register", Kind.BOOL, help="Register the proxy with the agent (with -service)."),
        Flag("register-id", help="Suffix of the registered proxy's ID."),
        Flag("metrics-addr", help="host:port to serve Prometheus metrics on (default: the proxy "
                                  "config's envoy_prometheus_bind_addr, if any)."),
        Flag("log-level", default="info", help="Log level: trace, debug, info, warn, error or off."),
        Flag("list", Kind.BOOL, help="List the proxies the agent serves."),
        Flag("stop", Kind.BOOL, help="Ask the proxy (-sidecar-for or -proxy-id) to drain and exit."),
        Flag("verify", Kind.BOOL, help="Check the proxy's leaf certificate; exit 1 when a check fails."),
        output.FORMAT_FLAG,
    ),
)


def run(argv: list[str]) -> int:
    parsed = FLAGS.parse(argv)
    if parsed.args:
        raise UsageError(f"unexpected arguments: {' '.join(parsed.args)}")
    client = http.client_for(parsed)
    try:
        if parsed.list:
            return list_proxies(client, parsed.format)
        if parsed.stop or parsed.verify:
            proxy_id = resolve_proxy_id(client, parsed, os.environ)
            return stop(client, proxy_id) if parsed.stop else verify(client, proxy_id)
        return serve(client, parsed)
    except InvalidInput as exc:
        return output.fail(str(exc))
    except TrellisError as exc:
        return output.fail(f"Error: {exc}")


# -- finding the proxy ----------------------------------------------------------------------
def find_sidecar(services: Mapping[str, Mapping[str, Any]], target: str) -> str:
    """Rule 1 over ``/v1/agent/services``. Pure; raises InvalidInput."""
    proxies = [s for s in services.values() if s.get("Kind") == "connect-proxy"]
    by_id = [s for s in proxies if (s.get("Proxy") or {}).get("DestinationServiceID", "").lower() == target.lower()]
    if len(by_id) == 1:
        return by_id[0]["ID"]
    by_name = [s for s in proxies if (s.get("Proxy") or {}).get("DestinationServiceName") == target]
    if len(by_id) > 1 or len(by_name) > 1:
        found = ", ".join(sorted(s["ID"] for s in (by_id or by_name)))
        raise InvalidInput("sidecar-for", target, message=f"More than one sidecar proxy registered for {target}: "
                                                          f"{found}; use -proxy-id")
    if by_name:
        return by_name[0]["ID"]
    raise InvalidInput("sidecar-for", target, message=f"No sidecar proxy registered for {target}")


def resolve_proxy_id(client: http.ApiClient, parsed: Parsed, env: Mapping[str, str]) -> str:
    proxy_id = parsed.proxy_id or env.get("CONNECT_PROXY_ID", "")
    sidecar_for = parsed.sidecar_for or env.get("CONNECT_SIDECAR_FOR", "")
    if proxy_id:
        return proxy_id
    if sidecar_for:
        return find_sidecar(client.get("/v1/agent/services") or {}, sidecar_for)
    raise InvalidInput("proxy-id", message="-service or -proxy-id must be specified so that proxy can configure itself.")


def parse_upstream(text: str) -> dict[str, Any]:
    """``name:port`` or ``name:addr:port`` → an upstream body. Pure; raises InvalidInput."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0]:
        raise InvalidInput("upstream", text, message=f"-upstream {text!r}: expected name:port or name:addr:port")
    name, addr, port = (parts[0], "127.0.0.1", parts[1]) if len(parts) == 2 else parts
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput("upstream", text, message=f"-upstream {text!r}: {port!r} is not a port")
    if name.endswith(".query"):
        raise InvalidInput("upstream", text, message=f"-upstream {text!r}: prepared-query upstreams are not supported yet")
    return {"DestinationName": name, "LocalBindAddress": addr or "127.0.0.1", "LocalBindPort": int(port)}


def split_host_port(text: str, flag: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidInput(flag, text, message=f"-{flag} {text!r}: expected host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


# -- -list, -stop, -verify ----------------------------------------------------------------------
def list_proxies(client: http.ApiClient, fmt: str) -> int:
    proxies = client.get(PROXIES_PATH) or []
    if fmt == "json":
        output.out(json.dumps(proxies, indent=4))
        return 0
    if not proxies:
        print("No proxies are served by this agent.", file=sys.stderr)
        return 0
    output.out(format_list(proxies, now=time.time()))
    return 0


def format_list(proxies: Sequence[Mapping[str, Any]], *, now: float) -> str:
    """The ``-list`` table, then each reported problem on its own line under ``Problems:``
    (what a proxy's config left out or defaulted, and why). Pure."""
    rows = [("ID", "Service", "Data plane", "Public", "Upstreams", "Leaf expires", "Conns", "Sent", "Applied",
             "Problems", "Lag")]
    for p in proxies:
        left = p.get("LeafValidBefore", 0) - now
        rows.append((p["ProxyID"], p.get("Service", ""), p.get("DataPlane") or "-", p.get("PublicListener", ""),
                     ",".join(p.get("Upstreams") or []) or "-", _human(left) if p.get("LeafValidBefore") else "-",
                     str(p.get("Connections", 0)), (p.get("SentVersion") or "-")[:8],
                     (p.get("AppliedVersion") or "-")[:8], str(len(p.get("Problems") or [])) if p.get("Problems")
                     else "-", format_lag(p)))
    details = [f"  {p['ProxyID']}: {problem}" for p in proxies for problem in p.get("Problems") or []]
    return "\n".join([output.columnize(rows), *(["", "Problems:", *details] if details else [])])


def format_lag(p: Mapping[str, Any]) -> str:
    """``in sync (12ms)``, ``3.2s behind``, or ``STALE 42s behind`` past the agent's threshold. Pure."""
    lag = float(p.get("LagSeconds") or 0)
    shown = f"{lag * 1000:.0f}ms" if lag < 1 else f"{lag:.1f}s"
    if p.get("InSync"):
        return f"in sync ({shown})"
    if not p.get("AppliedVersion") and not p.get("DataPlane"):
        return "not running"
    return f"STALE {shown} behind" if p.get("Stale") else f"{shown} behind"


def _human(seconds: float) -> str:
    if seconds <= 0:
        return "expired"
    if seconds >= 3600:
        return f"in {seconds / 3600:.1f}h"
    return f"in {seconds / 60:.0f}m" if seconds >= 60 else f"in {seconds:.0f}s"


def stop(client: http.ApiClient, proxy_id: str) -> int:
    client.put(f"{PROXIES_PATH}/{proxy_id}/stop")
    output.out(f"Asked proxy {proxy_id} to stop: it stops accepting, drains its open connections and exits.")
    return 0


def verify(client: http.ApiClient, proxy_id: str) -> int:
    snap = client.get(SNAPSHOT_PATH + proxy_id, timeout=30)
    checks = verify_snapshot(snap, now=time.time())
    for ok, text in checks:
        output.out(f"{'OK  ' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for ok, _ in checks) else 1


def verify_snapshot(snap: Mapping[str, Any], *, now: float) -> list[tuple[bool, str]]:
    """Rule 4 over a snapshot's JSON. Pure but for the certificate parsing."""
    from cryptography import x509
    from cryptography.x509 import verification

    from trellis.connect import spiffe

    leaf = snap.get("leaf")
    if not leaf:
        return [(False, "the proxy has no leaf certificate yet")]
    chain = x509.load_pem_x509_certificates(leaf["cert_pem"].encode())
    roots = [c for pem in snap.get("roots", []) for c in x509.load_pem_x509_certificates(pem.encode())]
    out = []
    try:
        store = verification.Store(roots)
        verifier = (verification.PolicyBuilder().store(store).time(dt.datetime.fromtimestamp(now, dt.timezone.utc))
                    .build_client_verifier())
        verifier.verify(chain[0], chain[1:])
        out.append((True, f"the leaf chains to the trust bundle ({len(roots)} root(s))"))
    except Exception as exc:  # noqa: BLE001 - cryptography's verification errors, reported as a failed check
        out.append((False, f"the leaf does not chain to the trust bundle: {exc}"))
    want = spiffe.service_uri(snap["trust_domain"], snap["namespace"], snap["datacenter"], snap["service"])
    sans = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    out.append((uris == [want], f"its SPIFFE ID is {uris[0] if uris else 'missing'}"
                + ("" if uris == [want] else f", expected {want}")))
    left = leaf["valid_before"] - now
    out.append((left > 0, f"it expires {_human(left)} ({dt.datetime.fromtimestamp(leaf['valid_before'], dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC)"))
    return out


# -- serving ----------------------------------------------------------------------------------------
def serve(client: http.ApiClient, parsed: Parsed) -> int:
    from trellis.proxy.server import serve as serve_proxy

    setup_logging(parsed.log_level, as_json=False)  # the agent's: same levels, same format
    upstreams = [parse_upstream(u) for u in parsed.upstream]
    cleanup: list[tuple[str, str]] = []
    registered = ""
    if parsed.service:
        proxy_id, registered = _flags_mode(client, parsed, upstreams, cleanup)
        mode = "Flags"
    else:
        proxy_id = resolve_proxy_id(client, parsed, os.environ)
        if upstreams:
            answer = client.request("POST", PROXIES_PATH, body={"Base": proxy_id, "Upstreams": upstreams}).json()
            proxy_id = answer["ID"]
            cleanup.append(("DELETE", f"{PROXIES_PATH}/{proxy_id}"))
        mode = "Agent API"
    output.out("trellis connect proxy starting...")
    output.out(f"Configuration mode: {mode}")
    try:
        snap = client.get(SNAPSHOT_PATH + proxy_id, timeout=30)
        for u in snap.get("upstreams", []):
            where = f"{u['local_bind_address']}:{u['local_bind_port']}"
            output.out(f"    Upstream: {u['destination_name']} => {where}" + (f" (refused: {u['error']})" if u.get("error") else ""))
        pub = snap["public"]
        output.out(f"    Public listener: {pub['bind_address']}:{pub['bind_port']} => "
                   f"{pub['local_service_address']}:{pub['local_service_port']}")
        sys.stdout.flush()
        return _run_loop(serve_proxy, client, proxy_id, parsed, registered)
    finally:
        for method, path in cleanup:
            try:
                client.request(method, path)
            except TrellisError:
                pass


def _flags_mode(client: http.ApiClient, parsed: Parsed, upstreams: list[dict[str, Any]],
                cleanup: list[tuple[str, str]]) -> tuple[str, str]:
    if not parsed.listen or not parsed.service_addr:
        raise InvalidInput("listen", message="-service needs -listen host:port and -service-addr host:port")
    listen_host, listen_port = split_host_port(parsed.listen, "listen")
    app_host, app_port = split_host_port(parsed.service_addr, "service-addr")
    if parsed.register:
        proxy_id = f"{parsed.service}-proxy" + (f"-{parsed.register_id}" if parsed.register_id else "")
        client.put("/v1/agent/service/register", {
            "ID": proxy_id, "Name": f"{parsed.service}-proxy", "Kind": "connect-proxy",
            "Address": listen_host, "Port": listen_port,
            "Proxy": {"DestinationServiceName": parsed.service, "LocalServiceAddress": app_host,
                      "LocalServicePort": app_port, "Upstreams": upstreams},
            "Check": {"CheckID": f"{proxy_id}-ttl", "Name": "proxy heartbeat", "TTL": "30s"},
        })
        cleanup.append(("PUT", f"/v1/agent/service/deregister/{proxy_id}"))
        return proxy_id, proxy_id
    answer = client.request("POST", PROXIES_PATH, body={
        "Service": parsed.service, "ListenAddress": listen_host, "ListenPort": listen_port,
        "ServiceAddress": app_host, "ServicePort": app_port, "Upstreams": upstreams}).json()
    cleanup.append(("DELETE", f"{PROXIES_PATH}/{answer['ID']}"))
    return answer["ID"], ""


def _run_loop(serve_proxy: Any, client: http.ApiClient, proxy_id: str, parsed: Parsed, registered: str) -> int:
    try:
        import uvloop  # the event loop trellis prefers where it installs
        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    stopping = asyncio.Event()
    done = threading.Event()
    if registered:
        threading.Thread(target=_heartbeat_ttl, args=(client, registered, done), daemon=True).start()

    async def main() -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        return await serve_proxy(client.config.base_url, proxy_id, token=client.config.token,
                                 metrics_addr=parsed.metrics_addr, stop=stopping)

    try:
        return loop.run_until_complete(main())
    finally:
        done.set()
        loop.close()


def _heartbeat_ttl(client: http.ApiClient, proxy_id: str, done: threading.Event) -> None:
    """Rule 3: keep the registered proxy's TTL check passing while it runs."""
    while True:
        try:
            client.put(f"/v1/agent/check/pass/{proxy_id}-ttl", params=[("note", "proxy running")])
        except TrellisError:
            pass
        if done.wait(TTL_REFRESH):
            return

